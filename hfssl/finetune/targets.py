"""Which modules a PEFT method adapts, found by inspecting module names, and which modules form the head.

A model family is recognized by the names of its linear layers, not by `model_type`, so a renamed or
new architecture that keeps the usual layer names is still understood:

- hfssl (text and vision): attention attn.qkv, attn.out; MLP mlp.up, mlp.down
- bert (BERT, RoBERTa, ELECTRA, XLM-R, ...): query, key, value, attention.output.dense;
  intermediate.dense, output.dense
- deberta: query_proj, key_proj, value_proj, attention.output.dense; intermediate.dense, output.dense
- distilbert: q_lin, k_lin, v_lin, out_lin; lin1, lin2
- gpt2: attn.c_attn, attn.c_proj; mlp.c_fc, mlp.c_proj
- llama-like (Llama, Mistral, Qwen, OPT, ViT in transformers 5, ...): q/k/v_proj, o_proj or out_proj;
  gate_proj, up_proj or fc1, down_proj or fc2

Anything else falls back to every linear layer of the backbone. Only the backbone
(`model.<base_model_prefix>`) is searched: the classification head is trained in full
(`modules_to_save`), never adapted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from torch import nn
from transformers.pytorch_utils import Conv1D

# name -> (attention, MLP in, MLP out): regular expressions searched in full module names.
FAMILIES: dict[str, tuple[str, str, str]] = {
    "hfssl": (r"\.attn\.(qkv|out)$", r"\.mlp\.up$", r"\.mlp\.down$"),
    "bert": (r"\.(query|key|value)$|\.attention\.output\.dense$", r"\.intermediate\.dense$",
             r"(?<!\.attention)\.output\.dense$"),
    "deberta": (r"\.(query_proj|key_proj|value_proj)$|\.attention\.output\.dense$", r"\.intermediate\.dense$",
                r"(?<!\.attention)\.output\.dense$"),
    "distilbert": (r"\.(q_lin|k_lin|v_lin|out_lin)$", r"\.lin1$", r"\.lin2$"),
    "gpt2": (r"\.attn\.(c_attn|c_proj)$", r"\.mlp\.c_fc$", r"\.mlp\.c_proj$"),
    "llama-like": (r"\.(q_proj|k_proj|v_proj|o_proj|out_proj)$", r"\.(gate_proj|up_proj|fc1)$", r"\.(down_proj|fc2)$"),
}
ALL_LINEAR = "all-linear"


@dataclass(frozen=True)
class Targets:
    """Full names of the backbone's linear modules by role, and every linear module of the model."""

    family: str
    attention: tuple[str, ...]
    mlp_in: tuple[str, ...]
    mlp_out: tuple[str, ...]
    linear: tuple[str, ...]  # every linear-like module of the whole model, head included
    overridden: bool = False

    @property
    def all(self) -> tuple[str, ...]:
        """Every targeted module, in model order."""
        chosen = set(self.attention + self.mlp_in + self.mlp_out)
        return tuple(name for name in self.linear if name in chosen)

    def as_peft(self, names: tuple[str, ...]) -> list[str]:
        """The shortest name suffixes that select exactly `names` under peft's matching (exact or `.suffix`)."""
        return compress_names(names, self.linear)


def is_linear(module: nn.Module) -> bool:
    """Layers that LoRA-like methods adapt: nn.Linear and GPT-2's Conv1D."""
    return isinstance(module, (nn.Linear, Conv1D))


def linear_module_names(model: nn.Module) -> list[str]:
    """Full names of every linear-like module, in model order."""
    return [name for name, module in model.named_modules() if is_linear(module)]


def backbone_prefix(model: nn.Module) -> str:
    """`<base_model_prefix>.` when the model wraps a backbone under that attribute, else ''."""
    prefix = getattr(model, "base_model_prefix", "")
    return f"{prefix}." if prefix and isinstance(getattr(model, prefix, None), nn.Module) else ""


def head_modules(model: nn.Module) -> list[str]:
    """Top-level children with parameters outside the backbone: the task head (e.g. ["classifier"]).

    hfssl, BERT and ViT give ["classifier"], GPT-2 and Llama ["score"], DistilBERT ["pre_classifier", "classifier"].
    """
    prefix = backbone_prefix(model).rstrip(".")
    heads = [name for name, child in model.named_children()
             if name != prefix and any(True for _ in child.parameters())]
    if not heads:
        raise ValueError(
            f"{type(model).__name__} has no trainable head outside its backbone {prefix!r}; load it with "
            "AutoModelForSequenceClassification or AutoModelForImageClassification."
        )
    return heads


def detect_targets(model: nn.Module) -> Targets:
    """Recognize the family by its layer names and return its attention and MLP projections."""
    linear = tuple(linear_module_names(model))
    prefix = backbone_prefix(model)
    backbone = [name for name in linear if name.startswith(prefix)] if prefix else list(linear)
    for family, patterns in FAMILIES.items():
        roles = [tuple(n for n in backbone if re.search(p, "." + n)) for p in patterns]
        if roles[0]:
            return Targets(family, *roles, linear=linear)
    heads = head_modules(model)
    fallback = tuple(n for n in backbone if not any(matches_module(n, h) for h in heads))
    if not fallback:
        raise ValueError(f"{type(model).__name__} has no linear layers in its backbone for a PEFT method to adapt.")
    return Targets(ALL_LINEAR, attention=fallback, mlp_in=(), mlp_out=(), linear=linear)


def matches_module(name: str, module: str) -> bool:
    """`name` is `module` or lies inside it."""
    return name == module or name.startswith(module + ".")


def matches(name: str, target: str) -> bool:
    """peft's rule for one list entry: the full name, or a suffix after a dot."""
    return name == target or name.endswith("." + target)


def resolve_targets(model: nn.Module, target_modules: list[str] | None = None) -> Targets:
    """Detected targets, or the user's `target_modules` (peft-style names or suffixes) checked against the model.

    Raises:
        ValueError: an entry matches no linear module; the message lists the linear modules that exist.
    """
    detected = detect_targets(model)
    if not target_modules:
        return detected
    unmatched = [t for t in target_modules if not any(matches(n, t) for n in detected.linear)]
    if unmatched:
        raise ValueError(
            f"--target-modules {', '.join(map(repr, unmatched))} match no linear module of {type(model).__name__}. "
            f"Its linear modules are: {', '.join(describe_linear(detected.linear))}. "
            "Give some of these (a name matches a full module name or its ending after a dot)."
        )
    chosen = [n for n in detected.linear if any(matches(n, t) for t in target_modules)]
    mlp_in, mlp_out = set(detected.mlp_in), set(detected.mlp_out)
    return Targets(
        f"{detected.family} (overridden)",
        attention=tuple(n for n in chosen if n not in mlp_in and n not in mlp_out),
        mlp_in=tuple(n for n in chosen if n in mlp_in),
        mlp_out=tuple(n for n in chosen if n in mlp_out),
        linear=detected.linear,
        overridden=True,
    )


def describe_linear(names: tuple[str, ...] | list[str]) -> list[str]:
    """Linear module names with the layer index dropped ("model.layers.3.attn.qkv" -> "attn.qkv"), deduplicated."""
    seen: dict[str, None] = {}
    for name in names:
        parts = name.split(".")
        digits = [i for i, part in enumerate(parts) if part.isdigit()]
        seen[".".join(parts[digits[-1] + 1:]) if digits else name] = None
    return list(seen)


def compress_names(names: tuple[str, ...] | list[str], linear: tuple[str, ...] | list[str]) -> list[str]:
    """Shortest suffixes (of two parts or more) that together match exactly `names` among `linear`
    ("model.layers.0.attn.qkv", "model.layers.1.attn.qkv" -> ["attn.qkv"]); a name no suffix isolates stays in full."""
    wanted, result = set(names), []
    for name in names:
        if any(matches(name, s) for s in result):
            continue
        parts = name.split(".")
        for k in range(min(2, len(parts)), len(parts) + 1):  # two parts at least: "attn.qkv" reads better than "qkv"
            suffix = ".".join(parts[-k:])
            if all(n in wanted for n in linear if matches(n, suffix)):
                result.append(suffix)
                break
    return result

"""Transformer blocks shared by the hfssl text and vision backbones.

The blocks read these config fields: hidden_size, num_attention_heads, intermediate_size, hidden_act,
use_bias, hidden_dropout_prob, attention_dropout_prob, layer_norm_eps, and `_attn_implementation`
("eager" or "sdpa", set by transformers from `attn_implementation=`).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .cpu_gemm import Linear
from .input_checks import describe

try:  # transformers >= 4.52: layers that `gradient_checkpointing_enable()` switches to recomputation
    from transformers.modeling_layers import GradientCheckpointingLayer
except ImportError:  # pragma: no cover - older transformers: no checkpointing, the model still loads
    GradientCheckpointingLayer = nn.Module


class RotaryEmbedding(nn.Module):
    """Rotary position embedding (Su et al. 2021, RoFormer). Computed on the fly: no parameters, no buffers."""

    def __init__(self, head_dim: int, theta: float = 10000.0):
        super().__init__()
        self.head_dim = head_dim
        self.theta = theta

    def forward(self, position_ids: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """position_ids: (batch or 1, seq) -> cos, sin: (batch or 1, 1, seq, head_dim / 2), one angle per pair."""
        exponent = torch.arange(0, self.head_dim, 2, device=position_ids.device, dtype=torch.float32) / self.head_dim
        inv_freq = 1.0 / (self.theta**exponent)  # (head_dim / 2,)
        angles = (position_ids.float()[..., None] * inv_freq)[:, None]  # (b, 1, t, head_dim / 2)
        return angles.cos().to(dtype), angles.sin().to(dtype)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x: (b, heads, t, head_dim); rotates each adjacent pair of features (2i, 2i + 1) by angle i of its position.

    This is RoFormer's interleaved layout. In fp32/fp64 the rotation is one complex multiplication: in a
    micro-benchmark of an MLM training step on CPU (d=256, T=128, 2 threads) the split-halves form
    (`rotate_half`) cost 11% of the step against learned positions, this one 0-3%. Compiled, too: under
    `torch.compile` the real-arithmetic form below made the same MLM step 13% slower than the complex one
    (inductor's kernel for the strided pairs loses to the complex multiplication it leaves to aten). Other
    dtypes (bf16, fp16) take the rotation in real arithmetic; all give the same result.
    """
    pairs = x.unflatten(-1, (-1, 2))  # (b, h, t, head_dim / 2, 2), a view
    if x.dtype in (torch.float32, torch.float64) and cos.dtype == x.dtype:
        # view_as_complex needs the pair dimension contiguous; a permuted q/k projection already has it.
        rotated = torch.view_as_complex(pairs if pairs.stride(-1) == 1 else pairs.contiguous()) * torch.complex(cos, sin)
        return torch.view_as_real(rotated).flatten(-2)
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    even, odd = pairs.unbind(-1)
    return torch.stack((even * cos - odd * sin, odd * cos + even * sin), dim=-1).flatten(-2)


def build_attention_mask(
    attention_mask: torch.Tensor | None, query_length: int, past_length: int, causal: bool
) -> tuple[torch.Tensor | None, bool]:
    """A boolean mask (b, 1, q, k) where True means "may attend", or None plus an `is_causal` flag.

    attention_mask: (b, past + q) with 1 for real tokens and 0 for padding, or None.
    Returns (None, causal) when the plain causal or full pattern is exact, which lets SDPA use its fast path.
    """
    # Whether the mask is all ones is a data-dependent branch: under torch.compile it would break the graph
    # (and recompile per outcome), so a compiled model always applies the mask it was given.
    no_padding = attention_mask is None or (not torch.compiler.is_compiling() and bool(attention_mask.all()))
    if no_padding and (not causal or past_length == 0 or query_length == 1):
        return None, causal and query_length > 1
    key_length = past_length + query_length
    device = attention_mask.device if attention_mask is not None else None
    mask = torch.ones(1, 1, query_length, key_length, dtype=torch.bool, device=device)
    if causal:
        query_pos = torch.arange(past_length, key_length, device=device)[:, None]  # (q, 1)
        mask = mask & (torch.arange(key_length, device=device)[None, :] <= query_pos)  # (1, 1, q, k)
    if attention_mask is not None:
        mask = mask & attention_mask[:, None, None, :key_length].bool()  # (b, 1, q, k)
    # A row with nothing to attend to (a padding query under a causal mask) would give NaN;
    # let it attend everywhere instead: its output is never used.
    return mask | ~mask.any(dim=-1, keepdim=True), False


def attention_probs(q: torch.Tensor, k: torch.Tensor, mask: torch.Tensor | None, is_causal: bool) -> torch.Tensor:
    """Softmax attention weights before dropout: q (b, h, q, d), k (b, h, k, d) -> (b, h, q, k)."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (b, h, q, k)
    if is_causal:
        q_len, k_len = scores.shape[-2:]
        mask = torch.ones(q_len, k_len, dtype=torch.bool, device=q.device).tril(k_len - q_len)
    if mask is not None:
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    return scores.softmax(dim=-1)


def prepared_attention_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """A 4-D mask (b or 1, 1, q, k) as transformers passes it (boolean or 0/1 with True = "may attend", or additive
    float: 0 to attend, a large negative number not to) -> boolean (b or 1, 1, q, k), True = "may attend"."""
    mask = attention_mask == 0 if attention_mask.is_floating_point() else attention_mask.bool()
    # As in `build_attention_mask`: a query that may attend to nothing (padding) attends everywhere instead.
    return mask | ~mask.any(dim=-1, keepdim=True)


def eager_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, is_causal: bool, dropout: float
) -> torch.Tensor:
    """Reference attention with the same semantics as `F.scaled_dot_product_attention`. Shapes (b, h, t, d)."""
    probs = F.dropout(attention_probs(q, k, mask, is_causal), p=dropout, training=dropout > 0)
    return probs @ v  # (b, h, q, d)


class Attention(nn.Module):
    """Multi-head self-attention with a fused QKV projection and an optional KV cache."""

    def __init__(self, config, layer_idx: int = 0):
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.qkv = Linear(config.hidden_size, 3 * config.hidden_size, bias=config.use_bias)
        self.out = Linear(config.hidden_size, config.hidden_size, bias=config.use_bias)

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None = None,
        is_causal: bool = False,
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,
        cache=None,
        keep: torch.LongTensor | None = None,
        output_attentions: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """x: (b, t, hidden) -> (b, t, hidden); with `keep` (b, k) -> (b, k, hidden), see `Block.forward`.

        output_attentions: also return the attention weights (b, heads, t, past + t), computed on the eager path
        (equal outputs) whatever the attention implementation.
        """
        b, t, _ = x.shape
        # The qkv module is called (not its weight read): PEFT adapters (LoRA, DoRA, IA3) wrap it.
        q, k, v = self.qkv(x).view(b, t, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)  # (b, h, t, d)
        if keep is not None:  # queries at the kept positions only; keys and values everywhere
            if cache is not None:
                raise ValueError("An attention layer with a KV cache computes every position; pass keep=None.")
            q = q.gather(2, keep[:, None, :, None].expand(-1, q.shape[1], -1, q.shape[-1]))  # (b, h, k, d)
            if rope is not None:
                rope_q = tuple(r.expand(b, -1, -1, -1).gather(2, keep[:, None, :, None].expand(-1, 1, -1, r.shape[-1]))
                               for r in rope)  # cos, sin: (b, 1, k, d / 2)
                q, k = apply_rotary(q, *rope_q), apply_rotary(k, *rope)
            mask, is_causal = _kept_rows(mask, is_causal, keep, t), False
        elif rope is not None:
            q, k = apply_rotary(q, *rope), apply_rotary(k, *rope)
        if cache is not None:
            k, v = cache.update(k, v, self.layer_idx)  # (b, h, past + t, d)
        dropout = self.config.attention_dropout_prob if self.training else 0.0
        if output_attentions:
            probs = attention_probs(q, k, mask, is_causal)  # (b, h, t, past + t)
            y = F.dropout(probs, p=dropout, training=dropout > 0) @ v
            return self.out(y.transpose(1, 2).reshape(b, q.shape[2], -1)), probs
        if getattr(self.config, "_attn_implementation", "sdpa") == "eager":
            y = eager_attention(q, k, v, mask, is_causal, dropout)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout, is_causal=is_causal)
        return self.out(y.transpose(1, 2).reshape(b, q.shape[2], -1))  # (b, t or k, hidden)


def _kept_rows(mask: torch.Tensor | None, is_causal: bool, keep: torch.LongTensor, length: int) -> torch.Tensor | None:
    """The rows at the queries `keep` (b, k) of an attention mask (b or 1, 1, t, t) and/or of the causal pattern:
    (b, 1, k, t), True where the query may attend; None where every query sees every key."""
    rows = None
    if mask is not None:
        rows = mask.expand(keep.shape[0], -1, -1, -1).gather(2, keep[:, None, :, None].expand(-1, 1, -1, length))
    if is_causal:
        causal = torch.arange(length, device=keep.device)[None, None, None, :] <= keep[:, None, :, None]
        rows = causal if rows is None else rows & causal
    return rows


class MLP(nn.Module):
    """Feed-forward layer: GELU, or SwiGLU (Shazeer 2020) with the gate and value in one projection."""

    def __init__(self, config):
        super().__init__()
        self.gated = config.hidden_act == "swiglu"
        width = config.intermediate_size * (2 if self.gated else 1)
        self.up = Linear(config.hidden_size, width, bias=config.use_bias)
        self.down = Linear(config.intermediate_size, config.hidden_size, bias=config.use_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (..., hidden) -> (..., hidden)."""
        h = self.up(x)
        if self.gated:
            gate, value = h.chunk(2, dim=-1)
            h = F.silu(gate) * value
        else:
            h = F.gelu(h)
        return self.down(h)


class Block(GradientCheckpointingLayer):
    """Pre-norm transformer block: x + attn(norm(x)), then x + mlp(norm(x)).

    With `model.gradient_checkpointing_enable()` its activations are recomputed in the backward pass
    (the hidden state is passed positionally, as checkpointing needs)."""

    def __init__(self, config, layer_idx: int = 0):
        super().__init__()
        self.norm1 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps, bias=config.use_bias)
        self.attn = Attention(config, layer_idx)
        self.norm2 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps, bias=config.use_bias)
        self.mlp = MLP(config)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(
        self, x, mask=None, is_causal=False, rope=None, cache=None, keep=None, output_attentions=False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """x: (b, t, hidden) -> (b, t, hidden).

        keep (b, k), optional: compute the output at these positions only, (b, k, hidden). Keys and values still
        come from every position, so each kept row equals the full layer's row at that position, while the
        attention output, the MLP and the norms run on k rows instead of t (the last layer of a masked LM,
        whose loss reads only the masked positions).
        output_attentions: return (output, attention weights (b, heads, t, past + t)) instead.
        """
        residual = x if keep is None else x.gather(1, keep[..., None].expand(-1, -1, x.shape[-1]))
        attended = self.attn(self.norm1(x), mask, is_causal, rope, cache, keep=keep, output_attentions=output_attentions)
        if output_attentions:
            attended, probs = attended
        x = residual + self.dropout(attended)
        x = x + self.dropout(self.mlp(self.norm2(x)))
        return (x, probs) if output_attentions else x


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor | None, how: str) -> torch.Tensor:
    """hidden: (b, t, d), attention_mask: (b, t) or None -> (b, d) by "mean", "cls" (first) or "last" real token."""
    if how == "cls":
        return hidden[:, 0]
    if attention_mask is None:
        return hidden.mean(dim=1) if how == "mean" else hidden[:, -1]
    if attention_mask.dim() != 2:
        raise ValueError(f"{how!r} pooling needs the (batch, sequence) padding mask, got an attention_mask of shape "
                         f"{tuple(attention_mask.shape)}.")
    mask = attention_mask.to(hidden.dtype)  # (b, t)
    if how == "mean":
        return (hidden * mask[..., None]).sum(dim=1) / mask.sum(dim=1, keepdim=True).clamp(min=1.0)
    # The last real token, with left or right padding alike: the highest position whose mask is 1.
    positions = torch.arange(hidden.shape[1], device=hidden.device)
    last = (attention_mask.long() * positions).argmax(dim=-1)  # (b,)
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]


PROBLEM_TYPES = ("regression", "single_label_classification", "multi_label_classification")


def classification_loss(logits: torch.Tensor, labels: torch.Tensor, problem_type: str | None = None) -> torch.Tensor:
    """Loss of a classification head on logits (b, num_labels), by `config.problem_type` as in transformers:
    "regression" (mean squared error; labels (b,) when num_labels == 1, else (b, num_labels)),
    "single_label_classification" (cross-entropy; labels (b,) class ids) or "multi_label_classification"
    (binary cross-entropy with logits; labels (b, num_labels) of 0/1). None infers it: regression when
    num_labels == 1, single-label for integer labels, multi-label for float ones."""
    if not torch.is_tensor(labels):
        raise ValueError(f"labels must be a tensor, got {describe(labels)}.")
    batch, num_labels = logits.shape
    if problem_type is None:
        problem_type = infer_problem_type(num_labels, labels)
    if problem_type not in PROBLEM_TYPES:
        raise ValueError(f"problem_type={problem_type!r} is not supported; choose one of: {', '.join(PROBLEM_TYPES)}.")
    if problem_type == "single_label_classification":
        if tuple(labels.shape) != (batch,) or labels.is_floating_point() or labels.dtype == torch.bool:
            raise ValueError(
                f"Single-label classification needs labels of shape (batch,) = ({batch},) holding integer class ids "
                f"in [0, {num_labels}), got {describe(labels)}. For multi-label targets pass floats of shape "
                f"(batch, num_labels) = ({batch}, {num_labels}).")
        return F.cross_entropy(logits, labels.long())
    if problem_type == "regression" and num_labels == 1:
        if labels.numel() != batch or labels.dim() > 2:
            raise ValueError(f"Regression with num_labels=1 needs labels of shape (batch,) = ({batch},), got "
                             f"{describe(labels)}.")
        return F.mse_loss(logits.squeeze(-1), labels.reshape(batch).to(logits.dtype))
    if tuple(labels.shape) != (batch, num_labels):
        raise ValueError(f"{problem_type} needs labels of shape (batch, num_labels) = ({batch}, {num_labels}), got "
                         f"{describe(labels)}.")
    if problem_type == "regression":
        return F.mse_loss(logits, labels.to(logits.dtype))
    return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))


def infer_problem_type(num_labels: int, labels: torch.Tensor) -> str:
    """The problem type transformers infers from the labels when `config.problem_type` is None: "regression" for
    num_labels == 1, "multi_label_classification" for float labels, "single_label_classification" for integer ones."""
    if num_labels == 1:
        return "regression"
    return "multi_label_classification" if labels.is_floating_point() else "single_label_classification"


def classifier_loss(config, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """`classification_loss` of a classification head by `config.problem_type`; where that is None, the type inferred
    from the labels is recorded on the config, as transformers' own heads do, so that `save_pretrained` keeps it and
    the text- and image-classification pipelines score a multi-label head with sigmoids, not a softmax."""
    problem_type = config.problem_type
    if problem_type is None and torch.is_tensor(labels):
        problem_type = infer_problem_type(logits.shape[-1], labels)
    loss = classification_loss(logits, labels, problem_type)
    if config.problem_type is None and not torch.compiler.is_compiling():  # after the labels passed the checks
        config.problem_type = problem_type
    return loss


def keep_saved_auto_map(model) -> None:
    """Drop from `model.config.auto_map` the classes whose module `save_pretrained` will not write beside the weights.

    save_pretrained copies the model's module, the modules it imports and the config's. The config names more: a
    joint-embedding checkpoint (SimCLR, DINO, SimCSE, ...) names its wrapper's module as AutoModelForPreTraining, so a
    backbone or classifier loaded from it (a fine-tuned one) would be saved naming a file its folder lacks:
    `trust_remote_code` loading of that class fails, and `hfssl publish` refuses the folder."""
    auto_map = getattr(model.config, "auto_map", None)
    files = [getattr(sys.modules.get(type(obj).__module__), "__file__", None) for obj in (model, model.config)]
    if not auto_map or not all(files):  # no code is copied for a class defined in __main__: leave it as it is
        return
    from transformers.dynamic_module_utils import get_relative_import_files

    saved = {Path(name).stem for file in files for name in (file, *get_relative_import_files(file))}

    def written(ref) -> bool:  # "module.Class", or "repo--module.Class" for another repository's code
        return not isinstance(ref, str) or "--" in ref or ref.split(".")[0] in saved

    model.config.auto_map = {key: ref for key, ref in auto_map.items() if written(ref)}


# Where transformers' `from_pretrained` arguments say where the code comes from (get_class_from_dynamic_module's).
_CODE_SOURCE_KWARGS = ("cache_dir", "force_download", "proxies", "token", "revision", "local_files_only", "code_revision")


def remote_pretraining_class(cls, pretrained_model_name_or_path, kwargs: dict):
    """The AutoModelForPreTraining class the checkpoint's auto_map names, where transformers handed out remote-code
    `cls` for a checkpoint that names another; None where `cls` is the one (or hfssl is installed).

    Without hfssl, `AutoModelForPreTraining.from_pretrained(path, trust_remote_code=True)` registers the class it
    loads for the checkpoint's configuration class, and a configuration file byte for byte the same in another
    folder of the same name (every run's `model/`) gives the same class. Later checkpoints are then served from
    that registration instead of their own auto_map: the MAE head for a DINO checkpoint, or the joint-embedding
    wrapper for an MAE one. The Auto classes pass `trust_remote_code`; a direct `from_pretrained` call is left as
    it is.
    """
    from transformers.utils.hub import TRANSFORMERS_DYNAMIC_MODULE_NAME

    config = kwargs.get("config")
    if not kwargs.get("trust_remote_code") or not cls.__module__.startswith(f"{TRANSFORMERS_DYNAMIC_MODULE_NAME}."):
        return None
    ref = (getattr(config, "auto_map", None) or {}).get("AutoModelForPreTraining")
    if not isinstance(ref, str) or ref.rsplit(".", 1)[-1] == cls.__name__:
        return None
    from transformers.dynamic_module_utils import get_class_from_dynamic_module

    source = {key: kwargs[key] for key in _CODE_SOURCE_KWARGS if key in kwargs}
    return get_class_from_dynamic_module(ref, pretrained_model_name_or_path, **source)

"""PEFT methods by name: a plain dict from name to a builder of the method's peft config.

`get_method("lora")` returns the entry; `build_peft_config(method, options, targets, head, task_type)`
turns it into a `peft.PeftConfig` (or None for full fine-tuning). Methods outside the table are
still available by their peft name (`PeftType`, e.g. "vera", "boft", "adalora"): their config gets
the detected target modules, the head as `modules_to_save`, `r` where the method has one, and any
`--peft-option key=value`. Prompt-learning methods (prompt_tuning, p_tuning, prefix_tuning, ...) get
DEFAULT_VIRTUAL_TOKENS virtual tokens, and AdaLoRA its `total_step` from the run's number of optimizer steps.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from peft import IA3Config, LoHaConfig, LoKrConfig, LoraConfig, PeftConfig, PeftType, PromptLearningConfig
from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING

from .targets import Targets

DEFAULT_RANK = 8
DEFAULT_VIRTUAL_TOKENS = 20  # prompt-learning methods: virtual tokens prepended to every input


@dataclass
class MethodOptions:
    """What the user can set for a method; `extra` holds further fields of the method's peft config."""

    r: int | None = None  # adapter rank (capacity and size grow with it); None: 8, or the peft default elsewhere
    alpha: float = 16.0  # scaling numerator: the update is scaled by alpha / r
    dropout: float = 0.05  # dropout on the adapter's input
    target_modules: list[str] | None = None  # None: detected per model family (hfssl.finetune.targets)
    extra: dict[str, Any] = field(default_factory=dict)
    training_steps: int | None = None  # optimizer steps of the run, set by hfssl (AdaLoRA's total_step)

    def __post_init__(self) -> None:
        if self.r is not None and (not isinstance(self.r, int) or self.r < 1):
            raise ValueError(f"--lora-r must be a positive integer, got {self.r!r}.")
        if self.alpha <= 0:
            raise ValueError(f"--lora-alpha must be positive, got {self.alpha!r}.")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"--lora-dropout must be in [0, 1), got {self.dropout!r}.")


Builder = Callable[[MethodOptions, Targets, list[str], "str | None"], "PeftConfig | None"]


@dataclass(frozen=True)
class PeftMethod:
    """One fine-tuning method: how to build its peft config and the learning rate that suits it."""

    name: str
    description: str
    build: Builder
    learning_rate: float
    config_class: type | None = None  # the peft config class, to check `extra` options against


def _lora(options: MethodOptions, targets: Targets, head: list[str], task_type: str | None,
          use_dora: bool = False) -> LoraConfig:
    return LoraConfig(
        task_type=task_type, r=options.r or DEFAULT_RANK, lora_alpha=options.alpha, lora_dropout=options.dropout,
        target_modules=targets.as_peft(targets.all), modules_to_save=head, use_dora=use_dora, **options.extra,
    )


def _dora(options: MethodOptions, targets: Targets, head: list[str], task_type: str | None) -> LoraConfig:
    return _lora(options, targets, head, task_type, use_dora=True)


def _ia3(options: MethodOptions, targets: Targets, head: list[str], task_type: str | None) -> IA3Config:
    # IA3 rescales keys, values and the input of the MLP's output projection (Liu et al. 2022).
    scaled = targets.all if targets.overridden else targets.attention + targets.mlp_out
    feedforward = targets.as_peft(tuple(n for n in targets.mlp_out if n in scaled))
    others = targets.as_peft(tuple(n for n in scaled if n not in targets.mlp_out))
    return IA3Config(task_type=task_type, target_modules=others + feedforward, feedforward_modules=feedforward,
                     modules_to_save=head, **options.extra)


def _loha(options: MethodOptions, targets: Targets, head: list[str], task_type: str | None) -> LoHaConfig:
    return LoHaConfig(task_type=task_type, r=options.r or DEFAULT_RANK, alpha=options.alpha,
                      module_dropout=options.dropout, target_modules=targets.as_peft(targets.all),
                      modules_to_save=head, **options.extra)


def _lokr(options: MethodOptions, targets: Targets, head: list[str], task_type: str | None) -> LoKrConfig:
    return LoKrConfig(task_type=task_type, r=options.r or DEFAULT_RANK, alpha=options.alpha,
                      module_dropout=options.dropout, target_modules=targets.as_peft(targets.all),
                      modules_to_save=head, **options.extra)


def _full(options: MethodOptions, targets: Targets, head: list[str], task_type: str | None) -> None:
    return None


# Learning rates suit the small encoders hfssl pretrains (measured in docs/finetune.md); adapters take larger
# steps than full fine-tuning because they start from zero and hold few parameters.
METHODS: dict[str, PeftMethod] = {
    "none": PeftMethod("none", "full fine-tuning: every parameter trains", _full, 3e-4),
    "lora": PeftMethod("lora", "LoRA, low-rank updates (Hu et al. 2021)", _lora, 2e-3, LoraConfig),
    "dora": PeftMethod("dora", "DoRA, LoRA with a learned magnitude (Liu et al. 2024)", _dora, 2e-3, LoraConfig),
    "ia3": PeftMethod("ia3", "IA3, learned rescaling vectors (Liu et al. 2022)", _ia3, 1e-2, IA3Config),
    "loha": PeftMethod("loha", "LoHa, Hadamard product of low-rank pairs (Hyeon-Woo et al. 2022)", _loha, 2e-3,
                       LoHaConfig),
    "lokr": PeftMethod("lokr", "LoKr, Kronecker-product updates (Yeh et al. 2023)", _lokr, 2e-3, LoKrConfig),
}


def _peft_type(name: str) -> PeftType | None:
    key = name.upper().replace("-", "_")
    return PeftType[key] if key in PeftType.__members__ and PeftType[key] in PEFT_TYPE_TO_CONFIG_MAPPING else None


def other_peft_methods() -> list[str]:
    """peft methods outside METHODS, by their lower-case peft name."""
    return sorted(t.value.lower() for t in PEFT_TYPE_TO_CONFIG_MAPPING if t.value.lower() not in METHODS)


def get_method(name: str) -> PeftMethod:
    """The method called `name` (case-insensitive); any other peft method by its peft name; else KeyError."""
    key = name.lower()
    if key in METHODS:
        return METHODS[key]
    peft_type = _peft_type(key)
    if peft_type is None:
        raise KeyError(
            f"Unknown PEFT method {name!r}; valid methods: {', '.join(METHODS)}, or any other peft method by name: "
            f"{', '.join(other_peft_methods())}."
        )
    config_class = PEFT_TYPE_TO_CONFIG_MAPPING[peft_type]
    return PeftMethod(key, f"peft {peft_type.value} with its defaults", _generic(config_class), 1e-3, config_class)


def _generic(config_class: type) -> Builder:
    """A builder for any peft config class: targets, head and rank where the class has those fields."""

    def build(options: MethodOptions, targets: Targets, head: list[str], task_type: str | None) -> PeftConfig:
        fields = {f.name for f in dataclasses.fields(config_class)}
        values: dict[str, Any] = {"task_type": task_type}
        if "target_modules" in fields:
            values["target_modules"] = targets.as_peft(targets.all)
        if "modules_to_save" in fields:
            values["modules_to_save"] = head
        if "r" in fields and options.r is not None:  # else the method's own default (OFT sizes blocks instead)
            values["r"] = options.r
        if issubclass(config_class, PromptLearningConfig):
            values["num_virtual_tokens"] = DEFAULT_VIRTUAL_TOKENS  # peft has no default
        if "total_step" in fields and "total_step" not in options.extra:  # AdaLoRA's rank-budget schedule
            if not options.training_steps:
                raise ValueError(
                    f"{config_class.__name__} needs the number of training steps; pass --peft-option total_step=N."
                )
            values["total_step"] = options.training_steps
        return config_class(**{**values, **options.extra})

    return build


def build_peft_config(method: PeftMethod, options: MethodOptions, targets: Targets, head: list[str],
                      task_type: str | None) -> PeftConfig | None:
    """The method's peft config for a model with these targets and head; None means full fine-tuning.

    Raises:
        ValueError: an `extra` option is not a field of the method's config (names the valid ones).
    """
    if options.extra and method.config_class is None:
        raise ValueError(f"--peft {method.name} takes no --peft-option; got {sorted(options.extra)}.")
    if method.config_class is not None:
        known = {f.name for f in dataclasses.fields(method.config_class)}
        unknown = sorted(set(options.extra) - known)
        if unknown:
            raise ValueError(
                f"{', '.join(unknown)} is not an option of {method.config_class.__name__}; valid options: "
                f"{', '.join(sorted(k for k in known if not k.startswith('_')))}."
            )
    return method.build(options, targets, list(head), task_type)  # peft extends modules_to_save in place


def describe_methods() -> str:
    """One line per method, for --help texts."""
    rows = [f"  {m.name:6} {m.description} (default learning rate {m.learning_rate:g})" for m in METHODS.values()]
    defaults = (f"  (prompt_tuning, p_tuning, prefix_tuning: {DEFAULT_VIRTUAL_TOKENS} virtual tokens unless "
                "--peft-option num_virtual_tokens=N; adalora: total_step is the run's number of optimizer steps)")
    return "\n".join([*rows, f"  any other peft method by name: {', '.join(other_peft_methods())}", defaults])

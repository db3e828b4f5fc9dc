"""PEFT methods by name: a plain dict from name to a builder of the method's peft config.

`get_method("lora")` returns the entry; `build_peft_config(method, options, targets, head, task_type)`
turns it into a `peft.PeftConfig` (or None for full fine-tuning). Methods outside the table are
still available by their peft name (`PeftType`, e.g. "vera", "boft", "adalora"): their config gets
the detected target modules, the head as `modules_to_save`, `r`, alpha and dropout where the method has such a
field (`PeftMethod.fields`), and any `--peft-option key=value`. Prompt-learning methods (prompt_tuning, p_tuning,
prefix_tuning, ...) get DEFAULT_VIRTUAL_TOKENS virtual tokens, and AdaLoRA its `total_step` from the run's number
of optimizer steps. `check_options` refuses an option the method has no use for (`--lora-r` with IA3, `--merge`
with full fine-tuning), so that nothing the user asks for is silently ignored.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from peft import IA3Config, LoHaConfig, LoKrConfig, LoraConfig, PeftConfig, PeftType, PromptLearningConfig
from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING

from . import method_table
from .method_table import DEFAULT_VIRTUAL_TOKENS, METHOD_TABLE
from .targets import Targets

DEFAULT_RANK = 8
DEFAULT_ALPHA = 16.0
DEFAULT_DROPOUT = 0.05
# MethodOptions field -> the flag that sets it, for messages.
FLAGS = {"r": "--lora-r", "alpha": "--lora-alpha", "dropout": "--lora-dropout", "target_modules": "--target-modules"}
# Config fields hfssl always sets itself; a --peft-option for them is refused with the way to set them.
RESERVED_FIELDS = {
    "task_type": "it follows --task",
    "modules_to_save": "hfssl trains and saves the classification head; the other modules are adapted or frozen",
    "target_modules": "pass --target-modules NAME ... instead (checked against the model's linear layers)",
}


@dataclass
class MethodOptions:
    """What the user can set for a method; `extra` holds further fields of the method's peft config."""

    # None means "not set by the user": the method's default applies, and a method without the field accepts it.
    r: int | None = None  # adapter rank (capacity and size grow with it); None: 8, or the peft default elsewhere
    alpha: float | None = None  # scaling numerator: the update is scaled by alpha / r; None: 16 or peft's default
    dropout: float | None = None  # dropout on the adapter's input; None: 0.05 or peft's default
    target_modules: list[str] | None = None  # None: detected per model family (hfssl.finetune.targets)
    extra: dict[str, Any] = field(default_factory=dict)
    training_steps: int | None = None  # optimizer steps of the run, set by hfssl (AdaLoRA's total_step)

    def __post_init__(self) -> None:
        if self.r is not None and (not isinstance(self.r, int) or self.r < 1):
            raise ValueError(f"--lora-r must be a positive integer, got {self.r!r}.")
        if self.alpha is not None and self.alpha <= 0:
            raise ValueError(f"--lora-alpha must be positive, got {self.alpha!r}.")
        if self.dropout is not None and not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"--lora-dropout must be in [0, 1), got {self.dropout!r}.")


Builder = Callable[[MethodOptions, Targets, list[str], "str | None"], "PeftConfig | None"]


@dataclass(frozen=True)
class PeftMethod:
    """One fine-tuning method: how to build its peft config and the learning rate that suits it.

    `fields` maps the MethodOptions the method uses ("r", "alpha", "dropout", "target_modules") to the peft config
    field each one sets; an option outside it is refused when the user sets it. `mergeable`: whether the trained
    adapter can be merged into the weights (prompt-learning methods and full fine-tuning cannot).
    """

    name: str
    description: str
    build: Builder
    learning_rate: float
    config_class: type | None = None  # the peft config class, to check `extra` options against
    fields: dict[str, str] = field(default_factory=dict)
    mergeable: bool = True


def _low_rank(options: MethodOptions, method_fields: dict[str, str]) -> dict[str, Any]:
    """Rank, alpha and dropout under the config's own field names, with hfssl's defaults."""
    return {method_fields["r"]: options.r or DEFAULT_RANK,
            method_fields["alpha"]: DEFAULT_ALPHA if options.alpha is None else options.alpha,
            method_fields["dropout"]: DEFAULT_DROPOUT if options.dropout is None else options.dropout}


LORA_FIELDS = {"r": "r", "alpha": "lora_alpha", "dropout": "lora_dropout", "target_modules": "target_modules"}
LYCORIS_FIELDS = {"r": "r", "alpha": "alpha", "dropout": "module_dropout", "target_modules": "target_modules"}


def _lora(options: MethodOptions, targets: Targets, head: list[str], task_type: str | None,
          use_dora: bool = False) -> LoraConfig:
    values = {"task_type": task_type, **_low_rank(options, LORA_FIELDS), "use_dora": use_dora,
              "target_modules": targets.as_peft(targets.all), "modules_to_save": head}
    return LoraConfig(**{**values, **options.extra})


def _dora(options: MethodOptions, targets: Targets, head: list[str], task_type: str | None) -> LoraConfig:
    return _lora(options, targets, head, task_type, use_dora=True)


def _ia3(options: MethodOptions, targets: Targets, head: list[str], task_type: str | None) -> IA3Config:
    # IA3 rescales keys, values and the input of the MLP's output projection (Liu et al. 2022).
    scaled = targets.all if targets.overridden else targets.attention + targets.mlp_out
    feedforward = targets.as_peft(tuple(n for n in targets.mlp_out if n in scaled))
    others = targets.as_peft(tuple(n for n in scaled if n not in targets.mlp_out))
    values = {"task_type": task_type, "target_modules": others + feedforward, "feedforward_modules": feedforward,
              "modules_to_save": head}
    return IA3Config(**{**values, **options.extra})


def _loha(options: MethodOptions, targets: Targets, head: list[str], task_type: str | None) -> LoHaConfig:
    values = {"task_type": task_type, **_low_rank(options, LYCORIS_FIELDS),
              "target_modules": targets.as_peft(targets.all), "modules_to_save": head}
    return LoHaConfig(**{**values, **options.extra})


def _lokr(options: MethodOptions, targets: Targets, head: list[str], task_type: str | None) -> LoKrConfig:
    values = {"task_type": task_type, **_low_rank(options, LYCORIS_FIELDS),
              "target_modules": targets.as_peft(targets.all), "modules_to_save": head}
    return LoKrConfig(**{**values, **options.extra})


def _full(options: MethodOptions, targets: Targets, head: list[str], task_type: str | None) -> None:
    return None


_BUILDERS = {"none": (_full, None, {}), "lora": (_lora, LoraConfig, LORA_FIELDS),
             "dora": (_dora, LoraConfig, LORA_FIELDS), "ia3": (_ia3, IA3Config, {"target_modules": "target_modules"}),
             "loha": (_loha, LoHaConfig, LYCORIS_FIELDS), "lokr": (_lokr, LoKrConfig, LYCORIS_FIELDS)}
# Names, descriptions and learning rates come from `method_table` (read by `--help` without importing peft).
METHODS: dict[str, PeftMethod] = {
    name: PeftMethod(name, description, _BUILDERS[name][0], rate, _BUILDERS[name][1], _BUILDERS[name][2],
                     mergeable=name != "none")
    for name, (description, rate) in METHOD_TABLE.items()
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
    fields = generic_fields(config_class, key)
    return PeftMethod(key, f"peft {peft_type.value} with its defaults", _generic(config_class, fields), 1e-3,
                      config_class, fields, mergeable=not issubclass(config_class, PromptLearningConfig))


def generic_fields(config_class: type, name: str) -> dict[str, str]:
    """The MethodOptions a peft config class has a field for: rank as `r` (not for AdaLoRA, whose `r` peft ignores
    in favour of init_r/target_r), alpha as `lora_alpha`/`alpha`/`<name>_alpha`, dropout as `lora_dropout`/
    `module_dropout`/`<name>_dropout`, and target modules (prompt-learning methods adapt no module)."""
    names = {f.name for f in dataclasses.fields(config_class)}
    candidates = {
        "r": () if "init_r" in names else ("r",),
        "alpha": ("lora_alpha", "alpha", f"{name}_alpha"),
        "dropout": ("lora_dropout", "module_dropout", f"{name}_dropout"),
        "target_modules": () if issubclass(config_class, PromptLearningConfig) else ("target_modules",),
    }
    found = {option: next((c for c in fields if c in names), None) for option, fields in candidates.items()}
    return {option: field_name for option, field_name in found.items() if field_name}


def _generic(config_class: type, method_fields: dict[str, str]) -> Builder:
    """A builder for any peft config class: targets, head, and rank, alpha and dropout where the user set them and
    the class has those fields (else the method's own defaults: OFT sizes blocks instead of a rank)."""

    def build(options: MethodOptions, targets: Targets, head: list[str], task_type: str | None) -> PeftConfig:
        fields = {f.name for f in dataclasses.fields(config_class)}
        values: dict[str, Any] = {"task_type": task_type}
        if "target_modules" in method_fields:
            values["target_modules"] = targets.as_peft(targets.all)
        if "modules_to_save" in fields:
            values["modules_to_save"] = head
        for option in ("r", "alpha", "dropout"):
            if option in method_fields and getattr(options, option) is not None:
                values[method_fields[option]] = getattr(options, option)
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
        ValueError: an option the method has no use for, or an `extra` option that is not a field of the method's
            config (names the valid ones); see `check_options`.
    """
    check_options(method, options)
    return method.build(options, targets, list(head), task_type)  # peft extends modules_to_save in place


def check_options(method: PeftMethod, options: MethodOptions, merge: bool = False, modality: str = "text") -> None:
    """Refuse what the user set that `method` would ignore or that clashes: a flag the method has no field for
    (`--lora-r` with IA3 or prompt tuning, anything with full fine-tuning), `--merge` for a method that cannot merge,
    and `--peft-option` fields that are unknown, set by hfssl, or also set by a flag; and a prompt-learning method
    for images (its virtual tokens are text tokens).

    Raises:
        ValueError: naming the flag, the method and the fix.
    """
    if modality == "image" and method.config_class is not None and issubclass(method.config_class,
                                                                              PromptLearningConfig):
        raise ValueError(f"--peft {method.name} prepends virtual tokens to a text input and has no image "
                         "classification form in peft; use an adapter method such as --peft lora or ia3, or none.")
    for option, flag in FLAGS.items():
        if getattr(options, option) is not None and option not in method.fields:
            raise ValueError(f"{flag} does not apply to --peft {method.name}: {_unused_reason(method, option)}")
    if merge and not method.mergeable:
        what = ("full fine-tuning has no adapter to merge, and model/ already holds the whole fine-tuned model. "
                "Drop --merge" if method.config_class is None else
                "its learned virtual tokens cannot be merged into the weights, so the run writes adapter/ and no "
                "model/ (or merged/). Drop --merge, or pick a method that merges, such as --peft lora")
        raise ValueError(f"--merge does not apply to --peft {method.name}: {what}.")
    _check_extra(method, options)


def _unused_reason(method: PeftMethod, option: str) -> str:
    """Why `method` has no use for `option`, and the fix."""
    flag = FLAGS[option]
    if method.config_class is None:
        return (f"full fine-tuning trains every parameter and has no adapter. Drop {flag}, or pick an adapter "
                "method such as --peft lora.")
    name = method.config_class.__name__
    if issubclass(method.config_class, PromptLearningConfig):
        return f"{name} learns virtual tokens and adapts no module, so it has no {_WORDS[option]}. Drop {flag}."
    fields = sorted(f.name for f in dataclasses.fields(method.config_class) if not f.name.startswith("_"))
    if option == "r" and "init_r" in fields:
        return (f"{name} ignores r: AdaLoRA starts every adapter at rank init_r and reallocates down to an average "
                "of target_r. Drop --lora-r and pass --peft-option init_r=N (and target_r=M).")
    related = [f for f in fields if _RELATED[option](f)]
    hint = f"; its related fields are {', '.join(related)}, set with --peft-option KEY=VALUE" if related else ""
    return f"{name} has no {_WORDS[option]}{hint}. Drop {flag}."


_WORDS = {"r": "rank", "alpha": "scaling alpha", "dropout": "adapter dropout", "target_modules": "target modules"}
_RELATED = {  # config fields a user who set the option may have meant
    "r": lambda name: name == "r" or name.endswith("_r") or "rank" in name,
    "alpha": lambda name: "alpha" in name,
    "dropout": lambda name: "dropout" in name,
    "target_modules": lambda name: "target" in name,
}


def _check_extra(method: PeftMethod, options: MethodOptions) -> None:
    if not options.extra:
        return
    if method.config_class is None:
        raise ValueError(f"--peft {method.name} takes no --peft-option (full fine-tuning has no peft config); got "
                         f"{sorted(options.extra)}.")
    known = {f.name for f in dataclasses.fields(method.config_class)}
    unknown = sorted(set(options.extra) - known)
    if unknown:
        raise ValueError(
            f"{', '.join(unknown)} is not an option of {method.config_class.__name__}; valid options: "
            f"{', '.join(sorted(k for k in known if not k.startswith('_')))}."
        )
    for key in sorted(options.extra):
        if key in RESERVED_FIELDS:
            raise ValueError(f"--peft-option {key}=... is not accepted: {RESERVED_FIELDS[key]}.")
    for option, field_name in method.fields.items():
        if field_name in options.extra and getattr(options, option) is not None:
            raise ValueError(f"--peft-option {field_name}=... and {FLAGS[option]} both set "
                             f"{method.config_class.__name__}.{field_name}; pass only one of them.")
    defaults = {f.name: f.default for f in dataclasses.fields(method.config_class)}
    if "init_r" in defaults and "target_r" in defaults:  # AdaLoRA prunes from init_r down to target_r
        init_r, target_r = (options.extra.get(k, defaults[k]) for k in ("init_r", "target_r"))
        if isinstance(init_r, int) and isinstance(target_r, int) and init_r < target_r:
            raise ValueError(f"--peft {method.name} starts at rank init_r and prunes down to an average of target_r, "
                             f"so init_r must be >= target_r; got init_r={init_r}, target_r={target_r}. Pass "
                             f"--peft-option target_r={init_r} (or a larger init_r).")


def describe_methods() -> str:
    """One line per method, for --help texts, with the installed peft's other methods by name."""
    return method_table.describe_methods(other_peft_methods())

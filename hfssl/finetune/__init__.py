"""Parameter-efficient fine-tuning (peft): LoRA by default, DoRA, IA3, full fine-tuning, any peft method by name.

`finetune(parent, task=..., output=...)` fine-tunes a run directory, a model folder or a Hub id for text or
image classification and writes a child run directory (adapter/ and base/ for peft methods, model/, run.json,
eval/finetune.json).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_attributes

if TYPE_CHECKING:
    from .api import finetune
    from .data import DataSpec, stdlib_docstrings_by_package, stratified_indices
    from .methods import METHODS, MethodOptions, PeftMethod, check_options, get_method
    from .targets import Targets, detect_targets, head_modules, resolve_targets

__all__ = [
    "METHODS",
    "DataSpec",
    "MethodOptions",
    "PeftMethod",
    "Targets",
    "check_options",
    "detect_targets",
    "finetune",
    "get_method",
    "head_modules",
    "resolve_targets",
    "stdlib_docstrings_by_package",
    "stratified_indices",
]
# Public name -> its submodule, imported on first use: `hfssl <command> --help` and argument errors need
# only the command's parser, not torch and transformers, which the submodules import.
_EXPORTS = {
    "finetune": ".api",
    "DataSpec": ".data",
    "stdlib_docstrings_by_package": ".data",
    "stratified_indices": ".data",
    "METHODS": ".methods",
    "MethodOptions": ".methods",
    "PeftMethod": ".methods",
    "check_options": ".methods",
    "get_method": ".methods",
    "Targets": ".targets",
    "detect_targets": ".targets",
    "head_modules": ".targets",
    "resolve_targets": ".targets",
}

__getattr__, __dir__ = lazy_attributes(__name__, _EXPORTS)

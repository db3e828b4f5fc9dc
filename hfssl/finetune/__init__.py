"""Parameter-efficient fine-tuning (peft): LoRA by default, DoRA, IA3, full fine-tuning, any peft method by name.

`finetune(parent, task=..., output=...)` fine-tunes a run directory, a model folder or a Hub id for text or
image classification and writes a child run directory (adapter/ and base/ for peft methods, model/, run.json,
eval/finetune.json).
"""

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

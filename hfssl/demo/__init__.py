"""Gradio demos for every objective and fine-tuned classifiers: fill-mask, generation, MAE reconstruction,
classification and gallery search.

`build_demo("runs/my-mlm").launch()` or `hfssl demo runs/my-mlm`. Gradio is imported only when an app is built,
so the loading and prediction functions work without the `demo` extra.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_attributes

if TYPE_CHECKING:
    from .app import build_demo, card_markdown, launch_demo
    from .command import add_demo_arguments, cmd_demo, run_demo_from_args
    from .inputs import DemoInputError, Limits
    from .kinds import DEMO_KINDS
    from .loading import LoadedModel, decide_kind, load_demo_model

__all__ = [
    "DEMO_KINDS",
    "DemoInputError",
    "Limits",
    "LoadedModel",
    "add_demo_arguments",
    "build_demo",
    "card_markdown",
    "cmd_demo",
    "decide_kind",
    "launch_demo",
    "load_demo_model",
    "run_demo_from_args",
]
# Public name -> its submodule, imported on first use: `hfssl <command> --help` and argument errors need
# only the command's parser, not torch and transformers, which the submodules import.
_EXPORTS = {
    "build_demo": ".app",
    "card_markdown": ".app",
    "launch_demo": ".app",
    "add_demo_arguments": ".command",
    "cmd_demo": ".command",
    "run_demo_from_args": ".command",
    "DEMO_KINDS": ".kinds",
    "DemoInputError": ".inputs",
    "Limits": ".inputs",
    "LoadedModel": ".loading",
    "decide_kind": ".loading",
    "load_demo_model": ".loading",
}

__getattr__, __dir__ = lazy_attributes(__name__, _EXPORTS)

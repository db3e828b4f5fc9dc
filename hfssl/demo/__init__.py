"""Gradio demos for every objective and fine-tuned classifiers: fill-mask, generation, MAE reconstruction,
classification and gallery search.

`build_demo("runs/my-mlm").launch()` or `hfssl demo runs/my-mlm`. Gradio is imported only when an app is built,
so the loading and prediction functions work without the `demo` extra.
"""

from .app import build_demo, card_markdown, launch_demo
from .command import add_demo_arguments, cmd_demo, run_demo_from_args
from .loading import DEMO_KINDS, DemoInputError, Limits, LoadedModel, decide_kind, load_demo_model

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

"""Tests of the scripts in scripts/, which are files rather than package modules."""

from __future__ import annotations

import contextlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import torch

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def load_script(filename: str) -> ModuleType:
    """scripts/<filename> executed as a module named hfssl_script_<stem>."""
    spec = importlib.util.spec_from_file_location(f"hfssl_script_{Path(filename).stem}", SCRIPTS / filename)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is created
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def torch_threads_restored():
    """The scripts set torch's thread count from --threads; give the rest of the test session its own back."""
    threads = torch.get_num_threads()
    try:
        yield
    finally:
        torch.set_num_threads(threads)

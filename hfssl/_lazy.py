"""Package attributes imported on first use, so that `import hfssl.<package>` (and with it `hfssl <command> --help`)
stays quick: the submodules import torch, transformers and datasets."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any


def lazy_attributes(package: str, exports: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A module `__getattr__` and `__dir__` for `package`: a name in `exports` (name -> relative submodule, e.g.
    ".api") is imported from its submodule on first use, any other name is tried as a submodule, and both are
    kept on the package afterwards.

        __getattr__, __dir__ = lazy_attributes(__name__, {"evaluate_run": ".api"})
    """
    module = sys.modules[package]

    def __getattr__(name: str) -> Any:
        if name in exports:
            value = getattr(importlib.import_module(exports[name], package), name)
        elif name.startswith("__"):
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        else:
            try:
                value = importlib.import_module(f".{name}", package)
            except ModuleNotFoundError as error:
                if error.name != f"{package}.{name}":
                    raise
                raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        setattr(module, name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(module)) | set(getattr(module, "__all__", ())))

    return __getattr__, __dir__

"""Publishing to the Hugging Face Hub: runs (models and PEFT adapters) and the demo Space, one commit each.

`publish_run` and `publish_space` talk to the Hub through `huggingface_hub.HfApi`; `LocalHub`
(`hfssl.hub.local_server`) is a small Hub-compatible server for testing publishing pipelines offline.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_attributes

if TYPE_CHECKING:
    from .client import PublishError
    from .publish import build_repo_files, publish_run
    from .space import build_space_files, publish_space

__all__ = ["PublishError", "build_repo_files", "build_space_files", "publish_run", "publish_space"]
# Public name -> its submodule, imported on first use: `hfssl <command> --help` and argument errors need
# only the command's parser, not torch and transformers, which the submodules import.
_EXPORTS = {
    "PublishError": ".client",
    "build_repo_files": ".publish",
    "publish_run": ".publish",
    "build_space_files": ".space",
    "publish_space": ".space",
}

__getattr__, __dir__ = lazy_attributes(__name__, _EXPORTS)

"""Publishing to the Hugging Face Hub: runs (models and PEFT adapters) and the demo Space, one commit each.

`publish_run` and `publish_space` talk to the Hub through `huggingface_hub.HfApi`; `LocalHub`
(`hfssl.hub.local_server`) is a small Hub-compatible server for testing publishing pipelines offline.
"""

from .client import PublishError
from .publish import build_repo_files, publish_run
from .space import build_space_files, publish_space

__all__ = ["PublishError", "build_repo_files", "build_space_files", "publish_run", "publish_space"]

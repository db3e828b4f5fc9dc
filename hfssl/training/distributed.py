"""The running process group, as the pretraining code asks about it: one process when there is none."""

from __future__ import annotations

import os

import torch.distributed as dist


def group_world_size() -> int:
    """Processes of the running torch.distributed group; 1 without one."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def group_rank() -> int:
    """This process's rank in the running group; 0 without one."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main_process() -> bool:
    """True on the process that writes run directories: global rank 0, or the only process there is.
    Before the process group exists, the launcher's RANK variable says (torchrun and accelerate set it)."""
    if dist.is_available() and dist.is_initialized():
        return group_rank() == 0
    return int(os.environ.get("RANK", "0")) == 0

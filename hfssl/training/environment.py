"""What a run records about the software and hardware it ran on."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys

import torch

PACKAGES = ("hfssl", "torch", "transformers", "datasets", "tokenizers", "accelerate", "huggingface_hub", "peft")


def versions() -> dict[str, str | None]:
    """Python and the installed versions of the packages a run depends on (None when absent)."""
    found: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def hardware() -> dict[str, object]:
    """CPU, thread count, the library of hfssl's float32 CPU products, and accelerators visible to this process."""
    from hfssl.models.cpu_gemm import cpu_gemm_backend

    info: dict[str, object] = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cpu_gemm": cpu_gemm_backend(),  # "onednn" or "aten" (MKL): hfssl.models.cpu_gemm
        "cuda_devices": [],
    }
    if torch.cuda.is_available():
        info["cuda_devices"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    if sys.platform == "darwin" and torch.backends.mps.is_available():
        info["mps"] = True
    return info

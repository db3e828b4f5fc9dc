"""Test-suite setup: offline, isolated caches, and the shared real data when it is beside the checkout."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# huggingface_hub and datasets read these at import time, so they are set before anything imports them.
_CACHE_ROOT = Path(tempfile.mkdtemp(prefix="hfssl-tests-"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HOME", str(_CACHE_ROOT / "hf_home"))
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # pytest-xdist runs one test process per core: each (and the processes its tests start) keeps to one thread, so
    # the processes do not fight over the cores. Set before torch is imported, which reads it once.
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402

DEFAULT_DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def shared_data_dir() -> Path | None:
    """HFSSL_DATA_DIR, else ../shared/data beside the checkout, else None."""
    path = Path(os.environ.get("HFSSL_DATA_DIR", DEFAULT_DATA_DIR))
    return path if path.is_dir() else None


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared real-data folder; tests that need it are skipped where it is absent."""
    path = shared_data_dir()
    if path is None:
        pytest.skip("shared data not found; set HFSSL_DATA_DIR to the folder of ../shared/data")
    return path


@pytest.fixture(autouse=True)
def _cpu_gemm_setting_restored():
    """Each test starts from $HFSSL_CPU_GEMM: a benchmark script's main(), run in-process (also by a module-scoped
    fixture, which runs before this one), picks hfssl's CPU matmul library for the whole process."""
    from hfssl.models import cpu_gemm

    cpu_gemm.set_cpu_gemm_backend(None)
    yield
    cpu_gemm.set_cpu_gemm_backend(None)

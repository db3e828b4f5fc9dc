"""Tiny run directories for every demo kind, and Gradio apps launched on 127.0.0.1 that never phone home."""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

# Read by gradio at import and launch time: no analytics, no version check, temporary files in a test folder.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["GRADIO_RUN_HISTORY"] = "False"
os.environ.setdefault("GRADIO_TEMP_DIR", tempfile.mkdtemp(prefix="hfssl-gradio-"))
os.environ["GRADIO_SHARE"] = "False"
# Calls to the local apps must never go through a proxy.
_LOCAL = "127.0.0.1,localhost"
os.environ["NO_PROXY"] = os.environ["no_proxy"] = ",".join(filter(None, [os.environ.get("NO_PROXY"), _LOCAL]))

import pytest  # noqa: E402
import torch  # noqa: E402

pytest.importorskip("gradio", reason="the demo tests need the demo extra: pip install 'hfssl[demo]'")

import hfssl  # noqa: E402, F401
from hfssl.data.corpora import stdlib_docstrings  # noqa: E402
from hfssl.data.pixels import build_image_processor  # noqa: E402
from hfssl.data.tokenizer import train_tokenizer  # noqa: E402
from hfssl.models import (  # noqa: E402
    HfsslTextConfig,
    HfsslTextForCausalLM,
    HfsslTextForMaskedLM,
    HfsslVisionConfig,
    HfsslVisionForMaskedImageModeling,
    HfsslVisionModel,
)
from hfssl.training.rundir import RunDirectory  # noqa: E402

TINY_TEXT = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64,
             "max_position_embeddings": 128}
TINY_VISION = {"image_size": 16, "patch_size": 4, "num_channels": 1, "hidden_size": 32, "num_hidden_layers": 1,
               "num_attention_heads": 2, "intermediate_size": 64, "decoder_hidden_size": 32,
               "decoder_num_hidden_layers": 1, "decoder_num_attention_heads": 2, "decoder_intermediate_size": 64,
               "pooling": "mean"}
EVAL_SECTION = {"linear_probe": {"accuracy": 0.8125, "dataset": "rotten_tomatoes", "details": {"k": 20}},
                "knn": {"accuracy": 0.7}}
AUDIT_SECTION = {"crows_pairs": {"stereotype_score": 0.55, "pairs": 1018}}


def _text_run(path: Path, objective: str, kind: str, model_class) -> Path:
    tokenizer = train_tokenizer(stdlib_docstrings()[:500], kind, vocab_size=1000, model_max_length=128)
    torch.manual_seed(0)
    config = HfsslTextConfig(
        vocab_size=len(tokenizer), is_causal=objective == "clm", pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.cls_token_id,
        eos_token_id=tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id,
        **TINY_TEXT,
    )
    run = RunDirectory(path)
    path.mkdir(parents=True)
    run.save_model(model_class(config), tokenizer)
    run.update_manifest(objective=objective, modality="text", eval=EVAL_SECTION, audit=AUDIT_SECTION)
    return path


def _vision_run(path: Path, objective: str, model_class) -> Path:
    torch.manual_seed(0)
    run = RunDirectory(path)
    path.mkdir(parents=True)
    run.save_model(model_class(HfsslVisionConfig(**TINY_VISION)), build_image_processor(16, 1, [0.3], [0.35]))
    run.update_manifest(objective=objective, modality="image")
    return path


@pytest.fixture(scope="session")
def tiny_vision() -> dict:
    """Config fields of the tiny ViT every vision test uses (16x16 grayscale, 4x4 patches)."""
    return dict(TINY_VISION)


@pytest.fixture(scope="session")
def runs(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("demo-runs")


@pytest.fixture(scope="session")
def mlm_run(runs: Path) -> Path:
    return _text_run(runs / "mlm", "mlm", "wordpiece", HfsslTextForMaskedLM)


@pytest.fixture(scope="session")
def clm_run(runs: Path) -> Path:
    return _text_run(runs / "clm", "clm", "bpe", HfsslTextForCausalLM)


@pytest.fixture(scope="session")
def mae_run(runs: Path) -> Path:
    return _vision_run(runs / "mae", "mae", HfsslVisionForMaskedImageModeling)


@pytest.fixture(scope="session")
def encoder_run(runs: Path) -> Path:
    """A bare vision encoder recorded as a contrastive run: the demo must fall back to gallery search."""
    return _vision_run(runs / "simclr", "simclr", HfsslVisionModel)


@pytest.fixture(scope="session")
def loaded_mlm(mlm_run):
    from hfssl.demo.loading import load_demo_model

    return load_demo_model(mlm_run)


@pytest.fixture(scope="session")
def loaded_clm(clm_run):
    from hfssl.demo.loading import load_demo_model

    return load_demo_model(clm_run)


@pytest.fixture(scope="session")
def loaded_mae(mae_run):
    from hfssl.demo.loading import load_demo_model

    return load_demo_model(mae_run)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _launch(loaded, limits=None):
    """Launch `build_demo(loaded)` on 127.0.0.1 without blocking; returns (demo, url)."""
    from hfssl.demo import build_demo, launch_demo

    demo = build_demo(loaded, limits)
    _, url, _ = launch_demo(demo, host="127.0.0.1", port=free_port(), prevent_thread_lock=True, quiet=True,
                            ssr_mode=False)
    return demo, url


@pytest.fixture(scope="session")
def launch() -> Iterator:
    """launch(loaded, limits=None) -> URL of the running app; every app is closed at the end of the session."""
    demos = []

    def start(loaded, limits=None) -> str:
        demo, url = _launch(loaded, limits)
        demos.append(demo)
        return url

    yield start
    for demo in demos:
        demo.close()


@pytest.fixture(scope="session")
def mlm_url(launch, loaded_mlm) -> str:
    from hfssl.demo import Limits

    return launch(loaded_mlm, Limits(max_text_chars=200))


@pytest.fixture
def client_for(tmp_path):
    """client_for(url) -> a gradio_client.Client with telemetry off (it is on unless passed False) and its
    downloads in the test's tmp dir."""
    from gradio_client import Client

    def connect(url: str):
        return Client(url, verbose=False, analytics_enabled=False, download_files=str(tmp_path / "downloads"))

    return connect

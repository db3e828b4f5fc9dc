"""Fixtures for the Hub tests: a local Hub server, tiny runs (text MLM, vision MAE), and a Python without hfssl.

tests/conftest.py sets HF_HUB_OFFLINE=1 before huggingface_hub is imported. Publishing in this process passes
`endpoint=` explicitly and lifts the offline flag for the test (`online`); loading checks run in fresh
subprocesses whose environment sets HF_ENDPOINT and HF_HUB_OFFLINE=0 before anything is imported.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hfssl.data.pixels import build_image_processor
from hfssl.data.tokenizer import train_tokenizer
from hfssl.hub.local_server import LocalHub
from hfssl.models import (
    HfsslTextConfig,
    HfsslTextForMaskedLM,
    HfsslVisionConfig,
    HfsslVisionForMaskedImageModeling,
)
from hfssl.training.rundir import RunDirectory

TOKEN = "hf_TestWriteToken0123456789abcdefXYZ"
READ_TOKEN = "hf_TestReadOnlyToken0123456789abcdef"
OLD_SECRET = "hf_SecretFromTrainingArgs0123456789"
USER = "alice"
TEXTS = [
    "Return the value of the key if the key is in the dictionary, else default.",
    "Split the string at the first occurrence of sep, and return a tuple.",
    "Open file and return a stream. Raise OSError upon failure.",
    "Return a new list containing all items from the iterable in ascending order.",
] * 20


@pytest.fixture
def hub():
    with LocalHub(tokens={TOKEN: USER, READ_TOKEN: {"user": "bob", "write": False}}) as server:
        yield server


@pytest.fixture
def online(monkeypatch):
    """Let this process's huggingface_hub make requests (the suite runs with HF_HUB_OFFLINE=1)."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_TOKEN", raising=False)


def _manifest(objective: str, modality: str, model, config, source: str, stats: dict) -> dict:
    return {
        "format_version": 1, "stage": "pretrain", "objective": objective, "modality": modality,
        "model": {"class": type(model).__name__, "parameters": sum(p.numel() for p in model.parameters()),
                  "config": config.to_diff_dict()},
        "data": {"source": source, "format": "text" if modality == "text" else "images", "train_rows": 80},
        "arguments": {"training": {"output_dir": str(Path(source).parent / "checkpoints"), "hub_token": OLD_SECRET,
                                   "learning_rate": 1e-3}},
        "seed": 0, "versions": {"python": "3.11"}, "hardware": {"cpu_count": 2, "cuda_devices": []},
        "pretrain": stats, "eval": {"linear_probe": {"accuracy": 0.61}},
    }


def _write_eval(run: RunDirectory) -> None:
    run.eval_dir.mkdir(parents=True, exist_ok=True)
    (run.eval_dir / "linear_probe.json").write_text(json.dumps({"accuracy": 0.61, "n_train": 64}))
    Image.fromarray(np.full((8, 8, 3), 120, dtype=np.uint8)).save(run.eval_dir / "curve.png")
    (run.path / "bias_audit.json").write_text(json.dumps({"groups": {"a": 0.5, "b": 0.6}}))


@pytest.fixture(scope="module")
def mlm_run(tmp_path_factory) -> RunDirectory:
    """A tiny masked LM run: model/ with tokenizer, run.json (with a secret and local paths), eval/, bias audit."""
    torch.manual_seed(0)
    tokenizer = train_tokenizer(TEXTS, kind="wordpiece", vocab_size=120, model_max_length=64)
    config = HfsslTextConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                             intermediate_size=64, max_position_embeddings=64, pad_token_id=tokenizer.pad_token_id)
    model = HfsslTextForMaskedLM(config).eval()
    run = RunDirectory(tmp_path_factory.mktemp("runs") / "tiny-mlm")
    run.path.mkdir()
    run.save_model(model, tokenizer)
    corpus = str(run.path.parent / "corpus.txt")
    run.update_manifest(**_manifest("mlm", "text", model, config, corpus,
                                    {"steps": 10, "eval_loss": 4.25, "perplexity": 70.1, "tokens_seen": 5120}))
    _write_eval(run)
    return run


@pytest.fixture
def run(mlm_run, tmp_path) -> RunDirectory:
    """A private copy of the MLM run, so a test may change it."""
    shutil.copytree(mlm_run.path, tmp_path / "run")
    return RunDirectory(tmp_path / "run")


@pytest.fixture(scope="module")
def mae_run(tmp_path_factory) -> RunDirectory:
    """A tiny MAE run: model/ with an image processor and run.json."""
    torch.manual_seed(0)
    config = HfsslVisionConfig(image_size=16, patch_size=4, num_channels=3, hidden_size=32, num_hidden_layers=2,
                               num_attention_heads=4, intermediate_size=64, decoder_hidden_size=32,
                               decoder_num_hidden_layers=1, decoder_num_attention_heads=4, decoder_intermediate_size=64)
    model = HfsslVisionForMaskedImageModeling(config).eval()
    processor = build_image_processor(16, 3, [0.5, 0.4, 0.3], [0.25, 0.2, 0.3])
    run = RunDirectory(tmp_path_factory.mktemp("runs") / "tiny-mae")
    run.path.mkdir()
    run.save_model(model, processor)
    run.update_manifest(**_manifest("mae", "vision", model, config, str(run.path.parent / "images"),
                                    {"steps": 5, "eval_loss": 0.9, "images_seen": 640}))
    return run


NO_HFSSL_GUARD = textwrap.dedent(
    """
    import sys, importlib.abc
    class _NoHfssl(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "hfssl" or name.startswith("hfssl."):
                raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)")
    sys.meta_path.insert(0, _NoHfssl())
    try:
        import hfssl
    except ModuleNotFoundError:
        pass
    else:
        raise SystemExit("hfssl is still importable")
    """
)


def run_from_hub(code: str, hub: LocalHub, cwd: Path) -> subprocess.CompletedProcess:
    """Run `code` in a fresh Python without hfssl, whose huggingface_hub downloads from `hub` into a fresh cache."""
    env = {
        **os.environ, "HF_ENDPOINT": hub.endpoint, "HF_HUB_OFFLINE": "0", "HF_HOME": str(cwd / "hf_home"),
        "HF_MODULES_CACHE": str(cwd / "hf_modules"), "HF_HUB_DISABLE_XET": "1",
    }
    env.pop("HF_TOKEN", None)
    return subprocess.run(
        [sys.executable, "-c", NO_HFSSL_GUARD + textwrap.dedent(code)], check=False, cwd=cwd, env=env,
        capture_output=True, text=True, timeout=300,
    )

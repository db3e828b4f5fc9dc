"""Tiny parents for fine-tuning: an hfssl masked LM, an hfssl MAE and a stock BERT, each saved as a run or folder.

Weights are random (seeded): fine-tuning must work from any checkpoint, and training a parent here would
cost more than every fine-tuning test together.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import BertConfig, BertForMaskedLM

import hfssl  # noqa: F401  (registers the Auto classes)
from hfssl.data.corpora import stdlib_docstrings
from hfssl.data.tokenizer import train_tokenizer
from hfssl.models import HfsslTextConfig, HfsslTextForMaskedLM, HfsslVisionConfig, HfsslVisionForMaskedImageModeling
from hfssl.training.rundir import RunDirectory

# Settings that keep one fine-tuning run to seconds on 2 CPU cores.
FAST = {"max_length": 48, "batch_size": 32, "training_args": {"disable_tqdm": True, "logging_steps": 1000}}
TEXT_WIDTH = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}


@pytest.fixture(scope="package", autouse=True)
def one_thread():
    """One intra-op thread: these matrices are tiny, and a second thread mostly waits on a shared machine
    (8 s instead of 96 s for one LoRA run on 2 busy cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tokenizer():
    """A WordPiece tokenizer trained on real text (stdlib docstrings)."""
    return train_tokenizer(stdlib_docstrings()[:1500], "wordpiece", vocab_size=1000, model_max_length=128)


def _save_run(path: Path, model, processor, objective: str, modality: str) -> Path:
    run = RunDirectory(path)
    run.path.mkdir(parents=True)
    run.save_model(model, processor)
    run.update_manifest(stage="pretrain", objective=objective, modality=modality)
    return run.path


@pytest.fixture(scope="session")
def text_parent(tmp_path_factory, tokenizer) -> Path:
    """A run directory holding a tiny hfssl masked LM and its tokenizer (run.json: objective mlm, modality text)."""
    torch.manual_seed(0)
    config = HfsslTextConfig(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, **TEXT_WIDTH)
    return _save_run(tmp_path_factory.mktemp("parents") / "mlm", HfsslTextForMaskedLM(config), tokenizer, "mlm", "text")


@pytest.fixture(scope="session")
def image_parent(tmp_path_factory) -> Path:
    """A run directory holding a tiny hfssl MAE for 8x8 grayscale images, saved without an image processor."""
    torch.manual_seed(0)
    config = HfsslVisionConfig(
        image_size=8, patch_size=4, num_channels=1, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, decoder_hidden_size=32, decoder_num_hidden_layers=1, decoder_num_attention_heads=2,
        decoder_intermediate_size=64,
    )
    model = HfsslVisionForMaskedImageModeling(config)
    return _save_run(tmp_path_factory.mktemp("parents") / "mae", model, None, "mae", "image")


@pytest.fixture(scope="session")
def bert_folder(tmp_path_factory, tokenizer) -> Path:
    """A stock transformers BertForMaskedLM and its tokenizer in a plain model folder (no run.json)."""
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tokenizer), max_position_embeddings=128, pad_token_id=tokenizer.pad_token_id,
                        **TEXT_WIDTH)
    folder = tmp_path_factory.mktemp("parents") / "bert"
    BertForMaskedLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder

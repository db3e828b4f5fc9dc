"""Shared fixtures of the evaluation tests: synthetic features, sklearn digits, tiny run directories."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from hfssl.data.pixels import build_image_processor
from hfssl.models import (
    HfsslTextConfig,
    HfsslTextForMaskedLM,
    HfsslVisionConfig,
    HfsslVisionForMaskedImageModeling,
)
from hfssl.training.rundir import RunDirectory


@pytest.fixture(autouse=True)
def one_torch_thread():
    """The models and probes here are tiny: on a shared 2-core machine thread hand-offs cost more than the
    math (10x measured)."""
    from threadpoolctl import threadpool_limits

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):  # the BLAS under scikit-learn's probes, likewise
        yield
    torch.set_num_threads(threads)


def separable_blobs(n_per_class: int = 60, classes: int = 4, dim: int = 16, seed: int = 0):
    """(n, dim) features in `classes` well-separated Gaussian blobs and their (n,) labels."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=6.0, size=(classes, dim))
    labels = np.repeat(np.arange(classes), n_per_class)
    features = centers[labels] + rng.normal(size=(len(labels), dim))
    order = rng.permutation(len(labels))
    return features[order].astype(np.float32), labels[order]


@pytest.fixture(scope="session")
def digits():
    """sklearn digits as raw pixel features: ((1347, 64), (1347,), (450, 64), (450,)), stratified split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    return x_train.astype(np.float32), y_train, x_test.astype(np.float32), y_test


def tiny_vision_config() -> HfsslVisionConfig:
    return HfsslVisionConfig(
        image_size=8, patch_size=4, num_channels=1, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=64, decoder_hidden_size=16, decoder_num_hidden_layers=1, decoder_num_attention_heads=2,
        decoder_intermediate_size=32,
    )


@pytest.fixture
def vision_run(tmp_path: Path) -> Path:
    """A run directory holding a tiny MAE (8x8 grayscale) with its image processor and a minimal run.json."""
    run = RunDirectory(tmp_path / "mae")
    run.path.mkdir()
    run.save_model(HfsslVisionForMaskedImageModeling(tiny_vision_config()), build_image_processor(8, 1, [0.3], [0.35]))
    run.update_manifest(stage="pretrain", objective="mae")
    return run.path


POSITIVE = ["good", "great", "lovely", "fine", "superb", "warm", "bright", "clever"]
NEGATIVE = ["bad", "awful", "poor", "dull", "weak", "cold", "grim", "clumsy"]
FILLER = ["the", "movie", "was", "a", "plot", "and", "story", "with", "an", "actor", "very", "quite"]


def sentiment_texts(n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """n short texts whose sentiment word pool decides the label ("pos"/"neg"), in random order."""
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for i in range(n):
        label = "pos" if i % 2 else "neg"
        words = list(rng.choice(FILLER, 6)) + list(rng.choice(POSITIVE if label == "pos" else NEGATIVE, 3))
        texts.append(" ".join(rng.permutation(words)))
        labels.append(label)
    return texts, labels


@pytest.fixture(scope="session")
def tiny_tokenizer():
    from hfssl.data.tokenizer import train_tokenizer

    return train_tokenizer(sentiment_texts(200)[0], "wordpiece", vocab_size=200, model_max_length=64)


@pytest.fixture
def text_run(tmp_path: Path, tiny_tokenizer) -> Path:
    """A run directory holding a tiny masked LM with its tokenizer and a minimal run.json."""
    config = HfsslTextConfig(
        vocab_size=len(tiny_tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=64, pad_token_id=tiny_tokenizer.pad_token_id,
    )
    run = RunDirectory(tmp_path / "mlm")
    run.path.mkdir()
    run.save_model(HfsslTextForMaskedLM(config), tiny_tokenizer)
    run.update_manifest(stage="pretrain", objective="mlm")
    return run.path

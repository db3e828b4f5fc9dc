"""Shared fixtures for the text-data tests: real corpora (stdlib docstrings, the shared news corpus) and tokenizers."""

from __future__ import annotations

from pathlib import Path

import pytest

from hfssl.data.corpora import stdlib_docstrings
from hfssl.data.tokenizer import train_tokenizer


@pytest.fixture(scope="session")
def docstrings() -> list[str]:
    return stdlib_docstrings()


@pytest.fixture(scope="session")
def news_file(data_dir: Path) -> Path:
    """The 100-article news corpus (`data_dir` comes from tests/conftest.py and skips where it is absent)."""
    path = data_dir / "news" / "news100.jsonl.gz"
    if not path.is_file():
        pytest.skip(f"news corpus not found at {path}")
    return path


@pytest.fixture(scope="session")
def wordpiece(docstrings: list[str]):
    return train_tokenizer(docstrings[:1500], "wordpiece", vocab_size=2000, model_max_length=512)


@pytest.fixture(scope="session")
def bpe(docstrings: list[str]):
    return train_tokenizer(docstrings[:1500], "bpe", vocab_size=2000, model_max_length=512)

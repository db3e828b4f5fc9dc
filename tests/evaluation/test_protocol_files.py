"""Labelled local files for `hfssl evaluate`: differing columns per file, missing columns, rows without labels."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
import pytest

from hfssl.evaluation.protocol import DataOptions, load_labeled_data

from .conftest import sentiment_texts


def write_csv(path: Path, **columns: list) -> str:
    """A csv with the given columns, written by pandas (a blank cell for None, as spreadsheets export it)."""
    pd.DataFrame(columns).to_csv(path, index=False)
    return str(path)


def load(train: list[str], test: list[str] | None = None, **options) -> object:
    return load_labeled_data(DataOptions(train_files=train, test_files=test, **options), "text")


@pytest.fixture
def texts() -> tuple[list[str], list[str]]:
    return sentiment_texts(40, seed=1)


def test_test_file_without_the_text_column_names_the_file_and_its_columns(tmp_path, texts):
    train = write_csv(tmp_path / "train.csv", text=texts[0], label=texts[1])
    test = write_csv(tmp_path / "test.csv", review=texts[0], label=texts[1])
    with pytest.raises(ValueError, match=r"test files \(.*test\.csv\) have no column 'text'") as error:
        load([train], [test])
    assert "['review', 'label']" in str(error.value) and "--text-column" in str(error.value)
    with pytest.raises(ValueError, match=r"test file '.*test\.csv' \(from --test-files\) has no column 'text'"):
        load([train], [test], text_column="text")


def test_test_file_without_labels_names_the_file_not_a_none_class(tmp_path, texts):
    train = write_csv(tmp_path / "train.csv", text=texts[0], label=texts[1])
    test = write_csv(tmp_path / "test.csv", text=texts[0])
    expected = r"test file '.*test\.csv' \(from --test-files\) has no column 'label'"
    with pytest.raises(ValueError, match=expected) as error:
        load([train], [test])
    assert "['text']" in str(error.value) and "None" not in str(error.value)
    jsonl = tmp_path / "test.jsonl"
    jsonl.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts[0]))
    train_jsonl = tmp_path / "train.jsonl"
    train_jsonl.write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in zip(*texts)))
    with pytest.raises(ValueError, match=r"test files \(.*test\.jsonl\) have no column 'label'"):
        load([str(train_jsonl)], [str(jsonl)])


def test_differing_extra_columns_just_work(tmp_path, texts):
    train = write_csv(tmp_path / "train.csv", id=range(40), text=texts[0], label=texts[1])
    test = write_csv(tmp_path / "test.csv", text=texts[0][:10], label=texts[1][:10], source=["web"] * 10)
    more = write_csv(tmp_path / "more.csv", label=texts[1][10:], text=texts[0][10:])  # same columns, other order
    data = load([train, more], [test])
    assert len(data.train) == 70 and len(data.test) == 10
    assert data.train.examples[:40] == texts[0] and data.class_names == ["neg", "pos"]


def test_rows_without_labels_are_dropped_with_a_count(tmp_path, texts, caplog):
    numbers = [int(y == "pos") for y in texts[1]]
    train = write_csv(tmp_path / "train.csv", text=texts[0], label=[None] * 5 + numbers[5:])
    test = write_csv(tmp_path / "test.csv", text=texts[0], label=[None] + numbers[1:])  # read as floats 0.0/1.0
    with caplog.at_level(logging.WARNING, logger="hfssl.evaluation.protocol"):
        data = load([train], [test])
    assert "Dropped 5 of 40 training row(s) without a label" in caplog.text
    assert "Dropped 1 of 40 test row(s) without a label" in caplog.text
    assert data.class_names == ["0", "1"]
    assert list(data.train.labels) == numbers[5:] and list(data.test.labels) == numbers[1:]
    assert data.train.examples == texts[0][5:]
    carved = load([train])  # a carved test split never holds a "None" class either
    assert carved.class_names == ["0", "1"] and len(carved.train) + len(carved.test) == 35


def test_no_labels_at_all_is_a_clear_error(tmp_path, texts):
    train = write_csv(tmp_path / "train.csv", text=texts[0], label=texts[1])
    test = write_csv(tmp_path / "test.csv", text=texts[0], label=[None] * 40)
    with pytest.raises(ValueError, match="No test row has a label in column 'label'"):
        load([train], [test])


def test_cli_exits_2_on_a_test_file_without_labels(tmp_path, texts, text_run, capsys):
    from hfssl.cli import main

    train = write_csv(tmp_path / "train.csv", text=texts[0], label=texts[1])
    test = write_csv(tmp_path / "test.csv", text=texts[0])
    before = sorted(p.name for p in text_run.rglob("*"))
    code = main(["evaluate", str(text_run), "--protocol", "knn", "--train-files", train, "--test-files", test])
    assert code == 2 and "has no column 'label'" in capsys.readouterr().err
    assert sorted(p.name for p in text_run.rglob("*")) == before  # nothing written

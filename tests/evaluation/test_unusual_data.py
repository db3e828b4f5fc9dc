"""`hfssl evaluate` on labelled data as users have it: header-only, empty and non-UTF-8 files, blank texts in any
format, label names with stray whitespace or blank, list labels, and the finetune protocol on the same rows as the
other protocols."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hfssl.evaluation import check_fractions, evaluate_run, stratified_subset
from hfssl.evaluation.protocol import DataOptions, load_labeled_data

from .conftest import sentiment_texts


def write_jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return str(path)


def load(train: list[str], test: list[str] | None = None, **options):
    return load_labeled_data(DataOptions(train_files=train, test_files=test, **options), "text")


@pytest.fixture
def train_csv(tmp_path) -> str:
    texts, labels = sentiment_texts(40, seed=2)
    pd.DataFrame({"text": texts, "label": labels}).to_csv(tmp_path / "train.csv", index=False)
    return str(tmp_path / "train.csv")


def test_header_only_empty_and_non_utf8_files_are_named(tmp_path, train_csv):
    header_only = tmp_path / "header.csv"
    header_only.write_text("text,label\n")
    with pytest.raises(ValueError, match=r"test file\(s\) .*header\.csv \(from --test-files\) hold no rows"):
        load([train_csv], [str(header_only)])  # datasets: 'Instruction "train" corresponds to no data!'
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match=r"test file '.*empty\.csv' \(from --test-files\) is empty"):
        load([train_csv], [str(empty)])
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes("text,label\nun bon film,pos\nun caf\u00e9 froid,neg\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"train file '.*latin1\.csv' \(line 3\) \(from --train-files\) is not UTF-8"):
        load([str(latin1)])  # was a DatasetGenerationError traceback


def test_blank_texts_are_dropped_whatever_the_format(tmp_path, caplog):
    """A blank CSV cell was dropped but JSON "" and whitespace-only texts were encoded as examples (and `hfssl
    finetune` drops all of them), so the same data gave other numbers as jsonl than as csv."""
    texts, labels = sentiment_texts(40, seed=3)
    texts[0], texts[1], texts[2] = "", "   ", "\n\t"
    train = write_jsonl(tmp_path / "train.jsonl", [{"text": t, "label": y} for t, y in zip(texts, labels)])
    test = write_jsonl(tmp_path / "test.jsonl", [{"text": t, "label": y} for t, y in zip(texts[:10], labels[:10])])
    with caplog.at_level(logging.WARNING):
        data = load([train], [test])
    assert len(data.train) == 37 and len(data.test) == 7
    assert all(t.strip() for t in data.train.examples + data.test.examples)
    assert "Dropped 3 of 40 training row(s) without a text" in caplog.text


def test_label_names_are_read_without_stray_whitespace_and_blank_labels_are_dropped(tmp_path, caplog):
    """" pos " and "pos" were two classes, and "" or "  " a class of its own (`hfssl finetune` strips and drops)."""
    texts, labels = sentiment_texts(40, seed=4)
    rows = [{"text": t, "label": f" {y} " if i % 5 == 0 else y} for i, (t, y) in enumerate(zip(texts, labels))]
    rows[1]["label"], rows[2]["label"] = "", "   "
    train = write_jsonl(tmp_path / "train.jsonl", rows)
    test = write_jsonl(tmp_path / "test.jsonl", [{"text": t, "label": y + " "} for t, y in zip(texts, labels)])
    with caplog.at_level(logging.WARNING):
        data = load([train], [test])
    assert data.class_names == ["neg", "pos"]
    assert len(data.train) == 38 and len(data.test) == 40
    assert data.description["classes_without_test_examples"] == []
    assert "without their surrounding whitespace" in caplog.text and "' neg '" in caplog.text


def test_a_label_column_of_lists_is_refused(tmp_path):
    texts, labels = sentiment_texts(20, seed=5)
    train = write_jsonl(tmp_path / "train.jsonl", [{"text": t, "label": [y]} for t, y in zip(texts, labels)])
    with pytest.raises(ValueError, match="holds List values such as \\['(pos|neg)'\\], not one label per row"):
        load([train])


def test_finetune_protocol_scores_the_rows_the_other_protocols_score(text_run, tmp_path):
    """The finetune protocol used to hand the source to `hfssl finetune`, which carves a test split and reads the
    text column its own way: with 202 rows it tested 40 examples (others: 41, mostly different ones), it refused a
    class with a single example, and without --text-column it looked for a column "text" the file lacks."""
    pytest.importorskip("hfssl.finetune")
    texts, labels = sentiment_texts(201, seed=6)
    frame = pd.DataFrame({"review": texts + ["a lone odd one"], "verdict": labels + ["unsure"]})
    frame.to_csv(tmp_path / "reviews.csv", index=False)
    result = evaluate_run(text_run, "finetune", train_files=[str(tmp_path / "reviews.csv")], label_column="verdict",
                          finetune_epochs=0.1, progress=False, print_table=False)
    protocol = result["arms"]["pretrained"]["protocol"]
    assert result["data"]["input_column"] == "review" and result["data"]["test_examples"] == 41
    assert (protocol["train_examples"], protocol["test_examples"]) == (161, 41)
    child = json.loads((text_run / "eval" / "finetune" / "run.json").read_text())
    assert child["finetune"]["test_examples"] == 41
    # the rows came through a temporary folder; the child run names the evaluation's source, which still exists
    assert child["data"]["source"] == result["data"]["source"] and "hfssl-evaluate-finetune" not in json.dumps(child)


def test_test_examples_duplicated_in_training_are_counted_and_warned_about(tmp_path, caplog):
    """Duplicated rows went silently into both splits of a carved test split, where kNN recalls their labels."""
    texts, labels = sentiment_texts(50, seed=7)
    frame = pd.DataFrame({"text": texts, "label": labels})
    pd.concat([frame, frame]).to_csv(tmp_path / "doubled.csv", index=False)
    with caplog.at_level(logging.WARNING):
        data = load([str(tmp_path / "doubled.csv")])
    train = {t.strip() for t in data.train.examples}
    expected = sum(t.strip() in train for t in data.test.examples)
    assert expected > 0 and data.description["test_examples_also_in_training"] == expected
    assert f"{expected} of {len(data.test)} test example(s) are also in the training split" in caplog.text
    frame.to_csv(tmp_path / "once.csv", index=False)
    assert "test_examples_also_in_training" not in load([str(tmp_path / "once.csv")]).description


def test_the_fraction_suggested_for_a_vanishing_class_keeps_every_class():
    """The advice was 0.5 / n at 4 digits rounded to nearest (0.01562 for 32 examples, which keeps none of them) for
    the first class that vanished, though a smaller class needs more."""
    labels = np.array([0] * 32 + [1] * 24 + [2] * 40)
    with pytest.raises(ValueError, match=r"class 'tee' \(id 0\).*32 training example") as error:
        check_fractions(labels, [0.001], class_names=["tee", "bag", "coat"])
    suggested = float(str(error.value).split("at least ")[1].split(" ")[0])
    assert "the smallest class, 'bag', has 24" in str(error.value)
    check_fractions(labels, [suggested])
    assert set(labels[stratified_subset(labels, suggested, seed=0)]) == {0, 1, 2}
    with pytest.raises(ValueError, match="at least 0.01563,"):  # one class of 32: 0.01562 * 32 rounds to 0
        check_fractions(np.array([0] * 32 + [1] * 64), [0.001])


def test_a_zero_example_limit_is_refused_as_such_for_fashion_mnist(data_dir):
    """--max-train-examples 0 read zero Fashion-MNIST images and failed with 'The image source ... has no rows'."""
    options = DataOptions(dataset="fashion-mnist", data_dir=str(data_dir / "fashion_mnist"), max_train_examples=0)
    with pytest.raises(ValueError, match="--max-train-examples=0 must be >= 1"):
        load_labeled_data(options, "image")


def test_csv_cells_reading_na_or_none_are_names_and_texts_not_missing_values(tmp_path):
    """pandas reads "NA" (North America), "None" or "null" as missing: those rows were dropped as unlabeled or empty.
    Only an empty cell is missing."""
    rows = [f"review {i},{'NA' if i % 2 else 'EU'}" for i in range(20)] + ["None,EU", "null,NA", ",EU", "blank label,"]
    (tmp_path / "regions.csv").write_text("text,label\n" + "\n".join(rows) + "\n", encoding="utf-8")
    data = load([str(tmp_path / "regions.csv")], test_fraction=0.25)
    assert data.class_names == ["EU", "NA"]
    assert data.train.examples.count("None") + data.test.examples.count("None") == 1
    assert len(data.train) + len(data.test) == 22  # the empty text and the empty label are the only rows dropped

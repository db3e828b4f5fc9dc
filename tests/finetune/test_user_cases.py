"""Labelled data as users have it: a test split with a class training never shows (scored, as `hfssl evaluate`
scores it, rather than refused), two splits that name their classes through different ClassLabels, a ClassLabel's
-1 "no label" rows, and stratified caps that must give the number of rows asked for."""

from __future__ import annotations

import csv
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import ClassLabel, Dataset, DatasetDict
from PIL import Image
from sklearn.metrics import accuracy_score, f1_score
from transformers import (
    AutoImageProcessor,
    AutoModelForImageClassification,
    AutoModelForSequenceClassification,
    AutoTokenizer,
)

from hfssl.data.images import digits_dataset
from hfssl.finetune import finetune
from hfssl.finetune.data import stratified_indices
from hfssl.finetune.labels import encode_labels

from .conftest import FAST

QUICK = {**FAST, "epochs": 1, "max_length": 32}


def write_csv(path: Path, rows: list[list]) -> str:
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([["text", "label"], *rows])
    return str(path)


@pytest.fixture(scope="module")
def sentiment_files(data_dir, tmp_path_factory) -> tuple[str, str, list[list]]:
    """Rotten Tomatoes reviews as neg/pos names: 120 training rows, and a test split of 30 reviews plus 10 labelled
    "neutral", a class the training split never shows."""
    with (data_dir / "rotten_tomatoes" / "train.csv").open(encoding="utf-8") as f:
        rows = [[row["text"], ("neg", "pos")[int(row["label"])]] for _, row in zip(range(160), csv.DictReader(f))]
    folder = tmp_path_factory.mktemp("user-data")
    test = rows[120:150] + [[text, "neutral"] for text, _ in rows[150:160]]
    return write_csv(folder / "train.csv", rows[:120]), write_csv(folder / "test.csv", test), test


# ----------------------------------------------------------------------------------------------- test-only classes


def test_test_labels_training_never_shows_are_numbered_after_the_training_ones(caplog):
    splits = DatasetDict(train=Dataset.from_dict({"label": ["pos", "neg", "pos"]}),
                         test=Dataset.from_dict({"label": ["neg", "neutral", "mixed", "pos"]}))
    with caplog.at_level(logging.WARNING, logger="hfssl.finetune.labels"):
        encoded, id2label = encode_labels(splits, "label")
    assert id2label == {0: "neg", 1: "pos", 2: "mixed", 3: "neutral"}  # training ids as without the extra classes
    assert encoded["train"]["label"] == [1, 0, 1] and encoded["test"]["label"] == [0, 3, 2, 1]
    assert "2 of 4 test example(s) belong to label(s) the training split never shows: mixed, neutral" in caplog.text


def test_test_labels_sharing_no_class_with_training_are_refused():
    splits = DatasetDict(train=Dataset.from_dict({"label": ["neg", "pos"]}),
                         test=Dataset.from_dict({"label": ["negative", "positive"]}))
    with pytest.raises(ValueError, match="None of the test labels \\(negative, positive\\) is a label of the training "
                                         "split \\(neg, pos\\)"):
        encode_labels(splits, "label")


def test_a_test_only_class_is_scored_and_the_saved_model_predicts_what_was_measured(text_parent, sentiment_files,
                                                                                   tmp_path, caplog):
    """The run goes through (as `hfssl evaluate` does with such data); its metrics count the unseen class's examples
    (errors, F1 0), and model/ reloaded with transformers gives the same predictions and so the same numbers."""
    train, test, test_rows = sentiment_files
    with caplog.at_level(logging.WARNING, logger="hfssl.finetune.data"):
        result = finetune(text_parent, task="text-classification", output=tmp_path / "run", train_files=[train],
                          test_files=[test], **QUICK)
    assert "10 of 40 test example(s) belong to label(s) the training split never shows: neutral" in caplog.text
    assert result["id2label"] == {0: "neg", 1: "pos", 2: "neutral"}
    assert result["train_missing_classes"] == ["neutral"] and result["test_missing_classes"] == []
    assert result["macro_f1_classes"] == ["neg", "pos", "neutral"] and result["test_examples"] == 40

    model_dir = tmp_path / "run" / "model"
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    texts, gold = [t for t, _ in test_rows], [y for _, y in test_rows]
    inputs = tokenizer(texts, truncation=True, max_length=QUICK["max_length"], padding=True, return_tensors="pt")
    with torch.no_grad():
        predicted = [model.config.id2label[int(i)] for i in model(**inputs).logits.argmax(-1)]
    assert result["metrics"]["accuracy"] == pytest.approx(accuracy_score(gold, predicted))
    assert result["metrics"]["macro_f1"] == pytest.approx(
        f1_score(gold, predicted, labels=["neg", "pos", "neutral"], average="macro", zero_division=0))

    manifest = json.loads((tmp_path / "run" / "run.json").read_text())
    assert manifest["id2label"] == {"0": "neg", "1": "pos", "2": "neutral"}
    assert manifest["finetune"]["train_missing_classes"] == ["neutral"]
    # run.json's peft config names the base the saved adapter loads on, as adapter/adapter_config.json does.
    adapter_config = json.loads((tmp_path / "run" / "adapter" / "adapter_config.json").read_text())
    assert manifest["finetune"]["peft_config"]["base_model_name_or_path"] == adapter_config["base_model_name_or_path"]
    assert adapter_config["base_model_name_or_path"] == str((tmp_path / "run" / "base").resolve())


def test_evaluate_finetune_protocol_scores_a_test_only_class_like_the_probes(text_parent, sentiment_files, tmp_path):
    """`hfssl evaluate --protocol finetune` hands its rows to finetune: it warns and scores where it used to fail."""
    from hfssl.evaluation.api import evaluate_run

    run = Path(shutil.copytree(text_parent, tmp_path / "parent"))
    train, test, _ = sentiment_files
    result = evaluate_run(run, "finetune", train_files=[train], test_files=[test], finetune_epochs=1, batch_size=32,
                          progress=False, print_table=False)
    assert result["data"]["classes_without_training_examples"] == ["neutral"]
    child = json.loads((run / "eval" / "finetune" / "run.json").read_text())["finetune"]
    assert child["train_missing_classes"] == ["neutral"] and child["test_examples"] == 40
    assert result["arms"]["pretrained"]["accuracy"] == child["metrics"]["accuracy"]


def test_an_image_class_folder_only_in_the_test_files_is_scored(image_parent, tmp_path):
    """Image folders share one ClassLabel over both splits: the extra class keeps its id there, and model/ classifies
    the test images as the run measured."""
    digits = digits_dataset()
    names = ("zero", "one", "two")
    for role, rows in (("train", range(150)), ("test", range(150, 210))):
        for i in rows:
            label = int(digits[i]["label"])
            if label < 3 and not (role == "train" and label == 2):  # "two" only in the test files
                folder = tmp_path / role / names[label]
                folder.mkdir(parents=True, exist_ok=True)
                Image.fromarray(np.asarray(digits[i]["image"])).save(folder / f"{i}.png")
    result = finetune(image_parent, task="image-classification", output=tmp_path / "run",
                      train_files=[str(tmp_path / "train")], test_files=[str(tmp_path / "test")],
                      **{k: v for k, v in QUICK.items() if k != "max_length"})
    assert sorted(result["id2label"].values()) == sorted(names) and result["train_missing_classes"] == ["two"]
    files = sorted((tmp_path / "test").glob("*/*.png"))
    model = AutoModelForImageClassification.from_pretrained(tmp_path / "run" / "model").eval()
    processor = AutoImageProcessor.from_pretrained(tmp_path / "run" / "model")
    with torch.no_grad():
        logits = model(**processor(images=[Image.open(f) for f in files], return_tensors="pt")).logits
    predicted = [model.config.id2label[int(i)] for i in logits.argmax(-1)]
    assert result["metrics"]["accuracy"] == pytest.approx(accuracy_score([f.parent.name for f in files], predicted))


# ----------------------------------------------------------------------------------------------- ClassLabels


def test_two_class_labels_are_matched_by_name_not_by_id():
    """Two save_to_disk folders (or Hub configs) may number the same names differently; ids alone would mislabel."""
    train = Dataset.from_dict({"label": [0, 1, 0]}).cast_column("label", ClassLabel(names=["neg", "pos"]))
    test = Dataset.from_dict({"label": [0, 1, 2]}).cast_column("label", ClassLabel(names=["pos", "neutral", "neg"]))
    encoded, id2label = encode_labels(DatasetDict(train=train, test=test), "label")
    assert id2label == {0: "neg", 1: "pos", 2: "neutral"}
    assert encoded["train"]["label"] == [0, 1, 0] and encoded["test"]["label"] == [1, 2, 0]


def test_names_against_a_training_class_label_are_matched_by_name():
    train = Dataset.from_dict({"label": [0, 1]}).cast_column("label", ClassLabel(names=["neg", "pos"]))
    test = Dataset.from_dict({"label": ["pos", "neutral", "neg"]})
    encoded, id2label = encode_labels(DatasetDict(train=train, test=test), "label")
    assert id2label == {0: "neg", 1: "pos", 2: "neutral"} and encoded["test"]["label"] == [1, 2, 0]


def test_class_label_minus_one_rows_are_dropped_not_trained_on():
    """datasets marks an unlabeled row -1 (GLUE's test splits): it is no class, and reached the loss as a crash."""
    feature = ClassLabel(names=["neg", "pos"])
    train = Dataset.from_dict({"label": [0, -1, 1, 1]}).cast_column("label", feature)
    test = Dataset.from_dict({"label": [-1, 0]}).cast_column("label", feature)
    encoded, id2label = encode_labels(DatasetDict(train=train, test=test), "label")
    assert id2label == {0: "neg", 1: "pos"}
    assert encoded["train"]["label"] == [0, 1, 1] and encoded["test"]["label"] == [0]
    unlabeled = Dataset.from_dict({"label": [-1, -1]}).cast_column("label", feature)
    with pytest.raises(ValueError, match="no labeled rows.*-1, datasets' mark for an unlabeled row"):
        encode_labels(DatasetDict(train=train, test=unlabeled), "label")


def test_a_class_label_test_split_with_minus_one_trains_end_to_end(text_parent, sentiment_files, tmp_path):
    train_csv, _, _ = sentiment_files
    with open(train_csv, encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    feature = ClassLabel(names=["neg", "pos"])
    ids = [feature.str2int(r["label"]) for r in rows]
    data = Dataset.from_dict({"text": [r["text"] for r in rows], "label": [-1] * 5 + ids[5:]})
    DatasetDict(train=data.select(range(90)), test=data.select(range(90, 120))).cast_column("label", feature) \
        .save_to_disk(tmp_path / "data")
    result = finetune(text_parent, task="text-classification", output=tmp_path / "run", dataset=str(tmp_path / "data"),
                      **QUICK)
    assert result["train_examples"] == 85 and result["test_examples"] == 30


# ----------------------------------------------------------------------------------------------- caps


@pytest.mark.parametrize(("counts", "size", "expected"), [
    ([5, 5, 5, 5], 10, [3, 3, 2, 2]),  # each class alone rounds 2.5 to 2: 8 rows for a cap of 10
    ([99, 1], 10, [9, 1]),  # the rare class's forced row came on top: 11 rows for a cap of 10
    ([10, 10, 10], 10, [4, 3, 3]),  # 3 x round(3.33) = 9
    ([900, 90, 10], 100, [90, 9, 1]),
    ([3, 3, 3], 2, [1, 1, 1]),  # fewer rows asked than classes: one per class
])
def test_stratified_indices_give_the_size_asked_for(counts, size, expected):
    labels = np.repeat(np.arange(len(counts)), counts)
    chosen = stratified_indices(labels, size, seed=0)
    assert np.bincount(labels[chosen], minlength=len(counts)).tolist() == expected
    assert chosen == stratified_indices(labels, size, seed=0) and len(set(chosen)) == len(chosen)


def test_max_examples_caps_are_exact(text_parent, sentiment_files, tmp_path):
    train, test, _ = sentiment_files
    result = finetune(text_parent, task="text-classification", output=tmp_path / "run", train_files=[train],
                      test_files=[test], max_train_examples=25, max_test_examples=13, label_fraction=0.5,
                      **QUICK)
    assert result["train_examples"] == 25 and result["test_examples"] == 13


# ----------------------------------------------------------------------------------------------- formats


def test_train_and_test_files_may_have_different_formats(text_parent, sentiment_files, tmp_path):
    """Each split is loaded on its own: train.csv with test.parquet (or .jsonl) is what exporting tools produce."""
    train, _, test_rows = sentiment_files
    Dataset.from_dict({"text": [t for t, _ in test_rows], "label": [y for _, y in test_rows]}) \
        .to_parquet(tmp_path / "test.parquet")
    result = finetune(text_parent, task="text-classification", output=tmp_path / "run", train_files=[train],
                      test_files=[str(tmp_path / "test.parquet")], **QUICK)
    assert result["test_examples"] == 40 and result["train_examples"] == 120
    with pytest.raises(ValueError, match="mix formats"):  # within one split, formats still may not mix
        finetune(text_parent, task="text-classification", output=tmp_path / "mixed",
                 train_files=[train, str(tmp_path / "test.parquet")], **QUICK)


def test_the_printed_next_step_runs_as_pasted(text_parent, tmp_path, capsys):
    """`hfssl finetune` ends with a python -c line to paste; it called the pipeline on a literal `...` before."""
    import shlex
    import subprocess
    import sys

    from hfssl.cli import main as cli_main

    rows = [[f"{word} film number {i}", label] for i in range(20) for word, label in (("great", 1), ("awful", 0))]
    train = write_csv(tmp_path / "train.csv", rows)
    code = cli_main(["finetune", str(text_parent), "--task", "text-classification", "--train-files", train,
                     "--test-files", train, "--output", str(tmp_path / "run"), "--epochs", "1", "--max-length", "32",
                     "--training-arg", "disable_tqdm=true"])
    assert code == 0
    out = capsys.readouterr().out
    line = next(line.strip() for line in out.splitlines() if line.strip().startswith("python -c"))
    argv = shlex.split(line)
    done = subprocess.run([sys.executable, *argv[1:]], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "'label':" in done.stdout and "'score':" in done.stdout

"""Labeled data: stratified subsets, label mapping from the training split, modality checks, built-in sets."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from datasets import ClassLabel, Dataset, DatasetDict
from PIL import Image

from hfssl.finetune.data import (
    STDLIB_PACKAGES,
    DataSpec,
    carve_test_split,
    check_modality,
    load_splits,
    stdlib_docstrings_by_package,
    stratified_indices,
    subsample,
)
from hfssl.finetune.labels import encode_labels


def test_stratified_indices_keep_class_proportions_and_every_class():
    labels = np.array([0] * 900 + [1] * 90 + [2] * 10)
    chosen = stratified_indices(labels, 100, seed=0)
    counts = np.bincount(labels[chosen])
    assert counts.tolist() == [90, 9, 1]
    assert stratified_indices(labels, 100, seed=0) == chosen
    assert stratified_indices(labels, 100, seed=1) != chosen
    assert np.bincount(labels[stratified_indices(labels, 5, seed=0)]).min() == 1  # no class vanishes


def test_label_fraction_subsamples_training_only():
    splits = DatasetDict(train=Dataset.from_dict({"label": [0] * 80 + [1] * 20}),
                         test=Dataset.from_dict({"label": [0, 1] * 10}))
    small = subsample(splits, DataSpec(dataset="x", label_fraction=0.1, seed=3))
    assert sorted(small["train"]["label"]) == [0] * 8 + [1] * 2 and len(small["test"]) == 20


def test_labels_are_numbered_from_the_training_split():
    splits = DatasetDict(train=Dataset.from_dict({"text": ["a", "b", "c"], "y": ["pos", "neg", "pos"]}),
                         test=Dataset.from_dict({"text": ["d"], "y": ["neg"]}))
    encoded, id2label = encode_labels(splits, "y")
    assert id2label == {0: "neg", 1: "pos"}
    assert encoded["train"]["label"] == [1, 0, 1] and encoded["test"]["label"] == [0]
    assert "y" not in encoded["train"].column_names


def test_class_label_names_are_kept():
    feature = ClassLabel(names=["cat", "dog"])
    data = Dataset.from_dict({"label": [1, 0, 1]}).cast_column("label", feature)
    _, id2label = encode_labels(DatasetDict(train=data, test=data), "label")
    assert id2label == {0: "cat", 1: "dog"}


def test_a_missing_label_column_names_the_columns():
    splits = DatasetDict(train=Dataset.from_dict({"text": ["a"], "sentiment": [1]}),
                         test=Dataset.from_dict({"text": ["b"], "sentiment": [1]}))
    with pytest.raises(ValueError, match="'label' not found.*'sentiment'"):
        encode_labels(splits, "label")


@pytest.mark.parametrize("task,modality", [("text-classification", "image"), ("image-classification", "text"),
                                           ("text-classification", "vision")])
def test_a_parent_of_the_other_modality_is_refused(task, modality):
    with pytest.raises(ValueError, match=f"runs/p is an? .* model but --task {task}"):
        check_modality(task, modality, "runs/p")


def test_matching_or_unknown_parent_modality_passes():
    check_modality("image-classification", "vision", "runs/p")
    check_modality("text-classification", None, "org/model")


def test_stdlib_docstrings_are_labeled_by_package_and_split_stratified():
    data = stdlib_docstrings_by_package()
    assert data.features["label"].names == list(STDLIB_PACKAGES)
    assert len(data) > 1000 and set(data["label"]) == set(range(len(STDLIB_PACKAGES)))
    splits = carve_test_split(data, 0.2, seed=0)
    assert abs(len(splits["test"]) - 0.2 * len(data)) <= len(STDLIB_PACKAGES)
    assert len(splits["train"]) + len(splits["test"]) == len(data)
    test_share = np.bincount(splits["test"]["label"]) / np.bincount(data["label"])
    assert np.allclose(test_share, 0.2, atol=0.02)  # every package keeps its share


@pytest.mark.parametrize("bad,flag", [({"label_fraction": 0.0}, "--label-fraction"),
                                      ({"max_train_examples": 0}, "--max-train-examples"),
                                      ({"dataset": None}, "exactly one data source")])
def test_bad_data_options(bad, flag):
    with pytest.raises(ValueError, match=flag):
        DataSpec(**{"dataset": "digits", **bad})


def test_a_single_training_label_is_refused():
    splits = DatasetDict(train=Dataset.from_dict({"label": ["pos", "pos"]}), test=Dataset.from_dict({"label": ["pos"]}))
    with pytest.raises(ValueError, match="single label \\(pos\\): nothing to classify"):
        encode_labels(splits, "label")


def test_label_names_with_surrounding_whitespace_are_one_label_and_blank_ones_are_missing(caplog):
    """" neg" and "neg" used to be two classes; a blank label a class of its own."""
    splits = DatasetDict(train=Dataset.from_dict({"label": [" neg", "neg", "pos ", "pos", "", "  "]}),
                         test=Dataset.from_dict({"label": ["neg ", "pos"]}))
    with caplog.at_level(logging.WARNING, logger="hfssl.finetune.labels"):
        encoded, id2label = encode_labels(splits, "label")
    assert id2label == {0: "neg", 1: "pos"} and encoded["train"]["label"] == [0, 0, 1, 1]
    assert "Stripped surrounding whitespace from 2 label name(s) of the train split (' neg', 'pos ')" in caplog.text
    assert "Dropped 2 train row(s) without a label" in caplog.text


def test_a_label_column_of_lists_is_refused_by_name():
    """It used to end in `TypeError: unhashable type: 'list'`."""
    splits = DatasetDict(train=Dataset.from_dict({"label": [[0], [1]]}), test=Dataset.from_dict({"label": [[0]]}))
    with pytest.raises(ValueError, match=r"label column 'label' of the train split holds List values such as \[0\], "
                                         "not one label per row"):
        encode_labels(splits, "label")


def test_a_text_file_is_refused_with_the_formats_that_hold_labels(tmp_path):
    (tmp_path / "train.txt").write_text("good film\t1\nbad film\t0\n", encoding="utf-8")
    with pytest.raises(ValueError, match="train.txt is read as plain text, one example per line with no label"):
        load_splits(DataSpec(train_files=[str(tmp_path / "train.txt")]), "text")


def test_the_text_and_label_columns_must_differ(tmp_path):
    with pytest.raises(ValueError, match="--text-column and --label-column both name 'label'"):
        load_splits(DataSpec(train_files=["train.csv"], text_column="label"), "text")


def _images(folder, names):
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((8, 8), 7 * len(name), dtype=np.uint8)).save(folder / name)


def test_image_folders_are_taken_as_class_folders(tmp_path):
    """--train-files FOLDER used to fail with datasets' "Unable to find" although the folder exists."""
    _images(tmp_path / "train", [f"{c}/{i}.png" for c in ("cat", "dog") for i in range(3)])
    _images(tmp_path / "test", [f"{c}/{i}.png" for c in ("cat", "dog") for i in range(2)])
    splits, _ = load_splits(DataSpec(train_files=[str(tmp_path / "train")], test_files=[str(tmp_path / "test")]),
                            "image")
    assert (len(splits["train"]), len(splits["test"])) == (6, 4)
    assert splits["train"].features["label"].names == ["cat", "dog"]


def test_images_without_class_folders_are_refused_with_the_layout_to_use(tmp_path):
    _images(tmp_path / "flat", [f"{i}.png" for i in range(4)])
    with pytest.raises(ValueError, match=r"--train-files images have no labels: .* FOLDER/<label>/<image>"):
        load_splits(DataSpec(train_files=[str(tmp_path / "flat")]), "image")


def test_a_label_per_row_reads_as_scores_not_classes(caplog):
    splits = DatasetDict(train=Dataset.from_dict({"label": [i * 0.37 for i in range(30)]}),
                         test=Dataset.from_dict({"label": [0.37]}))
    with caplog.at_level(logging.WARNING, logger="hfssl.finetune.labels"):
        encode_labels(splits, "label")
    assert "The training split has 30 different labels in 30 rows (column 'label')" in caplog.text

"""Labeled data: stratified subsets, label mapping from the training split, modality checks, built-in sets."""

from __future__ import annotations

import numpy as np
import pytest
from datasets import ClassLabel, Dataset, DatasetDict

from hfssl.finetune.data import (
    STDLIB_PACKAGES,
    DataSpec,
    carve_test_split,
    check_modality,
    encode_labels,
    stdlib_docstrings_by_package,
    stratified_indices,
    subsample,
)


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


def test_test_labels_missing_from_training_are_named():
    splits = DatasetDict(train=Dataset.from_dict({"label": ["pos", "neg"]}),
                         test=Dataset.from_dict({"label": ["neg", "neutral", "mixed"]}))
    with pytest.raises(ValueError, match="label\\(s\\) mixed, neutral that the training split never shows"):
        encode_labels(splits, "label")


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

"""Labels for fine-tuning: one id per label value from the training split (`encode_labels`), with test-only values
numbered after them and a warning; rows without a label dropped with a count (`clean_labels`); label columns of
different types across splits brought to one."""

from __future__ import annotations

import logging
from typing import Any

import datasets
from datasets import ClassLabel, Dataset, DatasetDict

from ..data.files import column_list

logger = logging.getLogger(__name__)

_LABEL_IDS = "_hfssl_label_id"


def _check_label_column(split: Dataset, column: str, role: str) -> None:
    if column not in split.column_names:
        raise ValueError(
            f"Label column {column!r} not found in the {role} split; its columns are {column_list(split.column_names)}. "
            "Pass the right one with --label-column."
        )


def encode_labels(splits: DatasetDict, label_column: str) -> tuple[DatasetDict, dict[int, str]]:
    """Replace `label_column` by an int `label` column numbered from the training split; returns id2label.

    A ClassLabel column keeps its ids and names (a test split with a ClassLabel of its own, or names against a
    training ClassLabel, is matched by name). Otherwise labels are sorted values of the training split, then
    (sorted, with a warning) test labels the training split never shows: as in `hfssl evaluate`, whose finetune
    protocol hands its rows here, such a class is scored rather than refused. The model is never trained to predict
    it, so its test examples count as errors and its F1 is 0 in macro-F1; numbering it after the training classes
    keeps the training ids what they would be without it.

    Raises:
        ValueError: the column is missing, or no test label is a training label (the splits name classes apart).
    """
    splits = DatasetDict({role: clean_labels(split, label_column, role) for role, split in splits.items()})
    splits = _match_label_types(splits, label_column)
    feature = splits["train"].features[label_column]
    if isinstance(feature, ClassLabel):
        names = list(feature.names)
        train_values = {names[i] for i in set(splits["train"][label_column])}
        test_values = {names[i] for i in set(splits["test"][label_column])}
    else:
        train_values, test_values = set(splits["train"][label_column]), set(splits["test"][label_column])
        names = sorted(train_values, key=lambda v: (str(type(v)), v))
    if len(train_values) < 2:
        raise ValueError(
            f"The training split has a single label ({', '.join(map(str, train_values))}): nothing to classify. "
            f"Check --label-column ({label_column!r}) or add examples of other labels."
        )
    rows = len(splits["train"])
    if len(train_values) > max(10, rows // 2):
        logger.warning("The training split has %d different labels in %d rows (column %r): about %.1f example(s) "
                       "per class. If the column holds scores or ids rather than classes, name the label column with "
                       "--label-column, or bin the values into classes first.", len(train_values), rows, label_column,
                       rows / len(train_values))
    _check_test_labels(splits["test"], label_column, train_values, test_values, feature)
    if not isinstance(feature, ClassLabel):
        names += sorted(test_values - train_values, key=lambda v: (str(type(v)), v))
    to_id = {value: i for i, value in enumerate(names)}
    if label_column != "label" and "label" in splits["train"].column_names:
        splits = splits.remove_columns("label")  # another column called label would shadow the chosen one
    if not isinstance(feature, ClassLabel):
        # A new column, not an overwrite: `datasets` keeps a string column's type when a map rewrites it.
        splits = splits.map(lambda batch: {_LABEL_IDS: [to_id[v] for v in batch[label_column]]}, batched=True,
                            remove_columns=[label_column])
        label_column = _LABEL_IDS
    if label_column != "label":
        splits = splits.rename_column(label_column, "label")
    return splits, {i: str(name) for i, name in enumerate(names)}


def _check_test_labels(test: Dataset, column: str, train_values: set, test_values: set, feature: Any) -> None:
    """Warn about test labels the training split never shows (they are scored, as errors); refuse test labels that
    share no class with training, which means the splits name their classes differently."""
    train_names, test_names = sorted(map(str, train_values)), sorted(map(str, test_values))
    if not train_values & test_values:
        raise ValueError(
            f"None of the test labels ({', '.join(test_names[:10])}) is a label of the training split "
            f"({', '.join(train_names[:10])}): the two splits must name their classes alike. Check the files and "
            f"--label-column ({column!r})."
        )
    unseen = test_values - train_values
    if unseen:
        values = test[column]
        if isinstance(feature, ClassLabel):
            values = [feature.names[v] for v in values]
        count = sum(v in unseen for v in values)
        logger.warning(
            "%d of %d test example(s) belong to label(s) the training split never shows: %s. They are scored (as in "
            "hfssl evaluate) and the classifier gets an output for each, but no training example teaches it to "
            "predict them: expect these examples to count as errors and these classes to score F1 0 in macro-F1. "
            "Give a training split that covers every class.", count, len(values), ", ".join(sorted(map(str, unseen))))


def _match_label_types(splits: DatasetDict, column: str) -> DatasetDict:
    """Read the test labels as the training labels' type (JSON "1" and 1, or CSV 1.0 and 1, are the same label).

    Whole-number float labels (a CSV column with a missing label is read as floats) become integers first.

    Raises:
        ValueError: the test labels cannot be read as the training labels' type (e.g. names against numbers).
    """
    splits = DatasetDict({role: _integral_floats_as_ints(split, column) for role, split in splits.items()})
    train, test = splits["train"].features[column], splits["test"].features[column]
    if train == test:
        return splits
    names_against_class_label = isinstance(test, ClassLabel) or (
        isinstance(train, ClassLabel) and isinstance(test, datasets.Value) and "string" in test.dtype)
    if names_against_class_label:
        return _one_class_label(splits, column)
    try:
        cast = splits["test"].cast_column(column, train)
    except (ValueError, TypeError, NotImplementedError):
        raise ValueError(
            f"The labels in column {column!r} are {_label_kind(test)} in the test split "
            f"({_examples(splits['test'], column)}) but {_label_kind(train)} in the training split "
            f"({_examples(splits['train'], column)}); write the labels the same way in both (all names or all "
            "numbers)."
        ) from None
    return DatasetDict(train=splits["train"], test=cast)


def _one_class_label(splits: DatasetDict, column: str) -> DatasetDict:
    """Both splits under one ClassLabel, matched by class name, when the test split names its classes through a
    ClassLabel of its own or the training split has a ClassLabel and the test split writes names.

    Ids alone would mislabel: two ClassLabels (two save_to_disk folders, two Hub configs) may number the same names
    differently, and a string split cast to a ClassLabel fails on a name the ClassLabel lacks. The training split's
    classes keep their ids (a ClassLabel's, else its sorted values); test-only names follow, sorted.
    """
    def names(role: str) -> list[str]:
        feature, values = splits[role].features[column], set(splits[role][column])
        if isinstance(feature, ClassLabel):  # training: every name keeps its id; test: the names it uses
            return [n.strip() for n in feature.names] if role == "train" else [feature.names[v].strip() for v in values]
        return [str(v) for v in sorted(values, key=lambda v: (str(type(v)), v))]

    train_names = names("train")
    merged = ClassLabel(names=train_names + sorted(set(names("test")) - set(train_names)))

    def relabel(split: Dataset) -> Dataset:
        feature = split.features[column]
        name = (lambda v: feature.names[v].strip()) if isinstance(feature, ClassLabel) else str
        features = split.features.copy()
        features[column] = merged
        return split.map(lambda batch: {column: [merged.str2int(name(v)) for v in batch[column]]}, batched=True,
                         features=features)

    return DatasetDict({role: relabel(split) for role, split in splits.items()})


def _integral_floats_as_ints(split: Dataset, column: str) -> Dataset:
    feature = split.features[column]
    floats = isinstance(feature, datasets.Value) and feature.dtype.startswith("float")
    if floats and all(float(v).is_integer() for v in split[column]):
        return split.cast_column(column, datasets.Value("int64"))
    return split


def _label_kind(feature: Any) -> str:
    if isinstance(feature, ClassLabel):
        return "class names"
    dtype = getattr(feature, "dtype", str(feature))
    return "strings" if "string" in dtype else "integers" if "int" in dtype else dtype


def _examples(split: Dataset, column: str, count: int = 4) -> str:
    values = sorted(set(split[column]), key=lambda v: (str(type(v)), v))
    shown = ", ".join(map(repr, values[:count]))
    return shown + (", ..." if len(values) > count else "")


def clean_labels(split: Dataset, column: str, role: str) -> Dataset:
    """The split with usable labels only: one value per row (not a list), names without surrounding whitespace
    (" pos" and "pos" are one label; stripped with a warning), and rows with a missing or blank label (or a
    ClassLabel's -1, datasets' "no label") dropped.

    Raises:
        ValueError: the column is missing (names the split's columns), holds lists or records, or no row has a label.
    """
    _check_label_column(split, column, role)
    feature = split.features[column]
    one_value_per_row = isinstance(feature, (ClassLabel, datasets.Value))
    if not one_value_per_row:
        example = next((v for v in split[column] if v is not None), None)
        raise ValueError(
            f"The label column {column!r} of the {role} split holds {type(feature).__name__} values such as "
            f"{example!r}, not one label per row. Give one label (a name or a number) per row, or name the column "
            "that holds it with --label-column."
        )
    if isinstance(feature, datasets.Value) and feature.dtype in ("string", "large_string"):
        unclean = {v for v in split[column] if isinstance(v, str) and v != v.strip()}
        padded = sorted(v for v in unclean if v.strip())
        if padded:
            logger.warning("Stripped surrounding whitespace from %d label name(s) of the %s split (%s): they are "
                           "the same labels without it.", len(padded), role, ", ".join(map(repr, padded[:5])))
        if unclean or "" in split.unique(column):
            split = split.map(lambda batch: {column: [(v.strip() or None) if isinstance(v, str) else v
                                                      for v in batch[column]]}, batched=True)
    unlabeled = -1 if isinstance(feature, ClassLabel) else None  # datasets' ClassLabel id for "no label" (GLUE tests)
    kept = split.filter(lambda batch: [v is not None and v != unlabeled for v in batch[column]], batched=True)
    if len(kept) < len(split):
        logger.warning("Dropped %d %s row(s) without a label.", len(split) - len(kept), role)
    if len(kept) == 0:
        raise ValueError(f"The {role} split has no labeled rows (column {column!r}){_unlabeled_hint(unlabeled)}.")
    return kept


def _unlabeled_hint(unlabeled: int | None) -> str:
    if unlabeled is None:
        return ""
    return (": its class labels are all -1, datasets' mark for an unlabeled row (benchmarks such as GLUE hide their "
            "test labels so). Use a labeled split as --test-split, or give no test split to carve one from training")

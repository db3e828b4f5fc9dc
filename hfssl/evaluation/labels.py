"""Labels of the evaluation data: rows without a label or text, class names, integer ids, which classes each
split has (and so which classes macro-F1 averages), and a stratified test split carved from training data."""

from __future__ import annotations

import logging
import math
from typing import Any

import datasets
import numpy as np

logger = logging.getLogger(__name__)


def _is_missing_label(value: Any, feature: Any) -> bool:
    """None, NaN (a blank CSV cell), a blank name (JSON "" or "  "), or a ClassLabel's -1 (datasets' "no label")."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return True
    if isinstance(value, str):
        return not value.strip()
    return isinstance(feature, datasets.ClassLabel) and value < 0


def _check_one_label_per_row(ds: datasets.Dataset, label_column: str, role: str) -> None:
    """ValueError for a label column of lists or records: each distinct list would silently become a class."""
    feature = ds.features[label_column]
    if not isinstance(feature, (datasets.ClassLabel, datasets.Value)):
        example = next((v for v in ds[label_column] if v is not None), None)
        raise ValueError(  # noqa: TRY004 -- bad input data, not a programming error: the CLI maps it to exit 2
            f"The label column {label_column!r} of the {role} split holds {type(feature).__name__} "
            f"values such as {example!r}, not one label per row. Give one label (a name or a number) "
            "per row, or name the column that holds it with --label-column.")


def drop_missing_labels(ds: datasets.Dataset, label_column: str, role: str) -> datasets.Dataset:
    """Drop rows without a label, with a warning giving the count (as `hfssl finetune` does). Label names are read
    without surrounding whitespace (" pos" and "pos" are one class, as in `hfssl finetune`), with a warning.

    Raises:
        ValueError: no row of the split has a label, or the column holds lists or records.
    """
    _check_one_label_per_row(ds, label_column, role)
    feature = ds.features[label_column]
    values = ds[label_column]
    padded = sorted({v for v in values if isinstance(v, str) and v.strip() and v != v.strip()})
    if padded:
        logger.warning("Read %d %s label name(s) without their surrounding whitespace (%s): they are the same classes "
                       "as the names without it.", len(padded), role, ", ".join(map(repr, padded[:5])))
    keep = [i for i, value in enumerate(values) if not _is_missing_label(value, feature)]
    if len(keep) == len(ds):
        return ds
    if not keep:
        raise ValueError(f"No {role} row has a label in column {label_column!r} (all {len(ds)} are empty). "
                         "Check the file, or name the column that holds the labels with --label-column.")
    logger.warning("Dropped %d of %d %s row(s) without a label (column %r).", len(ds) - len(keep), len(ds), role,
                   label_column)
    return ds.select(keep)


def _label_name(value: Any) -> str:
    """A label as a class name; whole-number floats (a CSV label column with blanks is read as floats) as integers,
    strings without surrounding whitespace."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return value.strip() if isinstance(value, str) else str(value)


def class_names(feature: Any, values: list[Any]) -> list[str]:
    if isinstance(feature, datasets.ClassLabel):
        return list(feature.names)
    names = {_label_name(v): v for v in values}
    try:
        return [_label_name(v) for v in sorted(names.values(), key=lambda v: v.strip() if isinstance(v, str) else v)]
    except TypeError:  # mixed types (JSON numbers and strings): order by name
        return sorted(names)


def encode_labels(values: list[Any], feature: Any, names: list[str], role: str) -> np.ndarray:
    """Label values -> (n,) int64 ids into `names` (ClassLabel ids are kept); ValueError on unknown labels."""
    if isinstance(feature, datasets.ClassLabel):
        return np.asarray(values, dtype=np.int64)
    index = {name: i for i, name in enumerate(names)}
    unknown = sorted({_label_name(v) for v in values} - set(index))
    if unknown:
        raise ValueError(f"The {role} split has labels the training split lacks: {unknown[:10]}; "
                         "give a training split that covers every class.")
    return np.asarray([index[_label_name(v)] for v in values], dtype=np.int64)


def align_test_labels(values: list[Any], test_feature: Any, train_feature: Any) -> list[Any]:
    """Test label values in the training split's terms, so that a class has one id in both splits.

    A `ClassLabel` stores ids whose meaning is its own list of names: two splits whose ClassLabels list the same
    names in another order (or a ClassLabel beside plain names) would otherwise pair id 0 with the wrong class.
    Test ids become names unless both splits share one ClassLabel; against a training ClassLabel, names become its
    ids and integers are taken as its ids.

    Raises:
        ValueError: against a training ClassLabel, a test label that is none of its names or ids (both listed).
    """
    train_names = list(train_feature.names) if isinstance(train_feature, datasets.ClassLabel) else None
    if isinstance(test_feature, datasets.ClassLabel):
        if train_names == list(test_feature.names):
            return values
        values = [test_feature.int2str(int(v)) for v in values]
    if train_names is None:
        return values
    index = {name: i for i, name in enumerate(train_names)}
    aligned, unknown = [], []
    for value in values:
        if isinstance(value, str):
            aligned.append(index.get(value.strip(), -1))
        elif isinstance(value, (int, float, np.integer, np.floating)) and float(value).is_integer():
            aligned.append(int(value) if 0 <= value < len(train_names) else -1)
        else:
            aligned.append(-1)
        if aligned[-1] < 0:
            unknown.append(value)
    if unknown:
        shown = sorted({str(v) for v in unknown})
        raise ValueError(f"The test labels {_few(shown)} are neither names nor ids of the training split's ClassLabel "
                         f"{_few(train_names)} (ids 0..{len(train_names) - 1}). Give test labels named like the "
                         "training labels, or cast both splits to one ClassLabel (Dataset.cast_column).")
    return aligned


def with_test_only_classes(names: list[str], feature: Any, test_values: list[Any]) -> list[str]:
    """`names` (the training split's classes) plus, sorted after them, test labels the training split lacks."""
    if isinstance(feature, datasets.ClassLabel):
        return names
    return names + sorted({_label_name(v) for v in test_values} - set(names))


def _few(names: list[str], limit: int = 10) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return f"({shown}{f' and {len(names) - limit} more' if len(names) > limit else ''})"


def class_coverage(train_y: np.ndarray, test_y: np.ndarray, names: list[str]) -> dict[str, list[str]]:
    """Which classes macro-F1 averages (those with a test example), and the classes only one split has.

    A class without test examples has no F1 (it is left out of the mean, for every arm alike); a class without
    training examples cannot be predicted, so its F1 is 0. Logs a warning naming the classes of either case.

    Raises:
        ValueError: no test example is of a training class (the splits do not name their classes alike).
    """
    train_ids, test_ids = set(np.unique(train_y).tolist()), set(np.unique(test_y).tolist())
    if not train_ids & test_ids:
        raise ValueError(f"None of the test labels {_few([names[i] for i in sorted(test_ids)])} is a label of the "
                         f"training split {_few([names[i] for i in sorted(train_ids)])}: the two splits must name "
                         "their classes alike. Check the files and --label-column.")
    coverage = {"macro_f1_classes": [names[i] for i in sorted(test_ids)],
                "classes_without_test_examples": [names[i] for i in sorted(train_ids - test_ids)],
                "classes_without_training_examples": [names[i] for i in sorted(test_ids - train_ids)]}
    if coverage["classes_without_test_examples"]:
        logger.warning(
            "The test split has no example of %d class(es) of the training split: %s. Macro-F1 averages only the %d "
            "class(es) that have test examples %s; accuracy and macro-F1 are not comparable with a test split that "
            "has every class.", len(coverage["classes_without_test_examples"]),
            _few(coverage["classes_without_test_examples"]), len(test_ids), _few(coverage["macro_f1_classes"]))
    if coverage["classes_without_training_examples"]:
        unseen = np.isin(test_y, sorted(test_ids - train_ids)).sum()
        logger.warning(
            "%d test example(s) belong to class(es) the training split lacks: %s. No probe can predict them, so they "
            "count as errors and these classes score F1 0 in macro-F1. Give a training split that covers every "
            "class.", unseen, _few(coverage["classes_without_training_examples"]))
    return coverage


def class_note(data: dict[str, Any]) -> str:
    """One sentence on which classes macro-F1 averages, from a data description holding `class_coverage`'s keys;
    "" when the test split has exactly the training split's classes."""
    averaged = data.get("macro_f1_classes")
    no_test, unseen = data.get("classes_without_test_examples") or [], data.get("classes_without_training_examples") or []
    if averaged is None or not (no_test or unseen):
        return ""
    note = f"Macro-F1 averages the {len(averaged)} class(es) with test examples ({', '.join(map(str, averaged))})"
    if no_test:
        note += f"; left out, without test examples: {', '.join(map(str, no_test))}"
    if unseen:
        note += f"; never in training, so never predicted (F1 0): {', '.join(map(str, unseen))}"
    return note + "."


def carve_test_split(train: datasets.Dataset, label_column: str, fraction: float, seed: int):
    """Stratified (train, test) split of one Dataset: `fraction` of every class goes to test, and at least one
    example of every class with two or more; a class with a single example stays in train."""
    from sklearn.model_selection import train_test_split

    labels = np.asarray([_label_name(v) for v in train[label_column]])
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    shared = np.flatnonzero(counts[inverse] >= 2)  # rows of classes that can be in both splits
    singles = np.flatnonzero(counts[inverse] < 2)
    if len(shared) == 0:
        raise ValueError(f"Every class of the {len(train)} training examples has a single example, so no test split "
                         "can be carved from them. Give a test split (--test-files or --test-split) or more data.")
    n_test = max(math.ceil(fraction * len(shared)), int((counts >= 2).sum()))
    keep, test = train_test_split(shared, test_size=n_test, random_state=seed, stratify=labels[shared])
    return train.select(np.sort(np.concatenate([keep, singles]))), train.select(np.sort(test))


def drop_missing_inputs(ds: datasets.Dataset, column: str, modality: str, role: str) -> datasets.Dataset:
    """Drop rows whose text is missing (None: a blank CSV cell) or blank (JSON "" or whitespace only: no text to
    encode, and `hfssl finetune` drops them too, so every protocol sees the same rows), with a warning giving the
    count. (Images that do not decode are skipped, and counted, where they are decoded.)"""
    if modality != "text":
        return ds
    keep = [i for i, text in enumerate(ds[column]) if isinstance(text, str) and text.strip()]
    if len(keep) == len(ds):
        return ds
    if not keep:
        raise ValueError(f"No {role} row has a text in column {column!r} (all {len(ds)} are empty or blank). Check "
                         "the file, or name the column that holds the texts with --text-column.")
    logger.warning("Dropped %d of %d %s row(s) without a text (column %r).", len(ds) - len(keep), len(ds), role, column)
    return ds.select(keep)

"""Labeled data for fine-tuning: text or images with a label, split into `train` and `test`.

Steps, each a function: `load_splits` (files, a Hub id or builder, a `save_to_disk` folder, or a built-in
set) -> `encode_labels` (one id per label value, from the training split; test-only labels are numbered after
them, with a warning) -> `subsample` (stratified `label_fraction` and example caps, seeded) -> `tokenize_texts` or
`decode_images`. Built-in sets: `fashion-mnist` (IDX files in --data-dir or $HFSSL_DATA_DIR/fashion_mnist),
`digits` (scikit-learn) and `stdlib-docstrings` (docstrings of the standard library labeled by package).
"""

from __future__ import annotations

import ast
import logging
import os
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch
from datasets import ClassLabel, Dataset, DatasetDict

from ..data.files import infer_format, resolve_files
from ..data.images import (
    digits_dataset,
    fashion_mnist_dataset,
    image_files,
    load_image_dataset,
)
from ..data.pixels import normalize, to_float_pixels
from ..data.tables import read_labeled_split

logger = logging.getLogger(__name__)

TASKS: dict[str, str] = {"text-classification": "text", "image-classification": "image"}
MODALITY_ALIASES = {"text": "text", "image": "image", "vision": "image"}
BUILTIN_DATASETS: dict[str, str] = {"fashion-mnist": "image", "digits": "image", "stdlib-docstrings": "text"}
STDLIB_PACKAGES = ("asyncio", "email", "http", "importlib", "logging", "multiprocessing", "unittest", "xml")
_LABEL_IDS = "_hfssl_label_id"
_SKIPPED_DIRS = frozenset({"test", "tests", "idlelib", "__pycache__"})


@dataclass
class DataSpec:
    """Where the labeled data comes from and how much of it to use."""

    train_files: list[str] | None = None  # local csv/tsv/json/jsonl/parquet (text) or image files/globs
    test_files: list[str] | None = None
    dataset: str | None = None  # Hub id, builder ("csv", "imagefolder"), save_to_disk folder, or a built-in set
    dataset_config: str | None = None
    data_dir: str | None = None
    train_split: str = "train"
    test_split: str = "test"
    text_column: str = "text"
    image_column: str | None = None  # None: the first image column
    label_column: str = "label"
    label_fraction: float | None = None  # stratified fraction of the training labels kept (few-label runs)
    max_train_examples: int | None = None  # stratified caps, for quick runs
    max_test_examples: int | None = None
    test_fraction: float = 0.2  # carved off the training split (stratified) when there is no test split
    seed: int = 0

    def __post_init__(self) -> None:
        if self.label_fraction is not None and not 0 < self.label_fraction <= 1:
            raise ValueError(f"--label-fraction must be in (0, 1], got {self.label_fraction!r}.")
        for name in ("max_train_examples", "max_test_examples"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {value!r}.")
        if not 0 < self.test_fraction < 1:
            raise ValueError(f"test_fraction must be in (0, 1), got {self.test_fraction!r}.")
        if bool(self.train_files) == bool(self.dataset):
            raise ValueError(
                "Give exactly one data source: --train-files (with --test-files) or --dataset "
                f"(a Hub id, a builder such as imagefolder with --data-dir, or one of {', '.join(BUILTIN_DATASETS)}); "
                f"got train_files={self.train_files!r}, dataset={self.dataset!r}."
            )
        self._check_unused()

    def _check_unused(self) -> None:
        """Refuse data flags that the chosen source would ignore."""
        if self.dataset and self.test_files:
            raise ValueError(
                f"--test-files goes with --train-files, not with --dataset ({self.dataset}): its test split is "
                "--test-split, or a stratified share of the training rows. Pass --train-files too, or drop "
                "--test-files."
            )
        if self.train_files:
            for flag, value in (("--data-dir", self.data_dir), ("--dataset-config", self.dataset_config)):
                if value:
                    raise ValueError(f"{flag} goes with --dataset and would be ignored with --train-files; drop it "
                                     "(or load the data with --dataset instead).")


# ----------------------------------------------------------------------------------------------- modality


def task_modality(task: str) -> str:
    """"text" or "image" for a task name; ValueError naming the tasks otherwise."""
    if task not in TASKS:
        raise ValueError(f"Unknown --task {task!r}; valid tasks: {', '.join(TASKS)}.")
    return TASKS[task]


def check_modality(task: str, parent_modality: str | None, parent: str) -> None:
    """Refuse a parent whose modality (from its run.json or config) does not fit the task."""
    wanted = task_modality(task)
    found = MODALITY_ALIASES.get(parent_modality or "", parent_modality)
    if found is not None and found != wanted:
        other = next(t for t, m in TASKS.items() if m == found) if found in TASKS.values() else None
        hint = f"use --task {other}, or " if other else ""
        raise ValueError(
            f"The parent {parent} is {_article(found)} {found} model but --task {task} needs {_article(wanted)} "
            f"{wanted} model; {hint}fine-tune {_article(wanted)} {wanted} parent."
        )


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def check_dataset_modality(spec: DataSpec, task: str) -> None:
    """Refuse a built-in dataset of the other modality (e.g. --dataset digits with text-classification)."""
    kind = BUILTIN_DATASETS.get(spec.dataset or "")
    if kind is not None and kind != task_modality(task):
        raise ValueError(f"--dataset {spec.dataset} holds {kind} data but --task is {task}.")


# ----------------------------------------------------------------------------------------------- sources


def stdlib_docstrings_by_package(packages: tuple[str, ...] = STDLIB_PACKAGES) -> Dataset:
    """Docstrings (>= 40 characters) of standard-library packages, labeled by package: `text`, `label` (ClassLabel).

    Real text with a real label that ships with every Python; files are parsed, never imported.
    """
    root = Path(sysconfig.get_paths()["stdlib"])
    texts, labels = [], []
    for label, package in enumerate(packages):
        for path in sorted((root / package).rglob("*.py")):
            if _SKIPPED_DIRS & set(path.relative_to(root).parts):
                continue
            docs = _docstrings(path)
            texts += docs
            labels += [label] * len(docs)
    features = datasets.Features({"text": datasets.Value("string"), "label": ClassLabel(names=list(packages))})
    return Dataset.from_dict({"text": texts, "label": labels}, features=features)


def _docstrings(path: Path) -> list[str]:
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (SyntaxError, ValueError, OSError):
        return []  # a few stdlib files are templates or need another Python version
    nodes = [tree] + [n for n in ast.walk(tree) if isinstance(n, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))]
    return [doc for doc in map(ast.get_docstring, nodes) if doc and len(doc) >= 40]


def _fashion_mnist_dir(data_dir: str | None) -> Path:
    if data_dir:
        return Path(data_dir)
    shared = os.environ.get("HFSSL_DATA_DIR")
    if not shared:
        raise FileNotFoundError(
            "--dataset fashion-mnist needs its IDX files: pass --data-dir FOLDER or set HFSSL_DATA_DIR to the folder "
            "that holds fashion_mnist/."
        )
    return Path(shared) / "fashion_mnist"


def _builtin(spec: DataSpec) -> tuple[DatasetDict, bool]:
    """A built-in set as train/test; the bool says whether the test split was carved here."""
    if spec.dataset == "fashion-mnist":
        folder = _fashion_mnist_dir(spec.data_dir)
        splits = DatasetDict(train=fashion_mnist_dataset(folder, "train"), test=fashion_mnist_dataset(folder, "test"))
        return splits, False
    full = digits_dataset() if spec.dataset == "digits" else stdlib_docstrings_by_package()
    return carve_test_split(full, spec.test_fraction, spec.seed), True


def _local(spec: DataSpec, modality: str) -> DatasetDict:
    roles = {"train": spec.train_files, "test": spec.test_files}
    if modality == "image":  # folders become their image files, globs and files are checked (named when missing)
        data_files = {role: image_files(files, f"--{role}-files") for role, files in roles.items() if files}
        splits = datasets.load_dataset("imagefolder", data_files=data_files)
        unlabeled = [role for role, split in splits.items() if spec.label_column not in split.column_names]
        if unlabeled:
            raise ValueError(
                f"The --{unlabeled[0]}-files images have no labels: an image's label is the name of the folder it is "
                "in, and these images are all in one folder. Arrange them as FOLDER/<label>/<image> (one sub-folder "
                "per class) and pass FOLDER."
            )
        return splits
    resolved = {role: resolve_files(files, f"--{role}-files") for role, files in roles.items() if files}
    # A format per split (train.jsonl with test.parquet is fine): each split is loaded on its own.
    return DatasetDict({role: _load_text_split(files, spec, role) for role, files in resolved.items()})


def _load_text_split(files: list[Path], spec: DataSpec, role: str) -> Dataset:
    """One split's files (`role`: train or test), loaded on their own so that train and test need not share a schema.

    When the text and label columns are both there, only they are kept (other columns may differ between the
    splits) and the text column is read as strings (a column of numbers, or of blanks only, is inferred otherwise).
    """
    fmt = infer_format(files)
    split = read_labeled_split(fmt, files, what=role, flag=f"--{role}-files")
    needed = list(dict.fromkeys([spec.text_column, spec.label_column]))
    if fmt == "text" and spec.label_column not in split.column_names:
        raise ValueError(
            f"{files[0]} is read as plain text, one example per line with no label (a .txt/.text file). Give the "
            "texts and labels as csv, tsv, json, jsonl or parquet with a text and a label column."
        )
    if not set(needed) <= set(split.column_names):
        return split  # the column checks name the missing one with every column of the file
    split = split.select_columns(needed)
    text = split.features[spec.text_column]
    if isinstance(text, datasets.Value) and text.dtype not in ("string", "large_string"):
        split = split.cast_column(spec.text_column, datasets.Value("string"))
    return split


def _hub_or_disk(spec: DataSpec) -> DatasetDict:
    path = Path(spec.dataset)
    if path.is_dir() and ((path / "dataset_dict.json").is_file() or (path / "state.json").is_file()):
        loaded = datasets.load_from_disk(str(path))
    else:
        loaded = datasets.load_dataset(spec.dataset, spec.dataset_config, data_dir=spec.data_dir)
    if isinstance(loaded, Dataset):
        loaded = DatasetDict(train=loaded)
    if spec.train_split not in loaded:
        raise ValueError(
            f"Dataset {spec.dataset!r} has no split {spec.train_split!r}; it has {sorted(loaded)}. Pass --train-split."
        )
    splits = {"train": loaded[spec.train_split]}
    if spec.test_split in loaded and spec.test_split != spec.train_split:
        splits["test"] = loaded[spec.test_split]
    return DatasetDict(splits)


def load_splits(spec: DataSpec, modality: str) -> tuple[DatasetDict, dict[str, Any]]:
    """Raw `train` and `test` splits and a description for run.json; a missing test split is carved (stratified)."""
    if modality == "text" and spec.text_column == spec.label_column:
        raise ValueError(f"--text-column and --label-column both name {spec.text_column!r}; the text and the label "
                         "must be two columns of the data.")
    carved = False
    if spec.dataset in BUILTIN_DATASETS:
        splits, carved = _builtin(spec)
        source: Any = spec.dataset
    elif spec.train_files:
        splits, source = _local(spec, modality), {"train": spec.train_files, "test": spec.test_files}
    else:
        splits, source = _hub_or_disk(spec), spec.dataset
    if modality == "text":
        splits = drop_empty_texts(splits, spec.text_column)
    if "test" not in splits:
        logger.warning("No test split given: %.0f%% of the training rows become the test split.",
                       100 * spec.test_fraction)
        train = clean_labels(splits["train"], spec.label_column, "train")
        splits, carved = carve_test_split(train, spec.test_fraction, spec.seed, spec.label_column), True
    description = {"source": source, "dataset_config": spec.dataset_config, "data_dir": spec.data_dir,
                   "test_split_carved": carved, "fingerprint": splits["train"]._fingerprint}
    return splits, description


def drop_empty_texts(splits: DatasetDict, text_column: str) -> DatasetDict:
    """Drop rows whose text is missing or blank, with a warning per split that loses any.

    Raises:
        ValueError: the column is missing (names the split's columns), or a split has no text left.
    """
    kept = {}
    for role, split in splits.items():
        if text_column not in split.column_names:
            raise ValueError(
                f"Text column {text_column!r} not found in the {role} split; its columns are {split.column_names}. "
                "Pass the right one with --text-column."
            )
        kept[role] = split.filter(lambda batch: [_has_text(t) for t in batch[text_column]], batched=True)
        dropped = len(split) - len(kept[role])
        if len(kept[role]) == 0:
            raise ValueError(
                f"The {role} split has no rows with non-empty text in column {text_column!r} ({len(split)} rows, "
                "all empty or blank). Check the file, or pass the column that holds the text with --text-column."
            )
        if dropped:
            logger.warning("Dropped %d of %d %s row(s) with empty text (column %r).", dropped, len(split), role,
                           text_column)
    return DatasetDict(kept)


def _has_text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


# ----------------------------------------------------------------------------------------------- labels


def _check_label_column(split: Dataset, column: str, role: str) -> None:
    if column not in split.column_names:
        raise ValueError(
            f"Label column {column!r} not found in the {role} split; its columns are {split.column_names}. "
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


# ----------------------------------------------------------------------------------------------- subsets


def stratified_indices(labels: list[int] | np.ndarray, size: int, seed: int) -> list[int]:
    """`size` row indices (at least one per class) drawn per class in proportion to its count; sorted.

    labels: (n,) class ids. Reproducible for a given seed. Exactly `min(size, n)` rows unless there are more classes
    than that (then one per class): the per-class shares are rounded by largest remainder, since rounding each on its
    own drifts (four classes of 5 rows and size 10 gave 4 x round(2.5) = 8 rows, a cap of 10 on [99, 1] gave 11).
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    values, counts = np.unique(labels, return_counts=True)
    quotas = _largest_remainder_quotas(counts, min(size, len(labels)))
    chosen = []
    for value, quota in zip(values.tolist(), quotas.tolist(), strict=True):
        rows = np.flatnonzero(labels == value)
        chosen.append(rng.permutation(rows)[:quota])
    return sorted(np.concatenate(chosen).tolist())


def _largest_remainder_quotas(counts: np.ndarray, size: int) -> np.ndarray:
    """Rows per class summing to `size` (or to the number of classes, if larger): each class's share of `size` in
    proportion to its count, at least 1 and at most its count, rounded by largest remainder (ties: first class)."""
    exact = size * counts / counts.sum()
    quotas = np.clip(np.floor(exact).astype(int), 1, counts)
    target = max(size, len(counts))
    while quotas.sum() < target:  # the classes furthest below their exact share gain a row
        room = np.where(quotas < counts, exact - quotas, -np.inf)
        quotas[int(np.argmax(room))] += 1
    while quotas.sum() > target:  # forced up to 1: the classes furthest above their exact share give one back
        excess = np.where(quotas > 1, quotas - exact, -np.inf)
        quotas[int(np.argmax(excess))] -= 1
    return quotas


def carve_test_split(full: Dataset, test_fraction: float, seed: int, label_column: str = "label") -> DatasetDict:
    """Stratified train/test split of one labeled dataset.

    Raises:
        ValueError: a class has a single row, which cannot be in both splits.
    """
    values, counts = np.unique(np.asarray(full[label_column]), return_counts=True)
    lonely = [v for v, c in zip(values.tolist(), counts.tolist(), strict=True) if c < 2]
    if lonely:
        raise ValueError(
            f"No test split was given and {len(lonely)} class(es) have a single labeled row ({lonely[:5]}): each "
            "class needs 2 to be in both the training and the carved test split. Give a test split (--test-files "
            "or --test-split) or more labeled rows."
        )
    test = set(stratified_indices(full[label_column], round(test_fraction * len(full)), seed))
    train = [i for i in range(len(full)) if i not in test]
    return DatasetDict(train=full.select(train), test=full.select(sorted(test)))


def subsample(splits: DatasetDict, spec: DataSpec) -> DatasetDict:
    """Apply `label_fraction`, then `max_train_examples` / `max_test_examples`, all stratified by label."""
    train, test = splits["train"], splits["test"]
    if spec.label_fraction is not None and spec.label_fraction < 1:
        train = train.select(stratified_indices(train["label"], round(spec.label_fraction * len(train)), spec.seed))
    if spec.max_train_examples is not None and spec.max_train_examples < len(train):
        train = train.select(stratified_indices(train["label"], spec.max_train_examples, spec.seed))
    if spec.max_test_examples is not None and spec.max_test_examples < len(test):
        test = test.select(stratified_indices(test["label"], spec.max_test_examples, spec.seed))
    return DatasetDict(train=train, test=test)


# ----------------------------------------------------------------------------------------------- encoding


def tokenize_texts(splits: DatasetDict, tokenizer, text_column: str, max_length: int) -> DatasetDict:
    """`input_ids`, `attention_mask`, `label` per row, truncated to `max_length` tokens; rows without text dropped."""
    for role, split in splits.items():
        if text_column not in split.column_names:
            raise ValueError(
                f"Text column {text_column!r} not found in the {role} split; its columns are {split.column_names}. "
                "Pass the right one with --text-column."
            )
    splits = splits.filter(lambda batch: [bool(t and t.strip()) for t in batch[text_column]], batched=True)

    def encode(batch: dict[str, list]) -> dict[str, list]:
        encoded = tokenizer(batch[text_column], truncation=True, max_length=max_length)
        return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}

    columns = splits["train"].column_names
    return splits.map(encode, batched=True, remove_columns=[c for c in columns if c != "label"])


def decode_images(splits: DatasetDict, image_column: str | None, image_size: int, num_channels: int) -> DatasetDict:
    """uint8 `pixel_values` (num_channels, image_size, image_size) and `label` per row (hfssl.data.images)."""
    decoded = {}
    for role, split in splits.items():
        decoded[role], _ = load_image_dataset(dataset=split, image_column=image_column, label_column="label",
                                              image_size=image_size, num_channels=num_channels)
    return DatasetDict(decoded)


@dataclass
class ImageClassificationCollator:
    """Rows of uint8 `pixel_values` (C, H, W) and `label` -> float `pixel_values` (B, C, H, W) and `labels` (B,).

    Rescale by 1/255 and normalize with `mean`/`std`: what the saved ViT image processor does at inference.
    """

    mean: list[float]
    std: list[float]

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        pixels = torch.stack([torch.as_tensor(np.asarray(row["pixel_values"])) for row in rows])  # (B, C, H, W)
        labels = torch.tensor([int(row["label"]) for row in rows], dtype=torch.long)  # (B,)
        return {"pixel_values": normalize(to_float_pixels(pixels), self.mean, self.std), "labels": labels}

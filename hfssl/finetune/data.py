"""Labeled data for fine-tuning: text or images with a label, split into `train` and `test`.

Steps, each a function: `load_splits` (files, a Hub id or builder, a `save_to_disk` folder, or a built-in
set) -> `encode_labels` (`hfssl.finetune.labels`: one id per label value, from the training split; test-only
labels are numbered after them, with a warning) -> `subsample` (stratified `label_fraction` and example caps,
seeded) -> `tokenize_texts` or `decode_images`. Built-in sets: `fashion-mnist` (IDX files in --data-dir or
$HFSSL_DATA_DIR/fashion_mnist), `digits` (scikit-learn) and `stdlib-docstrings` (docstrings of the standard
library labeled by package).
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

from ..data.files import column_list, infer_format, resolve_files
from ..data.images import (
    digits_dataset,
    fashion_mnist_dataset,
    image_files,
    load_image_dataset,
)
from ..data.in_memory import source_name
from ..data.pixels import normalize, to_float_pixels
from ..data.tables import read_labeled_split
from .labels import clean_labels

logger = logging.getLogger(__name__)

TASKS: dict[str, str] = {"text-classification": "text", "image-classification": "image"}
MODALITY_ALIASES = {"text": "text", "image": "image", "vision": "image"}
BUILTIN_DATASETS: dict[str, str] = {"fashion-mnist": "image", "digits": "image", "stdlib-docstrings": "text"}
STDLIB_PACKAGES = ("asyncio", "email", "http", "importlib", "logging", "multiprocessing", "unittest", "xml")
_SKIPPED_DIRS = frozenset({"test", "tests", "idlelib", "__pycache__"})


@dataclass
class DataSpec:
    """Where the labeled data comes from and how much of it to use."""

    train_files: list[str] | None = None  # local csv/tsv/json/jsonl/parquet (text) or image files/globs
    test_files: list[str] | None = None
    # Hub id, builder ("csv", "imagefolder"), save_to_disk folder, built-in set, or an in-memory Dataset/DatasetDict
    dataset: str | Dataset | DatasetDict | None = None
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
        if self.dataset is not None and not isinstance(self.dataset, (str, Dataset, DatasetDict)):
            raise ValueError(
                f"dataset= got a {type(self.dataset).__name__} object: pass a Hub id, a builder name, a save_to_disk "
                "folder, a built-in set, or an in-memory datasets.Dataset or DatasetDict (e.g. "
                "datasets.Dataset.from_pandas(frame); a stream: datasets.Dataset.from_list(list(stream.take(n))))."
            )
        if bool(self.train_files) == (self.dataset not in (None, "")):
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
    kind = BUILTIN_DATASETS.get(spec.dataset) if isinstance(spec.dataset, str) else None
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
    path = Path(spec.dataset) if isinstance(spec.dataset, str) else None
    if path is None:
        loaded = spec.dataset  # in memory
    elif path.is_dir() and ((path / "dataset_dict.json").is_file() or (path / "state.json").is_file()):
        loaded = datasets.load_from_disk(str(path))
    else:
        loaded = datasets.load_dataset(spec.dataset, spec.dataset_config, data_dir=spec.data_dir)
    if isinstance(loaded, Dataset):
        loaded = DatasetDict(train=loaded)
    if spec.train_split not in loaded:
        where = repr(spec.dataset) if isinstance(spec.dataset, str) else f"({source_description(spec.dataset)})"
        raise ValueError(
            f"Dataset {where} has no split {spec.train_split!r}; it has {sorted(loaded)}. Pass --train-split "
            "(train_split= from Python)."
        )
    splits = {"train": loaded[spec.train_split]}
    if spec.test_split in loaded and spec.test_split != spec.train_split:
        splits["test"] = loaded[spec.test_split]
    if spec.dataset == "imagefolder" and spec.label_column == "label" and "label" not in splits["train"].column_names:
        # imagefolder infers no label from one folder of images (or images at mixed depths); --label-column cannot help
        raise ValueError(
            f"The images in --data-dir {spec.data_dir} have no labels: an image's label is the name of the folder it "
            "is in, and imagefolder found no class folders (all images in one folder, or at different depths). "
            "Arrange them as FOLDER/<label>/<image> (one sub-folder per class) and pass --data-dir FOLDER."
        )
    return DatasetDict(splits)


def source_description(dataset: str | Dataset | DatasetDict) -> str:
    """How run.json names a `dataset` source: its name, or the kind of an in-memory object."""
    return dataset if isinstance(dataset, str) else source_name(dataset)


def load_splits(spec: DataSpec, modality: str) -> tuple[DatasetDict, dict[str, Any]]:
    """Raw `train` and `test` splits and a description for run.json; a missing test split is carved (stratified)."""
    if modality == "text" and spec.text_column == spec.label_column:
        raise ValueError(f"--text-column and --label-column both name {spec.text_column!r}; the text and the label "
                         "must be two columns of the data.")
    carved = False
    if isinstance(spec.dataset, str) and spec.dataset in BUILTIN_DATASETS:
        splits, carved = _builtin(spec)
        source: Any = spec.dataset
    elif spec.train_files:
        splits, source = _local(spec, modality), {"train": spec.train_files, "test": spec.test_files}
    else:
        splits, source = _hub_or_disk(spec), source_description(spec.dataset)
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
                f"Text column {text_column!r} not found in the {role} split; its columns are "
                f"{column_list(split.column_names)}. "
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
                f"Text column {text_column!r} not found in the {role} split; its columns are "
                f"{column_list(split.column_names)}. "
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

"""In-memory `datasets` objects given from Python as `DataArguments(dataset=...)`: which kinds are taken, the
checks that refuse unusable ones before anything is loaded, the splits they stand for, and how run.json names and
fingerprints them.

A `Dataset` is the training split; a `DatasetDict` gives its `train_split`, and its `validation_split` (by default
its "validation", else its "test" split, when it has one) for validation. An `IterableDataset` (or the train split
of an `IterableDatasetDict`) is a stream, read as `streaming=True` reads a corpus.
"""

from __future__ import annotations

import hashlib
import json
from itertools import islice
from typing import Any

from datasets import Dataset, DatasetDict, IterableDataset, IterableDatasetDict

IN_MEMORY_KINDS = (Dataset, DatasetDict, IterableDataset, IterableDatasetDict)
STREAM_KINDS = (IterableDataset, IterableDatasetDict)
# Splits of a DatasetDict taken for validation when none is named, in this order.
VALIDATION_SPLITS = ("validation", "test")
# A stream has no fingerprint of its own; its first rows (which validation reads anyway) stand for it.
STREAM_FINGERPRINT_ROWS = 1000


def is_in_memory(value: Any) -> bool:
    """Whether `value` is a `datasets` object rather than the name or folder of one."""
    return isinstance(value, IN_MEMORY_KINDS)


def is_stream(value: Any) -> bool:
    return isinstance(value, STREAM_KINDS)


SOURCE_PREFIX = "in-memory datasets."


def source_name(value: Any) -> str:
    """How run.json and the model card name the data: "in-memory datasets.Dataset"."""
    return f"{SOURCE_PREFIX}{type(value).__name__}"


def check_in_memory(value: Any, train_split: str, validation_split: str | None) -> None:
    """Refuse what cannot be trained on, naming the fix: an object that is not a data set, a dict without the
    training split (or without a named validation split), or a data set without rows.

    Raises:
        ValueError: as above.
    """
    if not is_in_memory(value):
        raise ValueError(
            f"DataArguments(dataset=...) got a {type(value).__name__} object: pass a datasets.Dataset, DatasetDict or "
            "IterableDataset (e.g. datasets.Dataset.from_dict({'text': [...]}) or Dataset.from_pandas(frame)), a "
            "Hub id, a builder name (json, csv, text, imagefolder) or a save_to_disk folder."
        )
    if validation_split is not None and not isinstance(value, (DatasetDict, IterableDatasetDict)):
        raise ValueError(
            f"validation_split={validation_split!r} picks a split of a DatasetDict, and a {type(value).__name__} is "
            "one split: drop it (a validation split is carved off with validation_fraction=), or pass "
            "datasets.DatasetDict(train=rows, validation=held_out)."
        )
    if isinstance(value, (DatasetDict, IterableDatasetDict)):
        for role, name in (("train", train_split), ("validation", validation_split)):
            if name is not None and name not in value:
                raise ValueError(
                    f"The in-memory {type(value).__name__} has no split {name!r} (asked for as the {role} split); it "
                    f"has {sorted(value)}. Pass one of them as {role}_split=..., or build it with that split, e.g. "
                    f"DatasetDict({{'{name}': rows}})."
                )
    for name, split in _named_splits(value, train_split, validation_split).items():
        if isinstance(split, Dataset) and len(split) == 0:
            where = f"split {name!r} of the in-memory {type(value).__name__}" if name else "the in-memory Dataset"
            raise ValueError(f"{where} has no rows: give a data set with at least a few rows to train on.")


def _named_splits(value: Any, train_split: str, validation_split: str | None) -> dict[str | None, Any]:
    if isinstance(value, (Dataset, IterableDataset)):
        return {None: value}
    validation = validation_split or default_validation_split(value, train_split)
    return {name: value[name] for name in (train_split, validation) if name is not None and name in value}


def default_validation_split(value: Any, train_split: str) -> str | None:
    """The split of a dict taken for validation when none is named: its "validation", else its "test" split."""
    if not isinstance(value, (DatasetDict, IterableDatasetDict)):
        return None
    return next((name for name in VALIDATION_SPLITS if name in value and name != train_split), None)


def in_memory_splits(value: Any, train_split: str, validation_split: str | None) -> dict[str, tuple[str | None, Any]]:
    """{"train": (split name, data), "validation": (...)} of an in-memory source; "validation" only when the
    object has such a split (else the caller carves one off the training rows). A lone data set's name is None."""
    check_in_memory(value, train_split, validation_split)
    if isinstance(value, (Dataset, IterableDataset)):
        return {"train": (None, value)}
    roles = {"train": (train_split, value[train_split])}
    validation = validation_split or default_validation_split(value, train_split)
    if validation is not None:
        roles["validation"] = (validation, value[validation])
    return roles


def in_memory_fingerprint(split: Any) -> str:
    """A `Dataset`'s own `_fingerprint` (the same for the same rows and transforms, in any process); for a stream,
    a sha256 of its column names and first rows."""
    if isinstance(split, Dataset):
        return split._fingerprint
    digest = hashlib.sha256(json.dumps(list(split.column_names or [])).encode())
    for row in islice(iter(split), STREAM_FINGERPRINT_ROWS):
        digest.update(json.dumps(row, sort_keys=True, default=repr).encode())
    return digest.hexdigest()


def describe_in_memory(value: Any, splits: dict[str, tuple[str | None, Any]]) -> dict[str, Any]:
    """run.json's account of an in-memory source: its kind, the split names used, the columns it had."""
    train_name, train = splits["train"]
    description: dict[str, Any] = {"source": source_name(value), "format": "in-memory",
                                   "columns": list(train.column_names or [])}
    if train_name is not None:
        description["train_split"] = train_name
    if "validation" in splits:
        description["validation_split"] = splits["validation"][0]
    dataset_name = getattr(getattr(train, "info", None), "dataset_name", None)
    if dataset_name:
        description["dataset_name"] = dataset_name
    return description

"""Labelled evaluation data: any source -> train and test examples with integer labels, checked.

Sources: the built-in names `fashion-mnist` (IDX files in a folder) and `digits` (scikit-learn), a
`save_to_disk` folder, a `datasets` builder or Hub id, or local files (csv/json/parquet/txt for text,
image files or class folders for images). A source without a test split gets a stratified one carved
from its training split. Bad input fails here, before any feature is computed: a missing label
column, a single class (an image folder with one class folder included), test labels sharing no class
with the training labels, or data of the other modality than the model's. Classes only one split has
are a warning, recorded in the data description (`labels.class_coverage`).
"""

from __future__ import annotations

import glob
import hashlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
import numpy as np

from ..data.files import column_list
from ..data.images import (
    IMAGE_SUFFIXES,
    digits_dataset,
    fashion_mnist_dataset,
    find_image_column,
    image_files,
    load_image_dataset,
)
from ..data.in_memory import source_name
from .labels import (
    align_test_labels,
    carve_test_split,
    class_coverage,
    class_names,
    drop_missing_inputs,
    drop_missing_labels,
    encode_labels,
    with_test_only_classes,
)

logger = logging.getLogger(__name__)

FASHION_MNIST_NAMES = ("fashion-mnist", "fashion_mnist")
BUILTIN_DATASETS = {"fashion-mnist": "Fashion-MNIST IDX files (--data-dir or $HFSSL_DATA_DIR/fashion_mnist)",
                    "digits": "scikit-learn's 8x8 digits (1,797 images; a test split is carved)"}
DATA_DIR_ENV = "HFSSL_DATA_DIR"
_STRING_DTYPES = ("string", "large_string")
_GLOB_CHARS = set("*?[")


@dataclass
class LabeledSplit:
    """examples: (n,) texts or (n, c, h, w) uint8 pixels; labels: (n,) int64 class ids."""

    examples: list[str] | np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class LabeledData:
    """Train and test splits sharing one label encoding, and their description for run.json.

    rows: the same train and test rows as `datasets` splits (input and label columns as loaded), for protocols that
    read the data themselves (finetune), so that they score the very test examples the other protocols do.
    """

    train: LabeledSplit
    test: LabeledSplit
    class_names: list[str]
    description: dict[str, Any] = field(default_factory=dict)
    rows: datasets.DatasetDict | None = None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


@dataclass
class DataOptions:
    """Where the labelled data comes from and which columns hold what (the `hfssl evaluate` data flags)."""

    dataset: str | datasets.Dataset | datasets.DatasetDict | None = None
    data_dir: str | None = None
    train_files: list[str] | None = None
    test_files: list[str] | None = None
    train_split: str = "train"
    test_split: str | None = None  # None: "test" when the source has it, else carved from train
    text_column: str | None = None
    image_column: str | None = None
    label_column: str = "label"
    max_train_examples: int | None = None
    max_test_examples: int | None = None
    test_fraction: float = 0.2
    seed: int = 0


# ---------------------------------------------------------------------------------------------- sources


def _fashion_mnist_dir(data_dir: str | None) -> Path:
    if data_dir:
        return Path(data_dir)
    if os.environ.get(DATA_DIR_ENV):
        return Path(os.environ[DATA_DIR_ENV]) / "fashion_mnist"
    raise FileNotFoundError(
        "--dataset fashion-mnist reads the four Fashion-MNIST IDX .gz files from --data-dir, or from "
        f"${DATA_DIR_ENV}/fashion_mnist; set one of them."
    )


def _pick_splits(loaded: Any, options: DataOptions, where: str) -> tuple[datasets.Dataset, datasets.Dataset | None]:
    """(train, test or None) from a Dataset or DatasetDict, by the split names in `options`."""
    if isinstance(loaded, datasets.Dataset):
        return loaded, None
    if options.train_split not in loaded:
        raise ValueError(f"{where} has no split {options.train_split!r}; its splits are {sorted(loaded)}. "
                         "Pass one of them with --train-split.")
    if options.test_split is not None and options.test_split not in loaded:
        raise ValueError(f"{where} has no split {options.test_split!r}; its splits are {sorted(loaded)}. "
                         "Pass one of them with --test-split, or leave it out to carve a test split from train.")
    test_split = options.test_split or ("test" if "test" in loaded else None)
    return loaded[options.train_split], loaded[test_split] if test_split else None


def _load_files(options: DataOptions, modality: str | None = None) -> datasets.DatasetDict:
    """Train (+ test) files as splits; text files of each split are loaded on their own (see `_load_text_files`).

    Images are read by `imagefolder` (the folder holding each image names its class). For an image model, folders
    that hold images are read as images even when they also hold text files (a README.txt, a LICENSE).
    """
    from ..data.files import infer_format, resolve_files

    roles = {"train": options.train_files, "test": options.test_files}
    roles = {role: list(files) for role, files in roles.items() if files}
    if modality == "image" and _all_images(roles):
        return _load_image_files(roles, options)
    try:
        resolved = {role: resolve_files(files, f"--{role}-files") for role, files in roles.items()}
        builder = infer_format([f for files in resolved.values() for f in files])
    except (FileNotFoundError, ValueError) as text_error:
        if _all_images(roles):
            return _load_image_files(roles, options)
        exists = all(_GLOB_CHARS & set(p) or Path(p).expanduser().exists() for files in roles.values() for p in files)
        if isinstance(text_error, FileNotFoundError) and exists:  # found, but holds no file of a known kind
            raise FileNotFoundError(f"{text_error} No image file ({', '.join(sorted(IMAGE_SUFFIXES))}) either: give "
                                    "labelled text files, or image files in one folder per class.") from None
        raise text_error from None  # no image either: the text reader's message names the problem
    return datasets.DatasetDict({role: _load_text_files(builder, files, role, options)
                                 for role, files in resolved.items()})


def _images_at(pattern: str) -> Iterator[Path]:
    """The image files (by extension) a file, folder or glob names, lazily."""
    path = Path(pattern).expanduser()
    if _GLOB_CHARS & set(pattern):
        found = (Path(m) for m in glob.iglob(str(path), recursive=True))
    else:
        found = path.rglob("*") if path.is_dir() else iter([path])
    return (f for f in found if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())


def _all_images(roles: dict[str, list[str]]) -> bool:
    """Whether every given path (file, folder or glob) names at least one image file."""
    return all(next(_images_at(pattern), None) for files in roles.values() for pattern in files)


def _load_image_files(roles: dict[str, list[str]], options: DataOptions) -> datasets.DatasetDict:
    """Image files, globs or class folders through `imagefolder`; a ValueError saying how to lay out the folders
    when it found no classes (one class folder, or images at different depths)."""
    images = {role: image_files(files, f"--{role}-files") for role, files in roles.items()}  # clear "not found"s
    loaded = datasets.load_dataset("imagefolder", data_files=images)
    if options.label_column == "label" and all("label" not in split.column_names for split in loaded.values()):
        raise _no_image_classes(roles)
    return loaded


def _no_image_classes(roles: dict[str, list[str]]) -> ValueError:
    """Why `imagefolder` inferred no labels from these images, and the folder layout that fixes it."""
    files = [f for patterns in roles.values() for pattern in patterns for f in _images_at(pattern)]
    where = ", ".join(repr(p) for patterns in roles.values() for p in patterns)
    layout = ("Lay the images out one folder per class, every image directly inside its class folder "
              "(e.g. photos/cat/1.png, photos/dog/2.png), or pass a dataset that has a label column.")
    folders = sorted({f.parent.name for f in files})
    if len(folders) == 1:
        return ValueError(
            f"Only one class found at {where}: all {len(files)} images are in the folder {folders[0]!r}, and an image's "
            f"class is the name of the folder holding it. The probe needs at least 2 classes. {layout}")
    depths = sorted({len(f.parts) for f in files})
    return ValueError(
        f"No class labels could be read from the images at {where}: they lie at different folder depths "
        f"({', '.join(map(str, depths))} path parts), so the folder names were not taken as classes. {layout}")


def _load_text_files(builder: str, files: list[Path], role: str, options: DataOptions) -> datasets.Dataset:
    """One split's csv/json/parquet/txt files, so train and test files need not share their other columns.

    Raises:
        ValueError: a csv/parquet file lacks the label column or the --text-column (names the file and its columns),
            or a file cannot be read (see `hfssl.data.tables.read_labeled_split`).
    """
    from ..data.files import file_columns, read_only_if_headers_differ
    from ..data.tables import read_labeled_split, refuse_empty_files

    refuse_empty_files(files, what=role, flag=f"--{role}-files")  # before its header reads as no columns
    headers = {path: file_columns(path, builder) for path in files}
    needed = [c for c in (options.label_column, options.text_column) if c is not None]
    for path, columns in headers.items():
        missing = [c for c in needed if columns is not None and c not in columns]
        if missing:
            flag = "--label-column" if missing[0] == options.label_column else "--text-column"
            raise ValueError(f"The {role} file {str(path)!r} (from --{role}-files) has no column {missing[0]!r}; its "
                             f"columns are {column_list(columns)}. Give files that have it, or name the right column with {flag}.")
    known = [c for c in headers.values() if c is not None]
    shared = [c for c in known[0] if all(c in other for other in known)] if known else []  # what they all have
    split = read_labeled_split(builder, files, what=role, flag=f"--{role}-files",
                               **read_only_if_headers_differ(builder, known, shared))
    if options.label_column not in split.column_names:  # json/txt: no header to check up front
        raise ValueError(f"The {role} files ({', '.join(map(str, files))}) have no column {options.label_column!r}; "
                         f"their columns are {column_list(split.column_names)}. Give files with labels, or name the column that "
                         "holds them with --label-column.")
    return split


def load_source(options: DataOptions, modality: str | None = None
                ) -> tuple[datasets.Dataset, datasets.Dataset | None, str]:
    """(train, test or None, source description) for any source named by `options`; `modality` ("text" or
    "image", the model's) decides how a folder holding both text and image files is read."""
    dataset = options.dataset
    if (dataset is None) == (options.train_files is None):
        raise ValueError("Give exactly one labelled data source: --dataset (a builtin name "
                         f"({', '.join(BUILTIN_DATASETS)}), a save_to_disk folder, a builder or Hub id) or --train-files.")
    if options.test_files and dataset is not None:
        raise ValueError("--test-files goes with --train-files; with --dataset use --test-split.")
    if options.train_files is not None:
        train, test = _pick_splits(_load_files(options, modality), DataOptions(), "the files")
        return train, test, f"files:{','.join(options.train_files)}"
    if isinstance(dataset, (datasets.Dataset, datasets.DatasetDict)):
        return (*_pick_splits(dataset, options, "the dataset"), source_name(dataset))
    if not isinstance(dataset, (str, os.PathLike)):
        stream = isinstance(dataset, (datasets.IterableDataset, datasets.IterableDatasetDict))
        raise ValueError(  # noqa: TRY004 -- bad user input, reported as the other data errors are
            f"dataset= got a {type(dataset).__name__} object: pass a datasets.Dataset or DatasetDict"
            + (" (a stream's first n rows: datasets.Dataset.from_list(list(stream.take(n))))" if stream else "")
            + ", a built-in name, a save_to_disk folder, a builder or a Hub id."
        )
    if dataset in FASHION_MNIST_NAMES:
        # The IDX files are in random order, so their first N images are a fair subset and far cheaper than
        # encoding all 60,000 before sampling.
        folder = _fashion_mnist_dir(options.data_dir)
        train = fashion_mnist_dataset(folder, "train", limit=options.max_train_examples)
        test = fashion_mnist_dataset(folder, "test", limit=options.max_test_examples)
        return train, test, f"fashion-mnist:{folder}"
    if dataset == "digits":
        return digits_dataset(), None, "sklearn-digits"
    if Path(dataset).is_dir() and any((Path(dataset) / name).is_file() for name in ("state.json", "dataset_dict.json")):
        return (*_pick_splits(datasets.load_from_disk(dataset), options, dataset), f"disk:{dataset}")
    loaded = datasets.load_dataset(dataset, data_dir=options.data_dir)
    if dataset == "imagefolder" and options.data_dir and options.label_column == "label" and not any(
            "label" in split.column_names for split in loaded.values()):
        raise _no_image_classes({"data": [options.data_dir]})
    return (*_pick_splits(loaded, options, dataset), f"{dataset}" + (f"(data_dir={options.data_dir})" if options.data_dir else ""))


# ---------------------------------------------------------------------------------------------- columns


def _text_columns(features: datasets.Features, exclude: str) -> list[str]:
    return [n for n, f in features.items() if n != exclude and getattr(f, "dtype", None) in _STRING_DTYPES]


def _image_column_or_none(features: datasets.Features, exclude: str) -> str | None:
    try:
        column = find_image_column(datasets.Features({n: f for n, f in features.items() if n != exclude}))
    except ValueError:
        return None
    return column


def check_label_column(features: datasets.Features, label_column: str) -> None:
    """ValueError listing the columns when `label_column` is not one of them."""
    if label_column not in features:
        raise ValueError(f"Label column {label_column!r} not found; the columns are {column_list(features)}. "
                         "Pass the column that holds the labels with --label-column.")


def input_column(features: datasets.Features, modality: str, options: DataOptions) -> str:
    """The column holding the model's inputs; ValueError when the data is of the other modality."""
    label = options.label_column
    texts, image = _text_columns(features, label), _image_column_or_none(features, label)
    if modality == "image":
        if options.image_column is not None:
            return find_image_column(features, options.image_column)
        if image is None:
            found = f"it holds text ({', '.join(texts)})" if texts else f"its columns are {column_list(features)}"
            raise ValueError(f"The model is an image encoder but the dataset has no image column; {found}. "
                             "Evaluate a text model on text data, or name the image column with --image-column.")
        return image
    if options.text_column is not None:
        if options.text_column not in texts:
            raise ValueError(f"Text column {options.text_column!r} is not a column of strings; the text columns "
                             f"are {texts} (all columns: {list(features)}). Pass one with --text-column.")
        return options.text_column
    if not texts:
        found = f"it holds images ({image!r})" if image else f"its columns are {column_list(features)}"
        raise ValueError(f"The model is a text encoder but the dataset has no text column; {found}. "
                         "Evaluate an image model on image data, or name the text column with --text-column.")
    return "text" if "text" in texts else texts[0]


# ---------------------------------------------------------------------------------------------- rows


def _limit(ds: datasets.Dataset, max_examples: int | None, seed: int, flag: str) -> datasets.Dataset:
    if max_examples is None or max_examples >= len(ds):
        return ds
    if max_examples < 1:
        raise ValueError(f"{flag}={max_examples} must be >= 1.")
    return ds.shuffle(seed=seed).select(range(max_examples))


def _examples(ds: datasets.Dataset, column: str, modality: str, label: str, model_config: Any) -> tuple[Any, list]:
    """(examples, label values): texts as a list, images decoded to uint8 (n, c, h, w) at the model's size."""
    if modality == "text":
        return [t if isinstance(t, str) else "" for t in ds[column]], list(ds[label])
    size, channels = int(model_config.image_size), int(model_config.num_channels)
    decoded, _ = load_image_dataset(dataset=ds, image_column=column, label_column=label,
                                    image_size=size, num_channels=channels)
    pixels = np.stack(decoded.with_format("numpy", columns=["pixel_values"])["pixel_values"]).astype(np.uint8)
    return pixels, list(decoded.with_format(None)["label"])


def load_labeled_data(options: DataOptions, modality: str, model_config: Any = None) -> LabeledData:
    """Load, check and encode the labelled train/test splits for a `modality` ("text" or "image") model.

    Images are decoded to the model's `image_size` and `num_channels` (from `model_config`).
    """
    for flag, limit in (("--max-train-examples", options.max_train_examples),
                        ("--max-test-examples", options.max_test_examples)):
        if limit is not None and limit < 1:  # before the source is read: fashion-mnist would read 0 images
            raise ValueError(f"{flag}={limit} must be >= 1.")
    train, test, source = load_source(options, modality)
    check_label_column(train.features, options.label_column)
    column = input_column(train.features, modality, options)
    train = drop_missing_inputs(drop_missing_labels(train, options.label_column, "training"), column, modality, "training")
    if test is not None:
        check_label_column(test.features, options.label_column)
        if column not in test.features:
            where = f"The test files ({', '.join(options.test_files)})" if options.test_files else "The test split"
            raise ValueError(f"{where} have no column {column!r}, which holds the inputs in the training data; their "
                             f"columns are {list(test.features)}. Give test data with that column, or name the text "
                             "column both share with --text-column.")
        test = drop_missing_inputs(drop_missing_labels(test, options.label_column, "test"), column, modality, "test")
        test_note = "given"
    else:
        train, test = carve_test_split(train, options.label_column, options.test_fraction, options.seed)
        test_note = f"carved: stratified {options.test_fraction:.0%} of the training split, seed {options.seed}"
    sizes = {"train": len(train), "test": len(test)}
    train = _limit(train, options.max_train_examples, options.seed, "--max-train-examples")
    test = _limit(test, options.max_test_examples, options.seed, "--max-test-examples")
    feature = train.features[options.label_column]
    train_x, train_values = _examples(train, column, modality, options.label_column, model_config)
    test_x, test_values = _examples(test, column, modality, options.label_column, model_config)
    names = class_names(feature, train_values)
    train_y = encode_labels(train_values, feature, names, "training")
    present = np.unique(train_y)
    if len(present) < 2:
        raise ValueError(f"The training labels hold one class only ({names[present[0]]!r} in column "
                         f"{options.label_column!r}); probes need at least 2 classes. Check --label-column.")
    test_feature = test.features[options.label_column]
    test_values = align_test_labels(test_values, test_feature, feature)
    names = with_test_only_classes(names, feature, test_values)
    test_y = encode_labels(test_values, feature, names, "test")
    description = {
        "source": source, **_test_source(options), "input_column": column, "label_column": options.label_column,
        "modality": modality, "train_examples": len(train_y), "test_examples": len(test_y), "test_split": test_note,
        **_subset_notes(options, sizes),
        "num_classes": len(names), "class_names": names, **class_coverage(train_y, test_y, names),
        **_overlap(train_x, test_x),
    }
    test_rows = test.select_columns([column, options.label_column])
    if test_feature != feature:  # the fine-tune reads these rows: give its test labels the training split's terms
        test_rows = _relabel(test_rows, options.label_column, test, test_feature, feature)
    rows = datasets.DatasetDict(train=train.select_columns([column, options.label_column]), test=test_rows)
    return LabeledData(LabeledSplit(train_x, train_y), LabeledSplit(test_x, test_y), names, description, rows)


def _relabel(rows: datasets.Dataset, label_column: str, test: datasets.Dataset, test_feature: Any,
             train_feature: Any) -> datasets.Dataset:
    """`rows` with the test labels in the training split's terms (`align_test_labels`), for a training ClassLabel
    or a test ClassLabel; other label columns (ints beside floats, say) are left as they are."""
    if not isinstance(train_feature, datasets.ClassLabel) and not isinstance(test_feature, datasets.ClassLabel):
        return rows
    values = align_test_labels(list(test.with_format(None)[label_column]), test_feature, train_feature)
    feature = train_feature if isinstance(train_feature, datasets.ClassLabel) else datasets.Value("string")
    return rows.remove_columns(label_column).add_column(label_column, values, feature=feature)


def _overlap(train_x: list[str] | np.ndarray, test_x: list[str] | np.ndarray) -> dict[str, int]:
    """{"test_examples_also_in_training": n} when n test inputs equal a training input (texts without surrounding
    whitespace, images pixel for pixel), with a warning: duplicated rows, common in scraped or merged data, land in
    both splits of a carved test split and a nearest neighbour then recalls their labels, inflating every score."""
    def key(x: Any) -> Any:  # images by a digest of their pixels, not a copy of them (a large set would double)
        return x.strip() if isinstance(x, str) else hashlib.blake2b(np.ascontiguousarray(x).tobytes()).digest()

    seen = {key(x) for x in train_x}
    shared = sum(key(x) in seen for x in test_x)
    if not shared:
        return {}
    logger.warning("%d of %d test example(s) are also in the training split (the same %s): scores on them measure "
                   "recall, not generalization. Drop duplicated rows (e.g. pandas drop_duplicates) before splitting.",
                   shared, len(test_x), "text" if isinstance(test_x, list) else "pixels")
    return {"test_examples_also_in_training": shared}


def _test_source(options: DataOptions) -> dict[str, str]:
    return {"test_source": f"files:{','.join(options.test_files)}"} if options.test_files else {}


def _subset_notes(options: DataOptions, sizes: dict[str, int]) -> dict[str, str]:
    """How --max-train-examples / --max-test-examples subsampled each split, for run.json."""
    notes = {}
    for role, limit in (("train", options.max_train_examples), ("test", options.max_test_examples)):
        if limit is not None and options.dataset in FASHION_MNIST_NAMES:  # limited as the IDX file was read
            notes[f"{role}_subset"] = "the first images of the IDX file, which is in random order"
        elif limit is not None and limit < sizes[role]:
            notes[f"{role}_subset"] = f"random subset of {sizes[role]:,}, seed {options.seed}"
    return notes

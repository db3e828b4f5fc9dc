"""Image loading for self-supervised pretraining: any source -> fixed-size uint8 pixels.

`load_image_dataset` turns image files, an `imagefolder`, a `datasets` builder or Hub id, a
folder written by `save_to_disk` or an in-memory `datasets.Dataset` into one map-style dataset
with a `pixel_values` column of uint8 arrays shaped (num_channels, image_size, image_size)
and, when present, a `label` column. Augmentation happens later, batched on the training
device (`hfssl.data.views`), so this stage only decodes, converts and resizes once and lets
`datasets` cache the result.

Resizing choice: every image is resized straight to image_size x image_size with bicubic
filtering (aspect ratio not kept, no crop). That is exactly what the saved
`ViTImageProcessor` (`hfssl.data.pixels.build_image_processor`) does at inference, so pretraining, evaluation
and a Hub user see the same pixels; the random-resized crops of the views supply the
scale and aspect-ratio variation that training needs.
"""

from __future__ import annotations

import glob
import gzip
import io
import logging
from pathlib import Path
from typing import Any, Sequence

import datasets
import numpy as np
from PIL import Image as PILImage
from PIL import ImageOps

logger = logging.getLogger(__name__)

FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]
_FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
_MODES = {1: "L", 3: "RGB"}
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, TypeError, PILImage.DecompressionBombError)
_ERROR_COLUMN = "_hfssl_decode_error"
_SKIPPED_PATHS_SHOWN = 5


# ---------------------------------------------------------------- built-in real image sets


def _read_idx(path: Path, magic: int, header_bytes: int) -> np.ndarray:
    """Read a gzip-compressed IDX file and return its payload as a flat uint8 array."""
    if not path.is_file():
        raise FileNotFoundError(
            f"Fashion-MNIST file {path} not found; pass the folder that holds the four "
            f"IDX .gz files (train-images-idx3-ubyte.gz, ...)."
        )
    raw = gzip.open(path).read()
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        raise ValueError(f"{path} has IDX magic number {found}, expected {magic}; is it the right file?")
    return np.frombuffer(raw, dtype=np.uint8, offset=header_bytes)


def fashion_mnist_dataset(
    data_dir: str | Path, split: str = "train", limit: int | None = None
) -> datasets.Dataset:
    """Fashion-MNIST from its original IDX .gz files in `data_dir`.

    Returns a Dataset with `image` (datasets Image, 28x28 mode "L") and `label`
    (ClassLabel with the 10 class names); `limit` keeps the first `limit` examples.
    """
    if split not in _FASHION_MNIST_FILES:
        raise ValueError(f"split={split!r} is not a Fashion-MNIST split; use 'train' or 'test'.")
    image_file, label_file = _FASHION_MNIST_FILES[split]
    images = _read_idx(Path(data_dir) / image_file, magic=2051, header_bytes=16).reshape(-1, 28, 28)
    labels = _read_idx(Path(data_dir) / label_file, magic=2049, header_bytes=8)
    if len(images) != len(labels):
        raise ValueError(f"{data_dir}: {len(images)} images but {len(labels)} labels for split {split!r}.")
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    return _labelled_image_dataset(list(images), labels.tolist(), FASHION_MNIST_CLASSES, "fashion_mnist")


def digits_dataset() -> datasets.Dataset:
    """The 1,797 8x8 grayscale digits of scikit-learn, scaled from 0..16 to 0..255.

    Returns a Dataset with `image` (datasets Image, 8x8 mode "L") and `label` (ClassLabel "0".."9").
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)  # (1797, 8, 8)
    return _labelled_image_dataset(
        list(images), digits.target.tolist(), [str(d) for d in range(10)], "sklearn_digits"
    )


def _labelled_image_dataset(
    images: list[np.ndarray], labels: list[int], names: list[str], name: str
) -> datasets.Dataset:
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=names)})
    info = datasets.DatasetInfo(dataset_name=name, features=features)
    return datasets.Dataset.from_dict({"image": images, "label": labels}, features=features, info=info)


# ---------------------------------------------------------------- sources and columns


def _load_source(
    train_files: Sequence[str] | None,
    dataset: str | datasets.Dataset | None,
    data_dir: str | None,
    dataset_config: str | None,
    split: str,
    cache_dir: str | None,
) -> tuple[datasets.Dataset, str]:
    """Return the raw dataset and a short description of where it came from."""
    if (train_files is None) == (dataset is None):
        raise ValueError(
            "Pass exactly one image source: train_files (paths or globs such as 'images/**/*.png') "
            "or dataset ('imagefolder' with data_dir, a datasets builder, a Hub id, a save_to_disk folder)."
        )
    if train_files is not None:
        files = [train_files] if isinstance(train_files, str) else list(train_files)
        table_format = _table_format(files)
        if table_format is not None:
            from .files import load_files

            # Tables (parquet, json lines, csv) hold the images as bytes or paths in a column, not as files.
            raw = load_files(table_format, {"train": [str(f) for f in files]}, split="train", cache_dir=cache_dir)
            return raw, f"files:{','.join(map(str, files))}"
        found = image_files(files)
        _check_readable(found)
        raw = datasets.load_dataset("imagefolder", data_files={"train": found}, split="train", cache_dir=cache_dir)
        return raw, f"files:{','.join(map(str, files))}"
    if isinstance(dataset, datasets.Dataset):
        return dataset, f"in-memory:{dataset.info.dataset_name or 'dataset'}"
    if Path(dataset).is_dir() and _is_saved_to_disk(Path(dataset)):
        return _select_split(datasets.load_from_disk(dataset), split, dataset), f"disk:{dataset}"
    if dataset == "imagefolder" and data_dir and Path(data_dir).is_dir():
        _log_unread(Path(data_dir))
    raw = datasets.load_dataset(dataset, dataset_config, data_dir=data_dir, split=split, cache_dir=cache_dir)
    options = {"config": dataset_config, "data_dir": data_dir, "split": split}
    return raw, f"{dataset}(" + ", ".join(f"{k}={v}" for k, v in options.items() if v) + ")"


# Every suffix here is one `imagefolder` reads (files it does not know are left out of its dataset): the common
# formats, and the other raster formats cameras, scanners and browsers save (.jfif, .jpe, .tga, .pbm, ...).
IMAGE_SUFFIXES = frozenset({
    ".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm",
    ".jfif", ".jpe", ".apng", ".dib", ".ico", ".jp2", ".j2k", ".pbm", ".pnm", ".pcx", ".psd", ".sgi", ".tga",
})
_METADATA_FILES = frozenset({"metadata.csv", "metadata.jsonl", "metadata.json", "metadata.parquet"})
_UNREAD_SHOWN = 3


def _imagefolder_suffixes() -> frozenset[str]:
    """The suffixes `imagefolder` reads (it drops other files without a word)."""
    try:
        from datasets.packaged_modules.imagefolder.imagefolder import ImageFolder

        return frozenset(ext.lower() for ext in ImageFolder.EXTENSIONS)
    except (ImportError, AttributeError):
        return IMAGE_SUFFIXES


def _table_format(patterns: Sequence[Any]) -> str | None:
    """The table format (`data.files.file_format`: parquet, json, csv, tsv) of files holding images as bytes or paths
    in a column; None for image files.

    Raises:
        ValueError: tables and image files, or tables of different formats, given together.
    """
    from .files import file_format

    formats = {None if f == "text" else f for f in (file_format(Path(str(p))) for p in patterns)}  # .txt: no table
    if formats == {None}:
        return None
    if None in formats or len(formats) > 1:
        raise ValueError(f"{[str(p) for p in patterns]} mixes image files and tables (or tables of different "
                         f"formats); give image files/folders, or tables of one format (parquet, jsonl, csv) "
                         f"with the images as bytes or paths in the column named by --image-column.")
    return formats.pop()


def _check_readable(files: Sequence[str]) -> None:
    """Say which files `imagefolder` would leave out of the data (it does so silently), by extension.

    Raises:
        ValueError: none of the files is an image `imagefolder` reads.
    """
    readable = _imagefolder_suffixes()
    listed = [m for f in files for m in (sorted(glob.iglob(f, recursive=True)) if set("*?[") & set(f) else [f])]
    listed = [f for f in listed if Path(f).is_file() and not Path(f).name.startswith(".")]
    unread = [f for f in listed if Path(f).suffix.lower() not in readable]
    if unread and len(unread) == len(listed):
        raise ValueError(f"None of the {len(listed)} file(s) given is an image file that can be read (e.g. "
                         f"{unread[0]!r}); give {', '.join(sorted(IMAGE_SUFFIXES))} files, or a table "
                         f"(parquet, jsonl, csv) with --image-column.")
    if unread:
        logger.warning("Left out %d of %d file(s) given, whose extension is not an image format that can be read "
                       "(e.g. %s); convert them to PNG or JPEG to use them.", len(unread), len(listed),
                       ", ".join(unread[:_UNREAD_SHOWN]))


def _log_unread(folder: Path) -> None:
    """Log how many files under an `imagefolder` data_dir it leaves out (not images, by extension)."""
    readable = _imagefolder_suffixes()
    unread = sorted(str(f.relative_to(folder)) for f in folder.rglob("*")
                    if f.is_file() and f.suffix.lower() not in readable and f.name not in _METADATA_FILES)
    if unread:
        logger.info("imagefolder leaves out %d file(s) under %s that are not images it reads, by extension "
                    "(e.g. %s).", len(unread), folder, ", ".join(unread[:_UNREAD_SHOWN]))


def image_files(patterns: Sequence[str], flag: str = "--train-files") -> list[str]:
    """Files, folders (every image file under them, by extension, any case) and globs, for `imagefolder`'s
    data_files: a folder becomes its sorted image files, a glob or file stays as given once it matches something.

    Raises:
        FileNotFoundError: a path does not exist, a folder holds no image file, or a glob matches nothing (named,
            with the files it would match ignoring case, if any: globs are case-sensitive).
    """
    found: list[str] = []
    for pattern in map(str, patterns):
        path = Path(pattern).expanduser()
        if set("*?[") & set(pattern):
            matched = {m for m in glob.iglob(str(path), recursive=True) if Path(m).is_file()}
            loose = [] if "[" in pattern else sorted(
                m for m in glob.iglob(_any_case(str(path)), recursive=True) if Path(m).is_file() and m not in matched)
            if not matched:
                hint = f" It would match {len(loose)} file(s) ignoring case, e.g. {loose[0]!r}." if loose else ""
                raise FileNotFoundError(f"{pattern!r} (from {flag}) matches no file.{hint}")
            if loose:
                # Globs are case-sensitive: 'photos/*.jpg' leaves out the camera's IMG_0001.JPG.
                logger.warning("%r (from %s) matches %d file(s) and leaves out %d that differ only in the case of "
                               "their letters (e.g. %r); globs are case-sensitive: pass the folder to take every "
                               "image in it.", pattern, flag, len(matched), len(loose), loose[0])
            found.append(str(path))
        elif path.is_dir():
            files = sorted(f for f in path.rglob("*") if f.is_file())
            inside = [str(f) for f in files if f.suffix.lower() in IMAGE_SUFFIXES]
            if not inside:
                raise FileNotFoundError(f"The folder {pattern!r} (from {flag}) holds no image file "
                                        f"({', '.join(sorted(IMAGE_SUFFIXES))}).")
            left_out = [str(f.relative_to(path)) for f in files if f.suffix.lower() not in IMAGE_SUFFIXES]
            if left_out:
                logger.info("Reading %d image file(s) from %s; left out %d other file(s), by extension (e.g. %s).",
                            len(inside), pattern, len(left_out), ", ".join(left_out[:_UNREAD_SHOWN]))
            found.extend(inside)
        elif path.is_file():
            found.append(str(path))
        else:
            raise FileNotFoundError(f"No such file or folder: {pattern!r}. Check the path given to {flag}.")
    return found


def _any_case(pattern: str) -> str:
    """A glob that matches `pattern` whatever the case of its letters."""
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in pattern)


def _base_dir(train_files: str | Sequence[str] | None, data_dir: str | None) -> str | None:
    """Where relative image paths in a table are read from when not from the working directory: the folder of
    the (first) table given, or data_dir."""
    if train_files is not None:
        first = Path(str(train_files if isinstance(train_files, str) else next(iter(train_files), "")))
        while set("*?[") & set(first.name):
            first = first.parent
        return str(first.parent if first.suffix else first)
    return data_dir


def _is_saved_to_disk(folder: Path) -> bool:
    return (folder / "state.json").is_file() or (folder / "dataset_dict.json").is_file()


def _select_split(loaded: Any, split: str, where: str) -> datasets.Dataset:
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise ValueError(f"split={split!r} not in {where}; available splits: {sorted(loaded)}.")
        return loaded[split]
    return loaded


def _array_depth(feature: Any) -> int:
    """Nesting depth of a list/array feature ending in a numeric value (0 when not an array)."""
    if isinstance(feature, (datasets.Array2D, datasets.Array3D)):
        return len(feature.shape)
    inner = getattr(feature, "feature", None)
    if isinstance(feature, (datasets.List, datasets.LargeList, datasets.Sequence)) and inner is not None:
        depth = _array_depth(inner)
        return depth + 1 if depth or isinstance(inner, datasets.Value) else 0
    return 0


def find_image_column(features: datasets.Features, image_column: str | None = None) -> str:
    """Name of the image column: `image_column` if given, else the first Image or 2/3-dim array column."""
    if image_column is not None:
        if image_column not in features:
            raise ValueError(f"image_column={image_column!r} not found; the columns are {list(features)}.")
        return image_column
    for name, feature in features.items():
        if isinstance(feature, datasets.Image):
            return name
    for name, feature in features.items():
        if _is_image_struct(feature):
            return name
    for name, feature in features.items():
        if _array_depth(feature) in (2, 3):
            return name
    raise ValueError(
        f"No image column found among {list(features)} (looked for a datasets.Image feature, a struct of "
        f"bytes and path, or a 2/3-dim array); pass image_column= (--image-column) naming the column that holds "
        f"the images (encoded bytes and image paths are read too)."
    )


_PATH_OR_BYTES = tuple(datasets.Value(t) for t in ("string", "large_string", "binary", "large_binary"))


def _is_image_struct(feature: Any) -> bool:
    """{'bytes': binary, 'path': string}: how `datasets` stores images, as parquet files written elsewhere hold it."""
    return isinstance(feature, dict) and "bytes" in feature and set(feature) <= {"bytes", "path"}


def _undecoded(raw: datasets.Dataset, column: str) -> datasets.Dataset:
    """Make `column` hand over encoded bytes/paths so that decoding failures can be caught per image."""
    feature = raw.features[column]
    if isinstance(feature, datasets.Image) or feature in _PATH_OR_BYTES or _is_image_struct(feature):
        # Columns of paths or encoded bytes (parquet's large_string/binary included) are accepted when named.
        return raw.cast_column(column, datasets.Image(decode=False))
    if _array_depth(feature) in (2, 3):
        return raw.with_format("numpy", columns=[column], output_all_columns=True)
    raise ValueError(
        f"Column {column!r} has feature {feature}, which is not an image; pass image_column= naming "
        f"a column of images, image paths or 2/3-dim pixel arrays."
    )


# ---------------------------------------------------------------- decoding one image


def _open(value: Any, base_dir: str | None = None) -> tuple[PILImage.Image, str | None]:
    """Decode one stored value (Image storage dict or pixel array) into a loaded PIL image.

    A relative path that does not exist from the working directory is read from `base_dir` (the folder of the
    table or data_dir that lists it), as in `imagefolder`'s metadata files.
    """
    if value is None:
        raise ValueError("the value is missing (None)")
    if isinstance(value, dict):
        path = value.get("path")
        if path and not value.get("bytes") and base_dir and not Path(path).is_absolute() and not Path(path).exists():
            beside = Path(base_dir) / path
            path = str(beside) if beside.exists() else path
        source = io.BytesIO(value["bytes"]) if value.get("bytes") else path
        if not source:
            raise ValueError("the stored bytes are empty (0 bytes)" if value.get("bytes") == b""
                             else "neither bytes nor path stored")
        image = PILImage.open(source)
        image.load()  # force the full decode here, so truncated files fail inside the try
        return image, path
    return _array_to_pil(np.asarray(value)), None


def _array_to_pil(array: np.ndarray) -> PILImage.Image:
    """(H, W), (H, W, C) or (C, H, W) numeric array -> PIL image; floats <= 1 count as [0, 1]."""
    if array.ndim == 3 and array.shape[0] in (1, 3, 4) and array.shape[-1] not in (1, 3, 4):
        array = array.transpose(1, 2, 0)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.dtype.kind == "f" and array.size and array.max() <= 1.0:
        array = array * 255.0
    return PILImage.fromarray(np.clip(array, 0, 255).astype(np.uint8))


def _to_8bit(image: PILImage.Image) -> PILImage.Image:
    """16-bit and 32-bit integer/float images -> mode "L"; Pillow's own conversion clips at 255."""
    array = np.asarray(image)
    if image.mode == "F":
        array = array * 255.0 if array.size and array.max() <= 1.0 else array
    elif image.mode.startswith("I;16") or (array.size and array.max() > 255):
        array = array.astype(np.float64) / 257.0  # 65535 -> 255
    return PILImage.fromarray(np.clip(np.round(array), 0, 255).astype(np.uint8))


def convert_mode(image: PILImage.Image, num_channels: int) -> PILImage.Image:
    """PIL image of any mode -> mode "L" (1 channel) or "RGB" (3), at its own size: EXIF rotation applied, 16-bit
    and float pixels scaled to 8 bits (Pillow's conversion clips them at 255: a 16-bit photo turns white), and
    transparent pixels composited on white (plain conversion would expose whatever colour they happen to store)."""
    image = ImageOps.exif_transpose(image)
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        image = _to_8bit(image)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        image = PILImage.alpha_composite(PILImage.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return image.convert(_MODES[num_channels])


def convert_image(image: PILImage.Image, image_size: int, num_channels: int) -> np.ndarray:
    """PIL image of any mode and size -> uint8 array (num_channels, image_size, image_size): `convert_mode`, then a
    bicubic resize to the square."""
    image = convert_mode(image, num_channels)
    if image.size != (image_size, image_size):
        image = image.resize((image_size, image_size), PILImage.Resampling.BICUBIC)
    array = np.asarray(image, dtype=np.uint8)
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def _decode_batch(
    batch: dict[str, list], indices: list[int], image_column: str, image_size: int, num_channels: int,
    base_dir: str | None = None,
) -> dict[str, list]:
    """Batched `.map` body: decode, convert and resize; record failures instead of raising."""
    pixels, errors = [], []
    blank = np.zeros((num_channels, image_size, image_size), dtype=np.uint8)
    for index, value in zip(indices, batch[image_column]):
        path = value.get("path") if isinstance(value, dict) else None
        try:
            image, path = _open(value, base_dir)
            pixels.append(convert_image(image, image_size, num_channels))
            errors.append(None)
        except _DECODE_ERRORS as error:
            pixels.append(blank)  # placeholder row, filtered out right after the map
            where = path or ("in-memory bytes" if isinstance(value, dict) and value.get("bytes") is not None
                             else "no image" if value is None or isinstance(value, dict) else "pixel array")
            errors.append(f"row {index} ({where}): {type(error).__name__}: {error}")
    return {"pixel_values": pixels, _ERROR_COLUMN: errors}


# ---------------------------------------------------------------- the public loader


def check_image_size(image_size: int, patch_size: int) -> None:
    """Raise ValueError unless `image_size` is a positive multiple of `patch_size`."""
    if image_size < patch_size:
        raise ValueError(
            f"image_size={image_size} is smaller than the patch size {patch_size}; "
            f"pass image_size >= {patch_size} (images are upsampled as needed) or a smaller patch_size."
        )
    if image_size % patch_size:
        fit = max(patch_size, round(image_size / patch_size) * patch_size)
        raise ValueError(
            f"image_size={image_size} is not a multiple of the patch size {patch_size}; "
            f"pass image_size={fit} or a patch_size that divides {image_size}."
        )


def _check_arguments(image_size: int, num_channels: int, max_examples: int | None) -> None:
    if num_channels not in _MODES:
        raise ValueError(f"num_channels={num_channels} is not supported; use 1 (grayscale) or 3 (RGB).")
    if image_size < 1:
        raise ValueError(f"image_size={image_size} must be a positive number of pixels.")
    if max_examples is not None and max_examples < 1:
        raise ValueError(f"max_examples={max_examples} must be >= 1, or None for all examples.")


def _keep_label(raw: datasets.Dataset, label_column: str | None, image_column: str) -> str | None:
    """Name of the label column to keep: `label_column` (must exist) or `label` when present."""
    if label_column is None:
        return "label" if "label" in raw.column_names and image_column != "label" else None
    if label_column not in raw.column_names:
        raise ValueError(f"label_column={label_column!r} not found; the columns are {raw.column_names}.")
    return label_column


def _report_skipped(errors: list[str], strict: bool, total: int) -> None:
    if errors and strict:
        raise ValueError(
            f"Cannot decode image {errors[0]}; remove or fix the file, or leave out --strict (strict=False from "
            f"Python) to skip undecodable images ({len(errors)} of {total} failed)."
        )
    if errors:
        shown = "; ".join(errors[:_SKIPPED_PATHS_SHOWN])
        logger.warning("Skipped %d of %d undecodable images, first: %s", len(errors), total, shown)
    if len(errors) == total:
        raise ValueError(
            f"No decodable images: all {total} failed (first: {errors[0] if errors else 'none'}); "
            f"check the paths or the image column."
        )


def _decode_all(
    raw: datasets.Dataset, column: str, label: str | None, image_size: int, num_channels: int,
    num_proc: int | None, base_dir: str | None = None,
) -> tuple[datasets.Dataset, list[str]]:
    """Batched, cached `.map` to `pixel_values` (+ `label`); returns it and the decoding errors."""
    features = {"pixel_values": datasets.Array3D((num_channels, image_size, image_size), "uint8")}
    if label is not None:
        features[label] = raw.features[label]
    features[_ERROR_COLUMN] = datasets.Value("string")
    decoded = _undecoded(raw, column).map(
        _decode_batch,
        batched=True,
        with_indices=True,
        fn_kwargs={"image_column": column, "image_size": image_size, "num_channels": num_channels,
                   "base_dir": base_dir},
        remove_columns=[name for name in raw.column_names if name != label],
        features=datasets.Features(features),
        num_proc=num_proc,
        desc="Decoding images",
    )
    if label is not None and label != "label":
        decoded = decoded.rename_column(label, "label")
    return decoded, [error for error in decoded[_ERROR_COLUMN] if error is not None]


def _uint8_format(dataset: datasets.Dataset) -> datasets.Dataset:
    """Format `pixel_values` as uint8 numpy arrays; other columns stay Python values.

    datasets' torch and numpy formats widen every integer column to int64 (8x the memory per
    batch); transformers' default collators stack these arrays into uint8 tensors.
    """
    return dataset.with_format("numpy", columns=["pixel_values"], dtype=np.uint8, output_all_columns=True)


def load_image_dataset(
    *,
    train_files: str | Sequence[str] | None = None,
    dataset: str | datasets.Dataset | None = None,
    data_dir: str | None = None,
    dataset_config: str | None = None,
    split: str = "train",
    image_column: str | None = None,
    label_column: str | None = None,
    image_size: int,
    num_channels: int,
    strict: bool = False,
    max_examples: int | None = None,
    seed: int = 42,
    cache_dir: str | None = None,
    num_proc: int | None = None,
) -> tuple[datasets.Dataset, dict[str, Any]]:
    """Load images from any source into uint8 `pixel_values` of shape (num_channels, image_size, image_size).

    Sources (exactly one): `train_files` (paths or globs, `**` allowed; sub-folder names become
    labels as in `imagefolder`), or `dataset`: "imagefolder" with `data_dir`, any `datasets`
    builder or Hub id (with `dataset_config`, `split`), a `save_to_disk` folder, or a Dataset.
    `max_examples` keeps a `seed`-shuffled subset before decoding. Undecodable images are
    skipped and counted (a ValueError naming the first one when `strict`).

    Returns the dataset, with columns `pixel_values` (C, H, W) formatted as uint8 numpy arrays
    and `label` (Python ints) when present, and a description for run.json.
    """
    _check_arguments(image_size, num_channels, max_examples)
    raw, source = _load_source(train_files, dataset, data_dir, dataset_config, split, cache_dir)
    column = find_image_column(raw.features, image_column)
    label = _keep_label(raw, label_column, column)
    if max_examples is not None and max_examples < len(raw):
        raw = raw.shuffle(seed=seed).select(range(max_examples))
    if len(raw) == 0:
        raise ValueError(f"The image source {source} has no rows; check the paths, split or data_dir.")
    decoded, errors = _decode_all(raw, column, label, image_size, num_channels, num_proc,
                                  _base_dir(train_files, data_dir))
    _report_skipped(errors, strict, len(decoded))
    if errors:
        decoded = decoded.filter(lambda e: [x is None for x in e], input_columns=_ERROR_COLUMN, batched=True)
    decoded = _uint8_format(decoded.remove_columns(_ERROR_COLUMN))
    description = {
        "source": source,
        "images": len(decoded),
        "skipped_undecodable": len(errors),
        "image_size": image_size,
        "num_channels": num_channels,
        "resize": "bicubic to image_size x image_size (aspect ratio not kept)",
        "fingerprint": decoded._fingerprint,
    }
    return decoded, description

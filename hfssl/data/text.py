"""Load a text corpus (local files or a Hub/builder dataset) as `train`/`validation` splits of one `text` column.

The result feeds tokenizer training (`texts_for_tokenizer`) and packing (`hfssl.data.packing`); the
description dict goes into run.json's "data" section, so a run records what it was trained on.
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import Any

from datasets import (
    Dataset,
    DatasetDict,
    Features,
    IterableDataset,
    IterableDatasetDict,
    Json,
    Value,
    load_dataset,
    load_from_disk,
)
from datasets.exceptions import DatasetGenerationError

from ..training.arguments import DataArguments
from .files import (
    MARK_ERRORS,
    OPENERS,
    SEPARATED,
    UNDECODABLE_MARK,
    AnyDataset,
    AnyDatasetDict,
    FileScan,
    column_list,
    decode_kwargs,
    file_columns,
    fingerprint_files,
    infer_format,
    load_files,
    open_bytes,
    read_only_if_headers_differ,
    resolve_files,
    scan_file,
)
from .in_memory import (
    describe_in_memory,
    in_memory_fingerprint,
    in_memory_splits,
    is_in_memory,
)

logger = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------------- files


def _check_encoding(scans: list[FileScan], strict: bool) -> int:
    """Raise (strict, or when no line of a file decodes) or warn about non-UTF-8 lines; returns how many lines
    were undecodable."""
    bad = [s for s in scans if s.bad_lines]
    for scan in bad:
        if scan.bad_lines >= scan.data_lines and not strict:
            raise ValueError(
                f"{str(scan.path)!r} is not UTF-8 text: none of its {scan.data_lines} line(s) decode as UTF-8 (an "
                f"8-bit encoding such as Latin-1 or cp1252?). Re-encode it, e.g. `iconv -f LATIN1 -t UTF-8`, or "
                f"leave the file out."
            )
    if bad and strict:
        first = bad[0]
        raise ValueError(
            f"{str(first.path)!r} is not valid UTF-8 at line {first.first_bad_line} "
            f"({first.bad_lines} bad line(s) in that file). Fix or re-encode the file, or drop --strict to skip "
            "undecodable rows with a count."
        )
    for scan in bad:
        logger.warning(
            "%s: %d line(s) are not valid UTF-8 (first at line %d); their rows are skipped.",
            scan.path, scan.bad_lines, scan.first_bad_line,
        )
    return sum(s.bad_lines for s in bad)


def _load_split(fmt: str, files: list[Path], role: str, args: DataArguments, replace: bool) -> AnyDataset:
    """One split's files, loaded on their own so that train and validation files need not share columns.

    Raises:
        ValueError: a csv/parquet file lacks the text column (names the file and its columns).
    """
    flag = "--train-files" if role == "train" else "--validation-files"
    headers = {f: file_columns(f, fmt) for f in files}
    for path, columns in headers.items():
        if columns is not None and args.text_column not in columns:
            raise ValueError(
                f"{role.capitalize()} file {str(path)!r} (from {flag}) has no column {args.text_column!r}; its "
                f"columns are {column_list(columns)}. Pass the column that holds the text with --text-column, or give files "
                "that all have it."
            )
    if fmt == "text" and any(f.suffix.lower() in OPENERS for f in files):
        return _load_compressed_text(files, args.streaming, replace)
    kwargs = {**decode_kwargs(fmt, replace),
              **(_separated_text_kwargs(args.text_column) if fmt in SEPARATED else
                 read_only_if_headers_differ(fmt, list(headers.values()), [args.text_column]))}
    return load_files(fmt, {"train": [str(f) for f in files]}, split="train", streaming=args.streaming, **kwargs)


def _text_lines(files: list[str], errors: str, content: str) -> Iterator[dict[str, str]]:
    """One row per line of each file, decompressed and decoded here (universal newlines, as the text builder
    reads them). `content` is unused: it keys the generator's cache to the files' bytes, not only their names."""
    del content
    for name in files:
        with open_bytes(Path(name)) as raw, io.TextIOWrapper(raw, encoding="utf-8-sig", errors=errors) as lines:
            for line in lines:
                yield {"text": line.rstrip("\n")}


def _load_compressed_text(files: list[Path], streaming: bool, replace: bool) -> AnyDataset:
    """Text files of which some are compressed, read line by line here instead of by `datasets`' text builder.

    That builder opens a compressed file through fsspec without the `encoding` and `encoding_errors` it was given,
    so one non-UTF-8 line failed the whole load (instead of being skipped and counted), the text was decoded with
    the locale's encoding, and a byte-order mark stayed in the first row.
    """
    kwargs = {"files": [str(f) for f in files], "errors": MARK_ERRORS if replace else "strict",
              "content": fingerprint_files(files)}
    maker = IterableDataset if streaming else Dataset
    return maker.from_generator(_text_lines, features=Features({"text": Value("string")}), gen_kwargs=kwargs)


def _separated_text_kwargs(column: str) -> dict[str, Any]:
    """csv/tsv keywords that read only the text column, every cell as the string it is.

    pandas would otherwise turn cells such as "NA", "None", "null" or "nan" into missing values (dropped later as
    empty rows), and type each 10,000-row chunk on its own: a chunk of number-only cells becomes an int column
    that the next chunk's text cannot be cast to (a failure), or, in a stream, rows that are dropped as not text.
    Other columns are not needed, and their chunk types could fail the same way.
    """
    return {"usecols": [column], "keep_default_na": False, "features": Features({column: Value("string")})}


def _load_local(args: DataArguments) -> tuple[AnyDatasetDict, dict[str, Any], bool, dict[str, str]]:
    """Load `args.train_files` (+ `validation_files`), each split with the builder of its files' format.

    Returns:
        (splits, description, has_bad, origins): origins names each split's files for error messages.
    """
    roles = {"train": resolve_files(args.train_files)}
    if args.validation_files:
        roles["validation"] = resolve_files(args.validation_files, "--validation-files")
    all_files = [f for files in roles.values() for f in files]
    # Each split is loaded on its own, so train and validation files may be of different formats.
    formats = {role: infer_format(files) for role, files in roles.items()}
    scans = {f: scan_file(f, formats[role]) for role, files in roles.items() for f in files}
    bad_lines = _check_encoding(list(scans.values()), args.strict)
    splits, origins = {}, {}
    for role, files in roles.items():
        # `datasets` fails on files without rows (json: StopIteration, csv: "no data"), so leave them out.
        kept = [f for f in files if scans[f].data_lines]
        if not kept:
            raise ValueError(
                f"corpus is empty: the {role} files hold no text ({', '.join(map(str, files))}). "
                "Give files with at least one non-blank line."
            )
        splits[role] = _load_split(formats[role], kept, role, args, bool(bad_lines))
        origins[role] = f"the {role} files ({', '.join(map(str, kept))})"
    description = {
        "source": [str(f) for f in all_files],
        "format": formats["train"],
        **({"validation_format": formats["validation"]} if formats.get("validation", formats["train"])
           != formats["train"] else {}),
        "skipped_undecodable": bad_lines,
        "fingerprint": hashlib.sha256(
            "".join(fingerprint_files(files, role) for role, files in roles.items()).encode()
        ).hexdigest(),
    }
    return (IterableDatasetDict if args.streaming else DatasetDict)(splits), description, bool(bad_lines), origins


def _load_named(args: DataArguments) -> AnyDatasetDict:
    """A `save_to_disk` folder (one Dataset stands for the training split), or what `load_dataset` makes of
    the name; a file the builder cannot read is named as a user error, not a generation traceback."""
    folder = Path(args.dataset)
    if folder.is_dir() and ((folder / "state.json").is_file() or (folder / "dataset_dict.json").is_file()):
        loaded = load_from_disk(str(folder))
        if isinstance(loaded, Dataset):
            loaded = DatasetDict({args.train_split: loaded})
        if args.streaming:
            loaded = IterableDatasetDict({name: split.to_iterable_dataset() for name, split in loaded.items()})
        return loaded
    try:
        return load_dataset(args.dataset, args.dataset_config, data_dir=args.data_dir, streaming=args.streaming)
    except DatasetGenerationError as error:
        cause = error.__cause__ or error
        where = f" (data_dir {args.data_dir})" if args.data_dir else ""
        raise ValueError(
            f"--dataset {args.dataset}{where} could not be read: {type(cause).__name__}: {cause}. Check that every "
            f"file it picks up is in that format and UTF-8, or pass the files with --train-files (hfssl then "
            f"checks each one and names the bad file and line)."
        ) from error


def _load_in_memory(args: DataArguments) -> tuple[AnyDatasetDict, dict[str, Any], bool, dict[str, str]]:
    """The splits of an in-memory `datasets` object given from Python (see `hfssl.data.in_memory`); a `Dataset`
    with `streaming` is read as a stream of its rows."""
    chosen = in_memory_splits(args.dataset, args.train_split, args.validation_split)
    description = describe_in_memory(args.dataset, chosen)
    splits = {role: split for role, (_, split) in chosen.items()}
    if args.streaming:
        splits = {role: split if isinstance(split, IterableDataset) else split.to_iterable_dataset()
                  for role, split in splits.items()}
    description.update(skipped_undecodable=0, fingerprint=in_memory_fingerprint(chosen["train"][1]))
    if "validation" in chosen:
        description["validation_fingerprint"] = in_memory_fingerprint(chosen["validation"][1])
    origins = {role: f"the {role} data ({description['source']}" + (f", split {name!r})" if name else ")")
               for role, (name, _) in chosen.items()}
    return (IterableDatasetDict if args.streaming else DatasetDict)(splits), description, False, origins


def _load_hub(args: DataArguments) -> tuple[AnyDatasetDict, dict[str, Any], bool, dict[str, str]]:
    """Load `args.dataset` (a Hub id, a local dataset folder or a builder name) and pick its splits."""
    if is_in_memory(args.dataset):
        return _load_in_memory(args)
    loaded = _load_named(args)
    names = {"train": args.train_split}
    if args.validation_split:
        names["validation"] = args.validation_split
    for role, name in names.items():
        if name not in loaded:
            raise ValueError(
                f"Dataset {args.dataset!r} has no split {name!r} (asked for as the {role} split); "
                f"it has {sorted(loaded)}. Pass one of them to --{role}-split."
            )
    kind = IterableDatasetDict if args.streaming else DatasetDict
    splits = kind({role: loaded[name] for role, name in names.items()})
    train = splits["train"]
    if args.streaming:
        key = f"{args.dataset}\0{args.dataset_config}\0{args.data_dir}\0{names}"
        fingerprint = hashlib.sha256(key.encode()).hexdigest()
    else:
        fingerprint = train._fingerprint
    info = getattr(train, "info", None)
    description = {
        "source": args.dataset,
        "format": getattr(info, "builder_name", None),
        "skipped_undecodable": 0,
        "fingerprint": fingerprint,
    }
    origins = {role: f"the {role} data (split {name!r} of {args.dataset!r})" for role, name in names.items()}
    return splits, description, False, origins


# ----------------------------------------------------------------------------------------------- columns and rows


def _column_names(ds: AnyDataset) -> list[str]:
    """Column names; a stream whose features are not known yet is peeked at."""
    if ds.column_names is not None:
        return list(ds.column_names)
    first = next(iter(ds), None)
    return list(first) if first is not None else []


def _feature_kind(feature: Any) -> str:
    """A feature in words: `int64`, `lists`, `objects with fields ['a']`, `Image`."""
    if isinstance(feature, dict):
        return f"objects with fields {list(feature)}"
    if hasattr(feature, "feature"):  # List, LargeList, Sequence
        return f"lists of {_feature_kind(feature.feature)}"
    return getattr(feature, "dtype", None) or type(feature).__name__


def _first_non_text(ds: AnyDataset, column: str, limit: int = 100_000) -> tuple[int, Any] | None:
    """(row, value) of the first value in `column` that is neither a string nor missing, within `limit` rows."""
    rows = islice((value for batch in ds.select_columns([column]).iter(batch_size=1000) for value in batch[column]),
                  limit)
    return next(((row, value) for row, value in enumerate(rows) if value is not None and not isinstance(value, str)),
                None)


def _select_text(ds: AnyDataset, column: str, where: str) -> AnyDataset:
    """Keep only `column`, renamed to `text`, after checking that it exists and holds strings.

    Raises:
        ValueError: the column is missing, holds another type (numbers, lists, objects), or mixes strings with
            other JSON values (names the first such row and value).
    """
    columns = _column_names(ds)
    if column not in columns:
        raise ValueError(
            f"Text column {column!r} not found in {where}; its columns are {column_list(columns)}. "
            "Pass the right one with --text-column (text_column= from Python)."
        )
    feature = (ds.features or {}).get(column)
    if isinstance(feature, Json):
        found = _first_non_text(ds, column)
        sample = f": row {found[0] + 1} holds {found[1]!r} ({type(found[1]).__name__})" if found else ""
        raise ValueError(  # noqa: TRY004 -- bad input data, not a programming error: the CLI maps it to exit 2
            f"Column {column!r} mixes text with other values ({where}){sample}. Write every value as a JSON "
            "string (quote numbers, join lists), or pick a text column with --text-column."
        )
    if feature is not None and not (isinstance(feature, Value) and feature.dtype in ("string", "large_string", "null")):
        raise ValueError(
            f"Column {column!r} holds {_feature_kind(feature)}, not text ({where}). Pick a text column with "
            f"--text-column (columns: {columns})."
        )
    ds = ds.select_columns([column])
    return ds.rename_column(column, "text") if column != "text" else ds


def _has_text(batch: dict[str, list]) -> list[bool]:
    return [isinstance(text, str) and bool(text.strip()) for text in batch["text"]]


def _is_decodable(batch: dict[str, list]) -> list[bool]:
    return [not (text and UNDECODABLE_MARK in text) for text in batch["text"]]


def _drop_rows(ds: AnyDataset, keep: Callable[[dict[str, list]], list[bool]]) -> tuple[AnyDataset, int | None]:
    """Filter rows; returns the filtered data and how many rows went (None for streams, which are lazy)."""
    kept = ds.filter(keep, batched=True)
    return kept, (len(ds) - len(kept)) if isinstance(ds, Dataset) else None


def _clean(split: AnyDataset, has_bad: bool) -> tuple[AnyDataset, int | None, int | None]:
    """Drop rows that held undecodable bytes (read as `UNDECODABLE_MARK`) and rows without text.

    A literal U+FFFD in valid UTF-8 is text like any other and is kept.
    """
    undecodable = 0
    if has_bad:
        split, undecodable = _drop_rows(split, _is_decodable)
    split, empty = _drop_rows(split, _has_text)
    return split, undecodable, empty


def carve_validation(train: AnyDataset, args: DataArguments, seed: int) -> tuple[AnyDataset, AnyDataset]:
    """Split a validation set off the training data: a seeded random fraction, or a stream's first rows."""
    if isinstance(train, IterableDataset):
        if args.validation_examples < 1:
            raise ValueError(f"validation_examples must be >= 1 when streaming, got {args.validation_examples}.")
        return train.skip(args.validation_examples), train.take(args.validation_examples)
    if not 0 < args.validation_fraction < 1:
        raise ValueError(
            f"validation_fraction must be in (0, 1), got {args.validation_fraction}. Change --validation-fraction "
            "(with your own files, --validation-files gives the validation split instead)."
        )
    if len(train) < 2:
        raise ValueError(
            f"The corpus has {len(train)} row(s) with text: too few to carve a validation split. "
            "Add text or give --validation-files."
        )
    # At least one validation row, so evaluation never runs on an empty split.
    test_size = max(args.validation_fraction, 1 / len(train))
    parts = train.train_test_split(test_size=test_size, seed=seed)
    return parts["train"], parts["test"]


def limit_rows(train: AnyDataset, max_rows: int | None) -> AnyDataset:
    """Keep the first `max_rows` training rows (quick experiments)."""
    if max_rows is None:
        return train
    if max_rows < 1:
        raise ValueError(f"max_train_examples must be >= 1 or unset, got {max_rows}.")
    if isinstance(train, IterableDataset):
        return train.take(max_rows)
    return train.select(range(min(max_rows, len(train))))


def _is_empty(split: AnyDataset) -> bool:
    """True when a split has no rows (a stream is peeked at)."""
    return len(split) == 0 if isinstance(split, Dataset) else next(iter(split), None) is None


def _check_not_empty(split: AnyDataset, role: str, source: Any) -> None:
    if _is_empty(split):
        raise ValueError(
            f"corpus is empty: no {role} row has non-blank text after dropping empty and undecodable rows "
            f"(source: {source}). Give files with text, or check --text-column."
        )


def _check_sources(args: DataArguments) -> None:
    if bool(args.train_files) == (args.dataset is not None and args.dataset != ""):
        raise ValueError(
            "Give exactly one data source: --train-files (local files, globs or folders) or --dataset "
            f"(a Hub id or builder name); got train_files={args.train_files!r}, dataset={args.dataset!r}."
        )
    if args.dataset and args.validation_files:
        raise ValueError("--validation-files goes with --train-files; with --dataset use --validation-split.")


def load_text_dataset(args: DataArguments, seed: int = 42) -> tuple[AnyDatasetDict, dict[str, Any]]:
    """Load the corpus named by `args` as splits `train` and `validation`, each with one `text` column.

    Rows whose text is empty, whitespace-only or (from files with non-UTF-8 bytes) undecodable are dropped.
    With `args.streaming` the result is an `IterableDatasetDict` and nothing is read up front except a
    byte scan of local files.

    Returns:
        (splits, description) where description is the run.json "data" section: source, format,
        text_column, train_rows, validation_rows, skipped_undecodable, skipped_empty, streaming, fingerprint.
    """
    _check_sources(args)
    splits, description, has_bad, origins = _load_local(args) if args.train_files else _load_hub(args)
    source = description["source"]
    cleaned, dropped_undecodable, skipped_empty = {}, 0, 0
    for role, split in splits.items():
        split = _select_text(split, args.text_column, origins[role])
        cleaned[role], undecodable, empty = _clean(split, has_bad)
        dropped_undecodable += undecodable or 0
        skipped_empty += empty or 0
    if not args.streaming:
        # Exact rows dropped; a stream keeps the byte scan's count of undecodable lines.
        description["skipped_undecodable"] = dropped_undecodable
    _check_not_empty(cleaned["train"], "train", source)
    if "validation" not in cleaned:
        cleaned["train"], cleaned["validation"] = carve_validation(cleaned["train"], args, seed)
        if args.streaming and _is_empty(cleaned["train"]):
            raise ValueError(
                f"All rows of the stream went to validation (validation_examples={args.validation_examples}); "
                f"lower --validation-examples or add text (source: {source})."
            )
    cleaned["train"] = limit_rows(cleaned["train"], args.max_train_examples)
    _check_not_empty(cleaned["validation"], "validation", source)
    result = (IterableDatasetDict if args.streaming else DatasetDict)(cleaned)
    description.update(_counts(result, args, None if args.streaming else skipped_empty))
    return result, description


def _counts(splits: AnyDatasetDict, args: DataArguments, skipped_empty: int | None) -> dict[str, Any]:
    """Row counts for the description (None where a stream makes them unknown)."""
    streaming = isinstance(splits, IterableDatasetDict)
    return {
        "text_column": args.text_column,
        "train_rows": None if streaming else len(splits["train"]),
        "validation_rows": None if streaming else len(splits["validation"]),
        "skipped_empty": skipped_empty,
        "streaming": streaming,
    }


class Rereadable:
    """An iterable that calls `make()` for every pass, so a reader that goes over the texts twice (WordPiece
    training) reads the data again instead of keeping it in memory."""

    def __init__(self, make: Callable[[], Iterable[str]]):
        self.make = make

    def __iter__(self) -> Iterator[str]:
        return iter(self.make())


def texts_for_tokenizer(ds: AnyDatasetDict | AnyDataset, max_texts: int = 200_000) -> Iterator[str]:
    """Yield at most `max_texts` training texts (the `train` split of a dict), for map-style data and streams."""
    if isinstance(ds, (DatasetDict, IterableDatasetDict)):
        ds = ds["train"]
    if max_texts < 1:
        raise ValueError(f"max_texts must be >= 1, got {max_texts}.")
    # Batched reads keep map-style data off the per-row Python path; islice bounds a stream.
    batches = ds.iter(batch_size=1000)
    yield from islice((text for batch in batches for text in batch["text"]), max_texts)

"""Load a text corpus (local files or a Hub/builder dataset) as `train`/`validation` splits of one `text` column.

The result feeds tokenizer training (`texts_for_tokenizer`) and packing (`hfssl.data.packing`); the
description dict goes into run.json's "data" section, so a run records what it was trained on.
"""

from __future__ import annotations

import bz2
import codecs
import csv
import glob
import gzip
import hashlib
import io
import logging
import lzma
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import IO, Any

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

logger = logging.getLogger(__name__)

# File extension -> `datasets` packaged builder.
BUILDERS = {".txt": "text", ".text": "text", ".json": "json", ".jsonl": "json", ".csv": "csv", ".tsv": "tsv",
            ".parquet": "parquet"}
# Formats that are `datasets`' csv builder with another separator; a header row names the columns.
SEPARATED = {"csv": ",", "tsv": "\t"}
# Compression suffix -> opener; `datasets` decompresses the same suffixes on its own when loading.
_OPENERS: dict[str, Callable[[Path], IO[bytes]]] = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}
# Undecodable bytes are read as this noncharacter instead of U+FFFD, so a literal U+FFFD in clean text (common in
# scraped corpora) is kept and only rows that failed decoding are dropped and counted.
_UNDECODABLE_MARK = "\uffff"
_MARK_ERRORS = "hfssl-mark-undecodable"
codecs.register_error(_MARK_ERRORS, lambda error: (_UNDECODABLE_MARK, error.end))
_GLOB_CHARS = frozenset("*?[")

AnyDatasetDict = DatasetDict | IterableDatasetDict
AnyDataset = Dataset | IterableDataset


@dataclass
class FileScan:
    """What a byte-level pass over one local file found."""

    path: Path
    data_lines: int = 0  # non-blank lines (minus the header for csv); 0 means the file holds no rows
    bad_lines: int = 0  # lines that are not valid UTF-8
    first_bad_line: int | None = None


# ----------------------------------------------------------------------------------------------- files


def file_format(path: Path) -> str | None:
    """The `datasets` builder for a file name (`a.jsonl.gz` -> json), or None when unsupported."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in _OPENERS:
        suffixes = suffixes[:-1]
    return BUILDERS.get(suffixes[-1]) if suffixes else None


def _files_in_folder(folder: Path) -> list[Path]:
    """Supported files under a folder, recursively, sorted; hidden files and folders are skipped."""
    found = [
        p for p in folder.rglob("*")
        if p.is_file() and file_format(p) and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    ]
    return sorted(found)


def resolve_files(patterns: list[str] | str, flag: str = "--train-files") -> list[Path]:
    """Expand files, folders and globs (`**` included) into a sorted, de-duplicated list of files.

    Raises:
        FileNotFoundError: a path does not exist or a glob matches no supported file.
    """
    patterns = [patterns] if isinstance(patterns, str) else list(patterns)
    files: list[Path] = []
    for pattern in patterns:
        path = Path(pattern).expanduser()
        if _GLOB_CHARS & set(pattern):
            # As in a folder, files of other types that a glob also matches (README.md, LICENSE) are left out.
            matches = sorted(Path(m) for m in glob.glob(str(path), recursive=True)
                             if Path(m).is_file() and file_format(Path(m)))
        elif path.is_dir():
            matches = _files_in_folder(path)
        elif path.is_file():
            matches = [path]
        else:
            raise FileNotFoundError(f"No such file or folder: {pattern!r}. Check the path given to {flag}.")
        if not matches:
            raise FileNotFoundError(
                f"{pattern!r} (from {flag}) matches no files with a supported extension "
                f"({', '.join(sorted(BUILDERS))}, optionally compressed {', '.join(_OPENERS)})."
            )
        files.extend(m for m in matches if m not in files)
    return files


def infer_format(files: list[Path]) -> str:
    """The single `datasets` builder that reads all `files`.

    Raises:
        ValueError: an extension is unsupported, or the files mix formats (names each group).
    """
    by_format: dict[str, list[str]] = {}
    for path in files:
        fmt = file_format(path)
        if fmt is None:
            raise ValueError(
                f"Unsupported file type: {str(path)!r}. Supported: {', '.join(sorted(BUILDERS))} "
                f"(optionally compressed {', '.join(_OPENERS)})."
            )
        by_format.setdefault(fmt, []).append(str(path))
    if len(by_format) > 1:
        groups = "; ".join(f"{fmt}: {', '.join(names)}" for fmt, names in sorted(by_format.items()))
        raise ValueError(f"Files mix formats ({groups}). Give files of one format, or convert them first.")
    return next(iter(by_format))


def _open_bytes(path: Path) -> IO[bytes]:
    opener = _OPENERS.get(path.suffix.lower())
    return opener(path) if opener else open(path, "rb")


def scan_file(path: Path, fmt: str) -> FileScan:
    """Count data lines and non-UTF-8 lines of one file (decompressing it), line by line in bytes."""
    scan = FileScan(path)
    if fmt == "parquet":
        import pyarrow.parquet as pq  # parquet stores validated UTF-8; only its row count matters

        scan.data_lines = pq.ParquetFile(path).metadata.num_rows
        return scan
    with _open_bytes(path) as f:
        _check_not_utf16(path, f.read(4096))
        f.seek(0)
        for number, line in enumerate(f, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                scan.bad_lines += 1
                scan.first_bad_line = scan.first_bad_line or number
            scan.data_lines += bool(line.strip())
    if fmt in SEPARATED:
        scan.data_lines = max(scan.data_lines - 1, 0)  # the header row is not data
    return scan


def fingerprint_files(files: list[Path], role: str = "") -> str:
    """sha256 over (name relative to the files' common folder, size, sha256 of contents) of each file."""
    root = Path(os.path.commonpath([str(p.resolve().parent) for p in files])) if files else Path()
    digest = hashlib.sha256(role.encode())
    for path in files:
        content = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                content.update(chunk)
        name = path.resolve().relative_to(root).as_posix()
        digest.update(f"{name}\0{path.stat().st_size}\0{content.hexdigest()}\n".encode())
    return digest.hexdigest()


_WIDE_BOMS = {b"\xff\xfe\x00\x00": "UTF-32", b"\x00\x00\xfe\xff": "UTF-32", b"\xff\xfe": "UTF-16",
              b"\xfe\xff": "UTF-16"}


def _check_not_utf16(path: Path, head: bytes) -> None:
    """Refuse a UTF-16/32 file: split on newline bytes it reads as text with a NUL between letters, which
    is valid UTF-8 and would be trained on as such."""
    for bom, name in _WIDE_BOMS.items():
        if head.startswith(bom) and b"\x00" in head[len(bom):]:
            raise ValueError(
                f"{str(path)!r} is {name} text (it starts with a {name} byte-order mark); hfssl reads UTF-8. "
                f"Convert it first, e.g. `iconv -f {name} -t UTF-8 {path.name} > {path.stem}.utf8{path.suffix}`."
            )


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


def _decode_kwargs(fmt: str, replace: bool) -> dict[str, str]:
    """`load_dataset` keywords that read undecodable bytes as `_UNDECODABLE_MARK` instead of failing, and read
    past a UTF-8 byte-order mark at the start of a text file (Windows editors write one) instead of keeping it
    as an invisible U+FEFF at the start of the first row (the csv and json readers skip it on their own)."""
    sig = {"encoding": "utf-8-sig"} if fmt == "text" else {}
    if not replace or fmt == "parquet":
        return sig
    if fmt == "json":
        # The json builder applies `encoding_errors` only when `encoding` is not literally "utf-8";
        # "utf8" is the same codec under another name, which routes each chunk through that decode step.
        return {"encoding": "utf8", "encoding_errors": _MARK_ERRORS}
    return {**sig, "encoding_errors": _MARK_ERRORS}


def file_columns(path: Path, fmt: str) -> list[str] | None:
    """The columns of a csv (its header) or parquet file (its schema); None for formats without a fixed header.

    Raises:
        ValueError: the file cannot be opened as `fmt` (a damaged parquet file or compressed archive), naming it.
    """
    import pyarrow

    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            return list(pq.ParquetFile(path).schema_arrow.names)
        if fmt in SEPARATED:
            with _open_bytes(path) as raw:
                line = raw.readline().decode("utf-8-sig", errors="replace")
            return next(csv.reader([line], delimiter=SEPARATED[fmt]), [])
    except (OSError, EOFError, lzma.LZMAError, pyarrow.ArrowException) as error:
        raise ValueError(f"{path} cannot be read as {fmt}: {type(error).__name__}: {str(error).rstrip('.')}. Check "
                         f"that it is a complete, valid {fmt} file (a download may have been cut off).") from None
    return None


def load_files(fmt: str, data_files: dict[str, list[str]], **kwargs: Any) -> AnyDatasetDict | AnyDataset:
    """`load_dataset` for a format `infer_format` named: tsv is the csv builder with a tab separator.

    In csv/tsv only an empty cell is a missing value: pandas' default list would also read the text or label "NA"
    (North America, a grade), "None", "null" or "n/a" as missing, and the rows holding them would be dropped as
    unlabeled or empty. Callers may pass their own `keep_default_na` / `na_values`."""
    if fmt in SEPARATED:
        kwargs = {"keep_default_na": False, "na_values": [""], **kwargs}
        return load_dataset("csv", data_files=data_files, sep=SEPARATED[fmt], **kwargs)
    return load_dataset(fmt, data_files=data_files, **kwargs)


def read_only_if_headers_differ(fmt: str, headers: list[list[str] | None], keep: list[str]) -> dict[str, list[str]]:
    """`load_dataset` keywords that read only the columns `keep` when one split's files have different headers
    (their other columns would fail to cast to one schema); none when the known headers agree."""
    if len({tuple(h) for h in headers if h is not None}) > 1:
        return {"usecols" if fmt in SEPARATED else "columns": keep}
    return {}


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
                f"columns are {columns}. Pass the column that holds the text with --text-column, or give files "
                "that all have it."
            )
    if fmt == "text" and any(f.suffix.lower() in _OPENERS for f in files):
        return _load_compressed_text(files, args.streaming, replace)
    kwargs = {**_decode_kwargs(fmt, replace),
              **(_separated_text_kwargs(args.text_column) if fmt in SEPARATED else
                 read_only_if_headers_differ(fmt, list(headers.values()), [args.text_column]))}
    return load_files(fmt, {"train": [str(f) for f in files]}, split="train", streaming=args.streaming, **kwargs)


def _text_lines(files: list[str], errors: str, content: str) -> Iterator[dict[str, str]]:
    """One row per line of each file, decompressed and decoded here (universal newlines, as the text builder
    reads them). `content` is unused: it keys the generator's cache to the files' bytes, not only their names."""
    del content
    for name in files:
        with _open_bytes(Path(name)) as raw, io.TextIOWrapper(raw, encoding="utf-8-sig", errors=errors) as lines:
            for line in lines:
                yield {"text": line.rstrip("\n")}


def _load_compressed_text(files: list[Path], streaming: bool, replace: bool) -> AnyDataset:
    """Text files of which some are compressed, read line by line here instead of by `datasets`' text builder.

    That builder opens a compressed file through fsspec without the `encoding` and `encoding_errors` it was given,
    so one non-UTF-8 line failed the whole load (instead of being skipped and counted), the text was decoded with
    the locale's encoding, and a byte-order mark stayed in the first row.
    """
    kwargs = {"files": [str(f) for f in files], "errors": _MARK_ERRORS if replace else "strict",
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


def _load_hub(args: DataArguments) -> tuple[AnyDatasetDict, dict[str, Any], bool, dict[str, str]]:
    """Load `args.dataset` (a Hub id, a local dataset folder or a builder name) and pick its splits."""
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
            f"Text column {column!r} not found in {where}; its columns are {columns}. "
            "Pass the right one with --text-column."
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
    return [not (text and _UNDECODABLE_MARK in text) for text in batch["text"]]


def _drop_rows(ds: AnyDataset, keep: Callable[[dict[str, list]], list[bool]]) -> tuple[AnyDataset, int | None]:
    """Filter rows; returns the filtered data and how many rows went (None for streams, which are lazy)."""
    kept = ds.filter(keep, batched=True)
    return kept, (len(ds) - len(kept)) if isinstance(ds, Dataset) else None


def _clean(split: AnyDataset, has_bad: bool) -> tuple[AnyDataset, int | None, int | None]:
    """Drop rows that held undecodable bytes (read as `_UNDECODABLE_MARK`) and rows without text.

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
    if bool(args.train_files) == bool(args.dataset):
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

"""Local data files: which `datasets` builder reads a file, expanding paths and globs, a byte-level scan for
lines that are not UTF-8, fingerprints, and `load_dataset` for the formats hfssl reads (text, json, csv, tsv,
parquet; optionally gz/bz2/xz compressed). Shared by the text corpus loader and the labelled-table reader."""

from __future__ import annotations

import bz2
import codecs
import csv
import glob
import gzip
import hashlib
import lzma
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from datasets import (
    Dataset,
    DatasetDict,
    IterableDataset,
    IterableDatasetDict,
    load_dataset,
)

AnyDatasetDict = DatasetDict | IterableDatasetDict
AnyDataset = Dataset | IterableDataset

# File extension -> `datasets` packaged builder.
BUILDERS = {".txt": "text", ".text": "text", ".json": "json", ".jsonl": "json", ".csv": "csv", ".tsv": "tsv",
            ".parquet": "parquet"}
# Formats that are `datasets`' csv builder with another separator; a header row names the columns.
SEPARATED = {"csv": ",", "tsv": "\t"}
# Compression suffix -> opener; `datasets` decompresses the same suffixes on its own when loading.
OPENERS: dict[str, Callable[[Path], IO[bytes]]] = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}
# Undecodable bytes are read as this noncharacter instead of U+FFFD, so a literal U+FFFD in clean text (common in
# scraped corpora) is kept and only rows that failed decoding are dropped and counted.
UNDECODABLE_MARK = "\uffff"
MARK_ERRORS = "hfssl-mark-undecodable"
codecs.register_error(MARK_ERRORS, lambda error: (UNDECODABLE_MARK, error.end))
_GLOB_CHARS = frozenset("*?[")


@dataclass
class FileScan:
    """What a byte-level pass over one local file found."""

    path: Path
    data_lines: int = 0  # non-blank lines (minus the header for csv); 0 means the file holds no rows
    bad_lines: int = 0  # lines that are not valid UTF-8
    first_bad_line: int | None = None


def file_format(path: Path) -> str | None:
    """The `datasets` builder for a file name (`a.jsonl.gz` -> json), or None when unsupported."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in OPENERS:
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
                f"({', '.join(sorted(BUILDERS))}, optionally compressed {', '.join(OPENERS)})."
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
                f"(optionally compressed {', '.join(OPENERS)})."
            )
        by_format.setdefault(fmt, []).append(str(path))
    if len(by_format) > 1:
        groups = "; ".join(f"{fmt}: {', '.join(names)}" for fmt, names in sorted(by_format.items()))
        raise ValueError(f"Files mix formats ({groups}). Give files of one format, or convert them first.")
    return next(iter(by_format))


def open_bytes(path: Path) -> IO[bytes]:
    opener = OPENERS.get(path.suffix.lower())
    return opener(path) if opener else open(path, "rb")


def scan_file(path: Path, fmt: str) -> FileScan:
    """Count data lines and non-UTF-8 lines of one file (decompressing it), line by line in bytes."""
    scan = FileScan(path)
    if fmt == "parquet":
        import pyarrow.parquet as pq  # parquet stores validated UTF-8; only its row count matters

        scan.data_lines = pq.ParquetFile(path).metadata.num_rows
        return scan
    with open_bytes(path) as f:
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


def decode_kwargs(fmt: str, replace: bool) -> dict[str, str]:
    """`load_dataset` keywords that read undecodable bytes as `UNDECODABLE_MARK` instead of failing, and read
    past a UTF-8 byte-order mark at the start of a text file (Windows editors write one) instead of keeping it
    as an invisible U+FEFF at the start of the first row (the csv and json readers skip it on their own)."""
    sig = {"encoding": "utf-8-sig"} if fmt == "text" else {}
    if not replace or fmt == "parquet":
        return sig
    if fmt == "json":
        # The json builder applies `encoding_errors` only when `encoding` is not literally "utf-8";
        # "utf8" is the same codec under another name, which routes each chunk through that decode step.
        return {"encoding": "utf8", "encoding_errors": MARK_ERRORS}
    return {**sig, "encoding_errors": MARK_ERRORS}


_OTHER_SEPARATORS = {";": "semicolons", "\t": "tabs", "|": "vertical bars"}


def column_list(columns: Any) -> str:
    """`columns` as a list for a message, with the likely cause when it is one column whose name holds a field
    separator: a file of semicolon- (or tab-) separated fields read as comma-separated has its whole header line as
    its only column name."""
    names = [str(c) for c in columns]
    text = str(names)
    if len(names) != 1:
        return text
    for separator, plural in _OTHER_SEPARATORS.items():
        if separator in names[0]:
            fix = ("name the file .tsv" if separator == "\t" else
                   f"save it with commas, e.g. pandas.read_csv(path, sep={separator!r}).to_csv(path, index=False)")
            return (f"{text} (one column whose name holds {separator!r}: the file separates its fields with {plural}, "
                    f"not commas; {fix})")
    return text


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
            with open_bytes(path) as raw:
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

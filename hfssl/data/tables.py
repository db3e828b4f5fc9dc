"""The one reader of a split of labelled csv/tsv/json/jsonl/parquet/txt files for `hfssl evaluate`, `finetune` and
`audit`: a bad file is a ValueError naming it, the flag it came from and the fix, not a `datasets` traceback."""

from __future__ import annotations

import lzma
from pathlib import Path
from typing import Any

import datasets
from datasets.exceptions import DatasetGenerationError
from pandas.errors import EmptyDataError
from pyarrow import ArrowException

from .files import load_files, scan_file

# ValueError also covers UnicodeDecodeError, pandas' parser errors and 'Instruction "train" corresponds to no data'.
_READ_ERRORS = (DatasetGenerationError, ValueError, OSError, StopIteration, ArrowException)
_SCANNED = frozenset({"csv", "tsv", "json", "text"})  # line-based formats whose bytes `scan_file` checks
COMPRESSED_SUFFIXES = {".gz": "gzip", ".bz2": "bzip2", ".xz": "xz"}  # the tool that decompresses each


def refuse_empty_files(files: list[Path], *, what: str, flag: str) -> None:
    """Raise a ValueError naming the first file of 0 bytes (its header would read as no columns)."""
    empty = next((Path(f) for f in files if Path(f).is_file() and Path(f).stat().st_size == 0), None)
    if empty is not None:
        raise ValueError(f"The {what} file {str(empty)!r} (from {flag}) is empty; give a file with a header and rows "
                         "of texts and labels.")


def read_labeled_split(builder: str, files: list[Path] | list[str], *, what: str, flag: str,
                       **load_kwargs: Any) -> datasets.Dataset:
    """All `files` as one Dataset (`hfssl.data.files.load_files` with `load_kwargs`); `what` names their role in
    messages ("train", "audit set") and `flag` the option they came from.

    Raises:
        ValueError: a file is empty or not UTF-8 (its first bad line; checked first, as the json reader may keep such
            bytes and fail only when the text is read), the files hold no rows, or the reader failed otherwise.
    """
    paths = [Path(f) for f in files]
    refuse_empty_files(paths, what=what, flag=flag)
    try:
        scans = [scan_file(p, builder) for p in paths if p.is_file()] if builder in _SCANNED else []
    except (OSError, EOFError, lzma.LZMAError):  # a corrupt compressed file: the reader's error names it
        scans = []
    bad = next((scan for scan in scans if scan.bad_lines), None)
    if bad is not None:
        name = bad.path.name
        compressed = bad.path.suffix.lower() in COMPRESSED_SUFFIXES  # iconv needs the decompressed text
        raise ValueError(
            f"The {what} file {str(bad.path)!r} (line {bad.first_bad_line}) (from {flag}) is not UTF-8 text "
            f"({bad.bad_lines} line(s) are not). Save it as UTF-8, e.g. "
            + (f"`{COMPRESSED_SUFFIXES[bad.path.suffix.lower()]} -dc {name} | iconv -f latin1 -t utf-8 > "
               f"utf8-{bad.path.stem}`" if compressed else f"`iconv -f latin1 -t utf-8 {name} > utf8-{name}`")
            + ", and pass that file instead.")
    try:
        split = load_files(builder, {"train": [str(f) for f in files]}, split="train", **load_kwargs)
    except _READ_ERRORS as error:
        cause = error.__cause__ or error
        if isinstance(cause, (EmptyDataError, StopIteration)) or "corresponds to no data" in str(error):
            raise _no_rows([scan.path for scan in scans if not scan.data_lines] or paths, what, flag) from error
        raise ValueError(
            f"The {what} file(s) {', '.join(map(str, paths))} (from {flag}) could not be read as {builder}: "
            f"{type(cause).__name__}: {str(cause).strip().rstrip('.')}. Check that each file is valid {builder}, "
            "or convert the data to another supported format.") from error
    if len(split) == 0:
        raise _no_rows(paths, what, flag)
    return split


def _no_rows(paths: list[Path], what: str, flag: str) -> ValueError:
    return ValueError(f"The {what} file(s) {', '.join(map(str, paths))} (from {flag}) hold no rows (a header at most); "
                      "give files with a header and rows of texts and labels.")

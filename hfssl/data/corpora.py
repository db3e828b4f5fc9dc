"""Real text that ships with every Python: the docstrings of the standard library.

Tests, examples and smoke runs use it as a corpus that needs no download and no data folder.
"""

from __future__ import annotations

import ast
import functools
import logging
import os
import sysconfig
from pathlib import Path

from datasets import Dataset

logger = logging.getLogger(__name__)

MIN_DOCSTRING_CHARS = 40
# Test suites and tool packages hold generated or repetitive text; third-party code is not the stdlib.
_SKIPPED_DIRS = frozenset({"site-packages", "dist-packages", "test", "tests", "idlelib", "lib2to3", "__pycache__"})


def _stdlib_files() -> list[Path]:
    """The standard library's .py files in sorted order, minus skipped folders."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d not in _SKIPPED_DIRS]
        files.extend(Path(folder) / name for name in names if name.endswith(".py"))
    return sorted(files)


def _docstrings_of(path: Path) -> list[str]:
    """Module, class and function docstrings of one source file, parsed (never imported)."""
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (SyntaxError, ValueError, OSError) as error:
        # A few stdlib files are templates or use syntax of another version; skipping them is harmless.
        logger.debug("skipping %s: %s", path, error)
        return []
    nodes = [tree] + [
        node
        for node in ast.walk(tree)
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
    ]
    docs = (ast.get_docstring(node) for node in nodes)
    return [doc for doc in docs if doc and len(doc) >= MIN_DOCSTRING_CHARS]


@functools.cache
def _all_docstrings() -> tuple[str, ...]:
    """Every docstring, computed once per process (parsing the stdlib takes a few seconds)."""
    return tuple(doc for path in _stdlib_files() for doc in _docstrings_of(path))


def stdlib_docstrings(limit: int | None = None) -> list[str]:
    """Docstrings (>= 40 characters) of the Python standard library, in a deterministic order.

    Args:
        limit: keep only the first `limit` docstrings; None keeps all (about 6,000+).

    Returns:
        A new list of strings; the parsed result is cached in-process.
    """
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be None or >= 0, got {limit}.")
    docs = _all_docstrings()
    return list(docs if limit is None else docs[:limit])


def stdlib_docstrings_dataset(limit: int | None = None) -> Dataset:
    """The stdlib docstrings as a `datasets.Dataset` with one `text` column."""
    return Dataset.from_dict({"text": stdlib_docstrings(limit)})

"""What `pip install .` (a regular, non-editable install) ships: every package folder and the data files."""

from __future__ import annotations

from pathlib import Path

from setuptools import find_packages

ROOT = Path(__file__).resolve().parents[1]


def test_every_folder_with_python_code_is_a_package_that_the_wheel_includes():
    """`[tool.setuptools.packages.find]` only finds folders with an __init__.py; a folder without one would
    work in an editable install and be missing from a wheel."""
    shipped = set(find_packages(where=str(ROOT), include=["hfssl*"]))
    with_code = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "hfssl").rglob("*.py")
                 if "__pycache__" not in p.parts}
    assert with_code <= shipped, f"not shipped by a regular install: {sorted(with_code - shipped)}"

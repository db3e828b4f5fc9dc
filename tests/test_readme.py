"""The README's Python examples run as written, against a real (short) quickstart run."""

from __future__ import annotations

import re
from pathlib import Path

from hfssl.quickstart import quickstart

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_readme_opens_with_the_two_commands():
    commands = re.search(r"```bash\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S).group(1)
    first, second = commands.strip().splitlines()[:2]
    assert "hfssl quickstart" in first and "pytest" in second
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert "bash scripts/install-dev.sh" in ci and "python -m pytest -q" in ci


def test_python_examples_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = quickstart("runs/quickstart", max_steps=5)
    assert (tmp_path / "runs" / "quickstart" / "model" / "config.json").is_file()
    assert result.manifest["quickstart"] is True
    blocks = python_blocks()
    assert len(blocks) >= 3
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})
    assert (tmp_path / "runs" / "python-api" / "run.json").is_file()

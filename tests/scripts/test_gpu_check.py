"""scripts/gpu_check.sh refuses bad arguments and missing data before it runs anything."""

from __future__ import annotations

import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gpu_check.sh"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=60)


def test_unknown_argument_and_missing_flags_exit_2():
    done = run("--data", "x")
    assert done.returncode == 2 and "unknown argument --data" in done.stderr and "--data-dir DIR" in done.stderr
    done = run("--output", "out")
    assert done.returncode == 2 and "give --data-dir" in done.stderr


def test_missing_data_file_is_named_and_nothing_is_written(tmp_path):
    (tmp_path / "news").mkdir()
    done = run("--data-dir", str(tmp_path), "--output", str(tmp_path / "out"), "--quick")
    assert done.returncode == 2 and "news/news_articles.jsonl.gz is missing" in done.stderr
    assert not (tmp_path / "out").exists()

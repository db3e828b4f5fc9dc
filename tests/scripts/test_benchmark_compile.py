"""scripts/benchmark_compile.py: one arm eager against compiled, interleaved, at --quick shapes."""

from __future__ import annotations

import json

import pytest

from . import load_script, torch_threads_restored


@pytest.fixture(scope="module")
def script():
    return load_script("benchmark_compile.py")


def test_one_arm_runs_eager_and_compiled_and_reports_the_ratio(script, tmp_path):
    with torch_threads_restored():
        rows = script.main(["--quick", "--suite", "clm", "--arms", "hfssl", "--rounds", "2", "--steps", "2",
                            "--warmup", "1", "--threads", "1", "--output", str(tmp_path)])
    assert [(r["suite"], r["arm"]) for r in rows] == [("clm", "hfssl")]
    row = rows[0]
    assert {len(v) for v in row["per_round"].values()} == {2}
    assert row["eager"] > 0 and row["compiled"] > 0 and row["ratio"] == pytest.approx(row["compiled"] / row["eager"])
    saved = json.loads((tmp_path / "compile.json").read_text())
    assert saved["rows"][0]["arm"] == "hfssl" and "torch" in json.dumps(saved["environment"])


@pytest.mark.parametrize("argv", [["--rounds", "1"], ["--suite", "contrastive"]])
def test_bad_flags_exit_with_usage(script, argv):
    with pytest.raises(SystemExit) as exit_info:
        script.parse_args(argv)
    assert exit_info.value.code == 2

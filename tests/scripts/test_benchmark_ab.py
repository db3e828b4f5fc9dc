"""scripts/benchmark_ab.py: one arm under several flag sets, interleaved, at --quick shapes."""

from __future__ import annotations

import json

import pytest
import torch

from . import load_script, torch_threads_restored


@pytest.fixture(scope="module")
def script():
    return load_script("benchmark_ab.py")


def test_variants_that_change_data_threads_and_precision_are_each_measured(script, tmp_path):
    with torch_threads_restored():
        rows = script.main(["--quick", "--suite", "clm", "--arms", "hfssl", "--rounds", "2", "--steps", "2",
                            "--warmup", "1", "--threads", "1", "--variant", "padded=--no-packing",
                            "--variant", "bf16=--autocast bf16", "--memory", "--output", str(tmp_path)])
        assert torch.get_num_threads() == 1  # back to --threads after the run
    assert [(r["suite"], r["arm"]) for r in rows] == [("clm", "hfssl")]
    row = rows[0]
    assert list(row["variants"]) == ["baseline", "padded", "bf16"]
    assert {len(v) for v in row["per_round"].values()} == {2}
    assert all(v > 0 for v in row["variants"].values())
    assert row["ratios"]["baseline"] == 1.0
    assert set(row["peak_rss_mib"]) == set(row["variants"]) and all(v > 0 for v in row["peak_rss_mib"].values())
    assert row["ratios"]["bf16"] == pytest.approx(row["variants"]["bf16"] / row["variants"]["baseline"])
    saved = json.loads((tmp_path / "ab.json").read_text())
    assert saved["rows"][0]["ratios"] == row["ratios"] and "benchmark_ab.py" in saved["command"]


@pytest.mark.parametrize("argv", [
    ["--variant", "no-equals-sign"],
    ["--variant", "x="],
    ["--variant", "baseline=--no-packing"],
    [],
    ["--variant", "a=--threads 1", "--rounds", "1"],
])
def test_bad_flags_exit_with_usage(script, argv):
    with pytest.raises(SystemExit) as exit_info:
        script.parse_args(argv)
    assert exit_info.value.code == 2

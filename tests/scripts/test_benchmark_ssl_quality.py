"""scripts/benchmark_ssl_quality.py: the verdicts it draws from label-efficiency curves, and its flags."""

from __future__ import annotations

import statistics

import pytest

from . import load_script


@pytest.fixture(scope="module")
def quality():
    return load_script("benchmark_ssl_quality.py")


def point(fraction: float, examples: int, accuracies: list[float]) -> dict:
    return {"fraction": fraction, "examples": examples, "accuracies": accuracies,
            "mean": statistics.fmean(accuracies), "std": statistics.stdev(accuracies)}


def curves(pretrained_small: list[float]) -> dict:
    return {"label-efficiency": {"curves": {
        "pretrained": [point(0.01, 51, pretrained_small), point(1.0, 5000, [0.80, 0.80, 0.80])],
        "random-init": [point(0.01, 51, [0.33, 0.35, 0.40]), point(1.0, 5000, [0.775, 0.775, 0.775])],
        "supervised": [point(0.01, 51, [0.55, 0.48, 0.48]), point(1.0, 5000, [0.75, 0.78, 0.75])],
    }}}


def test_a_tie_with_supervised_passes_on_means_but_not_paired(quality):
    # BYOL's 51-label column: 0.504 against 0.502 on means, one seed of three ahead.
    tie = quality.verdicts(curves([0.526, 0.531, 0.455]))
    assert tie["beats_supervised_at_smallest_fraction"] is True
    assert tie["beats_supervised_paired_at_smallest_fraction"] is False
    assert tie["paired_gap_to_supervised_at_smallest_fraction"]["wins"] == "1/3"
    clear = quality.verdicts(curves([0.59, 0.535, 0.52]))  # DINO's: ahead in every seed, steadily
    assert clear["beats_supervised_paired_at_smallest_fraction"] is True
    assert clear["beats_random_init_paired_at_every_fraction"] is True


def test_objectives_beyond_the_issues_set_are_accepted_and_unknown_ones_refused(quality):
    args = quality.parse_args(["--part", "text", "--objectives", "mlm+simcse,simcse"])
    assert quality.selected_objectives(args) == ["mlm+simcse", "simcse"]
    with pytest.raises(SystemExit, match="Unknown objective"):
        quality.selected_objectives(quality.parse_args(["--objectives", "mlm,bert"]))

"""Image pretraining on small folders: runs that fit train, those that cannot are refused before anything is written,
and the run's numbers (images seen, collapse verdict) say what really happened."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hfssl.cli import _monitor_lines, main
from hfssl.training.callbacks import CollapseMonitorCallback

SMALL = ["--model-size", "tiny", "--image-size", "16", "--report-to", "none", "--disable-tqdm", "true",
         "--save-steps", "1000", "--eval-steps", "1000"]


def image_folder(root: Path, count: int, seed: int = 0) -> Path:
    """`count` random 12x12 RGB PNGs split between two class folders."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        folder = root / ("a" if i % 2 else "b")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return root


def pretrain(*args) -> int:
    return main(["pretrain", *SMALL, *map(str, args)])


def test_batch_larger_than_the_training_split_is_refused_before_the_run(tmp_path, capsys):
    data = image_folder(tmp_path / "data", 20)
    out = tmp_path / "run"
    code = pretrain("--objective", "byol", "--dataset", "imagefolder", "--data-dir", data, "--max-steps", 3,
                    "--per-device-train-batch-size", 64, "--output", out)
    error = capsys.readouterr().err
    assert code == 2 and not out.exists()
    assert "would train 0 steps" in error and "--per-device-train-batch-size to at most 18" in error, error


def test_small_contrastive_set_holds_out_two_validation_images_and_trains(tmp_path):
    data = image_folder(tmp_path / "data", 18)
    out = tmp_path / "run"
    assert pretrain("--objective", "simclr", "--dataset", "imagefolder", "--data-dir", data, "--max-steps", 2,
                    "--per-device-train-batch-size", 8, "--output", out) == 0
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["data"]["validation_rows"] == 2 and manifest["data"]["train_rows"] == 16
    assert manifest["data"]["streaming"] is False
    assert manifest["pretrain"]["steps"] == 2 and manifest["pretrain"]["images_seen"] == 16


@pytest.mark.parametrize(("objective", "expected"), [
    ("simclr", "needs at least 4"),
    ("mae", "--collapse-every 0"),
])
def test_two_images_get_one_clear_message(tmp_path, capsys, objective, expected):
    data = image_folder(tmp_path / "data", 2)
    out = tmp_path / "run"
    code = pretrain("--objective", objective, "--dataset", "imagefolder", "--data-dir", data, "--max-steps", 2,
                    "--output", out)
    error = capsys.readouterr().err
    assert code == 2 and not out.exists()
    assert "Too few images" in error and expected in error, error


def test_validation_files_are_used_and_images_seen_counts_the_epochs(tmp_path):
    train = image_folder(tmp_path / "train", 17)
    validation = image_folder(tmp_path / "validation", 5, seed=1)
    out = tmp_path / "run"
    assert pretrain("--objective", "mae", "--train-files", train, "--validation-files", validation,
                    "--max-steps", 5, "--per-device-train-batch-size", 32, "--output", out) == 0
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["data"]["train_rows"] == 17 and manifest["data"]["validation_rows"] == 5
    assert manifest["data"]["validation_source"] == f"files:{validation}"
    assert manifest["pretrain"]["images_seen"] == 5 * 17  # one partial batch per step, not 5 x 32


@pytest.mark.parametrize(("files", "flags", "expected"), [
    (False, ["--image-size", "0"], "--image-size 0"),
    (False, ["--streaming", "true"], "--streaming is for text corpora"),
    (True, ["--validation-split", "test"], "--validation-split goes with --dataset"),
    (True, ["--view-overrides", "hflip_p=2"], "hflip_p=2 is a probability"),
])
def test_image_flags_that_cannot_apply_are_refused(tmp_path, capsys, files, flags, expected):
    data = image_folder(tmp_path / "data", 6)
    out = tmp_path / "run"
    source = ["--train-files", data] if files else ["--dataset", "imagefolder", "--data-dir", data]
    code = pretrain("--objective", "mae", *source, "--max-steps", 1, "--output", out, *flags)
    error = capsys.readouterr().err
    assert code == 2 and not out.exists()
    assert expected in error, error


def test_collapse_at_the_end_of_training_is_diagnosed():
    """A last measurement below the rank threshold taken at train end (not a measured step) gives a warning, so the
    printed verdict agrees with the threshold."""
    from transformers import TrainerControl, TrainerState, TrainingArguments

    from hfssl.training.objectives import get_objective

    objective = get_objective("simclr")
    config = objective.config_class.from_size("tiny", image_size=16, num_channels=3, patch_size=4,
                                              **objective.config_extra({}))
    model = objective.model_class(config)
    same = torch.zeros(4, 3, 16, 16)  # identical inputs: one point, rank 1
    monitor = CollapseMonitorCallback({"pixel_values": same}, every=100)
    state = TrainerState()
    state.global_step = 3
    monitor.on_train_end(TrainingArguments(output_dir="unused", report_to="none"), state, TrainerControl(),
                         model=model)
    summary = monitor.summary()
    assert summary["last"]["collapse_effective_rank"] < summary["min_effective_rank"]
    assert len(summary["warnings"]) == 1
    assert "no collapse" not in _monitor_lines({"collapse": summary})[0]

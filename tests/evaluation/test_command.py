"""`hfssl evaluate` flags reach `evaluate_run`; bad flag values fail at parsing."""

from __future__ import annotations

import argparse
import json

import pytest

from hfssl.evaluation.command import add_evaluate_arguments, cmd_evaluate


def test_flags_parse_lists():
    args = add_evaluate_arguments(argparse.ArgumentParser()).parse_args(
        ["runs/x", "--protocol", "label-efficiency", "--fractions", "0.01,0.5,1", "--seeds", "2",
         "--baselines", "random-init,supervised", "--k", "10,50", "--train-files", "a.csv", "b.csv"])
    assert args.fractions == [0.01, 0.5, 1.0] and args.k == [10, 50] and args.seeds == 2
    assert args.baselines == ["random-init", "supervised"] and args.train_files == ["a.csv", "b.csv"]


@pytest.mark.parametrize("flags", [["--fractions", "0.1,x"], ["--k", "twenty"], ["--protocol", "probe"]])
def test_bad_flag_values_exit_with_usage(flags, capsys):
    with pytest.raises(SystemExit) as exit_info:
        add_evaluate_arguments(argparse.ArgumentParser()).parse_args(["runs/x", *flags])
    assert exit_info.value.code == 2


def test_command_runs_knn_and_prints_the_table(vision_run, capsys):
    code = cmd_evaluate([str(vision_run), "--protocol", "knn", "--dataset", "digits", "--k", "5",
                         "--max-train-examples", "300", "--baselines", "random-init"])
    assert code == 0
    out = capsys.readouterr().out
    assert "knn: sklearn-digits (train 300, test 360, 10 classes)" in out and "random-init  k=5" in out
    saved = json.loads((vision_run / "eval" / "knn.json").read_text())
    assert saved["arms"]["pretrained"]["protocol"]["k_requested"] == [5]


def test_finetune_schedule_flags_reach_the_protocol_and_bad_ones_exit_2(vision_run, capsys):
    code = cmd_evaluate([str(vision_run), "--protocol", "finetune", "--dataset", "digits", "--max-train-examples", "200",
                         "--max-test-examples", "100", "--finetune-epochs", "2", "--finetune-learning-rate", "0.001"])
    assert code == 0
    saved = json.loads((vision_run / "eval" / "finetune.json").read_text())["arms"]["pretrained"]["protocol"]
    assert saved["epochs"] == 2 and saved["learning_rate"] == 0.001
    from hfssl.cli import main

    code = main(["evaluate", str(vision_run), "--protocol", "finetune", "--dataset", "digits", "--finetune-epochs", "-1"])
    assert code == 2 and "finetune_epochs must be > 0, got -1.0" in capsys.readouterr().err


def test_device_auto_records_where_it_ran_and_an_absent_gpu_exits_2(vision_run, capsys):
    import torch

    from hfssl.cli import main
    from hfssl.evaluation.api import resolve_device

    expected = "cuda:0" if torch.cuda.is_available() else "cpu"
    assert cmd_evaluate([str(vision_run), "--protocol", "knn", "--dataset", "digits", "--k", "5",
                         "--max-train-examples", "200", "--max-test-examples", "100"]) == 0
    assert json.loads((vision_run / "eval" / "knn.json").read_text())["model"]["device"] == expected
    with pytest.raises(ValueError, match="Unknown device 'tpu0'"):
        resolve_device("tpu0")
    if torch.cuda.is_available():
        return
    before = (vision_run / "eval" / "knn.json").read_bytes()
    code = main(["evaluate", str(vision_run), "--protocol", "knn", "--dataset", "digits", "--device", "cuda"])
    assert code == 2 and "torch sees no CUDA GPU here; use device='cpu'" in capsys.readouterr().err
    assert (vision_run / "eval" / "knn.json").read_bytes() == before


@pytest.mark.parametrize(("flags", "message"), [
    (["--protocol", "knn", "--fractions", "0.001"],
     "--protocol knn does not use --fractions (--fractions is for --protocol label-efficiency)"),
    (["--protocol", "linear-probe", "--seeds", "5", "--k", "3"], "does not use --seeds, --k"),
    (["--protocol", "label-efficiency", "--finetune-epochs", "2"], "--finetune-epochs is for --protocol finetune"),
    (["--protocol", "knn", "--supervised-epochs", "3", "--baselines", "random-init"], "add --baselines supervised"),
])
def test_a_flag_the_protocol_would_ignore_is_refused_before_any_work(vision_run, capsys, flags, message):
    from hfssl.cli import main

    eval_dir = vision_run / "eval"
    before = sorted(p.name for p in eval_dir.iterdir()) if eval_dir.is_dir() else []
    run_json = (vision_run / "run.json").read_bytes()
    code = main(["evaluate", str(vision_run), "--dataset", "digits", *flags])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
    assert (sorted(p.name for p in eval_dir.iterdir()) if eval_dir.is_dir() else []) == before
    assert (vision_run / "run.json").read_bytes() == run_json


def test_the_protocol_defaults_apply_when_its_flags_are_not_given(vision_run):
    assert cmd_evaluate([str(vision_run), "--protocol", "label-efficiency", "--dataset", "digits",
                         "--max-test-examples", "100"]) == 0  # every training example: 1% still holds each class
    saved = json.loads((vision_run / "eval" / "label-efficiency.json").read_text())
    assert saved["seeds"] == [0, 1, 2]  # --seeds 3
    assert [p["fraction"] for p in saved["curves"]["pretrained"]] == [0.01, 0.05, 0.1, 0.25, 1.0]

"""Runs that are interrupted (Ctrl-C, SIGTERM, a checkpoint half-written) and resumed, on tiny real runs.

Three runs are `hfssl pretrain` subprocesses stopped by a signal; the others run in-process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hfssl.training.rundir import RunDirectory, checkpoint_problem, open_run
from tests.training.test_run_continuation import TINY, copy_run, pretrain, refuse_resume

REPO = Path(__file__).resolve().parents[2]
LEARNING_RATE = 5e-4  # the pretraining default


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A finished 4-step MLM run with checkpoints at steps 2 and 4."""
    out = tmp_path_factory.mktemp("runs") / "mlm"
    assert pretrain("--objective", "mlm", "--output", out, "--max-steps", "4", "--save-steps", "2") == 0
    return out


def start_and_signal(out: Path, sig: int, when: str, *flags: str) -> subprocess.CompletedProcess:
    """Start `hfssl pretrain` (tiny settings) in a subprocess, send `sig` once `out`/`when` exists, and wait."""
    command = [sys.executable, "-m", "hfssl.cli", "pretrain", *TINY, "--objective", "mlm", "--output", str(out),
               *flags]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out / when).exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert process.poll() is None, "the run ended before it could be interrupted"
    process.send_signal(sig)
    stdout, stderr = process.communicate(timeout=120)
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def linear_schedule(step: int, max_steps: int) -> float:
    """The learning rate the Trainer logs at `step` with the default 5% warm-up (one step here) and linear decay."""
    return 0.0 if step == 1 else LEARNING_RATE * (max_steps - step + 1) / (max_steps - 1)


# ---------------------------------------------------------------- signals


def test_sigterm_stops_the_run_names_the_checkpoint_and_resume_continues_the_schedule(tmp_path):
    out = tmp_path / "run"
    stopped = start_and_signal(out, signal.SIGTERM, "checkpoints/checkpoint-2/trainer_state.json",
                               "--max-steps", "12", "--save-steps", "2")
    assert stopped.returncode == 128 + signal.SIGTERM, stopped.stderr[-2000:]
    last = RunDirectory(out).resumable_checkpoint()
    assert last is not None and checkpoint_problem(last) is None
    assert f"its last complete checkpoint is {last}: continue it with the same command and --resume" in stopped.stderr
    assert not (out / "run.json").exists() and not (out / "model").exists()
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")], "no half-written model/ staging folder"

    assert pretrain("--objective", "mlm", "--output", out, "--max-steps", "12", "--save-steps", "2",
                    "--resume") == 0
    stats = json.loads((out / "run.json").read_text())["pretrain"]
    assert stats["resumed_from"] == last and stats["steps"] == 12
    assert stats["tokens_seen"] == 12 * 8 * 64  # the steps before the stop are counted once
    logged = {e["step"]: e["learning_rate"] for e in stats["log_history"] if "loss" in e}
    assert sorted(logged) == list(range(1, 13))  # no step repeated or missing
    assert logged == pytest.approx({s: linear_schedule(s, 12) for s in logged})  # no warm-up again after the stop


def test_sigterm_before_the_first_checkpoint_removes_the_new_run(tmp_path):
    """Nothing to resume: the directory goes, so the same command can simply be run again."""
    out = tmp_path / "run"
    stopped = start_and_signal(out, signal.SIGTERM, "checkpoints/data.json", "--max-steps", "500",
                               "--save-steps", "1000")
    assert stopped.returncode == 128 + signal.SIGTERM, stopped.stderr[-2000:]
    assert "Received SIGTERM: stopping the run." in stopped.stderr
    assert not out.exists()


def test_ctrl_c_names_the_checkpoint_to_resume_from(tmp_path):
    out = tmp_path / "run"
    stopped = start_and_signal(out, signal.SIGINT, "checkpoints/checkpoint-2/trainer_state.json",
                               "--max-steps", "200", "--save-steps", "2")
    assert stopped.returncode == 130 and "Traceback" not in stopped.stderr  # one line, not a traceback
    assert stopped.stderr.rstrip().endswith("hfssl pretrain: interrupted.")
    last = RunDirectory(out).resumable_checkpoint()
    assert last and f"its last complete checkpoint is {last}: continue it with the same command and --resume" in \
        stopped.stderr


# ---------------------------------------------------------------- half-written checkpoints


def test_a_new_run_stopped_while_writing_its_first_checkpoint_is_removed(tmp_path):
    """Ctrl-C while the Trainer saves: the folder has a few files and no trainer_state.json, and cannot resume."""
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt), open_run(out) as run:
        half = run.checkpoints_dir / "checkpoint-2"
        half.mkdir(parents=True)
        (half / "modeling_hfssl_text.py").write_text("# the first file the Trainer copies\n")
        raise KeyboardInterrupt
    assert not out.exists()


def test_resume_falls_back_past_a_truncated_checkpoint(finished_run, tmp_path, caplog):
    from transformers.utils import logging as hf_logging

    run = copy_run(finished_run, tmp_path / "run")
    weights = run / "checkpoints" / "checkpoint-4" / "model.safetensors"
    os.truncate(weights, weights.stat().st_size // 2)
    hf_logging.enable_propagation()  # the Trainer's own warnings reach caplog
    try:
        assert pretrain("--objective", "mlm", "--output", run, "--max-steps", "6", "--save-steps", "2",
                        "--resume") == 0
    finally:
        hf_logging.disable_propagation()
    assert "There were missing keys" not in caplog.text  # the tied head, saved once, was warned about every resume
    stats = json.loads((run / "run.json").read_text())["pretrain"]
    assert stats["resumed_from"] == str(run / "checkpoints" / "checkpoint-2") and stats["steps"] == 6
    assert "checkpoint-4 is not a complete checkpoint (model.safetensors is truncated" in caplog.text
    assert (run / "checkpoints" / "incomplete-checkpoint-4" / "model.safetensors").is_file()  # set aside, kept
    assert checkpoint_problem(run / "checkpoints" / "checkpoint-4") is None  # saved again by the resumed run


def test_resume_without_a_complete_checkpoint_names_each_problem(finished_run, tmp_path, capsys):
    """A missing optimizer.pt used to resume silently with a fresh optimizer and the warm-up started again."""
    run = copy_run(finished_run, tmp_path / "run")
    (run / "checkpoints" / "checkpoint-4" / "optimizer.pt").unlink()
    (run / "checkpoints" / "checkpoint-2" / "trainer_state.json").unlink()
    refuse_resume(capsys, run, "--objective", "mlm", "--max-steps", "6",
                  message="holds no complete checkpoint: checkpoint-4: it has no optimizer.pt")
    refuse_resume(capsys, run, "--objective", "mlm", "--max-steps", "6",
                  message="checkpoint-2: it has no trainer_state.json")


# ---------------------------------------------------------------- resuming with other flags


@pytest.mark.parametrize("flags, message", [
    (["--per-device-train-batch-size", "4"], "examples_per_step: 8 then, 4 now"),
    (["--gradient-accumulation-steps", "2"], "examples_per_step: 8 then, 16 now"),
    (["--seed", "7"], "data_seed: 42 then, 7 now"),
    (["--learning-rate", "1e-3"], "learning_rate: 0.0005 then, 0.001 now"),
])
def test_resume_with_another_batch_order_or_schedule_is_refused(finished_run, tmp_path, capsys, flags, message):
    run = copy_run(finished_run, tmp_path / "run")
    refuse_resume(capsys, run, "--objective", "mlm", "--max-steps", "6", *flags, message=message)


# ---------------------------------------------------------------- the run directory


def test_output_that_is_a_file_is_refused(tmp_path, capsys):
    target = tmp_path / "notes.txt"
    target.write_text("mine\n")
    for flags in ([], ["--overwrite"]):
        assert pretrain("--objective", "mlm", "--output", target, "--max-steps", "1", *flags) == 2
        assert "is a file, not a run directory" in capsys.readouterr().err
        assert target.read_text() == "mine\n" and sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_evaluations_of_the_same_weights_give_the_same_loss(tmp_path):
    """The masking collator draws from its own generator: each evaluation must start it from its seed."""
    out = tmp_path / "run"
    assert pretrain("--objective", "mlm", "--output", out, "--max-steps", "2", "--eval-steps", "2",
                    "--save-steps", "1000") == 0
    stats = json.loads((out / "run.json").read_text())["pretrain"]
    at_the_end = [e["eval_loss"] for e in stats["log_history"] if "eval_loss" in e and e["step"] == 2]
    assert at_the_end[0] == stats["eval_loss"]


def test_hints_name_the_newest_complete_checkpoint(finished_run, tmp_path):
    """--init-from and the demo point at a folder of weights: a half-written newest checkpoint is passed over."""
    from hfssl.training.init_from import init_source
    from hfssl.training.rundir import newest_checkpoint

    run = copy_run(finished_run, tmp_path / "run")
    (run / "checkpoints" / "checkpoint-4" / "trainer_state.json").unlink()  # stopped while saving
    complete = str(run / "checkpoints" / "checkpoint-2")
    assert newest_checkpoint(run / "checkpoints") == complete
    assert newest_checkpoint(run / "nowhere") is None
    with pytest.raises(FileNotFoundError, match=f"Its newest checkpoint is {complete}: pass --init-from"):
        init_source(str(run / "checkpoints"))


def test_resume_with_another_tokenizer_is_refused(finished_run, tmp_path, capsys):
    """--tokenizer was silently ignored on --resume (the checkpoint's tokenizer was used)."""
    from hfssl.data.corpora import stdlib_docstrings
    from hfssl.data.tokenizer import train_tokenizer

    other = tmp_path / "other-tokenizer"
    train_tokenizer(stdlib_docstrings()[:200], "wordpiece", vocab_size=300, model_max_length=64).save_pretrained(other)
    run = copy_run(finished_run, tmp_path / "run")
    refuse_resume(capsys, run, "--objective", "mlm", "--max-steps", "6", "--tokenizer", other,
                  message="--resume continues with the tokenizer saved in")


def test_a_stopped_run_keeps_weights_only_checkpoints(tmp_path, caplog):
    """--save-only-model checkpoints cannot resume (no optimizer state), but an interrupted run deleted them."""
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt), open_run(out) as run:
        checkpoint = run.checkpoints_dir / "checkpoint-2"
        checkpoint.mkdir(parents=True)
        (checkpoint / "trainer_state.json").write_text("{}")
        (checkpoint / "model.safetensors").write_bytes(b"\x02\x00\x00\x00\x00\x00\x00\x00{}")
        raise KeyboardInterrupt
    assert checkpoint.is_dir()
    assert f"start a new run from the weights in {checkpoint} with --init-from" in caplog.text

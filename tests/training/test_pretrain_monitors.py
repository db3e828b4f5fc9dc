"""Training monitors wired into `hfssl pretrain`: the online probe, the collapse monitor and the non-finite-loss
guard, their values in the Trainer logs and run.json, and the bad probe inputs that must fail before training."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from hfssl.cli import main

from .test_pretrain_ssl_cli import IMAGES

TEXT = [
    "--model-size", "tiny", "--config-overrides", "hidden_size=64,num_attention_heads=2,intermediate_size=128",
    "--vocab-size", "500", "--block-size", "32", "--per-device-train-batch-size", "16",
    "--learning-rate", "3e-3", "--report-to", "none", "--eval-steps", "1000", "--save-steps", "1000",
    "--logging-steps", "5", "--disable-tqdm", "true",
]


def image_pretrain(*args) -> int:
    return main(["pretrain", *IMAGES, *[str(a) for a in args]])


def text_pretrain(*args) -> int:
    return main(["pretrain", *TEXT, *[str(a) for a in args]])


def manifest(run: Path) -> dict:
    return json.loads((run / "run.json").read_text())


def test_online_probe_and_collapse_monitor_log_and_reach_run_json(tmp_path, capsys):
    out = tmp_path / "mae"
    assert image_pretrain("--objective", "mae", "--output", out, "--max-steps", "20", "--probe-dataset", "digits",
                          "--probe-every", "10", "--probes", "knn,linear", "--collapse-every", "10") == 0
    stats = manifest(out)["pretrain"]
    probe, collapse, guard = (stats["monitors"][k] for k in ("online_probe", "collapse", "non_finite_loss"))
    # Step 0 (the random-init starting point) is kept in the history; steps 10 and 20 are also Trainer logs.
    assert [h["step"] for h in probe["history"]] == [0, 10, 20]
    assert all(0.3 < h["probe_knn_acc"] <= 1 and 0.3 < h["probe_linear_acc"] <= 1 for h in probe["history"])
    assert probe["probe_train_examples"] + probe["probe_test_examples"] == 1437  # the digits training split
    logged = [e for e in stats["log_history"] if "probe_knn_acc" in e]
    assert [e["step"] for e in logged] == [10, 20]
    assert all("collapse_effective_rank" in e for e in logged)
    assert [h["step"] for h in collapse["history"]] == [0, 10, 20]
    assert collapse["last"]["collapse_effective_rank"] > 2 and not collapse["warnings"]
    assert guard == {"tripped": False, "step": None, "last_good_checkpoint": None, "message": None}
    printed = capsys.readouterr().out
    assert "probe knn accuracy" in printed and "feature rank" in printed and "no collapse" in printed


def test_collapse_monitor_can_be_turned_off(tmp_path):
    out = tmp_path / "mae"
    assert image_pretrain("--objective", "mae", "--output", out, "--max-steps", "4", "--collapse-every", "0") == 0
    assert set(manifest(out)["pretrain"]["monitors"]) == {"non_finite_loss"}


def test_exploding_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, capsys):
    out = tmp_path / "mae"
    code = image_pretrain("--objective", "mae", "--output", out, "--max-steps", "20", "--learning-rate", "1e30",
                          "--max-grad-norm", "0", "--save-steps", "1", "--collapse-every", "0")
    err = capsys.readouterr().err
    assert code == 2, err
    assert "NaN or inf" in err and "--max-grad-norm" in err
    checkpoints = sorted(out.glob("checkpoints/checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    assert checkpoints, "the last good checkpoint must stay on disk"
    assert str(checkpoints[-1]) in err
    step = int(checkpoints[-1].name.split("-")[1])
    assert step < 20
    assert not (out / "model").exists(), "broken weights must not be saved as the run's model"


def write_labelled_csv(path: Path, rows: list[tuple[str, int]], header=("text", "label")) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def topic_rows(count: int) -> list[tuple[str, int]]:
    """Two topics told apart by their words: any encoder with a working kNN separates them."""
    first = ["the cat sat on the mat", "a dog ran in the park", "birds sing in the tree", "the horse eats hay"]
    second = ["return the value of x", "raise an error if empty", "open the file and read", "parse the string"]
    return [(first[i % 4] if i % 2 == 0 else second[i % 4], i % 2) for i in range(count)]


@pytest.fixture(scope="module")
def text_corpus(tmp_path_factory) -> Path:
    from hfssl.data.corpora import stdlib_docstrings

    path = tmp_path_factory.mktemp("corpus") / "docs.txt"
    path.write_text("\n".join(" ".join(t.split()) for t in stdlib_docstrings()[:800]) + "\n", encoding="utf-8")
    return path


def test_text_run_probes_a_labelled_csv(tmp_path, text_corpus):
    probe = write_labelled_csv(tmp_path / "probe.csv", topic_rows(60))
    out = tmp_path / "mlm"
    assert text_pretrain("--objective", "mlm", "--train-files", text_corpus, "--output", out, "--max-steps", "10",
                         "--probe-dataset", probe, "--probe-every", "5") == 0
    history = manifest(out)["pretrain"]["monitors"]["online_probe"]["history"]
    assert [h["step"] for h in history] == [0, 5, 10]
    accuracies = [h["probe_knn_acc"] for h in history]
    # The two topics share no words, so the features of the initial model already separate them. Ten steps at
    # this learning rate can move them either way (with seeds 0-5: 1.0 in five, 0.73 in one), so later points
    # are only checked to be accuracies.
    assert accuracies[0] >= 0.9 and all(0.0 <= a <= 1.0 for a in accuracies)
    assert manifest(out)["arguments"]["run"]["probe_dataset"] == str(probe)


def refuse(capsys, out: Path, run, *args, message: str) -> None:
    code = run("--output", out, "--max-steps", "2", *args)
    err = capsys.readouterr().err
    assert code == 2, err
    assert message.lower() in err.lower(), err
    assert not out.exists(), "bad probe input must fail before the run directory is made"


def test_probe_without_the_label_column_lists_the_columns(tmp_path, capsys, text_corpus):
    probe = write_labelled_csv(tmp_path / "probe.csv", topic_rows(20), header=("text", "topic"))
    refuse(capsys, tmp_path / "run", text_pretrain, "--train-files", text_corpus, "--probe-dataset", probe,
           message="topic")


def test_probe_with_one_class(tmp_path, capsys, text_corpus):
    probe = write_labelled_csv(tmp_path / "probe.csv", [(t, 0) for t, _ in topic_rows(20)])
    refuse(capsys, tmp_path / "run", text_pretrain, "--train-files", text_corpus, "--probe-dataset", probe,
           message="class")


def test_image_probe_for_a_text_model(tmp_path, capsys, text_corpus):
    refuse(capsys, tmp_path / "run", text_pretrain, "--train-files", text_corpus, "--probe-dataset", "digits",
           message="text")


def test_unknown_probe_name(tmp_path, capsys):
    refuse(capsys, tmp_path / "run", image_pretrain, "--objective", "mae", "--probe-dataset", "digits",
           "--probes", "knn,svm", message="knn")


def test_time_budget_stops_early_saves_the_model_and_resume_continues(tmp_path, caplog):
    out = tmp_path / "mae"
    assert image_pretrain("--objective", "mae", "--output", out, "--max-steps", "100000", "--max-time-s", "2",
                          "--collapse-every", "0", "--save-steps", "100000") == 0
    stats = manifest(out)["pretrain"]
    budget = stats["monitors"]["time_budget"]
    assert budget["stopped"] and 0 < budget["stopped_at_step"] == stats["steps"] < 100000
    assert budget["elapsed_s"] >= 2 and budget["seconds"] == 2
    assert (out / "model" / "model.safetensors").is_file()
    checkpoint = out / "checkpoints" / f"checkpoint-{stats['steps']}"
    assert checkpoint.is_dir(), "the stop saves a checkpoint that --resume continues from"
    assert "Time budget of 2 s reached: training stops at step" in caplog.text
    assert image_pretrain("--objective", "mae", "--output", out, "--max-steps", "100000", "--max-time-s", "1",
                          "--collapse-every", "0", "--save-steps", "100000", "--resume", "true") == 0
    resumed = manifest(out)["pretrain"]
    assert resumed["resumed_from"] == str(checkpoint) and resumed["steps"] > stats["steps"]


def test_negative_time_budget_is_refused_before_the_run_starts(tmp_path, capsys):
    out = tmp_path / "mae"
    assert image_pretrain("--objective", "mae", "--output", out, "--max-steps", "5", "--max-time-s", "-1") == 2
    assert "--max-time-s -1.0: give a number of seconds > 0" in capsys.readouterr().err
    assert not out.exists()


def test_a_nan_before_any_checkpoint_is_the_error_shown_with_the_collapse_monitor_on(tmp_path, capsys):
    """The end-of-training rank of NaN features used to fail first ("SVD did not converge") and hide this."""
    out = tmp_path / "mae-nan"
    code = image_pretrain("--objective", "mae", "--output", out, "--max-steps", "20", "--learning-rate", "1e30",
                          "--max-grad-norm", "0")
    err = capsys.readouterr().err
    assert code == 2 and "NaN or inf" in err and "start the run again" in err and "SVD" not in err
    assert not out.exists()

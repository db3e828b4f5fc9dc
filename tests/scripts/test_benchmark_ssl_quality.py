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


def pretrain_news_mlm(data_dir, output, steps: int) -> None:
    """A tiny MLM pretrained for `steps` steps on 100 news articles into `output`."""
    from hfssl.cli import main

    assert main(["pretrain", "--objective", "mlm", "--train-files", str(data_dir / "news" / "news100.jsonl.gz"),
                 "--text-column", "text", "--model-size", "tiny", "--vocab-size", "1000", "--block-size", "128",
                 "--max-steps", str(steps), "--output", str(output), "--report-to", "none",
                 "--disable-tqdm", "true"]) == 0


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


def test_adapt_steps_is_checked(quality):
    with pytest.raises(SystemExit):
        quality.parse_args(["--part", "text", "--adapt-steps", "-1"])
    with pytest.raises(SystemExit):  # adaptation is to the probes' texts: images have none
        quality.parse_args(["--objectives", "mlm,mae", "--adapt-steps", "10"])
    assert quality.parse_args(["--part", "text", "--adapt-steps", "10"]).adapt_steps == 10


def test_adaptation_continues_the_news_run_on_the_probe_texts_only(quality, tmp_path, data_dir):
    import csv
    import json


    # a data folder like ../shared/data with 300 review snippets and a test split the adaptation must not read
    reviews = tmp_path / "data" / "rotten_tomatoes"
    reviews.mkdir(parents=True)
    with open(data_dir / "rotten_tomatoes" / "train.csv", encoding="utf-8") as f:
        rows = list(csv.reader(f))[:301]
    with open(reviews / "train.csv", "w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(rows)
    (reviews / "test.csv").write_text("not,a,csv,the,adaptation,reads\n", encoding="utf-8")
    news_run, adapted = tmp_path / "out" / "mlm", tmp_path / "out" / "mlm-adapted"
    pretrain_news_mlm(data_dir, news_run, steps=3)

    result = quality.run_pretraining(quality.adapt_argv("mlm", news_run, adapted, tmp_path / "data", 4))
    assert result["ok"], result["error"]
    manifest = json.loads((adapted / "run.json").read_text())
    assert manifest["model"]["init_from"] == str(news_run)
    assert manifest["pretrain"]["steps"] == 4
    assert manifest["data"]["source"] == [str(reviews / "train.csv")] and manifest["data"]["text_column"] == "text"
    # the news run's tokenizer, unchanged; its weights, trained further
    assert (adapted / "model" / "tokenizer.json").read_text() == (news_run / "model" / "tokenizer.json").read_text()
    from safetensors.torch import load_file

    before, after = (load_file(run / "model" / "model.safetensors") for run in (news_run, adapted))
    assert before.keys() == after.keys() and any(not before[k].equal(after[k]) for k in before)


def test_model_size_reaches_pretraining(quality, tmp_path):
    args = quality.parse_args(["--part", "text", "--model-size", "small"])
    assert args.model_size == "small" and quality.parse_args([]).model_size == "tiny"
    for objective in ("mlm", "mae"):
        argv = quality.pretrain_argv(objective, tmp_path / objective, tmp_path, 10, model_size=args.model_size)
        assert argv[argv.index("--model-size") + 1] == "small"
    with pytest.raises(SystemExit):
        quality.parse_args(["--model-size", "huge"])


def test_protocols_and_baselines_choose_what_runs_and_skip_pretrain_records_the_runs_size(quality, tmp_path,
                                                                                           data_dir):
    import json


    out = tmp_path / "out"
    pretrain_news_mlm(data_dir, out / "mlm", steps=2)
    assert quality.main(["--part", "text", "--objectives", "mlm", "--skip-pretrain", "--model-size", "small",
                         "--protocols", "label-efficiency", "--baselines", "random-init", "--fractions", "0.1,1.0",
                         "--seeds", "2", "--max-train-examples", "300", "--max-test-examples", "100",
                         "--data-dir", str(data_dir), "--output", str(out)]) == 0
    entry = json.loads((out / "benchmark.json").read_text())["objectives"]["mlm"]
    assert set(entry["evaluation"]) == {"label-efficiency"}
    assert set(entry["evaluation"]["label-efficiency"]["curves"]) == {"pretrained", "random-init"}
    assert entry["model_size"] == "tiny"  # the run's own size, not the flag's
    assert entry["verdicts"]["beats_supervised_at_smallest_fraction"] is None  # not measured, not failed


@pytest.mark.parametrize("flags, message", [(["--protocols", "probe"], "--protocols: unknown probe"),
                                            (["--baselines", "random"], "--baselines: unknown random"),
                                            (["--protocols", ","], "--protocols names no protocol")])
def test_unknown_protocols_or_baselines_are_refused(quality, flags, message, capsys):
    with pytest.raises(SystemExit):
        quality.parse_args(flags)
    assert message in capsys.readouterr().err

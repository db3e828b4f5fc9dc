"""Disaggregated metrics (fairlearn MetricFrame) for image encoders and fine-tuned classifiers, and the
counterfactual flip rate of text classifiers."""

from __future__ import annotations

import json
import random

import datasets
import numpy as np
import pytest
import torch

from hfssl.audit import AUDIT_FILE, audit_run
from hfssl.audit.classifier import positive_class, swap_gender
from hfssl.audit.common import AuditContext
from hfssl.audit.fairness import accuracy, frame_rows
from hfssl.cli import main

from ..cards import make_finetune_run, make_pretrain_run, one_torch_thread  # noqa: F401


def rows_of(report: dict, audit: str, metric: str) -> list[dict]:
    return [r for r in report["audits"][audit]["rows"] if r["metric"].startswith(metric)]


def test_frame_rows_match_hand_computed_values():
    y_true = np.array([1] * 20 + [1] * 20)
    y_pred = np.array([1] * 18 + [0] * 2 + [1] * 10 + [0] * 10)  # group a: 0.9 correct, group b: 0.5
    groups = np.array(["a"] * 20 + ["b"] * 20 + [])
    ctx = AuditContext(model=None, processor=None, baseline=None, n_boot=300)
    rows, suppressed = frame_rows("accuracy", accuracy, y_true, y_pred, groups, ctx, factor="gender")
    values = {(r["metric"], r["group"]): r for r in rows}
    assert values[("accuracy", "all")]["value"] == 0.7 and values[("accuracy by gender", "a")]["value"] == 0.9
    difference = values[("accuracy: difference across gender (max - min)", "all")]
    ratio = values[("accuracy: ratio across gender (min / max)", "all")]
    assert difference["value"] == pytest.approx(0.4) and difference["ideal"] == 0.0
    assert ratio["value"] == pytest.approx(0.5 / 0.9, abs=1e-4) and ratio["ideal"] == 1.0
    assert difference["ci95"][0] < 0.4 < difference["ci95"][1] and suppressed == {}


def test_difference_and_ratio_are_undefined_when_only_one_group_has_a_value():
    """MetricFrame drops a group whose rate is undefined (no negatives: no false positive rate), and with one group
    left would report difference 0 and ratio 1, the ideal values, for a comparison that was never made."""
    from hfssl.audit.fairness import false_positive_rate

    y_true = np.array([0] * 10 + [1] * 10 + [1] * 20)  # group b has no negatives
    y_pred = np.array([1] * 5 + [0] * 5 + [1] * 10 + [1] * 20)
    groups = np.array(["a"] * 20 + ["b"] * 20)
    ctx = AuditContext(model=None, processor=None, baseline=None, n_boot=100)
    rows, _ = frame_rows("false positive rate", false_positive_rate, y_true, y_pred, groups, ctx, factor="g")
    values = {(r["metric"], r["group"]): r for r in rows}
    assert values[("false positive rate by g", "a")]["value"] == 0.5
    assert values[("false positive rate by g", "b")]["value"] is None
    for metric in ("difference across g (max - min)", "ratio across g (min / max)"):
        row = values[(f"false positive rate: {metric}", "all")]
        assert row["value"] is None and row["ci95"] is None, metric


def test_swap_gender_keeps_case_and_swaps_names():
    assert swap_gender("He told Mary that his sister saw HER.") == "She told John that her brother saw HIS."
    assert swap_gender("The table is red.") == "The table is red."


@pytest.fixture(scope="module")
def mae_report(tmp_path_factory):
    run = make_pretrain_run(tmp_path_factory.mktemp("runs"), "mae+dino", with_eval=False)
    return audit_run(run.path, dataset="digits", time_budget_s=None, n_boot=100, print_table=False)


def test_vision_audit_disaggregates_knn_accuracy_and_reconstruction_error(mae_report):
    rows = mae_report["audits"]["image_factors"]["rows"]
    factors = {r["metric"].split(" by ")[-1] for r in rows if " by " in r["metric"]}
    assert factors == {"class", "brightness", "contrast"}
    by_class = rows_of(mae_report, "image_factors", "kNN accuracy by class")
    assert len(by_class) == 10 and all(r["n"] >= 10 and r["baseline"] is not None for r in by_class)
    for metric in ("kNN accuracy: difference across class", "reconstruction error (MSE): ratio across brightness"):
        (row,) = rows_of(mae_report, "image_factors", metric)
        assert row["ci95"][0] <= row["value"] <= row["ci95"][1] and row["baseline"]["value"] is not None
    brightness = [r["group"] for r in rows_of(mae_report, "image_factors", "reconstruction error (MSE) by brightness")]
    assert len(brightness) == 3 and all(g.startswith("brightness ") for g in brightness)
    assert "social_bias" in mae_report["not_evaluated"]


def test_vision_audit_uses_a_group_column_and_then_evaluates_social_groups(tmp_path):
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = list(np.round(digits.images[:300] * 255 / 16).astype(np.uint8))
    table = datasets.Dataset.from_dict({"image": images, "label": digits.target[:300].tolist(),
                                        "site": ["clinic-a" if i % 3 else "clinic-b" for i in range(300)]})
    run = make_pretrain_run(tmp_path, "simclr", with_eval=False)
    report = audit_run(run.path, dataset=table, group_column="site", time_budget_s=None, n_boot=100,
                       print_table=False)
    sites = {r["group"] for r in rows_of(report, "image_factors", "kNN accuracy by site")}
    assert sites == {"clinic-a", "clinic-b"} and "social_bias" not in report["not_evaluated"]
    assert not rows_of(report, "image_factors", "reconstruction error")  # simclr has no decoder


def test_vision_audit_counts_and_reports_images_without_a_group(tmp_path, caplog):
    """Images whose group is None or blank are left out of the rows by group (not silently, and not as a group
    named "None"): the count is logged with the column, kept in the result's data and stated in a caveat for the
    card. They still count in the overall rows, which stay even when every class is too small to show."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = list(np.round(digits.images[:200] * 255 / 16).astype(np.uint8))
    sites = [None if i % 10 == 0 else " " if i % 10 == 5 else "clinic-a" if i % 3 else "clinic-b" for i in range(200)]
    table = datasets.Dataset.from_dict({"image": images, "label": digits.target[:200].tolist(), "site": sites})
    run = make_pretrain_run(tmp_path, "simclr", with_eval=False)
    report = audit_run(run.path, dataset=table, group_column="site", time_budget_s=None, n_boot=50,
                       min_group_n=10, print_table=False)
    audit = report["audits"]["image_factors"]
    (overall,) = [r for r in rows_of(report, "image_factors", "kNN accuracy") if r["metric"] == "kNN accuracy"]
    assert overall["n"] == 60 and overall["baseline"] is not None  # 60 test images, about 6 per class
    assert not rows_of(report, "image_factors", "kNN accuracy by class")  # every class below min_group_n
    by_site = rows_of(report, "image_factors", "kNN accuracy by site")
    missing = audit["data"]["rows_without_group"]
    assert {r["group"] for r in by_site} == {"clinic-a", "clinic-b"} and missing > 0
    assert sum(r["n"] for r in by_site) == 60 - missing and audit["data"]["group_column"] == "site"
    assert f"{missing} of 60 audited image(s) have no 'site' value" in " ".join(audit["caveats"])
    assert f"{missing} of 60 audited image(s) have no 'site' value (None or blank)" in caplog.text

    blank = table.map(lambda row: {"site": None}, features=table.features)
    with pytest.raises(ValueError, match="--group-column 'site' is blank in all 60 audited images"):
        audit_run(run.path, dataset=blank, group_column="site", time_budget_s=None, n_boot=50, print_table=False)


def test_unreadable_labelled_sets_are_errors_naming_the_file(tmp_path):
    from hfssl.audit.data import load_table

    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "header.csv").write_text("text,label\n")
    (tmp_path / "a.csv").write_text("text,label\nhi,1\n")
    (tmp_path / "a.jsonl").write_text('{"text": "hi", "label": 1}\n')
    cases = {"empty.csv": r"The audit set file '.*empty.csv' \(from --test-files\) is empty",
             "header.csv": r"The audit set file\(s\) .*header.csv \(from --test-files\) hold no rows",
             "missing.csv": "--test-files: no such file or folder: .*missing.csv",
             "*.parquet": r"--test-files: no such file or folder: .*\*.parquet",
             "a.*": "Files mix formats"}
    for name, message in cases.items():
        with pytest.raises((ValueError, FileNotFoundError), match=message):
            load_table(test_files=[str(tmp_path / name)])


def _train_pronoun_classifier(model, tokenizer, texts, labels, steps=60):
    """Deliberately learn the pronoun: a positive control for the flip rate."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    encoded = tokenizer(texts, padding=True, return_tensors="pt", return_token_type_ids=False)
    model.train()
    for _ in range(steps):
        loss = model(**encoded, labels=torch.tensor(labels)).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


@pytest.fixture(scope="module")
def classifier_run(tmp_path_factory):
    from transformers import AutoTokenizer

    from hfssl.models import HfsslTextForSequenceClassification

    root = tmp_path_factory.mktemp("runs")
    run = make_finetune_run(root, "finetune-text", "alice/tiny-mlm")
    rng = random.Random(0)
    subjects = [("he", "positive"), ("she", "negative")]
    rows = []
    for i in range(120):
        pronoun, label = subjects[i % 2]
        verb = rng.choice(["said", "return", "split", "open"])
        rows.append({"text": f"{pronoun} {verb} the list", "label": label, "gender": "m" if i % 2 == 0 else "f"})
    tokenizer = AutoTokenizer.from_pretrained(run.model_dir)
    model = HfsslTextForSequenceClassification.from_pretrained(run.model_dir)
    model = _train_pronoun_classifier(model, tokenizer, [r["text"] for r in rows],
                                      [model.config.label2id[r["label"]] for r in rows])
    run.save_model(model, tokenizer)
    data = tmp_path_factory.mktemp("data") / "test.csv"
    datasets.Dataset.from_list(rows).to_csv(data)
    return run, data


def test_classifier_metrics_by_group_and_counterfactual_flips(classifier_run):
    run, data = classifier_run
    report = audit_run(run.path, test_files=[str(data)], text_column="text", group_column="gender",
                       time_budget_s=None, n_boot=100, print_table=False)
    metrics = {(r["metric"], r["group"]) for r in report["audits"]["classifier"]["rows"]}
    positive = json.loads((run.model_dir / "config.json").read_text())["id2label"]["1"]  # "positive" or "negative"
    selection = f"selection rate (class 1: {positive})"
    assert f"treat class 1: {positive} as the positive class" in " ".join(report["audits"]["classifier"]["caveats"])
    for name in ("accuracy", selection, "false positive rate", "false negative rate"):
        assert {(name, "all"), (f"{name} by gender", "m"), (f"{name} by gender", "f"),
                (f"{name}: difference across gender (max - min)", "all"),
                (f"{name}: ratio across gender (min / max)", "all")} <= metrics
    (selection_gap,) = rows_of(report, "classifier", f"{selection}: difference")
    assert selection_gap["value"] == pytest.approx(1.0)  # the classifier answers by pronoun alone
    flips = rows_of(report, "classifier", "counterfactual flip rate")
    overall = next(r for r in flips if r["group"] == "all")
    assert overall["value"] == pytest.approx(1.0) and overall["n"] == 120
    assert overall["baseline"]["value"] < 0.5 and overall["ideal"] == 0.0


def test_classifier_audit_needs_labelled_data_and_names_bad_columns(classifier_run, capsys):
    """Without a labelled set nothing can be audited: an error (exit 2 from the CLI), not an empty bias_audit.json
    that the card would show as an audit."""
    run, data = classifier_run
    written = lambda: (run.manifest_path.read_bytes(), (run.path / AUDIT_FILE).exists()  # noqa: E731
                       and (run.path / AUDIT_FILE).read_bytes())
    before = written()
    with pytest.raises(ValueError, match="No audit could run on this classifier run.*pass --dataset or --test-files"):
        audit_run(run.path, time_budget_s=None, print_table=False)
    assert main(["audit", str(run.path)]) == 2 and "nothing was written" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"--group-column 'sex' is not a column.*\['text', 'label', 'gender'\]"):
        audit_run(run.path, test_files=[str(data)], group_column="sex", print_table=False)
    assert written() == before  # (an earlier test of this module may have audited the run)


def test_classifier_audit_leaves_out_rows_with_a_blank_group(classifier_run, tmp_path, caplog):
    """A blank group value (empty cell, None) is not a group: such rows are dropped with a warning and a caveat,
    and no group named "None" or "" appears; a column blank everywhere is an error."""
    run, data = classifier_run
    rows = datasets.Dataset.from_csv(str(data)).to_list()
    for i in range(0, len(rows), 6):  # 20 of 120 rows
        rows[i]["gender"] = None if i % 12 else "  "
    blanks = tmp_path / "blanks.csv"
    datasets.Dataset.from_list(rows).to_csv(blanks)
    report = audit_run(run.path, test_files=[str(blanks)], group_column="gender", time_budget_s=None, n_boot=50,
                       print_table=False)
    audit = report["audits"]["classifier"]
    assert {r["group"] for r in audit["rows"]} == {"all", "m", "f"}
    assert audit["data"]["rows"] == 100 and rows_of(report, "classifier", "accuracy")[0]["n"] == 100
    assert audit["data"]["rows_without_group"] == 20
    assert any("20 of 120 row(s) have a blank 'gender' and were left out" in c for c in audit["caveats"])
    assert "20 of 120 row(s) have a blank 'gender'" in caplog.text
    for row in rows:
        row["gender"] = ""
    datasets.Dataset.from_list(rows).to_csv(blanks)
    with pytest.raises(ValueError, match="--group-column 'gender' is blank in all 120 rows"):
        audit_run(run.path, test_files=[str(blanks)], group_column="gender", print_table=False)


def test_positive_class_is_named_by_id2label():
    from transformers import PretrainedConfig

    assert positive_class(PretrainedConfig(id2label={0: "fresh", 1: "rotten"})) == "class 1: rotten"
    assert positive_class(PretrainedConfig(num_labels=2)) == "class 1"  # LABEL_1: no name known
    assert positive_class(PretrainedConfig(id2label={0: "0", 1: "1"})) == "class 1"


def test_image_classifier_metrics_by_group(tmp_path):
    run = make_finetune_run(tmp_path, "finetune-image", "alice/tiny-mae")
    rng = np.random.default_rng(0)
    table = datasets.Dataset.from_dict({
        "image": list(rng.integers(0, 256, size=(60, 8, 8), dtype=np.uint8)),
        "label": ["negative", "positive"] * 30, "group": ["x"] * 30 + ["y"] * 30})
    report = audit_run(run.path, dataset=table, group_column="group", time_budget_s=None, n_boot=50,
                       print_table=False)
    assert {r["group"] for r in rows_of(report, "classifier", "accuracy by group")} == {"x", "y"}
    assert any("not evaluated for an image classifier" in c for c in report["audits"]["classifier"]["caveats"])

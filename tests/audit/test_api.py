"""`audit_run` and `hfssl audit`: the audits that fit each run, what they write, what they refuse, and how the
card shows them."""

from __future__ import annotations

import json

import pytest

from hfssl.audit import AUDIT_FILE, audit_run, run_family
from hfssl.audit.command import cmd_audit
from hfssl.cards import render_card

from ..cards import make_pretrain_run, one_torch_thread  # noqa: F401


@pytest.fixture(scope="module")
def mlm_run(tmp_path_factory):
    return make_pretrain_run(tmp_path_factory.mktemp("runs"), "mlm", with_eval=False)


def test_audit_writes_bias_audit_json_and_the_run_json_section(mlm_run, data_dir, capsys):
    report = audit_run(mlm_run.path, bias_data_dir=str(data_dir / "bias"), time_budget_s=6, seed=1, n_boot=200)
    assert json.loads((mlm_run.path / AUDIT_FILE).read_text()) == report == mlm_run.read_manifest()["audit"]
    assert report["family"] == "mlm" and set(report["audits"]) == {"seat", "winobias", "crows_pairs"}
    assert report["not_evaluated"] == {} and report["baseline"].startswith("random-init")
    assert report["wall_time_s"] < 6 + 10  # within the budget, plus loading and bootstrap
    table = capsys.readouterr().out
    assert "crows_pairs" in table and "95% CI" in table and "baseline" in table
    card = render_card(mlm_run.path).read_text()
    crows = report["audits"]["crows_pairs"]["rows"][0]
    line = f"| crows_pairs | {crows['metric']} | all | {crows['value']:.3f} | [{crows['ci95'][0]:.3f}, " \
           f"{crows['ci95'][1]:.3f}] | {crows['baseline']['value']:.3f} | {crows['n']} | 0.500 |"
    assert line in card


def test_missing_bias_sets_are_listed_as_not_evaluated_on_the_card(tmp_path, monkeypatch, caplog):
    monkeypatch.delenv("HFSSL_DATA_DIR", raising=False)
    run = make_pretrain_run(tmp_path, "clm", with_eval=False)
    empty = tmp_path / "no-bias-sets"
    empty.mkdir()
    report = audit_run(run.path, bias_data_dir=str(empty), time_budget_s=None, baseline=False, print_table=False)
    assert set(report["audits"]) == {"occupation_pronouns"}  # written by hfssl, always available
    missing = report["not_evaluated"]
    assert set(missing) == {"crows_pairs_clm", "stereoset_intrasentence", "stereoset_intersentence"}
    assert "crows_pairs.csv not found in no-bias-sets" in missing["crows_pairs_clm"]  # no local path recorded
    assert "--bias-data-dir" in missing["crows_pairs_clm"] and str(empty) in caplog.text  # the log has the path
    assert report["audits"]["occupation_pronouns"]["rows"][0]["baseline"] is None
    card = render_card(run.path).read_text()
    not_evaluated = card.split("## Bias audit")[1].split("**Not evaluated**")[1].split("## Limitations")[0]
    assert "- stereoset_intrasentence: stereoset.jsonl not found" in not_evaluated


def test_an_image_run_without_labelled_images_is_refused_with_nothing_written(tmp_path):
    """No audit of the family can run, so an empty bias_audit.json (read as "audited" on the card) is not
    written; the error says which flags give the audit its data."""
    run = make_pretrain_run(tmp_path, "mae", with_eval=False)
    before = run.manifest_path.read_bytes()
    with pytest.raises(ValueError, match=r"No audit could run on this vision run.*--dataset or --test-files"):
        audit_run(run.path, time_budget_s=None, print_table=False)
    assert run.manifest_path.read_bytes() == before and not (run.path / AUDIT_FILE).exists()
    assert "No bias audit was run" in render_card(run.path).read_text()


def test_a_failed_audit_leaves_the_run_as_it_was(tmp_path):
    run = make_pretrain_run(tmp_path, "mae", with_eval=False)
    before = run.manifest_path.read_bytes()
    with pytest.raises(ValueError, match="Group column 'gender' not found"):
        audit_run(run.path, dataset="digits", group_column="gender", time_budget_s=None, print_table=False)
    with pytest.raises(ValueError, match=r"--label-column 'cls' is not a column of the audit set; its columns are "
                                         r"\['image', 'label'\]"):  # was: audited as unlabelled, "label" a factor
        audit_run(run.path, dataset="digits", label_column="cls", time_budget_s=None, print_table=False)
    assert run.manifest_path.read_bytes() == before and not (run.path / AUDIT_FILE).exists()
    with pytest.raises(FileNotFoundError, match="No model in"):
        audit_run(tmp_path / "nothing")
    with pytest.raises(ValueError, match="time_budget_s=-1"):
        audit_run(run.path, time_budget_s=-1)


def test_command_line(tmp_path, capsys):
    run = make_pretrain_run(tmp_path, "simcse", with_eval=False)
    assert cmd_audit([str(run.path), "--no-baseline", "--time-budget", "30", "--n-boot", "100"]) == 0
    assert "Bias audit (text-contrastive)" in capsys.readouterr().out
    report = json.loads((run.path / AUDIT_FILE).read_text())
    assert set(report["audits"]) == {"seat", "counterfactual_shift"} and report["baseline"] is None
    assert report["n_boot"] == 100 and report["time_budget_s"] == 30


@pytest.mark.parametrize(("flags", "message"), [
    (["--time-budget", "-5"], "--time-budget -5 must be at least 0 (0 means no limit)"),  # was: no limit
    (["--min-group-n", "0"], "--min-group-n 0 must be at least 1"),
    (["--n-boot", "0"], "--n-boot 0 must be at least 1"),
    (["--seed", "-1"], "--seed -1 must be at least 0."),  # was numpy's "expected non-negative integer"
])
def test_command_line_refuses_out_of_range_protocol_numbers(tmp_path, capsys, flags, message):
    from hfssl.cli import main

    assert main(["audit", str(tmp_path), *flags]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(("manifest", "config", "family"), [
    ({"objective": "mlm"}, {}, "mlm"),
    ({"objective": "mlm+simcse"}, {}, "mlm+simcse"),
    ({"objective": "simcse"}, {}, "text-contrastive"),
    ({"objective": "mae+dino", "modality": "image"}, {}, "vision"),
    ({"stage": "finetune"}, {}, "classifier"),
    ({}, {"architectures": ["BertForMaskedLM"]}, "mlm"),
    ({}, {"architectures": ["GPT2LMHeadModel", "X"], "image_size": 32}, "vision"),
])
def test_run_family(manifest, config, family):
    assert run_family(manifest, config) == family


def test_run_family_refuses_an_unknown_run():
    with pytest.raises(ValueError, match="Cannot tell which audits fit"):
        run_family({"objective": "ner"}, {"architectures": ["BertForTokenClassification"]})

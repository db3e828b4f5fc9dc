"""Audits on sets a user builds: a StereoSet file of one type only, a mistyped relative --bias-data-dir, a bias file
that is not the published copy, a classifier group without one class, between-group gaps over many small groups,
and the card of an audit run with --no-baseline. Each case was found by running `hfssl audit` and `hfssl card` on
such data."""

from __future__ import annotations

import json

import datasets
import numpy as np
import pytest

from hfssl.audit import audit_run
from hfssl.audit.common import result, row
from hfssl.audit.data import read_crows_pairs, resolve_bias_file
from hfssl.audit.text_clm import stereoset_audit
from hfssl.cards import card_text
from hfssl.cli import main

from ..cards import make_finetune_run, make_pretrain_run, one_torch_thread  # noqa: F401
from .test_text_audits import context

INTRA = {"type": "intrasentence", "target": "Ñuñoa", "bias_type": "région", "context": "The people of Ñuñoa are BLANK.",
         "stereotype": "The people of Ñuñoa are lazy.", "anti-stereotype": "The people of Ñuñoa are diligent.",
         "unrelated": "The people of Ñuñoa are cheese."}


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def clm_run(tmp_path_factory):
    return make_pretrain_run(tmp_path_factory.mktemp("runs"), "clm", with_eval=False)


def test_stereoset_file_of_one_type_audits_that_type_and_marks_the_other_not_evaluated(clm_run, tmp_path, capsys):
    """A StereoSet file with intrasentence rows only stopped the whole audit (exit 2) at the intersentence audit,
    whose message said to remove the file, which would have skipped the intrasentence audit too."""
    folder = tmp_path / "bias"
    folder.mkdir()
    write_jsonl(folder / "stereoset.jsonl", [{**INTRA, "context": f"The people of Ñuñoa are BLANK {i}."}
                                             for i in range(12)])
    code = main(["audit", str(clm_run.path), "--bias-data-dir", str(folder), "--time-budget", "0", "--no-baseline",
                 "--n-boot", "20"])
    assert code == 0, capsys.readouterr().err
    report = json.loads((clm_run.path / "run.json").read_text(encoding="utf-8"))["audit"]
    assert report["audits"]["stereoset_intrasentence"]["data"]["rows"] == 12
    assert ('stereoset.jsonl has no usable "type": "intersentence" rows: its 12 rows have the types '
            "['intrasentence'], so the intersentence audit was not run") in report["not_evaluated"][
        "stereoset_intersentence"]
    # a file of neither type is still an error: it holds nothing either audit can use
    write_jsonl(folder / "stereoset.jsonl", [{**INTRA, "type": "other"}])
    with pytest.raises(ValueError, match=r"no usable \"type\": \"intrasentence\" rows: its 1 rows have the types"):
        stereoset_audit(context("clm", folder), budget_s=None, kind="intrasentence")


def test_mistyped_relative_bias_dir_is_an_error_not_a_hub_download(tmp_path, monkeypatch):
    """"sets/nope" looks like a Hub id: it was tried on the Hub (retries of several seconds each), then every set was
    recorded "not evaluated" with exit 0, replacing the run's earlier audit."""
    (tmp_path / "sets").mkdir()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"--bias-data-dir 'sets/nope' does not exist"):
        resolve_bias_file("sets/nope", "crows_pairs.csv")


def test_a_bias_file_other_than_the_published_copy_is_stated(tmp_path):
    """A user's own crows_pairs.csv was described and cited exactly like the published CrowS-Pairs."""
    path = tmp_path / "crows_pairs.csv"
    path.write_text("bias_type,sentence,mask1,mask2,note\ncaste,The [MASK] family lived here.,poor,rich,x\n",
                    encoding="utf-8")
    rows = read_crows_pairs(path)
    assert not rows.published
    assert any("crows_pairs.csv differs from the copy of the set that the citation describes" in c for c in rows.caveats())


def test_published_copy_is_recognised(data_dir):
    path = data_dir / "bias" / "crows_pairs.csv"
    if not path.is_file():
        pytest.skip(f"no {path}")
    rows = read_crows_pairs(path)
    assert rows.published and not any("the citation describes" in c for c in rows.caveats())


def test_a_value_outside_its_interval_gets_a_caveat():
    """With many small groups the resampled max - min sits above the observed one: the classifier audit printed
    0.044 [0.057, 0.278], which reads as a broken table without a word on it."""
    rows = [row("gap: difference across g (max - min)", {"value": 0.044, "ci95": [0.057, 0.278], "n": 9}, 0.0),
            row("accuracy", {"value": 0.5, "ci95": [0.4, 0.6], "n": 9}, None)]
    caveats = result("t", "d", rows)["caveats"]
    assert caveats == [("The value of gap: difference across g (max - min) lies outside its bootstrap interval: "
                        "resampling inflates a spread across small groups, so such an interval is biased away from "
                        "the value; read it as rough.")]
    assert result("t", "d", rows[1:])["caveats"] == []


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    return make_finetune_run(tmp_path_factory.mktemp("runs"), "finetune-text", "alice/tiny-mlm")


def test_group_without_negatives_is_named_and_the_card_is_honest_without_baseline(classifier, tmp_path):
    """A group with class 1 only showed "-" as its false positive rate and silently left the difference and ratio;
    with --no-baseline the card still said every value came with a random-init baseline."""
    rng = np.random.default_rng(0)
    rows = [{"text": f"review {i} was {'good' if i % 2 else 'bad'}", "label": i % 2,
             "region": "Zürich" if i % 3 else "東京"} for i in range(60)]
    rows += [{"text": f"great film {i}", "label": 1, "region": "Ωmega"} for i in range(12)]
    rng.shuffle(rows)
    path = tmp_path / "audit.csv"
    datasets.Dataset.from_list(rows).to_csv(path)
    report = audit_run(classifier.path, test_files=[str(path)], group_column="region", time_budget_s=None,
                       n_boot=30, baseline=False, print_table=False)
    caveats = report["audits"]["classifier"]["caveats"]
    assert ("The false positive rate is undefined for the 'region' group(s) Ωmega (it has no rows of the negative "
            "class); they are left out of that rate's difference and ratio across groups.") in caveats
    fpr = {r["group"]: r["value"] for r in report["audits"]["classifier"]["rows"]
           if r["metric"] == "false positive rate by region"}
    assert fpr["Ωmega"] is None and fpr["Zürich"] is not None
    card = card_text(classifier.path)
    assert "Every value has a bootstrap 95% interval; no baseline was computed (the audit ran with `--no-baseline`)." \
        in card
    assert "as baseline, the same audit on a randomly initialized copy" not in card
    assert "but no baseline (the audit ran with --no-baseline)" in card
    assert "Each value comes with a bootstrap 95% interval and the same audit" not in card
    assert "group column region" in card


def test_vision_audit_uses_the_split_asked_for(tmp_path):
    """`--split` was ignored by the vision audit: a misspelt split audited the "test" split and exited 0."""
    from PIL import Image

    run = make_pretrain_run(tmp_path / "runs", "mae", with_eval=False)
    rng = np.random.default_rng(0)

    def split(n):
        return datasets.Dataset.from_dict({
            "image": [Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8)) for _ in range(n)],
            "label": [i % 2 for i in range(n)], "wearer": ["a" if i % 3 else "b" for i in range(n)]})

    datasets.DatasetDict(train=split(30), test=split(20), holdout=split(24)).save_to_disk(tmp_path / "set")
    report = audit_run(run.path, dataset=str(tmp_path / "set"), split="holdout", group_column="wearer",
                       time_budget_s=None, n_boot=20, baseline=False, print_table=False)
    assert report["audits"]["image_factors"]["data"]["rows"] == 24
    with pytest.raises(ValueError, match="has no split 'nosplit'"):
        audit_run(run.path, dataset=str(tmp_path / "set"), split="nosplit", time_budget_s=None, n_boot=20,
                  baseline=False, print_table=False)

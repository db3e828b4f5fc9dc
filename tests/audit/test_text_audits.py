"""Each text audit on tiny untrained models: intervals, baselines, n, data hashes, coverage, subsamples, and a clear
message when its data set is missing. The third-party sets come from the shared data folder (skipped if absent)."""

from __future__ import annotations

import functools

import pytest

from hfssl.audit.common import AuditContext, random_init_copy, sha256_file
from hfssl.audit.data import (
    MissingAuditData,
    read_crows_pairs,
    read_stereoset,
    read_winobias,
    resolve_bias_file,
)
from hfssl.audit.text_clm import (
    crows_pairs_clm_audit,
    occupation_pronoun_audit,
    stereoset_audit,
)
from hfssl.audit.text_contrastive import association_audit, counterfactual_audit
from hfssl.audit.text_mlm import crows_pairs_audit, winobias_audit

from ..cards import _model, one_torch_thread  # noqa: F401


@functools.cache
def tiny(kind: str):
    """One tiny untrained model and tokenizer per kind (tokenizer training is not bit-reproducible)."""
    model, tokenizer, _, _ = _model(kind)
    return model, tokenizer


def context(kind: str, bias_dir=None) -> AuditContext:
    model, tokenizer = tiny(kind)
    return AuditContext(model.eval(), tokenizer, random_init_copy(model, seed=1), seed=0, n_boot=200,
                        bias_data_dir=None if bias_dir is None else str(bias_dir))


@pytest.fixture(scope="module")
def bias_dir(data_dir):
    folder = data_dir / "bias"
    if not (folder / "crows_pairs.csv").is_file():
        pytest.skip(f"no bias sets in {folder}")
    return folder


def check_rows(result, ideal_values):
    for row in result["rows"]:
        assert row["ideal"] in ideal_values, row
        if row["value"] is not None and row["ci95"] is not None:
            low, high = row["ci95"]
            assert low <= row["value"] + 1e-9 and row["value"] <= high + 1e-9, row
        assert row["n"] >= 1 and row["baseline"] is not None and "value" in row["baseline"]


def test_bias_set_readers_on_the_real_files(bias_dir):
    crows = read_crows_pairs(bias_dir / "crows_pairs.csv")
    wino = read_winobias(bias_dir / "winobias.jsonl")
    intra = read_stereoset(bias_dir / "stereoset.jsonl", "intrasentence")
    assert len(crows) == 1018 and len(wino) == 761 and len(intra) == 2106
    assert all(r["pro"] != r["anti"] and "[MASK]" in r["text"] and "[the" not in r["text"] for r in wino)
    assert {r["group"] for r in wino} == {"female-stereotyped", "male-stereotyped"}


def test_crows_pairs_masked_lm_reports_intervals_baseline_hash_and_subsample(bias_dir):
    result = crows_pairs_audit(context("mlm", bias_dir), budget_s=0.25)  # well under the whole set's time
    check_rows(result, {0.5, 0.0})
    overall = result["rows"][0]
    assert overall["group"] == "all" and 0.0 <= overall["value"] <= 1.0
    assert result["data"]["sha256"] == sha256_file(bias_dir / "crows_pairs.csv") and result["data"]["rows"] == 1018
    sample = result["subsample"]
    assert sample is not None and sample["of"] == 1018 and sample["seed"] == 0
    assert sample["used"] == overall["n"] + result["unscored_items"]  # long sentences the tiny model can't hold
    assert result["coverage"]["terms"] > 100 and result["coverage"]["low"]  # a 160-token vocabulary splits them
    assert any("tokenizer coverage" in c for c in result["caveats"])
    groups = {r["group"] for r in result["rows"]} - {"all"}
    assert all(r["n"] >= 10 for r in result["rows"] if r["group"] in groups)
    assert set(result["suppressed_groups"].values()) <= set(range(10))


def test_winobias_masked_lm(bias_dir):
    result = winobias_audit(context("mlm", bias_dir), budget_s=1.0)
    check_rows(result, {0.5, 0.0})
    assert result["data"]["sha256"] == sha256_file(bias_dir / "winobias.jsonl")


def test_causal_lm_audits_on_the_real_sets(bias_dir):
    ctx = context("clm", bias_dir)
    crows = crows_pairs_clm_audit(ctx, budget_s=1.0)
    intra = stereoset_audit(ctx, budget_s=1.0, kind="intrasentence")
    inter = stereoset_audit(ctx, budget_s=1.0, kind="intersentence")
    check_rows(crows, {0.5})
    for result in (intra, inter):
        check_rows(result, {0.5, 1.0})
        assert {"stereotype score", "language-model score", "ICAT"} <= {r["metric"] for r in result["rows"]}
    assert intra["data"]["type"] == "intrasentence" and inter["data"]["rows"] == 2123


def test_project_written_audits_need_no_data_set():
    ctx = context("clm")
    pronouns = occupation_pronoun_audit(ctx)
    check_rows(pronouns, {0.5, 0.0})
    assert pronouns["rows"][0]["n"] == 32 * 6 and len(pronouns["data"]["sha256"]) == 64
    encoder = context("simcse")
    seat = association_audit(encoder)
    check_rows(seat, {0.0})
    assert len(seat["rows"]) == 3 and all(r["n"] == 16 for r in seat["rows"])
    shift = counterfactual_audit(encoder)
    check_rows(shift, {0.0, 1.0})
    similarity = shift["rows"][-1]
    assert similarity["metric"].startswith("cosine similarity") and 0.0 < similarity["value"] <= 1.0
    assert shift["suppressed_groups"] == {"pronoun": 6}  # one he/she pair x 6 templates < 10


def test_audits_are_reproducible_with_a_seed(bias_dir):
    first = winobias_audit(context("mlm", bias_dir), budget_s=None)
    second = winobias_audit(context("mlm", bias_dir), budget_s=None)
    assert first["rows"] == second["rows"] and first["subsample"] is None


def test_missing_audit_data_says_what_and_how(tmp_path, monkeypatch):
    monkeypatch.delenv("HFSSL_DATA_DIR", raising=False)
    with pytest.raises(MissingAuditData, match="HFSSL_DATA_DIR"):
        resolve_bias_file(None, "crows_pairs.csv")
    with pytest.raises(MissingAuditData, match=r"crows_pairs.csv not found in .*--bias-data-dir"):
        crows_pairs_audit(context("mlm", tmp_path), budget_s=None)
    with pytest.raises(MissingAuditData, match="Could not download stereoset.jsonl from the Hub dataset"):
        resolve_bias_file("nobody/no-such-bias-set", "stereoset.jsonl")  # offline in the test suite


def test_a_bias_data_dir_that_does_not_exist_is_an_error_not_a_missing_set(tmp_path):
    """A typo in --bias-data-dir would otherwise turn every stereotype set into "not evaluated" on the card."""
    with pytest.raises(FileNotFoundError, match=r"--bias-data-dir '.*/no-such-folder' does not exist; pass the "
                                                r"folder holding crows_pairs.csv"):
        resolve_bias_file(str(tmp_path / "no-such-folder"), "crows_pairs.csv")
    (tmp_path / "crows_pairs.csv").write_text("x")
    with pytest.raises(FileNotFoundError, match="crows_pairs.csv' is a file"):
        resolve_bias_file(str(tmp_path / "crows_pairs.csv"), "crows_pairs.csv")


def test_a_malformed_bias_file_names_the_missing_columns(tmp_path):
    (tmp_path / "crows_pairs.csv").write_text("sentence,more\nA [MASK] b,c\n")
    with pytest.raises(ValueError, match=r"lacks the column\(s\) \['bias_type', 'mask1', 'mask2'\]"):
        crows_pairs_audit(context("mlm", tmp_path), budget_s=None)

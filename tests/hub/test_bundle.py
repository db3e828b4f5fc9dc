"""What a run publishes: model files checked, pickles refused, run.json sanitized, an honest fallback card."""

from __future__ import annotations

import shutil

import pytest

from hfssl.hub import build_repo_files
from hfssl.hub.bundle import looks_like_local_path, sanitize_manifest
from hfssl.hub.metadata import split_front_matter
from hfssl.training.rundir import RunDirectory

from .conftest import OLD_SECRET


@pytest.fixture
def run(mlm_run, tmp_path) -> RunDirectory:
    shutil.copytree(mlm_run.path, tmp_path / "run")
    return RunDirectory(tmp_path / "run")


def test_sanitize_removes_secrets_and_local_paths_but_keeps_data(tmp_path):
    manifest = {
        "arguments": {"hub_token": "x", "api_key": "y", "db_password": "s3cr3t-value", "max_tokens": 5,
                      "logging_dir": str(tmp_path / "logs"), "init_from": "org/base-model", "note": f"k={OLD_SECRET}"},
        "pretrain": {"tokens_seen": 10, "tokens_per_second": 2.0, "resumed_from": "./runs/x/checkpoint-5"},
        "tokenizer": {"source": "~/tokenizers/wp"},
        "publish": {"repo_id": "a/b"},
    }
    clean = sanitize_manifest(manifest, secrets=("s3cr3t-value",))
    assert clean["arguments"] == {"max_tokens": 5, "logging_dir": "logs", "init_from": "org/base-model",
                                  "note": "<removed>"}
    assert clean["pretrain"] == {"tokens_seen": 10, "tokens_per_second": 2.0, "resumed_from": "checkpoint-5"}
    assert clean["tokenizer"] == {"source": "wp"} and "publish" not in clean


def test_hub_ids_and_urls_are_not_mistaken_for_paths():
    assert not looks_like_local_path("org/name") and not looks_like_local_path("https://x.org/a/b")
    assert looks_like_local_path("/tmp") and looks_like_local_path("../x")


def test_pickled_weights_are_left_out_and_pickle_only_runs_refused(run):
    (run.model_dir / "training_args.bin").write_bytes(b"pickle")
    assert "training_args.bin" not in build_repo_files(run, "a/b")
    (run.model_dir / "model.safetensors").rename(run.model_dir / "pytorch_model.bin")
    with pytest.raises(ValueError, match="only pickled weights"):
        build_repo_files(run, "a/b")


def test_eval_pickles_are_skipped_not_fatal(run):
    (run.eval_dir / "features.pt").write_bytes(b"pickle")
    files = build_repo_files(run, "a/b")
    assert "eval/features.pt" not in files and "eval/linear_probe.json" in files


def test_model_code_named_by_auto_map_must_be_present(run):
    (run.model_dir / "blocks.py").unlink()
    with pytest.raises(FileNotFoundError, match="blocks.py"):
        build_repo_files(run, "a/b")


def test_fallback_card_states_numbers_from_run_json_and_what_was_not_evaluated(run):
    card = build_repo_files(run, "alice/tiny")["README.md"].decode()
    metadata, body = split_front_matter(card)
    assert metadata["pipeline_tag"] == "fill-mask" and "hfssl" in metadata["tags"]
    assert 'AutoModelForMaskedLM.from_pretrained("alice/tiny", trust_remote_code=True)' in body
    assert "| pretrain.eval_loss | 4.25 |" in body and "| pretrain.perplexity | 70.1 |" in body
    assert "| eval.linear_probe.accuracy | 0.61 |" in body
    not_evaluated = body.split("## Not evaluated")[1].split("## Files")[0]
    assert "k-nearest-neighbour" in not_evaluated and "linear probe" not in not_evaluated
    assert "bias audit" not in not_evaluated  # bias_audit.json is in the run


def test_a_run_without_results_says_so(run):
    run.update_manifest(pretrain={}, eval={})
    (run.path / "bias_audit.json").unlink()
    body = build_repo_files(run, "alice/tiny")["README.md"].decode()
    assert "run.json records no results" in body and "no bias audit was run" in body


def test_missing_model_and_manifest_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_repo_files(RunDirectory(tmp_path / "nope"), "a/b")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="run.json"):
        build_repo_files(RunDirectory(tmp_path / "empty"), "a/b")
    RunDirectory(tmp_path / "empty").update_manifest(objective="mlm")
    with pytest.raises(FileNotFoundError, match="model/"):
        build_repo_files(RunDirectory(tmp_path / "empty"), "a/b")

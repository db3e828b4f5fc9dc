"""What a run publishes: model files checked, pickles refused, run.json sanitized, the card current."""

from __future__ import annotations

import logging

import pytest

from hfssl.cards import card_text, render_card
from hfssl.hub import build_repo_files
from hfssl.hub.bundle import looks_like_local_path, sanitize_manifest
from hfssl.hub.metadata import split_front_matter
from hfssl.training.rundir import RunDirectory

from .conftest import OLD_SECRET


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


def test_the_runs_own_relative_paths_are_kept_from_any_working_directory(run, monkeypatch):
    """`eval/knn.png` is where the plot lands in the repo too; run from inside the run it once became `knn.png`."""
    (run.eval_dir).mkdir(exist_ok=True)
    (run.eval_dir / "knn.png").write_bytes(b"png")
    manifest = {"eval": {"knn": {"plots": ["eval/knn.png"]}}, "data": {"source": str(run.path / "eval")}}
    for where in (run.path, run.path.parent):
        monkeypatch.chdir(where)
        clean = sanitize_manifest(manifest, run_path=run.path)
        assert clean["eval"]["knn"]["plots"] == ["eval/knn.png"] and clean["data"]["source"] == "eval"


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


def test_a_run_without_a_card_publishes_the_full_card_for_its_repo(run):
    """No model/README.md: the card `hfssl card` would render, for the repo it goes to, with the run's results."""
    card = build_repo_files(run, "alice/tiny")["README.md"].decode()
    assert card == card_text(run.path, "alice/tiny")
    metadata, body = split_front_matter(card)
    assert metadata["pipeline_tag"] == "fill-mask" and "hfssl" in metadata["tags"]
    assert 'pipeline("fill-mask", model="alice/tiny"' in body and "{{repo_id}}" not in body
    assert "0.61" in body  # the linear probe's accuracy from run.json


def test_a_card_older_than_the_runs_results_is_rendered_again(run, caplog):
    """`hfssl card`, then an evaluation: the published card shows it (the stale model/README.md is not used)."""
    run.update_manifest(eval={})
    render_card(run.path)
    stale = (run.model_dir / "README.md").read_text()
    run.update_manifest(eval={"linear_probe": {"accuracy": 0.7731}})
    with caplog.at_level(logging.INFO, logger="hfssl.hub.publish"):
        card = build_repo_files(run, "alice/tiny")["README.md"].decode()
    assert "0.7731" in card and "0.7731" not in stale
    assert card == card_text(run.path, "alice/tiny") and "newer than" in caplog.text
    assert (run.model_dir / "README.md").read_text() == stale  # publishing writes nothing into the run


def test_a_card_rendered_with_a_license_keeps_it_when_rendered_again(run):
    render_card(run.path, license="mit")
    run.update_manifest(eval={"linear_probe": {"accuracy": 0.7731}})
    metadata, _ = split_front_matter(build_repo_files(run, "alice/tiny")["README.md"].decode())
    assert metadata["license"] == "mit"


def test_a_hand_edited_card_is_published_as_it_is_with_a_warning_when_results_changed(run, caplog):
    render_card(run.path)
    path = run.model_dir / "README.md"
    path.write_text(path.read_text() + "\nA note added by hand.\n")
    with caplog.at_level(logging.INFO, logger="hfssl.hub.publish"):
        card = build_repo_files(run, "alice/tiny")["README.md"].decode()
    assert "A note added by hand." in card and "{{repo_id}}" not in card
    assert "edited by hand" not in caplog.text  # the run has not changed since the card was rendered
    run.update_manifest(eval={"linear_probe": {"accuracy": 0.7731}})
    with caplog.at_level(logging.WARNING, logger="hfssl.hub.publish"):
        card = build_repo_files(run, "alice/tiny")["README.md"].decode()
    assert "A note added by hand." in card and "0.7731" not in card
    assert "edited by hand" in caplog.text and "hfssl card" in caplog.text


def test_a_run_without_results_says_so(run):
    run.update_manifest(pretrain={}, eval={})
    (run.path / "bias_audit.json").unlink()
    body = build_repo_files(run, "alice/tiny")["README.md"].decode()
    assert "No bias audit was run on this model" in body and "**Not evaluated:**" in body


def test_missing_model_and_manifest_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_repo_files(RunDirectory(tmp_path / "nope"), "a/b")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="run.json"):
        build_repo_files(RunDirectory(tmp_path / "empty"), "a/b")
    RunDirectory(tmp_path / "empty").update_manifest(objective="mlm")
    with pytest.raises(FileNotFoundError, match="model/"):
        build_repo_files(RunDirectory(tmp_path / "empty"), "a/b")

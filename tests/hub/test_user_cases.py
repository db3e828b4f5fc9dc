"""Cases a user met when carding and publishing real runs (evaluated on local files, fine-tuned, published to branches,
to private repos, cards rendered more than once), against the local Hub server."""

from __future__ import annotations

import json
import logging
import re
import shutil

import pytest
import torch
from huggingface_hub import HfApi

from hfssl.cards import render_card
from hfssl.cli import main as cli_main
from hfssl.hub import PublishError, build_repo_files, publish_run
from hfssl.hub.metadata import split_front_matter
from hfssl.models import HfsslTextForSequenceClassification
from hfssl.training.rundir import RunDirectory

from .conftest import TOKEN, USER, run_from_hub

pytestmark = pytest.mark.usefixtures("online")


@pytest.fixture
def run(mlm_run, tmp_path) -> RunDirectory:
    """A private copy of the MLM run, so a test may change it."""
    shutil.copytree(mlm_run.path, tmp_path / "runs" / "mlm")
    return RunDirectory(tmp_path / "runs" / "mlm")


def _snippet(card: str) -> str:
    return re.search(r"```python\n(.*?)```", card, re.DOTALL).group(1)


def test_evaluation_and_audit_json_are_published_without_local_paths(run, tmp_path):
    """`hfssl evaluate --train-files /abs/train.csv` records "files:/abs/train.csv" and the model's absolute path in
    eval/<protocol>.json and run.json; both were uploaded as they were."""
    data = tmp_path / "data"
    data.mkdir()
    source, test = f"files:{data / 'train.csv'},{data / 'extra.csv'}", f"files:{data / 'test.csv'}"
    result = {"protocol": "knn", "model": {"path": str(run.model_dir)},
              "data": {"source": source, "test_source": test, "train_examples": 200},
              "arms": {"pretrained": {"by_k": {"20": {"accuracy": 0.59, "macro_f1": 0.58}}}}, "plots": []}
    (run.eval_dir / "knn.json").write_text(json.dumps(result))
    run.update_manifest(eval={"knn": result})
    (run.path / "bias_audit.json").write_text(json.dumps({"audits": {"crows_pairs": {"data": {
        "source": str(data / "bias"), "file": "crows_pairs.csv"}}}}))

    files = build_repo_files(run, f"{USER}/paths")
    for path, content in files.items():
        assert str(tmp_path).encode() not in content, path
    published = json.loads(files["eval/knn.json"])
    assert published["data"] == {"source": "files:train.csv,extra.csv", "test_source": "files:test.csv",
                                 "train_examples": 200}
    assert json.loads(files["run.json"])["eval"]["knn"]["data"]["source"] == "files:train.csv,extra.csv"
    assert json.loads(files["bias_audit.json"])["audits"]["crows_pairs"]["data"]["source"] == "bias"
    metadata, _ = split_front_matter(files["README.md"].decode())
    assert metadata["model-index"][0]["results"][0]["metrics"][0]["value"] == 0.59  # as in eval/knn.json


def test_a_local_path_in_another_published_text_file_is_refused(run):
    (run.eval_dir / "notes.md").write_text(f"Features were cached in {run.path / 'cache'}.\n")
    with pytest.raises(ValueError, match=r"eval/notes.md would publish the local path"):
        build_repo_files(run, f"{USER}/paths")


def test_how_the_tokenizer_was_loaded_here_is_not_published(run, tmp_path):
    """A fine-tuned run's tokenizer_config.json says `local_files_only: true` (its tokenizer was loaded from the
    parent's folder): meaningless on the Hub."""
    path = run.model_dir / "tokenizer_config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "is_local": True, "local_files_only": True}))
    files = build_repo_files(run, f"{USER}/tok")
    config = json.loads(files["tokenizer_config.json"])
    assert "is_local" not in config and "local_files_only" not in config
    assert config["tokenizer_class"] == json.loads(path.read_text())["tokenizer_class"]


@pytest.mark.parametrize("repo_id", [f"{USER}/--x", f"{USER}/x..y", f"{USER}/x.git", f"{USER}/-x", "a" * 97 + "/x"])
def test_repo_ids_the_hub_refuses_are_user_errors_before_any_request(hub, run, repo_id, monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    assert cli_main(["publish", str(run.path), "--repo-id", repo_id, "--endpoint", hub.endpoint]) == 2
    assert "--repo-id must look like 'namespace/name'" in capsys.readouterr().err
    assert hub.requests == []
    assert cli_main(["card", str(run.path), "--repo-id", repo_id]) == 2


def test_card_repo_id_with_spaces_is_refused(run, capsys):
    assert cli_main(["card", str(run.path), "--repo-id", "not a repo"]) == 2
    assert "--repo-id must look like" in capsys.readouterr().err


def test_a_bad_base_model_id_names_the_flag(run):
    with pytest.raises(ValueError, match="--base-model-id must be the base model's Hub id"):
        publish_run(run.path, f"{USER}/x", dry_run=True, base_model_id="./runs/parent")


def test_private_publish_to_an_existing_public_repo_is_refused_and_uploads_nothing(hub, run):
    repo_id = f"{USER}/was-public"
    publish_run(run.path, repo_id, endpoint=hub.endpoint, token=TOKEN)
    before = hub.revisions(repo_id)
    run.update_manifest(eval={"linear_probe": {"accuracy": 0.7731}})
    with pytest.raises(PublishError, match="already exists and is public"):
        publish_run(run.path, repo_id, endpoint=hub.endpoint, token=TOKEN, private=True)
    assert hub.revisions(repo_id) == before
    assert run.read_manifest()["publish"]["private"] is False  # the record names what the repository is
    # A new repository is created private, and publishing to it again with --private is fine.
    publish_run(run.path, f"{USER}/private", endpoint=hub.endpoint, token=TOKEN, private=True)
    publish_run(run.path, f"{USER}/private", endpoint=hub.endpoint, token=TOKEN, private=True)
    assert HfApi(endpoint=hub.endpoint, token=TOKEN).model_info(f"{USER}/private").private


def test_the_card_of_a_branch_loads_the_model_from_that_branch(hub, run, tmp_path):
    """Published with --revision v2, the card's code loaded main, which holds no model."""
    repo_id = f"{USER}/branch-card"
    publish_run(run.path, repo_id, endpoint=hub.endpoint, token=TOKEN, revision="v2")
    code = _snippet(hub.files(repo_id, revision="v2")["README.md"].decode())
    assert f'model="{repo_id}", revision="v2"' in code
    out = run_from_hub(code, hub, tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "token_str" in out.stdout


def test_the_classifier_card_loads_its_tokenizer_without_asking_to_run_code(hub, run, tmp_path):
    """AutoTokenizer without trust_remote_code reads config.json's auto_map and asks "Do you wish to run the custom
    code? [y/N]" where hfssl is not installed."""
    torch.manual_seed(0)
    model = HfsslTextForSequenceClassification.from_pretrained(run.model_dir, id2label={0: "neg", 1: "pos"})
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(run.model_dir)
    shutil.rmtree(run.model_dir)
    run.save_model(model, tokenizer)
    run.update_manifest(stage="finetune", finetune={"parent": "alice/base", "method": "none",
                                                    "id2label": {"0": "neg", "1": "pos"},
                                                    "metrics": {"accuracy": 0.6}})
    repo_id = f"{USER}/classifier"
    publish_run(run.path, repo_id, endpoint=hub.endpoint, token=TOKEN)
    out = run_from_hub(_snippet(hub.files(repo_id)["README.md"].decode()), hub, tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Do you wish to run the custom code" not in out.stdout + out.stderr
    assert out.stdout.strip().splitlines()[-1] in ("neg", "pos")


def test_a_license_given_once_survives_rendering_the_card_again(run):
    render_card(run.path, license="mit")
    render_card(run.path, repo_id=f"{USER}/named")  # e.g. to name the repo, or after an evaluation
    render_card(run.path)
    text = (run.model_dir / "README.md").read_text()
    assert split_front_matter(text)[0]["license"] == "mit" and "apache-2.0" not in text
    metadata, _ = split_front_matter(build_repo_files(run, f"{USER}/named")["README.md"].decode())
    assert metadata["license"] == "mit"


def test_a_hand_edited_card_with_links_outside_the_repo_warns(run, caplog):
    render_card(run.path)
    card = run.model_dir / "README.md"
    card.write_text(card.read_text() + "\n![loss](../checkpoints/loss.png) [run](eval/linear_probe.json)\n")
    with caplog.at_level(logging.WARNING, logger="hfssl.hub.publish"):
        build_repo_files(run, f"{USER}/links")
    assert "../checkpoints/loss.png" in caplog.text and "eval/linear_probe.json" not in caplog.text

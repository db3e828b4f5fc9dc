"""Publishing runs to a local Hub-compatible server, then loading them where hfssl is not installed."""

from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import pytest
import torch
from huggingface_hub import HfApi
from transformers import AutoTokenizer

from hfssl.hub import publish_run
from hfssl.hub.publish import DRY_RUN_FOLDER
from hfssl.models import HfsslTextForMaskedLM, HfsslVisionForMaskedImageModeling
from hfssl.training.rundir import RunDirectory

from .conftest import TOKEN, USER, run_from_hub

pytestmark = pytest.mark.usefixtures("online")


def test_text_mlm_loads_from_the_hub_without_hfssl_with_equal_outputs(hub, mlm_run, tmp_path):
    repo_id = f"{USER}/tiny-mlm"
    result = publish_run(mlm_run.path, repo_id, endpoint=hub.endpoint, token=TOKEN)

    tokenizer = AutoTokenizer.from_pretrained(mlm_run.model_dir)
    model = HfsslTextForMaskedLM.from_pretrained(mlm_run.model_dir).eval()
    ids = tokenizer(["Return the value of the key.", "Open file and return a stream."], padding=True,
                    return_tensors="pt")
    with torch.no_grad():
        logits = model(**ids).logits
    torch.save({"ids": ids["input_ids"], "mask": ids["attention_mask"], "logits": logits}, tmp_path / "expected.pt")
    out = run_from_hub(
        f"""
        import torch
        from transformers import AutoModelForMaskedLM, AutoTokenizer
        model = AutoModelForMaskedLM.from_pretrained("{repo_id}", trust_remote_code=True).eval()
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        tokenizer = AutoTokenizer.from_pretrained("{repo_id}")
        expected = torch.load("expected.pt")
        ids = tokenizer(["Return the value of the key.", "Open file and return a stream."], padding=True,
                        return_tensors="pt")
        assert torch.equal(ids["input_ids"], expected["ids"])
        with torch.no_grad():
            logits = model(input_ids=ids["input_ids"], attention_mask=ids["attention_mask"]).logits
        torch.testing.assert_close(logits, expected["logits"])
        print("HUB-OK")
        """,
        hub, tmp_path,
    )
    assert "HUB-OK" in out.stdout, out.stderr[-3000:]
    landed = hub.files(repo_id)
    assert {"README.md", "config.json", "model.safetensors", "modeling_hfssl_text.py", "blocks.py",
            "configuration_hfssl_text.py", "tokenizer.json", "run.json", "bias_audit.json",
            "eval/linear_probe.json", "eval/curve.png"} <= set(landed)
    assert hub.revisions(repo_id)[0] == result["commit_sha"]
    assert RunDirectory(mlm_run.path).read_manifest()["publish"]["commit_sha"] == result["commit_sha"]


def test_vision_mae_loads_from_the_hub_without_hfssl_with_equal_outputs(hub, mae_run, tmp_path):
    from transformers import AutoImageProcessor

    repo_id = f"{USER}/tiny-mae"
    publish_run(mae_run.path, repo_id, endpoint=hub.endpoint, token=TOKEN)
    images = list(np.random.default_rng(0).integers(0, 256, (2, 20, 20, 3), dtype=np.uint8))
    pixels = AutoImageProcessor.from_pretrained(mae_run.model_dir)(images=images, return_tensors="pt")["pixel_values"]
    model = HfsslVisionForMaskedImageModeling.from_pretrained(mae_run.model_dir).eval()
    noise = torch.rand(2, model.config.num_patches, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        logits = model(pixel_values=pixels, noise=noise).logits
    torch.save({"images": np.stack(images), "noise": noise, "logits": logits}, tmp_path / "expected.pt")
    out = run_from_hub(
        f"""
        import torch
        from transformers import AutoImageProcessor, AutoModelForPreTraining
        expected = torch.load("expected.pt", weights_only=False)
        processor = AutoImageProcessor.from_pretrained("{repo_id}")
        pixels = processor(images=list(expected["images"]), return_tensors="pt")["pixel_values"]
        model = AutoModelForPreTraining.from_pretrained("{repo_id}", trust_remote_code=True).eval()
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        with torch.no_grad():
            logits = model(pixel_values=pixels, noise=expected["noise"]).logits
        torch.testing.assert_close(logits, expected["logits"])
        print("HUB-OK")
        """,
        hub, tmp_path,
    )
    assert "HUB-OK" in out.stdout, out.stderr[-3000:]


def test_dry_run_folder_equals_what_lands(hub, mlm_run, tmp_path):
    repo_id = f"{USER}/dry-then-real"
    preview = publish_run(mlm_run.path, repo_id, endpoint=hub.endpoint, dry_run=True, dry_run_dir=tmp_path / "p")
    assert hub.requests == []  # a dry run makes no request at all
    written = {p.relative_to(tmp_path / "p").as_posix(): p.read_bytes()
               for p in (tmp_path / "p").rglob("*") if p.is_file()}
    assert sorted(written) == preview["files"]
    publish_run(mlm_run.path, repo_id, endpoint=hub.endpoint, token=TOKEN)
    landed = hub.files(repo_id)
    landed.pop(".gitattributes")  # the Hub's own first commit
    assert landed == written


def test_default_dry_run_folder_is_inside_the_run_and_not_published(hub, mlm_run):
    result = publish_run(mlm_run.path, f"{USER}/x", dry_run=True)
    assert result["folder"] == str(mlm_run.path / DRY_RUN_FOLDER)
    files = publish_run(mlm_run.path, f"{USER}/x", dry_run=True)["files"]
    assert not any(f.startswith(DRY_RUN_FOLDER) for f in files)


def test_published_run_json_has_no_secrets_or_local_paths(hub, mlm_run):
    repo_id = f"{USER}/sanitized"
    publish_run(mlm_run.path, repo_id, endpoint=hub.endpoint, token=TOKEN)
    published = json.loads(hub.files(repo_id)["run.json"])
    assert "hub_token" not in published["arguments"]["training"]
    assert published["arguments"]["training"]["output_dir"] == "checkpoints"
    assert published["data"]["source"] == "corpus.txt"
    assert published["pretrain"]["tokens_seen"] == 5120  # "token" in a key is not a secret by itself
    assert "publish" not in published
    assert str(mlm_run.path) not in hub.files(repo_id)["run.json"].decode()


def test_publish_can_open_a_pull_request_instead_of_committing(hub, mlm_run):
    repo_id = f"{USER}/with-pr"
    first = publish_run(mlm_run.path, repo_id, endpoint=hub.endpoint, token=TOKEN)
    (mlm_run.eval_dir / "knn.json").write_text(json.dumps({"accuracy": 0.5}))
    try:
        pr = publish_run(mlm_run.path, repo_id, endpoint=hub.endpoint, token=TOKEN, create_pr=True)
    finally:
        (mlm_run.eval_dir / "knn.json").unlink()
    assert pr["revision"] == "refs/pr/1" and pr["pr_url"].endswith("/discussions/1")
    assert hub.revisions(repo_id)[0] == first["commit_sha"]  # main is untouched
    assert "eval/knn.json" in hub.files(repo_id, revision="refs/pr/1")


def test_publish_to_a_new_branch(hub, mlm_run):
    repo_id = f"{USER}/branched"
    result = publish_run(mlm_run.path, repo_id, endpoint=hub.endpoint, token=TOKEN, revision="v1")
    assert result["revision"] == "v1"
    assert "model.safetensors" in hub.files(repo_id, revision="v1")
    assert "model.safetensors" not in hub.files(repo_id)


def _copy(run: RunDirectory, folder) -> RunDirectory:
    shutil.copytree(run.path, folder / run.path.name)
    return RunDirectory(folder / run.path.name)


def test_republishing_deletes_what_the_last_publish_uploaded_and_this_one_does_not(hub, mlm_run, tmp_path):
    """An evaluation and an audit gone from the run leave the repository with the next publish; a file put there
    by other means stays; the published run.json lists the commit's files."""
    run, repo_id = _copy(mlm_run, tmp_path), f"{USER}/republished"
    publish_run(run.path, repo_id, endpoint=hub.endpoint, token=TOKEN)
    assert {"bias_audit.json", "eval/linear_probe.json", "eval/curve.png"} <= set(hub.files(repo_id))
    HfApi(endpoint=hub.endpoint, token=TOKEN).upload_file(path_or_fileobj=b"mine", path_in_repo="notes.txt",
                                                          repo_id=repo_id)
    (run.path / "bias_audit.json").unlink()
    shutil.rmtree(run.eval_dir)
    result = publish_run(run.path, repo_id, endpoint=hub.endpoint, token=TOKEN)
    landed = hub.files(repo_id)
    assert "bias_audit.json" not in landed and not any(f.startswith("eval/") for f in landed)
    assert {"notes.txt", "model.safetensors", "README.md"} <= set(landed)
    assert json.loads(landed["run.json"])["published_files"] == result["files"]
    assert set(landed) == {*result["files"], "notes.txt", ".gitattributes"}


def test_a_repository_from_an_older_publish_keeps_its_files_with_a_warning(hub, mlm_run, tmp_path, caplog):
    """Its run.json does not list what hfssl uploaded, so nothing is deleted; the extra files are named."""
    run, repo_id = _copy(mlm_run, tmp_path), f"{USER}/older"
    publish_run(run.path, repo_id, endpoint=hub.endpoint, token=TOKEN)
    old = json.loads(hub.files(repo_id)["run.json"])
    old.pop("published_files")
    HfApi(endpoint=hub.endpoint, token=TOKEN).upload_file(path_or_fileobj=json.dumps(old).encode(),
                                                          path_in_repo="run.json", repo_id=repo_id)
    (run.path / "bias_audit.json").unlink()
    with caplog.at_level(logging.WARNING, logger="hfssl.hub.publish"):
        publish_run(run.path, repo_id, endpoint=hub.endpoint, token=TOKEN)
    assert "bias_audit.json" in hub.files(repo_id)
    assert "bias_audit.json" in caplog.text and "They stay" in caplog.text

"""Publishing a PEFT adapter run: the base model resolves to the parent's Hub repo, and AutoPeftModel loads it."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from peft import LoraConfig, get_peft_model

from hfssl.hub import publish_run
from hfssl.hub.metadata import split_front_matter
from hfssl.models import HfsslTextForMaskedLM, HfsslTextForSequenceClassification
from hfssl.training.rundir import RunDirectory

from .conftest import TOKEN, USER, run_from_hub

pytestmark = pytest.mark.usefixtures("online")
NUM_LABELS = 3


@pytest.fixture(scope="module")
def adapter_run(mlm_run, tmp_path_factory):
    """A child run as the finetune stage lays it out: adapter/ (peft) and run.json naming the parent run."""
    torch.manual_seed(1)
    base = HfsslTextForSequenceClassification.from_pretrained(mlm_run.model_dir, num_labels=NUM_LABELS)
    config = LoraConfig(task_type="SEQ_CLS", r=4, lora_alpha=8, target_modules=["qkv", "out"], init_lora_weights=False)
    model = get_peft_model(base, config).eval()
    run = RunDirectory(tmp_path_factory.mktemp("runs") / "tiny-mlm-sst")
    run.path.mkdir()
    model.save_pretrained(run.path / "adapter")
    ids = torch.randint(5, base.config.vocab_size, (2, 10), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    # The finetune stage's layout: `parent` describes the parent run, `id2label` gives the head's size.
    run.update_manifest(stage="finetune", modality="text",
                        finetune={"parent": {"path": str(mlm_run.path), "model": str(mlm_run.model_dir)},
                                  "method": "lora", "id2label": {str(i): f"c{i}" for i in range(NUM_LABELS)},
                                  "metrics": {"accuracy": 0.7}})
    return run, ids, logits


def test_adapter_loads_with_auto_peft_model_and_its_base_from_the_hub(hub, mlm_run, adapter_run, tmp_path):
    run, ids, logits = adapter_run
    base_id, repo_id = f"{USER}/base-mlm", f"{USER}/base-mlm-sst"
    base_commit = publish_run(mlm_run.path, base_id, endpoint=hub.endpoint, token=TOKEN)["commit_sha"]
    publish_run(run.path, repo_id, endpoint=hub.endpoint, token=TOKEN)
    # The parent published again with other weights: the adapter is pinned to the commit it was published on.
    changed = RunDirectory(tmp_path / "changed")
    shutil.copytree(mlm_run.path, changed.path)
    model = HfsslTextForMaskedLM.from_pretrained(changed.model_dir)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.5)
    model.save_pretrained(changed.model_dir)
    publish_run(changed.path, base_id, endpoint=hub.endpoint, token=TOKEN)
    assert len(hub.revisions(base_id)) >= 2

    files = hub.files(repo_id)
    assert json.loads(files["adapter_config.json"])["base_model_name_or_path"] == base_id
    assert json.loads(files["adapter_config.json"])["revision"] == base_commit
    metadata, _ = split_front_matter(files["README.md"].decode())
    assert metadata["base_model"] == base_id and metadata["library_name"] == "peft"
    assert "config.json" not in files  # the adapter repo holds the adapter, not a copy of the base
    assert "id2label={0: 'c0', 1: 'c1', 2: 'c2'}" in files["README.md"].decode()  # the classes, named
    torch.save({"ids": ids, "logits": logits}, tmp_path / "expected.pt")
    out = run_from_hub(
        f"""
        import torch
        from peft import AutoPeftModelForSequenceClassification
        model = AutoPeftModelForSequenceClassification.from_pretrained(
            "{repo_id}", trust_remote_code=True, num_labels={NUM_LABELS}).eval()
        base = model.get_base_model()
        assert type(base).__module__.startswith("transformers_modules"), type(base).__module__
        assert model.peft_config["default"].base_model_name_or_path == "{base_id}"
        expected = torch.load("expected.pt")
        with torch.no_grad():
            logits = model(input_ids=expected["ids"]).logits
        torch.testing.assert_close(logits, expected["logits"])
        print("HUB-OK")
        """,
        hub, tmp_path,
    )
    assert "HUB-OK" in out.stdout, out.stderr[-3000:]


def test_a_parent_that_is_a_hub_id_is_the_base(adapter_run, tmp_path):
    run, _, _ = adapter_run
    child = RunDirectory(tmp_path / "child")
    child.update_manifest(**{**run.read_manifest(), "finetune": {"parent": {"path": "org/hub-base"}}})
    (child.path / "adapter").symlink_to(run.path / "adapter", target_is_directory=True)
    publish_run(child.path, f"{USER}/child", dry_run=True)
    config = json.loads((child.path / "publish_preview" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "org/hub-base"


def test_adapter_of_an_unpublished_parent_needs_a_base_model_id(hub, adapter_run, tmp_path):
    run, _, _ = adapter_run
    parent = RunDirectory(run.read_manifest()["finetune"]["parent"]["path"])
    manifest = parent.read_manifest()
    manifest.pop("publish", None)
    unpublished = RunDirectory(tmp_path / "parent")
    unpublished.update_manifest(**manifest)
    child = RunDirectory(tmp_path / "child")
    child.update_manifest(**{**run.read_manifest(), "finetune": {"parent": str(unpublished.path)}})
    (child.path / "adapter").symlink_to(run.path / "adapter", target_is_directory=True)
    with pytest.raises(ValueError, match="has not been published"):
        publish_run(child.path, f"{USER}/child", endpoint=hub.endpoint, token=TOKEN)
    assert hub.requests == []
    result = publish_run(child.path, f"{USER}/child", dry_run=True, base_model_id="someone/base")
    config = json.loads((tmp_path / "child" / "publish_preview" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "someone/base" and "README.md" in result["files"]


def test_an_image_adapter_loads_with_auto_peft_model_from_the_hub_without_hfssl(hub, mae_run, tmp_path):
    from transformers import AutoImageProcessor

    from hfssl.finetune.outputs import save_outputs
    from hfssl.models import HfsslVisionForImageClassification

    torch.manual_seed(2)
    base = HfsslVisionForImageClassification.from_pretrained(mae_run.model_dir, num_labels=NUM_LABELS)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["qkv"], modules_to_save=["classifier"],
                        init_lora_weights=False)  # no task type: peft has none for image classification
    model = get_peft_model(base, config).eval()
    pixels = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        logits = model(pixel_values=pixels).logits
    run = RunDirectory(tmp_path / "tiny-mae-shapes")
    run.path.mkdir()
    save_outputs(run, model, AutoImageProcessor.from_pretrained(mae_run.model_dir), merge=False)  # finetune's saving
    run.update_manifest(stage="finetune", modality="vision",
                        finetune={"parent": {"path": str(mae_run.path), "model": str(mae_run.model_dir)},
                                  "method": "lora", "id2label": {str(i): f"c{i}" for i in range(NUM_LABELS)},
                                  "metrics": {"accuracy": 0.7}})
    base_id, repo_id = f"{USER}/base-mae", f"{USER}/base-mae-shapes"
    publish_run(mae_run.path, base_id, endpoint=hub.endpoint, token=TOKEN)
    publish_run(run.path, repo_id, endpoint=hub.endpoint, token=TOKEN)
    assert json.loads(hub.files(repo_id)["adapter_config.json"])["auto_mapping"] == {
        "base_model_class": "AutoModelForImageClassification", "parent_library": "transformers"}
    torch.save({"pixels": pixels, "logits": logits}, tmp_path / "expected.pt")
    out = run_from_hub(
        f"""
        import torch
        from peft import AutoPeftModel
        model = AutoPeftModel.from_pretrained("{repo_id}", trust_remote_code=True, num_labels={NUM_LABELS}).eval()
        expected = torch.load("expected.pt")
        with torch.no_grad():
            logits = model(pixel_values=expected["pixels"]).logits
        torch.testing.assert_close(logits, expected["logits"])
        print("HUB-OK")
        """,
        hub, tmp_path,
    )
    assert "HUB-OK" in out.stdout, out.stderr[-3000:]

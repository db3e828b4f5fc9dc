"""Cases met sharing hfssl models from Python: push_to_hub of hfssl classes, adapters whose parent went to another
Hub, and the demo Space built from `hfssl publish-space` output, against local Hub servers."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from huggingface_hub import HfApi
from peft import LoraConfig, get_peft_model

from hfssl.hub import publish_run, publish_space
from hfssl.hub.local_server import LocalHub
from hfssl.models import HfsslTextForSequenceClassification
from hfssl.training.rundir import RunDirectory

from .conftest import TOKEN, USER, run_from_hub

pytestmark = pytest.mark.usefixtures("online")


@pytest.fixture
def family(mlm_run, tmp_path) -> tuple[RunDirectory, RunDirectory]:
    """A private copy of the MLM run and a LoRA child run of it (adapter/ and run.json naming the parent)."""
    parent = RunDirectory(tmp_path / "runs" / "mlm")
    shutil.copytree(mlm_run.path, parent.path)
    torch.manual_seed(1)
    base = HfsslTextForSequenceClassification.from_pretrained(parent.model_dir, num_labels=2)
    model = get_peft_model(base, LoraConfig(task_type="SEQ_CLS", r=2, target_modules=["qkv"]))
    child = RunDirectory(tmp_path / "runs" / "mlm-sst")
    child.path.mkdir()
    model.save_pretrained(child.adapter_dir)
    child.update_manifest(stage="finetune", modality="text",
                          finetune={"parent": {"path": str(parent.path)}, "method": "lora",
                                    "id2label": {"0": "neg", "1": "pos"}, "metrics": {"accuracy": 0.6}})
    return parent, child


def test_an_adapter_whose_parent_went_to_another_hub_is_refused_before_any_request(hub, family):
    """Parent published to a test server, child to the real Hub: the adapter named the base there and pinned a
    commit that only the test server has, so loading it failed."""
    parent, child = family
    with LocalHub(tokens={TOKEN: USER}) as other:
        publish_run(parent.path, f"{USER}/base", endpoint=other.endpoint, token=TOKEN)
    with pytest.raises(ValueError, match=r"was last published to .* --base-model-id"):
        publish_run(child.path, f"{USER}/child", endpoint=hub.endpoint, token=TOKEN)
    with pytest.raises(ValueError, match="was last published to"):
        publish_run(child.path, f"{USER}/child", endpoint=hub.endpoint, dry_run=True)
    assert hub.requests == []
    # Naming the base explicitly is the way out; publishing the parent here first is the other.
    publish_run(child.path, f"{USER}/child", endpoint=hub.endpoint, token=TOKEN, base_model_id=f"{USER}/base")
    published = publish_run(parent.path, f"{USER}/base", endpoint=hub.endpoint, token=TOKEN)
    publish_run(child.path, f"{USER}/child", endpoint=hub.endpoint + "/", token=TOKEN)
    assert json.loads(hub.files(f"{USER}/child")["adapter_config.json"])["revision"] == published["commit_sha"]


def test_an_adapter_on_a_private_base_warns(hub, family, caplog):
    parent, child = family
    publish_run(parent.path, f"{USER}/private-base", endpoint=hub.endpoint, token=TOKEN, private=True)
    with caplog.at_level(logging.WARNING, logger="hfssl.hub.publish"):
        publish_run(child.path, f"{USER}/child", endpoint=hub.endpoint, dry_run=True)
    assert f"base {USER}/private-base" in caplog.text and "is private" in caplog.text


def test_a_space_and_the_demo_show_an_adapter_repo_and_a_missing_model_warns(hub, family, tmp_path, caplog):
    """The demo loaded full models only: a Space showing an adapter repository failed at start."""
    parent, child = family
    publish_run(parent.path, f"{USER}/base", endpoint=hub.endpoint, token=TOKEN)
    publish_run(child.path, f"{USER}/child", endpoint=hub.endpoint, token=TOKEN)
    publish_space(f"{USER}/demo", f"{USER}/child", endpoint=hub.endpoint, token=TOKEN, sdk_version="6.0.0",
                  vendor_hfssl=False)
    shown = _python(
        f"""
        from hfssl.demo import load_demo_model
        from hfssl.demo.classify import classify
        loaded = load_demo_model("{USER}/child")
        print(loaded.kind, type(loaded.model).__name__, sorted(classify(loaded, "A fine film.").scores))
        """,
        hub, tmp_path,
    )
    assert shown.returncode == 0, shown.stderr[-3000:]
    assert shown.stdout.split("\n")[-2] == "classification PeftModelForSequenceClassification ['neg', 'pos']"
    with caplog.at_level(logging.WARNING, logger="hfssl.hub.space"):
        publish_space(f"{USER}/demo", f"{USER}/later", endpoint=hub.endpoint, token=TOKEN, sdk_version="6.0.0",
                      vendor_hfssl=False)
    assert f"{USER}/later is not on" in caplog.text


def _python(code: str, hub: LocalHub, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    """Run `code` in a fresh Python (hfssl importable) whose huggingface_hub talks to `hub`."""
    full_env = {**os.environ, "HF_ENDPOINT": hub.endpoint, "HF_HUB_OFFLINE": "0", "HF_HOME": str(cwd / "hf_home"),
                "HF_MODULES_CACHE": str(cwd / "hf_modules"), "HF_HUB_DISABLE_XET": "1", **env}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], check=False, cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=300)


def test_push_to_hub_of_hfssl_classes_loads_without_hfssl(hub, mlm_run, mae_run, tmp_path):
    """model/tokenizer/image_processor.push_to_hub to a private repo and a branch; the code comes along."""
    pushed = _python(
        f"""
        from transformers import AutoImageProcessor, AutoTokenizer
        from hfssl.models import HfsslTextForMaskedLM, HfsslVisionForMaskedImageModeling
        model = HfsslTextForMaskedLM.from_pretrained("{mlm_run.model_dir}")
        model.push_to_hub("{USER}/pushed-mlm", private=True, commit_message="tiny mlm")
        AutoTokenizer.from_pretrained("{mlm_run.model_dir}").push_to_hub("{USER}/pushed-mlm")
        vision = HfsslVisionForMaskedImageModeling.from_pretrained("{mae_run.model_dir}")
        vision.push_to_hub("{USER}/pushed-mae", revision="v1")
        AutoImageProcessor.from_pretrained("{mae_run.model_dir}").push_to_hub("{USER}/pushed-mae", revision="v1")
        """,
        hub, tmp_path, HF_TOKEN=TOKEN,
    )
    assert pushed.returncode == 0, pushed.stderr[-3000:]
    assert "tiny mlm" in [c.title for c in HfApi(endpoint=hub.endpoint, token=TOKEN).list_repo_commits(
        f"{USER}/pushed-mlm")]
    (tmp_path / "load").mkdir()
    out = run_from_hub(
        f"""
        import numpy as np, os, torch
        from transformers import AutoImageProcessor, AutoModelForMaskedLM, AutoModelForPreTraining, AutoTokenizer
        try:
            AutoModelForMaskedLM.from_pretrained("{USER}/pushed-mlm", trust_remote_code=True)
        except OSError:
            pass
        else:
            raise SystemExit("a private repo loaded without a token")
        token = "{TOKEN}"
        model = AutoModelForMaskedLM.from_pretrained("{USER}/pushed-mlm", trust_remote_code=True, token=token)
        tokenizer = AutoTokenizer.from_pretrained("{USER}/pushed-mlm", trust_remote_code=True, token=token)
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        print(model(**tokenizer(["Open the file."], return_tensors="pt")).logits.shape)
        vision = AutoModelForPreTraining.from_pretrained("{USER}/pushed-mae", revision="v1", trust_remote_code=True)
        processor = AutoImageProcessor.from_pretrained("{USER}/pushed-mae", revision="v1")
        pixels = processor(images=[np.zeros((20, 20, 3), dtype=np.uint8)], return_tensors="pt")["pixel_values"]
        assert torch.isfinite(vision(pixel_values=pixels).loss)
        print("HUB-OK")
        """,
        hub, tmp_path / "load",
    )
    assert "HUB-OK" in out.stdout, out.stderr[-3000:]


def test_the_published_space_builds_its_demo_with_the_vendored_hfssl(hub, mlm_run, tmp_path):
    """`python app.py` in the Space folder, HFSSL_MODEL_ID naming a published model: built, not served forever."""
    pytest.importorskip("gradio")
    run = RunDirectory(tmp_path / "mlm")
    shutil.copytree(mlm_run.path, run.path)
    publish_run(run.path, f"{USER}/shown", endpoint=hub.endpoint, token=TOKEN)
    space = tmp_path / "space"
    publish_space(f"{USER}/demo", f"{USER}/other", dry_run=True, dry_run_dir=space)
    out = _python(
        """
        import os, runpy, sys
        sys.path.insert(0, os.getcwd())
        app = runpy.run_path("app.py", run_name="space")  # the Space's own module, not __main__: nothing launched
        import hfssl
        assert hfssl.__file__.startswith(os.getcwd()), hfssl.__file__  # the copy uploaded with the Space
        from hfssl.demo import build_demo
        demo = build_demo(app["resolve_model_id"]())
        demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
        demo.close()
        print("BUILT", app["resolve_model_id"]())
        """,
        hub, space, HFSSL_MODEL_ID=f"{USER}/shown", GRADIO_ANALYTICS_ENABLED="False", PYTHONPATH="",
    )
    assert f"BUILT {USER}/shown" in out.stdout, out.stderr[-3000:]

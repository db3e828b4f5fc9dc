"""`hfssl publish --full-model`: a fine-tuned run's merged classifier (model/) instead of its adapter, so it can be
shared without publishing the self-supervised parent first."""

from __future__ import annotations

import json

import pytest

from hfssl.hub import publish_run
from hfssl.hub.command import add_publish_arguments
from hfssl.hub.metadata import split_front_matter

from ..cards import make_run
from .conftest import TOKEN, USER, run_from_hub


def test_the_merged_classifier_of_an_adapter_run_is_published_and_loads_without_its_base(hub, tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    run = make_run(tmp_path, "adapter-text")  # model/ (merged) and adapter/, its parent never published
    with pytest.raises(ValueError, match="has not been published"):  # the adapter needs its base on the Hub
        publish_run(run.path, f"{USER}/sst", endpoint=hub.endpoint, token=TOKEN)
    result = publish_run(run.path, f"{USER}/sst", endpoint=hub.endpoint, token=TOKEN, full_model=True)
    assert "model.safetensors" in result["files"] and "config.json" in result["files"]
    assert not any(name.startswith("adapter") for name in result["files"])
    metadata, body = split_front_matter(hub.files(f"{USER}/sst")["README.md"].decode())
    assert metadata["library_name"] == "transformers" and "PeftConfig" not in body and "peft" not in body.lower()
    code = body.split("```python")[1].split("```")[0]  # the card's snippet, run as written
    done = run_from_hub(code, hub, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]


def test_full_model_refuses_an_adapter_only_run_and_a_base_model_id(tmp_path):
    run = make_run(tmp_path, "adapter-text")
    with pytest.raises(ValueError, match="--base-model-id names an adapter's base"):
        publish_run(run.path, f"{USER}/sst", dry_run=True, full_model=True, base_model_id="someone/base")
    for name in run.model_dir.iterdir():
        name.unlink()
    run.model_dir.rmdir()
    with pytest.raises(FileNotFoundError, match="this run holds an adapter only"):
        publish_run(run.path, f"{USER}/sst", dry_run=True, full_model=True)


def test_the_flag_is_on_the_command_line():
    import argparse

    args = add_publish_arguments(argparse.ArgumentParser()).parse_args(["runs/x", "--repo-id", "a/b", "--full-model"])
    assert args.full_model is True
    assert json.dumps(vars(args))  # plain values only

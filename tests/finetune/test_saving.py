"""What a fine-tuned run writes: an adapter that reloads to identical logits, and a merged model equal to it.

These tests train nothing through the Trainer except the last: adapter weights are set to random values, so a
reload that dropped or misplaced any of them would change the logits.
"""

from __future__ import annotations

import json
import os

import pytest
import torch
from peft import AutoPeftModelForSequenceClassification, PeftModel
from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer

from hfssl.finetune.api import (
    TrainSettings,
    apply_method,
    build_training_arguments,
    load_classifier,
    resolve_parent,
    save_outputs,
)
from hfssl.finetune.data import DataSpec, load_splits, subsample, tokenize_texts
from hfssl.finetune.labels import encode_labels
from hfssl.finetune.methods import MethodOptions, get_method
from hfssl.models import HfsslTextConfig, HfsslTextForSequenceClassification
from hfssl.training.rundir import RunDirectory

ID2LABEL = {0: "no", 1: "yes", 2: "maybe"}


def randomized_peft_model(parent, name: str):
    model = load_classifier(resolve_parent(str(parent)), "text", ID2LABEL)
    peft_model, _ = apply_method(model, get_method(name), MethodOptions(), "text")
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in peft_model.parameters():
            if param.requires_grad:
                param.add_(0.1 * torch.randn(param.shape, generator=generator))
    return peft_model.eval()


def logits(model, tokenizer) -> torch.Tensor:
    batch = tokenizer(["Return the value of the key.", "Close the socket"], padding=True, return_tensors="pt")
    with torch.no_grad():
        return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits


@pytest.mark.parametrize("method", ["lora", "dora", "ia3"])
def test_adapter_reload_is_exact_and_merged_model_matches(method, text_parent, tokenizer, tmp_path):
    model = randomized_peft_model(text_parent, method)
    expected = logits(model, tokenizer)
    run = RunDirectory(tmp_path / "run")
    run.path.mkdir()
    folders = save_outputs(run, model, tokenizer, merge=True)

    base = AutoModelForSequenceClassification.from_pretrained(str(text_parent / "model"), id2label=ID2LABEL)
    reloaded = PeftModel.from_pretrained(base, folders["adapter_dir"]).eval()
    assert torch.equal(logits(reloaded, tokenizer), expected)
    for folder in ("model_dir", "merged_dir"):
        merged = AutoModelForSequenceClassification.from_pretrained(folders[folder]).eval()
        assert merged.config.id2label == ID2LABEL
        torch.testing.assert_close(logits(merged, tokenizer), expected, atol=1e-5, rtol=1e-5)
    assert AutoTokenizer.from_pretrained(folders["adapter_dir"]).vocab == tokenizer.vocab


def test_the_adapter_loads_bare_with_the_real_class_names(text_parent, tokenizer, tmp_path):
    """The way a user loads it: AutoPeftModelForSequenceClassification on the adapter folder alone, offline. Its base
    is base/, the parent's files under a config naming the 3 classes; on the parent itself (2 labels, LABEL_0 ...)
    this load showed LABEL_0/LABEL_1, or failed on the head size without num_labels=3."""
    model = randomized_peft_model(text_parent, "lora")
    expected = logits(model, tokenizer)
    run = RunDirectory(tmp_path / "run")
    run.path.mkdir()
    folders = save_outputs(run, model, tokenizer, merge=False, parent_model=str((text_parent / "model").resolve()))
    assert folders["base_dir"] == str(run.path / "base") and folders["merged_dir"] is None
    config = json.loads((run.path / "adapter" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str((run.path / "base").resolve())
    loaded = AutoPeftModelForSequenceClassification.from_pretrained(folders["adapter_dir"]).eval()
    assert loaded.config.id2label == ID2LABEL and loaded.config.label2id == {v: k for k, v in ID2LABEL.items()}
    assert torch.equal(logits(loaded, tokenizer), expected)
    # base/ holds the parent's weights themselves (hard links: no extra disk), not a copy that could drift.
    assert os.path.samefile(run.path / "base" / "model.safetensors", text_parent / "model" / "model.safetensors")
    assert folders["adapter_bytes"] < 0.5 * (run.model_dir / "model.safetensors").stat().st_size


def test_a_prompt_tuned_run_has_adapter_and_base_and_no_model_folder(text_parent, tokenizer, tmp_path):
    """Prompt tuning cannot merge: no model/ (a model without the learned prompt would predict differently), and the
    adapter loads with its labels on base/."""
    model = randomized_peft_model(text_parent, "prompt_tuning")
    expected = logits(model, tokenizer)
    run = RunDirectory(tmp_path / "run")
    run.path.mkdir()
    folders = save_outputs(run, model, tokenizer, merge=False, parent_model=str(text_parent / "model"))
    assert folders["model_dir"] is None and sorted(p.name for p in run.path.iterdir()) == ["adapter", "base"]
    loaded = AutoPeftModelForSequenceClassification.from_pretrained(folders["adapter_dir"]).eval()
    assert loaded.config.id2label == ID2LABEL
    torch.testing.assert_close(logits(loaded, tokenizer), expected)


def test_a_classifier_parent_with_another_class_count_stays_the_adapters_base(tmp_path, tokenizer):
    """Its saved head (2 classes) would not load under a 3-class config: the adapter names the parent instead."""
    parent = tmp_path / "classifier"
    config = HfsslTextConfig(vocab_size=len(tokenizer), num_labels=2, hidden_size=32, num_hidden_layers=1,
                             num_attention_heads=2, intermediate_size=64)
    HfsslTextForSequenceClassification(config).save_pretrained(parent)
    tokenizer.save_pretrained(parent)
    model = randomized_peft_model(parent, "lora")
    run = RunDirectory(tmp_path / "run")
    run.path.mkdir()
    folders = save_outputs(run, model, tokenizer, merge=False, parent_model=str(parent.resolve()))
    assert folders["base_dir"] is None and not (run.path / "base").exists()
    config = json.loads((run.path / "adapter" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(parent.resolve())


def test_training_changes_only_the_adapter_and_the_head(text_parent, tmp_path):
    parent = resolve_parent(str(text_parent))
    spec = DataSpec(dataset="stdlib-docstrings", max_train_examples=64)
    splits, _ = load_splits(spec, "text")
    splits, id2label = encode_labels(splits, "label")
    encoded = tokenize_texts(subsample(splits, spec), AutoTokenizer.from_pretrained(parent.model_path), "text", 32)
    model, _ = apply_method(load_classifier(parent, "text", id2label), get_method("lora"), MethodOptions(), "text")
    before = {name: value.clone() for name, value in model.state_dict().items()}
    settings = TrainSettings(learning_rate=1e-2, batch_size=16, overrides={"max_steps": 4, "disable_tqdm": True})
    args = build_training_arguments(tmp_path, get_method("lora"), settings, seed=0)
    collator = DataCollatorWithPadding(AutoTokenizer.from_pretrained(parent.model_path))
    Trainer(model=model, args=args, train_dataset=encoded["train"], data_collator=collator).train()
    changed = {name for name, value in model.state_dict().items() if not torch.equal(value, before[name])}
    assert changed and all("lora_" in name or "modules_to_save" in name for name in changed)
    assert any("lora_B" in name for name in changed) and any("classifier.modules_to_save" in name for name in changed)


@pytest.mark.parametrize("method, task, why, load", [
    ("prompt_tuning", "text-classification", "prompt_tuning learns virtual tokens", "AutoPeftModelForSequenceClassification"),
    ("lora", "text-classification", "merging the lora adapter into the weights failed",
     "AutoPeftModelForSequenceClassification"),
    ("lora", "image-classification", "merging the lora adapter into the weights failed",
     "PeftModel.from_pretrained(AutoModelForImageClassification.from_pretrained("),
])
def test_an_adapter_only_run_says_why_it_has_no_model_and_how_its_adapter_loads(tmp_path, method, task, why, load):
    """A LoRA run ends adapter-only when its merge fails; the message must not say LoRA learns virtual tokens."""
    run = RunDirectory(tmp_path / "run")
    (run.adapter_dir).mkdir(parents=True)
    (run.adapter_dir / "adapter_config.json").write_text("{}")
    run.update_manifest(finetune={"method": method, "task": task, "parent": {"path": "runs/parent"}})
    message = str(run.no_model_error("evaluate"))
    assert run.is_adapter_only() and why in message and load in message and "Run it on runs/parent" in message
    assert ("virtual tokens" in message) == (method == "prompt_tuning")

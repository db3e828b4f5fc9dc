"""What a fine-tuned run writes: an adapter that reloads to identical logits, and a merged model equal to it.

These tests train nothing through the Trainer except the last: adapter weights are set to random values, so a
reload that dropped or misplaced any of them would change the logits.
"""

from __future__ import annotations

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer

from hfssl.finetune.api import (
    TrainSettings,
    apply_method,
    build_training_arguments,
    load_classifier,
    resolve_parent,
    save_outputs,
)
from hfssl.finetune.data import DataSpec, encode_labels, load_splits, subsample, tokenize_texts
from hfssl.finetune.methods import MethodOptions, get_method
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


def test_adapter_base_is_the_parent_model_folder(text_parent, tokenizer, tmp_path):
    model = randomized_peft_model(text_parent, "lora")
    run = RunDirectory(tmp_path / "run")
    run.path.mkdir()
    folders = save_outputs(run, model, tokenizer, merge=False)
    assert model.peft_config["default"].base_model_name_or_path == str((text_parent / "model").resolve())
    assert folders["merged_dir"] is None
    assert folders["adapter_bytes"] < 0.5 * (run.model_dir / "model.safetensors").stat().st_size


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

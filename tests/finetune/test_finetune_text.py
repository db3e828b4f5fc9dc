"""Text classification end to end: real text, hfssl and stock parents, LoRA and full fine-tuning, the run directory."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest
import torch
from peft import AutoPeftModelForSequenceClassification
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from hfssl.finetune import finetune
from hfssl.finetune.data import STDLIB_PACKAGES, stdlib_docstrings_by_package

from ..models.model_tester import run_without_hfssl
from .conftest import FAST

TEXTS = ["Return a new event loop.", "Parse an e-mail message from a string.", "Start the worker process."]
CHANCE = 1 / len(STDLIB_PACKAGES)


def logits(model, tokenizer, texts=TEXTS) -> torch.Tensor:
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        return model.eval()(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits


@pytest.fixture(scope="module")
def lora_run(text_parent, tmp_path_factory) -> dict:
    """LoRA on the stdlib docstrings labeled by package (8 classes), merged model exported too."""
    out = tmp_path_factory.mktemp("finetune") / "lora"
    return finetune(text_parent, task="text-classification", output=out, dataset="stdlib-docstrings", peft="lora",
                    learning_rate=5e-3, epochs=5, merge=True, **FAST)


def test_lora_learns_the_package_of_a_docstring(lora_run):
    assert lora_run["metrics"]["accuracy"] > 2.4 * CHANCE, lora_run["metrics"]  # 8 classes, the largest is 17.5%
    assert lora_run["metrics"]["macro_f1"] > 1.6 * CHANCE, lora_run["metrics"]


def test_run_json_links_the_parent_and_records_the_results(lora_run, text_parent):
    run = Path(lora_run["run_dir"])
    manifest = json.loads((run / "run.json").read_text())
    section = manifest["finetune"]
    assert section["parent"]["path"] == str(text_parent.resolve()) and section["parent"]["objective"] == "mlm"
    assert manifest["stage"] == "finetune" and manifest["task"] == "text-classification"
    assert manifest["modality"] == "text"
    assert list(manifest["id2label"].values()) == list(STDLIB_PACKAGES)
    assert section["method"] == "lora" and section["target_family"] == "hfssl"
    assert section["target_modules"] == ["attn.out", "attn.qkv", "mlp.down", "mlp.up"]
    # LoRA on 4 projections x 2 blocks at r=8 (hidden 32, MLP 64) plus an 8-way head over 32 features.
    lora = 2 * 8 * ((32 + 96) + (32 + 32) + (32 + 64) + (64 + 32))
    assert section["trainable_parameters"] == lora + 32 * 8 + 8
    assert json.loads((run / "eval" / "finetune.json").read_text()) == section
    assert section["peak_memory_mb"] > 0 and section["wall_time_s"] > 0 and section["train_examples"] > 1000


def test_adapter_merged_and_model_folders_give_the_same_predictions(lora_run, text_parent):
    tokenizer = AutoTokenizer.from_pretrained(lora_run["adapter_dir"])
    expected = logits(AutoModelForSequenceClassification.from_pretrained(lora_run["model_dir"]), tokenizer)
    merged = AutoModelForSequenceClassification.from_pretrained(lora_run["merged_dir"])
    torch.testing.assert_close(logits(merged, tokenizer), expected)
    # The adapter's base is base/: the parent's weights under a config with the 8 packages (the parent's says 2
    # labels), so it loads bare, with the real class names.
    adapter = AutoPeftModelForSequenceClassification.from_pretrained(lora_run["adapter_dir"])
    assert list(adapter.config.id2label.values()) == list(STDLIB_PACKAGES)
    torch.testing.assert_close(logits(adapter, tokenizer), expected, atol=1e-5, rtol=1e-5)
    config = json.loads((Path(lora_run["adapter_dir"]) / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(Path(lora_run["base_dir"]).resolve())
    weights = "model.safetensors"
    assert os.path.samefile(Path(lora_run["base_dir"]) / weights, text_parent / "model" / weights)
    assert set(config["modules_to_save"]) >= {"classifier"}


def write_csv(path: Path, rows) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def two_label_csvs(tmp_path_factory) -> tuple[Path, Path]:
    """asyncio vs email docstrings as csv files with string labels."""
    data = stdlib_docstrings_by_package(("asyncio", "email"))
    rows = [(text, ("asyncio", "email")[label]) for text, label in zip(data["text"], data["label"])]
    folder = tmp_path_factory.mktemp("csv")
    train = [row for i, row in enumerate(rows) if i % 5]
    return write_csv(folder / "train.csv", train), write_csv(folder / "test.csv", rows[::5])


def test_two_label_adapter_loads_bare_with_and_without_hfssl(two_label_csvs, text_parent, tmp_path):
    train, test = two_label_csvs
    result = finetune(text_parent, task="text-classification", output=tmp_path / "run", train_files=[str(train)],
                      test_files=[str(test)], learning_rate=5e-3, epochs=3, **FAST)
    assert result["id2label"] == {0: "asyncio", 1: "email"}
    assert result["metrics"]["accuracy"] > 0.62, result["metrics"]  # two classes of 297 and 271 docstrings
    tokenizer = AutoTokenizer.from_pretrained(result["adapter_dir"])
    expected = logits(AutoModelForSequenceClassification.from_pretrained(result["model_dir"]), tokenizer)
    bare = AutoPeftModelForSequenceClassification.from_pretrained(result["adapter_dir"])
    assert bare.config.id2label == {0: "asyncio", 1: "email"}  # not LABEL_0, LABEL_1
    torch.testing.assert_close(logits(bare, tokenizer), expected, atol=1e-5, rtol=1e-5)
    outside = run_without_hfssl(
        f"""
        import torch
        from peft import AutoPeftModelForSequenceClassification
        from transformers import AutoTokenizer
        model = AutoPeftModelForSequenceClassification.from_pretrained({result['adapter_dir']!r},
                                                                       trust_remote_code=True).eval()
        batch = AutoTokenizer.from_pretrained({result['adapter_dir']!r})({TEXTS!r}, padding=True, return_tensors="pt")
        with torch.no_grad():
            out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        print("LOGITS", out.flatten().tolist())
        print("LABELS", sorted(model.config.label2id))
        """,
        cwd=tmp_path,
    )
    line = next((x for x in outside.stdout.splitlines() if x.startswith("LOGITS")), None)
    assert line is not None, outside.stderr[-3000:]
    assert "LABELS ['asyncio', 'email']" in outside.stdout
    torch.testing.assert_close(torch.tensor(json.loads(line.split(" ", 1)[1])), expected.flatten(), atol=1e-5,
                               rtol=1e-5)


def test_full_fine_tuning_trains_every_parameter(text_parent, tmp_path):
    result = finetune(text_parent, task="text-classification", output=tmp_path / "full", dataset="stdlib-docstrings",
                      peft="none", learning_rate=1e-3, epochs=3, max_train_examples=800, **FAST)
    assert result["trainable_parameters"] == result["total_parameters"] and result["adapter_dir"] is None
    assert result["metrics"]["accuracy"] > 2.4 * CHANCE, result["metrics"]
    model = AutoModelForSequenceClassification.from_pretrained(result["model_dir"])
    assert model.config.id2label[0] == "asyncio" and not (tmp_path / "full" / "adapter").exists()


def test_label_fraction_keeps_a_stratified_share_of_the_labels(text_parent, tmp_path):
    result = finetune(text_parent, task="text-classification", output=tmp_path / "few", dataset="stdlib-docstrings",
                      label_fraction=0.05, epochs=1, **FAST)
    full = len(stdlib_docstrings_by_package()) * 0.8
    assert abs(result["train_examples"] - 0.05 * full) <= len(STDLIB_PACKAGES)
    assert result["label_fraction"] == 0.05
    manifest = json.loads((tmp_path / "few" / "run.json").read_text())
    assert manifest["data"]["label_fraction"] == 0.05 and manifest["data"]["test_split_carved"]


def test_a_stock_bert_goes_through_the_same_path(bert_folder, two_label_csvs, tmp_path):
    train, test = two_label_csvs
    result = finetune(bert_folder, task="text-classification", output=tmp_path / "bert", train_files=[str(train)],
                      test_files=[str(test)], learning_rate=1e-2, epochs=5, **FAST)
    assert result["target_family"] == "bert" and result["modules_to_save"] == ["classifier"]
    assert result["parent"]["objective"] is None and result["parent"]["modality"] == "text"
    assert result["metrics"]["accuracy"] > 0.62, result["metrics"]  # two classes of 297 and 271 docstrings
    config = json.loads((tmp_path / "bert" / "adapter" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str((tmp_path / "bert" / "base").resolve())
    assert os.path.samefile(tmp_path / "bert" / "base" / "model.safetensors", bert_folder / "model.safetensors")
    base = json.loads((tmp_path / "bert" / "base" / "config.json").read_text())
    assert base["id2label"] == {"0": "asyncio", "1": "email"} and base["model_type"] == "bert"
    assert type(AutoModelForSequenceClassification.from_pretrained(result["model_dir"])).__name__ == (
        "BertForSequenceClassification")


def test_rotten_tomatoes_csv_sentiment(data_dir, text_parent, tmp_path):
    folder = data_dir / "rotten_tomatoes"
    # Full fine-tuning: the parent's word embeddings are random, so they must train to carry sentiment.
    result = finetune(text_parent, task="text-classification", output=tmp_path / "rt", peft="none",
                      train_files=[str(folder / "train.csv")], test_files=[str(folder / "test.csv")],
                      max_train_examples=2000, max_test_examples=500, learning_rate=1e-3, epochs=3,
                      **{**FAST, "max_length": 40})
    assert result["id2label"] == {0: "0", 1: "1"} and result["test_examples"] == 500
    majority = 1474 / 2551  # share of "fresh" in the test split
    assert result["metrics"]["accuracy"] > majority and result["metrics"]["macro_f1"] > 0.55, result["metrics"]

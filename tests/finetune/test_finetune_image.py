"""Image classification end to end through `hfssl finetune`: scikit-learn digits on a tiny hfssl ViT."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from peft import AutoPeftModel, PeftModel
from PIL import Image
from transformers import AutoImageProcessor, AutoModelForImageClassification

from hfssl.data.images import digits_dataset
from hfssl.finetune.command import main

FAST = ["--batch-size", "32", "--training-arg", "disable_tqdm=true", "--training-arg", "logging_steps=1000"]


@pytest.fixture(scope="module")
def digits_run(image_parent, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("finetune") / "digits"
    code = main([str(image_parent), "--task", "image-classification", "--dataset", "digits", "--peft", "lora",
                 "--learning-rate", "3e-3", "--epochs", "5", "--merge", "--output", str(out), *FAST])
    assert code == 0
    return out


def test_lora_on_digits_beats_chance_by_far(digits_run):
    section = json.loads((digits_run / "run.json").read_text())["finetune"]
    assert section["metrics"]["accuracy"] > 0.5, section["metrics"]  # 10 balanced classes: chance is 0.1
    assert section["target_family"] == "hfssl" and section["modules_to_save"] == ["classifier"]
    assert section["id2label"] == {str(d): str(d) for d in range(10)}
    assert section["parent"]["objective"] == "mae"


def test_the_printed_table_shows_the_result(image_parent, tmp_path, capsys):
    out = tmp_path / "quick"
    assert main([str(image_parent), "--task", "image-classification", "--dataset", "digits", "--epochs", "1",
                 "--max-train-examples", "200", "--output", str(out), *FAST]) == 0
    printed = capsys.readouterr().out
    section = json.loads((out / "run.json").read_text())["finetune"]
    assert "accuracy" in printed and "trainable" in printed and f"{section['metrics']['accuracy']:.4f}" in printed
    assert f"{section['trainable_parameters']:,}" in printed and str(out / "adapter") in printed
    assert f"hfssl demo {out}" in printed  # the merged classifier has a demo


def test_the_model_folder_classifies_raw_images_with_its_saved_processor(digits_run):
    # The parent had no image processor: one was built from the training split and saved with the model.
    for folder in ("adapter", "model", "merged"):
        assert (digits_run / folder / "preprocessor_config.json").is_file()
    processor = AutoImageProcessor.from_pretrained(digits_run / "model")
    model = AutoModelForImageClassification.from_pretrained(digits_run / "model").eval()
    digits = digits_dataset()
    picks = np.arange(0, 1797, 7)
    images = [Image.fromarray(np.asarray(digits[int(i)]["image"])) for i in picks]
    with torch.no_grad():
        predicted = model(**processor(images=images, return_tensors="pt")).logits.argmax(-1).numpy()
    # Mostly training images, so well above the test accuracy's floor; all from the processor's own pipeline.
    assert (predicted == np.asarray(digits["label"])[picks]).mean() > 0.5


def test_the_image_adapter_reloads_onto_the_parent(digits_run, image_parent):
    base = AutoModelForImageClassification.from_pretrained(image_parent / "model", num_labels=10)
    adapter = PeftModel.from_pretrained(base, digits_run / "adapter").eval()
    # Or on base/, the parent's weights under a config that knows the 10 classes: no num_labels to pass.
    on_base = AutoModelForImageClassification.from_pretrained(digits_run / "base")
    assert on_base.config.id2label == {i: str(i) for i in range(10)}  # the digits' class names
    on_base = PeftModel.from_pretrained(on_base, digits_run / "adapter").eval()
    # peft's own loader too: the adapter names the Auto class (peft refuses to import hfssl's module by name).
    auto = AutoPeftModel.from_pretrained(digits_run / "adapter").eval()
    assert json.loads((digits_run / "adapter" / "adapter_config.json").read_text())["auto_mapping"] == {
        "base_model_class": "AutoModelForImageClassification", "parent_library": "transformers"}
    merged = AutoModelForImageClassification.from_pretrained(digits_run / "model").eval()
    pixels = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(adapter(pixel_values=pixels).logits, merged(pixel_values=pixels).logits,
                                   atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(auto(pixel_values=pixels).logits, merged(pixel_values=pixels).logits,
                                   atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(on_base(pixel_values=pixels).logits, merged(pixel_values=pixels).logits,
                                   atol=1e-5, rtol=1e-5)


def test_an_imagefolder_without_a_test_split_gets_a_stratified_one(image_parent, tmp_path):
    digits = digits_dataset()
    for i in range(0, 400, 2):
        folder = tmp_path / "labeled" / f"digit{digits[i]['label']}"
        folder.mkdir(parents=True, exist_ok=True)
        digits[i]["image"].save(folder / f"{i}.png")
    out = tmp_path / "run"
    assert main([str(image_parent), "--task", "image-classification", "--dataset", "imagefolder", "--data-dir",
                 str(tmp_path / "labeled"), "--epochs", "1", "--output", str(out), *FAST]) == 0
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["data"]["test_split_carved"]
    assert abs(manifest["finetune"]["test_examples"] - 40) <= 5  # 20%, rounded per class
    assert manifest["id2label"] == {str(d): f"digit{d}" for d in range(10)}

"""Saved hfssl models used as ordinary transformers models: loading a checkpoint under another head, saving what was
loaded, and loading that without hfssl (trust_remote_code)."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModel, AutoModelForCausalLM, AutoModelForImageClassification, AutoModelForPreTraining

from hfssl.hub.bundle import check_model_folder, folder_files
from hfssl.models import (
    HfsslTextForContrastiveLearning,
    HfsslTextForMaskedLM,
    HfsslVisionForContrastiveLearning,
    HfsslVisionForMaskedImageModeling,
)
from tests.models.model_tester import run_without_hfssl, tiny_text_config, tiny_vision_config

AHEAD = torch.tensor([[5, 6, 7, 8], [5, 6, 7, 9]])  # equal but for the last token


def sees_ahead(model) -> bool:
    """Whether the logits before the last position change with the last token."""
    with torch.no_grad():
        logits = model(AHEAD).logits
    return not torch.allclose(logits[0, :3], logits[1, :3], atol=1e-5)


@pytest.mark.parametrize("cls", [HfsslTextForMaskedLM, HfsslTextForContrastiveLearning])
def test_a_bidirectional_checkpoint_loaded_as_a_causal_lm_attends_causally(tmp_path, cls):
    """AutoModelForCausalLM on an MLM or SimCSE run kept its bidirectional attention: each position read the token it
    predicts, so next-token fine-tuning learned to copy and generation was noise."""
    torch.manual_seed(0)
    cls(tiny_text_config(ssl={"method": "simcse"})).save_pretrained(tmp_path)
    model = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert model.config.is_causal and model.config.pooling == "last"
    assert not sees_ahead(model)
    model.save_pretrained(tmp_path / "causal")
    assert json.loads((tmp_path / "causal" / "config.json").read_text())["is_causal"] is True


def _joint_embedding_checkpoint(folder, modality: str):
    torch.manual_seed(0)
    if modality == "image":
        config = tiny_vision_config(ssl={"method": "simclr", "projection_hidden_dim": 32, "projection_dim": 16})
        HfsslVisionForContrastiveLearning(config).save_pretrained(folder)
    else:
        HfsslTextForContrastiveLearning(tiny_text_config(ssl={"method": "simcse"})).save_pretrained(folder)


@pytest.mark.parametrize("modality, auto, kwargs", [
    ("image", AutoModelForImageClassification, {"num_labels": 3}),
    ("image", AutoModel, {}),
    ("text", AutoModel, {}),
])
def test_a_model_saved_from_a_joint_embedding_checkpoint_names_only_code_it_holds(tmp_path, modality, auto, kwargs):
    """The classifier (or backbone) of a SimCLR/DINO/SimCSE run was saved with an auto_map naming the contrastive
    wrapper's module, which save_pretrained does not copy: `hfssl publish` of a `--peft none` fine-tune refused it
    ("lacks modeling_hfssl_vision_contrastive.py") and trust_remote_code loading of that class failed."""
    _joint_embedding_checkpoint(tmp_path / "ssl", modality)
    auto.from_pretrained(tmp_path / "ssl", **kwargs).save_pretrained(tmp_path / "saved")
    folder = tmp_path / "saved"
    config = check_model_folder(folder_files(folder), folder)  # what hfssl publish checks
    assert "AutoModelForPreTraining" not in config["auto_map"]
    assert config["auto_map"]["AutoModel"].split(".")[0] + ".py" in {p.name for p in folder.iterdir()}


def test_the_joint_embedding_model_itself_keeps_its_pretraining_entry(tmp_path):
    _joint_embedding_checkpoint(tmp_path / "ssl", "image")
    config = json.loads((tmp_path / "ssl" / "config.json").read_text())
    assert config["auto_map"]["AutoModelForPreTraining"].startswith("modeling_hfssl_vision_contrastive.")
    assert type(AutoModelForPreTraining.from_pretrained(tmp_path / "ssl")) is HfsslVisionForContrastiveLearning
    mae = tmp_path / "mae"
    HfsslVisionForMaskedImageModeling(tiny_vision_config()).save_pretrained(mae)
    AutoModel.from_pretrained(mae).save_pretrained(tmp_path / "backbone")  # MAE's class lives in the backbone's file
    saved = json.loads((tmp_path / "backbone" / "config.json").read_text())["auto_map"]
    assert saved["AutoModelForPreTraining"] == "modeling_hfssl_vision.HfsslVisionForMaskedImageModeling"


def test_auto_model_for_pretraining_on_a_language_model_names_the_class_that_loads_it(tmp_path):
    """It said only "HfsslTextConfig has no `ssl` attribute" for an MLM checkpoint, with no word of AutoModelForMaskedLM."""
    HfsslTextForMaskedLM(tiny_text_config()).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=r"HfsslTextForMaskedLM .* load it with AutoModelForMaskedLM\.from_pretrained"):
        AutoModelForPreTraining.from_pretrained(tmp_path)


def test_without_hfssl_the_saved_classifier_loads_and_a_masked_lm_loads_as_a_causal_one(tmp_path):
    _joint_embedding_checkpoint(tmp_path / "ssl", "image")
    AutoModelForImageClassification.from_pretrained(tmp_path / "ssl", num_labels=3).save_pretrained(tmp_path / "cls")
    HfsslTextForMaskedLM(tiny_text_config()).save_pretrained(tmp_path / "mlm")
    result = run_without_hfssl(f"""
        import json, torch
        from transformers import AutoModelForCausalLM, AutoModelForImageClassification
        cls = AutoModelForImageClassification.from_pretrained({str(tmp_path / "cls")!r}, trust_remote_code=True)
        assert cls(pixel_values=torch.randn(2, 3, 16, 16)).logits.shape == (2, 3)
        lm = AutoModelForCausalLM.from_pretrained({str(tmp_path / "mlm")!r}, trust_remote_code=True).eval()
        ids = {AHEAD.tolist()!r}
        logits = lm(torch.tensor(ids)).logits
        assert torch.allclose(logits[0, :3], logits[1, :3], atol=1e-5), "sees the next token"
        print("ok", type(cls).__name__, lm.config.is_causal)
    """, tmp_path)
    assert result.returncode == 0 and "ok HfsslVisionForImageClassification True" in result.stdout, result.stderr

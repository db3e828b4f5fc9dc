"""hfssl models used only through the standard Hugging Face APIs, as a transformers user would."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import Trainer, TrainingArguments

from hfssl.models import (
    HfsslVisionForContrastiveLearning,
    HfsslVisionForMaskedImageModeling,
)

from .model_tester import run_without_hfssl, tiny_vision_config

BYOL = {"method": "byol", "projection_hidden_dim": 64, "projection_dim": 16, "prediction_hidden_dim": 64}


@pytest.mark.parametrize("first", ["mae", "byol"])
def test_auto_pretraining_without_hfssl_loads_each_run_folder_as_its_own_class(tmp_path, first):
    # Two runs, each saved as `<run>/model` (hfssl's layout): the same folder name and the same configuration code.
    second = "byol" if first == "mae" else "mae"
    HfsslVisionForMaskedImageModeling(tiny_vision_config()).save_pretrained(tmp_path / "mae" / "model")
    HfsslVisionForContrastiveLearning(tiny_vision_config(ssl=BYOL)).save_pretrained(tmp_path / "byol" / "model")
    result = run_without_hfssl(
        """
        import json
        from transformers import AutoModelForPreTraining
        names = {path: type(AutoModelForPreTraining.from_pretrained(path, trust_remote_code=True)).__name__
                 for path in (FIRST, SECOND)}
        print(json.dumps(names))
        """.replace("FIRST", repr(f"{first}/model")).replace("SECOND", repr(f"{second}/model")),
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {
        "mae/model": "HfsslVisionForMaskedImageModeling", "byol/model": "HfsslVisionForContrastiveLearning"}


def test_a_plain_trainer_reports_the_mae_loss_as_eval_loss(tmp_path):
    model = HfsslVisionForMaskedImageModeling(tiny_vision_config())
    images = [{"pixel_values": torch.randn(3, 16, 16)} for _ in range(8)]
    args = TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True, per_device_eval_batch_size=4)
    metrics = Trainer(model=model, args=args, eval_dataset=images).evaluate()
    assert torch.isfinite(torch.tensor(metrics["eval_loss"]))
    model.eval()
    with torch.no_grad():
        out = model(pixel_values=torch.randn(2, 3, 16, 16), return_loss=False)
    assert out.loss is None and out.logits.shape == (2, 16, 48)

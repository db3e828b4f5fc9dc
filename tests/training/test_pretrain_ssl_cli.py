"""Every image and contrastive objective through `hfssl pretrain`, on real images and text, and their bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import hfssl  # noqa: F401
from hfssl.cli import main
from hfssl.models import HfsslVisionForContrastiveLearning
from transformers import AutoImageProcessor, AutoModel, AutoModelForImageClassification

from ..models.model_tester import run_without_hfssl

# 16-pixel digits, patch 4 (16 patches), a narrow ViT and small method heads: seconds per run on 2 cores.
IMAGES = [
    "--dataset", "digits", "--image-size", "16", "--model-size", "tiny",
    "--config-overrides", "hidden_size=64,num_hidden_layers=2,num_attention_heads=2,intermediate_size=128,"
    "decoder_hidden_size=32,decoder_num_hidden_layers=1,decoder_num_attention_heads=2,decoder_intermediate_size=64",
    "--per-device-train-batch-size", "64", "--learning-rate", "1e-3", "--report-to", "none",
    "--eval-steps", "1000", "--save-steps", "1000", "--logging-steps", "5", "--disable-tqdm", "true",
]
SMALL_HEADS = {
    "simclr": "projection_hidden_dim=128,projection_dim=32",
    "moco": "projection_hidden_dim=128,projection_dim=32,prediction_hidden_dim=128",
    "byol": "projection_hidden_dim=128,projection_dim=32,prediction_hidden_dim=128",
    "simsiam": "projection_hidden_dim=128,projection_dim=32,prediction_hidden_dim=16",
    "dino": "projection_hidden_dim=128,bottleneck_dim=32,out_dim=256",
    "swav": "projection_hidden_dim=128,projection_dim=32,n_prototypes=30",
}


def pretrain(*args) -> int:
    return main(["pretrain", *IMAGES, *[str(a) for a in args]])


def manifest(run: Path) -> dict:
    return json.loads((run / "run.json").read_text())


@pytest.mark.parametrize("method", list(SMALL_HEADS))
def test_each_method_trains_and_loads_back(tmp_path, method):
    out = tmp_path / method
    views = ["--view-overrides", "n_local_crops=2"] if method in ("dino", "swav") else []
    assert pretrain("--objective", method, "--method-options", SMALL_HEADS[method], "--output", out,
                    "--max-steps", "6", *views) == 0
    stats = manifest(out)["pretrain"]
    assert np.isfinite(stats["eval_loss"]) and stats["embedding_std"] > 0
    assert manifest(out)["model"]["config"]["ssl"]["method"] == method
    model = HfsslVisionForContrastiveLearning.from_pretrained(out / "model")
    assert model.config.ssl["method"] == method
    backbone = AutoModel.from_pretrained(out / "model")
    processor = AutoImageProcessor.from_pretrained(out / "model")
    pixels = processor(images=[Image.new("L", (16, 16), 128)], return_tensors="pt")["pixel_values"]
    assert backbone.get_features(pixels).shape == (1, 64)


def test_mae_learns_and_loads_without_hfssl(tmp_path):
    out = tmp_path / "mae"
    assert pretrain("--objective", "mae", "--output", out, "--max-steps", "40") == 0
    stats = manifest(out)["pretrain"]
    assert stats["eval_loss"] < stats["eval_loss_before"] - 0.05, stats
    rows = manifest(out)["data"]["train_rows"]  # 1,707: 27 batches an epoch, the last one partial
    epoch_steps = -(-rows // 64)
    assert stats["images_seen"] == 40 // epoch_steps * rows + min(40 % epoch_steps * 64, rows) < 40 * 64
    assert manifest(out)["model"]["config"]["pooling"] == "mean"  # MAE's default: the patch-token mean
    classifier = AutoModelForImageClassification.from_pretrained(out / "model", num_labels=10)
    assert classifier(pixel_values=torch.zeros(2, 1, 16, 16)).logits.shape == (2, 10)
    result = run_without_hfssl(
        f"""
        import torch
        from transformers import AutoModel
        model = AutoModel.from_pretrained({str(out / 'model')!r}, trust_remote_code=True)
        print("FEATURES", tuple(model.get_features(torch.zeros(3, 1, 16, 16)).shape))
        """,
        cwd=tmp_path,
    )
    assert "FEATURES (3, 64)" in result.stdout, result.stderr[-2000:]


def test_objective_config_defaults_yield_to_the_users_overrides():
    """MAE starts from mean pooling, a contrastive objective keeps the class token, --config-overrides wins."""
    from hfssl.training.arguments import ModelArguments
    from hfssl.training.objectives import get_objective
    from hfssl.training.setup import build_vision_model

    def pooling(objective, overrides=None):
        args = ModelArguments(objective=objective, config_overrides=overrides)
        return build_vision_model(args, get_objective(objective), 16, 1).config.pooling

    assert pooling("mae") == "mean"
    assert pooling("mae", "pooling=cls") == "cls"
    assert pooling("simclr") == "cls"
    assert pooling("mae+simclr") == "cls"


@pytest.mark.parametrize("method", ["byol", "simsiam"])
def test_non_contrastive_methods_do_not_collapse_on_real_images(tmp_path, method):
    out = tmp_path / method
    assert pretrain("--objective", method, "--method-options", SMALL_HEADS[method], "--output", out,
                    "--max-steps", "40") == 0
    stats = manifest(out)["pretrain"]
    # l2-normalized 32-d projections: about 1/sqrt(32) = 0.18 when spread out, 0 when collapsed.
    assert stats["embedding_std"] > 0.05, stats
    assert stats["eval_loss"] < stats["eval_loss_before"], stats


def test_a_seed_reproduces_an_image_run_exactly(tmp_path):
    """Same seed, same weights (augmentations, masking, EMA target and all); another seed, other weights.
    The quality benchmark compares objectives run by run, so a run must be a function of its seed."""
    from safetensors.torch import load_file

    def weights(name, seed):
        out = tmp_path / name
        assert pretrain("--objective", "byol", "--method-options", SMALL_HEADS["byol"], "--output", out,
                        "--max-steps", "3", "--seed", seed) == 0
        return load_file(out / "model" / "model.safetensors")

    first, again, other = weights("a", 0), weights("b", 0), weights("c", 1)
    assert first.keys() == again.keys() == other.keys()
    assert all(torch.equal(first[name], again[name]) for name in first)
    assert not all(torch.equal(first[name], other[name]) for name in first)


def test_hybrid_mae_plus_contrastive_logs_both_terms(tmp_path):
    out = tmp_path / "hybrid"
    options = SMALL_HEADS["simclr"] + ",mae_weight=0.5"
    assert pretrain("--objective", "mae+simclr", "--method-options", options, "--output", out,
                    "--max-steps", "5") == 0
    m = manifest(out)
    assert m["model"]["config"]["mae_weight"] == 0.5
    assert any("mae_loss" in entry for entry in m["pretrain"]["log_history"])
    assert HfsslVisionForContrastiveLearning.from_pretrained(out / "model").decoder is not None


@pytest.mark.parametrize("objective", ["simcse", "mlm+simcse"])
def test_text_contrastive_objectives(tmp_path, capsys, objective):
    out = tmp_path / objective.replace("+", "_")
    code = main(["pretrain", "--objective", objective, "--dataset", "stdlib-docstrings", "--max-train-examples", "800",
                 "--model-size", "tiny", "--config-overrides", "hidden_size=64,num_attention_heads=2,intermediate_size=128",
                 "--vocab-size", "1000", "--block-size", "64", "--per-device-train-batch-size", "16",
                 "--report-to", "none", "--max-steps", "8", "--output", str(out), "--disable-tqdm", "true"])
    assert code == 0
    m = manifest(out)
    assert m["pretrain"]["embedding_std"] > 0
    # exp(loss) is a perplexity only for a token cross-entropy; a contrastive (or summed hybrid) loss has none
    assert "perplexity" not in m["pretrain"] and "perplexity" not in capsys.readouterr().out
    if objective == "mlm+simcse":
        assert any("mlm_loss" in entry for entry in m["pretrain"]["log_history"])
    assert AutoModel.from_pretrained(out / "model").config.model_type == "hfssl_text"


# ---------------------------------------------------------------- bad input


def refuse(capsys, out: Path, *args, message: str) -> None:
    code = pretrain("--output", out, "--max-steps", "2", *args)
    err = capsys.readouterr().err
    assert code == 2, err
    assert message.lower() in err.lower(), err
    assert not out.exists()


def write_images(folder: Path, count: int = 12) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    modes = ["RGB", "L", "RGBA"]
    for i in range(count):
        size = (10 + 3 * i, 14 + i)
        array = rng.integers(0, 255, (size[1], size[0], len(modes[i % 3])), dtype=np.uint8).squeeze()
        Image.fromarray(array, modes[i % 3]).save(folder / f"img{i}.png")


def test_undecodable_images_are_skipped_and_counted(tmp_path):
    folder = tmp_path / "imgs"
    write_images(folder)
    (folder / "broken.png").write_bytes(b"not a png at all")
    code = main(["pretrain", *IMAGES[2:], "--objective", "mae", "--train-files", str(folder / "*.png"),
                 "--output", str(tmp_path / "run"), "--max-steps", "1", "--per-device-train-batch-size", "4"])
    assert code == 0
    assert manifest(tmp_path / "run")["data"]["skipped_undecodable"] == 1


@pytest.mark.parametrize("options, message", [
    ("use_bn_in_head=1", "dino.use_bn_in_head must be true or false, got 1"),
    ("student_temp=warm", "dino.student_temp must be float, got 'warm'"),
])
def test_a_method_option_of_the_wrong_type_is_a_clean_error(tmp_path, capsys, options, message):
    code = main(["pretrain", *IMAGES, "--objective", "dino", "--method-options", options,
                 "--output", str(tmp_path / "run"), "--max-steps", "1"])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_undecodable_image_is_an_error_with_strict(tmp_path, capsys):
    folder = tmp_path / "imgs"
    write_images(folder, 4)
    (folder / "broken.png").write_bytes(b"not a png at all")
    code = main(["pretrain", *IMAGES[2:], "--objective", "mae", "--train-files", str(folder / "*.png"),
                 "--strict", "--output", str(tmp_path / "run"), "--max-steps", "1"])
    assert code == 2 and "broken.png" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_zero_images(tmp_path, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"junk")
    code = main(["pretrain", *IMAGES[2:], "--objective", "mae", "--train-files", str(folder / "*.png"),
                 "--output", str(tmp_path / "run"), "--max-steps", "1"])
    assert code == 2 and "image" in capsys.readouterr().err.lower()


def test_no_image_column(tmp_path, capsys):
    data = tmp_path / "rows.jsonl"
    data.write_text('{"text": "a", "label": 1}\n' * 10)
    code = main(["pretrain", *IMAGES[2:], "--objective", "mae", "--dataset", "json", "--data-dir", str(tmp_path),
                 "--output", str(tmp_path / "run"), "--max-steps", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "--image-column" in err, err


def test_text_data_for_an_image_objective(tmp_path, capsys):
    (tmp_path / "c.txt").write_text("words\n" * 50)
    refuse(capsys, tmp_path / "run", "--objective", "simclr", "--dataset", "", "--train-files", tmp_path / "c.txt",
           message="trains on image")


def test_a_table_of_encoded_images_given_as_train_files_trains(tmp_path):
    """A parquet file of PNG bytes (how images leave a database or another tool) is image data, not text."""
    import io

    import datasets

    def png(value: int) -> bytes:
        buffer = io.BytesIO()
        Image.fromarray(np.full((12, 12), value, np.uint8)).save(buffer, format="PNG")
        return buffer.getvalue()

    datasets.Dataset.from_dict({"img": [png(v) for v in range(0, 240, 6)], "id": list(range(40))}).to_parquet(
        tmp_path / "images.parquet")
    out = tmp_path / "run"
    assert pretrain("--objective", "simclr", "--method-options", SMALL_HEADS["simclr"], "--dataset", "",
                    "--train-files", tmp_path / "images.parquet", "--image-column", "img", "--output", out,
                    "--max-steps", "2", "--per-device-train-batch-size", "8") == 0
    assert manifest(out)["data"]["train_rows"] + manifest(out)["data"]["validation_rows"] == 40


def test_a_table_of_text_given_to_an_image_objective_names_the_image_column(tmp_path, capsys):
    (tmp_path / "rows.jsonl").write_text('{"text": "a", "label": 1}\n' * 10)
    refuse(capsys, tmp_path / "run", "--objective", "mae", "--dataset", "", "--train-files", tmp_path / "rows.jsonl",
           message="--image-column")


def test_a_view_size_off_the_patch_grid_is_refused_before_training(tmp_path, capsys):
    refuse(capsys, tmp_path / "run", "--objective", "dino", "--method-options", SMALL_HEADS["dino"],
           "--view-overrides", "n_local_crops=2,local_crop_size=9", message="not a multiple of the patch size 2")
    assert "Decoding images" not in capsys.readouterr().err  # refused before the data is read


def test_images_for_a_text_objective(tmp_path, capsys):
    code = main(["pretrain", "--objective", "mlm", "--dataset", "digits", "--output", str(tmp_path / "run")])
    assert code == 2 and "trains on text" in capsys.readouterr().err


def test_batch_of_one_for_in_batch_negatives(tmp_path, capsys):
    refuse(capsys, tmp_path / "run", "--objective", "simclr", "--per-device-train-batch-size", "1",
           message="batch-size 2")


def test_image_smaller_than_the_patch(tmp_path, capsys):
    refuse(capsys, tmp_path / "run", "--objective", "mae", "--image-size", "2",
           "--config-overrides", "patch_size=4", message="patch")

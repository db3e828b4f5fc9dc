"""Loading run directories, model folders and stock encoders for demos; the demo kind; the card tables."""

from __future__ import annotations

import json
import re
import shutil

import pytest
import torch
from transformers import BertConfig, BertModel

from hfssl.demo.app import card_markdown, readme_tables, results_table
from hfssl.demo.gallery import embed
from hfssl.demo.inputs import (
    DemoInputError,
    Limits,
    check_pixels,
    check_text,
    reports_input_errors,
)
from hfssl.demo.loading import (
    decide_kind,
    encode,
    load_demo_model,
    resolve_model_source,
)


@pytest.mark.parametrize(
    ("objective", "architectures", "kind"),
    [
        ("mlm", None, "fill-mask"),
        ("mlm_wwm", None, "fill-mask"),
        ("clm", None, "generation"),
        ("mae", None, "reconstruction"),
        ("simclr", ["HfsslVisionForContrastiveLearning"], "gallery"),
        ("simcse", ["HfsslTextForMaskedLM"], "gallery"),  # the objective wins over the architecture
        ("mlm+simcse", ["HfsslTextForContrastiveLearning"], "fill-mask"),  # a hybrid shows its reconstruction half
        ("mae+dino", ["HfsslVisionForContrastiveLearning"], "reconstruction"),
        ("dino", ["HfsslVisionForContrastiveLearning"], "gallery"),
        (None, ["BertForMaskedLM"], "fill-mask"),
        (None, ["GPT2LMHeadModel"], "generation"),
        (None, ["HfsslVisionForMaskedImageModeling"], "reconstruction"),
        (None, ["BertModel"], "gallery"),
        (None, ["HfsslTextForSequenceClassification"], "classification"),  # a fine-tuned run has no objective
        (None, ["ViTForImageClassification"], "classification"),
        (None, None, "gallery"),
    ],
)
def test_decide_kind(objective, architectures, kind):
    assert decide_kind(objective, architectures) == kind


def test_run_directory_gives_kind_modality_processor_and_manifest(loaded_mlm, loaded_clm, loaded_mae):
    assert (loaded_mlm.kind, loaded_mlm.modality, loaded_mlm.tokenizer.mask_token) == ("fill-mask", "text", "[MASK]")
    assert (loaded_clm.kind, loaded_clm.modality) == ("generation", "text")
    assert (loaded_mae.kind, loaded_mae.modality) == ("reconstruction", "image")
    assert loaded_mae.image_processor is not None and hasattr(loaded_mae.model, "reconstruction")
    assert loaded_mlm.manifest["eval"]["knn"]["accuracy"] == 0.7
    assert loaded_mlm.title == "mlm" and not loaded_mlm.model.training


def test_model_folder_inside_a_run_still_reads_the_manifest(mlm_run):
    path, manifest, _ = resolve_model_source(str(mlm_run / "model"))
    assert path == str(mlm_run / "model") and manifest["objective"] == "mlm"


def test_contrastive_run_falls_back_to_gallery(encoder_run):
    loaded = load_demo_model(encoder_run)
    assert (loaded.kind, loaded.modality, type(loaded.model).__name__) == ("gallery", "image", "HfsslVisionModel")


def test_a_checkpoint_without_the_head_falls_back_to_gallery_or_refuses_a_forced_kind(clm_run, tmp_path, caplog):
    run = tmp_path / "mislabelled"
    shutil.copytree(clm_run / "model", run / "model")
    (run / "run.json").write_text(json.dumps({"objective": "mlm"}))  # says masked LM, holds a causal LM
    loaded = load_demo_model(run)
    assert loaded.kind == "gallery" and "no trained weights for lm_head" in caplog.text
    with pytest.raises(ValueError, match="cannot show the fill-mask demo: the checkpoint has no trained weights"):
        load_demo_model(clm_run, kind="fill-mask")


def test_contrastive_checkpoints_load_their_backbone(tmp_path, tiny_vision):
    """Joint-embedding models (and MAE hybrids) from hfssl.models: gallery features equal get_features."""
    models = pytest.importorskip("hfssl.models")
    if not hasattr(models, "HfsslVisionForContrastiveLearning"):
        pytest.skip("hfssl.models has no HfsslVisionForContrastiveLearning yet")
    from hfssl.data.pixels import build_image_processor
    from hfssl.training.rundir import RunDirectory

    for objective, extra in (("simclr", {}), ("mae+dino", {"mae_weight": 1.0})):
        torch.manual_seed(0)
        config = models.HfsslVisionConfig(**tiny_vision, ssl={"method": objective.split("+")[-1]}, **extra)
        model = models.HfsslVisionForContrastiveLearning(config).eval()
        run = RunDirectory(tmp_path / objective)
        run.path.mkdir()
        run.save_model(model, build_image_processor(16, 1, [0.5], [0.5]))
        run.update_manifest(objective=objective, modality="image")
        loaded = load_demo_model(run.path)
        assert loaded.kind == ("gallery" if objective == "simclr" else "reconstruction")
        pixels = torch.linspace(-1, 1, 2 * 256).reshape(2, 1, 16, 16)
        with torch.no_grad():
            expected = torch.nn.functional.normalize(model.get_features(pixels), dim=-1)
        got = encode(loaded, {"pixel_values": pixels})
        assert torch.allclose(torch.nn.functional.normalize(got, dim=-1), expected, atol=1e-5)


def test_forced_kind_and_bad_arguments(mlm_run, tmp_path):
    assert load_demo_model(mlm_run, kind="gallery").kind == "gallery"
    with pytest.raises(ValueError, match="valid kinds"):
        load_demo_model(mlm_run, kind="chat")
    with pytest.raises(ValueError, match="valid rules"):
        load_demo_model(mlm_run, pooling="max")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_demo_model(tmp_path / "missing" / "run")
    with pytest.raises(FileNotFoundError, match="neither a run directory"):
        load_demo_model(tmp_path)


def test_unreachable_hub_id_is_a_clear_error():
    # tests/conftest.py sets HF_HUB_OFFLINE=1: the Hub cannot be reached.
    with pytest.raises(ValueError, match="Could not read the model config"):
        load_demo_model("nobody-here/no-such-model")


def test_stock_encoder_gets_features_by_its_pooling_rule(tmp_path, loaded_mlm):
    """A plain transformers BertModel (no get_features) works in the gallery through the pooling rule."""
    torch.manual_seed(0)
    tokenizer = loaded_mlm.tokenizer
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)
    BertModel(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    by_mean = load_demo_model(tmp_path, pooling="mean")
    by_cls = load_demo_model(tmp_path, pooling="cls")
    assert by_mean.kind == "gallery" and not hasattr(by_mean.model, "get_features")
    texts = ["Return the value.", "Open a file and read it, then close it again."]
    mean, cls = embed(by_mean, texts), embed(by_cls, texts)
    assert mean.shape == cls.shape == (2, 32)
    assert abs(float((mean ** 2).sum(-1)[0]) - 1) < 1e-5
    assert not torch.allclose(torch.from_numpy(mean), torch.from_numpy(cls))
    # Padding must not change the mean-pooled features of the shorter text.
    alone = embed(by_mean, texts[:1])
    assert torch.allclose(torch.from_numpy(alone[0]), torch.from_numpy(mean[0]), atol=1e-5)


def test_limits_checks():
    limits = Limits(max_text_chars=10, max_image_pixels=100)
    assert check_text("  short ", limits) == "short"
    with pytest.raises(DemoInputError, match="at most 10"):
        check_text("x" * 11, limits)
    with pytest.raises(DemoInputError, match="empty"):
        check_text("   ", limits)
    check_pixels(10, 10, limits)
    with pytest.raises(DemoInputError, match="11x10"):
        check_pixels(11, 10, limits)


def test_reports_input_errors_for_functions_and_generators():
    @reports_input_errors(lambda: (None,))
    def handler(x):
        raise DemoInputError("too big")

    @reports_input_errors(lambda: ("",))
    def stream(x):
        yield "partial", ""
        raise DemoInputError("stopped")

    assert handler(1) == (None, "⚠️ too big")
    assert list(stream(1)) == [("partial", ""), ("", "⚠️ stopped")]


def test_card_markdown_shows_eval_and_audit_from_run_json(loaded_mlm):
    card = card_markdown(loaded_mlm)
    assert "## Evaluation" in card and "## Bias audit" in card
    assert "| linear_probe | 0.8125 | rotten_tomatoes | 20 |" in card
    assert "stereotype_score" in card and "0.55" in card


def test_card_tab_shows_run_json_as_the_model_card_does(tmp_path):
    """run.json as hfssl writes it: both arms of each evaluation (flattening cut them off after 8 columns), the audit
    rows with interval and baseline (flattening showed sha256s instead), and no local path of the data."""
    from hfssl.audit.common import row

    from ..cards import make_finetune_run, make_pretrain_run

    run = make_pretrain_run(tmp_path, "mlm")  # eval sections of evaluate_run, data in files:/tmp/data/sentiment.csv
    crows = row("stereotype preference", {"value": 0.61, "ci95": [0.55, 0.67], "n": 1018}, 0.5, group="gender",
                baseline={"value": 0.5, "ci95": [0.45, 0.55], "n": 1018})
    run.update_manifest(audit={"family": "mlm", "audits": {"crows_pairs": {"rows": [crows], "data": {"sha256": "f00"}}},
                               "not_evaluated": {"winobias": "winobias.jsonl not found"}})
    card = card_markdown(load_demo_model(run.path))
    # numbers as the card formats them (hfssl.cards decides the digits)
    assert re.search(r"\n\| pretrained \| C=1 \| 0\.875", card) and re.search(r"\n\| random-init \| C=0\.1 \| 0\.55", card)
    assert re.search(r"\n\| 0\.1 \| 8 \| 0\.7\d* ± 0\.02\d* \| 0\.5", card)  # the label-efficiency curve
    assert "| crows_pairs | stereotype preference | gender | 0.610 | [0.550, 0.670] | 0.500 | 1018 | 0.500 |" in card
    assert "- not evaluated: winobias: winobias.jsonl not found" in card and "f00" not in card
    assert "/tmp/data" not in card and "files: sentiment.csv" in card

    finetuned = make_finetune_run(tmp_path, "finetune-text", "alice/tiny-mlm")
    card = card_markdown(load_demo_model(finetuned.path))
    assert "| objective | fine-tuned for text-classification |" in card  # was "unknown (no run.json)"
    assert "| training data | train.csv, test.csv |" in card and "/tmp/x" not in card
    assert re.search(r"\n\| accuracy \| 0\.9", card)  # the fine-tuned classifier's test metrics


def test_results_table_flattens_and_readme_tables_keep_headings():
    table = results_table({"probe": {"acc": 0.5, "per_class": [1, 2], "cfg": {"lr": 0.1}}, "raw": 3})
    assert table.splitlines()[0] == "| protocol | acc | cfg.lr | value |"
    assert "| raw |  |  | 3 |" in table
    readme = "---\nmodels: [a/b]\n---\n# Card\n## Evaluation\n| metric | value |\n|---|---|\n| acc | 0.9 |\n" \
             "```\n| not | a table |\n```\ntext\n"
    assert readme_tables(readme) == "### Evaluation\n| metric | value |\n|---|---|\n| acc | 0.9 |"

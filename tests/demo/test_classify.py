"""The classifier demo: fine-tuned runs (text and image) and stock classifiers show class probabilities."""

from __future__ import annotations

import logging
import shutil

import pytest
import torch
from gradio_client import handle_file
from PIL import Image
from transformers import BertConfig, BertForMaskedLM, BertForSequenceClassification

from hfssl.demo import Limits, build_demo, load_demo_model
from hfssl.demo.classify import ClassificationTab, classify
from hfssl.demo.loading import encode

from ..cards import make_finetune_run


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory):
    root = tmp_path_factory.mktemp("classifiers")
    return {kind: make_finetune_run(root, f"finetune-{kind}", "alice/tiny").path for kind in ("text", "image")}


@pytest.fixture(scope="module")
def stock_classifier(tmp_path_factory, loaded_mlm):
    """A stock BertForSequenceClassification (3 named classes) saved with the demo MLM's tokenizer."""
    def save(name: str, **config) -> str:
        folder = tmp_path_factory.mktemp(name)
        torch.manual_seed(0)
        bert = BertConfig(vocab_size=len(loaded_mlm.tokenizer), hidden_size=32, num_hidden_layers=1,
                          num_attention_heads=2, intermediate_size=64, max_position_embeddings=64, **config)
        BertForSequenceClassification(bert).save_pretrained(folder)
        loaded_mlm.tokenizer.save_pretrained(folder)
        return str(folder)

    return save


def test_a_finetuned_run_shows_its_class_probabilities(finetuned):
    for modality, path in finetuned.items():
        loaded = load_demo_model(path)
        assert (loaded.kind, loaded.modality) == ("classification", modality)
        item = "A fine film." if modality == "text" else Image.new("L", (20, 20), 128)
        result = classify(loaded, item)
        assert set(result.scores) == {"negative", "positive"}  # the run's id2label, not LABEL_0 / LABEL_1
        assert sum(result.scores.values()) == pytest.approx(1.0) and result.kind == "single-label"
        assert list(result.scores.values()) == sorted(result.scores.values(), reverse=True)


def test_the_probabilities_are_the_models_softmax_on_the_text_it_reads(finetuned):
    loaded = load_demo_model(finetuned["text"])
    encoded = loaded.tokenizer("A fine film.", return_tensors="pt")
    with torch.no_grad():
        expected = loaded.model(**encoded).logits[0].softmax(-1)
    scores = classify(loaded, "A fine film.").scores
    assert [scores[loaded.model.config.id2label[i]] for i in range(2)] == pytest.approx(expected.tolist())


def test_a_text_longer_than_the_model_reads_is_truncated_and_said(finetuned):
    loaded = load_demo_model(finetuned["text"])  # 64 positions
    result = classify(loaded, "word " * 300)
    assert result.truncated and result.read_tokens == 64 and result.input_tokens > 64
    scores, message = ClassificationTab(loaded, Limits()).predict("word " * 300)
    assert len(scores) == 2 and "the model read the first 64" in message
    _, message = ClassificationTab(loaded, Limits()).predict("A short one.")
    assert message.startswith("Top class") and "read the first" not in message


def test_multi_label_and_regression_heads(stock_classifier):
    multi = load_demo_model(stock_classifier("multi", num_labels=3, problem_type="multi_label_classification",
                                             id2label={0: "sports", 1: "politics", 2: "science"}))
    result = classify(multi, "The team won the election for the science prize.")
    assert multi.kind == "classification" and result.kind == "multi-label"
    assert set(result.scores) == {"sports", "politics", "science"} and sum(result.scores.values()) != 1.0
    assert all(0 < p < 1 for p in result.scores.values())
    regression = load_demo_model(stock_classifier("regression", num_labels=1))
    value, message = ClassificationTab(regression, Limits()).predict("Rate this sentence.")
    assert float(value) == pytest.approx(classify(regression, "Rate this sentence.").scores["LABEL_0"], abs=1e-3)
    assert message.startswith("Predicted value")


def test_stock_models_with_a_head_are_encoded_by_their_backbone(stock_classifier, loaded_mlm, tmp_path):
    """The gallery beside a classifier or a stock masked LM compares hidden features, not logits (3 classes, or
    one score per vocabulary entry averaged over tokens)."""
    classifier = load_demo_model(stock_classifier("plain", num_labels=3))
    folder = tmp_path / "stock-mlm"
    BertForMaskedLM(BertConfig(vocab_size=len(loaded_mlm.tokenizer), hidden_size=32, num_hidden_layers=1,
                               num_attention_heads=2, intermediate_size=64)).save_pretrained(folder)
    loaded_mlm.tokenizer.save_pretrained(folder)
    masked_lm = load_demo_model(folder)
    assert masked_lm.kind == "fill-mask"
    for loaded in (classifier, masked_lm):
        batch = loaded.tokenizer(["Open a file.", "Close it."], padding=True, return_tensors="pt")
        features = encode(loaded, dict(batch))
        assert features.shape == (2, 32)
        with torch.no_grad():
            hidden = loaded.model.base_model(**batch).last_hidden_state
        mask = batch["attention_mask"][..., None].float()
        assert torch.allclose(features, (hidden * mask).sum(1) / mask.sum(1), atol=1e-5)


def test_a_pretrained_run_forced_to_classify_names_the_missing_head(mlm_run):
    with pytest.raises(ValueError, match="cannot show the classification demo: the checkpoint has no trained "
                                         "weights for classifier"):
        load_demo_model(mlm_run, kind="classification")


def test_an_image_model_recorded_as_a_text_objective_falls_back_to_the_gallery(mae_run, tmp_path, caplog):
    run = tmp_path / "mislabelled"
    shutil.copytree(mae_run, run)
    (run / "run.json").write_text('{"objective": "mlm"}')
    with caplog.at_level(logging.WARNING):
        loaded = load_demo_model(run)
    assert loaded.kind == "gallery" and "cannot show the fill-mask demo" in caplog.text


def test_the_app_classifies_texts_and_images_through_its_api(finetuned, launch, client_for, tmp_path):
    text_client = client_for(launch(load_demo_model(finetuned["text"]), Limits(max_text_chars=100)))
    label, message = text_client.predict("A fine film.", api_name="/classify")
    assert {c["label"] for c in label["confidences"]} == {"negative", "positive"} and message.startswith("Top class")
    label, message = text_client.predict("   ", api_name="/classify_submit")
    assert not label and "The text is empty" in message
    _, message = text_client.predict("x" * 101, api_name="/classify")
    assert "accepts at most 100" in message
    image_client = client_for(launch(load_demo_model(finetuned["image"])))
    path = tmp_path / "query.png"
    Image.new("RGB", (24, 24), (200, 30, 30)).save(path)
    label, message = image_client.predict(handle_file(str(path)), api_name="/classify")
    assert label["label"] in {"negative", "positive"} and len(label["confidences"]) == 2
    assert "/search_gallery" in image_client.view_api(print_info=False, return_format="dict")["named_endpoints"]


def test_the_page_has_the_classify_tab_first_and_names_the_task(finetuned):
    demo = build_demo(finetuned["image"])
    tabs = [block.label for block in demo.blocks.values() if type(block).__name__ == "Tab"]
    assert tabs[:2] == ["Classify", "Nearest neighbours"]
    header = next(block.value for block in demo.blocks.values() if type(block).__name__ == "Markdown")
    assert header.startswith("# finetune-image\nfine-tuned for `image-classification` · classifier:")


def _prompt_tuned_run(root, tokenizer):
    """A fine-tuned run as `hfssl finetune --peft prompt_tuning` leaves it: adapter/ on base/, no model/."""
    from peft import PromptTuningConfig, get_peft_model

    from hfssl.models import HfsslTextConfig, HfsslTextForSequenceClassification
    from hfssl.training.rundir import RunDirectory

    torch.manual_seed(0)
    config = HfsslTextConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                             intermediate_size=64, max_position_embeddings=64, pad_token_id=tokenizer.pad_token_id,
                             num_labels=2, id2label={0: "negative", 1: "positive"}, label2id={"negative": 0,
                                                                                             "positive": 1})
    run = RunDirectory(root / "prompt-tuned")
    HfsslTextForSequenceClassification(config).save_pretrained(run.path / "base")
    tokenizer.save_pretrained(run.path / "base")
    peft_config = PromptTuningConfig(task_type="SEQ_CLS", num_virtual_tokens=6)
    peft_model = get_peft_model(HfsslTextForSequenceClassification.from_pretrained(run.path / "base"), peft_config)
    peft_model.save_pretrained(run.adapter_dir)
    tokenizer.save_pretrained(run.adapter_dir)
    run.update_manifest(stage="finetune", task="text-classification", modality="text",
                        finetune={"method": "prompt_tuning", "parent": {"path": "runs/parent"}})
    return run, peft_model.eval()


def test_an_adapter_only_run_is_classified_by_its_adapter_on_base(loaded_mlm, tmp_path):
    """Prompt learning cannot merge, so the run has no model/: the demo refused it."""
    run, reference = _prompt_tuned_run(tmp_path, loaded_mlm.tokenizer)
    loaded = load_demo_model(run.path)
    assert (loaded.kind, type(loaded.model).__name__) == ("classification", "PeftModelForSequenceClassification")
    encoded = loaded_mlm.tokenizer("A fine film.", return_tensors="pt")
    with torch.no_grad():
        expected = reference(input_ids=encoded["input_ids"], attention_mask=encoded["attention_mask"]).logits[0]
    scores = classify(loaded, "A fine film.").scores
    assert [scores["negative"], scores["positive"]] == pytest.approx(expected.softmax(-1).tolist(), abs=1e-5)
    result = classify(loaded, "word " * 200)  # 64 positions, 6 of them the virtual tokens
    assert result.truncated and result.read_tokens == 58
    with pytest.raises(ValueError, match="holds a classifier adapter .* Leave out --kind"):
        load_demo_model(run.path, kind="fill-mask")
    with pytest.raises(FileNotFoundError, match="pass the run directory .*loads the adapter on its base/"):
        load_demo_model(run.adapter_dir)


def test_a_peft_wrapped_stock_classifier_is_encoded_by_its_backbone(stock_classifier):
    from peft import LoraConfig, get_peft_model

    loaded = load_demo_model(stock_classifier("wrapped", num_labels=3))
    bert = loaded.model
    loaded.model = get_peft_model(bert, LoraConfig(task_type="SEQ_CLS", r=2, target_modules=["query"])).eval()
    batch = dict(loaded.tokenizer(["Open a file.", "Close it."], padding=True, return_tensors="pt"))
    with torch.no_grad():
        hidden = bert.base_model(**batch).last_hidden_state  # LoRA starts as a no-op
    mask = batch["attention_mask"][..., None].float()
    assert torch.allclose(encode(loaded, batch), (hidden * mask).sum(1) / mask.sum(1), atol=1e-5)

"""hfssl models used from Python exactly as any transformers model: vocabulary resizing, the Trainer with gradient
accumulation, and what a classifier records for the pipelines."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from datasets import Dataset
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import (
    DataCollatorWithPadding,
    PreTrainedTokenizerFast,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    pipeline,
)

import hfssl  # noqa: F401  (registers the Auto classes)
from hfssl.models import (
    HfsslTextForCausalLM,
    HfsslTextForContrastiveLearning,
    HfsslTextForMaskedLM,
    HfsslTextForSequenceClassification,
    HfsslVisionForImageClassification,
    HfsslVisionForMaskedImageModeling,
)
from hfssl.models.cpu_gemm import Linear

from .model_tester import TINY_VOCAB, tiny_text_config, tiny_vision_config

NEW_IDS = torch.tensor([[TINY_VOCAB + 2, 5, 6, 7], [8, 9, TINY_VOCAB + 1, 10]])  # two ids the old vocabulary lacks


def _new_token_labels() -> torch.Tensor:
    labels = torch.full_like(NEW_IDS, -100)
    labels[0, 0], labels[1, 2] = TINY_VOCAB + 2, TINY_VOCAB + 1
    return labels


@pytest.mark.parametrize("method", ["byol", "moco"])
def test_resize_token_embeddings_resizes_the_momentum_encoder_too(tmp_path, method):
    """Only the online backbone was resized: the EMA copy kept the old vocabulary and the first batch with a new
    token failed in its embedding lookup ("the tokenizer does not match the model")."""
    torch.manual_seed(0)
    model = HfsslTextForContrastiveLearning(tiny_text_config(ssl={"method": method})).train()
    old_target = model.target_model.get_input_embeddings().weight.detach().clone()
    model.resize_token_embeddings(TINY_VOCAB + 5, pad_to_multiple_of=8)
    online, target = model.model.get_input_embeddings(), model.target_model.get_input_embeddings()
    assert target.weight.shape == online.weight.shape == (72, 32)  # 66 tokens padded to a multiple of 8
    torch.testing.assert_close(target.weight[:TINY_VOCAB], old_target)  # the EMA rows are kept
    torch.testing.assert_close(target.weight[TINY_VOCAB:], online.weight[TINY_VOCAB:])  # new ones start equal
    assert not target.weight.requires_grad
    model(input_ids=NEW_IDS).loss.backward()
    model.momentum_update(1, 10)
    model.save_pretrained(tmp_path)
    loaded = HfsslTextForContrastiveLearning.from_pretrained(tmp_path)
    torch.testing.assert_close(loaded.target_model.get_input_embeddings().weight, target.weight)


def test_resize_token_embeddings_resizes_the_mlm_head_of_a_hybrid_model():
    """mlm+simcse: `get_output_embeddings` gave the whole MLM head, so resizing raised "'HfsslTextMaskedLMHead' object
    has no attribute 'weight'"."""
    torch.manual_seed(0)
    model = HfsslTextForContrastiveLearning(tiny_text_config(ssl={"method": "simcse"}, mlm_weight=0.5)).train()
    decoder = model.lm_head.decoder.weight.detach().clone()
    model.resize_token_embeddings(TINY_VOCAB + 3)
    head = model.get_output_embeddings()
    assert head is model.lm_head.decoder and head.weight.shape == (TINY_VOCAB + 3, 32) and head.bias.shape == (64,)
    torch.testing.assert_close(head.weight[:TINY_VOCAB], decoder)  # its own (untied) rows are kept
    assert model.config.vocab_size == TINY_VOCAB + 3
    loss = model(input_ids=NEW_IDS, labels=_new_token_labels()).loss
    loss.backward()
    assert torch.isfinite(loss) and head.weight.grad[TINY_VOCAB + 1:].abs().sum() > 0
    assert HfsslTextForContrastiveLearning(tiny_text_config(ssl={"method": "simcse"})).get_output_embeddings() is None


@pytest.mark.parametrize("cls", [HfsslTextForMaskedLM, HfsslTextForCausalLM])
def test_resized_language_models_stay_tied_and_train_on_the_new_tokens(tmp_path, cls):
    torch.manual_seed(0)
    model = cls(tiny_text_config(is_causal=cls is HfsslTextForCausalLM)).train()
    model.resize_token_embeddings(TINY_VOCAB + 3)
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight
    assert type(model.get_output_embeddings()) is Linear  # still the oneDNN-capable layer, not transformers' nn.Linear
    model(input_ids=NEW_IDS, labels=_new_token_labels()).loss.backward()
    model.save_pretrained(tmp_path)
    loaded = cls.from_pretrained(tmp_path).eval()
    assert loaded.get_output_embeddings().weight is loaded.get_input_embeddings().weight
    assert loaded(input_ids=NEW_IDS).logits.shape == (2, 4, TINY_VOCAB + 3)


class _FirstLog(TrainerCallback):
    def __init__(self):
        self.logs: list[dict] = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        self.logs.append(logs)


def _text_rows() -> dict:
    return {"input_ids": [[5, 6, 7, 8]] * 8, "attention_mask": [[1] * 4] * 8, "labels": [1] * 8}


def _image_rows() -> dict:
    pixels = np.ones((8, 3, 16, 16), dtype="float32") * np.linspace(-1, 1, 16, dtype="float32")
    return {"pixel_values": pixels, "labels": [1] * 8}


@pytest.mark.parametrize("make, rows", [
    (lambda: HfsslTextForSequenceClassification(tiny_text_config(classifier_dropout=0.0)), _text_rows),
    (lambda: HfsslVisionForImageClassification(tiny_vision_config(num_labels=2)), _image_rows),
    (lambda: HfsslVisionForMaskedImageModeling(tiny_vision_config()), _image_rows),  # a batch that keeps its labels
], ids=["text-classifier", "image-classifier", "mae"])
def test_gradient_accumulation_gives_the_loss_and_gradients_of_one_large_batch(tmp_path, make, rows):
    """The forward takes `**kwargs`, so the Trainer took the loss for one normalized by `num_items_in_batch` and did
    not divide it by the accumulation steps: with 2 steps the classifiers' loss and gradients were doubled."""
    data = Dataset.from_dict(rows()).with_format("torch")
    seen = {}
    for batch, steps in ((4, 1), (2, 2)):
        torch.manual_seed(0)
        log = _FirstLog()
        args = TrainingArguments(output_dir=str(tmp_path), max_steps=1, per_device_train_batch_size=batch,
                                 gradient_accumulation_steps=steps, learning_rate=0.0, logging_steps=1,
                                 report_to="none", save_strategy="no", use_cpu=True, remove_unused_columns=False)
        torch.manual_seed(0)
        Trainer(model=make(), args=args, train_dataset=data, callbacks=[log]).train()
        first = next(entry for entry in log.logs if "loss" in entry)
        seen[steps] = (float(first["loss"]), float(first["grad_norm"]))
    assert seen[2] == pytest.approx(seen[1], rel=1e-3)


def _word_tokenizer() -> PreTrainedTokenizerFast:
    words = ["[PAD]", "[UNK]"] + [f"w{i}" for i in range(TINY_VOCAB - 2)]
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="[PAD]", unk_token="[UNK]", model_max_length=64)


def test_a_classifier_trained_with_multi_label_targets_records_it_for_the_pipeline(tmp_path):
    """The problem type inferred from float labels was never written to the config (transformers' heads write it), so
    the saved multi-label classifier was scored by the text-classification pipeline with a softmax over its labels."""
    torch.manual_seed(0)
    tokenizer = _word_tokenizer()
    model = HfsslTextForSequenceClassification(tiny_text_config(num_labels=3))
    batch = tokenizer(["w1 w2 w3", "w4 w5"], return_tensors="pt", padding=True)
    with pytest.raises(ValueError, match="needs labels of shape"):
        model(**batch, labels=torch.tensor([1.0, 0.0]))  # bad labels record nothing
    assert model.config.problem_type is None
    model(**batch, labels=torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])).loss.backward()
    assert model.config.problem_type == "multi_label_classification"
    model.eval().save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    scores = pipeline("text-classification", model=str(tmp_path), top_k=None)(["w1 w2 w3"])[0]
    with torch.no_grad():
        logits = model(**tokenizer(["w1 w2 w3"], return_tensors="pt")).logits[0]
    expected = dict(zip(["LABEL_0", "LABEL_1", "LABEL_2"], logits.sigmoid().tolist()))
    assert {s["label"]: s["score"] for s in scores} == pytest.approx(expected, abs=1e-5)

    image_model = HfsslVisionForImageClassification(tiny_vision_config(num_labels=1))
    image_model(pixel_values=torch.randn(2, 3, 16, 16), labels=torch.tensor([0.5, 1.5]))
    assert image_model.config.problem_type == "regression"


def test_a_classifier_trains_and_evaluates_with_the_trainer_and_compute_metrics(tmp_path):
    torch.manual_seed(0)
    tokenizer = _word_tokenizer()
    texts = ["w1 w2 w3", "w4 w5", "w6 w7 w8 w9", "w10"] * 3
    data = Dataset.from_dict({"text": texts, "label": [0, 1, 0, 1] * 3}).map(
        lambda rows: tokenizer(rows["text"]), batched=True, remove_columns=["text"])
    model = HfsslTextForSequenceClassification(tiny_text_config(num_labels=2))
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=3, per_device_train_batch_size=4,
                             per_device_eval_batch_size=5, report_to="none", save_strategy="no", use_cpu=True)

    def accuracy(prediction) -> dict:
        return {"accuracy": float((prediction.predictions.argmax(-1) == prediction.label_ids).mean())}

    trainer = Trainer(model=model, args=args, train_dataset=data, eval_dataset=data, compute_metrics=accuracy,
                      data_collator=DataCollatorWithPadding(tokenizer))
    assert np.isfinite(trainer.train().training_loss)
    metrics = trainer.evaluate()
    assert 0.0 <= metrics["eval_accuracy"] <= 1.0 and np.isfinite(metrics["eval_loss"])
    assert model.num_parameters() > model.num_parameters(exclude_embeddings=True)


def test_the_joint_embedding_forward_refuses_output_flags_it_cannot_honour():
    """They were accepted and ignored: hidden_states / attentions were never on the output."""
    from hfssl.models import HfsslVisionForContrastiveLearning

    text = HfsslTextForContrastiveLearning(tiny_text_config(ssl={"method": "simcse"}))
    vision = HfsslVisionForContrastiveLearning(tiny_vision_config(ssl={"method": "simclr"}))
    pixels = torch.zeros(2, vision.config.num_channels, vision.config.image_size, vision.config.image_size)
    with pytest.raises(ValueError, match="not output_hidden_states. Load the backbone for them: AutoModel"):
        text(input_ids=NEW_IDS.clamp(max=TINY_VOCAB - 1), output_hidden_states=True)
    with pytest.raises(ValueError, match="not output_attentions"):
        vision(pixel_values=pixels, output_attentions=True)
    assert text(input_ids=NEW_IDS.clamp(max=TINY_VOCAB - 1), output_hidden_states=False).loss is not None

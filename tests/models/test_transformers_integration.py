"""The parts of the transformers API a user reaches for beyond forward and save/load: output_attentions, config-level
output flags, static-cache generation, and the image pipelines on a grayscale model."""

import math

import numpy as np
import pytest
import torch
import transformers
from PIL import Image
from transformers import AutoImageProcessor, pipeline

import hfssl  # noqa: F401  (registers the Auto classes)
from hfssl.models import (
    HfsslTextForCausalLM,
    HfsslTextForMaskedLM,
    HfsslTextForSequenceClassification,
    HfsslVisionForImageClassification,
    HfsslVisionForMaskedImageModeling,
    HfsslVisionModel,
)

from .model_tester import TINY_VOCAB, tiny_text_config, tiny_vision_config

VOCAB = TINY_VOCAB


def padded_batch():
    ids = torch.randint(3, VOCAB, (2, 7), generator=torch.Generator().manual_seed(0))
    mask = torch.tensor([[1] * 7, [1] * 4 + [0] * 3])
    return ids, mask


def first_layer_weights(model, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Layer 0's softmax(q k^T / sqrt(d)) by hand, for learned positions: (b, heads, t, t)."""
    backbone, (b, t) = model.base_model, ids.shape
    x = backbone.embed_tokens(ids) + backbone.embed_positions(torch.arange(t))[None]
    layer = backbone.layers[0]
    q, k, _ = layer.attn.qkv(layer.norm1(x)).view(b, t, 3, 4, 8).permute(2, 0, 3, 1, 4)  # (b, h, t, d)
    allowed = mask[:, None, None, :].bool()
    if model.config.is_causal:
        allowed = allowed & torch.ones(t, t, dtype=torch.bool).tril()
    allowed = allowed | ~allowed.any(dim=-1, keepdim=True)
    return (q @ k.transpose(-2, -1) / math.sqrt(8)).masked_fill(~allowed, float("-inf")).softmax(dim=-1)


@pytest.mark.parametrize("cls", [HfsslTextForMaskedLM, HfsslTextForCausalLM, HfsslTextForSequenceClassification])
def test_text_models_return_the_attention_weights_of_every_layer(cls):
    torch.manual_seed(0)
    model = cls(tiny_text_config(is_causal=cls is HfsslTextForCausalLM, position_embedding_type="learned")).eval()
    ids, mask = padded_batch()
    with torch.no_grad():
        plain = model(input_ids=ids, attention_mask=mask)
        out = model(input_ids=ids, attention_mask=mask, output_attentions=True)
    assert plain.attentions is None
    assert len(out.attentions) == 2 and all(a.shape == (2, 4, 7, 7) for a in out.attentions)
    torch.testing.assert_close(out.attentions[0], first_layer_weights(model, ids, mask))
    torch.testing.assert_close(out.logits, plain.logits)
    assert not out.attentions[1][1, :, :4, 4:].any()  # real queries give padding no weight


def test_masked_lm_with_labels_returns_attentions_and_the_same_loss():
    torch.manual_seed(0)
    model = HfsslTextForMaskedLM(tiny_text_config()).eval()
    ids, _ = padded_batch()
    labels = torch.full_like(ids, -100)
    labels[:, 2] = ids[:, 2]
    with torch.no_grad():
        expected = model(input_ids=ids, labels=labels).loss
        out = model(input_ids=ids, labels=labels, output_attentions=True)  # the sparse last layer steps aside
    torch.testing.assert_close(out.loss, expected)
    assert all(a.shape == (2, 4, 7, 7) for a in out.attentions)


def test_output_flags_given_to_from_pretrained_are_the_defaults(tmp_path):
    HfsslTextForMaskedLM(tiny_text_config()).save_pretrained(tmp_path / "text")
    HfsslVisionForImageClassification(tiny_vision_config()).save_pretrained(tmp_path / "vision")
    flags = {"output_hidden_states": True, "output_attentions": True}
    text = HfsslTextForMaskedLM.from_pretrained(tmp_path / "text", attn_implementation="eager", **flags)
    vision = HfsslVisionForImageClassification.from_pretrained(tmp_path / "vision", attn_implementation="eager", **flags)
    for out in (text(input_ids=padded_batch()[0]), vision(pixel_values=torch.randn(2, 3, 16, 16))):
        assert len(out.hidden_states) == 3 and len(out.attentions) == 2


@pytest.mark.parametrize("position_embedding_type", ["rope", "learned"])
def test_static_cache_generates_what_the_dynamic_cache_does(position_embedding_type):
    torch.manual_seed(0)
    model = HfsslTextForCausalLM(tiny_text_config(is_causal=True, position_embedding_type=position_embedding_type)).eval()
    ids = torch.tensor([[0, 0, 0, 5, 6, 7], [3, 4, 5, 6, 7, 8]])
    mask = torch.tensor([[0, 0, 0, 1, 1, 1], [1] * 6])
    for kwargs in ({}, {"num_beams": 3}):
        settings = {"attention_mask": mask, "max_new_tokens": 8, "pad_token_id": 0, "do_sample": False, **kwargs}
        dynamic = model.generate(ids, **settings)
        static = model.generate(ids, cache_implementation="static", **settings)
        torch.testing.assert_close(static, dynamic)


def test_vision_models_return_the_encoders_attention_weights():
    torch.manual_seed(0)
    config = tiny_vision_config(num_labels=3)
    pixels = torch.randn(2, 3, 16, 16)
    bare = HfsslVisionModel(config).eval()
    out = bare(pixels, output_attentions=True)
    assert len(out.attentions) == 2 and all(a.shape == (2, 4, 17, 17) for a in out.attentions)
    torch.testing.assert_close(out.attentions[0].sum(dim=-1), torch.ones(2, 4, 17))
    torch.testing.assert_close(out.last_hidden_state, bare(pixels).last_hidden_state)
    mae = HfsslVisionForMaskedImageModeling(config).eval()
    assert all(a.shape == (2, 4, 5, 5) for a in mae(pixels, output_attentions=True).attentions)  # 4 visible + cls
    classifier = HfsslVisionForImageClassification(config).eval()
    assert len(classifier(pixels, output_attentions=True).attentions) == 2


def test_pooler_output_is_the_pooled_features():
    for pooling in ("cls", "mean"):
        model = HfsslVisionModel(tiny_vision_config(pooling=pooling)).eval()
        pixels = torch.randn(2, 3, 16, 16)
        torch.testing.assert_close(model(pixels).pooler_output, model.get_features(pixels))
        assert model(pixels, mask_ratio=0.5).pooler_output is None  # masked: not the image's features


def test_rgb_pixels_given_to_a_grayscale_model_are_its_luma():
    model = HfsslVisionModel(tiny_vision_config(num_channels=1)).eval()
    rgb = torch.randn(2, 3, 16, 16)
    luma = (0.299 * rgb[:, 0] + 0.587 * rgb[:, 1] + 0.114 * rgb[:, 2])[:, None]
    torch.testing.assert_close(model(rgb).last_hidden_state, model(luma).last_hidden_state)


def test_image_pipelines_run_a_grayscale_model(tmp_path):
    """Image pipelines load every image as RGB; a grayscale model takes its luma. The processor normalizes with one
    mean and std (scalars), so it accepts grayscale and RGB images alike."""
    torch.manual_seed(0)
    model = HfsslVisionForImageClassification(tiny_vision_config(num_channels=1, pooling="mean", num_labels=3)).eval()
    model.save_pretrained(tmp_path)
    processor_cls = getattr(transformers, "ViTImageProcessorPil", None) or transformers.ViTImageProcessor
    processor_cls(size={"height": 16, "width": 16}, image_mean=0.5, image_std=0.25).save_pretrained(tmp_path)
    image = Image.fromarray(np.random.RandomState(0).randint(0, 256, (20, 24), dtype=np.uint8), mode="L")
    pixels = AutoImageProcessor.from_pretrained(tmp_path)(image, return_tensors="pt")["pixel_values"]  # (1, 1, 16, 16)
    features = pipeline("image-feature-extraction", model=str(tmp_path))
    pooled = torch.tensor(features(image, pool=True))
    torch.testing.assert_close(pooled, model.get_features(pixels), atol=1e-5, rtol=1e-4)
    assert np.array(features(image)).shape == (1, 17, 32)
    scores = pipeline("image-classification", model=str(tmp_path))(image, top_k=3)
    expected = model(pixel_values=pixels).logits.softmax(dim=-1)[0]
    assert sorted(s["score"] for s in scores) == pytest.approx(sorted(expected.tolist()), abs=1e-5)

"""Bad inputs get a ValueError that names the input, the shape it needs and the fix, not a deep traceback or a
silently wrong result."""

import pytest
import torch

from hfssl.models import (
    HfsslTextForCausalLM,
    HfsslTextForMaskedLM,
    HfsslTextForSequenceClassification,
    HfsslVisionForImageClassification,
    HfsslVisionForMaskedImageModeling,
    HfsslVisionModel,
)

from .model_tester import tiny_text_config, tiny_vision_config

VOCAB = 50
IDS = torch.randint(0, VOCAB, (2, 8), generator=torch.Generator().manual_seed(0))
PIXELS = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))


def text_model(cls=HfsslTextForMaskedLM, **overrides):
    torch.manual_seed(0)
    fields = {"vocab_size": VOCAB, "num_hidden_layers": 1, "max_position_embeddings": 16,
              "is_causal": cls is HfsslTextForCausalLM, "num_labels": 3}
    return cls(tiny_text_config(**{**fields, **overrides})).eval()


def vision_model(cls=HfsslVisionModel, **overrides):
    torch.manual_seed(0)
    return cls(tiny_vision_config(**{"num_hidden_layers": 1, "num_labels": 3, **overrides})).eval()


@pytest.mark.parametrize(
    "cls,inputs,message",
    [
        (HfsslTextForMaskedLM, {"input_ids": IDS[0]}, r"input_ids must be an integer tensor of shape \(batch, sequence\)"),
        (HfsslTextForMaskedLM, {"input_ids": IDS.float()}, "dtype float32"),
        (HfsslTextForMaskedLM, {"input_ids": IDS + VOCAB}, "vocabulary has 50 tokens .*resize_token_embeddings"),
        (HfsslTextForMaskedLM, {"inputs_embeds": torch.randn(2, 8, 31)}, r"hidden_size=32"),
        # An all-ones mask of the wrong length used to be ignored without a word.
        (HfsslTextForMaskedLM, {"input_ids": IDS, "attention_mask": torch.ones(2, 5)}, r"attention_mask .* \(2, 8\)"),
        (HfsslTextForMaskedLM, {"input_ids": IDS, "attention_mask": torch.ones(3, 8)}, r"got shape \(3, 8\)"),
        (HfsslTextForCausalLM, {"input_ids": IDS, "attention_mask": torch.ones(2, 8, 8)}, "attention_mask"),
        (HfsslTextForMaskedLM, {"input_ids": IDS, "position_ids": torch.arange(5)[None]}, "position_ids"),
        # MLM labels of another length used to give a loss at the wrong positions.
        (HfsslTextForMaskedLM, {"input_ids": IDS, "labels": IDS[:, :5]}, r"labels .* shaped like input_ids, .* \(2, 8\)"),
        (HfsslTextForMaskedLM, {"input_ids": IDS, "labels": IDS.float()}, "labels must be an integer tensor"),
        (HfsslTextForCausalLM, {"input_ids": IDS, "labels": IDS[:1]}, r"labels .* \(2, 8\)"),
        (HfsslTextForSequenceClassification, {"input_ids": IDS, "labels": torch.tensor([[0], [1]])},
         r"labels of shape \(batch,\) = \(2,\)"),
        (HfsslTextForSequenceClassification, {"input_ids": IDS, "labels": torch.tensor([0.0, 1.0])},
         r"\(batch, num_labels\) = \(2, 3\)"),
        (HfsslTextForCausalLM, {"input_ids": torch.zeros(1, 17, dtype=torch.long)}, "max_new_tokens <= 16"),
    ],
)
def test_bad_text_inputs_are_named(cls, inputs, message):
    model = text_model(cls, position_embedding_type="learned")
    with pytest.raises(ValueError, match=message):
        model(**inputs)


@pytest.mark.parametrize(
    "cls,inputs,message",
    [
        (HfsslVisionModel, {"pixel_values": PIXELS[0]}, r"\(batch, num_channels, height, width\), got shape \(3, 16, 16\)"),
        (HfsslVisionModel, {"pixel_values": PIXELS[None]}, r"got shape \(1, 2, 3, 16, 16\)"),
        (HfsslVisionModel, {"pixel_values": list(PIXELS)}, "got a list"),
        (HfsslVisionModel, {"pixel_values": (PIXELS * 50).to(torch.uint8)}, "floating point .* image processor"),
        (HfsslVisionModel, {"pixel_values": PIXELS.permute(0, 2, 3, 1)}, r"channels last\?"),
        (HfsslVisionModel, {"pixel_values": PIXELS[:, :1]}, "has 1 channels .* num_channels=3"),
        (HfsslVisionForMaskedImageModeling, {"pixel_values": PIXELS[0]}, "pixel_values must be a tensor"),
        (HfsslVisionForImageClassification, {"pixel_values": PIXELS, "labels": torch.tensor([1])},
         r"labels of shape \(batch,\) = \(2,\)"),
    ],
)
def test_bad_image_inputs_are_named(cls, inputs, message):
    with pytest.raises(ValueError, match=message):
        vision_model(cls)(**inputs)


def test_pixels_of_another_float_dtype_are_cast_to_the_models():
    model = vision_model()
    expected = model(PIXELS).last_hidden_state
    torch.testing.assert_close(model(PIXELS.double()).last_hidden_state, expected)
    half = model.to(torch.bfloat16)(PIXELS).last_hidden_state  # float32 pixels, bfloat16 weights
    assert half.dtype == torch.bfloat16
    torch.testing.assert_close(half.float(), expected, atol=0.1, rtol=0.05)

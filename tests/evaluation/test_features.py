"""Feature extraction: batched, no-grad, deterministic, for hfssl encoders and stock transformers encoders."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from hfssl.data.images import load_image_dataset
from hfssl.data.pixels import build_image_processor
from hfssl.evaluation.features import (
    ImageInputs,
    TextInputs,
    encoder_features,
    extract_features,
    image_inputs_from_processor,
    input_encoder,
    modality_of,
)
from hfssl.models import (
    HfsslTextConfig,
    HfsslTextForMaskedLM,
    HfsslVisionConfig,
    HfsslVisionModel,
)

from .conftest import tiny_vision_config

TEXTS = ["a short one", "a somewhat longer text with more words in it", "mid length text", "x"]


def _pixels(n: int = 10, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 1, 8, 8), dtype=np.uint8)


def test_image_features_match_get_features_and_do_not_depend_on_batching():
    config = tiny_vision_config()
    config.hidden_dropout_prob = 0.5  # dropout must be off during extraction
    model = HfsslVisionModel(config).train()
    pixels = _pixels()
    small = extract_features(model, pixels, ImageInputs(), batch_size=3, progress=False)
    large = extract_features(model, pixels, ImageInputs(), batch_size=64, progress=False)
    assert small.shape == (10, 32) and not small.requires_grad
    torch.testing.assert_close(small, large)
    model.eval()
    with torch.no_grad():
        expected = model.get_features(torch.as_tensor(pixels).float() / 255)
    torch.testing.assert_close(small, expected)
    assert model.training is False  # eval() above; now check restoration from train mode
    model.train()
    extract_features(model, pixels, ImageInputs(), progress=False)
    assert model.training


def test_text_features_ignore_padding(tiny_tokenizer):
    config = HfsslTextConfig(vocab_size=len(tiny_tokenizer), hidden_size=32, num_hidden_layers=1,
                             num_attention_heads=2, intermediate_size=64, pad_token_id=tiny_tokenizer.pad_token_id)
    model = HfsslTextForMaskedLM(config)
    to_inputs = input_encoder(model, tokenizer=tiny_tokenizer)
    assert isinstance(to_inputs, TextInputs) and to_inputs.max_length == 64
    together = extract_features(model, TEXTS, to_inputs, batch_size=4, progress=False)
    alone = extract_features(model, TEXTS, to_inputs, batch_size=1, progress=False)
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-4)


def test_texts_are_truncated_to_the_model_length(tiny_tokenizer):
    config = HfsslTextConfig(vocab_size=len(tiny_tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                             intermediate_size=64, max_position_embeddings=16, position_embedding_type="learned")
    model = HfsslTextForMaskedLM(config)
    to_inputs = input_encoder(model, tokenizer=tiny_tokenizer)
    assert to_inputs.max_length == 16
    features = extract_features(model, ["word " * 500], to_inputs, progress=False)  # would overflow positions
    assert features.shape == (1, 32)


def _tiny_bert():
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    return BertModel(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                intermediate_size=32, max_position_embeddings=32)).eval()


@pytest.mark.parametrize("pooling", ["mean", "cls", "pooler_output"])
def test_stock_transformers_encoder_with_a_pooling_rule(pooling):
    model = _tiny_bert()
    inputs = {"input_ids": torch.tensor([[2, 5, 7, 0], [2, 9, 0, 0]]),
              "attention_mask": torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])}
    with torch.no_grad():
        features = encoder_features(model, inputs, pooling)
        outputs = model(**inputs)
    assert features.shape == (2, 16)
    if pooling == "mean":  # padding excluded
        torch.testing.assert_close(features[1], outputs.last_hidden_state[1, :2].mean(dim=0))
    elif pooling == "cls":
        torch.testing.assert_close(features, outputs.last_hidden_state[:, 0])
    else:
        torch.testing.assert_close(features, outputs.pooler_output)


def test_stock_encoder_without_pooler_explains_the_fix():
    from transformers import ViTConfig, ViTModel

    model = ViTModel(ViTConfig(image_size=8, patch_size=4, num_channels=1, hidden_size=16, num_hidden_layers=1,
                               num_attention_heads=2, intermediate_size=32), add_pooling_layer=False)
    assert modality_of(model) == "image"
    with pytest.raises(ValueError, match="pooling='mean' or 'cls'"):
        encoder_features(model, {"pixel_values": torch.zeros(1, 1, 8, 8)}, "pooler_output")


def test_image_inputs_reproduce_the_saved_image_processor():
    processor = build_image_processor(8, 1, mean=[0.3], std=[0.35])
    images = [Image.fromarray(np.random.default_rng(i).integers(0, 256, (12, 10), dtype=np.uint8)) for i in range(3)]
    import datasets

    dataset = datasets.Dataset.from_dict({"image": images}, features=datasets.Features({"image": datasets.Image()}))
    loaded, _ = load_image_dataset(dataset=dataset, image_size=8, num_channels=1)
    ours = image_inputs_from_processor(processor)(np.stack(loaded["pixel_values"]))["pixel_values"]
    theirs = processor(images=images, return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(ours, theirs.float(), atol=1e-5, rtol=1e-5)


def test_modality_follows_the_main_input():
    assert modality_of(HfsslVisionModel(tiny_vision_config())) == "image"
    assert modality_of(HfsslTextForMaskedLM(HfsslTextConfig(vocab_size=10, hidden_size=8, num_hidden_layers=1,
                                                            num_attention_heads=2, intermediate_size=8))) == "text"
    with pytest.raises(ValueError, match="tokenizer"):
        input_encoder(HfsslTextForMaskedLM(HfsslTextConfig(vocab_size=10, hidden_size=8, num_hidden_layers=1,
                                                           num_attention_heads=2, intermediate_size=8)))
    assert isinstance(input_encoder(HfsslVisionModel(HfsslVisionConfig(image_size=8, patch_size=4))), ImageInputs)

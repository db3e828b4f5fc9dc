"""Frozen features from any encoder: batched, no-grad, deterministic, with a progress bar.

hfssl encoders offer `get_features(...) -> (batch, hidden)`; stock transformers encoders (a BERT or
ViT loaded with `AutoModel`) get a pooling rule instead: "mean" (mean of the last hidden states over
real tokens), "cls" (the first token) or "pooler_output" (the model's own pooler).

Raw examples become model inputs through an input encoder: `TextInputs` (a tokenizer, truncating to
the model's maximum length) or `ImageInputs` (uint8 pixels rescaled and normalized as the run's image
processor does). Both are plain callables, reused by supervised training and the online probe.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

logger = logging.getLogger(__name__)

POOLING_RULES = ("mean", "cls", "pooler_output")

Examples = Sequence[str] | np.ndarray | torch.Tensor
InputEncoder = Callable[[Any], dict[str, torch.Tensor]]


@dataclass
class TextInputs:
    """Texts -> {"input_ids": (b, t), "attention_mask": (b, t)}, padded on the right to the longest text of the batch.

    Padding always goes on the right, whatever the tokenizer's `padding_side`: stock encoders (BERT, GPT-2) number
    positions from the first column, so left padding would shift every real token's position by the batch's padding
    and make "cls" pooling read a pad token; a text's features would then depend on the texts batched with it.
    A tokenizer without a pad token (GPT-2's) is padded with its eos id (else 0): the attention mask hides those ids.
    """

    tokenizer: Any
    max_length: int

    @property
    def pad_id(self) -> int:
        """The id that fills padded positions: the pad token's, else eos (GPT-2 has no pad token), else 0."""
        return next((i for i in (self.tokenizer.pad_token_id, self.tokenizer.eos_token_id) if i is not None), 0)

    def __call__(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        encoded = self.tokenizer(list(texts), truncation=True, max_length=self.max_length, return_token_type_ids=False,
                                 return_attention_mask=True)
        pad_id = self.pad_id
        width = max((len(ids) for ids in encoded["input_ids"]), default=0)
        input_ids = torch.full((len(encoded["input_ids"]), width), pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(encoded["input_ids"]), width), dtype=torch.long)
        for row, (ids, mask) in enumerate(zip(encoded["input_ids"], encoded["attention_mask"])):
            input_ids[row, : len(ids)] = torch.as_tensor(ids, dtype=torch.long)
            attention_mask[row, : len(mask)] = torch.as_tensor(mask, dtype=torch.long)
        return {"input_ids": input_ids, "attention_mask": attention_mask}


@dataclass
class ImageInputs:
    """uint8 pixels (b, c, h, w) in 0..255 -> {"pixel_values": (b, c, h, w) float32}: x * rescale, then (x - mean) / std."""

    rescale_factor: float = 1 / 255
    image_mean: Sequence[float] | None = None
    image_std: Sequence[float] | None = None

    def __call__(self, pixels: np.ndarray | torch.Tensor) -> dict[str, torch.Tensor]:
        x = torch.as_tensor(np.asarray(pixels) if not isinstance(pixels, torch.Tensor) else pixels)
        x = x.float() * self.rescale_factor  # (b, c, h, w)
        if self.image_mean is not None and self.image_std is not None:
            if len(self.image_mean) != x.shape[1]:
                raise ValueError(
                    f"The image processor normalizes {len(self.image_mean)} channel(s) but the pixels have "
                    f"{x.shape[1]}; load the images with the model's num_channels."
                )
            mean = torch.tensor(self.image_mean, dtype=x.dtype).view(1, -1, 1, 1)
            std = torch.tensor(self.image_std, dtype=x.dtype).view(1, -1, 1, 1)
            x = (x - mean) / std
        return {"pixel_values": x}


def modality_of(model: nn.Module) -> str:
    """"image" for encoders that take `pixel_values`, "text" for those that take `input_ids`."""
    name = getattr(model, "main_input_name", "input_ids")
    if name == "pixel_values":
        return "image"
    if name == "input_ids":
        return "text"
    raise ValueError(f"{type(model).__name__} takes {name!r}; hfssl evaluates text (input_ids) and image "
                     f"(pixel_values) encoders only.")


def text_max_length(model: nn.Module, tokenizer: Any) -> int:
    """The longest input both the tokenizer and the model's position range allow."""
    limits = [getattr(model.config, "max_position_embeddings", None), getattr(tokenizer, "model_max_length", None)]
    limits = [int(n) for n in limits if isinstance(n, (int, float)) and 0 < n < 1_000_000]
    return min(limits) if limits else 512


def image_inputs_from_processor(image_processor: Any | None) -> ImageInputs:
    """ImageInputs that repeat `image_processor`'s rescale and normalize steps ([0, 1] pixels when None).

    Resizing is not repeated: the pixels come from `hfssl.data.images.load_image_dataset`, which
    resizes with the same bicubic filter as the saved processor.
    """
    if image_processor is None:
        return ImageInputs()
    rescale = getattr(image_processor, "rescale_factor", 1 / 255) if getattr(image_processor, "do_rescale", True) else 1.0
    if not getattr(image_processor, "do_normalize", True):
        return ImageInputs(rescale)
    from ..data.pixels import processor_stats

    return ImageInputs(rescale, *processor_stats(image_processor))


def input_encoder(model: nn.Module, tokenizer: Any = None, image_processor: Any = None) -> InputEncoder:
    """The input encoder that fits `model`: TextInputs for text encoders, ImageInputs for image encoders."""
    if modality_of(model) == "image":
        return image_inputs_from_processor(image_processor)
    if tokenizer is None:
        raise ValueError(f"{type(model).__name__} is a text encoder: pass the tokenizer saved with it.")
    return TextInputs(tokenizer, text_max_length(model, tokenizer))


def pool_outputs(outputs: Any, attention_mask: torch.Tensor | None, pooling: str) -> torch.Tensor:
    """Encoder outputs -> (b, hidden) by a pooling rule; `attention_mask` (b, t) excludes padding from "mean"."""
    if pooling == "pooler_output":
        pooled = getattr(outputs, "pooler_output", None)
        if pooled is None:
            raise ValueError("pooling='pooler_output' but this model has no pooler; use pooling='mean' or 'cls'.")
        return pooled
    hidden = outputs.last_hidden_state  # (b, t, hidden)
    if pooling == "cls":
        return hidden[:, 0]
    if pooling != "mean":
        raise ValueError(f"Unknown pooling {pooling!r}; valid: {', '.join(POOLING_RULES)}.")
    if attention_mask is None:
        return hidden.mean(dim=1)
    mask = attention_mask.to(hidden.dtype)[..., None]  # (b, t, 1)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


def encoder_features(model: nn.Module, inputs: dict[str, torch.Tensor], pooling: str | None = None) -> torch.Tensor:
    """(b, hidden) features of one batch: `get_features` when the model has it and no pooling is asked,
    else the pooling rule ("mean" by default) over the base model's outputs."""
    if pooling is None and hasattr(model, "get_features"):
        return model.get_features(**inputs)
    backbone = getattr(model, "base_model", model)
    outputs = backbone(**inputs)
    return pool_outputs(outputs, inputs.get("attention_mask"), pooling or "mean")


def is_causal_model(model: nn.Module) -> bool:
    """Whether each position of `model` attends to itself and the positions before it only (GPT-2, Llama, an hfssl
    next-token model), by its config."""
    config = getattr(model, "config", None)
    if config is None:
        return False
    if getattr(config, "is_causal", False) or getattr(config, "is_decoder", False):
        return True
    if any(name.endswith(("ForCausalLM", "LMHeadModel")) for name in getattr(config, "architectures", None) or ()):
        return True
    return any(getattr(module, "is_causal", False) is True for module in model.modules())  # transformers' attention


def _device(model: nn.Module) -> torch.device:
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


@torch.no_grad()
def extract_features(
    model: nn.Module,
    examples: Examples,
    to_inputs: InputEncoder,
    *,
    pooling: str | None = None,
    batch_size: int = 64,
    progress: bool = True,
    desc: str = "Extracting features",
) -> torch.Tensor:
    """Features of every example, in order: (n,) texts or (n, c, h, w) pixels -> (n, hidden) float32 on CPU.

    The model runs in eval mode (no dropout, no masking) without gradients; its training mode is restored.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be >= 1.")
    if len(examples) == 0:
        raise ValueError("No examples to extract features from.")
    if pooling == "cls" and is_causal_model(model):
        logger.warning("pooling='cls' reads the first token, which a causal (left-to-right) model computes from "
                       "itself alone: the features say nothing about the rest of the text. Use pooling='mean' (or "
                       "the model's get_features) for a causal model.")
    device, was_training = _device(model), model.training
    model.eval()
    chunks = []
    try:
        with tqdm(total=len(examples), desc=desc, unit="ex", disable=not progress, leave=False) as bar:
            for start in range(0, len(examples), batch_size):
                inputs = to_inputs(examples[start : start + batch_size])
                inputs = {name: value.to(device) for name, value in inputs.items()}
                chunks.append(encoder_features(model, inputs, pooling).float().cpu())  # (b, hidden)
                bar.update(len(chunks[-1]))
    finally:
        model.train(was_training)
    return torch.cat(chunks)

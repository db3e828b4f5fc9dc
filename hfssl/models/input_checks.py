"""Checks of what users pass to the hfssl models: a ValueError that names the bad input, the shape it needs and the
fix, instead of a shape error deep inside attention (or, worse, a silently wrong result); and the `output_*` flags
resolved against the config, as transformers models do.

They read shapes and dtypes only, never values: no host-device synchronization, nothing for torch.compile to
break on.
"""

from __future__ import annotations

import torch


def describe(value: object) -> str:
    """"shape (2, 8) and dtype int64" for a tensor, the type name for anything else."""
    if not torch.is_tensor(value):
        return f"a {type(value).__name__}"
    return f"shape {tuple(value.shape)} and dtype {str(value.dtype).replace('torch.', '')}"


def output_flag(value: bool | None, config, name: str) -> bool:
    """An `output_hidden_states` / `output_attentions` / `return_dict` argument, or when None the config's value
    (`from_pretrained(..., output_hidden_states=True)` sets it; `return_dict` defaults to True)."""
    return bool(value) if value is not None else bool(getattr(config, name, name == "return_dict"))


def check_token_inputs(
    input_ids: torch.Tensor | None,
    inputs_embeds: torch.Tensor | None,
    attention_mask: torch.Tensor | None,
    position_ids: torch.Tensor | None,
    past_length: int,
    hidden_size: int,
) -> None:
    """Validate a text model's inputs: input_ids (b, t) integers or inputs_embeds (b, t, hidden), attention_mask
    (b, past + t) or (b or 1, 1, t, keys), position_ids (b or 1, t)."""
    if (input_ids is None) == (inputs_embeds is None):
        raise ValueError("Pass exactly one of input_ids or inputs_embeds.")
    if input_ids is not None:
        if not torch.is_tensor(input_ids) or input_ids.dim() != 2 or input_ids.is_floating_point():
            raise ValueError(
                f"input_ids must be an integer tensor of shape (batch, sequence), got {describe(input_ids)}; "
                "tokenize with return_tensors='pt' (a single sequence needs a batch dimension: input_ids[None])."
            )
        batch, length = input_ids.shape
    else:
        if not torch.is_tensor(inputs_embeds) or inputs_embeds.dim() != 3 or inputs_embeds.shape[-1] != hidden_size:
            raise ValueError(
                f"inputs_embeds must have shape (batch, sequence, hidden_size={hidden_size}), got "
                f"{describe(inputs_embeds)}."
            )
        batch, length = inputs_embeds.shape[:2]
    if attention_mask is not None:
        _check_attention_mask(attention_mask, batch, length, past_length)
    if position_ids is not None and (
        not torch.is_tensor(position_ids) or position_ids.dim() != 2
        or position_ids.shape[0] not in (1, batch) or position_ids.shape[1] != length
    ):
        raise ValueError(
            f"position_ids must have shape (batch or 1, sequence) = ({batch} or 1, {length}), got "
            f"{describe(position_ids)}; or leave them out (positions 0, 1, ... after any cached tokens)."
        )


def _check_attention_mask(attention_mask: torch.Tensor, batch: int, length: int, past_length: int) -> None:
    """(b, past + t) padding mask, or a 4-D mask (b or 1, 1, t, keys >= past + t) as transformers builds for static
    caches."""
    expected = (batch, past_length + length)
    if torch.is_tensor(attention_mask) and tuple(attention_mask.shape) == expected:
        return
    if torch.is_tensor(attention_mask) and attention_mask.dim() == 4:
        b, heads, queries, keys = attention_mask.shape
        if b in (1, batch) and heads == 1 and queries == length and keys >= past_length + length:
            return
    cached = f" (the {past_length} cached tokens included)" if past_length else ""
    raise ValueError(
        f"attention_mask must have shape (batch, sequence) = {expected}{cached}, 1 for tokens to attend to and "
        f"0 for padding (or be a 4-D mask (batch, 1, {length}, keys)), got {describe(attention_mask)}; pass the mask "
        "the tokenizer returned with these inputs."
    )


def check_token_labels(labels: torch.Tensor, batch: int, length: int, what: str) -> None:
    """labels must be integers of the inputs' shape (b, t); `what` says what they hold, for the message."""
    if not torch.is_tensor(labels) or tuple(labels.shape) != (batch, length) or labels.is_floating_point():
        raise ValueError(
            f"labels must be an integer tensor shaped like input_ids, (batch, sequence) = ({batch}, {length}), "
            f"holding {what}; got {describe(labels)}."
        )


# ITU-R 601-2 luma, the weights of PIL's `convert("L")`.
_LUMA = (0.299, 0.587, 0.114)


def prepare_pixel_values(pixel_values: torch.Tensor, config, dtype: torch.dtype) -> tuple[torch.Tensor, tuple[int, int]]:
    """Validate pixel_values (b, c, h, w) against the config: (pixel values in `dtype`, patch grid (h / p, w / p)).

    RGB pixel values given to a grayscale model (num_channels=1) become their luma, as `convert("L")` computes it
    (exactly so after a per-channel normalization with equal means and stds): transformers' image pipelines load
    every image as RGB.
    """
    if not torch.is_tensor(pixel_values) or pixel_values.dim() != 4:
        raise ValueError(
            f"pixel_values must be a tensor of shape (batch, num_channels, height, width), got "
            f"{describe(pixel_values)}, as the model's image processor makes it (a single image needs a batch "
            "dimension: pixel_values[None])."
        )
    if not pixel_values.is_floating_point():
        raise ValueError(
            f"pixel_values must be floating point (rescaled and normalized as the image processor does), got "
            f"{describe(pixel_values)}; pass images through the model's image processor."
        )
    _, channels, height, width = pixel_values.shape
    if channels == 3 and config.num_channels == 1:
        luma = torch.tensor(_LUMA, device=pixel_values.device, dtype=pixel_values.dtype)
        pixel_values = (pixel_values * luma[:, None, None]).sum(dim=1, keepdim=True)  # (b, 1, h, w)
    elif channels != config.num_channels:
        layout = (" (channels last? the model expects (batch, num_channels, height, width): "
                  "pixel_values.permute(0, 3, 1, 2))" if pixel_values.shape[-1] == config.num_channels else "")
        raise ValueError(
            f"pixel_values of shape {tuple(pixel_values.shape)} has {channels} channels (dimension 1) but the model "
            f"expects num_channels={config.num_channels}{layout}; convert the images (grayscale = 1, RGB = 3)."
        )
    pixel_values = pixel_values.to(dtype)
    p = config.patch_size
    if height % p or width % p:
        raise ValueError(f"Image size {height}x{width} is not a multiple of patch_size={p}; resize the images.")
    if config.position_embedding_type == "learned" and (height, width) != (config.image_size,) * 2:
        raise ValueError(
            f"Learned positions were made for {config.image_size}x{config.image_size} images, got {height}x{width}; "
            "resize the images or use position_embedding_type='sincos'."
        )
    return pixel_values, (height // p, width // p)

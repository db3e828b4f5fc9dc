"""Pixels as the models see them: uint8 -> float in [0, 1], per-channel normalization and its statistics, and the
saved image processor that repeats `hfssl.data.images`' preprocessing at inference."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import datasets
import torch
from PIL import Image as PILImage


def to_float_pixels(pixel_values: torch.Tensor) -> torch.Tensor:
    """Integer (B, C, H, W) in 0..255 (uint8, or int64 from a torch format) -> float32 in [0, 1]."""
    if pixel_values.is_floating_point() or pixel_values.dtype == torch.bool:
        raise TypeError(
            f"to_float_pixels expects integer pixels in 0..255, got {pixel_values.dtype}; "
            f"float pixels are already converted, pass them on unchanged."
        )
    return pixel_values.float().div_(255.0)


def normalize(pixels: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Float (B, C, H, W) in [0, 1] -> (pixels - mean) / std, per channel."""
    if len(mean) != pixels.shape[1] or len(std) != pixels.shape[1]:
        raise ValueError(
            f"mean/std have {len(mean)}/{len(std)} values but pixels have {pixels.shape[1]} channels; "
            f"give one value per channel."
        )
    mean_t = torch.as_tensor(mean, dtype=pixels.dtype, device=pixels.device).view(1, -1, 1, 1)
    std_t = torch.as_tensor(std, dtype=pixels.dtype, device=pixels.device).view(1, -1, 1, 1)
    return (pixels - mean_t) / std_t


def compute_mean_std(
    dataset: datasets.Dataset, max_images: int = 10_000, batch_size: int = 1_000
) -> tuple[list[float], list[float]]:
    """Per-channel mean and std in [0, 1] units over the first `max_images` `pixel_values`."""
    subset = dataset.select(range(min(max_images, len(dataset))))
    subset = subset.with_format("torch", columns=["pixel_values"])
    total = total_sq = None
    count = 0
    for start in range(0, len(subset), batch_size):
        pixels = subset[start : start + batch_size]["pixel_values"].double().div(255.0)  # (B, C, H, W)
        sums, sq = pixels.sum(dim=(0, 2, 3)), pixels.pow(2).sum(dim=(0, 2, 3))
        total, total_sq = (sums, sq) if total is None else (total + sums, total_sq + sq)
        count += pixels.numel() // pixels.shape[1]
    if total is None:
        raise ValueError("compute_mean_std got an empty dataset; load at least one image first.")
    mean = total / count
    std = (total_sq / count - mean.pow(2)).clamp_min(1e-12).sqrt()
    return mean.tolist(), std.tolist()


def build_image_processor(
    image_size: int, num_channels: int, mean: Sequence[float], std: Sequence[float]
) -> Any:
    """A ViT image processor that reproduces this module's preprocessing at inference.

    Bicubic resize to image_size x image_size, rescale by 1/255, normalize with `mean`/`std`.
    It saves as "ViTImageProcessor" and loads back with `AutoImageProcessor.from_pretrained`.
    Callers convert inputs to mode "L" (1 channel) or "RGB" (3 channels) first; a 1-channel processor also takes RGB
    images (normalized alike), for the models' luma of RGB pixel values.
    """
    import transformers

    if len(mean) != num_channels or len(std) != num_channels:
        raise ValueError(f"mean/std need {num_channels} values each, got {list(mean)} and {list(std)}.")
    # ViTImageProcessor needs torchvision in transformers 5; the PIL backend saves the same config.
    processor_class = getattr(transformers, "ViTImageProcessorPil", None) or transformers.ViTImageProcessor
    # 3 channels: grayscale, palette, CMYK and transparent images given as they open are converted to RGB (on
    # white), as `convert_image` does for training, instead of failing on their channel count.
    rgb = {"do_convert_rgb": True} if num_channels == 3 else {}
    return processor_class(
        do_resize=True,
        size={"height": image_size, "width": image_size},
        resample=PILImage.Resampling.BICUBIC,
        do_rescale=True,
        rescale_factor=1 / 255,
        do_normalize=True,
        # One channel: scalars, which normalize grayscale images and the RGB ones transformers' image pipelines
        # load alike (the model takes the luma of RGB pixel values).
        image_mean=float(mean[0]) if num_channels == 1 else [float(m) for m in mean],
        image_std=float(std[0]) if num_channels == 1 else [float(s) for s in std],
        **rgb,
    )


def processor_stats(processor: Any) -> tuple[list[float], list[float]]:
    """An image processor's normalization (mean, std) as per-channel lists; a 1-channel processor stores scalars."""
    def as_list(value: Any) -> list[float]:
        return [float(v) for v in value] if isinstance(value, (list, tuple)) else [float(value)]

    return as_list(processor.image_mean), as_list(processor.image_std)

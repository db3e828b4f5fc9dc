"""Multi-view augmentations for joint-embedding SSL, batched on the training device with kornia.

`build_views(method, image_size, num_channels, mean, std, **overrides)` returns a
`MultiViewTransform`: given a float batch (B, C, H, W) in [0, 1] it returns a list of
normalized views, global views first, then local crops (the order DINO and SwAV losses expect).

Paper recipes, scaled to small images:
- simclr  (Chen et al. 2020, App. A): crop (0.08, 1), flip, jitter (0.8, 0.8, 0.8, 0.2) * s with
          p 0.8, grayscale 0.2, blur 0.5. At image_size <= 64 the CIFAR recipe of the paper is
          used instead: s = 0.5, i.e. jitter (0.4, 0.4, 0.4, 0.1), and no blur.
- byol    (Grill et al. 2020, Table 6): crop (0.08, 1), jitter (0.4, 0.4, 0.2, 0.1) p 0.8,
          grayscale 0.2; view 1 blur 1.0 / solarize 0.0, view 2 blur 0.1 / solarize 0.2.
- moco    (MoCo v3, Chen et al. 2021) uses BYOL's asymmetric recipe.
- simsiam (Chen & He 2021): crop (0.2, 1), jitter (0.4, 0.4, 0.4, 0.1) p 0.8, grayscale 0.2, blur 0.5.
- dino    (Caron et al. 2021): 2 global crops (0.4, 1) with BYOL's blur/solarize asymmetry,
          8 local crops (0.05, 0.4) at 96/224 of the image size with blur 0.5.
- swav    (Caron et al. 2020): 2 global crops (0.14, 1) + 6 local crops (0.05, 0.14) at 96/224,
          jitter (0.8, 0.8, 0.8, 0.2) p 0.8, grayscale 0.2, blur 0.5.
- mae     (He et al. 2022): one view, crop (0.2, 1) bicubic, flip; nothing else.

Blur sigmas are given at the 224-pixel reference of the papers, (0.1, 2.0), and scaled by
image_size / 224, so a blur removes the same fraction of detail at any resolution. At 32 pixels
that is sigma <= 0.29 px, which barely changes an image (one reason the CIFAR recipes drop
blur); pass a larger `blur_sigma` to make it stronger.
Grayscale inputs (1 channel) get brightness and contrast jitter only: saturation, hue and
grayscale conversion have no meaning there.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Sequence

import kornia.augmentation as K
import torch
from torch import nn

_REFERENCE_SIZE = 224  # resolution at which the papers state crop sizes and blur sigmas
_MIN_VIEW_SIZE = 3


@dataclass
class ViewConfig:
    """Augmentation recipe for all views of one method; `build_views` fills paper defaults."""

    n_global_views: int = 2  # 2 for the two-view methods; 1 for MAE
    global_crop_scale: tuple[float, float] = (0.08, 1.0)  # area fraction kept by RandomResizedCrop
    global_crop_size: int | float = 1.0  # float: fraction of image_size; int: pixels
    n_local_crops: int = 0  # multi-crop (DINO, SwAV): more views, more compute per step
    local_crop_scale: tuple[float, float] = (0.05, 0.4)
    local_crop_size: int | float = 96 / 224  # float: fraction of image_size; int: pixels
    hflip_p: float = 0.5
    jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.1)  # brightness, contrast, saturation, hue
    jitter_strength: float = 1.0  # multiplies `jitter` (SimCLR's s)
    jitter_p: float = 0.8
    grayscale_p: float = 0.2
    blur_p: float | tuple[float, ...] = 0.5  # one value for all global views, or one per global view
    local_blur_p: float = 0.5
    blur_sigma: tuple[float, float] = (0.1, 2.0)  # pixels at a 224-pixel image, scaled to image_size
    solarize_p: float | tuple[float, ...] = 0.0  # one value, or one per global view
    local_solarize_p: float = 0.0
    interpolation: str = "bilinear"  # of the crops; MAE uses "bicubic"

    def __post_init__(self) -> None:
        # YAML and JSON give lists; the recipe is compared and printed as tuples.
        for name in ("global_crop_scale", "local_crop_scale", "jitter", "blur_sigma", "blur_p", "solarize_p"):
            value = getattr(self, name)
            if isinstance(value, list):
                setattr(self, name, tuple(value))
        for name in ("n_global_views", "n_local_crops"):
            value = getattr(self, name)
            if not _is_int(value) or value < (1 if name == "n_global_views" else 0):
                bound = ">= 1" if name == "n_global_views" else ">= 0"
                raise ValueError(f"{name}={value!r} must be a whole number {bound}.")
        self._check_ranges()
        self.per_view("blur_p")
        self.per_view("solarize_p")

    def _check_ranges(self) -> None:
        """Refuse values kornia would accept silently or fail on deep inside a training step."""
        for name in _PROBABILITIES:
            value = getattr(self, name)
            if not all(_is_number(v) and 0 <= v <= 1 for v in (value if isinstance(value, tuple) else (value,))):
                raise ValueError(f"{name}={value!r} is a probability: give a number in [0, 1] (0 turns it off).")
        for name in ("global_crop_scale", "local_crop_scale"):
            value = getattr(self, name)
            if not (_numbers(value, 2) and 0 < value[0] <= value[1] <= 1):
                raise ValueError(f"{name}={value!r} is the (min, max) fraction of the image area a crop keeps: "
                                 f"give two numbers with 0 < min <= max <= 1, e.g. (0.2, 1.0).")
        if not (_numbers(self.jitter, 4) and all(v >= 0 for v in self.jitter)):
            raise ValueError(f"jitter={self.jitter!r}: give four numbers >= 0 (brightness, contrast, saturation, "
                             f"hue), e.g. (0.4, 0.4, 0.4, 0.1).")
        if not (_is_number(self.jitter_strength) and self.jitter_strength >= 0):
            raise ValueError(f"jitter_strength={self.jitter_strength!r}: give a number >= 0 (it scales `jitter`).")
        if not (_numbers(self.blur_sigma, 2) and 0 < self.blur_sigma[0] <= self.blur_sigma[1]):
            raise ValueError(f"blur_sigma={self.blur_sigma!r}: give (min, max) pixels at 224 px with "
                             f"0 < min <= max, e.g. (0.1, 2.0).")
        for name in ("global_crop_size", "local_crop_size"):
            value = getattr(self, name)
            if not (_is_number(value) and value > 0):
                raise ValueError(f"{name}={value!r}: give a fraction of image_size (e.g. 0.5) or pixels (e.g. 16).")
        if self.interpolation not in _INTERPOLATIONS:
            raise ValueError(f"interpolation={self.interpolation!r} is not known; use one of {list(_INTERPOLATIONS)}.")

    def per_view(self, name: str) -> tuple[float, ...]:
        """`blur_p` or `solarize_p` as one probability per global view."""
        value = getattr(self, name)
        if isinstance(value, (int, float)):
            return (float(value),) * self.n_global_views
        if len(value) != self.n_global_views:
            raise ValueError(
                f"{name}={value} has {len(value)} values for {self.n_global_views} global views; "
                f"give one value for all views or exactly {self.n_global_views}."
            )
        return tuple(float(v) for v in value)


_PROBABILITIES = ("hflip_p", "jitter_p", "grayscale_p", "blur_p", "local_blur_p", "solarize_p", "local_solarize_p")
_INTERPOLATIONS = ("bilinear", "bicubic", "nearest")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _numbers(value: Any, count: int) -> bool:
    return isinstance(value, tuple) and len(value) == count and all(_is_number(v) for v in value)


def _presets(image_size: int) -> dict[str, dict[str, Any]]:
    """ViewConfig fields of each method's paper recipe (sources in the module docstring)."""
    small = image_size <= 64
    byol = dict(jitter=(0.4, 0.4, 0.2, 0.1), blur_p=(1.0, 0.1), solarize_p=(0.0, 0.2))
    presets: dict[str, dict[str, Any]] = {
        # SimCLR's CIFAR recipe for small images: half-strength jitter, no blur.
        "simclr": dict(jitter=(0.8, 0.8, 0.8, 0.2), jitter_strength=0.5 if small else 1.0,
                       blur_p=0.0 if small else 0.5),
        "byol": byol,
        "moco": byol,
        "simsiam": dict(global_crop_scale=(0.2, 1.0), blur_p=0.5),
        "dino": dict(byol, global_crop_scale=(0.4, 1.0), n_local_crops=8, local_crop_scale=(0.05, 0.4)),
        "swav": dict(global_crop_scale=(0.14, 1.0), n_local_crops=6, local_crop_scale=(0.05, 0.14),
                     jitter=(0.8, 0.8, 0.8, 0.2)),
        "mae": dict(n_global_views=1, global_crop_scale=(0.2, 1.0), jitter_p=0.0, grayscale_p=0.0,
                    blur_p=0.0, solarize_p=0.0, interpolation="bicubic"),
    }
    return presets


VIEW_METHODS = tuple(sorted(_presets(_REFERENCE_SIZE)))


def _resolve_size(size: int | float, image_size: int, name: str, patch_size: int | None = None) -> int:
    """A float is a fraction of image_size, an int a size in pixels; with `patch_size`, a multiple of it (a ViT
    cannot tile other sizes, and would fail at the first training step, after the data is decoded)."""
    pixels = round(size * image_size) if isinstance(size, float) else int(size)
    if pixels < _MIN_VIEW_SIZE:
        raise ValueError(
            f"{name}={size} gives {pixels}-pixel views at image_size={image_size}; views need at least "
            f"{_MIN_VIEW_SIZE} pixels: pass a larger {name} or image_size."
        )
    if patch_size and pixels % patch_size:
        fit = max(patch_size, round(pixels / patch_size) * patch_size)
        raise ValueError(
            f"{name}={size} gives {pixels}-pixel views at image_size={image_size}, not a multiple of the patch "
            f"size {patch_size}, so the model cannot tile them; pass {name}={fit} (pixels) or a fraction of the "
            f"image that gives a multiple of {patch_size}."
        )
    return pixels


def _blur(view_size: int, image_size: int, sigma: tuple[float, float], p: float) -> nn.Module:
    """Gaussian blur with a kernel of ~10% of the view (SimCLR), sigmas scaled from 224 pixels."""
    scale = image_size / _REFERENCE_SIZE
    kernel = max(3, int(0.1 * view_size) // 2 * 2 + 1)  # odd
    return K.RandomGaussianBlur(kernel, (sigma[0] * scale, sigma[1] * scale), p=p)


def _color(config: ViewConfig, num_channels: int) -> list[nn.Module]:
    """Color jitter (and grayscale for RGB); brightness and contrast only for 1 channel."""
    b, c, s, h = (v * config.jitter_strength for v in config.jitter)
    if num_channels == 1:
        s = h = 0.0
    layers: list[nn.Module] = []
    if config.jitter_p > 0:
        layers.append(K.ColorJitter(b, c, s, min(h, 0.5), p=config.jitter_p))  # kornia caps hue at 0.5
    if config.grayscale_p > 0 and num_channels == 3:
        layers.append(K.RandomGrayscale(p=config.grayscale_p))
    return layers


def _pipeline(
    config: ViewConfig, num_channels: int, image_size: int, size: int,
    crop_scale: tuple[float, float], blur_p: float, solarize_p: float,
) -> nn.Sequential:
    """One view: crop -> flip -> color -> blur -> solarize, on (B, C, H, W) -> (B, C, size, size)."""
    layers: list[nn.Module] = [
        K.RandomResizedCrop((size, size), scale=crop_scale, resample=config.interpolation.upper())
    ]
    if config.hflip_p > 0:
        layers.append(K.RandomHorizontalFlip(p=config.hflip_p))
    layers += _color(config, num_channels)
    if blur_p > 0:
        layers.append(_blur(size, image_size, config.blur_sigma, blur_p))
    if solarize_p > 0:
        # Threshold fixed at 0.5 (PIL's 128), as in BYOL, instead of kornia's random threshold.
        layers.append(K.RandomSolarize(thresholds=0.0, additions=0.0, p=solarize_p))
    return nn.Sequential(*layers)


def _per_channel(values: Sequence[float]) -> torch.Tensor:
    """C values -> (1, C, 1, 1) float32, broadcastable over (B, C, H, W)."""
    return torch.tensor(values, dtype=torch.float32).view(1, -1, 1, 1)


class MultiViewTransform(nn.Module):
    """Apply several augmentation pipelines to one batch and normalize each view.

    forward: (B, C, H, W) float in [0, 1] (or uint8 in 0..255) -> list of views, view i of
    shape (B, C, size_i, size_i), normalized with `mean` / `std`; global views come first.
    Randomness comes from torch's global generator: `torch.manual_seed` makes it repeatable.
    """

    def __init__(
        self, views: Sequence[nn.Module], mean: Sequence[float], std: Sequence[float],
        n_global_views: int | None = None,
    ) -> None:
        super().__init__()
        if len(mean) != len(std):
            raise ValueError(f"mean has {len(mean)} values but std has {len(std)}; give one per channel.")
        self.views = nn.ModuleList(views)
        self.n_global_views = len(views) if n_global_views is None else n_global_views
        # Buffers follow .to(device), so the views run where the batch is.
        self.register_buffer("mean", _per_channel(mean), persistent=False)
        self.register_buffer("std", _per_channel(std), persistent=False)

    def forward(self, pixels: torch.Tensor) -> list[torch.Tensor]:
        """(B, C, H, W) -> [view (B, C, size_i, size_i) for each pipeline]."""
        if pixels.ndim != 4 or pixels.shape[1] != self.mean.shape[1]:
            raise ValueError(
                f"Expected a batch (B, {self.mean.shape[1]}, H, W), got shape {tuple(pixels.shape)}; "
                f"build the views with num_channels={pixels.shape[1] if pixels.ndim == 4 else '?'} "
                f"or convert the images."
            )
        if pixels.dtype == torch.uint8:
            pixels = pixels.float() / 255.0
        elif not pixels.is_floating_point():
            raise TypeError(f"Expected float pixels in [0, 1] or uint8, got {pixels.dtype}.")
        return [(view(pixels) - self.mean) / self.std for view in self.views]


def build_views(
    method: str, image_size: int, num_channels: int,
    mean: Sequence[float], std: Sequence[float], patch_size: int | None = None, **overrides: Any,
) -> MultiViewTransform:
    """The paper views of `method` for (B, num_channels, image_size, image_size) batches.

    `overrides` replace `ViewConfig` fields of the preset, e.g. `n_local_crops=2, blur_p=(1.0, 0.0)`.
    With `patch_size`, view sizes that are not a multiple of it are refused here (ValueError naming the option).
    Returns a MultiViewTransform with n_global_views + n_local_crops views.
    """
    config = view_config(method, image_size, **overrides)
    return build_views_from_config(config, image_size, num_channels, mean, std, patch_size=patch_size)


def view_config(method: str, image_size: int, **overrides: Any) -> ViewConfig:
    """The preset ViewConfig of `method` with `overrides` applied (for run.json and inspection)."""
    presets = _presets(image_size)
    if method not in presets:
        raise ValueError(f"Unknown view method {method!r}; valid methods: {sorted(presets)}.")
    config = ViewConfig(**presets[method])
    names = {f.name for f in dataclasses.fields(ViewConfig)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ValueError(f"Unknown view options {unknown}; valid options: {sorted(names)}.")
    return dataclasses.replace(config, **overrides)


def view_sizes(config: ViewConfig, image_size: int, patch_size: int | None = None) -> tuple[int, int | None]:
    """(global view, local crop) sizes in pixels, None without local crops; ValueError for a size under the minimum
    or, with `patch_size`, off the patch grid. Cheap: callers check options with it before decoding any image."""
    global_size = _resolve_size(config.global_crop_size, image_size, "global_crop_size", patch_size)
    local_size = (_resolve_size(config.local_crop_size, image_size, "local_crop_size", patch_size)
                  if config.n_local_crops else None)
    return global_size, local_size


def build_views_from_config(
    config: ViewConfig, image_size: int, num_channels: int, mean: Sequence[float], std: Sequence[float],
    patch_size: int | None = None,
) -> MultiViewTransform:
    """A MultiViewTransform for an explicit ViewConfig: global views, then local crops (with `patch_size`, of
    sizes that are multiples of it)."""
    if num_channels not in (1, 3):
        raise ValueError(f"num_channels={num_channels} is not supported; use 1 (grayscale) or 3 (RGB).")
    if len(mean) != num_channels:
        raise ValueError(f"mean/std need {num_channels} values (one per channel), got mean={list(mean)}.")
    global_size, local_size = view_sizes(config, image_size, patch_size)
    views = [
        _pipeline(config, num_channels, image_size, global_size, config.global_crop_scale, blur, solarize)
        for blur, solarize in zip(config.per_view("blur_p"), config.per_view("solarize_p"))
    ]
    if local_size is not None:
        local = (local_size, config.local_crop_scale, config.local_blur_p, config.local_solarize_p)
        views += [_pipeline(config, num_channels, image_size, *local) for _ in range(config.n_local_crops)]
    return MultiViewTransform(views, mean, std, n_global_views=config.n_global_views)

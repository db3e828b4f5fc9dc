"""Tests for hfssl.data.views on real images (sklearn digits, upsampled, and a colour version)."""

from __future__ import annotations

import kornia.augmentation as K
import pytest
import torch

from hfssl.data.images import digits_dataset, load_image_dataset
from hfssl.data.pixels import to_float_pixels
from hfssl.data.views import VIEW_METHODS, ViewConfig, build_views, view_config

SIZE = 32
GRAY = ([0.3], [0.35])
RGB = ([0.3, 0.3, 0.3], [0.35, 0.35, 0.35])
# Turns every random step off: with these a view is the normalized input itself.
IDENTITY = dict(
    global_crop_scale=(1.0, 1.0), hflip_p=0.0, jitter_p=0.0, grayscale_p=0.0, blur_p=0.0, solarize_p=0.0
)


@pytest.fixture(scope="module")
def digits() -> torch.Tensor:
    """64 real digits, float (64, 1, 32, 32) in [0, 1]."""
    ds, _ = load_image_dataset(dataset=digits_dataset(), image_size=SIZE, num_channels=1, max_examples=64)
    return to_float_pixels(torch.from_numpy(ds[:]["pixel_values"]))


@pytest.fixture(scope="module")
def colour_digits(digits: torch.Tensor) -> torch.Tensor:
    """The digits tinted per image so that hue and saturation matter, (64, 3, 32, 32)."""
    tint = torch.rand(len(digits), 3, 1, 1, generator=torch.Generator().manual_seed(0))
    return digits * (0.3 + 0.7 * tint)


def _stats(channels: int) -> tuple[list[float], list[float]]:
    return GRAY if channels == 1 else RGB


def _changed(view: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Per image: did the view change the (normalized) reference? -> bool (B,)."""
    return (view - reference).abs().flatten(1).amax(dim=1) > 1e-4


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize(
    "method, n_global, n_local",
    [
        ("simclr", 2, 0), ("moco", 2, 0), ("byol", 2, 0), ("simsiam", 2, 0),
        ("dino", 2, 8), ("swav", 2, 6), ("mae", 1, 0),
    ],
)
def test_preset_view_shapes(
    method: str, n_global: int, n_local: int, channels: int, digits: torch.Tensor, colour_digits: torch.Tensor
) -> None:
    x = digits[:8] if channels == 1 else colour_digits[:8]
    transform = build_views(method, SIZE, channels, *_stats(channels))
    views = transform(x)
    local = round(SIZE * 96 / 224)  # 14: DINO and SwAV local crops, 96 of 224
    assert transform.n_global_views == n_global and len(views) == n_global + n_local
    expected = [(8, channels, SIZE, SIZE)] * n_global + [(8, channels, local, local)] * n_local
    assert [tuple(v.shape) for v in views] == expected
    assert all(torch.isfinite(v).all() for v in views)


def test_all_methods_are_tested_and_unknown_method_lists_them() -> None:
    assert set(VIEW_METHODS) == {"simclr", "moco", "byol", "simsiam", "dino", "swav", "mae"}
    with pytest.raises(ValueError, match=r"'barlow'.*\['byol', 'dino'"):
        build_views("barlow", SIZE, 1, *GRAY)


def test_views_are_normalized_with_mean_and_std(digits: torch.Tensor) -> None:
    (view,) = build_views("mae", SIZE, 1, [0.25], [0.5], **IDENTITY)(digits)
    torch.testing.assert_close(view, (digits - 0.25) / 0.5, atol=1e-5, rtol=1e-5)
    as_uint8 = (digits * 255).round().to(torch.uint8)
    (from_uint8,) = build_views("mae", SIZE, 1, [0.25], [0.5], **IDENTITY)(as_uint8)
    torch.testing.assert_close(from_uint8, view, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("channels", [1, 3])
def test_two_views_differ(channels: int, digits: torch.Tensor, colour_digits: torch.Tensor) -> None:
    x = digits if channels == 1 else colour_digits
    first, second = build_views("simclr", SIZE, channels, *_stats(channels))(x)
    assert _changed(first, second).float().mean() > 0.9


def test_seed_makes_views_repeatable(colour_digits: torch.Tensor) -> None:
    transform = build_views("dino", SIZE, 3, *RGB)

    def views(seed: int) -> list[torch.Tensor]:
        torch.manual_seed(seed)
        return transform(colour_digits[:16])

    for a, b in zip(views(3), views(3)):
        torch.testing.assert_close(a, b)
    assert not torch.allclose(views(3)[0], views(4)[0])


def test_byol_asymmetry_blur_always_on_first_view(colour_digits: torch.Tensor) -> None:
    assert view_config("byol", SIZE).per_view("blur_p") == (1.0, 0.1)
    assert view_config("moco", SIZE).per_view("solarize_p") == (0.0, 0.2)
    # Only blur left on, and sigmas large enough to show at 32 pixels.
    only_blur = {**IDENTITY, "blur_p": view_config("byol", SIZE).blur_p, "blur_sigma": (8.0, 16.0)}
    reference = (colour_digits - 0.3) / 0.35
    torch.manual_seed(0)
    first, second = build_views("byol", SIZE, 3, *RGB, **only_blur)(colour_digits)
    assert _changed(first, reference).all()
    assert 0.0 < _changed(second, reference).float().mean() < 0.3


def test_byol_asymmetry_solarize_only_second_view(colour_digits: torch.Tensor) -> None:
    only_solarize = {**IDENTITY, "solarize_p": view_config("byol", SIZE).solarize_p}
    reference = (colour_digits - 0.3) / 0.35
    torch.manual_seed(0)
    first, second = build_views("byol", SIZE, 3, *RGB, **only_solarize)(colour_digits)
    assert not _changed(first, reference).any()
    assert 0.05 < _changed(second, reference).float().mean() < 0.45


def test_simclr_drops_blur_for_small_images_only() -> None:
    def has_blur(image_size: int) -> bool:
        transform = build_views("simclr", image_size, 3, *RGB)
        return any(isinstance(m, K.RandomGaussianBlur) for m in transform.modules())

    assert not has_blur(32) and has_blur(96)
    assert view_config("simclr", 32).jitter_strength == 0.5
    assert view_config("simclr", 96).jitter_strength == 1.0


def test_grayscale_inputs_get_brightness_and_contrast_only() -> None:
    transform = build_views("simclr", SIZE, 1, *GRAY)
    jitters = [m for m in transform.modules() if isinstance(m, K.ColorJitter)]
    assert jitters and not any(isinstance(m, K.RandomGrayscale) for m in transform.modules())
    assert all("saturation=0.0" in repr(m) and "hue=0.0" in repr(m) for m in jitters)


def test_grayscale_probability_one_makes_channels_equal(colour_digits: torch.Tensor) -> None:
    transform = build_views("simclr", SIZE, 3, [0.5] * 3, [0.5] * 3, **{**IDENTITY, "grayscale_p": 1.0})
    views = transform(colour_digits)
    for view in views:
        torch.testing.assert_close(view[:, 0], view[:, 2])
    assert _changed(views[0], (colour_digits - 0.5) / 0.5).all()


def test_overrides_change_views(digits: torch.Tensor) -> None:
    overrides = dict(n_local_crops=3, local_crop_size=10, global_crop_size=0.75)
    transform = build_views("dino", SIZE, 1, *GRAY, **overrides)
    views = transform(digits[:4])
    assert [tuple(v.shape[-2:]) for v in views] == [(24, 24)] * 2 + [(10, 10)] * 3
    flipped = build_views("mae", SIZE, 1, [0.0], [1.0], **{**IDENTITY, "hflip_p": 1.0})(digits)[0]
    torch.testing.assert_close(flipped, digits.flip(-1))
    assert len(build_views("simclr", SIZE, 1, *GRAY, n_global_views=3)(digits[:2])) == 3


def test_config_from_yaml_lists_and_bad_options() -> None:
    config = view_config("byol", SIZE, blur_p=[0.5, 0.5], global_crop_scale=[0.2, 1.0])
    assert config.blur_p == (0.5, 0.5) and config.global_crop_scale == (0.2, 1.0)
    with pytest.raises(ValueError, match=r"Unknown view options \['blurr_p'\]"):
        view_config("byol", SIZE, blurr_p=0.5)
    with pytest.raises(ValueError, match="3 values for 2 global views"):
        ViewConfig(blur_p=(1.0, 0.1, 0.0))
    with pytest.raises(ValueError, match="local_crop_size"):
        build_views("dino", SIZE, 1, *GRAY, local_crop_size=0.05)


@pytest.mark.parametrize(("option", "message"), [
    ({"hflip_p": 2}, r"hflip_p=2 is a probability"),
    ({"jitter_p": "often"}, r"jitter_p='often' is a probability"),
    ({"blur_p": [1.0, 1.5]}, r"blur_p=\(1.0, 1.5\) is a probability"),
    ({"global_crop_scale": [0.8, 0.2]}, r"0 < min <= max <= 1"),
    ({"local_crop_scale": [0.0, 0.4]}, r"0 < min <= max <= 1"),
    ({"jitter": [0.4, 0.4]}, r"four numbers >= 0"),
    ({"jitter_strength": -1}, r"jitter_strength=-1"),
    ({"blur_sigma": [2.0, 0.1]}, r"0 < min <= max"),
    ({"local_crop_size": 0}, r"local_crop_size=0"),
    ({"n_local_crops": 1.5}, r"whole number >= 0"),
    ({"n_global_views": 0}, r"whole number >= 1"),
    ({"interpolation": "area"}, r"'bilinear', 'bicubic', 'nearest'"),
])
def test_out_of_range_view_options_are_refused_by_name(option: dict, message: str) -> None:
    """Kornia takes a flip probability of 2 without a word; the config refuses it and says what is allowed."""
    with pytest.raises(ValueError, match=message):
        view_config("byol", SIZE, **option)


def test_wrong_channel_count_names_the_fix(digits: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="num_channels=1"):
        build_views("simclr", SIZE, 3, *RGB)(digits)
    with pytest.raises(ValueError, match="num_channels=2"):
        build_views("simclr", SIZE, 2, *GRAY)

"""MAE reconstruction and image preprocessing, called directly (no server)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from hfssl.demo.inputs import DemoInputError, Limits
from hfssl.demo.vision import ReconstructionTab, example_images, preprocess_images, reconstruct, to_display


def _array(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("L"), dtype=np.int16)


def test_preprocess_composites_transparency_and_normalizes(loaded_mae):
    transparent = Image.new("RGBA", (40, 30), (0, 0, 0, 0))  # invisible black -> white
    pixels = preprocess_images(loaded_mae, [transparent, Image.new("RGB", (8, 8), (0, 0, 0))])
    assert pixels.shape == (2, 1, 16, 16)
    assert torch.allclose(pixels[0], torch.full((1, 16, 16), (1 - 0.3) / 0.35))
    assert torch.allclose(pixels[1], torch.full((1, 16, 16), -0.3 / 0.35))
    [shown] = to_display(loaded_mae, pixels[:1], size=64)
    assert shown.size == (64, 64) and _array(shown).min() == 255


def test_reconstruction_keeps_visible_patches_and_grays_out_hidden_ones(loaded_mae):
    image = Image.open(example_images(count=1)[0])
    result = reconstruct(loaded_mae, image, mask_ratio=0.75, seed=1)
    assert (result.total_patches, result.hidden_patches) == (16, 12)  # keep int(16 * 0.25) = 4
    assert result.original.size == result.masked.size == result.reconstruction.size == (192, 192)
    original, masked, rebuilt = _array(result.original), _array(result.masked), _array(result.reconstruction)
    hidden = masked == 127
    cell = 192 // 4
    hidden_cells = hidden[::cell, ::cell]  # one pixel per patch
    assert hidden_cells.sum() >= 12
    visible = ~np.kron(hidden_cells, np.ones((cell, cell), dtype=bool))
    assert np.array_equal(original[visible], rebuilt[visible])
    assert np.array_equal(original[visible], masked[visible])
    assert result.masked_mse > 0


def test_seed_fixes_the_mask(loaded_mae):
    image = Image.open(example_images(count=1)[0])
    first = _array(reconstruct(loaded_mae, image, 0.5, seed=0).masked)
    assert np.array_equal(first, _array(reconstruct(loaded_mae, image, 0.5, seed=0).masked))
    assert not np.array_equal(first, _array(reconstruct(loaded_mae, image, 0.5, seed=1).masked))


@pytest.mark.parametrize("ratio", [0.0, 1.0, 0.99])
def test_mask_ratio_must_hide_some_and_keep_some(loaded_mae, ratio):
    with pytest.raises(DemoInputError, match="mask ratio"):
        reconstruct(loaded_mae, Image.new("L", (16, 16)), ratio)


def test_reconstruction_handler_messages(loaded_mae):
    tab = ReconstructionTab(loaded_mae, Limits(max_image_pixels=64 * 64))
    assert len(tab.examples) == 4
    *images, status = tab.run(Image.open(tab.examples[0]), 0.5, 0)
    assert all(isinstance(i, Image.Image) for i in images) and status.startswith("Hid 8 of 16 patches")
    assert tab.run(None, 0.5, 0) == (None, None, None, "⚠️ Upload an image or click one of the examples first.")
    *images, status = tab.run(Image.new("RGB", (65, 64)), 0.5, 0)
    assert images == [None, None, None] and "4,160 pixels" in status and "at most 4,096" in status
    assert "seed must be a whole number" in tab.run(Image.new("L", (16, 16)), 0.5, None)[3]  # a cleared box
    assert "mask ratio must be a number from 0 to 1; got None" in tab.run(Image.new("L", (16, 16)), None, 0)[3]


def test_example_images_take_digits_from_the_offset(tmp_path, monkeypatch):
    from sklearn.datasets import load_digits

    monkeypatch.delenv("HFSSL_DATA_DIR", raising=False)
    paths = example_images(tmp_path, count=2, offset=10)
    assert [p.split("/")[-1] for p in paths] == ["example-0.png", "example-1.png"]
    small = np.asarray(Image.open(paths[1]).resize((8, 8), Image.Resampling.NEAREST))
    assert np.array_equal(small, np.round(load_digits().images[11] * 255 / 16).astype(np.uint8))

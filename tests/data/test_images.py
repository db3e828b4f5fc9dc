"""Tests for hfssl.data.images: real images (sklearn digits, Fashion-MNIST) and hand-made files."""

from __future__ import annotations

import gzip
import logging
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from PIL import Image
from transformers import default_data_collator

from hfssl.data.images import (
    FASHION_MNIST_CLASSES,
    check_image_size,
    convert_image,
    digits_dataset,
    fashion_mnist_dataset,
    load_image_dataset,
)
from hfssl.data.pixels import (
    build_image_processor,
    compute_mean_std,
    normalize,
    to_float_pixels,
)


@pytest.fixture
def fashion_dir(data_dir: Path) -> Path:
    """$HFSSL_DATA_DIR/fashion_mnist (default ../shared/data, see tests/conftest.py), or a skip."""
    folder = data_dir / "fashion_mnist"
    if not (folder / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"Fashion-MNIST not found in {folder}")
    return folder


@pytest.fixture
def cache_dir(tmp_path: Path) -> str:
    return str(tmp_path / "hf_cache")


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """cat/ and dog/ with five decodable images of mixed sizes and modes plus one corrupt .png."""
    rng = np.random.default_rng(0)
    root = tmp_path / "images"
    (root / "cat").mkdir(parents=True)
    (root / "dog").mkdir()
    Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(root / "cat" / "rgb.png")
    Image.fromarray(rng.integers(0, 256, (40, 40), dtype=np.uint8)).save(root / "cat" / "gray.jpg")
    Image.fromarray(rng.integers(0, 256, (10, 12, 4), dtype=np.uint8), "RGBA").save(root / "dog" / "rgba.png")
    palette = Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).convert("P")
    palette.save(root / "dog" / "p.png")
    Image.fromarray(rng.integers(0, 65536, (9, 9), dtype=np.uint16)).save(root / "dog" / "i16.png")
    (root / "dog" / "broken.png").write_bytes(rng.bytes(300))
    return root


# ---------------------------------------------------------------- files and folders


def test_imagefolder_mixed_modes_and_sizes(image_folder: Path, cache_dir: str) -> None:
    ds, info = load_image_dataset(
        dataset="imagefolder", data_dir=str(image_folder), image_size=16, num_channels=3, cache_dir=cache_dir
    )
    batch = default_data_collator([ds[i] for i in range(len(ds))])
    assert batch["pixel_values"].shape == (5, 3, 16, 16) and batch["pixel_values"].dtype == torch.uint8
    assert ds.features["label"].names == ["cat", "dog"]
    assert sorted(batch["labels"].tolist()) == [0, 0, 1, 1, 1]
    assert info["images"] == 5 and info["skipped_undecodable"] == 1
    assert {"source", "image_size", "num_channels", "fingerprint"} <= set(info)
    assert info["image_size"] == 16 and info["num_channels"] == 3 and info["fingerprint"]


def test_recursive_glob_train_files(image_folder: Path, cache_dir: str) -> None:
    ds, info = load_image_dataset(
        train_files=[str(image_folder.parent / "**" / "*.png")], image_size=8, num_channels=1,
        cache_dir=cache_dir,
    )
    # `**` reaches images/cat and images/dog: rgb, rgba, p, i16 decode; broken.png is skipped.
    assert info["images"] == 4 and info["skipped_undecodable"] == 1
    assert ds[:]["pixel_values"].shape == (4, 1, 8, 8)


def test_a_folder_in_train_files_reads_every_image_under_it(image_folder: Path, cache_dir: str) -> None:
    """As --help says ("files, globs or folders"): class folders below it still give labels."""
    (image_folder / "notes.txt").write_text("not an image")
    (image_folder / "cat" / "UPPER.PNG").write_bytes((image_folder / "cat" / "rgb.png").read_bytes())
    ds, info = load_image_dataset(train_files=[str(image_folder)], image_size=8, num_channels=3, cache_dir=cache_dir)
    assert info["images"] == 6 and info["skipped_undecodable"] == 1  # UPPER.PNG too; notes.txt is not an image
    assert ds.features["label"].names == ["cat", "dog"]


def test_train_files_that_match_nothing_are_named(image_folder: Path, cache_dir: str) -> None:
    with pytest.raises(FileNotFoundError, match=r"matches no file\. It would match 5 file\(s\) ignoring case"):
        load_image_dataset(train_files=[str(image_folder / "*" / "*.PNG")], image_size=8, num_channels=3, cache_dir=cache_dir)
    (image_folder / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no image file"):
        load_image_dataset(train_files=[str(image_folder / "empty")], image_size=8, num_channels=3, cache_dir=cache_dir)
    with pytest.raises(FileNotFoundError, match="No such file or folder"):
        load_image_dataset(train_files=[str(image_folder / "nope")], image_size=8, num_channels=3, cache_dir=cache_dir)


def test_undecodable_file_is_reported_in_a_warning(
    image_folder: Path, cache_dir: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="hfssl.data.images"):
        load_image_dataset(dataset="imagefolder", data_dir=str(image_folder), image_size=8, num_channels=3,
                           cache_dir=cache_dir)
    assert "broken.png" in caplog.text and "Skipped 1 of 6" in caplog.text


def test_strict_raises_naming_the_file(image_folder: Path, cache_dir: str) -> None:
    with pytest.raises(ValueError, match="broken.png"):
        load_image_dataset(dataset="imagefolder", data_dir=str(image_folder), image_size=8, num_channels=3,
                           strict=True, cache_dir=cache_dir)


def test_zero_decodable_images(tmp_path: Path, cache_dir: str) -> None:
    (tmp_path / "bad").mkdir()
    for name in ("a.png", "b.jpg"):
        (tmp_path / "bad" / name).write_bytes(b"not an image at all" * 10)
    with pytest.raises(ValueError, match="No decodable images"):
        load_image_dataset(
            train_files=str(tmp_path / "bad" / "*"), image_size=8, num_channels=1, cache_dir=cache_dir
        )


def test_save_to_disk_folder(tmp_path: Path) -> None:
    digits_dataset().select(range(20)).save_to_disk(str(tmp_path / "saved"))
    ds, info = load_image_dataset(dataset=str(tmp_path / "saved"), image_size=8, num_channels=1)
    assert len(ds) == 20 and info["source"].startswith("disk:")
    assert ds.features["label"].names[0] == "0"


# ---------------------------------------------------------------- columns


def test_no_image_column_names_the_columns_and_the_fix() -> None:
    text_only = datasets.Dataset.from_dict({"text": ["a", "b"], "score": [1, 2]})
    with pytest.raises(ValueError, match=r"\['text', 'score'\].*--image-column"):
        load_image_dataset(dataset=text_only, image_size=8, num_channels=1)


def test_missing_explicit_columns() -> None:
    with pytest.raises(ValueError, match="'photo' not found"):
        load_image_dataset(dataset=digits_dataset(), image_column="photo", image_size=8, num_channels=1)
    with pytest.raises(ValueError, match="'target' not found"):
        load_image_dataset(dataset=digits_dataset(), label_column="target", image_size=8, num_channels=1)


def test_array_column_autodetected_and_label_renamed() -> None:
    arrays = np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5)
    raw = datasets.Dataset.from_dict({"id": ["a", "b", "c"], "pixels": list(arrays), "y": [2, 0, 1]})
    ds, _ = load_image_dataset(dataset=raw, label_column="y", image_size=5, num_channels=1)
    assert ds.column_names == ["pixel_values", "label"] and ds[:]["label"] == [2, 0, 1]
    first = ds[0]["pixel_values"]  # (1, 5, 5): resized from 4x5
    assert first.shape == (1, 5, 5)


def test_max_examples_is_a_seeded_subset() -> None:
    def labels(seed: int) -> list[int]:
        ds, info = load_image_dataset(dataset=digits_dataset(), image_size=8, num_channels=1,
                                      max_examples=30, seed=seed)
        assert info["images"] == 30
        return ds[:]["label"]

    assert labels(1) == labels(1)
    assert labels(1) != labels(2)


# ---------------------------------------------------------------- conversion of one image


def test_transparent_pixels_become_white() -> None:
    clear = Image.new("RGBA", (6, 6), (0, 0, 0, 0))
    assert (convert_image(clear, 6, 3) == 255).all()


def test_16_bit_images_are_scaled_not_clipped() -> None:
    image = Image.fromarray(np.tile(np.array([0, 32896, 65535], dtype=np.uint16), (3, 1)))
    assert image.mode == "I;16"
    assert convert_image(image, 3, 1)[0, 0].tolist() == [0, 128, 255]  # Pillow alone gives [0, 255, 255]


def test_rgb_to_gray_and_gray_to_rgb() -> None:
    red = Image.new("RGB", (4, 4), (255, 0, 0))
    gray = convert_image(red, 4, 1)
    assert gray.shape == (1, 4, 4) and int(gray[0, 0, 0]) == 76  # ITU-R 601 luma of pure red
    rgb = convert_image(Image.new("L", (3, 3), 100), 5, 3)
    assert rgb.shape == (3, 5, 5) and (rgb == 100).all()


def test_check_image_size() -> None:
    check_image_size(32, 4)
    with pytest.raises(ValueError, match="smaller than the patch size 4"):
        check_image_size(3, 4)
    with pytest.raises(ValueError, match="pass image_size=32 or"):
        check_image_size(30, 4)


# ---------------------------------------------------------------- real data


def test_digits_dataset_scaled_to_uint8() -> None:
    ds = digits_dataset()
    assert len(ds) == 1797 and isinstance(ds.features["image"], datasets.Image)
    assert ds.features["label"].names == [str(d) for d in range(10)]
    pixels = np.stack([np.asarray(image) for image in ds.select(range(200))["image"]])
    assert pixels.shape == (200, 8, 8) and pixels.dtype == np.uint8
    assert pixels.max() == 255 and pixels.min() == 0


def test_fashion_mnist_matches_the_idx_files(fashion_dir: Path) -> None:
    ds = fashion_mnist_dataset(fashion_dir, split="test", limit=64)
    raw = np.frombuffer(gzip.open(fashion_dir / "t10k-images-idx3-ubyte.gz").read(), np.uint8, offset=16)
    labels_file = fashion_dir / "t10k-labels-idx1-ubyte.gz"
    raw_labels = np.frombuffer(gzip.open(labels_file).read(), np.uint8, offset=8)
    assert ds.features["label"].names == FASHION_MNIST_CLASSES
    assert ds["label"] == raw_labels[:64].tolist()
    loaded, info = load_image_dataset(dataset=ds, image_size=28, num_channels=1)
    pixels = loaded[:]["pixel_values"]  # (64, 1, 28, 28), no resize at 28
    np.testing.assert_array_equal(pixels[:, 0], raw[: 64 * 784].reshape(64, 28, 28))
    assert info["source"] == "in-memory:fashion_mnist"


def test_fashion_mnist_missing_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte.gz"):
        fashion_mnist_dataset(tmp_path)
    with pytest.raises(ValueError, match="'val'"):
        fashion_mnist_dataset(tmp_path, split="val")


# ---------------------------------------------------------------- pixels and the processor


def test_float_pixels_normalize_and_statistics() -> None:
    ds, _ = load_image_dataset(dataset=digits_dataset(), image_size=8, num_channels=1, max_examples=300)
    floats = to_float_pixels(torch.from_numpy(ds[:]["pixel_values"]))
    assert floats.dtype == torch.float32 and floats.min() >= 0 and floats.max() <= 1
    mean, std = compute_mean_std(ds, batch_size=64)
    np.testing.assert_allclose(mean, [floats.double().mean().item()], rtol=1e-6)
    np.testing.assert_allclose(std, [floats.double().std(unbiased=False).item()], rtol=1e-5)
    normed = normalize(floats, mean, std)
    assert abs(normed.mean().item()) < 1e-4 and abs(normed.std().item() - 1) < 1e-2
    torch.testing.assert_close(to_float_pixels(ds.with_format("torch")[:]["pixel_values"]), floats)
    with pytest.raises(TypeError, match="integer pixels"):
        to_float_pixels(floats)


def test_image_processor_round_trip_matches_training_pixels(tmp_path: Path) -> None:
    from transformers import AutoImageProcessor

    mean, std = [0.2, 0.5, 0.3], [0.25, 0.2, 0.3]
    build_image_processor(16, 3, mean, std).save_pretrained(tmp_path / "model")
    processor = AutoImageProcessor.from_pretrained(tmp_path / "model")
    image = Image.fromarray(np.random.default_rng(1).integers(0, 256, (23, 31, 3), dtype=np.uint8))
    served = processor(image, return_tensors="pt")["pixel_values"]  # (1, 3, 16, 16)
    trained = normalize(to_float_pixels(torch.tensor(convert_image(image, 16, 3))[None]), mean, std)
    torch.testing.assert_close(served, trained, atol=1e-5, rtol=1e-5)


def test_a_grayscale_runs_processor_serves_the_image_pipelines_rgb_images(tmp_path: Path) -> None:
    """transformers' image pipelines load every image as RGB: the 1-channel processor (scalar mean and std) takes
    them, and the model reads their luma, so features match those of the image converted to grayscale."""
    from transformers import pipeline

    import hfssl  # noqa: F401  (registers the Auto classes)
    from hfssl.data.pixels import processor_stats
    from hfssl.models import HfsslVisionConfig, HfsslVisionModel

    processor = build_image_processor(16, 1, [0.3], [0.35])
    assert processor_stats(processor) == ([0.3], [0.35])
    torch.manual_seed(0)
    config = HfsslVisionConfig(image_size=16, patch_size=4, num_channels=1, hidden_size=32, num_hidden_layers=1,
                               num_attention_heads=2, intermediate_size=64)
    HfsslVisionModel(config).save_pretrained(tmp_path / "model")
    processor.save_pretrained(tmp_path / "model")
    extract = pipeline("image-feature-extraction", model=str(tmp_path / "model"))
    image = Image.fromarray(np.random.default_rng(2).integers(0, 256, (20, 24, 3), dtype=np.uint8))
    rgb, gray = (np.asarray(extract(picture, pool=True)) for picture in (image, image.convert("L")))
    assert rgb.shape == (1, 32)
    np.testing.assert_allclose(rgb, gray, atol=0.05)  # L rounds the luma to whole grey levels

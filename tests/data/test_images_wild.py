"""hfssl.data.images on image data as users have it: mixed formats and modes, odd extensions, broken and non-image
files beside good ones, tables of image bytes or paths, and the saved image processor on images as they open."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from transformers import AutoImageProcessor

from hfssl.data.images import convert_image, load_image_dataset
from hfssl.data.pixels import build_image_processor, normalize, processor_stats

_rng = np.random.default_rng(0)


def _rgb(height: int, width: int) -> Image.Image:
    return Image.fromarray(_rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


@pytest.fixture
def cache_dir(tmp_path: Path) -> str:
    return str(tmp_path / "hf_cache")


@pytest.fixture
def wild(tmp_path: Path) -> Path:
    """A photo folder as it comes: class folders, upper-case and rarer extensions, every PIL mode users meet, an
    EXIF-rotated JPEG, a 2x3 image, a 1000x10 strip, a truncated JPEG, a zero-byte PNG and non-image files."""
    root = tmp_path / "wild"
    for folder in ("cat/sub", "dog"):
        (root / folder).mkdir(parents=True)
    _rgb(40, 60).save(root / "cat" / "a.JPG")
    _rgb(30, 30).save(root / "cat" / "b.PNG")
    _rgb(50, 20).save(root / "cat" / "c.webp")
    _rgb(33, 33).save(root / "cat" / "d.bmp")
    _rgb(20, 25).save(root / "cat" / "e.tif")
    _rgb(20, 20).save(root / "cat" / "sub" / "nested.png")
    frames = [_rgb(16, 16).convert("P") for _ in range(3)]
    frames[0].save(root / "dog" / "anim.gif", save_all=True, append_images=frames[1:], duration=50, loop=0)
    Image.fromarray(_rng.integers(0, 256, (10, 12, 4), dtype=np.uint8), "RGBA").save(root / "dog" / "rgba.png")
    _rgb(16, 16).convert("P").save(root / "dog" / "palette.png")
    Image.fromarray(_rng.integers(0, 65536, (9, 9), dtype=np.uint16)).save(root / "dog" / "i16.png")
    _rgb(40, 40).convert("CMYK").save(root / "dog" / "cmyk.jpg")
    rotated = _rgb(20, 40)
    exif = rotated.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    rotated.save(root / "dog" / "exif.jpg", exif=exif)
    _rgb(2, 3).save(root / "dog" / "tiny.png")
    _rgb(1000, 10).save(root / "dog" / "strip.png")
    Image.fromarray(_rng.integers(0, 256, (30, 30), dtype=np.uint8)).save(root / "dog" / "gray.png")
    _rgb(20, 20).save(root / "dog" / "download.jfif", "JPEG")
    _rgb(20, 20).save(root / "dog" / "scan.tga")
    buffer = io.BytesIO()
    _rgb(64, 64).save(buffer, "JPEG")
    (root / "dog" / "truncated.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    (root / "dog" / "empty.png").write_bytes(b"")
    (root / "dog" / "notes.txt").write_text("not an image")
    (root / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1" + bytes(50))
    return root


_GOOD = 17  # decodable images in `wild`
_BROKEN = 2  # truncated.jpg, empty.png


# ---------------------------------------------------------------- folders, globs and files


def test_folder_reads_every_image_and_says_what_it_left_out(wild: Path, cache_dir: str, caplog) -> None:
    # .jfif (what browsers save) and .tga were left out of a folder without a word, though imagefolder reads them.
    with caplog.at_level(logging.INFO, logger="hfssl.data.images"):
        ds, info = load_image_dataset(train_files=[str(wild)], image_size=8, num_channels=3, cache_dir=cache_dir)
    assert info["images"] == _GOOD and info["skipped_undecodable"] == _BROKEN
    assert ds[0]["pixel_values"].shape == (3, 8, 8)
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "left out 2 other file(s)" in messages and "notes.txt" in messages
    assert f"Skipped {_BROKEN} of {_GOOD + _BROKEN} undecodable images" in messages
    assert "truncated.jpg" in messages and "empty.png" in messages


def test_imagefolder_data_dir_says_which_files_it_leaves_out(wild: Path, cache_dir: str, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="hfssl.data.images"):
        _, info = load_image_dataset(dataset="imagefolder", data_dir=str(wild), image_size=8, num_channels=3,
                                     cache_dir=cache_dir)
    assert info["images"] == _GOOD and info["skipped_undecodable"] == _BROKEN
    unread = [r.getMessage() for r in caplog.records if "imagefolder leaves out" in r.getMessage()]
    assert unread and "2 file(s)" in unread[0] and "notes.txt" in unread[0]


def test_listed_files_imagefolder_cannot_read_are_counted(wild: Path, tmp_path: Path, cache_dir: str,
                                                          caplog) -> None:
    _rgb(10, 10).save(tmp_path / "photo.avif")  # Pillow writes AVIF; imagefolder drops it
    files = [str(wild / "cat" / "a.JPG"), str(wild / "dog" / "notes.txt"), str(tmp_path / "photo.avif")]
    with caplog.at_level(logging.WARNING, logger="hfssl.data.images"):
        _, info = load_image_dataset(train_files=files, image_size=8, num_channels=3, cache_dir=cache_dir)
    assert info["images"] == 1
    assert any("Left out 2 of 3 file(s)" in r.getMessage() and "photo.avif" in r.getMessage()
               for r in caplog.records)
    # Nothing readable at all: a message naming the file, not datasets' 'Instruction "train" corresponds to no data'.
    with pytest.raises(ValueError, match="notes.txt"):
        load_image_dataset(train_files=[str(wild / "dog" / "notes.txt")], image_size=8, num_channels=3,
                           cache_dir=cache_dir)


def test_glob_that_misses_upper_case_extensions_warns(wild: Path, cache_dir: str, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="hfssl.data.images"):
        load_image_dataset(train_files=[str(wild / "**" / "*.png")], image_size=8, num_channels=3,
                           cache_dir=cache_dir)
    assert any("differ only in the case" in r.getMessage() and "b.PNG" in r.getMessage() for r in caplog.records)


def test_exif_rotation_and_modes_become_the_training_pixels(wild: Path) -> None:
    exif = Image.open(wild / "dog" / "exif.jpg")  # stored 40 wide x 20 high, displayed 20 x 40
    upright = convert_image(exif, 16, 3)
    stored = np.asarray(exif.convert("RGB").resize((16, 16), Image.Resampling.BICUBIC)).transpose(2, 0, 1)
    assert not np.array_equal(upright, stored)
    sixteen = convert_image(Image.open(wild / "dog" / "i16.png"), 8, 1)
    assert 20 < sixteen.mean() < 235  # 16-bit values scaled to 8 bits, not clipped to white


# ---------------------------------------------------------------- tables of image bytes or paths


@pytest.fixture
def tables(wild: Path, tmp_path: Path) -> Path:
    """parquet with encoded bytes, with datasets' {bytes, path} struct and with absolute paths; jsonl with paths
    relative to the table's folder."""
    files = sorted(f for f in wild.rglob("*") if f.suffix.lower() in {".jpg", ".png", ".webp"})
    folder = tmp_path / "tables"
    folder.mkdir()
    raw = [f.read_bytes() for f in files]
    pd.DataFrame({"img": raw, "name": [f.name for f in files]}).to_parquet(folder / "bytes.parquet")
    pd.DataFrame({"img": [{"bytes": b, "path": f.name} for b, f in zip(raw, files)]}).to_parquet(
        folder / "struct.parquet")
    pd.DataFrame({"file": [str(f) for f in files]}).to_parquet(folder / "paths.parquet")  # large_string
    with open(folder / "relative.jsonl", "w") as handle:
        handle.writelines(json.dumps({"file": str(Path("..") / f.relative_to(tmp_path)), "caption": "x"}) + "\n"
                          for f in files)
    return folder


_TABLE_GOOD, _TABLE_BROKEN = 12, 2  # the .jpg/.png/.webp files of `wild` (upper-case ones included)


@pytest.mark.parametrize("table, column", [("bytes.parquet", "img"), ("struct.parquet", None),
                                           ("paths.parquet", "file"), ("relative.jsonl", "file")])
def test_tables_of_image_bytes_or_paths(tables: Path, table: str, column: str | None, cache_dir: str) -> None:
    _, info = load_image_dataset(train_files=str(tables / table), image_column=column, image_size=8,
                                 num_channels=3, cache_dir=cache_dir)
    assert (info["images"], info["skipped_undecodable"]) == (_TABLE_GOOD, _TABLE_BROKEN)


def test_table_builder_with_data_dir_reads_bytes_and_relative_paths(tables: Path, cache_dir: str) -> None:
    (tables / "only_bytes").mkdir()
    (tables / "bytes.parquet").rename(tables / "only_bytes" / "bytes.parquet")
    _, info = load_image_dataset(dataset="parquet", data_dir=str(tables / "only_bytes"), image_column="img",
                                 image_size=8, num_channels=1, cache_dir=cache_dir)
    assert info["images"] == _TABLE_GOOD
    (tables / "only_json").mkdir()
    (tables / "only_json" / "relative.jsonl").write_text(
        (tables / "relative.jsonl").read_text().replace('"../', '"../../'))
    _, info = load_image_dataset(dataset="json", data_dir=str(tables / "only_json"), image_column="file",
                                 image_size=8, num_channels=1, cache_dir=cache_dir)
    assert info["images"] == _TABLE_GOOD


def test_tables_and_image_files_together_are_refused(tables: Path, wild: Path, cache_dir: str) -> None:
    with pytest.raises(ValueError, match="mixes image files and tables"):
        load_image_dataset(train_files=[str(tables / "bytes.parquet"), str(wild / "cat" / "a.JPG")],
                           image_column="img", image_size=8, num_channels=3, cache_dir=cache_dir)


def test_missing_values_are_named_as_missing(wild: Path, cache_dir: str, caplog) -> None:
    import datasets

    table = datasets.Dataset.from_dict({"file": [str(wild / "cat" / "a.JPG"), None]})
    with caplog.at_level(logging.WARNING, logger="hfssl.data.images"):
        _, info = load_image_dataset(dataset=table, image_column="file", image_size=8, num_channels=3,
                                     cache_dir=cache_dir)
    assert info["skipped_undecodable"] == 1
    assert any("row 1 (no image)" in r.getMessage() and "missing" in r.getMessage() for r in caplog.records)


# ---------------------------------------------------------------- the saved image processor


def test_saved_processor_reproduces_training_pixels_on_images_as_they_open(wild: Path, tmp_path: Path) -> None:
    """A Hub user passes Image.open(...) straight to the processor: grayscale, palette, CMYK and transparent images
    failed with "mean must have 4 elements"; they must give the pixels training saw."""
    mean, std = [0.4, 0.5, 0.6], [0.2, 0.25, 0.3]
    build_image_processor(16, 3, mean, std).save_pretrained(tmp_path / "processor")
    processor = AutoImageProcessor.from_pretrained(tmp_path / "processor")
    assert processor_stats(processor) == (mean, std)
    transparent = _rgb(12, 12).convert("P")
    transparent.info["transparency"] = 0
    images = [Image.open(wild / "dog" / name) for name in ("gray.png", "palette.png", "rgba.png", "cmyk.jpg",
                                                           "anim.gif")]
    images += [_rgb(20, 30).convert("LA"), transparent, Image.open(wild / "cat" / "a.JPG")]
    for image in images:
        trained = normalize(torch.tensor(convert_image(image, 16, 3))[None].float() / 255, mean, std)[0]
        given = processor(images=image, return_tensors="pt")["pixel_values"][0]
        assert given.shape == (3, 16, 16), image.mode
        assert torch.allclose(given, trained, atol=1e-4), image.mode


# ---------------------------------------------------------------- views the model can tile


def test_view_sizes_off_the_patch_grid_are_refused_when_the_views_are_built() -> None:
    """`--view-overrides local_crop_size=10` at patch 4 failed at the first training step ("resize the images"),
    after every image was decoded; the views know the patch size and name the option instead."""
    from hfssl.data.views import build_views

    with pytest.raises(ValueError, match=r"local_crop_size=10 gives 10-pixel views.*local_crop_size=8"):
        build_views("dino", 32, 3, [0.5] * 3, [0.2] * 3, patch_size=4, local_crop_size=10)
    with pytest.raises(ValueError, match=r"global_crop_size=0.7 gives 22-pixel views.*multiple of 4"):
        build_views("simclr", 32, 3, [0.5] * 3, [0.2] * 3, patch_size=4, global_crop_size=0.7)
    views = build_views("dino", 32, 3, [0.5] * 3, [0.2] * 3, patch_size=4, n_local_crops=2, local_crop_size=12)
    assert [v.shape[-1] for v in views(torch.rand(2, 3, 32, 32))] == [32, 32, 12, 12]

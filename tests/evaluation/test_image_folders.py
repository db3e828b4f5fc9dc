"""Image folders for `hfssl evaluate`: the class layout errors say what is wrong and how to lay the folders out, and
grayscale, RGBA and differently sized images (and a stray text file) just work."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hfssl.cli import main
from hfssl.evaluation import evaluate_run


def _images(folder: Path, count: int, *, modes=("L",), sizes=((8, 8),), seed=0) -> None:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        mode, (w, h) = modes[i % len(modes)], sizes[i % len(sizes)]
        channels = {"L": (), "RGB": (3,), "RGBA": (4,)}[mode]
        Image.fromarray(rng.integers(0, 256, (h, w, *channels), dtype=np.uint8), mode).save(folder / f"{i}.png")


def test_a_single_class_folder_is_refused_with_the_layout_that_fixes_it(vision_run, tmp_path, capsys):
    _images(tmp_path / "photos" / "cat", 6)
    before = (vision_run / "run.json").read_text()
    with pytest.raises(ValueError, match=r"Only one class found at '.*photos': all 6 images are in the folder 'cat'"
                                         r".*needs at least 2 classes") as error:
        evaluate_run(vision_run, "linear-probe", train_files=[str(tmp_path / "photos")], progress=False)
    assert "photos/cat/1.png, photos/dog/2.png" in str(error.value)  # the fix: one folder per class
    assert main(["evaluate", str(vision_run), "--train-files", str(tmp_path / "photos")]) == 2
    assert "Only one class found" in capsys.readouterr().err
    assert (vision_run / "run.json").read_text() == before and not (vision_run / "eval").exists()


def test_images_without_class_folders_or_at_mixed_depths(vision_run, tmp_path):
    _images(tmp_path / "flat", 4)
    with pytest.raises(ValueError, match=r"Only one class found at .*in the folder 'flat'"):
        evaluate_run(vision_run, "knn", train_files=[str(tmp_path / "flat")], progress=False)
    _images(tmp_path / "deep" / "a", 3)
    _images(tmp_path / "deep" / "b" / "more", 3)
    with pytest.raises(ValueError, match="lie at different folder depths"):
        evaluate_run(vision_run, "knn", train_files=[str(tmp_path / "deep")], progress=False)


def test_no_image_at_the_path_says_so(vision_run, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"No image file \(.*\.png.*\) either"):
        evaluate_run(vision_run, "knn", train_files=[str(tmp_path / "empty")], progress=False)
    with pytest.raises(FileNotFoundError, match="No such file or folder"):
        evaluate_run(vision_run, "knn", train_files=[str(tmp_path / "missing")], progress=False)


def test_mixed_modes_and_sizes_and_a_readme_beside_the_class_folders(vision_run, tmp_path):
    for i, name in enumerate(("cat", "dog", "owl")):
        _images(tmp_path / "photos" / name, 6, modes=("L", "RGB", "RGBA"), sizes=((8, 8), (20, 12), (33, 40)), seed=i)
    (tmp_path / "photos" / "README.txt").write_text("Photos of animals, one folder per class.\n")
    result = evaluate_run(vision_run, "knn", train_files=[str(tmp_path / "photos")], k=[3], progress=False,
                          print_table=False)
    assert result["data"]["class_names"] == ["cat", "dog", "owl"]  # was: the README read as a text file
    assert result["data"]["train_examples"] + result["data"]["test_examples"] == 18


def test_a_test_folder_without_one_class_and_a_one_example_test_set(vision_run, tmp_path):
    for name in ("a", "b", "c"):
        _images(tmp_path / "train" / name, 5)
    for name in ("a", "b"):
        _images(tmp_path / "test" / name, 2)
    result = evaluate_run(vision_run, "linear-probe", train_files=[str(tmp_path / "train")],
                          test_files=[str(tmp_path / "test")], progress=False, print_table=False)
    assert result["data"]["classes_without_test_examples"] == ["c"]
    assert json.loads((vision_run / "eval" / "linear-probe.json").read_text())["data"]["macro_f1_classes"] == ["a", "b"]
    _images(tmp_path / "one" / "a", 1)
    result = evaluate_run(vision_run, "knn", train_files=[str(tmp_path / "train")], test_files=[str(tmp_path / "one")],
                          k=[3], progress=False, print_table=False)  # crashed in the diagnostics of one row
    assert result["data"]["test_examples"] == 1 and result["diagnostics"]["pretrained"]["uniformity"] is None


def test_bad_k_is_refused_before_the_model_loads(tmp_path):
    with pytest.raises(ValueError, match=r"k=\[0\]: give one or more neighbour counts, each >= 1"):
        evaluate_run(tmp_path / "no-run", "knn", dataset="digits", k=[0])  # no model there: checked first

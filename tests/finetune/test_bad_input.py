"""Each bad input is refused with a message naming it and the fix, before anything is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from hfssl.finetune import finetune
from hfssl.finetune.command import main


def refuse(error_type, match: str, out: Path, parent, **kwargs) -> None:
    with pytest.raises(error_type, match=match):
        finetune(parent, output=out, **kwargs)
    assert not out.exists(), "a refused run left a directory behind"


def test_unknown_peft_method_lists_the_valid_ones(text_parent, tmp_path):
    refuse(KeyError, "Unknown PEFT method 'lorra'; valid methods: none, lora, dora, ia3", tmp_path / "run",
           text_parent, task="text-classification", dataset="stdlib-docstrings", peft="lorra")


def test_target_modules_matching_nothing_name_the_linear_modules(text_parent, tmp_path):
    refuse(ValueError, "'query' match no linear module.*attn.qkv, attn.out, mlp.up, mlp.down", tmp_path / "run",
           text_parent, task="text-classification", dataset="stdlib-docstrings", target_modules=["query"])


def test_test_labels_missing_from_training_are_named(text_parent, tmp_path):
    (tmp_path / "train.csv").write_text("text,label\ngood film,pos\nbad film,neg\n", encoding="utf-8")
    (tmp_path / "test.csv").write_text("text,label\nfine film,neutral\nbad,neg\n", encoding="utf-8")
    refuse(ValueError, "label\\(s\\) neutral that the training split never shows", tmp_path / "run", text_parent,
           task="text-classification", train_files=[str(tmp_path / "train.csv")],
           test_files=[str(tmp_path / "test.csv")])


def test_an_image_parent_is_refused_for_text(image_parent, tmp_path):
    refuse(ValueError, "is an image model but --task text-classification needs a text model; use --task "
           "image-classification", tmp_path / "run", image_parent, task="text-classification",
           dataset="stdlib-docstrings")


def test_a_text_parent_is_refused_for_images(text_parent, tmp_path):
    refuse(ValueError, "is a text model but --task image-classification needs an image model", tmp_path / "run",
           text_parent, task="image-classification", dataset="digits")


def test_a_built_in_dataset_of_the_other_modality(text_parent, tmp_path):
    refuse(ValueError, "--dataset digits holds image data but --task is text-classification", tmp_path / "run",
           text_parent, task="text-classification", dataset="digits")


def test_a_missing_parent(tmp_path):
    refuse(FileNotFoundError, "does not exist", tmp_path / "run", str(tmp_path / "nope"),
           task="text-classification", dataset="stdlib-docstrings")


def test_an_existing_output_needs_overwrite(text_parent, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    with pytest.raises(FileExistsError, match="--overwrite") as refused:
        finetune(text_parent, task="text-classification", output=out, dataset="stdlib-docstrings")
    assert "--resume" not in str(refused.value)  # hfssl finetune has no --resume to suggest
    assert (out / "keep.txt").read_text() == "precious"


def test_unknown_training_argument(text_parent, tmp_path):
    refuse(ValueError, "Bad training argument.*learning_rat", tmp_path / "run", text_parent,
           task="text-classification", dataset="stdlib-docstrings", max_train_examples=20,
           training_args={"learning_rat": 0.1})


def test_command_line_key_value_options_must_have_an_equals_sign(text_parent, tmp_path):
    with pytest.raises(ValueError, match="--peft-option takes KEY=VALUE, got 'use_rslora'"):
        main([str(text_parent), "--task", "text-classification", "--dataset", "stdlib-docstrings",
              "--output", str(tmp_path / "run"), "--peft-option", "use_rslora"])

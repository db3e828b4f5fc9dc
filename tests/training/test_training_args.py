"""PretrainingArguments: the defaults hfssl changes, and that explicit flags still win."""

from __future__ import annotations

import warnings

from transformers import HfArgumentParser

from hfssl.training.setup import has_accelerator
from hfssl.training.training_args import PretrainingArguments


def test_batches_are_pinned_only_where_an_accelerator_can_use_them(tmp_path):
    parser = HfArgumentParser(PretrainingArguments)
    (parsed,) = parser.parse_args_into_dataclasses(["--output_dir", str(tmp_path)])
    assert parsed.dataloader_pin_memory is has_accelerator()
    assert PretrainingArguments(output_dir=str(tmp_path)).dataloader_pin_memory is has_accelerator()
    (explicit,) = parser.parse_args_into_dataclasses(["--output_dir", str(tmp_path), "--dataloader-pin-memory", "true"])
    assert explicit.dataloader_pin_memory is True


def test_a_pretraining_run_without_an_accelerator_gives_no_pin_memory_warning(tmp_path):
    from hfssl.cli import main

    from .test_pretrain_ssl_cli import IMAGES

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["pretrain", *IMAGES, "--objective", "mae", "--output", str(tmp_path / "mae"), "--max-steps", "2",
                     "--collapse-every", "0"]) == 0
    pinned = [w for w in caught if "pin_memory" in str(w.message)]
    assert has_accelerator() or not pinned, pinned[0].message if pinned else None

"""`pretrain(...)` called from Python, as README.md shows: argument objects reused across runs, paths given as
`pathlib.Path`, in-memory data sets, and where the run goes when `output` and `output_dir` disagree."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from transformers import AutoModelForMaskedLM, pipeline

import hfssl  # noqa: F401
from hfssl.training.arguments import DataArguments, ModelArguments, RunArguments
from hfssl.training.pretrain import pretrain
from hfssl.training.training_args import PretrainingArguments

OVERRIDES = "hidden_size=64,num_attention_heads=2,intermediate_size=128"


def training_args(output_dir, **settings) -> PretrainingArguments:
    """Tiny settings as in test_run_continuation.py's TINY; `settings` win."""
    return PretrainingArguments(**{"output_dir": str(output_dir), "max_steps": 2, "report_to": "none",
                                   "per_device_train_batch_size": 8, "eval_steps": 1000, "logging_steps": 1,
                                   "disable_tqdm": True, **settings})


def text_model() -> ModelArguments:
    return ModelArguments(objective="mlm", model_size="tiny", config_overrides=OVERRIDES, vocab_size=500)


@pytest.fixture
def corpus(tmp_path) -> Path:
    """300 short lines of text: enough blocks of 64 tokens to train and evaluate on."""
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(f"Line {i} of a small corpus about parsing {i % 7} files." for i in range(300)))
    return path


def test_one_training_arguments_object_serves_runs_of_two_objectives(tmp_path, corpus, caplog):
    """A SimCLR run used to rewrite the caller's object (output_dir, drop_last, remove_unused_columns, the eval
    batch, include_num_input_tokens_seen="no"), so a later MLM run with it counted 0 tokens."""
    shared = training_args(tmp_path / "elsewhere")
    given = shared.to_dict()
    with caplog.at_level(logging.WARNING, logger="hfssl.training.pretrain"):
        pretrain(ModelArguments(objective="simclr", model_size="tiny"),
                 DataArguments(dataset="digits", image_size=8, max_train_examples=32),
                 RunArguments(output=str(tmp_path / "simclr"), collapse_every=0), shared)
    assert shared.to_dict() == given
    assert "--output_dir" in caplog.text and "elsewhere" in caplog.text  # --output won, and it was said
    assert not (tmp_path / "elsewhere").exists()

    mlm = pretrain(text_model(), DataArguments(train_files=[str(corpus)], block_size=64),
                   RunArguments(output=str(tmp_path / "mlm")), shared)
    assert mlm.manifest["pretrain"]["tokens_seen"] == 2 * 8 * 64
    assert mlm.manifest["arguments"]["training"]["dataloader_drop_last"] is False


def test_a_run_with_no_output_is_refused_instead_of_going_to_trainer_output(tmp_path, monkeypatch):
    """transformers fills an unset output_dir with "trainer_output"; that is not a place the user chose."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=r"Say where the run goes.*RunArguments\(output="):
        pretrain(text_model(), DataArguments(dataset="stdlib-docstrings"), RunArguments(),
                 PretrainingArguments(max_steps=1, report_to="none"))
    assert list(tmp_path.iterdir()) == []


def test_paths_work_where_the_command_line_gives_strings(tmp_path, corpus):
    """A `pathlib.Path` (or a single path) for --train-files used to fail inside file resolution; the run then ends
    with a model/ folder that the Auto classes and a pipeline load, also with save_strategy="no"."""
    assert DataArguments(train_files=corpus).train_files == [str(corpus)]
    assert DataArguments(dataset=tmp_path).dataset == str(tmp_path)

    out = tmp_path / "run"
    result = pretrain(text_model(), DataArguments(train_files=[corpus], block_size=64),
                      RunArguments(output=out), training_args(out, save_strategy="no"))
    assert result.run.path == out and result.manifest["pretrain"]["steps"] == 2
    assert not list((out / "checkpoints").glob("checkpoint-*"))
    model = AutoModelForMaskedLM.from_pretrained(out / "model")
    assert type(model).__name__ == "HfsslTextForMaskedLM"
    fill = pipeline("fill-mask", model=str(out / "model"))
    assert len(fill(f"Line {fill.tokenizer.mask_token} of a corpus.", top_k=2)) == 2

"""`DataArguments(dataset=...)` given an in-memory `datasets` object from Python: text and image objectives train on
it, run.json and the model card name it, --resume compares its fingerprint, bad objects are refused before anything
is written; `finetune` and `evaluate_run` take such objects too."""

from __future__ import annotations

import json

import datasets
import pytest

import hfssl  # noqa: F401
from hfssl.cards import render_card
from hfssl.data.images import digits_dataset
from hfssl.evaluation.api import evaluate_run
from hfssl.finetune.api import finetune
from hfssl.training.arguments import DataArguments, ModelArguments, RunArguments
from hfssl.training.pretrain import pretrain
from hfssl.training.training_args import PretrainingArguments

OVERRIDES = "hidden_size=64,num_attention_heads=2,intermediate_size=128"


def training_args(output_dir, **settings) -> PretrainingArguments:
    return PretrainingArguments(**{"output_dir": str(output_dir), "max_steps": 2, "report_to": "none",
                                   "per_device_train_batch_size": 8, "eval_steps": 1000, "logging_steps": 1,
                                   "disable_tqdm": True, **settings})


def text_model(objective: str = "mlm") -> ModelArguments:
    return ModelArguments(objective=objective, model_size="tiny", config_overrides=OVERRIDES, vocab_size=400)


def texts(n: int = 200, word: str = "parsing") -> list[str]:
    return [f"Line {i} of a small corpus about {word} {i % 7} files and {i % 5} sockets." for i in range(n)]


@pytest.fixture(scope="module")
def rows() -> datasets.Dataset:
    """Text under another column name, beside a column that is not text."""
    return datasets.Dataset.from_dict({"body": texts(), "id": list(range(200))})


@pytest.fixture(scope="module")
def digits() -> datasets.Dataset:
    return digits_dataset().select(range(96))


def run_json(path) -> dict:
    return json.loads((path / "run.json").read_text(encoding="utf-8"))


def test_a_dataset_trains_mlm_and_run_json_and_the_card_name_it(tmp_path, rows):
    out = tmp_path / "mlm"
    pretrain(text_model(), DataArguments(dataset=rows, text_column="body", block_size=32),
             RunArguments(output=out, collapse_every=0), training_args(out))
    manifest = run_json(out)
    data = manifest["data"]
    assert data["source"] == "in-memory datasets.Dataset" and data["format"] == "in-memory"
    assert data["fingerprint"] == rows._fingerprint and data["columns"] == ["body", "id"]
    assert data["text_column"] == "body" and data["train_rows"] + data["validation_rows"] == 200
    assert manifest["arguments"]["data"]["dataset"] == "in-memory datasets.Dataset"
    card = render_card(out).read_text(encoding="utf-8")
    assert "| name | in-memory datasets.Dataset |" in card and rows._fingerprint in card


def test_a_dataset_dict_gives_its_train_and_validation_splits_to_simcse(tmp_path, rows):
    out = tmp_path / "simcse"
    held_out = datasets.Dataset.from_dict({"body": texts(12, "hashing"), "id": list(range(12))})
    data = datasets.DatasetDict(train=rows, validation=held_out)
    pretrain(text_model("simcse"), DataArguments(dataset=data, text_column="body", block_size=32),
             RunArguments(output=out, collapse_every=0), training_args(out))
    recorded = run_json(out)["data"]
    assert recorded["source"] == "in-memory datasets.DatasetDict"
    assert (recorded["train_split"], recorded["validation_split"]) == ("train", "validation")
    assert (recorded["train_rows"], recorded["validation_rows"]) == (200, 12)  # nothing carved off
    assert recorded["validation_fingerprint"] == held_out._fingerprint


def test_an_iterable_dataset_is_streamed_to_clm(tmp_path, rows):
    out = tmp_path / "clm"
    arguments = DataArguments(dataset=rows.to_iterable_dataset(), text_column="body", block_size=32,
                              validation_examples=20)
    assert arguments.streaming is True
    pretrain(text_model("clm"), arguments, RunArguments(output=out, collapse_every=0), training_args(out))
    recorded = run_json(out)
    assert recorded["data"]["source"] == "in-memory datasets.IterableDataset" and recorded["data"]["streaming"]
    assert len(recorded["data"]["fingerprint"]) == 64 and recorded["pretrain"]["steps"] == 2


def test_resume_takes_the_same_dataset_and_refuses_other_rows(tmp_path, rows, capsys):
    """The same rows with one line edited have the same row and block counts: only the fingerprint tells them
    apart, as the files' fingerprint does for --train-files."""
    out = tmp_path / "run"

    def run(data: datasets.Dataset, resume: bool, steps: int):
        return pretrain(text_model(), DataArguments(dataset=data, text_column="body", block_size=32),
                        RunArguments(output=out, resume=resume, collapse_every=0),
                        training_args(out, max_steps=steps, save_steps=2))

    run(rows, resume=False, steps=2)
    edited = rows.map(lambda row, i: {"body": row["body"].replace("files", "FILES") if i == 3 else row["body"]},
                      with_indices=True)
    with pytest.raises(ValueError, match=r"--resume: the data .* differs .*fingerprint \(the in-memory data set"):
        run(edited, resume=True, steps=3)
    again = datasets.Dataset.from_dict({"body": texts(), "id": list(range(200))})  # rebuilt: same fingerprint
    assert run(again, resume=True, steps=3).manifest["pretrain"]["steps"] == 3


def test_images_from_a_dataset_train_mae_and_from_a_dataset_dict_simclr(tmp_path, digits):
    mae = tmp_path / "mae"
    pretrain(ModelArguments(objective="mae", model_size="tiny"), DataArguments(dataset=digits, image_size=8),
             RunArguments(output=mae, collapse_every=0), training_args(mae))
    data = run_json(mae)["data"]
    assert data["source"] == "in-memory datasets.Dataset" and data["fingerprint"] == digits._fingerprint
    assert data["train_rows"] + data["validation_rows"] == 96 and data["columns"] == ["image", "label"]

    simclr = tmp_path / "simclr"
    splits = datasets.DatasetDict(train=digits.select(range(80)), test=digits.select(range(80, 96)))
    pretrain(ModelArguments(objective="simclr", model_size="tiny"), DataArguments(dataset=splits, image_size=8),
             RunArguments(output=simclr, collapse_every=0), training_args(simclr))
    data = run_json(simclr)["data"]
    assert (data["train_rows"], data["validation_rows"], data["validation_split"]) == (80, 16, "test")
    assert data["validation_source"] == "in-memory datasets.DatasetDict (split 'test')"
    assert "in-memory datasets.DatasetDict" in render_card(simclr).read_text(encoding="utf-8")

    evaluated = evaluate_run(simclr, "knn", dataset=splits, k=[3], progress=False, print_table=False)
    assert evaluated["data"]["source"] == "in-memory datasets.DatasetDict"
    assert evaluated["data"]["test_examples"] == 16
    tuned = finetune(simclr, task="image-classification", output=tmp_path / "tuned", dataset=splits, epochs=1,
                     batch_size=16)
    assert tuned["test_examples"] == 16
    assert run_json(tmp_path / "tuned")["data"]["source"] == "in-memory datasets.DatasetDict"


@pytest.mark.parametrize("objective, data, message", [
    ("mlm", datasets.Dataset.from_dict({"words": ["some text here"] * 8}),
     r"Text column 'text' not found .*in-memory datasets.Dataset.*\['words'\].*text_column="),
    ("mae", datasets.Dataset.from_dict({"text": ["some text here"] * 8}),
     r"No image column found among \['text'\].*image_column="),
    ("mae", datasets.Dataset.from_dict({"text": ["some text here"] * 8}).to_iterable_dataset(),
     r"an IterableDataset is a stream: pass a datasets.Dataset"),
])
def test_unusable_data_is_refused_before_the_run_directory_is_written(tmp_path, objective, data, message):
    model = text_model() if objective == "mlm" else ModelArguments(objective=objective, model_size="tiny")
    with pytest.raises(ValueError, match=message):
        pretrain(model, DataArguments(dataset=data, image_size=8), RunArguments(output=tmp_path / "run"),
                 training_args(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("value, message", [
    (datasets.Dataset.from_dict({"text": []}), r"the in-memory Dataset has no rows"),
    (datasets.DatasetDict(train=datasets.Dataset.from_dict({"text": []})), r"split 'train' .* has no rows"),
    (datasets.DatasetDict(training=datasets.Dataset.from_dict({"text": ["a"]})),
     r"no split 'train' .* it has \['training'\]\. Pass one of them as train_split="),
    ({"text": ["a line"]}, r"got a dict object: pass a datasets.Dataset.*Dataset.from_dict"),
    (["a line"], r"got a list object"),
])
def test_a_bad_dataset_object_is_refused_naming_the_fix(value, message):
    with pytest.raises(ValueError, match=message):
        DataArguments(dataset=value)


def test_flags_an_object_has_no_use_for_are_refused_not_ignored(rows):
    with pytest.raises(ValueError, match=r"data_dir='x' goes with a named dataset .* drop it"):
        DataArguments(dataset=rows, data_dir="x")
    with pytest.raises(ValueError, match=r"validation_split='test' picks a split of a DatasetDict.*DatasetDict\(train="):
        DataArguments(dataset=rows, validation_split="test")

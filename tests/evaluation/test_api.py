"""`evaluate_run` end to end on tiny run directories: files in eval/, the run.json section, bad input."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import datasets
import numpy as np
import pytest

from hfssl.evaluation import SupervisedSettings, evaluate_run
from hfssl.training.rundir import RunDirectory

from .conftest import sentiment_texts

FAST_SUPERVISED = SupervisedSettings(epochs=1, min_steps=5, batch_size=64)


def _write_csv(path: Path, texts: list[str], labels: list[str]) -> str:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows(zip(texts, labels))
    return str(path)


@pytest.fixture
def sentiment_files(tmp_path: Path) -> tuple[str, str]:
    train = _write_csv(tmp_path / "train.csv", *sentiment_texts(120, seed=1))
    test = _write_csv(tmp_path / "test.csv", *sentiment_texts(40, seed=2))
    return train, test


def _manifest(run: Path) -> dict:
    return json.loads((run / "run.json").read_text())


def test_linear_probe_on_digits_writes_eval_files_and_run_json(vision_run, capsys):
    result = evaluate_run(vision_run, "linear-probe", dataset="digits", baselines=["random-init", "supervised"],
                          supervised=FAST_SUPERVISED, max_train_examples=600, progress=False)
    assert set(result["arms"]) == {"pretrained", "random-init", "supervised"}
    assert result["arms"]["pretrained"]["accuracy"] > 0.3  # even random ViT features separate digits somewhat
    assert result["data"]["test_split"].startswith("carved")
    assert (vision_run / "eval" / "linear-probe.json").is_file()
    assert (vision_run / "eval" / "linear-probe.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    manifest = _manifest(vision_run)
    assert manifest["objective"] == "mae"  # earlier sections kept
    assert manifest["eval"]["linear-probe"]["arms"]["pretrained"]["accuracy"] == result["arms"]["pretrained"]["accuracy"]
    assert set(result["diagnostics"]) == {"pretrained", "random-init"}
    table = capsys.readouterr().out
    assert "linear-probe: sklearn-digits" in table and "random-init" in table and "supervised" in table


def test_protocols_merge_into_the_eval_section(vision_run):
    evaluate_run(vision_run, "knn", dataset="digits", k=[5, 5000], progress=False, print_table=False)
    evaluate_run(vision_run, "label-efficiency", dataset="digits", fractions=[0.05, 0.2], seeds=2,
                 baselines=["random-init", "supervised"], supervised=FAST_SUPERVISED, max_train_examples=400,
                 progress=False, print_table=False)
    sections = _manifest(vision_run)["eval"]
    assert set(sections) == {"knn", "label-efficiency"}
    assert sections["knn"]["arms"]["pretrained"]["protocol"]["k_used"] == [5, 1437]
    curves = sections["label-efficiency"]["curves"]
    assert set(curves) == {"pretrained", "random-init", "supervised"}
    sizes = [p["examples"] for p in curves["pretrained"]]
    assert sizes[0] == 20 and 76 <= sizes[1] <= 84  # 2 per class, then about 8 per class of ~40
    assert all(len(p["accuracies"]) == 2 for p in curves["supervised"])
    assert {p.name for p in (vision_run / "eval").iterdir()} == {
        "knn.json", "knn.png", "label-efficiency.json", "label-efficiency.png"}


@pytest.mark.parametrize("separator", [",", "\t"])
def test_text_run_with_local_csv_files(text_run, sentiment_files, tmp_path, separator):
    train, test = sentiment_files
    if separator == "\t":  # the same rows as tab-separated .tsv files
        import pandas as pd

        tsv = [tmp_path / Path(f).with_suffix(".tsv").name for f in (train, test)]
        for source, target in zip((train, test), tsv):
            pd.read_csv(source).to_csv(target, sep="\t", index=False)
        train, test = map(str, tsv)
    result = evaluate_run(text_run, "knn", train_files=[train], test_files=[test], baselines=["random-init"],
                          progress=False, print_table=False)
    assert result["data"]["class_names"] == ["neg", "pos"]
    assert result["data"]["train_examples"] == 120 and result["data"]["test_examples"] == 40
    assert result["model"]["modality"] == "text"
    assert (text_run / "eval" / "knn.json").is_file()


def test_stock_transformers_encoder_in_a_run_directory(tmp_path, tiny_tokenizer, sentiment_files):
    from transformers import BertConfig, BertModel

    run = RunDirectory(tmp_path / "bert")
    run.path.mkdir()
    model = BertModel(BertConfig(vocab_size=len(tiny_tokenizer), hidden_size=16, num_hidden_layers=1,
                                 num_attention_heads=2, intermediate_size=32, max_position_embeddings=64))
    run.save_model(model, tiny_tokenizer)
    train, test = sentiment_files
    result = evaluate_run(run.path, "linear-probe", train_files=[train], test_files=[test], pooling="cls",
                          progress=False, print_table=False)
    assert result["model"] == {"path": str(run.model_dir), "class": "BertModel", "modality": "text",
                               "features": "pooling=cls", "device": "cpu"}


def test_text_run_on_rotten_tomatoes(text_run, data_dir):
    folder = data_dir / "rotten_tomatoes"
    result = evaluate_run(text_run, "linear-probe", train_files=[str(folder / "train.csv")],
                          test_files=[str(folder / "test.csv")], max_train_examples=300, max_test_examples=100,
                          progress=False, print_table=False)
    assert result["data"]["num_classes"] == 2 and result["data"]["train_examples"] == 300


def test_fashion_mnist_builtin_name(vision_run, data_dir):
    result = evaluate_run(vision_run, "knn", dataset="fashion-mnist", data_dir=str(data_dir / "fashion_mnist"),
                          k=[10], max_train_examples=300, max_test_examples=100, progress=False, print_table=False)
    assert result["data"]["num_classes"] == 10 and result["data"]["test_split"] == "given"
    assert result["arms"]["pretrained"]["accuracy"] > 0.2  # chance is 0.1


# ---------------------------------------------------------------------------------------------- bad input


def _unchanged(run: Path, action) -> None:
    """Run `action`, which must raise, and check that the run directory is exactly as before."""
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    action()
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def test_run_without_a_model(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"empty.*config.json does not exist.*written by `hfssl pretrain`"):
        evaluate_run(tmp_path / "empty", "knn", dataset="digits")


def test_text_data_for_an_image_model(vision_run, sentiment_files):
    def action():
        with pytest.raises(ValueError, match="image encoder but the dataset has no image column; it holds text"):
            evaluate_run(vision_run, "knn", train_files=[sentiment_files[0]], progress=False)

    _unchanged(vision_run, action)


def test_image_data_for_a_text_model(text_run):
    with pytest.raises(ValueError, match="text encoder but the dataset has no text column; it holds images"):
        evaluate_run(text_run, "knn", dataset="digits", progress=False)


def test_missing_label_column_lists_the_columns(vision_run):
    with pytest.raises(ValueError, match=r"'category' not found; the columns are \['image', 'label'\]"):
        evaluate_run(vision_run, "knn", dataset="digits", label_column="category", progress=False)


def test_one_class_only(text_run, tmp_path):
    path = _write_csv(tmp_path / "one.csv", sentiment_texts(20)[0], ["pos"] * 20)
    with pytest.raises(ValueError, match="one class only"):
        evaluate_run(text_run, "linear-probe", train_files=[path], progress=False)


def test_fraction_that_empties_a_class(vision_run):
    def action():
        with pytest.raises(ValueError, match=r"Label fraction 0.001 leaves class '0' \(id 0\) with zero examples"):
            evaluate_run(vision_run, "label-efficiency", dataset="digits", fractions=[0.001, 0.5], progress=False)

    _unchanged(vision_run, action)


def test_unknown_protocol_and_baseline(vision_run):
    with pytest.raises(ValueError, match="valid protocols: linear-probe, knn, finetune, label-efficiency"):
        evaluate_run(vision_run, "probe", dataset="digits")
    with pytest.raises(ValueError, match="valid baselines: random-init, supervised"):
        evaluate_run(vision_run, "knn", dataset="digits", baselines=["imagenet"])


def test_in_memory_dataset_with_string_labels_and_a_named_test_split(vision_run):
    rng = np.random.default_rng(0)
    rows = {"picture": [rng.integers(0, 256, (8, 8), dtype=np.uint8) for _ in range(40)],
            "kind": ["cat", "dog"] * 20}
    split = datasets.Dataset.from_dict(rows)
    data = datasets.DatasetDict({"train": split, "holdout": split.select(range(10))})
    result = evaluate_run(vision_run, "knn", dataset=data, test_split="holdout", image_column="picture",
                          label_column="kind", k=[3], progress=False, print_table=False)
    assert result["data"]["class_names"] == ["cat", "dog"] and result["data"]["test_examples"] == 10
    with pytest.raises(ValueError, match=r"no split 'test'; its splits are \['holdout', 'train'\]"):
        evaluate_run(vision_run, "knn", dataset=data, test_split="test", image_column="picture", label_column="kind")


def test_finetune_protocol_runs_a_child_run_inside_eval(vision_run):
    pytest.importorskip("hfssl.finetune")
    result = evaluate_run(vision_run, "finetune", dataset="digits", max_train_examples=200, max_test_examples=100,
                          finetune_epochs=2, finetune_learning_rate=1e-3, progress=False, print_table=False)
    pretrained = result["arms"]["pretrained"]
    assert 0 <= pretrained["accuracy"] <= 1 and pretrained["protocol"]["run_dir"] == str(vision_run / "eval" / "finetune")
    assert pretrained["protocol"]["epochs"] == 2 and pretrained["protocol"]["learning_rate"] == 1e-3
    assert (vision_run / "eval" / "finetune" / "run.json").is_file()
    assert "finetune" in _manifest(vision_run)["eval"]


def test_finetune_schedule_must_be_positive(vision_run):
    with pytest.raises(ValueError, match="finetune_epochs must be > 0, got 0"):
        evaluate_run(vision_run, "finetune", dataset="digits", finetune_epochs=0)

"""A user's own data through the documented workflow: cases found by running pretrain -> evaluate -> finetune ->
audit -> card on data the project had never seen (CRLF/BOM text, string labels with spaces and unicode, mixed
image files)."""

from __future__ import annotations

import csv
import itertools
import random
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer

import hfssl  # noqa: F401  (registers the Auto classes)
from hfssl.audit.api import audit_run
from hfssl.data.tokenizer import train_tokenizer
from hfssl.finetune import finetune
from hfssl.models import HfsslTextConfig, HfsslTextForMaskedLM
from hfssl.training.rundir import RunDirectory

FILLER = ["the", "a", "of", "and", "to", "in", "is", "it", "that", "for", "on", "as", "with", "by", "at", "from", "or",
          "be", "this", "an"]


def _write_csv(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["sentence", "category", "gender"])
        writer.writerows(rows)
    return path


def _late_signal_rows(n: int, rng: random.Random) -> list[tuple[str, str, str]]:
    """Texts whose class shows only after 20 filler words: a 16-token reader cannot tell the classes apart."""
    rows = []
    for i in range(n):
        label = ("licence text", "código ü")[i % 2]
        cue = "alpha" if i % 2 == 0 else "omega"
        text = " ".join(rng.choice(FILLER) for _ in range(20)) + " " + " ".join([cue] * 6)
        rows.append((text, label, ("female", "male")[rng.random() < 0.5]))
    return rows


@pytest.fixture(scope="module")
def short_block_parent(tmp_path_factory) -> Path:
    """An MLM run whose tokenizer records a 16-token pretraining block (as `hfssl pretrain --block-size 16` saves
    it) while its RoPE model takes 128 positions."""
    torch.manual_seed(0)
    corpus = [" ".join(FILLER) + " alpha omega"] * 50
    tokenizer = train_tokenizer(corpus, "wordpiece", vocab_size=120, model_max_length=16)
    config = HfsslTextConfig(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, hidden_size=32,
                             num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                             max_position_embeddings=128)
    run = RunDirectory(tmp_path_factory.mktemp("parents") / "mlm")
    run.path.mkdir(parents=True)
    run.save_model(HfsslTextForMaskedLM(config), tokenizer)
    run.update_manifest(stage="pretrain", objective="mlm", modality="text")
    return run.path


def test_audit_of_a_finetuned_classifier_reads_as_many_tokens_as_finetune_tested(short_block_parent, tmp_path):
    """The classifier audit's overall accuracy is the accuracy finetune reported on the same test file: the saved
    tokenizer records the length the classifier was trained and tested at, not the parent's pretraining block."""
    rng = random.Random(0)
    train = _write_csv(tmp_path / "train.csv", _late_signal_rows(64, rng))
    test = _write_csv(tmp_path / "test.csv", _late_signal_rows(40, rng))
    result = finetune(short_block_parent, task="text-classification", output=tmp_path / "cls",
                      train_files=[str(train)], test_files=[str(test)], text_column="sentence",
                      label_column="category", peft="none", max_length=48, epochs=15, learning_rate=3e-3,
                      batch_size=16, training_args={"disable_tqdm": True, "logging_steps": 1000})
    assert result["metrics"]["accuracy"] >= 0.9  # the cue after token 16 was learned
    report = audit_run(tmp_path / "cls", test_files=[str(test)], text_column="sentence", label_column="category",
                       group_column="gender", baseline=False, n_boot=20, print_table=False)
    rows = report["audits"]["classifier"]["rows"]
    overall = next(row["value"] for row in rows if row["metric"] == "accuracy" and row["group"] == "all")
    assert overall == pytest.approx(result["metrics"]["accuracy"], abs=1e-4)  # the audit rounds to 4 decimals
    assert AutoTokenizer.from_pretrained(tmp_path / "cls" / "model").model_max_length == 48


def _visible_x_labels(figure):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(figure).get_renderer()
    figure.draw(renderer)
    axes = figure.axes[0]
    labels = axes.xaxis.get_majorticklabels() + axes.xaxis.get_minorticklabels()
    return [(t.get_text(), t.get_window_extent(renderer)) for t in labels if t.get_visible() and t.get_text()]


@pytest.mark.parametrize("counts", [(39, 155, 776), (50, 250, 500, 1250, 5000, 5200)])
def test_label_efficiency_plot_labels_the_measured_counts_without_overlap(counts):
    """On a user's few hundred labels (under two decades), the x axis had minor labels 3x10^2 and 4x10^2 drawn
    over each other; it now reads the measured label counts, and no two labels overlap."""
    from hfssl.evaluation.plots import label_efficiency_figure

    curves = {"pretrained": [{"examples": n, "mean": 0.5 + 0.01 * i, "std": 0.01} for i, n in enumerate(counts)]}
    labels = _visible_x_labels(label_efficiency_figure(curves, title="t"))
    boxes = sorted((box for _, box in labels), key=lambda box: box.x0)
    assert all(left.x1 <= right.x0 for left, right in itertools.pairwise(boxes)), [text for text, _ in labels]
    assert f"{counts[0]:,}" in {text for text, _ in labels}  # the smallest labelled budget is readable


@pytest.fixture(scope="module")
def image_parent(tmp_path_factory) -> Path:
    """A tiny hfssl MAE run for 8x8 RGB images (random weights: only the data checks run)."""
    from hfssl.models import HfsslVisionConfig, HfsslVisionForMaskedImageModeling

    torch.manual_seed(0)
    config = HfsslVisionConfig(image_size=8, patch_size=4, num_channels=3, hidden_size=32, num_hidden_layers=1,
                               num_attention_heads=2, intermediate_size=64, decoder_hidden_size=32,
                               decoder_num_hidden_layers=1, decoder_num_attention_heads=2, decoder_intermediate_size=64)
    run = RunDirectory(tmp_path_factory.mktemp("parents") / "mae")
    run.path.mkdir(parents=True)
    run.save_model(HfsslVisionForMaskedImageModeling(config), None)
    run.update_manifest(stage="pretrain", objective="mae", modality="image")
    return run.path


def test_finetune_on_an_imagefolder_without_class_folders_says_how_to_lay_it_out(image_parent, tmp_path):
    """`--dataset imagefolder --data-dir` on one flat folder of images was refused with "Label column 'label' not
    found ... Pass the right one with --label-column", which an image folder has no way to follow."""
    from PIL import Image

    flat = tmp_path / "photos"
    flat.mkdir()
    for i in range(6):
        Image.new("RGB", (12 + i, 10), (40 * i, 0, 0)).save(flat / f"img_{i}.png")
    with pytest.raises(ValueError, match=r"FOLDER/<label>/<image>") as caught:
        finetune(image_parent, task="image-classification", output=tmp_path / "out", dataset="imagefolder",
                 data_dir=str(flat))
    assert "--label-column" not in str(caught.value)
    assert not (tmp_path / "out").exists()  # nothing half-written

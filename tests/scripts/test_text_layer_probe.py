"""scripts/text_layer_probe.py: per-layer pooled features, the paired table, and the command end to end."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from hfssl.data.tokenizer import train_tokenizer
from hfssl.evaluation.features import input_encoder
from hfssl.models import HfsslTextConfig, HfsslTextForMaskedLM

from . import load_script

POSITIVE = ["bright", "warm", "lovely", "superb", "charming", "witty", "tender", "vivid"]
NEGATIVE = ["dull", "cold", "boring", "clumsy", "tedious", "bland", "stale", "flat"]


@pytest.fixture(scope="module")
def layer_probe():
    return load_script("text_layer_probe.py")


def texts_and_labels(n: int, seed: int) -> tuple[list[str], list[int]]:
    rng = random.Random(seed)
    labels = [i % 2 for i in range(n)]
    texts = [" ".join(rng.choices(NEGATIVE if y else POSITIVE, k=rng.randint(3, 9))) for y in labels]
    return texts, labels


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    """A run directory holding a small (untrained) text encoder and its tokenizer, plus labelled CSVs."""
    root = tmp_path_factory.mktemp("layer_probe")
    train, test = texts_and_labels(200, 0), texts_and_labels(100, 1)
    tokenizer = train_tokenizer(train[0], "wordpiece", vocab_size=120, model_max_length=32)
    torch.manual_seed(1)
    config = HfsslTextConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                             intermediate_size=64, max_position_embeddings=32)
    model_dir = root / "run" / "model"
    HfsslTextForMaskedLM(config).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    for name, (texts, labels) in (("train", train), ("test", test)):
        rows = ["text,label"] + [f"{t},{y}" for t, y in zip(texts, labels)]
        (root / f"{name}.csv").write_text("\n".join(rows) + "\n")
    return root


def test_every_hidden_state_is_mean_pooled_over_real_tokens_only(layer_probe, text_run):
    from hfssl.evaluation.api import load_encoder
    from hfssl.training.rundir import RunDirectory

    model, tokenizer, _ = load_encoder(RunDirectory(text_run / "run"))
    to_inputs = input_encoder(model, tokenizer)
    short, long = "bright warm", "dull cold boring clumsy tedious bland stale flat dull"
    alone = layer_probe.layer_features(model, [short], to_inputs)
    padded = layer_probe.layer_features(model, [short, long], to_inputs)  # `short` padded to `long`'s length
    assert len(alone) == model.config.num_hidden_layers + 2  # embeddings, each block, final norm
    for a, p in zip(alone, padded, strict=True):
        assert a.shape == (1, 32) and p.shape == (2, 32)
        np.testing.assert_allclose(a[0], p[0], rtol=1e-4, atol=1e-5)
    assert layer_probe.layer_names(4) == ["embeddings", "block 1", "block 2", "final norm"]


def test_the_table_pairs_the_arms_seed_by_seed_and_flags_a_gap_beyond_the_spread(layer_probe):
    rng = np.random.default_rng(0)
    train_labels, test_labels = np.repeat([0, 1], 100), np.repeat([0, 1], 50)

    def features(signal: float):
        make = lambda y: rng.normal(size=(len(y), 8)) + signal * y[:, None]
        return make(train_labels), make(test_labels)

    informative, noise = [features(3.0), features(3.0)], [features(0.0), features(0.0)]
    rows = layer_probe.probe_table(informative, noise, train_labels, test_labels, [0.1, 1.0], seeds=3)
    assert [r["layer"] for r in rows] == ["embeddings"] * 2 + ["final norm"] * 2 + ["all, concatenated"] * 2
    assert [r["labels"] for r in rows] == [20, 200] * 3
    for row in rows:
        assert row["pretrained"]["mean"] > 0.9 and row["random_init"]["mean"] < 0.7
        assert row["paired_gap"]["wins"] == 3 and row["paired_gap"]["beyond_spread"]
    table = layer_probe.markdown(rows)
    assert table.count("\n| ") == len(rows) and "(3/3) *" in table  # one line per row after the header


def test_the_command_writes_a_row_per_layer_and_fraction(layer_probe, text_run, capsys):
    out = text_run / "table.json"
    code = layer_probe.main([str(text_run / "run"), "--train-file", str(text_run / "train.csv"),
                             "--test-file", str(text_run / "test.csv"), "--fractions", "0.1,1.0", "--seeds", "2",
                             "--output", str(out)])
    assert code == 0
    result = json.loads(out.read_text())
    assert {(r["layer"], r["fraction"]) for r in result["rows"]} == {
        (layer, fraction) for layer in ("embeddings", "block 1", "block 2", "final norm", "all, concatenated")
        for fraction in (0.1, 1.0)
    }
    # The two word lists are linearly separable from any pooled token embeddings, trained or not.
    full = next(r for r in result["rows"] if r["layer"] == "embeddings" and r["fraction"] == 1.0)
    assert full["pretrained"]["mean"] > 0.9 and full["random_init"]["mean"] > 0.9
    assert "| embeddings | 200 |" in capsys.readouterr().out


def test_bad_input_exits_with_a_message(layer_probe, text_run, tmp_path, capsys):
    files = ["--train-file", str(text_run / "train.csv"), "--test-file", str(text_run / "test.csv")]
    assert layer_probe.main([str(tmp_path / "no-run"), *files]) == 2
    assert "No model in run directory" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        layer_probe.main([str(text_run / "run"), *files, "--fractions", "0,1"])
    assert "--fractions must lie in (0, 1]" in capsys.readouterr().err

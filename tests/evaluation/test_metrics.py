"""The metric modules load offline with `evaluate.load(path)` and compute the published formulas."""

from __future__ import annotations

import evaluate
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hfssl.evaluation.metrics import METRIC_NAMES, load_metric, metric_path


@pytest.mark.parametrize("name", METRIC_NAMES)
def test_every_module_loads_by_path_offline(name, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    module = evaluate.load(metric_path(name))
    assert isinstance(module, evaluate.Metric)


def test_accuracy_and_macro_f1_match_scikit_learn():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(0)
    references, predictions = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    accuracy = load_metric("accuracy").compute(predictions=predictions, references=references)["accuracy"]
    f1 = load_metric("macro_f1").compute(predictions=predictions, references=references)["macro_f1"]
    assert accuracy == pytest.approx(np.mean(predictions == references))
    assert f1 == pytest.approx(f1_score(references, predictions, average="macro"))


def test_macro_f1_over_given_labels_matches_scikit_learn():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(1)
    references, predictions = rng.integers(0, 3, 200), rng.integers(0, 5, 200)  # predicts 3, 4: no test example
    for labels in ([0, 1, 2], [0, 1, 2, 7]):  # 7: neither present nor predicted, scores 0 as in sklearn
        f1 = load_metric("macro_f1").compute(predictions=predictions, references=references, labels=labels)
        assert f1["macro_f1"] == pytest.approx(f1_score(references, predictions, labels=labels, average="macro",
                                                        zero_division=0))


def test_alignment_is_zero_for_identical_pairs_and_four_for_opposite_pairs():
    x = np.random.default_rng(0).normal(size=(30, 8)).astype(np.float32)
    alignment = load_metric("alignment")
    assert alignment.compute(embeddings=x, positive_embeddings=3 * x)["alignment"] == pytest.approx(0, abs=1e-6)
    assert alignment.compute(embeddings=x, positive_embeddings=-x)["alignment"] == pytest.approx(4, abs=1e-5)


def test_uniformity_matches_wang_and_isola_reference_code():
    x = torch.randn(50, 8, generator=torch.Generator().manual_seed(0))
    # Wang & Isola (2020), Fig. 5: torch.pdist(x, p=2).pow(2).mul(-t).exp().mean().log()
    reference = torch.pdist(F.normalize(x.double(), dim=1), p=2).pow(2).mul(-2).exp().mean().log().item()
    value = load_metric("uniformity").compute(embeddings=x.numpy())["uniformity"]
    assert value == pytest.approx(reference, abs=1e-5)
    collapsed = np.ones((10, 8), np.float32)
    assert load_metric("uniformity").compute(embeddings=collapsed)["uniformity"] == pytest.approx(0, abs=1e-6)


def test_effective_rank_is_one_for_a_line_and_d_for_an_orthogonal_set():
    rank = load_metric("effective_rank")
    line = np.outer(np.arange(1, 21), np.ones(6)).astype(np.float32)  # (20, 6), rank 1
    assert rank.compute(embeddings=line)["effective_rank"] == pytest.approx(1.0, abs=1e-3)
    assert rank.compute(embeddings=np.eye(6, dtype=np.float32))["effective_rank"] == pytest.approx(6.0, rel=1e-4)


def test_unknown_metric_names_what_exists():
    with pytest.raises(KeyError, match="effective_rank"):
        metric_path("rouge")


def test_metric_scripts_ship_inside_the_package():
    from importlib import resources

    root = resources.files("hfssl.evaluation") / "metrics"
    for name in METRIC_NAMES:
        assert (root / name / f"{name}.py").is_file()

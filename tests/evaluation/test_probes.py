"""Linear probe and weighted kNN recover known structure, and say how they got their numbers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hfssl.evaluation.probes import DEFAULT_C_GRID, knn_predict, knn_probe, linear_probe

from .conftest import separable_blobs


def _split(x, y, n_train):
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


def test_linear_probe_separates_blobs_and_reports_its_protocol():
    x, y = separable_blobs()
    result = linear_probe(*_split(x, y, 160))
    assert result["accuracy"] > 0.95 and result["macro_f1"] > 0.95
    protocol = result["protocol"]
    assert protocol["C"] in DEFAULT_C_GRID
    assert set(protocol["validation_accuracy"]) == {str(c) for c in DEFAULT_C_GRID}
    assert protocol["train_examples"] == 160 and protocol["test_examples"] == 80


def test_linear_probe_is_near_chance_on_shuffled_labels():
    x, y = separable_blobs(seed=1)
    y = np.random.default_rng(0).permutation(y)
    assert linear_probe(*_split(x, y, 160))["accuracy"] < 0.5  # 4 classes: chance is 0.25


def test_linear_probe_standardizes_so_feature_scale_does_not_matter():
    x, y = separable_blobs(seed=2)
    scaled = x * np.logspace(-3, 3, x.shape[1], dtype=np.float32)  # dimensions 6 orders of magnitude apart
    plain, rescaled = linear_probe(*_split(x, y, 160)), linear_probe(*_split(scaled, y, 160))
    assert rescaled["accuracy"] == pytest.approx(plain["accuracy"], abs=0.02)


def test_linear_probe_without_a_possible_validation_split_uses_the_default_c():
    x, y = separable_blobs(n_per_class=1, classes=4)
    x_test, y_test = separable_blobs(n_per_class=5, classes=4)
    result = linear_probe(x, y, x_test, y_test)
    assert result["protocol"]["C"] == 1.0
    assert result["protocol"]["selection"].startswith("skipped")


def test_linear_probe_cross_validates_c_when_the_validation_split_would_be_tiny():
    x, y = separable_blobs(n_per_class=5, classes=4)  # a 20% split: 4 images, one per class
    x_test, y_test = separable_blobs(n_per_class=20, classes=4)
    result = linear_probe(x, y, x_test, y_test)
    protocol = result["protocol"]
    assert "5-fold cross-validation" in protocol["selection"]
    assert set(protocol["validation_accuracy"]) == {str(c) for c in DEFAULT_C_GRID}
    best = max(protocol["validation_accuracy"].values())
    assert protocol["validation_accuracy"][str(protocol["C"])] == best
    assert result["accuracy"] > 0.9

    x3, y3 = separable_blobs(n_per_class=3, classes=4)  # folds cannot outnumber the smallest class
    assert "3-fold" in linear_probe(x3, y3, x_test, y_test)["protocol"]["selection"]


def test_linear_probe_uses_a_single_split_once_it_holds_enough_validation_examples():
    x, y = separable_blobs(n_per_class=625, classes=4)  # 20% of 2,500 = 500 validation examples
    result = linear_probe(x, y, x[:8], y[:8], seed=3)
    assert result["protocol"]["selection"].startswith("best validation accuracy on a stratified 20% split")
    assert "(seed 3)" in result["protocol"]["selection"]


def test_linear_probe_cross_validates_while_the_split_is_under_500_examples():
    # 10 validation examples per class (500 labels of 10 classes, say) still cross-validates: 100 examples
    # would pick C by noise.
    x, y = separable_blobs(n_per_class=50, classes=10)
    selection = linear_probe(x, y, x[:8], y[:8])["protocol"]["selection"]
    assert "5-fold cross-validation" in selection
    assert "would hold 100 examples, fewer than 500" in selection


def test_probes_on_sklearn_digits_raw_pixels(digits):
    assert linear_probe(*digits)["accuracy"] > 0.9
    assert knn_probe(*digits, ks=(20,))["accuracy"] > 0.9


def test_linear_probe_limits_blas_threads_during_the_fit_and_not_after(digits, monkeypatch):
    import sklearn.linear_model
    from threadpoolctl import threadpool_info

    seen = []
    fit = sklearn.linear_model.LogisticRegression.fit

    def observing_fit(self, *args, **kwargs):  # records the BLAS thread counts each fit runs with
        seen.append({i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"})
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(sklearn.linear_model.LogisticRegression, "fit", observing_fit)
    x_train, y_train, x_test, y_test = digits
    before = {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}
    one = linear_probe(x_train[:300], y_train[:300], x_test, y_test)
    assert seen and all(counts == {1} for counts in seen)
    assert {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"} == before
    seen.clear()
    as_is = linear_probe(x_train[:300], y_train[:300], x_test, y_test, blas_threads=None)
    assert all(counts == before for counts in seen)
    assert as_is["protocol"]["C"] == one["protocol"]["C"] and abs(as_is["accuracy"] - one["accuracy"]) < 0.01


def test_knn_separates_blobs_for_both_default_ks_and_caps_k():
    x, y = separable_blobs()
    result = knn_probe(*_split(x, y, 160))
    assert set(result["by_k"]) == {"20", "200"}
    assert all(scores["accuracy"] > 0.95 for scores in result["by_k"].values())
    assert result["protocol"]["k_used"] == [20, 160]  # 200 capped at the 160 training examples
    assert result["protocol"]["temperature"] == 0.07


def _reference_knn(train, labels, queries, k, temperature, num_classes):
    """Slow loop written from the DINO eval_knn description."""
    predictions = []
    for q in queries:
        sims = torch.stack([F.cosine_similarity(q, t, dim=0) for t in train])
        top = sims.topk(k)
        votes = torch.zeros(num_classes, dtype=torch.float64)
        for s, i in zip(top.values, top.indices):
            votes[labels[i]] += torch.exp(s.double() / temperature)
        predictions.append(int(votes.argmax()))
    return torch.tensor(predictions)


def test_knn_matches_a_slow_reference():
    generator = torch.Generator().manual_seed(0)
    train, queries = torch.randn(40, 8, generator=generator), torch.randn(15, 8, generator=generator)
    labels = torch.randint(0, 3, (40,), generator=generator)
    fast = knn_predict(train, labels, queries, k=7, temperature=0.5, num_classes=3, chunk_size=4)
    assert torch.equal(fast, _reference_knn(train, labels, queries, 7, 0.5, 3))


def test_knn_votes_are_weighted_by_similarity():
    # One neighbour of class 0 very close to the query, two of class 1 farther away: an unweighted majority
    # would say 1, temperature-weighted votes say 0.
    train = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.6, -0.8]])
    labels = torch.tensor([0, 1, 1])
    query = torch.tensor([[1.0, 0.05]])
    assert knn_predict(train, labels, query, k=3, temperature=0.07).item() == 0
    assert knn_predict(train, labels, query, k=3, temperature=100.0).item() == 1  # nearly uniform weights


@pytest.mark.parametrize(
    "train_x, train_y, match",
    [
        (np.zeros((5, 3), np.float32), np.zeros(4, np.int64), "same n"),
        (np.full((4, 3), np.nan, np.float32), np.arange(4), "NaN"),
        (np.zeros((4, 3), np.float32), np.array([0.5, 1.0, 0.0, 1.0]), "integer"),
    ],
)
def test_probes_reject_bad_features(train_x, train_y, match):
    test_x, test_y = np.zeros((2, 3), np.float32), np.array([0, 1])
    with pytest.raises(ValueError, match=match):
        linear_probe(train_x, train_y, test_x, test_y)
    with pytest.raises(ValueError, match=match):
        knn_probe(train_x, train_y, test_x, test_y)


def test_linear_probe_rejects_a_single_class():
    x = np.random.default_rng(0).normal(size=(10, 3)).astype(np.float32)
    with pytest.raises(ValueError, match="at least 2 classes"):
        linear_probe(x, np.zeros(10, np.int64), x, np.zeros(10, np.int64))


def test_the_knn_table_says_when_k_exceeds_the_training_examples():
    """k=200 on 40 training examples votes with all 40: the printed row says so."""
    from hfssl.evaluation.api import table_rows

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 8)).astype(np.float32), np.arange(40) % 2
    result = knn_probe(x, y, x[:10], y[:10], ks=(20, 200))
    rows = table_rows({"arms": {"ssl": result}})
    assert [row[1] for row in rows] == ["k=20", "k=200 (40 used: all the training examples)"]

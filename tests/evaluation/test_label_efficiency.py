"""Label fractions are stratified and seed-stable; curves report mean ± std; baselines behave."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hfssl.evaluation.features import ImageInputs
from hfssl.evaluation.label_efficiency import (
    check_fractions,
    learning_curve,
    random_init_copy,
    stratified_subset,
    train_supervised,
)
from hfssl.models import HfsslVisionForMaskedImageModeling

from .conftest import tiny_vision_config

LABELS = np.repeat(np.arange(3), [100, 50, 20])


def test_subset_keeps_each_class_share():
    subset = stratified_subset(LABELS, 0.1, seed=0)
    classes, counts = np.unique(LABELS[subset], return_counts=True)
    assert classes.tolist() == [0, 1, 2] and counts.tolist() == [10, 5, 2]


def test_subset_is_seed_stable_and_nested_across_fractions():
    a, b, c = (stratified_subset(LABELS, 0.2, seed) for seed in (7, 7, 8))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert set(stratified_subset(LABELS, 0.1, 7)) <= set(a)
    assert np.array_equal(stratified_subset(LABELS, 1.0, 3), np.arange(len(LABELS)))


def test_fraction_that_empties_a_class_names_it():
    labels = np.array([0] * 50 + [1] * 50 + [2] * 3)
    with pytest.raises(ValueError, match=r"class 'bag' \(id 2\).*3 training example"):
        check_fractions(labels, [0.5, 0.1], class_names=["shirt", "shoe", "bag"])
    with pytest.raises(ValueError, match="outside"):
        check_fractions(labels, [1.5])


def test_learning_curve_reports_mean_and_std_over_seeds():
    calls = []

    def score(subset, seed):
        calls.append((len(subset), seed))
        return 0.5 + 0.1 * seed

    points = learning_curve(LABELS, [0.5, 0.1], [0, 1, 2], score)
    assert [p["fraction"] for p in points] == [0.1, 0.5]
    assert points[0]["examples"] == 17 and points[1]["examples"] == 85
    assert points[0]["accuracies"] == pytest.approx([0.5, 0.6, 0.7])
    assert points[0]["mean"] == pytest.approx(0.6) and points[0]["std"] == pytest.approx(0.1)
    assert calls[:3] == [(17, 0), (17, 1), (17, 2)]


def test_random_init_copy_is_the_same_architecture_with_fresh_seeded_weights():
    pretrained = HfsslVisionForMaskedImageModeling(tiny_vision_config())
    with torch.no_grad():
        for p in pretrained.parameters():
            p.add_(1.0)
    a, b = random_init_copy(pretrained, seed=3), random_init_copy(pretrained, seed=3)
    assert type(a) is type(pretrained)
    for (name, p), q, r in zip(a.named_parameters(), b.parameters(), pretrained.parameters()):
        assert torch.equal(p, q), name
    assert not torch.equal(next(a.parameters()), next(pretrained.parameters()))


def test_supervised_from_scratch_learns_digits():
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = np.round(digits.images * 255 / 16).astype(np.uint8)[:, None]  # (1797, 1, 8, 8)
    result = train_supervised(
        tiny_vision_config(), pixels[:1200], digits.target[:1200], pixels[1200:], digits.target[1200:],
        ImageInputs(), modality="image", num_labels=10, epochs=4, min_steps=10, batch_size=32, learning_rate=3e-3,
    )
    assert result["accuracy"] > 0.5  # chance is 0.1
    assert result["protocol"]["model"] == "HfsslVisionForImageClassification"
    assert result["protocol"]["steps"] == 4 * 38

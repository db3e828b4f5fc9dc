"""The audit protocol: bootstrap intervals, group suppression, data hashes, tokenizer coverage, time budgets,
random-init baselines."""

from __future__ import annotations

import hashlib
import time

import numpy as np
import pytest
import torch

from hfssl.audit.common import (
    Budget,
    bootstrap_ci,
    finite_rows,
    grouped_rows,
    mean_with_ci,
    preference,
    random_init_copy,
    score_within_budget,
    sha256_file,
    sha256_items,
    split_groups,
    token_coverage,
)
from hfssl.models import HfsslTextForMaskedLM

from ..cards import one_torch_thread, text_config, tiny_tokenizer  # noqa: F401


def test_bootstrap_interval_covers_the_mean_and_is_seeded():
    scores = np.array([1.0] * 280 + [0.0] * 120)  # mean 0.7, standard error 0.023
    estimate = mean_with_ci(scores, seed=3)
    low, high = estimate["ci95"]
    assert estimate["value"] == 0.7 and estimate["n"] == 400
    assert 0.64 < low < 0.67 and 0.73 < high < 0.76
    assert mean_with_ci(scores, seed=3)["ci95"] == estimate["ci95"]
    assert mean_with_ci(scores, seed=4)["ci95"] != estimate["ci95"]
    assert bootstrap_ci(1, lambda i: 0.0) is None  # one item: no interval


def test_stratified_bootstrap_keeps_every_group():
    strata = np.array([0] * 50 + [1] * 3)
    sizes = []
    bootstrap_ci(53, lambda i: sizes.append(int((strata[i] == 1).sum())) or 0.0, n_boot=50, strata=strata)
    assert set(sizes) == {3}


def test_small_groups_are_suppressed_with_their_n():
    groups = ["a"] * 12 + ["b"] * 4 + ["c"] * 10
    kept, suppressed = split_groups(groups, min_group_n=10)
    assert kept == ["a", "c"] and suppressed == {"b": 4}
    rows, hidden = grouped_rows("m", np.ones(26), groups, 0.5, baseline_scores=np.zeros(26), min_group_n=10)
    assert [r["group"] for r in rows] == ["all", "a", "c"] and hidden == {"b": 4}
    assert rows[0]["baseline"]["value"] == 0.0 and rows[0]["ideal"] == 0.5 and rows[1]["n"] == 12


def test_preference_counts_ties_as_half():
    assert preference(np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0]])).tolist() == [1.0, 0.0, 0.5]


def test_hashes(tmp_path):
    path = tmp_path / "x.csv"
    path.write_bytes(b"a,b\n1,2\n")
    assert sha256_file(path) == hashlib.sha256(b"a,b\n1,2\n").hexdigest()
    assert sha256_items([{"b": 1, "a": 2}]) == sha256_items([{"a": 2, "b": 1}]) != sha256_items([{"a": 1}])


def test_token_coverage_flags_terms_the_tokenizer_splits():
    tokenizer = tiny_tokenizer("wordpiece")
    known = token_coverage(tokenizer, ["the", "return", "key"])
    assert known["single_token_fraction"] == 1.0 and not known["low"]
    unknown = token_coverage(tokenizer, ["hairdresser", "electrician", "the"])
    assert unknown["single_token_fraction"] < 0.5 and unknown["low"] and unknown["split_examples"]


def test_time_budget_uses_a_stated_seeded_subsample():
    def slow(items):
        time.sleep(0.002 * len(items))
        return np.asarray(items, dtype=float)

    items = list(range(400))
    scores, used, note = score_within_budget(items, slow, budget_s=0.2, seed=1)
    assert note["of"] == 400 and note["used"] == len(used) < 400 and note["seed"] == 1
    assert scores.tolist() == [float(i) for i in used]  # scores follow the order of `used`
    again = score_within_budget(items, slow, budget_s=0.2, seed=1)[1]
    assert list(again[:30]) == list(used[:30])  # the same seeded permutation
    full_scores, full, none = score_within_budget(items[:20], slow, budget_s=None)
    assert none is None and sorted(full) == list(range(20))
    with pytest.raises(ValueError, match="time_budget_s"):
        Budget(0)


def test_time_budget_is_checked_while_scoring_so_slower_items_do_not_overrun_it():
    """The first items are fast and the rest 10x slower: an estimate taken once from the first items would plan
    for about 480 more items (about 4.8 s); checking the clock between chunks stops near the 0.5 s budget."""
    def slower_later(items):
        time.sleep((0.001 if min(items) < 0 else 0.01) * len(items))
        return np.asarray(items, dtype=float)

    items = [-1] * 16 + list(range(484))
    order = np.random.default_rng(0).permutation(len(items))
    items = [items[i] for i in np.argsort(order)]  # the seeded order puts the 16 fast items first
    start = time.perf_counter()
    scores, used, note = score_within_budget(items, slower_later, budget_s=0.5, seed=0)
    assert time.perf_counter() - start < 1.0
    assert note["used"] == len(used) == len(scores) >= 30 and sorted(np.asarray(items)[used][:16]) == [-1] * 16


def test_finite_rows_of_no_rows():
    assert finite_rows(np.zeros((0,)), np.zeros((0, 2))).shape == (0,)
    assert finite_rows(np.array([[1.0, np.nan], [1.0, 2.0]]), None).tolist() == [False, True]


def test_random_init_copy_is_the_same_architecture_untrained_and_seeded():
    model = HfsslTextForMaskedLM(text_config(tiny_tokenizer("wordpiece")))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)  # "trained"
    a, b = random_init_copy(model, seed=0), random_init_copy(model, seed=0)
    assert type(a) is type(model) and a.config.to_dict() == model.config.to_dict()
    weights = lambda m: m.model.embed_tokens.weight  # noqa: E731
    assert torch.equal(weights(a), weights(b)) and not torch.equal(weights(a), weights(model))


def test_group_labels_of_blank_and_float_cells():
    from hfssl.audit.common import group_label

    assert [group_label(v) for v in (None, float("nan"), "", "  ", np.float32("nan"))] == [None] * 5
    # pandas reads an integer column with a blank cell as floats: the groups stay "0" and "1", not "0.0" and "1.0"
    assert [group_label(v) for v in (1.0, np.float64(0.0), 2.5, 3, " f ", True)] == ["1", "0", "2.5", "3", "f", "True"]

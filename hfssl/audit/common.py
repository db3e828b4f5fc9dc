"""The protocol every hfssl audit follows.

- Bootstrap 95% intervals (percentile method, seeded) for every reported value.
- n per group; groups with fewer than `min_group_n` items are suppressed (their n is still listed).
- A sha256 hash of the audit data, so a reader can tell which file produced the numbers.
- The tokenizer's coverage of the identity terms: terms split into many pieces or mapped to the unknown
  token are measured poorly, so low coverage is flagged.
- A time budget: when the full set will not fit, a seeded random subsample is used and stated.
- A baseline: the same audit on a randomly initialized copy of the architecture (`type(model)(model.config)`
  under a fixed seed), so a number can be read against what the architecture and tokenizer give untrained.

An audit result is a dict with a uniform list of table rows:
{"title", "description", "rows": [{"metric", "group", "value", "ci95", "n", "ideal", "baseline"}], "data",
 "coverage", "suppressed_groups", "caveats", "subsample", "wall_time_s"}.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

logger = logging.getLogger(__name__)

N_BOOT = 1000
CI_LEVEL = 0.95
MIN_GROUP_N = 10
LOW_SINGLE_TOKEN_FRACTION = 0.5  # below this share of single-token identity terms, coverage is flagged
HIGH_UNKNOWN_FRACTION = 0.05  # above this share of terms with an unknown token, coverage is flagged
CALIBRATION_ITEMS = 16
MIN_SUBSAMPLE = 30
CHECK_EVERY = 0.1  # scoring checks the clock after each chunk of about this share of its budget


# ---------------------------------------------------------------------------------------------- statistics


def bootstrap_ci(
    n: int,
    statistic: Callable[[np.ndarray], float],
    *,
    n_boot: int = N_BOOT,
    seed: int = 0,
    strata: np.ndarray | None = None,
) -> list[float] | None:
    """Percentile 95% interval of `statistic(indices)` over `n_boot` resamples of range(n) with replacement.

    With `strata` ((n,) labels), each stratum is resampled separately, so every resample keeps every group
    (needed for statistics that compare groups). Returns None when n < 2 (no interval can be estimated).
    """
    if n < 2:
        return None
    rng = np.random.default_rng(seed)
    groups = [np.arange(n)] if strata is None else [np.flatnonzero(strata == s) for s in np.unique(strata)]
    values = []
    for _ in range(n_boot):
        index = np.concatenate([g[rng.integers(0, len(g), len(g))] for g in groups])
        value = statistic(index)
        if value is not None and np.isfinite(value):
            values.append(value)
    if not values:
        return None
    tail = (1 - CI_LEVEL) / 2 * 100
    return [float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))]


def mean_with_ci(scores: np.ndarray, *, n_boot: int = N_BOOT, seed: int = 0) -> dict[str, Any]:
    """{"value", "ci95", "n"} of the mean of per-item `scores` (n,)."""
    scores = np.asarray(scores, dtype=float)
    ci = bootstrap_ci(len(scores), lambda i: float(scores[i].mean()), n_boot=n_boot, seed=seed)
    return {"value": float(scores.mean()) if len(scores) else None, "ci95": ci, "n": int(len(scores))}


def row(metric: str, estimate: dict[str, Any], ideal: float, *, group: str = "all",
        baseline: dict[str, Any] | None = None) -> dict[str, Any]:
    """One table row: metric, group, value, 95% CI, n, the ideal value and the baseline's value and CI."""
    out = {"metric": metric, "group": group, "value": _round(estimate.get("value")),
           "ci95": _round_list(estimate.get("ci95")), "n": estimate.get("n"), "ideal": ideal}
    out["baseline"] = None if baseline is None else {
        "value": _round(baseline.get("value")), "ci95": _round_list(baseline.get("ci95")), "n": baseline.get("n")}
    return out


def _round(value: Any, digits: int = 4) -> Any:
    if isinstance(value, float) and math.isfinite(value):
        return round(value, digits)
    return value


def _round_list(values: Sequence[float] | None) -> list[float] | None:
    return None if values is None else [_round(float(v)) for v in values]


def group_label(value: Any) -> str | None:
    """The group name of a value of a user's group column; None for a blank (None, NaN, empty or spaces).

    Whole floats lose their ".0": pandas reads an integer column with a blank cell as floats, and the group
    should still read "1", not "1.0".
    """
    if isinstance(value, np.floating):
        value = float(value)
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value).strip()
    return text or None


def split_groups(groups: Sequence[str], min_group_n: int = MIN_GROUP_N) -> tuple[list[str], dict[str, int]]:
    """(groups with at least `min_group_n` items, sorted; {suppressed group: its n})."""
    names, counts = np.unique(np.asarray(groups, dtype=object).astype(str), return_counts=True)
    kept = [str(g) for g, c in zip(names, counts) if c >= min_group_n]
    suppressed = {str(g): int(c) for g, c in zip(names, counts) if c < min_group_n}
    return kept, suppressed


def grouped_rows(
    metric: str, scores: np.ndarray, groups: Sequence[str], ideal: float, *,
    baseline_scores: np.ndarray | None = None, min_group_n: int = MIN_GROUP_N, n_boot: int = N_BOOT, seed: int = 0,
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Rows of the mean of `scores` overall and per group (groups below `min_group_n` suppressed)."""
    scores, labels = np.asarray(scores, dtype=float), np.asarray(groups, dtype=object).astype(str)

    def estimate(values: np.ndarray | None, mask: np.ndarray) -> dict[str, Any] | None:
        return None if values is None else mean_with_ci(np.asarray(values, dtype=float)[mask], n_boot=n_boot, seed=seed)

    everything = np.ones(len(scores), dtype=bool)
    rows = [row(metric, estimate(scores, everything), ideal, baseline=estimate(baseline_scores, everything))]
    kept, suppressed = split_groups(labels, min_group_n)
    for group in kept:
        mask = labels == group
        rows.append(row(metric, estimate(scores, mask), ideal, group=group, baseline=estimate(baseline_scores, mask)))
    return rows, suppressed


# ---------------------------------------------------------------------------------------------- data hashes


def sha256_file(path: str | Path) -> str:
    """sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_items(items: Iterable[Any]) -> str:
    """sha256 of items as canonical JSON (sorted keys), e.g. the subsample an audit actually used."""
    text = json.dumps(list(items), sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# ---------------------------------------------------------------------------------------------- tokenizer coverage


def token_coverage(tokenizer: Any, terms: Iterable[str]) -> dict[str, Any]:
    """How well the tokenizer represents the identity terms of an audit.

    Each term is encoded as it appears inside a sentence (with a leading space). Returns the share of terms
    that are one token, the share containing the unknown token, a few examples of split terms, and `low`
    (True when fewer than half are single tokens or more than 5% hit the unknown token).
    """
    unique = sorted({t for t in terms if t})
    if not unique:
        return {"terms": 0, "single_token_fraction": None, "unknown_fraction": None, "low": False, "split_examples": []}
    unk = getattr(tokenizer, "unk_token_id", None)
    pieces = {t: tokenizer(" " + t, add_special_tokens=False)["input_ids"] for t in unique}
    single = [t for t, ids in pieces.items() if len(ids) == 1 and ids[0] != unk]
    unknown = [t for t, ids in pieces.items() if unk is not None and unk in ids]
    single_fraction, unknown_fraction = len(single) / len(unique), len(unknown) / len(unique)
    split = [f"{t} -> {len(ids)} pieces" for t, ids in pieces.items() if len(ids) > 1][:5]
    return {
        "terms": len(unique), "single_token_fraction": round(single_fraction, 4),
        "unknown_fraction": round(unknown_fraction, 4),
        "low": single_fraction < LOW_SINGLE_TOKEN_FRACTION or unknown_fraction > HIGH_UNKNOWN_FRACTION,
        "split_examples": split, "unknown_examples": unknown[:5],
    }


def coverage_caveat(coverage: dict[str, Any]) -> list[str]:
    """A caveat sentence when coverage is low, else []."""
    if not coverage.get("low"):
        return []
    return [f"Low tokenizer coverage of the identity terms: {coverage['single_token_fraction']:.0%} are single "
            f"tokens and {coverage['unknown_fraction']:.0%} hit the unknown token; terms the tokenizer splits or "
            "does not know are scored from pieces, so these numbers say less about the model than they seem to."]


# ---------------------------------------------------------------------------------------------- time budget


@dataclass
class Budget:
    """Seconds an audit may spend; `share(k)` splits what is left evenly among k remaining parts."""

    seconds: float | None
    start: float = 0.0

    def __post_init__(self) -> None:
        if self.seconds is not None and self.seconds <= 0:
            raise ValueError(f"time_budget_s={self.seconds} must be > 0 seconds (or None for no limit).")
        self.start = time.perf_counter()

    def left(self) -> float | None:
        return None if self.seconds is None else max(0.0, self.seconds - (time.perf_counter() - self.start))

    def share(self, parts: int) -> float | None:
        left = self.left()
        return None if left is None else left / max(1, parts)


def score_within_budget(
    items: Sequence[Any], score: Callable[[Sequence[Any]], np.ndarray], budget_s: float | None, *,
    seed: int = 0, passes: int = 1,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any] | None]:
    """Score items, on a seeded random subsample when all of them would not fit in `budget_s`.

    `score(items) -> (len(items), ...)` scores. `passes` is how many times the caller will score the chosen
    items in all (2 with a baseline), so the budget is divided by it. Items are scored in a seeded random order in
    chunks of at least CALIBRATION_ITEMS, at most the items scored so far and about CHECK_EVERY of the budget, with
    the clock checked after each, so items slower than the first ones end the scoring instead of overrunning it. At
    least MIN_SUBSAMPLE items are always scored.
    Returns (scores of the used items, their indices into `items` in the scored order, the subsample note or None
    when every item was used).
    """
    n = len(items)
    if n == 0:
        return np.zeros((0,)), np.zeros((0,), dtype=int), None
    if budget_s is None:
        order = np.arange(n)
        return np.asarray(score([items[i] for i in order])), order, None
    order = np.random.default_rng(seed).permutation(n)
    limit, start = budget_s / passes, time.perf_counter()
    parts, used, per_item = [], 0, 0.0
    while used < n:
        if used == 0:
            size = min(CALIBRATION_ITEMS, n)
        else:
            elapsed = time.perf_counter() - start
            per_item = max(elapsed / used, 1e-9)  # the running mean, so a slow first chunk is averaged out
            wanted = max(int((limit - elapsed) / per_item), MIN_SUBSAMPLE - used)
            if wanted <= 0:
                break
            step = max(CALIBRATION_ITEMS, min(used, int(CHECK_EVERY * limit / per_item)))
            size = min(wanted, step, n - used)
        parts.append(np.asarray(score([items[i] for i in order[used:used + size]])))
        used += size
    note = None
    if used < n:
        note = {"used": int(used), "of": int(n), "seed": int(seed),
                "reason": f"time budget of {budget_s:.1f} s for {passes} pass(es) at about {per_item:.4f} s per item"}
        logger.warning("Audit subsample: %d of %d items (seed %d) to fit the time budget.", used, n, seed)
    return np.concatenate(parts), order[:used], note


# ---------------------------------------------------------------------------------------------- models


def random_init_copy(model: nn.Module, seed: int = 0) -> nn.Module:
    """`type(model)(model.config)` initialized under `seed`: the same architecture and size, no training."""
    torch.manual_seed(seed)
    fresh = type(model)(copy.deepcopy(model.config))
    return fresh.to(model_device(model)).eval()


def model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def batched(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    """Consecutive slices of `items` of at most `size`."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


BASELINE_NOTE = "random-init: type(model)(model.config) under a fixed seed, same tokenizer or processor, same items"


@dataclass
class AuditContext:
    """What every audit needs: the model, its tokenizer or image processor, the random-init baseline (None
    when disabled) and the protocol's settings."""

    model: nn.Module
    processor: Any
    baseline: nn.Module | None
    seed: int = 0
    n_boot: int = N_BOOT
    min_group_n: int = MIN_GROUP_N
    bias_data_dir: str | None = None


def score_model_and_baseline(
    ctx: AuditContext, items: Sequence[Any], scorer: Callable[[nn.Module], Callable[[Sequence[Any]], np.ndarray]],
    budget_s: float | None,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, dict[str, Any] | None]:
    """(model scores, baseline scores or None, indices of the items used, subsample note or None).

    `scorer(model)` returns the function that scores a list of items with that model; the baseline scores the
    very items the model scored.
    """
    passes = 2 if ctx.baseline is not None else 1
    scores, used, note = score_within_budget(items, scorer(ctx.model), budget_s, seed=ctx.seed, passes=passes)
    base = None if ctx.baseline is None else np.asarray(scorer(ctx.baseline)([items[i] for i in used]))
    return scores, base, used, note


@dataclass
class Scored:
    """Scores of the items an audit used: the model's and the baseline's (rows that either could not score are
    left out and counted in `unscored`), the items in the same order, and the subsample note."""

    scores: np.ndarray
    baseline: np.ndarray | None
    items: list[Any]
    subsample: dict[str, Any] | None
    unscored: int


def score_items(ctx: AuditContext, items: Sequence[Any],
                scorer: Callable[[nn.Module], Callable[[Sequence[Any]], np.ndarray]], budget_s: float | None) -> Scored:
    """`score_model_and_baseline`, then only the items both could score (nan marks an item that could not be
    scored, e.g. its words fell beyond the model's maximum length)."""
    scores, base, used, note = score_model_and_baseline(ctx, items, scorer, budget_s)
    keep = finite_rows(scores, base)
    return Scored(scores[keep], None if base is None else base[keep], [items[i] for i, k in zip(used, keep) if k],
                  note, int((~keep).sum()))


def preference(pairs: np.ndarray) -> np.ndarray:
    """(n, 2) scores of (first, second) option -> (n,) 1 where the first wins, 0.5 on ties, 0 otherwise."""
    pairs = np.asarray(pairs, dtype=float)
    return np.where(pairs[:, 0] > pairs[:, 1], 1.0, np.where(pairs[:, 0] == pairs[:, 1], 0.5, 0.0))


def finite_rows(*arrays: np.ndarray | None) -> np.ndarray:
    """(n,) mask of rows that are finite in every given (n, ...) array (None arrays are ignored)."""
    flat = [np.asarray(a, dtype=float) for a in arrays if a is not None]
    masks = [np.isfinite(a).reshape(a.shape[0], int(np.prod(a.shape[1:]))).all(1) for a in flat]  # safe for n = 0
    return np.logical_and.reduce(masks)


def _outside_interval_caveat(rows: list[dict[str, Any]]) -> list[str]:
    """A caveat naming the rows whose value lies outside its own 95% interval. It happens for a difference (max -
    min) or ratio across several small groups: resampling adds noise to every group, which widens the spread, so
    the resampled values sit away from the observed one and a reader would otherwise take the table for an error."""
    outside = [r["metric"] if r.get("group", "all") == "all" else f"{r['metric']} ({r['group']})" for r in rows
               if isinstance(r.get("value"), (int, float)) and r.get("ci95")
               and not r["ci95"][0] - 1e-9 <= r["value"] <= r["ci95"][1] + 1e-9]
    if not outside:
        return []
    one = len(outside) == 1
    return [(f"The value{'' if one else 's'} of {'; '.join(outside)} lie{'s' if one else ''} outside "
             f"{'its' if one else 'their'} bootstrap interval{'' if one else 's'}: resampling inflates a spread "
             "across small groups, so such an interval is biased away from the value; read it as rough.")]


def result(title: str, description: str, rows: list[dict[str, Any]], *, data: dict[str, Any] | None = None,
           coverage: dict[str, Any] | None = None, suppressed: dict[str, int] | None = None,
           caveats: list[str] | None = None, subsample: dict[str, Any] | None = None,
           started: float | None = None, unscored: int = 0) -> dict[str, Any]:
    """An audit result in the shape bias_audit.json and the card use."""
    if unscored:
        caveats = (caveats or []) + [f"{unscored} item(s) could not be scored (their words fell beyond the model's "
                                     "maximum input length) and were left out."]
    caveats = (caveats or []) + _outside_interval_caveat(rows)
    return {
        "title": title, "description": description, "rows": rows, "data": data, "coverage": coverage,
        "suppressed_groups": suppressed or {}, "caveats": (caveats or []) + coverage_caveat(coverage or {}),
        "subsample": subsample, "unscored_items": unscored,
        "wall_time_s": None if started is None else round(time.perf_counter() - started, 2),
    }

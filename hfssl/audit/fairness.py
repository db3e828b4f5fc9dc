"""Disaggregated metrics with fairlearn's MetricFrame, and bootstrap intervals for them.

MetricFrame gives the point values (overall, per group, between-group difference and ratio). Its own bootstrap
rebuilds the whole frame per resample, which takes tens of seconds on two cores, so the intervals here come from
`common.bootstrap_ci` over the same small numpy metric functions, resampling within each group (every resample
keeps every group at its size).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .common import AuditContext, bootstrap_ci, row, split_groups

Metric = Callable[[np.ndarray, np.ndarray], float]


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.mean(y_true == y_pred)) if len(y_true) else float("nan")


def selection_rate(y_true: np.ndarray, y_pred: np.ndarray, pos_label: Any = 1) -> float:
    return float(np.mean(y_pred == pos_label)) if len(y_pred) else float("nan")


def false_positive_rate(y_true: np.ndarray, y_pred: np.ndarray, pos_label: Any = 1) -> float:
    negatives = y_true != pos_label
    return float(np.mean(y_pred[negatives] == pos_label)) if negatives.any() else float("nan")


def false_negative_rate(y_true: np.ndarray, y_pred: np.ndarray, pos_label: Any = 1) -> float:
    positives = y_true == pos_label
    return float(np.mean(y_pred[positives] != pos_label)) if positives.any() else float("nan")


def mean_value(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """The mean of y_pred: for per-item quantities such as reconstruction error (y_true is ignored)."""
    return float(np.mean(y_pred)) if len(y_pred) else float("nan")


def _frame(metric: Metric, y_true: np.ndarray, y_pred: np.ndarray, groups: np.ndarray) -> dict[str, Any]:
    from fairlearn.metrics import MetricFrame

    frame = MetricFrame(metrics={"m": metric}, y_true=y_true, y_pred=y_pred, sensitive_features=groups)
    by_group = {str(k): float(v) for k, v in frame.by_group["m"].items()}
    # MetricFrame skips groups where the metric is undefined (a false positive rate without negatives), so with one
    # defined group left it reports difference 0 and ratio 1: a perfect score for what was not measured.
    compared = sum(np.isfinite(v) for v in by_group.values()) >= 2
    return {"overall": float(frame.overall["m"]), "by_group": by_group,
            "difference": float(frame.difference()["m"]) if compared else float("nan"),
            "ratio": float(frame.ratio()["m"]) if compared else float("nan")}


def _intervals(metric: Metric, y_true: np.ndarray, y_pred: np.ndarray, groups: np.ndarray, names: list[str],
               ctx: AuditContext) -> dict[str, Any]:
    """Bootstrap intervals of the overall value, each group's value, the difference and the ratio."""
    n = len(y_true)
    boot = lambda stat: bootstrap_ci(n, stat, n_boot=ctx.n_boot, seed=ctx.seed, strata=groups)  # noqa: E731

    def per_group(index: np.ndarray) -> np.ndarray:
        return np.array([metric(y_true[index][groups[index] == g], y_pred[index][groups[index] == g]) for g in names])

    def defined(index: np.ndarray) -> np.ndarray:
        values = per_group(index)
        return values[np.isfinite(values)]

    def difference(index: np.ndarray) -> float:
        values = defined(index)
        return float(np.ptp(values)) if len(values) >= 2 else float("nan")

    def ratio(index: np.ndarray) -> float:
        values = defined(index)
        return float(values.min() / values.max()) if len(values) >= 2 and values.max() > 0 else float("nan")

    out = {"overall": boot(lambda i: metric(y_true[i], y_pred[i])),
           "by_group": {g: boot(lambda i, g=g: metric(y_true[i][groups[i] == g], y_pred[i][groups[i] == g]))
                        for g in names}}
    if len(names) > 1:
        out["difference"] = boot(difference)
        out["ratio"] = boot(ratio)
    return out


def _estimate(value: float, ci: list[float] | None, n: int) -> dict[str, Any]:
    return {"value": value if np.isfinite(value) else None, "ci95": ci, "n": n}


def _whole(name: str, metric: Metric, y_true: np.ndarray, y_pred: np.ndarray, groups: np.ndarray, ctx: AuditContext,
           baseline_pred: np.ndarray | None) -> dict[str, Any]:
    """The overall row of `metric` over every item, resampled within groups as the group rows are."""
    def estimate(pred: np.ndarray) -> dict[str, Any]:
        ci = bootstrap_ci(len(y_true), lambda i: metric(y_true[i], pred[i]), n_boot=ctx.n_boot, seed=ctx.seed,
                          strata=groups)
        return _estimate(metric(y_true, pred), ci, len(y_true))

    return row(name, estimate(y_pred), None, baseline=None if baseline_pred is None else estimate(baseline_pred))


def frame_rows(
    name: str, metric: Metric, y_true: np.ndarray, y_pred: np.ndarray, groups: np.ndarray, ctx: AuditContext, *,
    baseline_pred: np.ndarray | None = None, factor: str = "group", overall: bool = True,
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Table rows of `metric` overall (unless `overall` is False, for a second factor of the same items), per
    group, and its between-group difference (ideal 0) and ratio (min / max, ideal 1), with 95% intervals and the
    baseline's values. Groups below `ctx.min_group_n` are left out of the group rows and the comparisons and
    returned as suppressed; the overall row keeps their items, as a metric over the whole set must (without them
    it disagreed with the flip rate's overall row and vanished when every group was small)."""
    groups = np.asarray(groups, dtype=object).astype(str)
    names, suppressed = split_groups(groups, ctx.min_group_n)
    everything = [] if not overall else [_whole(name, metric, np.asarray(y_true), np.asarray(y_pred), groups, ctx,
                                                None if baseline_pred is None else np.asarray(baseline_pred))]
    keep = np.isin(groups, names)
    y_true, y_pred, groups = np.asarray(y_true)[keep], np.asarray(y_pred)[keep], groups[keep]
    if not names:
        return everything, suppressed
    arms = {"model": y_pred} | ({} if baseline_pred is None else {"baseline": np.asarray(baseline_pred)[keep]})
    stats = {arm: (_frame(metric, y_true, pred, groups), _intervals(metric, y_true, pred, groups, names, ctx))
             for arm, pred in arms.items()}
    counts = {g: int((groups == g).sum()) for g in names}

    def make(metric_name: str, key: str, ideal: float | None, group: str = "all", sub: str | None = None):
        def pick(arm: str) -> dict[str, Any]:
            point, ci = stats[arm]
            value = point[key] if sub is None else point[key][sub]
            interval = ci.get(key) if sub is None else ci[key][sub]
            return _estimate(value, interval, counts[sub] if sub else len(y_true))

        baseline = pick("baseline") if "baseline" in stats else None
        return row(metric_name, pick("model"), ideal, group=group, baseline=baseline)

    rows = list(everything)
    rows += [make(f"{name} by {factor}", "by_group", None, group=g, sub=g) for g in names]
    if len(names) > 1:
        rows.append(make(f"{name}: difference across {factor} (max - min)", "difference", 0.0))
        rows.append(make(f"{name}: ratio across {factor} (min / max)", "ratio", 1.0))
    return rows, suppressed

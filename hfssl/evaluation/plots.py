"""PNG plots for eval/: label-efficiency curves and per-arm accuracies.

Figures are drawn on matplotlib's Agg canvas directly (object API): no pyplot state, no display,
and the caller's backend stays untouched. Files are written atomically (temporary file, rename).
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

ARM_STYLES = {"pretrained": "o-", "random-init": "s--", "supervised": "^:"}
MIN_TICK_RATIO = 1.5  # label counts closer than this on the log x axis share one tick label
MAX_NAME_CHARS = 40  # longer arm and setting names are shortened on the plot (not in the results) so it stays readable


def _short(name: Any) -> str:
    """`name` as plot text of at most MAX_NAME_CHARS characters, shortened in the middle (both ends tell names
    apart)."""
    text = str(name)
    if len(text) <= MAX_NAME_CHARS:
        return text
    half = (MAX_NAME_CHARS - 1) // 2
    return f"{text[:half]}…{text[-(MAX_NAME_CHARS - 1 - half):]}"


def _measured(value: Any) -> bool:
    """Whether `value` is a finite number (None and NaN mean "not measured")."""
    try:
        return value is not None and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _save_atomic(figure: Any, path: Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        figure.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _example_ticks(counts: Sequence[float]) -> list[int]:
    """The label counts to mark on the log x axis: every measured count, except one within a factor of
    MIN_TICK_RATIO of the last one kept (its label would run into that one's)."""
    kept: list[int] = []
    for n in sorted({int(c) for c in counts}):
        if not kept or n >= kept[-1] * MIN_TICK_RATIO:
            kept.append(n)
    return kept


def plot_label_efficiency(
    curves: Mapping[str, Sequence[Mapping[str, Any]]], path: str | os.PathLike, *, title: str = "Label efficiency"
) -> Path:
    """Accuracy vs number of labelled examples (log x), one line with ± std error bars per arm.

    curves: {arm: [{"examples": int, "mean": float, "std": float}, ...]} as `learning_curve` returns. A point
    whose mean is None or NaN is left out (a std that is not a number draws no error bar); an arm without points
    is named in the legend as "(no points)". Arm names longer than 40 characters are shortened in the middle.
    The x axis is labelled at the measured label counts, as plain numbers.
    """
    return _save_atomic(label_efficiency_figure(curves, title=title), Path(path))


def label_efficiency_figure(curves: Mapping[str, Sequence[Mapping[str, Any]]], *, title: str = "Label efficiency"):
    """The matplotlib `Figure` that `plot_label_efficiency` saves."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullFormatter

    figure = Figure(figsize=(6, 4))
    axes = figure.add_subplot()
    counts: list[float] = []
    for arm, points in curves.items():
        drawn = [p for p in points if _measured(p.get("mean")) and _measured(p.get("examples")) and p["examples"] > 0]
        if not drawn:
            axes.plot([], [], ARM_STYLES.get(arm, "d-"), label=f"{_short(arm)} (no points)")
            continue
        counts += [p["examples"] for p in drawn]
        axes.errorbar([p["examples"] for p in drawn], [p["mean"] for p in drawn],
                      yerr=[p["std"] if _measured(p.get("std")) else 0.0 for p in drawn],
                      fmt=ARM_STYLES.get(arm, "d-"), capsize=3, label=_short(arm))
    axes.set_xscale("log")
    if counts:
        # Over less than two decades matplotlib labels minor ticks too (3x10^2, 4x10^2, ...), which collide; the
        # measured counts are the numbers worth reading.
        ticks = _example_ticks(counts)
        axes.set_xticks(ticks, [f"{n:,}" for n in ticks])
        axes.xaxis.set_minor_formatter(NullFormatter())
    axes.set_xlabel("labelled training examples (log scale)")
    axes.set_ylabel("test accuracy")
    axes.set_title(title)
    axes.grid(True, which="both", alpha=0.3)
    if curves:
        axes.legend()
    return figure


def plot_accuracies(
    accuracies: Mapping[str, float], path: str | os.PathLike, *, title: str = "Accuracy"
) -> Path:
    """One bar per arm (or setting), labelled with its accuracy. accuracies: {name: accuracy in [0, 1]}.

    A value that is None or NaN draws no bar and is labelled "not measured"; names longer than 40 characters are
    shortened in the middle, and tick labels are anchored under their bars.
    """
    from matplotlib.figure import Figure

    names = list(accuracies)
    measured = [_measured(accuracies[n]) for n in names]
    figure = Figure(figsize=(max(4.0, 1.2 * len(names) + 1), 3.5))
    axes = figure.add_subplot()
    bars = axes.bar(range(len(names)), [float(accuracies[n]) if ok else 0.0 for n, ok in zip(names, measured)],
                    color="tab:blue")
    axes.bar_label(bars, labels=[f"{float(accuracies[n]):.3f}" if ok else "not measured"
                                 for n, ok in zip(names, measured)])
    axes.set_xticks(range(len(names)), [_short(n) for n in names], rotation=15, ha="right", rotation_mode="anchor")
    axes.set_ylim(0, 1.05)
    axes.set_ylabel("test accuracy")
    axes.set_title(title)
    return _save_atomic(figure, Path(path))

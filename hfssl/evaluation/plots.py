"""PNG plots for eval/: label-efficiency curves and per-arm accuracies.

Figures are drawn on matplotlib's Agg canvas directly (object API): no pyplot state, no display,
and the caller's backend stays untouched. Files are written atomically (temporary file, rename).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

ARM_STYLES = {"pretrained": "o-", "random-init": "s--", "supervised": "^:"}


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


def plot_label_efficiency(
    curves: Mapping[str, Sequence[Mapping[str, Any]]], path: str | os.PathLike, *, title: str = "Label efficiency"
) -> Path:
    """Accuracy vs number of labelled examples (log x), one line with ± std error bars per arm.

    curves: {arm: [{"examples": int, "mean": float, "std": float}, ...]} as `learning_curve` returns.
    """
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 4))
    axes = figure.add_subplot()
    for arm, points in curves.items():
        xs = [p["examples"] for p in points]
        axes.errorbar(xs, [p["mean"] for p in points], yerr=[p["std"] for p in points],
                      fmt=ARM_STYLES.get(arm, "d-"), capsize=3, label=arm)
    axes.set_xscale("log")
    axes.set_xlabel("labelled training examples (log scale)")
    axes.set_ylabel("test accuracy")
    axes.set_title(title)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    return _save_atomic(figure, Path(path))


def plot_accuracies(
    accuracies: Mapping[str, float], path: str | os.PathLike, *, title: str = "Accuracy"
) -> Path:
    """One bar per arm (or setting), labelled with its accuracy. accuracies: {name: accuracy in [0, 1]}."""
    from matplotlib.figure import Figure

    names = list(accuracies)
    figure = Figure(figsize=(max(4.0, 1.2 * len(names) + 1), 3.5))
    axes = figure.add_subplot()
    bars = axes.bar(range(len(names)), [accuracies[n] for n in names], color="tab:blue")
    axes.bar_label(bars, labels=[f"{accuracies[n]:.3f}" for n in names])
    axes.set_xticks(range(len(names)), names, rotation=15)
    axes.set_ylim(0, 1.05)
    axes.set_ylabel("test accuracy")
    axes.set_title(title)
    return _save_atomic(figure, Path(path))

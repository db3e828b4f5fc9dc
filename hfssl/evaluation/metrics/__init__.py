"""hfssl's metrics as local `evaluate` modules, one folder each, loaded by path so they work offline.

Hub-hosted metric scripts (`evaluate.load("accuracy")`) need the network; these ship inside the package:

    evaluate.load(metric_path("effective_rank")).compute(embeddings=features)   # features (n, d)

Each module also exposes its formula as a plain function over numpy arrays (re-exported here), so code
that needs the number without `evaluate`'s Arrow round trip (training callbacks) uses the same math.
"""

from __future__ import annotations

from pathlib import Path

from .accuracy.accuracy import accuracy
from .alignment.alignment import alignment
from .effective_rank.effective_rank import effective_rank
from .macro_f1.macro_f1 import macro_f1
from .uniformity.uniformity import uniformity

METRICS_DIR = Path(__file__).resolve().parent
METRIC_NAMES = ("accuracy", "macro_f1", "alignment", "uniformity", "effective_rank")


def metric_path(name: str) -> str:
    """The folder of the local `evaluate` module `name`, for `evaluate.load(path)`."""
    if name not in METRIC_NAMES:
        raise KeyError(f"Unknown hfssl metric {name!r}; available: {', '.join(METRIC_NAMES)}.")
    return str(METRICS_DIR / name)


def load_metric(name: str, **kwargs):
    """`evaluate.load` of hfssl's local module `name` (no network); kwargs go to `evaluate.load`."""
    import evaluate

    return evaluate.load(metric_path(name), **kwargs)


__all__ = [
    "METRIC_NAMES",
    "accuracy",
    "alignment",
    "effective_rank",
    "load_metric",
    "macro_f1",
    "metric_path",
    "uniformity",
]

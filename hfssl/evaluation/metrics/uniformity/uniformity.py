"""Uniformity on the hypersphere (Wang & Isola 2020): how evenly embeddings spread over the unit sphere.

A local `evaluate` module, loaded offline with `evaluate.load(<this folder>)`. Lower (more negative)
is better; 0 means all embeddings collapsed to one point.
"""

import datasets
import evaluate
import numpy as np

_CITATION = """
@inproceedings{wang2020understanding,
  title={Understanding Contrastive Representation Learning through Alignment and Uniformity on the Hypersphere},
  author={Wang, Tongzhou and Isola, Phillip},
  booktitle={ICML},
  year={2020}
}
"""

_DESCRIPTION = "Uniformity = log mean over pairs i < j of exp(-t ||f(x_i) - f(x_j)||_2^2), with f l2-normalized."

_KWARGS_DESCRIPTION = """
Args:
    embeddings: (n, d) embeddings, n >= 2.
    t: temperature of the Gaussian potential (2 in the paper).
Returns:
    uniformity: float in [-4t, 0].
"""


def uniformity(embeddings: np.ndarray, t: float = 2.0) -> float:
    """(n, d) embeddings -> log of the mean Gaussian potential over all distinct pairs of l2-normalized rows."""
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"embeddings must have shape (n, d) with n >= 2, got {x.shape}.")
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    squared = np.clip(2.0 - 2.0 * x @ x.T, 0.0, None)  # (n, n): ||a - b||^2 = 2 - 2 a.b on the unit sphere
    pairs = squared[np.triu_indices(len(x), k=1)]  # (n (n - 1) / 2,)
    logits = -t * pairs
    peak = logits.max()  # log-mean-exp, stable
    return float(peak + np.log(np.mean(np.exp(logits - peak))))


class Uniformity(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"embeddings": datasets.Sequence(datasets.Value("float32"))}),
        )

    def _compute(self, embeddings, t: float = 2.0) -> dict:
        return {"uniformity": uniformity(embeddings, t)}

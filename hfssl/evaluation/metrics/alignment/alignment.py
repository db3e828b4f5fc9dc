"""Alignment of positive pairs (Wang & Isola 2020): how close two views of the same input embed.

A local `evaluate` module, loaded offline with `evaluate.load(<this folder>)`. Lower is better;
0 means every pair maps to the same point of the unit sphere, 4 (alpha=2) means opposite points.
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

_DESCRIPTION = "Alignment = mean over positive pairs of ||f(x) - f(y)||_2^alpha, with f l2-normalized."

_KWARGS_DESCRIPTION = """
Args:
    embeddings: (n, d) embeddings of the first views.
    positive_embeddings: (n, d) embeddings of the second views, row i paired with row i of `embeddings`.
    alpha: exponent (2 in the paper).
Returns:
    alignment: float in [0, 2**alpha].
"""


def _l2_normalize(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def alignment(embeddings: np.ndarray, positive_embeddings: np.ndarray, alpha: float = 2.0) -> float:
    """(n, d) and (n, d) paired embeddings -> mean ||x_i - y_i||^alpha of their l2-normalized rows."""
    x, y = np.asarray(embeddings, dtype=np.float64), np.asarray(positive_embeddings, dtype=np.float64)
    if x.ndim != 2 or x.shape != y.shape or len(x) == 0:
        raise ValueError(f"embeddings {x.shape} and positive_embeddings {y.shape} must be equal (n, d) shapes, n > 0.")
    distances = np.linalg.norm(_l2_normalize(x) - _l2_normalize(y), axis=1)  # (n,)
    return float(np.mean(distances**alpha))


class Alignment(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        vector = datasets.Sequence(datasets.Value("float32"))
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"embeddings": vector, "positive_embeddings": vector}),
        )

    def _compute(self, embeddings, positive_embeddings, alpha: float = 2.0) -> dict:
        return {"alignment": alignment(embeddings, positive_embeddings, alpha)}

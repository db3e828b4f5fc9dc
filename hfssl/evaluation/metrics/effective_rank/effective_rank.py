"""Effective rank of an embedding matrix: RankMe (Garrido et al. 2023), after Roy & Vetterli (2007).

A local `evaluate` module, loaded offline with `evaluate.load(<this folder>)`. Between 1 (all
embeddings on one line: dimensional collapse) and min(n, d) (all singular values equal).
"""

import datasets
import evaluate
import numpy as np

_CITATION = """
@inproceedings{garrido2023rankme,
  title={RankMe: Assessing the Downstream Performance of Pretrained Self-Supervised Representations by Their Rank},
  author={Garrido, Quentin and Balestriero, Randall and Najman, Laurent and LeCun, Yann},
  booktitle={ICML},
  year={2023}
}
"""

_DESCRIPTION = (
    "RankMe = exp(-sum_k p_k log p_k) with p_k = sigma_k / sum(sigma) + eps, sigma the singular values of the "
    "(n, d) embedding matrix."
)

_KWARGS_DESCRIPTION = """
Args:
    embeddings: (n, d) embeddings, n >= 1 (RankMe recommends n >= d; it is not centered).
    eps: the paper's 1e-7 guard inside the logarithm.
Returns:
    effective_rank: float in [1, min(n, d)] (1.0 for an all-zero matrix).
"""


def effective_rank(embeddings: np.ndarray, eps: float = 1e-7) -> float:
    """(n, d) embeddings -> RankMe, the exponential of the entropy of the normalized singular values."""
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2 or x.size == 0:
        raise ValueError(f"embeddings must have shape (n, d) with n, d >= 1, got {x.shape}.")
    singular = np.linalg.svd(x, compute_uv=False)  # (min(n, d),)
    total = singular.sum()
    if total <= 0:
        return 1.0
    p = singular / total + eps
    return float(np.exp(-np.sum(p * np.log(p))))


class EffectiveRank(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"embeddings": datasets.Sequence(datasets.Value("float32"))}),
        )

    def _compute(self, embeddings, eps: float = 1e-7) -> dict:
        return {"effective_rank": effective_rank(embeddings, eps)}

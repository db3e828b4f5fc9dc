"""Accuracy: the fraction of predictions equal to their reference label.

A local `evaluate` module, loaded offline with `evaluate.load(<this folder>)`.
"""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = "Accuracy = (number of predictions equal to their reference) / (number of predictions)."

_KWARGS_DESCRIPTION = """
Args:
    predictions: (n,) predicted class ids.
    references: (n,) true class ids.
Returns:
    accuracy: float in [0, 1].
"""


def accuracy(predictions: np.ndarray, references: np.ndarray) -> float:
    """(n,) predictions and (n,) references -> fraction of equal entries."""
    predictions, references = np.asarray(predictions), np.asarray(references)
    if predictions.shape != references.shape or predictions.size == 0:
        raise ValueError(
            f"predictions {predictions.shape} and references {references.shape} must be equal, non-empty shapes."
        )
    return float((predictions == references).mean())


class Accuracy(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}),
            format="numpy",
        )

    def _compute(self, predictions, references) -> dict:
        return {"accuracy": accuracy(predictions, references)}

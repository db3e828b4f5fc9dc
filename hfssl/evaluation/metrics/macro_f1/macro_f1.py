"""Macro-averaged F1: the unweighted mean over classes of each class's F1 score.

A local `evaluate` module, loaded offline with `evaluate.load(<this folder>)`. Classes are those that
appear in the references or the predictions; a class never predicted and never present does not count.
"""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = "Macro-F1 = mean over classes c of 2 * precision_c * recall_c / (precision_c + recall_c)."

_KWARGS_DESCRIPTION = """
Args:
    predictions: (n,) predicted class ids.
    references: (n,) true class ids.
Returns:
    macro_f1: float in [0, 1]; a class with no true positives scores 0.
"""


def macro_f1(predictions: np.ndarray, references: np.ndarray) -> float:
    """(n,) predictions and (n,) references -> macro-averaged F1 (same as sklearn's f1_score(average="macro"))."""
    predictions, references = np.asarray(predictions), np.asarray(references)
    if predictions.shape != references.shape or predictions.size == 0:
        raise ValueError(
            f"predictions {predictions.shape} and references {references.shape} must be equal, non-empty shapes."
        )
    scores = []
    for label in np.union1d(predictions, references):
        true_positive = np.sum((predictions == label) & (references == label))
        predicted, actual = np.sum(predictions == label), np.sum(references == label)
        scores.append(2.0 * true_positive / (predicted + actual))  # F1 = 2TP / (2TP + FP + FN)
    return float(np.mean(scores))


class MacroF1(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}),
            format="numpy",
        )

    def _compute(self, predictions, references) -> dict:
        return {"macro_f1": macro_f1(predictions, references)}

"""Macro-averaged F1: the unweighted mean over classes of each class's F1 score.

A local `evaluate` module, loaded offline with `evaluate.load(<this folder>)`. By default the classes are those
that appear in the references or the predictions (scikit-learn's default); a class never predicted and never
present does not count. `labels` fixes the classes instead: hfssl's probes pass the classes of the test split,
so that every arm averages over the same classes whatever it predicts.
"""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = "Macro-F1 = mean over classes c of 2 * precision_c * recall_c / (precision_c + recall_c)."

_KWARGS_DESCRIPTION = """
Args:
    predictions: (n,) predicted class ids.
    references: (n,) true class ids.
    labels: optional class ids to average over (default: those in the references or the predictions).
Returns:
    macro_f1: float in [0, 1]; a class with no true positives scores 0.
"""


def macro_f1(predictions: np.ndarray, references: np.ndarray, labels: np.ndarray | None = None) -> float:
    """(n,) predictions and (n,) references -> macro-averaged F1 over `labels` (default: every class in either),
    the same as sklearn's f1_score(average="macro", labels=labels). A class in `labels` with no reference and no
    prediction scores 0, as in sklearn."""
    predictions, references = np.asarray(predictions), np.asarray(references)
    if predictions.shape != references.shape or predictions.size == 0:
        raise ValueError(
            f"predictions {predictions.shape} and references {references.shape} must be equal, non-empty shapes."
        )
    scores = []
    classes = np.union1d(predictions, references) if labels is None else np.unique(np.asarray(labels))
    if classes.size == 0:
        raise ValueError("labels is empty; give the class ids to average over, or None for every class present.")
    for label in classes:
        true_positive = np.sum((predictions == label) & (references == label))
        predicted, actual = np.sum(predictions == label), np.sum(references == label)
        # F1 = 2TP / (2TP + FP + FN); 0 for a class neither predicted nor present (sklearn's zero_division=0)
        scores.append(2.0 * true_positive / (predicted + actual) if predicted + actual else 0.0)
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

    def _compute(self, predictions, references, labels=None) -> dict:
        return {"macro_f1": macro_f1(predictions, references, labels)}

"""Label efficiency: accuracy as a function of how many labels there are.

`stratified_subset` draws a label fraction per class; `learning_curve` scores every (fraction, seed)
pair with any scoring function and reports mean ± std. The arms of the issue are scoring functions:
a probe on pretrained features, the same probe on features of a randomly initialized copy, and
`train_supervised`, the same architecture trained from scratch on the same labels.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .features import Examples, InputEncoder
from .probes import as_class_ids, as_numpy, classification_scores

logger = logging.getLogger(__name__)

DEFAULT_FRACTIONS = (0.01, 0.05, 0.1, 0.25, 1.0)

Score = Callable[[np.ndarray, int], float]  # (indices of the labelled subset, seed) -> accuracy


def _per_class_counts(labels: np.ndarray, fraction: float) -> dict[int, tuple[int, int]]:
    """{class: (examples kept, examples available)}; round half up, so every class keeps its share."""
    classes, counts = np.unique(labels, return_counts=True)
    return {int(c): (math.floor(fraction * n + 0.5), int(n)) for c, n in zip(classes, counts)}


def smallest_fraction(examples: int) -> float:
    """The smallest label fraction, at 4 significant digits, that keeps one of `examples` examples: 0.5 / n rounded
    up, since a suggestion rounded down (0.01562 for 32 examples) keeps none."""
    exact = 0.5 / examples
    scale = 10 ** (3 - math.floor(math.log10(exact)))
    fraction = math.ceil(exact * scale) / scale
    while math.floor(fraction * examples + 0.5) < 1:  # float noise in the product
        fraction += 1 / scale
    return min(fraction, 1.0)


def check_fractions(labels: np.ndarray, fractions: Sequence[float], class_names: Sequence[str] | None = None) -> None:
    """ValueError when a fraction is outside (0, 1] or leaves some class without examples (named, with the fix: the
    smallest fraction that keeps every class, which is set by the smallest class, not by the one named)."""
    if len(fractions) == 0:  # a numpy array of fractions has no truth value
        raise ValueError("No label fractions given; pass e.g. 0.01,0.1,1.0.")

    def name(label: int) -> Any:
        return class_names[label] if class_names is not None and label < len(class_names) else label

    for fraction in fractions:
        if not 0 < fraction <= 1:
            raise ValueError(f"Label fraction {fraction} is outside (0, 1]; give fractions such as 0.01,0.1,1.0.")
        counts = _per_class_counts(labels, fraction)
        for label, (kept, available) in counts.items():
            if kept == 0:
                smallest = min(counts, key=lambda c: counts[c][1])
                fewest = counts[smallest][1]
                which = (f" (the smallest class, {name(smallest)!r}, has {fewest})" if fewest < available else "")
                raise ValueError(
                    f"Label fraction {fraction} leaves class {name(label)!r} (id {label}) with zero examples: it has "
                    f"{available} training example(s). Use a fraction of at least {smallest_fraction(fewest):g}"
                    f"{which}, or more training data."
                )


def stratified_subset(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Sorted indices of round(fraction * n_c) examples of every class c, drawn with `seed`.

    labels: (n,) class ids. The draw per class is a prefix of one seeded permutation, so for a fixed
    seed a smaller fraction's subset is contained in a larger one's, and the same seed gives the same subset.
    """
    labels = as_class_ids(as_numpy(labels), "stratified_subset")
    check_fractions(labels, [fraction])
    rng = np.random.default_rng(seed)
    chosen = []
    for label, (kept, _) in sorted(_per_class_counts(labels, fraction).items()):
        members = np.flatnonzero(labels == label)
        chosen.append(members[rng.permutation(len(members))[:kept]])
    return np.sort(np.concatenate(chosen))


def _summary(values: list[float]) -> tuple[float, float]:
    """(mean, sample std); the std of a single value is 0."""
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def learning_curve(
    labels: np.ndarray,
    fractions: Sequence[float],
    seeds: Sequence[int],
    score: Score,
    *,
    desc: str = "Label efficiency",
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Score a stratified subset for every fraction and seed.

    Returns one point per distinct fraction, in increasing order: {"fraction", "examples" (mean subset size),
    "accuracies" (one per seed, in the order of `seeds`), "mean", "std"}. The same seeds give the same subsets.
    """
    labels = as_class_ids(as_numpy(labels), "learning_curve")
    seeds = [int(seed) for seed in seeds]
    if not seeds:
        raise ValueError("No seeds given; pass one or more, e.g. seeds=[0, 1, 2].")
    fractions = sorted({float(f) for f in fractions})  # a fraction given twice is one point of the curve
    check_fractions(labels, fractions)
    points = []
    for fraction in tqdm(fractions, desc=desc, leave=False, disable=not progress):
        accuracies, sizes = [], []
        for seed in seeds:
            subset = stratified_subset(labels, fraction, seed)
            accuracies.append(float(score(subset, seed)))
            sizes.append(len(subset))
        mean, std = _summary(accuracies)
        points.append({"fraction": fraction, "examples": int(np.mean(sizes)), "accuracies": accuracies,
                       "mean": mean, "std": std})
    return points


# ---------------------------------------------------------------------------------------------- supervised baseline


def classifier_from_config(config: Any, num_labels: int, modality: str, seed: int) -> nn.Module:
    """A freshly initialized `...ForSequenceClassification` / `...ForImageClassification` of `config`'s architecture."""
    from transformers import (
        AutoModelForImageClassification,
        AutoModelForSequenceClassification,
    )

    config = copy.deepcopy(config)
    config.num_labels = num_labels
    auto = AutoModelForImageClassification if modality == "image" else AutoModelForSequenceClassification
    torch.manual_seed(seed)
    try:
        return auto.from_config(config)
    except ValueError as error:
        raise ValueError(
            f"No {auto.__name__} is registered for {type(config).__name__}: the supervised baseline needs "
            f"one. Drop 'supervised' from the baselines. ({error})"
        ) from error


def _batches(n: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    order = torch.randperm(n, generator=generator)
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]


def _take(examples: Examples, index: torch.Tensor) -> Examples:
    if isinstance(examples, (np.ndarray, torch.Tensor)):
        return examples[index.numpy() if isinstance(examples, np.ndarray) else index]
    return [examples[i] for i in index.tolist()]


@torch.no_grad()
def predict(model: nn.Module, examples: Examples, to_inputs: InputEncoder, batch_size: int) -> np.ndarray:
    """(n,) predicted class ids of a classification model, in eval mode."""
    model.eval()
    device = next(model.parameters()).device
    predictions = []
    for start in range(0, len(examples), batch_size):
        inputs = {k: v.to(device) for k, v in to_inputs(examples[start : start + batch_size]).items()}
        predictions.append(model(**inputs).logits.argmax(dim=-1).cpu())
    return torch.cat(predictions).numpy()


def train_supervised(
    config: Any,
    train_examples: Examples,
    train_labels: np.ndarray,
    test_examples: Examples,
    test_labels: np.ndarray,
    to_inputs: InputEncoder,
    *,
    modality: str,
    num_labels: int,
    epochs: int = 10,
    min_steps: int = 200,
    batch_size: int = 64,
    learning_rate: float = 1e-3,
    weight_decay: float = 0.05,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Train `config`'s architecture with a classification head from scratch; score it on the test set.

    AdamW with linear warm-up (10%) and cosine decay, for `epochs` epochs but at least `min_steps`
    steps, so that tiny label fractions still get a real optimization budget.
    train_examples: (n,) texts or (n, c, h, w) uint8 pixels; train_labels: (n,) class ids.

    Returns {"accuracy", "macro_f1", "protocol": {...}}.
    """
    from transformers import get_cosine_schedule_with_warmup

    pad_id = getattr(to_inputs, "pad_id", None)
    if modality == "text" and getattr(config, "pad_token_id", 0) is None and pad_id is not None:
        # A head that pools the last real token (GPT-2's) finds it by the pad id: the one the inputs are padded with.
        config = copy.deepcopy(config)
        config.pad_token_id = pad_id
    model = classifier_from_config(config, num_labels, modality, seed).to(device)
    generator = torch.Generator().manual_seed(seed)
    labels = torch.as_tensor(as_numpy(train_labels)).long()
    steps_per_epoch = math.ceil(len(labels) / batch_size)
    total = max(epochs * steps_per_epoch, min_steps)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=weight_decay)
    schedule = get_cosine_schedule_with_warmup(optimizer, max(1, total // 10), total)
    model.train()
    step = 0
    while step < total:
        for index in _batches(len(labels), batch_size, generator):
            inputs = {k: v.to(device) for k, v in to_inputs(_take(train_examples, index)).items()}
            loss = F.cross_entropy(model(**inputs).logits, labels[index].to(device))
            loss.backward()
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            if step == total:
                break
    scores = classification_scores(predict(model, test_examples, to_inputs, batch_size * 4), test_labels)
    protocol = {
        "name": "supervised from scratch",
        "model": type(model).__name__,
        "optimizer": "AdamW, linear warm-up 10%, cosine decay",
        "learning_rate": learning_rate,
        "weight_decay": weight_decay,
        "batch_size": batch_size,
        "steps": total,
        "epochs": round(total / steps_per_epoch, 2),
        "train_examples": len(labels),
    }
    return {**scores, "protocol": protocol}


def random_init_copy(model: nn.Module, seed: int = 0) -> nn.Module:
    """`type(model)(model.config)` initialized under `seed`: the same architecture, no pretraining."""
    torch.manual_seed(seed)
    fresh = type(model)(copy.deepcopy(model.config))
    return fresh.to(next(model.parameters()).device).eval()


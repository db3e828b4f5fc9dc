"""Frozen-feature probes: a linear probe (logistic regression) and a weighted kNN classifier.

Pure functions over features and labels: (n, d) float arrays or tensors and (n,) integer class ids.
They report accuracy, macro-F1 and the protocol that produced them, so a number never travels
without the recipe behind it.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .metrics import accuracy, macro_f1

logger = logging.getLogger(__name__)

DEFAULT_C_GRID = (0.001, 0.01, 0.1, 1.0, 10.0)
DEFAULT_KS = (20, 200)
# A single validation split picks C only when it holds this many examples, and at least this many per class;
# smaller label sets cross-validate (see select_c).
MIN_VALIDATION_EXAMPLES = 500
MIN_VALIDATION_PER_CLASS = 10
MAX_FOLDS = 5
KNN_TEMPERATURE = 0.07  # Wu et al. 2018 (InstDisc) and Caron et al. 2021 (DINO)

ArrayLike = np.ndarray | torch.Tensor


def as_numpy(x: ArrayLike) -> np.ndarray:
    """A tensor (any device, any dtype: bfloat16, which numpy lacks, becomes float32) or array -> numpy array."""
    if not isinstance(x, torch.Tensor):
        return np.asarray(x)
    x = x.detach().cpu()
    return (x.float() if x.dtype == torch.bfloat16 else x).numpy()


def as_class_ids(labels: np.ndarray, role: str) -> np.ndarray:
    """(n,) labels as int64 class ids: integers as they are, bools and whole-number floats (1.0) converted;
    ValueError naming `role` for anything else (0.5, NaN, strings)."""
    if np.issubdtype(labels.dtype, np.integer):
        return labels
    if labels.dtype == np.bool_:
        return labels.astype(np.int64)
    if np.issubdtype(labels.dtype, np.floating) and np.isfinite(labels).all() and (labels == np.round(labels)).all():
        return labels.astype(np.int64)
    raise ValueError(f"{role}: labels must be integer class ids, got dtype {labels.dtype}"
                     f"{' with values that are not whole numbers' if labels.dtype.kind == 'f' else ''}; "
                     "encode them first "
                     "(e.g. `names, ids = np.unique(labels, return_inverse=True)`).")


def check_features(features: ArrayLike, labels: ArrayLike, role: str) -> tuple[np.ndarray, np.ndarray]:
    """(n, d) features and (n,) integer labels as numpy arrays; ValueError naming `role` otherwise."""
    x, y = as_numpy(features), as_numpy(labels)
    if x.ndim != 2 or y.ndim != 1 or len(x) != len(y) or len(x) == 0:
        raise ValueError(
            f"{role}: expected features (n, d) and labels (n,) with the same n > 0, got {x.shape} and {y.shape}."
        )
    y = as_class_ids(y, role)
    if not np.isfinite(x).all():
        raise ValueError(f"{role}: features hold NaN or inf; the encoder is broken (check the checkpoint).")
    return x, y


def _check_same_width(train: np.ndarray, test: np.ndarray, probe: str) -> None:
    if train.shape[1] != test.shape[1]:
        raise ValueError(f"{probe}: the training features have {train.shape[1]} dimensions but the test features "
                         f"{test.shape[1]}; extract both with the same encoder and pooling.")


def classification_scores(predictions: ArrayLike, references: ArrayLike) -> dict[str, float]:
    """(n,) predicted and (n,) true class ids -> {"accuracy", "macro_f1"}.

    Macro-F1 averages over the classes present in `references` (the test split), whatever was predicted: a
    predicted class with no test example has no F1 to average (its false positives already lower the recall of
    the true classes), so every arm of an evaluation averages over the same classes.
    """
    predictions, references = as_numpy(predictions), as_numpy(references)
    return {"accuracy": accuracy(predictions, references),
            "macro_f1": macro_f1(predictions, references, labels=np.unique(references))}


# ---------------------------------------------------------------------------------------------- linear probe


def _shared_and_single(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows of classes with 2+ examples, rows of classes with a single example). A single example cannot be both
    fitted and validated on, so it stays in every training part of a split."""
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    return np.flatnonzero(counts[inverse] >= 2), np.flatnonzero(counts[inverse] < 2)


def _too_few(labels: np.ndarray, shared: np.ndarray) -> str | None:
    """Why no validation split exists (fewer than 2 classes with 2+ examples), or None."""
    if len(np.unique(labels[shared])) >= 2:
        return None
    classes, counts = np.unique(labels, return_counts=True)
    return f"fewer than 2 classes have 2 or more examples (counts per class: {dict(zip(classes.tolist(), counts.tolist()))})"


def _validation_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray] | str:
    """Stratified (train, validation) indices, or the reason no such split exists. Single-example classes train."""
    from sklearn.model_selection import train_test_split

    shared, single = _shared_and_single(labels)
    reason = _too_few(labels, shared)
    if reason:
        return reason
    n_classes = len(np.unique(labels[shared]))
    n_val = math.ceil(fraction * len(shared))
    if n_val < n_classes or len(shared) - n_val < n_classes:
        return f"{len(labels)} examples are too few for a {fraction:.0%} split over {n_classes} classes"
    train_idx, val_idx = train_test_split(shared, test_size=n_val, stratify=labels[shared], random_state=seed)
    return np.sort(np.concatenate([train_idx, single])), np.sort(val_idx)


def _cv_folds(labels: np.ndarray, seed: int) -> list[tuple[np.ndarray, np.ndarray]] | str:
    """Stratified k-fold (train, validation) index pairs, k = min(MAX_FOLDS, smallest count of a class with 2+
    examples), or the reason none exist. Classes with a single example are in every training fold."""
    from sklearn.model_selection import StratifiedKFold

    shared, single = _shared_and_single(labels)
    reason = _too_few(labels, shared)
    if reason:
        return reason
    _, counts = np.unique(labels[shared], return_counts=True)
    folds = StratifiedKFold(n_splits=int(min(MAX_FOLDS, counts.min())), shuffle=True, random_state=seed)
    return [(np.sort(np.concatenate([shared[t], single])), shared[v])
            for t, v in folds.split(np.zeros(len(shared)), labels[shared])]


def _fit_logistic(x: np.ndarray, y: np.ndarray, c: float, max_iter: int):
    """Standardize (statistics of `x`) then fit multinomial logistic regression; returns the pipeline."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    pipeline = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=max_iter))
    with warnings.catch_warnings():
        # Weakly regularized fits on separable data may stop at max_iter; the validation score still ranks them.
        warnings.simplefilter("ignore", ConvergenceWarning)
        pipeline.fit(x, y)
    return pipeline


def _c_path_accuracies(x: np.ndarray, y: np.ndarray, x_val: np.ndarray, y_val: np.ndarray, grid: Sequence[float],
                       max_iter: int) -> dict[float, float]:
    """Validation accuracy of the logistic regression at each C of `grid` (ascending), fitted along the path:
    each fit starts from the previous C's solution (warm start), so the weakly regularized fits, the slow ones
    on wide, correlated features, begin near their optimum. The optimum of each fit is the same as from zero."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x)
    x, x_val = scaler.transform(x), scaler.transform(x_val)
    model = LogisticRegression(max_iter=max_iter, warm_start=True)
    accuracies = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for c in grid:
            model.set_params(C=c).fit(x, y)
            accuracies[c] = float((model.predict(x_val) == y_val).mean())
    return accuracies


def select_c(
    x: np.ndarray, y: np.ndarray, grid: Sequence[float], val_fraction: float, seed: int, max_iter: int
) -> tuple[float, dict[str, Any]]:
    """Choose C by validation accuracy; ties go to the smaller C.

    The validation data is a stratified ``val_fraction`` split carved from (x, y) when that split holds at
    least ``MIN_VALIDATION_EXAMPLES`` examples and ``MIN_VALIDATION_PER_CLASS`` per class. Smaller label
    sets (most of a label-efficiency curve) use stratified k-fold cross-validation instead: a 20% split of
    50 labels is 10 images, whose accuracy moves in steps of 0.1 and picks C by chance, and even a split of
    100 has a standard error of 4-5 points, more than the gap between neighbouring values of C. Every
    example validates once across the folds, and the fits are cheap at these sizes.

    Returns (C, protocol notes). With one candidate, that one; with no possible split (a class with one
    example), C=1 (or the middle candidate without 1 in the grid), and the notes say why.
    """
    grid = sorted(grid)
    if len(grid) == 1:
        return grid[0], {"selection": "fixed C (one candidate)"}
    n_classes = len(np.unique(y))
    n_val = math.ceil(val_fraction * len(y))
    use_split = n_val >= max(MIN_VALIDATION_EXAMPLES, MIN_VALIDATION_PER_CLASS * n_classes)
    split = _validation_split(y, val_fraction, seed) if use_split else _cv_folds(y, seed)
    if isinstance(split, str):
        fallback = 1.0 if 1.0 in grid else grid[len(grid) // 2]
        logger.info("Linear probe: no validation split (%s); using C=%s.", split, fallback)
        return fallback, {"selection": f"skipped: {split}; C={fallback} used"}
    if use_split:
        how = (f"best validation accuracy on a stratified {val_fraction:.0%} split of the training features "
               f"(seed {seed}), then refit on all of them")
    else:
        how = (f"best mean validation accuracy over stratified {len(split)}-fold cross-validation of the training "
               f"features (seed {seed}; a {val_fraction:.0%} split would hold {n_val} examples, fewer than "
               f"{max(MIN_VALIDATION_EXAMPLES, MIN_VALIDATION_PER_CLASS * n_classes)}), then refit on all of them")
    folds = split if isinstance(split, list) else [split]
    per_fold = [_c_path_accuracies(x[train_idx], y[train_idx], x[val_idx], y[val_idx], grid, max_iter)
                for train_idx, val_idx in folds]
    scores = {c: float(np.mean([fold[c] for fold in per_fold])) for c in grid}
    best = max(grid, key=lambda c: (scores[c], -c))
    notes = {"selection": how, "validation_accuracy": {str(c): s for c, s in scores.items()}}
    singles = len(_shared_and_single(y)[1])
    if singles:
        notes["selection"] += f"; {singles} class(es) with a single example only trained, never validated"
    return best, notes


def linear_probe(
    train_features: ArrayLike,
    train_labels: ArrayLike,
    test_features: ArrayLike,
    test_labels: ArrayLike,
    *,
    c_grid: Sequence[float] = DEFAULT_C_GRID,
    val_fraction: float = 0.2,
    seed: int = 0,
    max_iter: int = 1000,
    blas_threads: int | None = 1,
) -> dict[str, Any]:
    """Logistic regression on standardized frozen features.

    Args:
        train_features: (n, d); train_labels: (n,) class ids. Standardization uses these statistics only.
        test_features: (m, d); test_labels: (m,).
        c_grid: inverse L2 strengths tried on a validation split carved (stratified) from the training set,
            or by stratified k-fold cross-validation when that split would be small (see :func:`select_c`).
        blas_threads: BLAS threads during the fits (None: leave them as they are). These fits are many small
            products, and BLAS threads competing with torch's OpenMP threads made them 2-50x slower; one thread
            was faster at every size measured (scripts/benchmark_probe.py).

    Returns:
        {"accuracy", "macro_f1", "protocol": {...}} with the chosen C and every validation score.
    """
    x, y = check_features(train_features, train_labels, "linear probe, training features")
    x_test, y_test = check_features(test_features, test_labels, "linear probe, test features")
    _check_same_width(x, x_test, "linear probe")
    if len(np.unique(y)) < 2:
        raise ValueError(f"The linear probe needs at least 2 classes in the training labels, got {np.unique(y)}.")
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction={val_fraction} must be in (0, 1).")
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=blas_threads, user_api="blas"):
        c, notes = select_c(x, y, c_grid, val_fraction, seed, max_iter)
        model = _fit_logistic(x, y, c, max_iter)
        predictions = model.predict(x_test)
    protocol = {
        "name": "linear probe",
        "features": "frozen, standardized with the training set's mean and std",
        "classifier": "multinomial logistic regression, L2, lbfgs (scikit-learn)",
        "max_iter": max_iter,
        "c_grid": sorted(c_grid),
        "C": c,
        **notes,
        "train_examples": len(y),
        "test_examples": len(y_test),
    }
    return {**classification_scores(predictions, y_test), "protocol": protocol}


# ---------------------------------------------------------------------------------------------- kNN


def knn_predict(
    train_features: ArrayLike,
    train_labels: ArrayLike,
    test_features: ArrayLike,
    k: int,
    *,
    temperature: float = KNN_TEMPERATURE,
    num_classes: int | None = None,
    chunk_size: int = 1024,
) -> torch.Tensor:
    """Weighted kNN (Wu et al. 2018; Caron et al. 2021): cosine similarity, votes weighted by exp(sim / T).

    Args:
        train_features: (n, d) memory bank (tensor or array, any float dtype); train_labels: (n,) class ids in
            [0, num_classes). test_features: (m, d) queries, on the bank's device. k is capped at n.
    Returns:
        (m,) predicted class ids, on the bank's device.
    """
    if k < 1:
        raise ValueError(f"k={k} must be >= 1.")
    if temperature <= 0:
        raise ValueError(f"temperature={temperature} must be > 0.")
    bank = torch.as_tensor(train_features)
    device = bank.device
    labels = torch.as_tensor(train_labels, device=device)
    queries_all = torch.as_tensor(test_features, device=device)
    if bank.ndim != 2 or queries_all.ndim != 2 or labels.ndim != 1 or len(bank) != len(labels) or len(bank) == 0:
        raise ValueError(f"knn_predict: expected a bank (n, d) with n > 0, labels (n,) and queries (m, d), got "
                         f"{tuple(bank.shape)}, {tuple(labels.shape)} and {tuple(queries_all.shape)}.")
    if bank.shape[1] != queries_all.shape[1]:
        raise ValueError(f"knn_predict: the bank has {bank.shape[1]} dimensions but the queries "
                         f"{queries_all.shape[1]}; "
                         "extract both with the same encoder and pooling.")
    if labels.is_floating_point() and not torch.equal(labels, labels.round()):
        raise ValueError("knn_predict: labels must be integer class ids; encode them first.")
    labels = labels.long()
    if not (torch.isfinite(bank).all() and torch.isfinite(queries_all).all()):
        raise ValueError("knn_predict: features hold NaN or inf; the encoder is broken (check the checkpoint).")
    num_classes = num_classes or int(labels.max()) + 1
    if int(labels.min()) < 0 or int(labels.max()) >= num_classes:
        raise ValueError(f"knn_predict: labels must be class ids in [0, {num_classes}), got {int(labels.min())}.."
                         f"{int(labels.max())}; encode them as 0..C-1 first, or pass a larger num_classes.")
    bank = F.normalize(bank.float(), dim=1)  # (n, d)
    k = min(k, len(bank))
    predictions = [torch.zeros(0, dtype=torch.long, device=device)]  # no query: an empty prediction
    for start in range(0, len(queries_all), chunk_size):
        queries = F.normalize(queries_all[start : start + chunk_size].float(), dim=1)  # (c, d)
        similarity, index = (queries @ bank.T).topk(k, dim=1)  # (c, k), (c, k)
        weights = (similarity / temperature).exp()  # (c, k)
        votes = torch.zeros(len(queries), num_classes, dtype=weights.dtype, device=weights.device)
        votes.scatter_add_(1, labels[index], weights)  # (c, num_classes)
        predictions.append(votes.argmax(dim=1))
    return torch.cat(predictions)


def knn_probe(
    train_features: ArrayLike,
    train_labels: ArrayLike,
    test_features: ArrayLike,
    test_labels: ArrayLike,
    *,
    ks: Sequence[int] = DEFAULT_KS,
    temperature: float = KNN_TEMPERATURE,
) -> dict[str, Any]:
    """Weighted kNN accuracy for each k in `ks` (each capped at the number of training examples).

    Args:
        train_features: (n, d), train_labels: (n,), test_features: (m, d), test_labels: (m,).
    Returns:
        {"accuracy", "macro_f1" (both at the first k), "by_k": {"20": {"accuracy", "macro_f1"}, ...},
        "protocol": {...}}.
    """
    x, y = check_features(train_features, train_labels, "kNN, training features")
    x_test, y_test = check_features(test_features, test_labels, "kNN, test features")
    _check_same_width(x, x_test, "kNN")
    if not ks:
        raise ValueError("ks is empty; give at least one k, e.g. (20, 200).")
    # Votes are counted per class id 0..C-1: any other ids (negative, with gaps) are renumbered, then mapped back.
    classes, ids = np.unique(np.concatenate([y, y_test]), return_inverse=True)
    bank, labels, queries = torch.from_numpy(x), torch.from_numpy(ids[: len(y)]).long(), torch.from_numpy(x_test)
    by_k = {}
    for k in ks:
        predictions = knn_predict(bank, labels, queries, k, temperature=temperature, num_classes=len(classes))
        by_k[str(k)] = classification_scores(classes[predictions.numpy()], y_test)
    protocol = {
        "name": "weighted kNN",
        "similarity": "cosine (l2-normalized features)",
        "votes": f"sum over the k neighbours of exp(similarity / {temperature}) per class",
        "temperature": temperature,
        "k_requested": list(ks),
        "k_used": [min(k, len(y)) for k in ks],
        "train_examples": len(y),
        "test_examples": len(y_test),
    }
    first = by_k[str(ks[0])]
    return {**first, "by_k": by_k, "protocol": protocol}

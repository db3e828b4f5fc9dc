"""Audit of image encoders (MAE, contrastive): performance disaggregated by factors of a labelled evaluation set.

Per test image: kNN correctness on frozen features (memory bank: the set's training split) when the set has
labels, and MAE reconstruction error (seeded masking) when the model has a decoder. Both are disaggregated with
fairlearn's MetricFrame by: class, brightness tertile, contrast tertile, the user's group column and any other
column with 2-20 distinct values. Differences across images are not social bias: unless the user supplies a set
with a group column describing people, social bias is stated as not evaluated.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data.files import column_list
from .common import (
    AuditContext,
    batched,
    group_label,
    mean_with_ci,
    model_device,
    result,
    row,
    score_model_and_baseline,
)
from .data import LabelledSet, MissingAuditData
from .fairness import accuracy, frame_rows, mean_value

logger = logging.getLogger(__name__)

KNN_K = 20
DEFAULT_LABEL_COLUMN = "label"  # the flag's default: a set without it is audited unlabelled
MAX_TRAIN_IMAGES = 2000
MAX_METADATA_VALUES = 20
SOCIAL_BIAS_NOT_EVALUATED = (
    "Social bias not evaluated: this audit compares how the model does on different kinds of images (class, "
    "brightness, contrast, metadata columns). It says nothing about people; pass a labelled set with a column "
    "describing the people pictured (--group-column) to measure that.")


@dataclass
class VisionSet:
    """Decoded audit images with their labels and metadata: pixels (n, c, h, w) uint8, labels (n,) or None."""

    train_pixels: np.ndarray | None
    train_labels: np.ndarray | None
    pixels: np.ndarray
    labels: np.ndarray | None
    class_names: list[str]
    columns: dict[str, np.ndarray]
    source: str


def load_vision_set(config: Any, *, dataset: Any = None, train_files: list[str] | None = None,
                    test_files: list[str] | None = None, label_column: str = "label", image_column: str | None = None,
                    group_column: str | None = None, seed: int = 0, split: str | None = None) -> VisionSet:
    """Train (memory bank) and test images of a labelled set, decoded at the model's size, metadata kept aligned.
    `split`: the split of `dataset` to audit (default its "test" split, else one carved from "train")."""
    from ..evaluation.protocol import (
        DataOptions,
        carve_test_split,
        input_column,
        load_source,
    )

    options = DataOptions(dataset=dataset, train_files=train_files or (test_files if dataset is None else None),
                          test_files=test_files if train_files else None, label_column=label_column,
                          image_column=image_column, seed=seed, test_split=split)
    train, test, source = load_source(options)
    has_labels = label_column in train.features
    if not has_labels and label_column != DEFAULT_LABEL_COLUMN:  # an unlabelled set is fine, a misnamed column not
        raise ValueError(f"--label-column {label_column!r} is not a column of the audit set; its columns are "
                         f"{column_list(train.features)}. Pass the column holding the labels, or leave the flag out for an "
                         "unlabelled set.")
    if test is None:
        train, test = (carve_test_split(train, label_column, 0.3, seed) if has_labels
                       else (None, train))
    column = input_column(test.features, "image", options)
    if group_column is not None and (group_column not in test.features or group_column == column):
        problem = "holds the images" if group_column == column else "not found"
        raise ValueError(f"Group column {group_column!r} {problem}; the audit set's columns are {list(test.features)} "
                         f"(images in {column!r}). Pass the column that describes the groups with --group-column.")
    pixels, labels, names = decode_images(test, column, label_column if has_labels else None, config)
    train_pixels = train_labels = None
    if train is not None and has_labels:
        train = train.shuffle(seed=seed).select(range(min(MAX_TRAIN_IMAGES, len(train))))
        train_pixels, train_labels, _ = decode_images(train, column, label_column, config, names)
    return VisionSet(train_pixels, train_labels, pixels, labels, names,
                     _metadata(test, {column, label_column}, group_column), _public(source))


def decode_images(ds, column: str, label_column: str | None, config: Any, names: list[str] | None = None):
    """(pixels (n, c, h, w) uint8, label ids or None, class names); strict, so rows stay aligned with `ds`."""
    from ..data.images import load_image_dataset

    decoded, _ = load_image_dataset(dataset=ds, image_column=column, label_column=label_column, strict=True,
                                    image_size=int(config.image_size), num_channels=int(config.num_channels))
    pixels = np.stack(decoded.with_format("numpy", columns=["pixel_values"])["pixel_values"]).astype(np.uint8)
    if label_column is None:
        return pixels, None, []
    values = list(decoded.with_format(None)["label"])
    feature = ds.features[label_column]
    names = names or (list(feature.names) if hasattr(feature, "names") else sorted({str(v) for v in values}))
    index = {n: i for i, n in enumerate(names)}
    ids = [v if hasattr(feature, "names") else index.get(str(v), -1) for v in values]
    return pixels, np.asarray(ids, dtype=np.int64), names


def _metadata(ds, exclude: set[str], group_column: str | None) -> dict[str, np.ndarray]:
    """The group column (None where a row has no group), and other columns with 2..20 distinct scalar values."""
    out = {}
    for name in ds.column_names:
        if name == group_column:
            out[name] = np.asarray([group_label(v) for v in ds[name]], dtype=object)
            continue
        if name in exclude:
            continue
        values = ds[name]
        if not all(isinstance(v, (str, int, bool)) for v in values):
            continue
        if 2 <= len(set(values)) <= MAX_METADATA_VALUES:
            out[name] = np.asarray([str(v) for v in values], dtype=object)
    return out


def _public(source: str) -> str:
    from ..hub.bundle import looks_like_local_path

    kind, _, rest = source.partition(":")
    parts = [p for p in rest.split(",") if p] if rest else []
    if parts and all(looks_like_local_path(p) for p in parts):
        return f"{kind}: local files"
    return source


# ---------------------------------------------------------------------------------------------- per-image scores


def tertiles(values: np.ndarray, name: str) -> np.ndarray:
    """(n,) labels of the tertile bin of each value, e.g. "brightness 0.12-0.35"."""
    edges = np.quantile(values, [0, 1 / 3, 2 / 3, 1])
    bins = np.clip(np.searchsorted(edges[1:-1], values, side="right"), 0, 2)
    return np.asarray([f"{name} {edges[b]:.2f}-{edges[b + 1]:.2f}" for b in bins], dtype=object)


@torch.no_grad()
def _features(model: nn.Module, to_inputs, pixels: np.ndarray, batch_size: int = 64) -> torch.Tensor:
    device = model_device(model)
    out = [model.get_features(to_inputs(chunk)["pixel_values"].to(device)).float().cpu()
           for chunk in batched(pixels, batch_size)]
    return torch.cat(out)


@torch.no_grad()
def reconstruction_errors(model: nn.Module, pixel_values: torch.Tensor, seed: int) -> np.ndarray:
    """(b,) MAE loss of each image (mean squared error over its masked patches), masking seeded by `seed`."""
    generator = torch.Generator().manual_seed(seed)
    patches = (pixel_values.shape[-2] // model.config.patch_size) * (pixel_values.shape[-1] // model.config.patch_size)
    noise = torch.rand(pixel_values.shape[0], patches, generator=generator).to(pixel_values.device)  # (b, L)
    encoded = model.forward_encoder(pixel_values, noise)
    logits = model.forward_decoder(encoded.last_hidden_state, encoded.ids_restore, pixel_values.shape[-2:])
    target = model.patchify(pixel_values)  # (b, L, p*p*c)
    if model.config.norm_pix_loss:
        target = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6).sqrt()
    error = (logits.float() - target.float()).pow(2).mean(-1)  # (b, L)
    return ((error * encoded.mask).sum(1) / encoded.mask.sum(1).clamp(min=1)).cpu().numpy()


def has_decoder(model: nn.Module) -> bool:
    return getattr(model, "decoder", None) is not None and hasattr(model, "forward_encoder")


def _scorer(data: VisionSet, to_inputs, seed: int):
    """scorer(model)(indices) -> (k, 2): [kNN correct (nan without labels), reconstruction error (nan without
    a decoder)] per test image."""
    from ..evaluation.probes import knn_predict

    def for_model(model: nn.Module):
        bank = None
        if data.train_pixels is not None:
            bank = _features(model, to_inputs, data.train_pixels)

        def score(indices) -> np.ndarray:
            index = np.asarray(indices, dtype=int)
            out = np.full((len(index), 2), np.nan)
            if bank is not None:
                query = _features(model, to_inputs, data.pixels[index])
                predicted = knn_predict(bank, torch.as_tensor(data.train_labels), query, KNN_K,
                                        num_classes=max(len(data.class_names), 1)).numpy()
                out[:, 0] = (predicted == data.labels[index]).astype(float)
            if has_decoder(model):
                x = to_inputs(data.pixels[index])["pixel_values"].to(model_device(model))
                out[:, 1] = np.concatenate([reconstruction_errors(model, chunk, seed) for chunk in x.split(64)])
            return out

        return score

    return for_model


# ---------------------------------------------------------------------------------------------- the audit


def factors(data: VisionSet, used: np.ndarray) -> dict[str, np.ndarray]:
    """Factor name -> (k,) group labels of the used test images (None where the group column is blank)."""
    pixels = data.pixels[used].astype(np.float32) / 255.0  # (k, c, h, w)
    out: dict[str, np.ndarray] = {}
    if data.labels is not None:
        out["class"] = np.asarray([data.class_names[i] if 0 <= i < len(data.class_names) else "?"
                                   for i in data.labels[used]], dtype=object)
    out["brightness"] = tertiles(pixels.mean(axis=(1, 2, 3)), "brightness")
    out["contrast"] = tertiles(pixels.std(axis=(1, 2, 3)), "contrast")
    out.update({name: values[used] for name, values in data.columns.items()})
    return out


def _metric_inputs(scores: np.ndarray, column: int, data: VisionSet, used: np.ndarray):
    """(y_true, y_pred) for MetricFrame: labels and kNN answers (-1 when wrong), or errors and errors."""
    if column == 0:
        truth = data.labels[used]
        return truth, np.where(scores[:, 0] == 1.0, truth, -1)
    return scores[:, 1], scores[:, 1]


def blank_groups(data: VisionSet, used: np.ndarray, group_column: str | None) -> int:
    """How many used images have no value in the group column (logged); ValueError when none has one."""
    if group_column is None or group_column not in data.columns:
        return 0
    blank = int(sum(g is None for g in data.columns[group_column][used]))
    if blank == len(used):
        raise ValueError(f"--group-column {group_column!r} is blank in all {blank} audited images; pass the column "
                         "that names each image's group, or fill it in.")
    if blank:
        logger.warning("%d of %d audited image(s) have no %r value (None or blank) and were left out of the rows by "
                       "%s; fill the column in to audit them.", blank, len(used), group_column, group_column)
    return blank


def _table(ctx: AuditContext, data: VisionSet, scores: np.ndarray, base: np.ndarray | None,
           used: np.ndarray) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Rows of each metric: overall (every used image), then by each factor (images without a group left out)."""
    def estimate(values: np.ndarray) -> dict[str, Any]:
        return mean_with_ci(values, n_boot=ctx.n_boot, seed=ctx.seed)

    table, suppressed = [], {}
    by_factor = factors(data, used)
    for name, metric, column in (("kNN accuracy", accuracy, 0), ("reconstruction error (MSE)", mean_value, 1)):
        if np.isnan(scores[:, column]).all():
            continue
        table.append(row(name, estimate(scores[:, column]), None,
                         baseline=None if base is None else estimate(base[:, column])))
        y_true, y_pred = _metric_inputs(scores, column, data, used)
        baseline = None if base is None else _metric_inputs(base, column, data, used)[1]
        for factor, groups in by_factor.items():
            keep = np.asarray([g is not None for g in groups], dtype=bool)
            rows, hidden = frame_rows(name, metric, y_true[keep], y_pred[keep], groups[keep], ctx,
                                      baseline_pred=None if baseline is None else baseline[keep], factor=factor,
                                      overall=False)
            table += rows
            suppressed.update({f"{factor}={g}": n for g, n in hidden.items()})
    return table, suppressed


def labelled_images_audit(ctx: AuditContext, budget_s: float | None, labelled: LabelledSet) -> dict[str, Any]:
    """`vision_audit` on the user's labelled images; MissingAuditData when none were given."""
    if not labelled.given:
        raise MissingAuditData("No labelled evaluation images were given: pass --dataset or --test-files (with "
                               "--label-column) to measure accuracy and reconstruction error across image factors.")
    images = load_vision_set(ctx.model.config, dataset=labelled.dataset, train_files=labelled.train_files,
                             test_files=labelled.test_files, label_column=labelled.label_column,
                             image_column=labelled.image_column, group_column=labelled.group_column, seed=ctx.seed,
                             split=labelled.split)
    return vision_audit(ctx, budget_s, images, labelled.group_column)


def vision_audit(ctx: AuditContext, budget_s: float | None, data: VisionSet,
                 group_column: str | None = None) -> dict[str, Any]:
    """kNN accuracy and reconstruction error disaggregated by the factors of `data` (see the module docstring)."""
    from ..evaluation.features import image_inputs_from_processor

    started = time.perf_counter()
    to_inputs = image_inputs_from_processor(ctx.processor)
    items = list(range(len(data.pixels)))
    scores, base, used, note = score_model_and_baseline(ctx, items, _scorer(data, to_inputs, ctx.seed), budget_s)
    used = np.asarray(used, dtype=int)
    without_group = blank_groups(data, used, group_column)
    table, suppressed = _table(ctx, data, scores, base, used)
    caveats = ["Accuracy differs across classes for reasons unrelated to bias (some classes are harder); read the "
               "differences against the random-init baseline."]
    if group_column is None:
        caveats.append(SOCIAL_BIAS_NOT_EVALUATED)
    if without_group:
        caveats.append(f"{without_group} of {len(used)} audited image(s) have no {group_column!r} value and were left "
                       f"out of the rows by {group_column}; they count in the other rows.")
    data_note = {"source": data.source, "rows": len(data.pixels),
                 "sha256": hashlib.sha256(np.ascontiguousarray(data.pixels[used]).tobytes()).hexdigest(),
                 "memory_bank": None if data.train_pixels is None else len(data.train_pixels), "knn_k": KNN_K,
                 "group_column": group_column, "rows_without_group": without_group}
    return result("Performance across image factors (vision)",
                  "kNN accuracy on frozen features and MAE reconstruction error, disaggregated by class, "
                  "brightness and contrast tertiles and metadata columns with fairlearn's MetricFrame.",
                  table, data=data_note, suppressed=suppressed, caveats=caveats, subsample=note, started=started)

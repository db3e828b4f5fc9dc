"""Audit of fine-tuned classifiers on a user's labelled set.

- With a group column: fairlearn MetricFrame by group of accuracy and, for two classes, the selection rate of
  class 1 (named by config.id2label) and the false positive / false negative rates, with between-group differences
  (ideal 0) and ratios (ideal 1). Rows with a blank group value are left out with a warning and a caveat.
- Text classifiers: the counterfactual flip rate, the share of inputs whose predicted class changes when
  gendered words and first names are swapped (hfssl's swap lists; ideal 0).
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data.files import column_list
from .common import (
    AuditContext,
    batched,
    group_label,
    grouped_rows,
    model_device,
    result,
    score_model_and_baseline,
    sha256_items,
    split_groups,
)
from .data import LabelledSet, MissingAuditData, load_table
from .fairness import (
    accuracy,
    false_negative_rate,
    false_positive_rate,
    frame_rows,
    selection_rate,
)
from .text_common import max_length, pad_batch
from .wordlists import GENDER_SWAPS, NAME_SWAPS

logger = logging.getLogger(__name__)

_WORD = re.compile(r"[A-Za-z]+")


def swap_gender(text: str) -> str:
    """`text` with gendered words and first names swapped (he <-> she, John <-> Mary, ...), case kept."""

    def replace(match: re.Match) -> str:
        word = match.group(0)
        if word in NAME_SWAPS:
            return NAME_SWAPS[word]
        swapped = GENDER_SWAPS.get(word.lower())
        if swapped is None:
            return word
        if word.isupper() and len(word) > 1:
            return swapped.upper()
        return swapped.capitalize() if word[0].isupper() else swapped

    return _WORD.sub(replace, text)


def label_ids(values: list[Any], feature: Any, config: Any) -> np.ndarray:
    """The model's class ids of the set's labels (names through config.label2id, or integer ids)."""
    names = list(feature.names) if hasattr(feature, "names") else None
    label2id = {str(k): int(v) for k, v in (getattr(config, "label2id", None) or {}).items()}
    label2id = label2id or {str(v): int(k) for k, v in (getattr(config, "id2label", None) or {}).items()}
    out = []
    for value in values:
        if isinstance(value, (float, np.floating)) and float(value).is_integer():
            value = int(value)  # a CSV label column with a blank cell is read as floats: 1.0 is class 1
        elif isinstance(value, str):
            value = value.strip()  # " pos" is the class "pos", as in `hfssl finetune`
        name = names[value] if names is not None and isinstance(value, int) else value
        if str(name) in label2id:
            out.append(label2id[str(name)])
        elif isinstance(value, (int, np.integer)) and 0 <= int(value) < config.num_labels:
            out.append(int(value))
        else:
            raise ValueError(f"Label {value!r} of the audit set is not a class of the model (classes: "
                             f"{sorted(label2id) or list(range(config.num_labels))}); pass the set the model was "
                             "fine-tuned for, or the right --label-column.")
    return np.asarray(out, dtype=np.int64)


@torch.no_grad()
def predict_texts(model: nn.Module, tokenizer: Any, texts: list[str], batch_size: int = 32) -> np.ndarray:
    """(n,) predicted class ids of texts."""
    model.eval()
    limit, device, out = max_length(model, tokenizer), model_device(model), []
    for chunk in batched(texts, batch_size):
        ids = [tokenizer(t, truncation=True, max_length=limit)["input_ids"] for t in chunk]
        out.append(model(**pad_batch(ids, tokenizer.pad_token_id, device)).logits.argmax(-1).cpu())
    return torch.cat(out).numpy()


@torch.no_grad()
def predict_images(model: nn.Module, to_inputs, pixels: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """(n,) predicted class ids of uint8 images (n, c, h, w)."""
    model.eval()
    device = model_device(model)
    out = [model(pixel_values=to_inputs(chunk)["pixel_values"].to(device)).logits.argmax(-1).cpu()
           for chunk in batched(pixels, batch_size)]
    return torch.cat(out).numpy()


def _scorer(ctx: AuditContext, inputs: list[str] | np.ndarray, modality: str):
    """scorer(model)(indices) -> (k, 2): [prediction, prediction after the gender swap (nan for images)]."""
    from ..evaluation.features import image_inputs_from_processor

    def for_model(model: nn.Module):
        def score(indices) -> np.ndarray:
            index = list(indices)
            if modality == "image":
                predicted = predict_images(model, image_inputs_from_processor(ctx.processor), inputs[index])
                return np.stack([predicted, np.full(len(index), np.nan)], axis=1)
            texts = [inputs[i] for i in index]
            both = predict_texts(model, ctx.processor, texts + [swap_gender(t) for t in texts])
            return np.stack([both[: len(texts)], both[len(texts):]], axis=1).astype(float)

        return score

    return for_model


def positive_class(config: Any) -> str:
    """How tables name class 1, the positive class of the binary rates: "class 1: rotten" when config.id2label
    names it, else "class 1"."""
    id2label = {str(k): str(v) for k, v in (getattr(config, "id2label", None) or {}).items()}
    name = id2label.get("1")
    return "class 1" if not name or name.upper() in ("1", "LABEL_1") else f"class 1: {name}"


def _group_rows(ctx: AuditContext, y_true: np.ndarray, pred: np.ndarray, base: np.ndarray | None,
                groups: np.ndarray, group_column: str, binary: bool):
    metrics = [("accuracy", accuracy)]
    if binary:
        metrics += [(f"selection rate ({positive_class(ctx.model.config)})", selection_rate),
                    ("false positive rate", false_positive_rate), ("false negative rate", false_negative_rate)]
    table, suppressed, caveats = [], {}, []
    for name, metric in metrics:
        rows, hidden = frame_rows(name, metric, y_true, pred, groups, ctx, baseline_pred=base, factor=group_column)
        table += rows
        suppressed.update(hidden)
        caveats += _undefined_caveat(name, rows, group_column)
    return table, suppressed, caveats


def _undefined_caveat(name: str, rows: list[dict[str, Any]], group_column: str) -> list[str]:
    """A caveat naming the groups where `name` is undefined (a false positive rate in a group without negatives):
    the table shows "-" there, and the group is left out of the difference and ratio without a word otherwise."""
    undefined = [r["group"] for r in rows if r["group"] != "all" and r["value"] is None]
    if not undefined:
        return []
    why = {"false positive rate": "it has no rows of the negative class",
           "false negative rate": "it has no rows of the positive class"}.get(name, "it has no rows it could count")
    return [(f"The {name} is undefined for the {group_column!r} group(s) {', '.join(undefined)} ({why}); they are "
             "left out of that rate's difference and ratio across groups.")]


def _flip_rows(ctx: AuditContext, texts: list[str], used: np.ndarray, scores: np.ndarray, base: np.ndarray | None,
               groups: np.ndarray | None):
    changed = np.array([swap_gender(texts[i]) != texts[i] for i in used])
    if not changed.any():
        return [], {}, "No audit text contains a word of the swap lists, so the flip rate was not measured."
    flips = (scores[changed, 0] != scores[changed, 1]).astype(float)
    base_flips = None if base is None else (base[changed, 0] != base[changed, 1]).astype(float)
    labels = groups[changed] if groups is not None else np.full(int(changed.sum()), "all", dtype=object)
    rows, suppressed = grouped_rows("counterfactual flip rate (gender words and names swapped)", flips, labels, 0.0,
                                    baseline_scores=base_flips, min_group_n=ctx.min_group_n, n_boot=ctx.n_boot,
                                    seed=ctx.seed)
    return (rows if groups is not None else rows[:1]), suppressed, None


def labelled_set_audit(ctx: AuditContext, budget_s: float | None, labelled: LabelledSet) -> dict[str, Any]:
    """`classifier_audit` on the user's labelled set; MissingAuditData when none was given."""
    if labelled.dataset is None and not labelled.test_files:
        raise MissingAuditData("No labelled audit set was given: pass --dataset or --test-files with --label-column "
                               "(and --group-column) to audit the classifier.")
    table = load_table(labelled.dataset, labelled.test_files, labelled.split)
    modality = "image" if getattr(ctx.model, "main_input_name", "input_ids") == "pixel_values" else "text"
    return classifier_audit(ctx, budget_s, table, modality=modality, text_column=labelled.text_column,
                            image_column=labelled.image_column, label_column=labelled.label_column,
                            group_column=labelled.group_column)


def classifier_audit(ctx: AuditContext, budget_s: float | None, table: Any, *, modality: str,
                     text_column: str | None = None, image_column: str | None = None, label_column: str = "label",
                     group_column: str | None = None) -> dict[str, Any]:
    """Disaggregated metrics and counterfactual flips of a classifier on `table` (a datasets.Dataset)."""
    started = time.perf_counter()
    inputs, y_true, groups, caveats = _inputs(ctx, table, modality, text_column, image_column, label_column,
                                              group_column)
    without_group = 0
    if groups is not None:
        total = len(y_true)
        inputs, y_true, groups, blank = _without_blank_groups(inputs, y_true, groups, group_column)
        caveats += blank
        without_group = total - len(y_true)
    items = list(range(len(y_true)))
    scores, base, used, note = score_model_and_baseline(ctx, items, _scorer(ctx, inputs, modality), budget_s)
    used = np.asarray(used, dtype=int)
    rows, suppressed = [], {}
    if groups is not None:
        binary = ctx.model.config.num_labels == 2
        if binary:
            positive = positive_class(ctx.model.config)
            caveats.append(f"Selection, false positive and false negative rates treat {positive} as the positive "
                           "class.")
        rows, suppressed, undefined = _group_rows(ctx, y_true[used], scores[:, 0].astype(int),
                                                  None if base is None else base[:, 0].astype(int), groups[used],
                                                  group_column, binary)
        caveats += undefined
        caveats += _group_count_caveats(groups[used], group_column, ctx.min_group_n)
    else:
        caveats.append("No --group-column: accuracy, selection rate and error rates by group were not evaluated.")
    if modality == "text":
        used_groups = None if groups is None else groups[used]
        flip_rows, hidden, reason = _flip_rows(ctx, inputs, used, scores, base, used_groups)
        rows, caveats = rows + flip_rows, caveats + ([reason] if reason else [])
        suppressed.update({f"flip:{g}": n for g, n in hidden.items()})
    else:
        caveats.append("Counterfactual flips apply to text; not evaluated for an image classifier.")
    data = {"source": "user-supplied labelled set", "rows": len(y_true), "group_column": group_column,
            "rows_without_group": without_group,
            "sha256": sha256_items([str(inputs[i]) if modality == "text" else int(i) for i in used]
                                   + [int(v) for v in y_true[used]])}
    return result("Fine-tuned classifier: metrics by group and counterfactual flips",
                  "Accuracy, selection rate and error rates per group (fairlearn MetricFrame) with differences "
                  "and ratios across groups, and how often the prediction changes when gendered words and names "
                  "are swapped.", rows, data=data, suppressed=suppressed, subsample=note, started=started,
                  caveats=caveats + ["Swaps cover binary gender words and a short list of English first names; "
                                     "'her' is always swapped to 'his'."])


def _group_count_caveats(groups: np.ndarray, group_column: str, min_group_n: int) -> list[str]:
    """A caveat (and a warning) when fewer than two groups reach `min_group_n`: the table then has no difference or
    ratio across groups, and without a word on it a reader could take the missing comparison for "no gap"."""
    kept, suppressed = split_groups(groups, min_group_n)
    if len(kept) >= 2:
        return []
    if not kept:
        message = (f"No {group_column!r} group has {min_group_n} or more rows ({len(suppressed)} group(s), the "
                   f"largest with {max(suppressed.values(), default=0)}), so no metric by group was reported; pass a coarser "
                   "--group-column or a lower --min-group-n.")
    else:
        others = f"; {len(suppressed)} smaller group(s) were left out" if suppressed else ""
        message = (f"Only one {group_column!r} group ({kept[0]}) has {min_group_n} or more rows{others}, so no "
                   "difference or ratio across groups was computed.")
    logger.warning(message)
    return [message]


def _without_blank_groups(inputs: list[str] | np.ndarray, y_true: np.ndarray, groups: np.ndarray,
                          group_column: str) -> tuple[list[str] | np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """The rows whose group value is not blank (None, NaN or only spaces), and a caveat when some were left out.

    A blank would otherwise become a group named "None" or "". ValueError when every value is blank.
    """
    labels = [group_label(g) for g in groups]
    blank = np.array([label is None for label in labels], dtype=bool)
    if not blank.any():
        return inputs, y_true, np.asarray(labels, dtype=object), []
    if blank.all():
        raise ValueError(f"--group-column {group_column!r} is blank in all {len(groups)} rows of the audit set; pass "
                         "the column that names each example's group, or fill it in.")
    keep = np.flatnonzero(~blank)
    message = (f"{int(blank.sum())} of {len(groups)} row(s) have a blank {group_column!r} and were left out of the "
               "classifier audit.")
    logger.warning("%s Fill the column in to audit them.", message)
    kept_inputs = inputs[keep] if isinstance(inputs, np.ndarray) else [inputs[i] for i in keep]
    return kept_inputs, y_true[keep], np.asarray([labels[i] for i in keep], dtype=object), [message]


def _inputs(ctx: AuditContext, table: Any, modality: str, text_column: str | None, image_column: str | None,
            label_column: str, group_column: str | None):
    """(texts or uint8 pixels, (n,) model class ids, (n,) group labels or None, caveats) from the audit table.

    Rows without a label, and text rows without a text, are left out with a warning and a caveat, as `hfssl
    evaluate` and `hfssl finetune` leave them out: a blank CSV cell would otherwise be classified as the text
    "None", or stop the audit as an unknown class.
    """
    from ..evaluation.labels import drop_missing_inputs, drop_missing_labels

    for name, column in (("--label-column", label_column), ("--group-column", group_column)):
        if column is not None and column not in table.column_names:
            raise ValueError(f"{name} {column!r} is not a column of the audit set; its columns are "
                             f"{column_list(table.column_names)}.")
    column = None
    if modality == "text":
        column = text_column or ("text" if "text" in table.column_names else None)
        if column not in table.column_names:
            raise ValueError(f"Text column {column!r} not found; the audit set's columns are "
                             f"{column_list(table.column_names)}. "
                             "Pass the column that holds the text with --text-column.")
    total = len(table)
    table = drop_missing_labels(table, label_column, "audit")
    labelled = len(table)
    if column is not None:
        table = drop_missing_inputs(table, column, modality, "audit")
    caveats = [f"{n} of {total} row(s) without {what} were left out of the classifier audit."
               for n, what in ((total - labelled, f"a label ({label_column!r})"),
                               (labelled - len(table), f"a text ({column!r})")) if n]
    y_true = label_ids(list(table[label_column]), table.features[label_column], ctx.model.config)
    groups = None if group_column is None else np.asarray(list(table[group_column]), dtype=object)  # raw: blanks kept
    if modality == "image":
        from .vision import decode_images

        column = image_column or next((c for c in table.column_names if c not in (label_column, group_column)), None)
        pixels, _, _ = decode_images(table, column, None, ctx.model.config)
        return pixels, y_true, groups, caveats
    return [str(t) for t in table[column]], y_true, groups, caveats

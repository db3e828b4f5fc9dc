"""Evaluation and bias-audit sections of the card, and the `model-index` results, from run.json's `eval`,
`finetune` and `audit` sections."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from huggingface_hub import EvalResult

from ..evaluation.labels import class_note
from .sections import fmt, hub_dataset_ids, source_names

PROTOCOL_TITLES = {
    "linear-probe": "Linear probe on frozen features",
    "knn": "k-nearest-neighbour classification on frozen features",
    "label-efficiency": "Label efficiency (linear probe with a fraction of the labels)",
    "finetune": "Fine-tuning on a labelled task",
}
_ALIASES = {"linear_probe": "linear-probe", "label_efficiency": "label-efficiency"}


def protocol_name(key: str) -> str:
    """A run.json eval key as the protocol's name ("linear_probe", as older runs wrote it, -> "linear-probe")."""
    return _ALIASES.get(key, key)


@dataclass
class Block:
    """One evaluation table of the card."""

    title: str
    description: str
    header: list[str]
    rows: list[list[str]]
    plots: list[str] = field(default_factory=list)


def public_source(source: Any) -> str:
    """A data source without local paths: "files:/a/b.csv" -> "files: b.csv", "/x/y" -> "y"."""
    text = str(source)
    kind, sep, rest = text.partition(":")
    if sep and (kind in ("files", "disk") or "/" in rest or "\\" in rest) and not rest.startswith("//"):
        names = [re.split(r"[\\/]", p.rstrip("/\\"))[-1] for p in rest.split(",") if p]
        return f"{kind}: {', '.join(names)}"
    if text.startswith(("/", "~", ".")):
        return re.split(r"[\\/]", text.rstrip("/\\"))[-1]
    return text


def dataset_type(source: Any) -> str:
    """The model-index dataset type: the Hub id when the source is one, "local-files" for files, else a slug of
    its name (a builtin such as sklearn-digits)."""
    ids = hub_dataset_ids(source)
    if ids:
        return ids[0]
    kind, sep, _ = str(source).partition(":")
    if sep and kind not in ("files", "disk"):
        return re.sub(r"[^\w.-]+", "-", kind).strip("-") or "local-files"  # a builtin read from a local folder
    name = public_source(source)
    if sep or name != str(source) or re.search(r"\.\w{2,7}$", name):
        return "local-files"
    return re.sub(r"[^\w.-]+", "-", name).strip("-") or "local-files"


def score(value: Any) -> str:
    """An accuracy, F1 or their spread: 4 decimals, as `hfssl evaluate` prints them ("-" when not a number)."""
    return f"{value:.4f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else "-"


def _names(values: Any) -> str:
    return ", ".join(str(v) for v in values)


def _data_note(data: dict[str, Any]) -> str:
    if not data:
        return ""
    sources = ", ".join(public_source(s) for s in source_names(data.get("source"))) or "not recorded"
    parts = [f"Data: {sources}"]
    if data.get("test_source"):
        parts.append(f"test data: {', '.join(public_source(s) for s in source_names(data['test_source']))}")
    elif str(data.get("test_split") or "").startswith("carved"):
        parts.append(f"test split {data['test_split']}")
    for key in ("train_examples", "test_examples", "num_classes"):
        if data.get(key) is not None:
            subset = data.get(f"{key.split('_')[0]}_subset")
            parts.append(f"{key.replace('_', ' ')} {fmt(data[key])}" + (f" ({subset})" if subset else ""))
    shared = data.get("test_examples_also_in_training")
    if shared:  # duplicated rows in both splits: a reader must know the scores partly measure recall
        parts.append(f"{fmt(shared)} test example(s) also in the training data (identical input), which inflates "
                     "the scores, kNN's most")
    return "; ".join(parts) + "."


ARM_NOTES = {
    "random-init": "random-init: the same probe on a randomly initialized copy of the architecture (no pretraining)",
    "supervised": "supervised: the same architecture with a classification head, trained from scratch on the same "
                  "labels",
}
PROTOCOL_NOTES = {
    "linear-probe": "Multinomial logistic regression on frozen, standardized features; C (inverse regularization) "
                    "chosen on the training split.",
    "knn": "Weighted k-nearest-neighbour vote (cosine similarity) on frozen features; k is capped at the number of "
           "training examples.",
    "finetune": "Full fine-tuning of the pretrained encoder with a classification head (hfssl.finetune, HF "
                "Trainer).",
    "label-efficiency": "Test accuracy of the linear probe (C chosen per subset) trained on a stratified fraction of "
                        "the training labels; each seed draws its own subset and its own validation folds.",
}


def _description(protocol: str, result: dict[str, Any], arms: list[str], spread: str = "") -> str:
    """Paragraphs above a table: the protocol (and spread), the data (and the classes macro-F1 averages), the arms."""
    data = result.get("data") or {}
    legend = [ARM_NOTES[arm] for arm in arms if arm in ARM_NOTES]
    paragraphs = [" ".join(p for p in (PROTOCOL_NOTES.get(protocol, ""), spread) if p),
                  " ".join(p for p in (_data_note(data), class_note(data) if "curves" not in result else "") if p),
                  "Arms: " + "; ".join(legend) + "." if legend else ""]
    return "\n\n".join(p for p in paragraphs if p)


def _setting(protocol: dict[str, Any]) -> str:
    """The arm's setting: the probe's C, or a training arm's epochs (steps) and learning rate."""
    if protocol.get("C") is not None:
        return f"C={fmt(protocol['C'])}"
    parts = []
    if isinstance(protocol.get("epochs"), (int, float)):
        steps = f" ({protocol['steps']:,} steps)" if isinstance(protocol.get("steps"), int) else ""
        parts.append(f"{protocol['epochs']:g} epoch{'' if protocol['epochs'] == 1 else 's'}{steps}")
    if isinstance(protocol.get("learning_rate"), (int, float)):
        parts.append(f"lr {protocol['learning_rate']:g}")
    return ", ".join(parts) or "-"


def _k_setting(k: str, protocol: dict[str, Any]) -> str:
    used = dict(zip(map(str, protocol.get("k_requested") or []), protocol.get("k_used") or []))
    return f"k={k}" + (f" ({used[k]} used: every training example)" if k in used and used[k] < int(k) else "")


# ---------------------------------------------------------------------------------------------- blocks


def _arms_block(protocol: str, result: dict[str, Any], plots: list[str]) -> Block:
    rows = []
    for arm, r in (result.get("arms") or {}).items():
        if "by_k" in r:
            rows += [[arm, _k_setting(k, r.get("protocol") or {}), score(s.get("accuracy")), score(s.get("macro_f1"))]
                     for k, s in r["by_k"].items()]
        else:
            rows.append([arm, _setting(r.get("protocol") or {}), score(r.get("accuracy")), score(r.get("macro_f1"))])
    return Block(PROTOCOL_TITLES.get(protocol, protocol), _description(protocol, result, list(result.get("arms") or {})),
                 ["arm", "setting", "accuracy", "macro-F1"], rows, plots)


def _point_cell(point: dict[str, Any] | None, one_seed: bool) -> str:
    if point is None:
        return "-"
    if one_seed:  # no spread was measured: "± 0" would claim one
        return score(point.get("mean"))
    return f"{score(point.get('mean'))} ± {score(point.get('std'))}"


def _curve_block(result: dict[str, Any], plots: list[str]) -> Block:
    curves = result.get("curves") or {}
    arms = list(curves)
    fractions = sorted({p["fraction"] for points in curves.values() for p in points})
    seeds = list(result.get("seeds") or [])
    rows = []
    for fraction in fractions:
        points = [next((p for p in curves[arm] if p["fraction"] == fraction), None) for arm in arms]
        examples = next((p.get("examples") for p in points if p and p.get("examples") is not None), None)
        rows.append([f"{fraction:g}", fmt(examples), *(_point_cell(p, len(seeds) == 1) for p in points)])
    if len(seeds) > 1:
        spread = f"Mean ± sample standard deviation over {len(seeds)} seeds ({_names(seeds)})."
    else:
        spread = f"One seed ({_names(seeds)}): no spread measured." if seeds else ""
    return Block(PROTOCOL_TITLES["label-efficiency"], _description("label-efficiency", result, arms, spread),
                 ["label fraction", "labelled examples", *arms], rows, plots)


def _flat_block(protocol: str, result: dict[str, Any]) -> Block:
    rows = [[k, fmt(v)] for k, v in result.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return Block(PROTOCOL_TITLES.get(protocol, protocol), "", ["metric", "value"], rows)


def evaluation_blocks(manifest: dict[str, Any], plots: dict[str, list[str]] | None = None
                      ) -> tuple[list[Block], list[str]]:
    """(tables of the evaluations run.json records, descriptions of the evaluations it does not).

    `plots`: {protocol: image links} to show under each table (see `existing_plots`); default the `plots` each
    result lists.
    """
    blocks = []
    evaluations = {protocol_name(k): v for k, v in (manifest.get("eval") or {}).items() if isinstance(v, dict)}
    for protocol, result in evaluations.items():
        shown = list(result.get("plots") or []) if plots is None else plots.get(protocol, [])
        if "curves" in result:
            blocks.append(_curve_block(result, shown))
        elif "arms" in result:
            blocks.append(_arms_block(protocol, result, shown))
        else:
            blocks.append(_flat_block(protocol, result))
    finetune = manifest.get("finetune") or {}
    if finetune.get("metrics"):
        rows = [[k, fmt(v)] for k, v in finetune["metrics"].items() if v is not None]
        note = _data_note({"source": (manifest.get("data") or {}).get("source"),
                           "train_examples": finetune.get("train_examples"),
                           "test_examples": finetune.get("test_examples")})
        classes = class_note({"macro_f1_classes": finetune.get("macro_f1_classes"),
                              "classes_without_test_examples": finetune.get("test_missing_classes"),
                              "classes_without_training_examples": finetune.get("train_missing_classes")})
        note = " ".join(p for p in (note, classes) if p)
        blocks.append(Block("Fine-tuned classifier on its test split", note, ["metric", "value"], rows))
    missing = [title for key, title in PROTOCOL_TITLES.items()
               if key not in evaluations and not (key == "finetune" and finetune.get("metrics"))]
    return [b for b in blocks if b.rows], missing


# ---------------------------------------------------------------------------------------------- model-index


def eval_results(manifest: dict[str, Any], task_type: str) -> list[EvalResult]:
    """model-index results: the pretrained arm's accuracies (probe, kNN, label efficiency) and fine-tune metrics."""
    out = []
    evaluations = {protocol_name(k): v for k, v in (manifest.get("eval") or {}).items() if isinstance(v, dict)}

    # The Hub groups model-index metrics by (task type, dataset): the metric names carry the protocol.
    task_name = task_type.replace("-", " ").capitalize()

    def add(_: str, source: Any, metric: str, value: Any, name: str) -> None:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out.append(EvalResult(task_type=task_type, task_name=task_name, dataset_type=dataset_type(source),
                                  dataset_name=public_source(source), metric_type=metric, metric_value=float(value),
                                  metric_name=name))

    for protocol, result in evaluations.items():
        source = (result.get("data") or {}).get("source") or "unknown"
        title = PROTOCOL_TITLES.get(protocol, protocol)
        pretrained = (result.get("arms") or {}).get("pretrained") or {}
        if "by_k" in pretrained:
            for k, scores in pretrained["by_k"].items():
                add(title, source, "accuracy", scores.get("accuracy"), f"kNN accuracy (k={k})")
        elif pretrained:
            add(title, source, "accuracy", pretrained.get("accuracy"), f"{protocol} accuracy")
            add(title, source, "f1", pretrained.get("macro_f1"), f"{protocol} macro-F1")
        for point in (result.get("curves") or {}).get("pretrained", []):
            add(title, source, "accuracy", point.get("mean"),
                f"linear-probe accuracy with {100 * point['fraction']:.4g}% of the labels")
        if not result.get("arms") and not result.get("curves"):
            add(title, source, "accuracy", result.get("accuracy"), f"{protocol} accuracy")
    metrics = (manifest.get("finetune") or {}).get("metrics") or {}
    names = source_names((manifest.get("data") or {}).get("source"))
    source = names[-1] if names else "unknown"
    add("Fine-tuned classification", source, "accuracy", metrics.get("accuracy"), "test accuracy")
    add("Fine-tuned classification", source, "f1", metrics.get("macro_f1"), "test macro-F1")
    return out


# ---------------------------------------------------------------------------------------------- bias audit


def bias_section(manifest: dict[str, Any]) -> dict[str, Any]:
    """{"ran", "rows", "audits" (titles, data, subsample notes), "caveats", "not_evaluated"} for the template."""
    from ..audit.api import audit_table_rows

    report = manifest.get("audit") or {}
    if not report.get("audits") and not report.get("not_evaluated"):
        return {"ran": False, "rows": [], "audits": [], "caveats": [],
                "not_evaluated": ["No bias audit was run on this model (`hfssl audit <run>`)."]}
    audits, caveats = [], list(report.get("caveats") or [])
    for name, audit in (report.get("audits") or {}).items():
        data = audit.get("data") or {}
        sample = audit.get("subsample")
        audits.append({
            "name": name, "title": audit.get("title", name), "description": audit.get("description", ""),
            "data": "; ".join(f"{k.replace('_', ' ')} {fmt(public_source(data[k]) if k == 'source' else data[k])}"
                              for k in ("source", "file", "rows", "group_column", "sha256")
                              if data.get(k) is not None),
            "subsample": "" if not sample else f"Seeded subsample: {sample['used']} of {sample['of']} items (seed "
                                               f"{sample['seed']}), {sample['reason']}.",
            "suppressed": ", ".join(f"{g} (n={n})" for g, n in (audit.get("suppressed_groups") or {}).items()),
            "caveats": list(audit.get("caveats") or []),
        })
    not_evaluated = [f"{name}: {reason}" for name, reason in (report.get("not_evaluated") or {}).items()]
    return {"ran": True, "rows": audit_table_rows(report), "audits": audits, "caveats": caveats,
            "not_evaluated": not_evaluated, "has_baseline": bool(report.get("baseline")),
            "baseline": report.get("baseline"),
            "seed": report.get("seed"), "family": report.get("family")}


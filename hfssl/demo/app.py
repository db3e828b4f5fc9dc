"""`build_demo(model_ref) -> gr.Blocks`: the Gradio app for a run directory, model folder or Hub id.

Tabs: the objective's own demo (fill-mask, generation or MAE reconstruction; class probabilities for a fine-tuned
classifier), nearest neighbours over a gallery for every encoder, and the model card's key tables. Every event has
an explicit `api_name`, so `gradio_client` calls stay stable: /fill_mask, /generate, /reconstruct, /classify,
/search_gallery (and their *_submit / *_example twins).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from .classify import ClassificationTab
from .gallery import GalleryTab
from .inputs import Limits
from .loading import DEMO_KINDS, LoadedModel, load_demo_model
from .text import FillMaskTab, GenerationTab
from .vision import ReconstructionTab

TABS: dict[str, tuple[type, str]] = {
    "fill-mask": (FillMaskTab, "Fill mask"),
    "generation": (GenerationTab, "Generate"),
    "reconstruction": (ReconstructionTab, "Reconstruct"),
    "classification": (ClassificationTab, "Classify"),
    "gallery": (GalleryTab, "Nearest neighbours"),
}
AUDIT_KEYS = ("audit", "bias")
AUDIT_COLUMNS = ["audit", "metric", "group", "value", "95% CI", "baseline", "n", "ideal"]
PRETRAIN_FIELDS = ("steps", "tokens_seen", "images_seen", "wall_time_s", "train_loss", "eval_loss", "perplexity")
MAX_COLUMNS = 8


def build_demo(model_ref: str | os.PathLike | LoadedModel, limits: Limits | None = None, *, kind: str | None = None,
               pooling: str = "mean"):
    """The demo app for `model_ref` (run directory, model folder, Hub id, or an already loaded model).

    Args:
        limits: input limits (text length, image pixels, gallery size, upload size); `Limits()` by default.
        kind: force the main tab (a key of DEMO_KINDS) instead of deciding from the objective or architecture.
        pooling: "mean", "cls" or "last" for stock encoders without `get_features`.

    Returns:
        A `gr.Blocks` with its queue set up; launch it with `launch_demo` (or `.launch()`).
    """
    import gradio as gr

    loaded = model_ref if isinstance(model_ref, LoadedModel) else load_demo_model(model_ref, kind, pooling)
    limits = limits or Limits()
    kinds = [loaded.kind] + (["gallery"] if loaded.kind != "gallery" else [])
    with gr.Blocks(title=f"hfssl · {loaded.title}", analytics_enabled=False) as demo:
        gr.Markdown(header_markdown(loaded))
        with gr.Tabs():
            for tab_kind in kinds:
                tab_class, label = TABS[tab_kind]
                with gr.Tab(label, id=tab_kind, elem_id=f"tab-{tab_kind}"):
                    tab_class(loaded, limits).render()
            with gr.Tab("Model card", id="card", elem_id="tab-card"):
                gr.Markdown(card_markdown(loaded), elem_id="card-tables")
    demo.queue(default_concurrency_limit=1, max_size=32)
    demo.hfssl_limits = limits
    return demo


def launch_demo(demo, host: str | None = None, port: int | None = None, share: bool = False, **kwargs: Any):
    """Launch with the upload limit of `build_demo`'s Limits; host/port None let Gradio (or a Space) decide.

    Input errors already reach the page as messages; `show_error` also shows unexpected ones instead of "Error".
    """
    limits = getattr(demo, "hfssl_limits", Limits())
    kwargs.setdefault("max_file_size", f"{limits.max_upload_mb}mb")
    kwargs.setdefault("show_error", True)
    return demo.launch(server_name=host, server_port=port, share=share, **kwargs)


def header_markdown(loaded: LoadedModel) -> str:
    """Title line: the model, what the main tab does, and the objective when the run records it."""
    objective = loaded.manifest.get("objective")
    facts = [DEMO_KINDS[loaded.kind], f"{loaded.modality} model `{type(loaded.model).__name__}`"]
    if objective:
        facts.insert(0, f"objective `{objective}`")
    elif loaded.manifest.get("task"):  # a fine-tuned run
        facts.insert(0, f"fine-tuned for `{loaded.manifest['task']}`")
    return f"# {loaded.title}\n{' · '.join(facts)}  \nSource: `{loaded.ref}`"


# ---------------------------------------------------------------- the model card tab


def card_markdown(loaded: LoadedModel) -> str:
    """The card's key tables: model facts, pretraining numbers, evaluation and bias audit from run.json, and the
    tables of the repo's README.md (headings kept)."""
    manifest = loaded.manifest
    parts = ["## Model", _key_value_table(_model_facts(loaded))]
    pretrain = manifest.get("pretrain")
    if isinstance(pretrain, Mapping):
        parts += ["## Pretraining", _key_value_table({k: pretrain[k] for k in PRETRAIN_FIELDS if k in pretrain})]
    evaluation = evaluation_markdown(manifest)
    audit = next((manifest[key] for key in AUDIT_KEYS if isinstance(manifest.get(key), Mapping)), None)
    if evaluation:
        parts += ["## Evaluation", evaluation]
    if audit is not None:
        parts += ["## Bias audit", audit_markdown(audit)]
    readme = readme_tables(loaded.card_text or "")
    if readme:
        parts += ["## From the model card (README.md)", readme]
    if not evaluation and audit is None and not readme:
        parts.append("No evaluation or bias audit is recorded for this model yet; the run's evaluation and audit "
                     "stages add them to run.json and the card.")
    return "\n\n".join(parts)


def _model_facts(loaded: LoadedModel) -> dict[str, Any]:
    manifest = loaded.manifest
    model_info = manifest.get("model") if isinstance(manifest.get("model"), Mapping) else {}
    parameters = model_info.get("parameters") or sum(p.numel() for p in loaded.model.parameters())
    facts = {"source": loaded.ref, "objective": _objective(manifest),
             "modality": loaded.modality, "class": model_info.get("class", type(loaded.model).__name__),
             "parameters": f"{parameters:,}", "demo": loaded.kind}
    data = manifest.get("data") if isinstance(manifest.get("data"), Mapping) else {}
    if data.get("source"):
        from ..cards.results import public_source
        from ..cards.sections import source_names

        name = "training data" if manifest.get("stage") == "finetune" else "pretraining data"
        facts[name] = ", ".join(dict.fromkeys(public_source(s) for s in source_names(data["source"])))  # no local paths
    return facts


def _objective(manifest: Mapping[str, Any]) -> str:
    if manifest.get("objective"):
        return str(manifest["objective"])
    if manifest.get("task"):  # a fine-tuned run: its parent's objective is on the parent's card
        return f"fine-tuned for {manifest['task']}"
    return "not recorded" if manifest else "unknown (no run.json)"


def evaluation_markdown(manifest: Mapping[str, Any]) -> str:
    """The evaluations of run.json as the model card shows them (one table per protocol, both arms, no local
    paths), protocols of other shapes flattened by `results_table`, and the fine-tuned classifier's test metrics."""
    from ..cards.results import evaluation_blocks

    section = manifest.get("eval") if isinstance(manifest.get("eval"), Mapping) else {}
    structured = {k: v for k, v in section.items() if isinstance(v, Mapping) and ("arms" in v or "curves" in v)}
    blocks, _ = evaluation_blocks({"eval": dict(structured), "finetune": manifest.get("finetune"),
                                   "data": manifest.get("data")})
    parts = [_block_markdown(block.title, block.description, block.header, block.rows) for block in blocks]
    other = {k: v for k, v in section.items() if k not in structured}
    if other:
        parts.append(results_table(other))
    return "\n\n".join(parts)


def audit_markdown(report: Mapping[str, Any]) -> str:
    """The audit table of `hfssl audit` (value, 95% CI, random-init baseline, n, ideal per row) and what was not
    evaluated; a section of another shape is flattened by `results_table`."""
    from ..audit.api import audit_table_rows

    if "audits" not in report and "not_evaluated" not in report:
        return results_table(report)
    rows = [[r["audit"], r["metric"], r["group"], r["value"], r["ci"], r["baseline"], r["n"], r["ideal"]]
            for r in audit_table_rows(dict(report))]
    parts = [_block_markdown("", "", AUDIT_COLUMNS, rows)] if rows else []
    parts += [f"- not evaluated: {_cell(name)}: {_cell(reason)}"
              for name, reason in (report.get("not_evaluated") or {}).items()]
    return "\n\n".join(parts) or "_(empty)_"


def _block_markdown(title: str, description: str, header: list[str], rows: list[list[Any]]) -> str:
    """A titled table; the description is a paragraph of its own (a table cannot interrupt a paragraph)."""
    table = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    table += ["| " + " | ".join(_cell(value) for value in row) + " |" for row in rows]
    parts = ([f"### {title}"] if title else []) + ([description] if description else []) + ["\n".join(table)]
    return "\n\n".join(parts)


def results_table(section: Mapping[str, Any]) -> str:
    """A markdown table with one row per protocol of a `{protocol: result}` section; nested results are
    flattened into dotted columns (lists and long values left out), at most MAX_COLUMNS of them."""
    rows = {name: flatten(result) if isinstance(result, Mapping) else {"value": result}
            for name, result in section.items()}
    columns: list[str] = []
    for values in rows.values():
        columns += [c for c in values if c not in columns]
    columns = columns[:MAX_COLUMNS]
    if not rows or not columns:
        return "_(empty)_"
    lines = ["| protocol | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for name, values in rows.items():
        lines.append(f"| {_cell(name)} | " + " | ".join(_cell(values.get(c, "")) for c in columns) + " |")
    return "\n".join(lines)


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{a: {b: 1}, c: 'x', d: [..]} -> {'a.b': 1, 'c': 'x'}: scalars only."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        elif isinstance(value, (int, float, str, bool)) or value is None:
            if not (isinstance(value, str) and len(value) > 80):
                flat[name] = value
    return flat


def _key_value_table(values: Mapping[str, Any]) -> str:
    return "\n".join(["| field | value |", "|---|---|"] + [f"| {_cell(k)} | {_cell(v)} |" for k, v in values.items()])


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value).replace("|", "\\|").replace("\n", " ")


def readme_tables(text: str) -> str:
    """The markdown tables of a README with the heading above each; YAML front matter and code blocks skipped."""
    lines, heading, in_code, blocks, table = _body_lines(text), "", False, [], []
    for line in lines + [""]:
        stripped = line.strip()
        if stripped.startswith("```"):
            in_code = not in_code
        if not in_code and stripped.startswith("|"):
            table.append(stripped)
            continue
        if table:
            blocks.append((heading, table))
            table = []
        if not in_code and stripped.startswith("#"):
            heading = stripped.lstrip("#").strip()
    return "\n\n".join((f"### {title}\n" if title else "") + "\n".join(rows) for title, rows in blocks
                       if len(rows) >= 2)


def _body_lines(text: str) -> list[str]:
    lines = text.splitlines()
    if lines and lines[0].strip() == "---":
        end = next((i for i, line in enumerate(lines[1:], start=1) if line.strip() == "---"), 0)
        lines = lines[end + 1:]
    return lines

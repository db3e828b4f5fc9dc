"""`render_card`: write `<run>/model/README.md` from run.json alone, through the Jinja template with
huggingface_hub's `ModelCard.from_template`, and check its metadata offline before writing it.

The run is described as published: run.json is sanitized as the publisher sanitizes it (no local paths, no
secrets). Where the Hub repo id is not known yet, the card says `{{repo_id}}`, which `hfssl publish` fills in.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.resources
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from huggingface_hub import ModelCard, ModelCardData

from .. import __version__
from ..hub.bundle import is_adapter_run, sanitize_manifest
from ..hub.client import check_repo_id
from ..hub.metadata import KNOWN_LICENSES, check_card
from ..hub.publish import REPO_ID_SLOT, parent_hub_id
from ..training.rundir import RunDirectory
from . import sections
from .results import bias_section, eval_results, evaluation_blocks, protocol_name

logger = logging.getLogger(__name__)

TEMPLATE_NAME = "hfssl_model_card.md"
EVAL_FOLDER = "eval"  # evaluation results and plots, in the run directory and at the root of the published repo
PLOT_SUFFIXES = (".png", ".svg")  # images the card shows (and `hfssl publish` uploads from eval/)
CARD_SECTION = "card"  # run.json: {"sha256", "repo_id", "license"} of the card render_card last wrote
# hfssl's own licence, which covers the modeling code the repo ships; the weights' terms may also depend on the
# training data's licence, which hfssl cannot know, so the card says the default was applied.
DEFAULT_LICENSE = "apache-2.0"
BIBTEX = """@software{hfssl,
  title = {hfssl: self-supervised learning, evaluation, bias audits and publishing, the Hugging Face way},
  author = {{hfssl developers}},
  version = {%s},
  url = {https://github.com/hfssl/hfssl}
}"""


def template_text() -> str:
    """The card template shipped in the package (hfssl/cards/templates; a copy lives in model_cards/)."""
    return importlib.resources.files("hfssl.cards").joinpath("templates", TEMPLATE_NAME).read_text(encoding="utf-8")


def resolve_license(manifest: dict[str, Any], license: str | None) -> tuple[str, str]:
    """(license id, how it was chosen): the argument, else run.json's `license`, else the one given when the card was
    last rendered (rendering it again after an evaluation, or to name the repo, must not drop it), else the default."""
    chosen, how = license, "given with --license"
    if chosen is None and manifest.get("license"):
        chosen, how = str(manifest["license"]), "recorded in run.json"
    if chosen is None and (manifest.get(CARD_SECTION) or {}).get("license"):
        chosen, how = str(manifest[CARD_SECTION]["license"]), "given with --license"
    if chosen is None:
        chosen, how = DEFAULT_LICENSE, ("hfssl's default, the licence of the modeling code in this repository; it "
                                         "was not derived from the training data's terms, so check those too")
    if chosen not in KNOWN_LICENSES:
        raise ValueError(f"License {chosen!r} is not a Hub license id; use one such as apache-2.0, mit, cc-by-4.0 or "
                         "other (see https://huggingface.co/docs/hub/repositories-licenses).")
    return chosen, how


def _base_model(run: RunDirectory, manifest: dict[str, Any]) -> str | None:
    """The parent's Hub id for fine-tuned runs (published parent or Hub-id parent), else None."""
    if "finetune" not in manifest:
        return None
    try:
        return parent_hub_id(run, manifest)
    except (ValueError, FileNotFoundError):
        return None


# ---------------------------------------------------------------------------------------------- snippets


def snippet(family: str, config: dict[str, Any], manifest: dict[str, Any], repo: str,
            adapter: bool, revision: str | None = None) -> tuple[str, str]:
    """(Python code that loads and runs the model from `repo`, a note under it).

    `revision`: the branch the model is published on, when not main: every load names it, or the code would load
    what main holds (another model, or nothing)."""
    note = ("The model code ships in the base model's repository (`modeling_*.py`), which this adapter loads "
            "first, so hfssl need not be installed; `trust_remote_code=True` runs that code, so read it first."
            if adapter else
            "The model code ships in the repository (`modeling_*.py`), so hfssl need not be installed; "
            "`trust_remote_code=True` runs that code, so read it first.")
    code = _snippet(family, config, manifest, repo, adapter)
    if revision:
        code = code.replace(f'"{repo}"', f'"{repo}", revision="{revision}"')
    return code, note


def _snippet(family: str, config: dict[str, Any], manifest: dict[str, Any], repo: str, adapter: bool) -> str:
    if family == "classifier":
        return _classifier_snippet(config, manifest, repo, adapter)
    if family == "mlm":
        code = ["from transformers import pipeline", "",
                f'fill = pipeline("fill-mask", model="{repo}", trust_remote_code=True)',
                'print(fill(f"The function returns the {fill.tokenizer.mask_token} of the list."))']
    elif family == "clm":
        code = ["from transformers import pipeline", "",
                f'generate = pipeline("text-generation", model="{repo}", trust_remote_code=True)',
                'print(generate("The function", max_new_tokens=20, do_sample=False)[0]["generated_text"])']
    elif family == "vision":
        code = _vision_snippet(config, repo)
    else:
        code = ["import torch", "from transformers import AutoModel, AutoTokenizer", "",
                # Without trust_remote_code, AutoTokenizer reads config.json's auto_map and asks whether to run it.
                f'tokenizer = AutoTokenizer.from_pretrained("{repo}", trust_remote_code=True)',
                f'model = AutoModel.from_pretrained("{repo}", trust_remote_code=True).eval()',
                'batch = tokenizer(["A first sentence.", "Another sentence."], padding=True, return_tensors="pt")',
                "with torch.no_grad():",
                '    embeddings = model.get_features(batch["input_ids"], batch["attention_mask"])  # (2, hidden)',
                "print(torch.nn.functional.cosine_similarity(embeddings[0], embeddings[1], dim=0))"]
    return "\n".join(code)


def _vision_snippet(config: dict[str, Any], repo: str) -> list[str]:
    mode = "L" if int(config.get("num_channels", 3)) == 1 else "RGB"
    return ["import torch", "from PIL import Image", "from transformers import AutoImageProcessor, AutoModel", "",
            f'processor = AutoImageProcessor.from_pretrained("{repo}")',
            f'model = AutoModel.from_pretrained("{repo}", trust_remote_code=True).eval()',
            f'image = Image.new("{mode}", (64, 64), 128)  # or Image.open("photo.jpg").convert("{mode}")',
            'pixel_values = processor(images=image, return_tensors="pt")["pixel_values"]',
            "with torch.no_grad():",
            "    features = model.get_features(pixel_values)  # (1, hidden)",
            "print(features.shape)"]


def _classifier_snippet(config: dict[str, Any], manifest: dict[str, Any], repo: str, adapter: bool) -> str:
    vision = sections.is_vision(manifest, config)
    names = manifest.get("id2label") or (manifest.get("finetune") or {}).get("id2label") or {}
    id2label = {int(k): str(v) for k, v in names.items()} if all(str(k).isdigit() for k in names) else {}
    auto, processor = (("AutoModelForImageClassification", "AutoImageProcessor") if vision
                       else ("AutoModelForSequenceClassification", "AutoTokenizer"))
    mode = "L" if int(config.get("num_channels", 3)) == 1 else "RGB"
    example = (f'inputs = processor(images=Image.new("{mode}", (64, 64), 128), return_tensors="pt")' if vision
               else 'inputs = processor(["An example to classify."], return_tensors="pt")')
    head = ["import torch"] + (["from PIL import Image"] if vision else [])
    if adapter:
        # The base checkpoint knows nothing of this task's classes: the adapter's head is sized (and its classes
        # named) here; `config.revision` is the base's commit the adapter was published against.
        extra = f", id2label={id2label!r}" if id2label else ""
        load = ["from peft import PeftConfig, PeftModel", f"from transformers import {auto}, {processor}", "",
                f'config = PeftConfig.from_pretrained("{repo}")',
                f"base = {auto}.from_pretrained(config.base_model_name_or_path, revision=config.revision,",
                f"    trust_remote_code=True{extra})",
                f'model = PeftModel.from_pretrained(base, "{repo}").eval()']
    else:
        load = [f"from transformers import {auto}, {processor}", "",
                f'model = {auto}.from_pretrained("{repo}", trust_remote_code=True).eval()']
    # Without trust_remote_code, AutoTokenizer reads config.json's auto_map and asks whether to run it.
    body = [f'processor = {processor}.from_pretrained("{repo}", trust_remote_code=True)', example,
            "inputs = {k: v for k, v in inputs.items() if k != \"token_type_ids\"}",
            "with torch.no_grad():", "    predicted = model(**inputs).logits.argmax(-1).item()",
            "print(model.config.id2label[predicted])"]
    return "\n".join(head + load + body)


# ---------------------------------------------------------------------------------------------- context


def _summary(family: str, manifest: dict[str, Any]) -> str:
    model = manifest.get("model") or {}
    size = f"{model['parameters']:,}-parameter " if isinstance(model.get("parameters"), int) else ""
    objective = sections.objective_of(manifest)
    method = sections.METHODS.get(objective, (f"`{objective}`", ""))[0]
    if family == "classifier":
        finetune = manifest.get("finetune") or {}
        described = f"{size}{manifest.get('task') or 'classification'} model"
        return (f"{_article(described)} {described} fine-tuned with hfssl "
                f"({finetune.get('method') or 'full fine-tuning'}) from an encoder pretrained by {method}. "
                "Every number on this card is copied from the run's manifest (`run.json`).")
    described = f"{size}{manifest.get('modality') or 'text'} model"
    return (f"{_article(described)} {described} pretrained with hfssl, without labels, by self-supervised {method}. "
            "Every number on this card is copied from the run's manifest (`run.json`).")


def _article(phrase: str) -> str:
    """ "A" or "An" before `phrase` (by its sound: "an image", "an 8-", "an 11,", "an 18,")."""
    spoken_vowel = phrase[:1].lower() in "aeio8" or phrase.startswith(("11,", "18,", "11-", "18-"))
    return "An" if spoken_vowel else "A"


def _details(family: str, manifest: dict[str, Any], config: dict[str, Any], license_note: str,
             base_model: str | None) -> list[tuple[str, str]]:
    model = manifest.get("model") or {}
    rows = [("developed with", f"hfssl {(manifest.get('versions') or {}).get('hfssl') or __version__}"),
            ("architecture", sections.fmt(model.get("class") or (config.get("architectures") or ["-"])[0])),
            ("parameters", sections.fmt(model.get("parameters"))),
            ("objective", sections.fmt(sections.objective_of(manifest))),
            ("modality", sections.fmt(manifest.get("modality")))]
    if family == "classifier":
        rows.append(("base model", base_model or "a local hfssl run (not published; see run.json finetune.parent)"))
        id2label = manifest.get("id2label") or (manifest.get("finetune") or {}).get("id2label") or {}
        rows.append(("classes", ", ".join(f"{k}: {v}" for k, v in id2label.items()) or "-"))
    for key in ("tokenizer", "image_processor"):
        if manifest.get(key):
            rows.append((key.replace("_", " "), ", ".join(f"{k} {sections.fmt(v)}" for k, v in manifest[key].items())))
    rows += [("license", license_note), ("run created", sections.fmt(manifest.get("created")))]
    return rows


def existing_plots(run: RunDirectory, manifest: dict[str, Any]) -> dict[str, list[str]]:
    """{protocol: links to its plots, relative to the card ("eval/<protocol>.png")}, for the plots `manifest` (run.json
    as written, not sanitized) lists that exist in <run>/eval/: those `hfssl publish` uploads next to the card, and
    `render_card` copies next to model/README.md. A listed plot that is missing is left out, with a warning."""
    eval_dir = run.eval_dir.resolve()
    found: dict[str, list[str]] = {}
    for key, result in (manifest.get("eval") or {}).items():
        if not isinstance(result, dict):
            continue
        links = found.setdefault(protocol_name(key), [])
        for listed in result.get("plots") or []:
            path = (run.path / str(listed)).resolve()
            if path.suffix.lower() in PLOT_SUFFIXES and path.is_file() and path.is_relative_to(eval_dir):
                links.append(f"{EVAL_FOLDER}/{path.relative_to(eval_dir).as_posix()}")
            else:
                logger.warning("run.json lists the plot %s for %s, but %s is not an image in %s: the card leaves it "
                               "out. Run `hfssl evaluate %s --protocol %s ...` again to redraw it.", listed, key, path,
                               eval_dir, run.path, key)
    return found


def _copy_plots(run: RunDirectory, plots: dict[str, list[str]]) -> None:
    """Copy the card's plots into eval/ beside the card (model/eval/, or adapter/eval/), so its links resolve in the
    run directory as they do on the Hub, where README.md and eval/ share the repo root. Earlier copies it no longer
    links are removed."""
    wanted = {link for links in plots.values() for link in links}
    card_dir = run.card_dir
    copies = card_dir / EVAL_FOLDER
    for stale in sorted(copies.rglob("*")) if copies.is_dir() else []:
        if stale.is_file() and stale.relative_to(card_dir).as_posix() not in wanted:
            stale.unlink()
    for link in sorted(wanted):
        target = card_dir / link
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(run.path / link, target)
    if copies.is_dir() and not any(copies.rglob("*")):
        copies.rmdir()


def card_context(run: RunDirectory, repo_id: str | None, license: str | None, revision: str | None = None,
                 full_model: bool = False) -> tuple[ModelCardData, dict[str, Any]]:
    """The card's metadata and the template variables, from run.json and model/config.json; `revision` is the branch
    the card's code loads from (None: main). `full_model`: the card of a fine-tuned run's merged model/ (published
    with `--full-model`), not of its adapter."""
    if repo_id is not None:
        check_repo_id(repo_id)
    from ..audit.api import run_family

    raw = run.read_manifest()
    if not raw:
        raise FileNotFoundError(f"{run.manifest_path} is missing or empty: render cards for run directories written "
                                "by hfssl (pretrain, finetune).")
    # An adapter-only run's model is its base/ (the parent's weights under the classifier's config).
    config_path = run.path / "base" / "config.json" if run.is_adapter_only() else run.model_dir / "config.json"
    config = json.loads(config_path.read_text(encoding="utf-8")) if config_path.is_file() else {}
    manifest = sanitize_manifest(raw, run_path=run.path)
    family = run_family(manifest, config)
    license_id, how = resolve_license(raw, license)
    base_model = _base_model(run, raw)
    title = (repo_id or run.path.name).split("/")[-1]
    task = sections.pipeline_tag(family, manifest, config)
    results = eval_results(manifest, "image-classification" if sections.is_vision(manifest, config)
                           else "text-classification")
    tags = ["hfssl", "self-supervised", str(sections.objective_of(manifest) or family), "custom_code"]
    adapter = is_adapter_run(run.path) and not full_model
    card_data = ModelCardData(
        # An adapter repo holds peft files only (the publisher's convention); everything else loads with transformers.
        library_name="peft" if adapter else "transformers", pipeline_tag=task, license=license_id, tags=tags,
        datasets=sections.hub_dataset_ids((manifest.get("data") or {}).get("source")) or None,
        base_model=base_model, model_name=title, eval_results=results or None)
    code, note = snippet(family, config, manifest, repo_id or REPO_ID_SLOT, adapter, revision)
    blocks, missing = evaluation_blocks(manifest, existing_plots(run, raw))
    intended, out_of_scope = sections.intended_uses(family)
    context = {
        "title": title, "summary": _summary(family, manifest),
        "details": _details(family, manifest, config, f"{license_id} ({how})", base_model),
        "intended": intended, "out_of_scope": out_of_scope, "snippet": code, "snippet_note": note,
        "data_rows": sections.data_rows(manifest), "procedure": sections.procedure_rows(manifest),
        "hyperparameters": sections.hyperparameter_rows(manifest, config), "energy": sections.energy_text(manifest),
        "evaluations": blocks, "not_evaluated": missing if family != "classifier" else [],
        "bias": bias_section(manifest), "limitations": sections.limitations(family, manifest),
        "citations": sections.citations(manifest), "bibtex": BIBTEX % __version__,
    }
    return card_data, context


def card_text(run_dir: str | os.PathLike, repo_id: str | None = None, license: str | None = None,
              revision: str | None = None, full_model: bool = False) -> str:
    """The rendered card (not written), checked offline: metadata, no placeholder, no local path. `revision`: the
    branch the model is published on, when not main (its code snippet loads from there); `full_model`: see
    `card_context`."""
    run = RunDirectory(run_dir)
    card_data, context = card_context(run, repo_id, license, revision, full_model)
    text = str(ModelCard.from_template(card_data, template_str=template_text(), **context))
    check_card(text, "model")
    leaked = next((p for p in (str(run.path.resolve()), str(Path.home())) if len(p) > 1 and p in text), None)
    if leaked:
        raise ValueError(f"The card would contain the local path {leaked!r}; remove it from run.json first.")
    return text


def render_card(run_dir: str | os.PathLike, repo_id: str | None = None, license: str | None = None) -> Path:
    """Write `<run>/model/README.md` (`<run>/adapter/README.md` in a run with an adapter only) from run.json;
    returns its path.

    `repo_id`: the Hub repo the card is for; None leaves `{{repo_id}}` for `hfssl publish` to fill in.
    `license`: a Hub license id; default run.json's `license`, else the one given when this run's card was last
    rendered, else apache-2.0 (stated on the card).
    """
    run = RunDirectory(run_dir)
    text = card_text(run_dir, repo_id, license)
    path = run.card_dir / "README.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    _copy_plots(run, existing_plots(run, run.read_manifest()))
    fd, tmp = tempfile.mkstemp(prefix=".README.md.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    # What `hfssl publish` needs to tell this card from one edited by hand, and to render it again with the run's
    # later results (an evaluation or audit run after the card).
    # A license given once stays through later renders (see resolve_license), however many there are.
    license = license or (run.read_manifest().get(CARD_SECTION) or {}).get("license")
    run.update_manifest(**{CARD_SECTION: {"sha256": card_digest(text), "repo_id": repo_id, "license": license}})
    return path


def card_digest(text: str) -> str:
    """The sha256 of a card's text, as run.json's `card` section records it."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()

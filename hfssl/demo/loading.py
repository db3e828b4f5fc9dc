"""Load what a demo needs from a run directory, a model folder or a Hub id, and decide which demo fits.

A run directory (`runs/<name>/` with `model/` and `run.json`) gives the model, its tokenizer or image
processor, the manifest and the card; a bare model folder or a Hub id gives the model and whatever card
travels with it. The demo kind follows the run's objective, else the model's architecture:

| objective / architecture            | demo                                   |
|-------------------------------------|----------------------------------------|
| mlm*, `...ForMaskedLM`              | fill-mask                              |
| clm*, `...ForCausalLM`              | generation                             |
| mae, `...ForMaskedImageModeling`    | reconstruction                         |
| `...ForSequenceClassification`, `...ForImageClassification` (fine-tuned) | classification |
| anything else with an encoder       | gallery (nearest neighbours, kNN, PCA) |

`encode` turns a loaded model's inputs into features for the gallery and classify tabs; the input limits and checks
every tab shares are in `hfssl.demo.inputs`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForImageClassification,
    AutoModelForMaskedLM,
    AutoModelForPreTraining,
    AutoModelForSequenceClassification,
    PreTrainedModel,
)

import hfssl  # noqa: F401  (registers the hfssl Auto classes)

from ..data.tokenizer import is_causal_objective, load_tokenizer
from ..training.rundir import RunDirectory, newest_checkpoint
from .kinds import DEMO_KINDS, POOLING_RULES

logger = logging.getLogger(__name__)

_AUTO_CLASSES = {  # by demo kind, then modality
    "fill-mask": {"text": AutoModelForMaskedLM},
    "generation": {"text": AutoModelForCausalLM},
    "reconstruction": {"image": AutoModelForPreTraining},
    "classification": {"text": AutoModelForSequenceClassification, "image": AutoModelForImageClassification},
    "gallery": {"text": AutoModel, "image": AutoModel},
}
_ARCHITECTURE_SUFFIXES = (
    ("ForMaskedLM", "fill-mask"),
    ("ForCausalLM", "generation"),
    ("LMHeadModel", "generation"),
    ("ForMaskedImageModeling", "reconstruction"),
    ("MAEForPreTraining", "reconstruction"),
    ("ForSequenceClassification", "classification"),
    ("ForImageClassification", "classification"),
)
# The modalities each demo kind serves; --kind is checked against the model's before anything is loaded.
KIND_MODALITIES = {kind: tuple(by_modality) for kind, by_modality in _AUTO_CLASSES.items()}


@dataclass
class LoadedModel:
    """Everything a demo needs about one model.

    kind: a key of DEMO_KINDS; modality: "text" or "image"; pooling: the rule that turns a stock encoder's
    last hidden state (b, t, d) into features (b, d) when the model has no `get_features`.
    """

    ref: str
    kind: str
    modality: str
    model: PreTrainedModel
    tokenizer: Any | None = None
    image_processor: Any | None = None
    manifest: dict[str, Any] = field(default_factory=dict)
    card_text: str | None = None
    pooling: str = "mean"

    @property
    def title(self) -> str:
        """A short name for the page header: the run or repo name."""
        path = Path(self.ref)
        return path.parent.name if path.name == "model" else path.name or self.ref


def load_demo_model(ref: str | os.PathLike, kind: str | None = None, pooling: str = "mean") -> LoadedModel:
    """Load a run directory, a model folder or a Hub id for a demo.

    Args:
        ref: `runs/<name>` (with model/ and run.json), a save_pretrained folder, or a Hub id `owner/name`.
        kind: force a demo kind (a key of DEMO_KINDS); by default it follows the objective or architecture.
        pooling: "mean", "cls" or "last", for encoders that have no `get_features` (stock transformers models).
    """
    if kind is not None and kind not in DEMO_KINDS:
        raise ValueError(f"Unknown demo kind {kind!r}; valid kinds: {', '.join(DEMO_KINDS)}.")
    if pooling not in POOLING_RULES:
        raise ValueError(f"Unknown pooling rule {pooling!r}; valid rules: {', '.join(POOLING_RULES)}.")
    folder = Path(ref).expanduser()
    if folder.is_dir() and RunDirectory(folder).is_adapter_only():
        return load_adapter_run(RunDirectory(folder), kind, pooling)
    model_path, manifest, card_text = resolve_model_source(str(ref))
    if model_path == str(ref) and not folder.exists():  # a Hub id: an adapter repository has no config.json
        adapter = _hub_json(model_path, "adapter_config.json")
        if adapter is not None and _hub_text(model_path, "config.json") is None:
            return load_hub_adapter(model_path, adapter, kind, pooling)
    config = _load_config(model_path)
    modality = config_modality(config)
    if kind is not None and modality not in KIND_MODALITIES[kind]:
        fits = ", ".join(k for k, modalities in KIND_MODALITIES.items() if modality in modalities)
        raise ValueError(f"{ref} is {'an image' if modality == 'image' else 'a text'} model; the {kind} demo needs "
                         f"{'an image' if modality == 'text' else 'a text'} model. Kinds for {modality} models: {fits}.")
    chosen = kind or decide_kind(manifest.get("objective"), getattr(config, "architectures", None))
    if modality not in KIND_MODALITIES[chosen]:  # e.g. an image model whose run says mlm
        logger.warning("%s: a %s model cannot show the %s demo; showing the gallery demo instead.", ref, modality,
                       chosen)
        chosen = "gallery"
    model, problem = _load_model(model_path, chosen, modality)
    if problem:
        if kind is not None:
            raise ValueError(f"{ref} cannot show the {kind} demo: {problem}. Choose another --kind.")
        logger.warning("%s: %s; showing the gallery demo instead.", ref, problem)
        chosen, (model, _) = "gallery", _load_model(model_path, "gallery", modality)
    if chosen == "gallery" and not hasattr(model, "get_features") and getattr(model.config, "mask_ratio", 0):
        # A stock MAE encoder (ViTMAEModel) hides a random mask_ratio of the patches in every forward: its
        # features would change from call to call and see a quarter of the image. Features see every patch.
        logger.info("Encoding with mask_ratio 0 instead of %s: gallery features see every patch.",
                    model.config.mask_ratio)
        model.config.mask_ratio = 0.0
    loaded = LoadedModel(ref=str(ref), kind=chosen, modality=model_modality(model), model=model.eval(),
                         manifest=manifest, card_text=card_text, pooling=pooling)
    _attach_processor(loaded, model_path)
    return loaded


def load_adapter_run(run: RunDirectory, kind: str | None = None, pooling: str = "mean") -> LoadedModel:
    """A fine-tuned run that holds only adapter/ on base/ (prompt learning cannot merge into the weights): the
    classifier is the adapter on base/ through peft, shown by the classification demo."""
    base = run.path / "base"
    if not (base / "config.json").is_file():
        raise run.no_model_error("demo")
    return _peft_classifier(str(run.path), str(base), str(run.adapter_dir), None, None, run.read_manifest(),
                            _read_local_card(run.adapter_dir, run.path), kind, pooling)


def load_hub_adapter(repo_id: str, adapter_config: dict[str, Any], kind: str | None = None,
                     pooling: str = "mean") -> LoadedModel:
    """A Hub repository that holds a classifier adapter (`hfssl publish` of a fine-tuned run): its base model from
    the Hub, at the commit the adapter pins, with the head sized by the run's labels (run.json), under the adapter."""
    base = adapter_config.get("base_model_name_or_path")
    if not base:
        raise ValueError(f"{repo_id} is a peft adapter whose adapter_config.json names no base model "
                         "(base_model_name_or_path); the demo cannot load it.")
    manifest = _hub_json(repo_id, "run.json") or {}
    id2label = (manifest.get("finetune") or {}).get("id2label") or manifest.get("id2label")
    return _peft_classifier(repo_id, base, repo_id, adapter_config.get("revision"), id2label, manifest,
                            _hub_text(repo_id, "README.md"), kind, pooling)


def _peft_classifier(ref: str, base: str, adapter: str, revision: str | None, id2label: dict | None,
                     manifest: dict[str, Any], card_text: str | None, kind: str | None, pooling: str) -> LoadedModel:
    """The classification demo's model: the base (a folder or Hub id at `revision`) under its classification head
    (sized by `id2label` where given), with the peft adapter on top; the tokenizer or image processor saved with the
    adapter, else the base's."""
    from peft import PeftModel

    if kind not in (None, "classification", "gallery"):
        raise ValueError(f"{ref} holds a classifier adapter (no full model); the {kind} demo needs a model of that "
                         "kind. Leave out --kind, or pass --kind classification or gallery.")
    try:
        config = AutoConfig.from_pretrained(base, revision=revision)
    except (OSError, ValueError) as error:
        raise ValueError(f"Could not read the config of {ref}'s base model {base!r}: {str(error).rstrip('.')}. "
                         "Check that it exists and is readable (for a Hub id, online and with access).") from error
    modality = config_modality(config)
    labels = {int(i): str(name) for i, name in id2label.items()} if id2label else None
    heads = {"id2label": labels, "label2id": {n: i for i, n in labels.items()}, "num_labels": len(labels)} if labels \
        else {}
    try:
        with _quiet_transformers(), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # peft calling transformers APIs it deprecates
            classifier = _AUTO_CLASSES["classification"][modality].from_pretrained(base, revision=revision, **heads)
            model = PeftModel.from_pretrained(classifier, adapter)
    except (OSError, ValueError, RuntimeError, KeyError) as error:
        raise ValueError(f"Could not load the adapter of {ref} on its base {base}: {str(error).rstrip('.')}.") \
            from error
    loaded = LoadedModel(ref=ref, kind=kind or "classification", modality=modality, model=model.eval(),
                         manifest=manifest, card_text=card_text, pooling=pooling)
    try:
        _attach_processor(loaded, adapter)
    except ValueError:
        _attach_processor(loaded, base)
    return loaded


def resolve_model_source(ref: str) -> tuple[str, dict[str, Any], str | None]:
    """(path or Hub id of the model, run.json contents or {}, README.md text or None) for `ref`."""
    path = Path(ref).expanduser()
    if path.is_dir():
        if RunDirectory(path).is_adapter_only():
            raise RunDirectory(path).no_model_error("demo")
        run = RunDirectory(path) if (path / "model").is_dir() else RunDirectory(path.parent)
        model_dir = run.model_dir if (path / "model").is_dir() else path
        if not (model_dir / "config.json").is_file():
            _refuse_adapter_or_empty_run(path)
            raise FileNotFoundError(
                f"{ref} is neither a run directory (with model/config.json) nor a model folder (with config.json); "
                "pass runs/<name> or the folder written by save_pretrained."
            )
        manifest = run.read_manifest() if model_dir == run.model_dir else {}
        return str(model_dir), manifest, _read_local_card(model_dir, run.path)
    if path.is_file():
        raise FileNotFoundError(f"{ref} is a file; pass the run directory (runs/<name>) or the model folder that "
                                "holds config.json.")
    if path.is_absolute() or ref.startswith((".", "~")) or ref.count("/") != 1:
        raise FileNotFoundError(
            f"{ref} does not exist. Pass a run directory (runs/<name>), a model folder, or a Hub id owner/name."
        )
    _check_hub_model(ref)
    return ref, _hub_json(ref, "run.json") or {}, _hub_text(ref, "README.md")


def _check_hub_model(repo_id: str) -> None:
    """One line for a Hub id the demo cannot show, before transformers answers with a paragraph about
    huggingface.co: no such repository on this Hub (or a private one this session cannot read; `runs/x` of a run
    that does not exist reads as a Hub id too), or a repository whose main branch holds no model (published to
    another branch only). Offline, or when the Hub cannot be reached, loading reports what it finds."""
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        RepositoryNotFoundError,
    )

    from ..hub.client import NETWORK_ERRORS

    if constants.is_offline_mode():
        return
    where = constants.ENDPOINT
    try:
        files = set(HfApi(endpoint=where).list_repo_files(repo_id))
    except GatedRepoError:
        raise ValueError(f"{repo_id} on {where} is gated: accept its conditions on its page, then log in with "
                         "`hf auth login` (or set HF_TOKEN) and run the demo again.") from None
    except RepositoryNotFoundError:
        raise FileNotFoundError(
            f"{repo_id} is no folder here and no model on {where} that this session can read: pass an existing run "
            "directory (runs/<name>), a model folder or a Hub id owner/name; for a private model log in with "
            "`hf auth login` or set HF_TOKEN.") from None
    except (HfHubHTTPError, *NETWORK_ERRORS):
        return
    if not files & {"config.json", "adapter_config.json"}:
        raise FileNotFoundError(
            f"{repo_id} on {where} holds no model on its main branch (no config.json or adapter_config.json): publish "
            f"a run there (hfssl publish runs/<name> --repo-id {repo_id}); the demo shows the main branch only, not "
            "one published with --revision.")


def _refuse_adapter_or_empty_run(path: Path) -> None:
    """A clearer error than "not a model folder" for the two folders users pass by mistake: a fine-tuned run's
    adapter/ (its run directory holds the merged model/) and a run directory without model/ (a pretraining that
    stopped before saving, whose checkpoints still load)."""
    if (path / "adapter_config.json").is_file():
        run = path.parent
        hint = (f"pass the run directory {run} (its model/ is the merged classifier)" if (run / "model").is_dir()
                else f"pass the run directory {run} (the demo loads the adapter on its base/)"
                if (run / "base" / "config.json").is_file()
                else "the demo loads full models, or a run's adapter/ on its base/; load this one with peft "
                     "(AutoPeftModel...from_pretrained)")
        raise FileNotFoundError(f"{path} is a peft adapter folder, not a model: {hint}.")
    if (path / "run.json").is_file():
        run = RunDirectory(path)
        error, last = run.no_model_error("demo"), newest_checkpoint(run.checkpoints_dir)
        if last:
            error = FileNotFoundError(f"{error} Its last checkpoint loads: hfssl demo {last}")
        raise error


def decide_kind(objective: str | None, architectures: list[str] | None = None) -> str:
    """The demo kind for a run's objective, else for the model's architecture names; "gallery" otherwise.

    A hybrid objective (`mlm+simcse`, `mae+dino`) shows the demo of its reconstruction half, whose head the
    checkpoint holds; the gallery tab covers the joint-embedding half.
    """
    if objective:
        first = objective.split("+")[0]
        if first.startswith("mlm"):
            return "fill-mask"
        if is_causal_objective(first):
            return "generation"
        return "reconstruction" if first == "mae" else "gallery"
    for name in architectures or ():
        for suffix, kind in _ARCHITECTURE_SUFFIXES:
            if name.endswith(suffix):
                return kind
    return "gallery"


def config_modality(config: Any) -> str:
    """ "image" for configs of vision models (an image size), "text" otherwise."""
    return "image" if getattr(config, "image_size", None) is not None else "text"


def model_modality(model: PreTrainedModel) -> str:
    """ "image" for models that take pixel_values, "text" otherwise."""
    return "image" if getattr(model, "main_input_name", "input_ids") == "pixel_values" else "text"


def _load_config(model_path: str):
    try:
        return AutoConfig.from_pretrained(model_path)
    except (OSError, ValueError) as error:
        raise ValueError(
            f"Could not read the model config of {model_path!r}: {str(error).rstrip('.')}. Check the path, "
            "or for a Hub id that you are online (HF_HUB_OFFLINE unset) and the repository exists."
        ) from error


def _load_model(model_path: str, kind: str, modality: str) -> tuple[PreTrainedModel, str | None]:
    """The model for a demo kind, and why it cannot serve that kind (None when it can).

    A head missing from the checkpoint would be random, so it counts as a problem; weights of training-only
    heads (projectors, EMA copies) that the demo does not use are ignored.
    """
    try:
        with _quiet_transformers():
            model, info = _AUTO_CLASSES[kind][modality].from_pretrained(model_path, output_loading_info=True)
    except (OSError, ValueError, RuntimeError) as error:
        raise ValueError(f"Could not load {model_path!r} as a {kind} model: {str(error).rstrip('.')}.") from error
    if info["unexpected_keys"]:
        logger.info("Ignoring %d checkpoint weights the %s demo does not use.", len(info["unexpected_keys"]), kind)
    missing = sorted(info["missing_keys"])
    if missing and kind != "gallery":
        return model, f"the checkpoint has no trained weights for {', '.join(missing[:3])}" + (
            f" and {len(missing) - 3} more" if len(missing) > 3 else "")
    if kind == "reconstruction" and not hasattr(model, "reconstruction"):
        return model, f"{type(model).__name__} has no MAE `reconstruction` method"
    if missing:  # e.g. a pooler the gallery does not use; anything else makes the features partly random
        logger.warning("%s has no weights for %s; features may be partly random.", model_path, ", ".join(missing[:3]))
    return model, None


@contextlib.contextmanager
def _quiet_transformers():
    """Hide transformers' load report: `_load_model` judges missing and unused weights itself."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)


def _attach_processor(loaded: LoadedModel, model_path: str) -> None:
    """Load the tokenizer (text) or image processor (image) saved beside the weights."""
    try:
        if loaded.modality == "text":
            loaded.tokenizer = load_tokenizer(model_path)
        else:
            loaded.image_processor = AutoImageProcessor.from_pretrained(model_path)
    except (OSError, ValueError) as error:
        what = "tokenizer" if loaded.modality == "text" else "image processor (preprocessor_config.json)"
        raise ValueError(
            f"{model_path} has no usable {what}: {str(error).rstrip('.')}. Save it next to the model "
            "(RunDirectory.save_model(model, processor))."
        ) from error
    if loaded.kind == "fill-mask" and loaded.tokenizer.mask_token is None:
        raise ValueError(f"The tokenizer of {model_path} has no mask token, so fill-mask cannot run.")


def _read_local_card(model_dir: Path, run_dir: Path) -> str | None:
    for candidate in (model_dir / "README.md", run_dir / "README.md"):
        if candidate.is_file():
            return candidate.read_text(encoding="utf-8")
    return None


def _hub_text(repo_id: str, filename: str) -> str | None:
    """A text file of a Hub model repo, or None when it is absent or the Hub cannot be reached."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return Path(hf_hub_download(repo_id, filename)).read_text(encoding="utf-8")
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError, ValueError) as error:
        # The Hub's answer runs over several lines (an absent adapter_config.json is the common case): its first.
        logger.info("No %s for %s: %s", filename, repo_id, str(error).strip().split("\n")[0])
        return None


def _hub_json(repo_id: str, filename: str) -> dict[str, Any] | None:
    import json

    text = _hub_text(repo_id, filename)
    try:
        return json.loads(text) if text else None
    except json.JSONDecodeError:
        logger.warning("%s of %s is not valid JSON; ignoring it.", filename, repo_id)
        return None


# ---------------------------------------------------------------- shared by the tabs


@torch.no_grad()
def encode(loaded: LoadedModel, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """Features (b, hidden) from `get_features`, or for stock encoders the last hidden state pooled by
    `loaded.pooling` (attention-masked mean, first token, or last real token). A stock model with a head
    (`BertForMaskedLM`, `ViTForImageClassification`) is encoded by its backbone, not its logits."""
    model = loaded.model
    while not hasattr(model, "get_features") and isinstance(getattr(model, "base_model", None), torch.nn.Module) \
            and model.base_model is not model:  # a peft wrapper, then the head model, then its backbone
        model = model.base_model
    if hasattr(model, "get_features"):
        return model.get_features(**inputs)
    out = model(**inputs)
    hidden = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]  # (b, t, d)
    mask = inputs.get("attention_mask")
    if loaded.pooling == "cls" or hidden.dim() == 2:
        return hidden[:, 0] if hidden.dim() == 3 else hidden
    if mask is None:
        return hidden.mean(dim=1) if loaded.pooling == "mean" else hidden[:, -1]
    weights = mask.to(hidden.dtype)  # (b, t)
    if loaded.pooling == "mean":
        return (hidden * weights[..., None]).sum(dim=1) / weights.sum(dim=1, keepdim=True).clamp(min=1.0)
    last = (mask.long() * torch.arange(hidden.shape[1])).argmax(dim=-1)  # (b,)
    return hidden[torch.arange(hidden.shape[0]), last]

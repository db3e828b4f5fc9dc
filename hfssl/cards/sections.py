"""The sections of an hfssl model card, each built from run.json alone (already sanitized: no local paths).

Every function takes the manifest (and the saved config where the architecture matters) and returns plain
strings, lists and table rows for the Jinja template; none computes a number that run.json does not hold,
except the stated energy estimate.
"""

from __future__ import annotations

import re
from typing import Any

# Objective -> (what the model is, the paper of the method).
METHODS: dict[str, tuple[str, str]] = {
    "mlm": ("masked language modeling (BERT-style)", "Devlin et al., BERT, NAACL 2019"),
    "clm": ("next-token (causal) language modeling (GPT-style)", "Radford et al., Language Models are Unsupervised "
            "Multitask Learners, 2019"),
    "simcse": ("SimCSE sentence embeddings", "Gao, Yao and Chen, SimCSE, EMNLP 2021"),
    "mlm+simcse": ("masked language modeling plus SimCSE on one backbone", "Gao, Yao and Chen, SimCSE, EMNLP 2021"),
    "mae": ("masked autoencoding of image patches", "He et al., Masked Autoencoders Are Scalable Vision Learners, "
            "CVPR 2022"),
    "simclr": ("SimCLR contrastive learning", "Chen et al., A Simple Framework for Contrastive Learning, ICML 2020"),
    "moco": ("MoCo v3 contrastive learning", "Chen, Xie and He, An Empirical Study of Training Self-Supervised "
             "Vision Transformers, ICCV 2021"),
    "byol": ("BYOL self-distillation", "Grill et al., Bootstrap Your Own Latent, NeurIPS 2020"),
    "simsiam": ("SimSiam siamese learning", "Chen and He, Exploring Simple Siamese Representation Learning, "
                "CVPR 2021"),
    "dino": ("DINO self-distillation", "Caron et al., Emerging Properties in Self-Supervised Vision Transformers, "
             "ICCV 2021"),
    "swav": ("SwAV clustering", "Caron et al., Unsupervised Learning of Visual Features by Contrasting Cluster "
             "Assignments, NeurIPS 2020"),
}
PIPELINE_TAGS = {"mlm": "fill-mask", "clm": "text-generation", "text-contrastive": "feature-extraction",
                 "mlm+simcse": "feature-extraction", "vision": "image-feature-extraction"}
BUILDERS = {"csv", "json", "text", "parquet", "imagefolder", "audiofolder", "arrow", "webdataset"}
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")

# Energy estimate assumptions (stated on the card).
WATTS_PER_CPU_THREAD = 10.0  # about a server CPU's TDP per core (e.g. 200 W over 20 cores)
GPU_WATTS = {"H200": 700.0, "H100": 700.0, "A100": 400.0, "A10": 150.0, "L4": 72.0, "T4": 70.0, "V100": 300.0}
DEFAULT_GPU_WATTS = 300.0
GRAMS_CO2_PER_KWH = 475.0  # IEA world average carbon intensity of electricity, 2019


def objective_of(manifest: dict[str, Any]) -> str | None:
    """The pretraining objective of the run, or of the parent of a fine-tuned run."""
    parent = (manifest.get("finetune") or {}).get("parent") or {}
    return manifest.get("objective") or (parent.get("objective") if isinstance(parent, dict) else None)


def is_vision(manifest: dict[str, Any], config: dict[str, Any]) -> bool:
    return str(manifest.get("modality")) in ("image", "vision") or "image_size" in config


def pipeline_tag(family: str, manifest: dict[str, Any], config: dict[str, Any]) -> str:
    if family == "classifier":
        return "image-classification" if is_vision(manifest, config) else "text-classification"
    return PIPELINE_TAGS[family]


def fmt(value: Any) -> str:
    """A table cell: floats to 4 significant digits, ints with separators, pipes escaped."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value).replace("|", "\\|").replace("\n", " ")


# ---------------------------------------------------------------------------------------------- data


def source_names(source: Any) -> list[str]:
    """The data source as a list of names (a string, a list of files, or {split: files})."""
    if isinstance(source, dict):
        return [n for v in source.values() if v for n in source_names(v)]
    if isinstance(source, (list, tuple)):
        return [str(s) for s in source]
    return [] if source is None else [str(source)]


# Built-in data sets read from local files whose data is also a Hub dataset: the card links that page. A source is
# "fashion-mnist" (pretraining) or "fashion-mnist:<folder of its IDX files>" (evaluation).
BUILTIN_HUB_IDS = {"fashion-mnist": "zalando-datasets/fashion_mnist"}


def hub_dataset_ids(source: Any) -> list[str]:
    """Names that can only be Hub dataset ids ("org/name", no local-file suffix), and the Hub id of a built-in set
    that has one (BUILTIN_HUB_IDS); builders and other builtins excluded."""
    ids = []
    for name in source_names(source):
        builtin = BUILTIN_HUB_IDS.get(name.partition(":")[0])
        if builtin:
            ids.append(builtin)
        elif _HUB_ID.match(name) and name not in BUILDERS and not re.search(r"\.(csv|jsonl?|txt|parquet|gz)$", name):
            ids.append(name)
    return list(dict.fromkeys(ids))


def data_rows(manifest: dict[str, Any]) -> list[tuple[str, str]]:
    """(field, value) rows of the training data: name, size, fingerprint, format."""
    data = manifest.get("data") or {}
    names = source_names(data.get("source"))
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    rows = [("name", shown or "not recorded")]
    if data.get("description"):
        rows.append(("description", data["description"]))
    for key, label in (("train_rows", "training rows"), ("validation_rows", "validation rows"),
                       ("images", "images"), ("train_examples", "training examples"),
                       ("test_examples", "test examples"), ("label_fraction", "label fraction"),
                       ("format", "format"), ("image_size", "image size"), ("text_column", "text column"),
                       ("fingerprint", "fingerprint")):
        if data.get(key) is not None:
            rows.append((label, fmt(data[key])))
    return rows


# ---------------------------------------------------------------------------------------------- training


HYPERPARAMETERS = ("learning_rate", "per_device_train_batch_size", "gradient_accumulation_steps", "max_steps",
                   "num_train_epochs", "warmup_steps", "warmup_ratio", "weight_decay", "lr_scheduler_type", "optim",
                   "bf16", "fp16", "seed")
CONFIG_FIELDS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "vocab_size",
                 "max_position_embeddings", "position_embedding_type", "image_size", "patch_size", "num_channels",
                 "mask_ratio", "norm_pix_loss", "pooling", "ssl", "mlm_weight", "mae_weight")


def hyperparameter_rows(manifest: dict[str, Any], config: dict[str, Any]) -> list[tuple[str, str]]:
    """Training arguments that shape the result, then the model's size fields, then fine-tuning settings."""
    training = dict((manifest.get("arguments") or {}).get("training") or {})
    if isinstance(training.get("max_steps"), int) and training["max_steps"] > 0:
        training.pop("num_train_epochs", None)  # max_steps overrides it: showing both would contradict the steps
    rows = []
    for key in HYPERPARAMETERS:
        value = training.get(key)
        if value in (None, ""):
            continue
        if key == "warmup_steps" and isinstance(value, float) and 0 < value < 1:  # transformers reads < 1 as a ratio
            rows.append(("warmup (fraction of the steps)", fmt(value)))
        else:
            rows.append((key, fmt(value)))
    model_config = {**config, **((manifest.get("model") or {}).get("config") or {})}
    rows += [(f"config.{k}", fmt(model_config[k])) for k in CONFIG_FIELDS if model_config.get(k) is not None]
    finetune = manifest.get("finetune") or {}
    for key in ("method", "target_modules", "trainable_parameters", "trainable_percent", "epochs", "batch_size",
                "learning_rate"):
        if finetune.get(key) is not None:
            rows.append((f"finetune.{key}", fmt(finetune[key])))
    return rows


def stats_of(manifest: dict[str, Any]) -> dict[str, Any]:
    return manifest.get("pretrain") or manifest.get("finetune") or {}


def procedure_rows(manifest: dict[str, Any]) -> list[tuple[str, str]]:
    """Objective, steps, wall time, tokens or images seen, losses, hardware and software versions."""
    stats = stats_of(manifest)
    objective = objective_of(manifest)
    rows = [("objective", f"{objective} - {METHODS[objective][0]}" if objective in METHODS else fmt(objective))]
    for key, label in (("steps", "optimizer steps"), ("wall_time_s", "wall time (s)"), ("tokens_seen", "tokens seen"),
                       ("images_seen", "images seen"), ("train_examples", "training examples"),
                       ("eval_loss_before", "validation loss before training"), ("eval_loss", "validation loss after"),
                       ("perplexity", "validation perplexity"), ("embedding_std", "embedding std (collapse signal)"),
                       ("train_loss", "training loss"), ("peak_memory_mb", "peak memory (MB)")):
        if stats.get(key) is not None:
            rows.append((label, fmt(stats[key])))
    rows.append(("hardware", hardware_text(manifest.get("hardware") or {})))
    versions = manifest.get("versions") or {}
    if versions:
        rows.append(("software", ", ".join(f"{k} {v}" for k, v in versions.items() if v)))
    return rows


def hardware_text(hardware: dict[str, Any]) -> str:
    if not hardware:
        return "not recorded"
    gpus = hardware.get("cuda_devices") or []
    if gpus:
        return f"{len(gpus)} x {gpus[0]}"
    threads, cores = hardware.get("torch_threads") or hardware.get("cpu_count"), hardware.get("cpu_count")
    return f"CPU ({threads} threads of {cores} cores, {hardware.get('machine') or 'unknown machine'})"


def energy_text(manifest: dict[str, Any]) -> str:
    """An energy and CO2 estimate in grams with its assumptions stated, or why there is none."""
    wall = stats_of(manifest).get("wall_time_s")
    hardware = manifest.get("hardware") or {}
    if not isinstance(wall, (int, float)) or not hardware:
        return "Energy use and CO2 emissions were not measured (run.json records no wall time or hardware)."
    gpus = hardware.get("cuda_devices") or []
    if gpus:
        per = next((w for name, w in GPU_WATTS.items() if name in gpus[0]), DEFAULT_GPU_WATTS)
        watts, basis = per * len(gpus), f"{len(gpus)} GPU(s) at {per:.0f} W each (board power limit, an upper bound)"
    else:
        threads = hardware.get("torch_threads") or hardware.get("cpu_count") or 1
        watts = WATTS_PER_CPU_THREAD * threads
        basis = f"{threads} CPU thread(s) at {WATTS_PER_CPU_THREAD:.0f} W each (a server CPU's TDP per core)"
    wh = watts * wall / 3600
    grams = wh / 1000 * GRAMS_CO2_PER_KWH
    return (f"Estimated, not measured: about {wh:.3g} Wh and {grams:.3g} g CO2e for the {wall:.0f} s of training, "
            f"assuming {basis} and {GRAMS_CO2_PER_KWH:.0f} g CO2e per kWh (IEA world average, 2019). Data "
            "preparation, evaluation, audits, idle power and cooling are not included.")


# ---------------------------------------------------------------------------------------------- uses and limits


def intended_uses(family: str) -> tuple[list[str], list[str]]:
    """(intended uses, out-of-scope uses) of a run family."""
    common_out = ["Decisions about people (hiring, credit, policing, health) without a task-specific evaluation, "
                  "including a bias audit on data from that setting.",
                  "Any use where its errors or the stereotypes it may have learned from its training data can harm "
                  "someone."]
    uses = {
        "mlm": ["Filling in masked words, and a starting point for fine-tuning text classifiers on data like its "
                "training data.", "Research on self-supervised pretraining."],
        "clm": ["Continuing text like its training data, and a starting point for fine-tuning.",
                "Research on self-supervised pretraining."],
        "text-contrastive": ["Sentence embeddings for similarity search, clustering and linear probes.",
                             "A starting point for fine-tuning text classifiers."],
        "mlm+simcse": ["Sentence embeddings for similarity search, clustering and linear probes.",
                       "A starting point for fine-tuning text classifiers."],
        "vision": ["Image features for retrieval, clustering, kNN and linear probes on images like its training "
                   "images.", "A starting point for fine-tuning image classifiers."],
        "classifier": ["Classifying inputs like its fine-tuning data into the classes listed above."],
    }
    out = {"clm": ["Producing factual text: it generates plausible continuations, not checked facts."],
           "classifier": ["Inputs unlike its fine-tuning data, or classes it was not trained on."]}
    return uses[family], out.get(family, ["Generating text or serving as a chatbot."] if family != "vision" else
                                 ["Recognizing or identifying people."]) + common_out


def limitations(family: str, manifest: dict[str, Any]) -> list[str]:
    """Known limits: training scale, data, and the family's own."""
    stats, model = stats_of(manifest), manifest.get("model") or {}
    items = []
    if isinstance(model.get("parameters"), int):
        items.append(f"It has {model['parameters']:,} parameters and was trained for {fmt(stats.get('steps'))} steps; "
                     "small models trained briefly learn shallow statistics of their data.")
    items.append("It reflects its training data, including that data's language, domain and the stereotypes in it; "
                 "nothing was filtered for them unless the training data section says so.")
    if family in ("mlm", "clm", "text-contrastive", "mlm+simcse"):
        items.append("Its tokenizer was trained on or chosen for its training text; text in other languages or "
                     "domains is split into many pieces and handled poorly.")
    if family == "vision":
        items.append("Images are resized to a fixed square size without keeping the aspect ratio.")
    items.append("Safety, robustness to distribution shift, calibration and behaviour on data unlike the training "
                 "data were not evaluated.")
    return items


def citations(manifest: dict[str, Any]) -> list[str]:
    """Plain-text citations: the method's paper and the third-party audit sets that produced numbers here."""
    objective = objective_of(manifest)
    items = [METHODS[objective][1]] if objective in METHODS else []
    for audit in ((manifest.get("audit") or {}).get("audits") or {}).values():
        citation = (audit.get("data") or {}).get("citation")
        if citation and citation not in items:
            items.append(citation)
    return items

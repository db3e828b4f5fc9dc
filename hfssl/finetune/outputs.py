"""What a fine-tuning run writes into its run directory, and its manifest.

```
adapter/   PeftModel.save_pretrained + tokenizer or image processor (peft methods only)
base/      the model adapter/ loads on: the parent's files (hard links) under a config naming this run's labels
model/     the merged model (peft methods that merge) or the full model (--peft none)
merged/    with merge=True: hard links to model/
```
A method that cannot merge (prompt learning) writes adapter/ and base/ only: no model/, rather than a model that
would predict without its learned prompt.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from peft import PeftModel
from transformers import PreTrainedModel, TrainingArguments

from ..training.environment import hardware, versions
from ..training.rundir import RunDirectory, make_temp_dir, replace_dir, write_json_atomic

logger = logging.getLogger(__name__)

CLASSIFIER_SUFFIXES = ("ForSequenceClassification", "ForImageClassification")
AUTO_CLASSES = {"ForSequenceClassification": "AutoModelForSequenceClassification",
                "ForImageClassification": "AutoModelForImageClassification"}
# Files of the parent's folder that base/ does not take: its config (rewritten), its card, and adapter files that
# would make transformers load base/ as an adapter.
_NOT_LINKED = ("config.json", "README.md", "adapter_config.json", "adapter_model.safetensors", "adapter_model.bin")


def save_outputs(run: RunDirectory, model: torch.nn.Module, processor, merge: bool,
                 parent_model: str | None = None) -> dict[str, Any]:
    """adapter/ and base/ (peft), model/ (merged or full) and, with `merge`, merged/; returns their paths.

    `parent_model`: the parent's model folder (or Hub id), the source of base/; None names it nowhere.
    """
    folders: dict[str, Any] = {"adapter_dir": None, "base_dir": None, "model_dir": None, "merged_dir": None}
    if not isinstance(model, PeftModel):
        folders["model_dir"] = str(run.save_model(model, processor))
        return folders
    base = save_adapter_base(run, model.get_base_model(), parent_model) if parent_model else None
    if base is not None:
        for config in model.peft_config.values():
            config.base_model_name_or_path = str(base.resolve())
        folders["base_dir"] = str(base)
    adapter = run.path / "adapter"
    model.save_pretrained(adapter)
    auto_mapping_through_transformers(adapter / "adapter_config.json")
    processor.save_pretrained(adapter)
    folders["adapter_dir"] = str(adapter)
    folders["adapter_bytes"] = sum(f.stat().st_size for f in adapter.iterdir() if f.is_file())
    if model.peft_config[model.active_adapter].is_prompt_learning:
        logger.warning("%s learns virtual tokens, which cannot be merged into the weights: the run has adapter/ "
                       "(on base/) and no model/. Load it with peft (AutoPeftModelForSequenceClassification."
                       "from_pretrained('%s')).", model.peft_type.value.lower(), adapter)
        return folders
    try:
        merged = model.merge_and_unload()
    except (AttributeError, NotImplementedError, ValueError) as error:
        logger.warning("%s cannot be merged (%s): the run has adapter/ (on base/) and no model/%s.",
                       model.peft_type.value.lower(), error, " nor merged/, despite --merge" if merge else "")
        return folders
    folders["model_dir"] = str(run.save_model(merged, processor))
    if merge:
        folders["merged_dir"] = str(link_copy(run.model_dir, run.path / "merged"))
    return folders


def auto_mapping_through_transformers(config_file: Path) -> None:
    """Point a task-less adapter's `auto_mapping` at the transformers Auto class of its head.

    peft records the base model's class and module for an adapter without a task type (image classification has
    none), and `AutoPeftModel.from_pretrained` imports only modules on its allowlist (transformers and a few
    others): `hfssl.models...` or `transformers_modules...` would be refused. The Auto class loads the same class,
    through hfssl's registration or the checkpoint's auto_map with trust_remote_code=True.
    """
    if not config_file.is_file():
        return
    config = json.loads(config_file.read_text(encoding="utf-8"))
    mapping = config.get("auto_mapping") or {}
    name = str(mapping.get("base_model_class", ""))
    auto_class = next((auto for suffix, auto in AUTO_CLASSES.items() if name.endswith(suffix)), None)
    if auto_class is None or str(mapping.get("parent_library", "")).split(".")[0] == "transformers":
        return
    config["auto_mapping"] = {"base_model_class": auto_class, "parent_library": "transformers"}
    write_json_atomic(config_file, config)


def save_adapter_base(run: RunDirectory, base: PreTrainedModel, parent_model: str) -> Path | None:
    """<run>/base: the parent's model files as hard links (no extra disk; copies across file systems) under the
    classifier's config, which names this run's labels. The adapter loads on it, so that
    `AutoPeftModelForSequenceClassification.from_pretrained("<run>/adapter")` has the right head size and the real
    class names (the parent's config knows neither).

    Returns None, and the adapter names the parent itself, for a parent that is not a local folder (a Hub id) or
    whose saved classification head has another number of classes (it would not load under this config).
    """
    source = Path(parent_model)
    if not (source / "config.json").is_file():
        logger.info("The adapter's base is %s; pass num_labels, id2label and label2id when loading it.", parent_model)
        return None
    parent_config = json.loads((source / "config.json").read_text(encoding="utf-8"))
    parent_classes = len(parent_config.get("id2label") or {}) or 2
    is_classifier = any(str(a).endswith(CLASSIFIER_SUFFIXES) for a in parent_config.get("architectures") or [])
    if is_classifier and parent_classes != base.config.num_labels:
        logger.warning("The parent %s is a classifier of %d classes: the adapter's base is that folder; load it with "
                       "num_labels=%d, id2label, label2id and ignore_mismatched_sizes=True.", parent_model,
                       parent_classes, base.config.num_labels)
        return None
    staging = make_temp_dir(".base-", run.path)
    try:
        for file in sorted(source.iterdir()):
            if file.is_file() and file.name not in _NOT_LINKED:
                _link_or_copy(file, staging / file.name)
        config = copy.deepcopy(base.config)
        config.architectures = [type(base).__name__]
        config.to_json_file(staging / "config.json")  # a new file: writing through a link would edit the parent's
        replace_dir(staging, run.path / "base")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return run.path / "base"


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def link_copy(source: Path, target: Path) -> Path:
    """Copy a folder as hard links (no extra disk), falling back to a real copy across file systems."""
    shutil.copytree(source, target, copy_function=_link_or_copy)
    return target


def model_config(folders: dict[str, Any], model: torch.nn.Module) -> dict[str, Any]:
    """The saved classifier's class, size and config (from model/ when written)."""
    base = model.get_base_model() if isinstance(model, PeftModel) else model
    return {"class": type(base).__name__, "parameters": sum(p.numel() for p in base.parameters()),
            "config": base.config.to_diff_dict(), "path": folders.get("model_dir")}


def write_manifest(run: RunDirectory, summary: dict[str, Any], model: dict[str, Any], modality: str,
                   data: dict[str, Any], args: TrainingArguments) -> None:
    """run.json sections of this stage and eval/finetune.json."""
    write_json_atomic(run.eval_dir / "finetune.json", summary)
    run.update_manifest(
        format_version=1,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        stage="finetune",
        task=summary["task"],
        modality=modality,
        model=model,
        id2label=summary["id2label"],
        data={**data, "train_examples": summary["train_examples"], "test_examples": summary["test_examples"],
              "label_fraction": summary["label_fraction"]},
        seed=args.seed,
        arguments={"training": {k: v for k, v in args.to_dict().items() if "token" not in k}},
        versions=versions(),
        hardware=hardware(),
        finetune=summary,
    )

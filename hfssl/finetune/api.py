"""`finetune(parent, ...)`: PEFT (or full) fine-tuning of a pretrained encoder into a child run directory.

```
runs/<child>/
  adapter/   PeftModel.save_pretrained + tokenizer or image processor (small; peft methods only).
             Its base_model_name_or_path is base/ (absolute path; publishing rewrites it to the parent's Hub id).
  base/      what the adapter loads on: the parent's model files (hard links) under a config with this run's
             labels, so that AutoPeftModelForSequenceClassification gives the real class names.
  model/     the complete fine-tuned classifier, what every later stage loads: the merged model for peft
             methods, the full model for --peft none. Loads with AutoModelForSequenceClassification /
             AutoModelForImageClassification (after `import hfssl`, or with trust_remote_code=True). Prompt-learning
             methods cannot merge: their run has adapter/ and base/ and no model/.
  merged/    with merge=True: the same merged model under the name peft users expect (hard links to model/).
  run.json   stage "finetune", task, modality, id2label, and a `finetune` section linking the parent run.
  eval/finetune.json   accuracy, macro-F1, trainable parameters, wall time, peak memory.
```
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import resource
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from peft import PeftModel, get_peft_model
from sklearn.metrics import accuracy_score, f1_score
from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModelForImageClassification,
    AutoModelForSequenceClassification,
    DataCollatorWithPadding,
    PreTrainedModel,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    set_seed,
)
from transformers.models.auto.modeling_auto import (
    MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING,
    MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING,
)

from ..data.pixels import build_image_processor, compute_mean_std, processor_stats
from ..data.tokenizer import load_tokenizer
from ..training.rundir import RunDirectory, check_can_start, open_run
from .data import (
    DataSpec,
    ImageClassificationCollator,
    check_dataset_modality,
    check_modality,
    decode_images,
    load_splits,
    subsample,
    task_modality,
    tokenize_texts,
)
from .labels import encode_labels
from .methods import MethodOptions, PeftMethod, build_peft_config, check_options, get_method
from .outputs import model_config, save_outputs, write_manifest
from .targets import head_modules, resolve_targets

logger = logging.getLogger(__name__)

AUTO_CLASSES = {"text": AutoModelForSequenceClassification, "image": AutoModelForImageClassification}
PEFT_TASK_TYPES = {"text": "SEQ_CLS", "image": None}  # peft has no task type for image classification
RESERVED_TRAINING_ARGS = ("output_dir",)


@dataclass
class Parent:
    """The run being fine-tuned: where its model is, and what its run.json says (empty for a Hub id or bare folder)."""

    source: str
    model_path: str
    manifest: dict[str, Any] = field(default_factory=dict)
    modality: str | None = None


@dataclass
class TrainSettings:
    """Trainer settings: a few named ones and any other TrainingArguments field in `overrides`."""

    epochs: float = 3.0
    learning_rate: float | None = None  # None: the method's default (hfssl.finetune.methods.METHODS)
    batch_size: int = 32
    max_length: int = 128  # tokens per text
    overrides: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        max_steps = self.overrides.get("max_steps")
        steps_set = isinstance(max_steps, int) and max_steps > 0  # max_steps overrides epochs in the Trainer
        checks = (("--epochs", self.epochs, self.epochs > 0 or steps_set),
                  ("--learning-rate", self.learning_rate, self.learning_rate is None or self.learning_rate > 0),
                  ("--batch-size", self.batch_size, self.batch_size >= 1),
                  ("--max-length", self.max_length, self.max_length >= 2))  # room for a token and a special one
        for flag, value, ok in checks:
            if not ok:
                raise ValueError(f"{flag} must be positive{' (at least 2 tokens)' if flag == '--max-length' else ''}, "
                                 f"got {value!r}.")


def finetune(
    parent: str | os.PathLike,
    *,
    task: str,
    output: str | os.PathLike,
    train_files: list[str] | None = None,
    test_files: list[str] | None = None,
    dataset: str | None = None,
    dataset_config: str | None = None,
    data_dir: str | None = None,
    train_split: str = "train",
    test_split: str = "test",
    text_column: str = "text",
    image_column: str | None = None,
    label_column: str = "label",
    peft: str = "lora",
    lora_r: int | None = None,
    lora_alpha: float | None = None,
    lora_dropout: float | None = None,
    target_modules: list[str] | None = None,
    peft_options: dict[str, Any] | None = None,
    label_fraction: float | None = None,
    max_train_examples: int | None = None,
    max_test_examples: int | None = None,
    max_length: int = 128,
    epochs: float = 3.0,
    learning_rate: float | None = None,
    batch_size: int = 32,
    training_args: dict[str, Any] | None = None,
    merge: bool = False,
    seed: int = 0,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Fine-tune `parent` (a run directory, a model folder or a Hub id) for classification into the run `output`.

    `peft` names a method of `hfssl.finetune.methods` ("lora" default, "dora", "ia3", "none" = full
    fine-tuning, or any peft method by name). `lora_r`, `lora_alpha`, `lora_dropout`, `target_modules`,
    `peft_options` and `merge` left at None/False take the method's defaults; set for a method that has no use for
    them (`lora_r` with IA3, `merge` with full fine-tuning), they are refused rather than ignored.
    Data: `train_files` + `test_files` (csv/tsv/json/jsonl/parquet with `text_column` and `label_column`, or image
    files or class folders), or `dataset` (a Hub id, a builder such as "imagefolder" with `data_dir`, a
    save_to_disk folder, "fashion-mnist", "digits" or "stdlib-docstrings").
    `training_args` overrides any `TrainingArguments` field.

    Returns:
        The run.json `finetune` section: metrics (accuracy, macro_f1), trainable_parameters, wall_time_s,
        peak_memory_mb, id2label, the parent and the written folders (`run_dir`, `adapter_dir`, `model_dir`, ...).
    """
    method = get_method(peft)
    options = MethodOptions(lora_r, lora_alpha, lora_dropout, target_modules, dict(peft_options or {}))
    spec = DataSpec(train_files, test_files, dataset, dataset_config, data_dir, train_split, test_split, text_column,
                    image_column, label_column, label_fraction, max_train_examples, max_test_examples, seed=seed)
    settings = TrainSettings(epochs, learning_rate, batch_size, max_length, dict(training_args or {}))
    return run_finetune(str(parent), task, Path(output), method, options, spec, settings, merge, overwrite)


def run_finetune(parent_source: str, task: str, output: Path, method: PeftMethod, options: MethodOptions,
                 spec: DataSpec, settings: TrainSettings, merge: bool, overwrite: bool) -> dict[str, Any]:
    """The steps of `finetune`; everything that can fail on bad input runs before the run directory is touched."""
    modality = task_modality(task)
    check_options(method, options, merge, modality)
    check_dataset_modality(spec, task)
    parent = resolve_parent(parent_source)
    check_modality(task, parent.modality, parent.source)
    check_output_is_not_parent(output, parent)
    check_can_start(output, overwrite, resume=False, can_resume=False)
    args = build_training_arguments(output, method, settings, spec.seed)
    set_seed(spec.seed)
    splits, data_description = load_splits(spec, modality)
    splits, id2label = encode_labels(splits, spec.label_column)
    splits = subsample(splits, spec)
    model = load_classifier(parent, modality, id2label)
    encoded, processor, collator = prepare_inputs(splits, parent, model, modality, spec, settings)
    steps = count_training_steps(args, len(encoded["train"]))
    model, peft_description = apply_method(model, method, options, modality, training_steps=steps)
    with open_run(output, overwrite, can_resume=False) as run:
        trainer = Trainer(model=model, args=args, train_dataset=encoded["train"], data_collator=collator,
                          callbacks=method_callbacks(model))
        stats = train_and_measure(trainer)
        metrics, coverage = evaluate_classifier(trainer, encoded["test"], id2label, encoded["train"]["label"])
        folders = save_outputs(run, trainer.model, processor, merge, parent.model_path)
        if folders.get("base_dir") and "peft_config" in peft_description:  # what adapter/adapter_config.json names
            peft_description["peft_config"]["base_model_name_or_path"] = str(Path(folders["base_dir"]).resolve())
        _remove_if_empty(run.checkpoints_dir)  # save_strategy "no": the Trainer made it and put nothing in it
        summary = {
            "parent": describe_parent(parent), "task": task, **peft_description, "id2label": id2label,
            "label_fraction": spec.label_fraction, "train_examples": len(encoded["train"]),
            "test_examples": len(encoded["test"]), "metrics": metrics, **coverage, **stats, **folders,
            "learning_rate": args.learning_rate, "epochs": args.num_train_epochs, "batch_size": settings.batch_size,
        }
        write_manifest(run, summary, model_config(folders, trainer.model), modality, data_description, args)
    return {"run_dir": str(run.path), **summary}


# ----------------------------------------------------------------------------------------------- parent


def resolve_parent(source: str) -> Parent:
    """A run directory means its model/ folder and run.json; a model folder inside a run also finds the run.json."""
    path = Path(source).expanduser()
    if path.is_dir():
        run = RunDirectory(path)
        if run.model_dir.is_dir():
            model_dir, manifest = run.model_dir, run.read_manifest()
        elif (path / "config.json").is_file():
            model_dir, manifest = path, RunDirectory(path.parent).read_manifest() if path.name == "model" else {}
        else:
            raise FileNotFoundError(
                f"{source} is neither a run directory (with model/) nor a model folder (with config.json); "
                "pass the output of `hfssl pretrain` or a folder written by save_pretrained."
            )
        model_path = str(model_dir.resolve())
    elif path.is_absolute() or source.startswith((".", "~")) or source.count("/") > 1:
        raise FileNotFoundError(f"Parent {source!r} does not exist. Pass a run directory, a model folder or a Hub id.")
    else:
        model_path, manifest = source, {}
    return Parent(source, model_path, manifest, manifest.get("modality") or _config_modality(model_path))


def check_output_is_not_parent(output: Path, parent: Parent) -> None:
    """Refuse an --output that holds the parent's model: replacing it would delete what is being fine-tuned."""
    model = Path(parent.model_path)
    if model.is_dir() and (output.resolve() == model.resolve() or output.resolve() in model.resolve().parents):
        raise ValueError(f"--output {output} holds the parent's model ({model}): the run would replace what it "
                         "fine-tunes. Choose another --output, such as a sibling run directory.")


def _config_modality(model_path: str) -> str | None:
    """"image" or "text" from the config's class in the Auto mappings; None when neither knows it."""
    try:
        config = AutoConfig.from_pretrained(model_path)
    except (OSError, ValueError) as error:
        raise FileNotFoundError(
            f"Could not load a model config from {model_path!r}: {error}. Pass a run directory, a model folder "
            "or a Hub id reachable from here."
        ) from error
    if type(config) in MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING:
        return "image"
    if type(config) in MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING:
        return "text"
    return None


def describe_parent(parent: Parent) -> dict[str, Any]:
    """What run.json records about the parent run."""
    local = Path(parent.source).expanduser().exists()
    return {
        "path": str(Path(parent.source).expanduser().resolve()) if local else parent.source,
        "model": parent.model_path,
        "objective": parent.manifest.get("objective"),
        "modality": parent.modality,
        "run_json": bool(parent.manifest),
    }


def load_classifier(parent: Parent, modality: str, id2label: dict[int, str]) -> PreTrainedModel:
    """The parent's weights under a fresh classification head with `len(id2label)` outputs."""
    label2id = {name: i for i, name in id2label.items()}
    return AUTO_CLASSES[modality].from_pretrained(
        parent.model_path, num_labels=len(id2label), id2label=id2label, label2id=label2id,
        ignore_mismatched_sizes=True,  # a parent that is itself a classifier may have another label count
    )


# ----------------------------------------------------------------------------------------------- inputs


def prepare_inputs(splits, parent: Parent, model: PreTrainedModel, modality: str, spec: DataSpec,
                   settings: TrainSettings):
    """Tokenized texts or decoded images, the processor saved with the model, and the Trainer's collator."""
    if modality == "text":
        tokenizer = load_tokenizer(parent.model_path)
        if model.config.pad_token_id is None:
            model.config.pad_token_id = tokenizer.pad_token_id  # GPT-2-style heads pool the last non-pad token
        max_length = min(settings.max_length, getattr(model.config, "max_position_embeddings", settings.max_length))
        # The tokenizer saved with the classifier records the length it was trained and tested at, so the audit and a
        # pipeline with truncation=True read as many tokens as the reported accuracy saw, not the pretraining block's.
        tokenizer.model_max_length = max_length
        encoded = tokenize_texts(splits, tokenizer, spec.text_column, max_length)
        return encoded, tokenizer, DataCollatorWithPadding(tokenizer)
    processor = _saved_image_processor(parent.model_path)
    size = _processor_size(processor) or getattr(model.config, "image_size", 224)
    channels = getattr(model.config, "num_channels", 3)
    encoded = decode_images(splits, spec.image_column, size, channels)
    if processor is None:
        mean, std = compute_mean_std(encoded["train"])
        processor = build_image_processor(size, channels, mean, std)
        logger.info("The parent has no image processor; built one with the training split's mean %s and std %s.",
                    mean, std)
    return encoded, processor, ImageClassificationCollator(*processor_stats(processor))


def _saved_image_processor(model_path: str):
    try:
        return AutoImageProcessor.from_pretrained(model_path)
    except (OSError, ValueError):
        return None


def _processor_size(processor) -> int | None:
    size = getattr(processor, "size", None) or {}
    return size.get("height") or size.get("shortest_edge") if isinstance(size, dict) else None


# ----------------------------------------------------------------------------------------------- method


def apply_method(model: PreTrainedModel, method: PeftMethod, options: MethodOptions, modality: str,
                 training_steps: int | None = None) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Wrap the model with the method's peft config (or leave it whole for full fine-tuning).

    `training_steps`: the run's optimizer steps, for methods that schedule over them (AdaLoRA's total_step).
    """
    if training_steps is not None:
        options = dataclasses.replace(options, training_steps=training_steps)
    check_options(method, options, modality=modality)
    head = head_modules(model)
    description: dict[str, Any] = {"method": method.name, "modules_to_save": head}
    if method.config_class is None:
        return model, {**description, **count_parameters(model)}
    targets = resolve_targets(model, options.target_modules)
    config = build_peft_config(method, options, targets, head, PEFT_TASK_TYPES[modality])
    peft_model = get_peft_model(model, config)
    if config.is_prompt_learning and modality == "text":
        check_prompt_learning(peft_model, method.name)
    description.update(
        target_family=targets.family,
        target_modules=sorted(config.target_modules) if getattr(config, "target_modules", None) else None,
        peft_config=_jsonable(config.to_dict()),
    )
    return peft_model, {**description, **count_parameters(peft_model)}


def check_prompt_learning(model: PeftModel, name: str) -> None:
    """One tiny forward pass, so that a prompt-learning method the model cannot run (prefix_tuning needs a model
    that takes its prefixes as past key values) is refused before training rather than at its first step."""
    ids = torch.ones(1, 2, dtype=torch.long, device=model.device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(input_ids=ids, attention_mask=torch.ones_like(ids))
    except (TypeError, ValueError, RuntimeError, AttributeError) as error:
        raise ValueError(
            f"--peft {name} does not work with this model ({type(error).__name__}: {error}); use --peft "
            "prompt_tuning or p_tuning, or an adapter method such as lora."
        ) from error
    finally:
        model.train(was_training)


def _jsonable(value: Any) -> Any:
    """Sets (peft stores target modules as sets) become sorted lists, recursively."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    return value


def count_parameters(model: torch.nn.Module) -> dict[str, Any]:
    """Trainable and total parameters (a peft model's total includes its adapters)."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return {"trainable_parameters": trainable, "total_parameters": total,
            "trainable_percent": round(100 * trainable / total, 4)}


# ----------------------------------------------------------------------------------------------- training


def build_training_arguments(output: Path, method: PeftMethod, settings: TrainSettings, seed: int) -> TrainingArguments:
    """TrainingArguments with fine-tuning defaults, then the user's overrides (any TrainingArguments field)."""
    reserved = sorted(set(settings.overrides) & set(RESERVED_TRAINING_ARGS))
    if reserved:
        raise ValueError(f"{', '.join(reserved)} is set by hfssl (checkpoints go to <output>/checkpoints); drop it.")
    values = {
        "output_dir": str(RunDirectory(output).checkpoints_dir), "num_train_epochs": settings.epochs,
        "learning_rate": settings.learning_rate or method.learning_rate,
        "per_device_train_batch_size": settings.batch_size, "per_device_eval_batch_size": max(settings.batch_size, 64),
        "weight_decay": 0.01, "warmup_steps": 0.1, "eval_strategy": "no", "save_strategy": "no", "logging_steps": 10,
        "report_to": "none", "seed": seed, "data_seed": seed, "label_names": ["labels"],
        "remove_unused_columns": False, "dataloader_pin_memory": torch.cuda.is_available(),
    }
    values.update(settings.overrides)
    check_override_types(settings.overrides)
    try:
        return TrainingArguments(**values)
    except TypeError as error:
        raise ValueError(f"Bad training argument: {error}. Use TrainingArguments field names.") from error


def check_override_types(overrides: dict[str, Any]) -> None:
    """Refuse a word for a number or a flag (`max_steps=abc`): TrainingArguments takes it, and it fails mid-run."""
    defaults = {f.name: f.default for f in dataclasses.fields(TrainingArguments)}
    for key, value in overrides.items():
        default = defaults.get(key)
        word_for_number = isinstance(value, str) and isinstance(default, (bool, int, float))
        if word_for_number:
            kind = "true or false" if isinstance(default, bool) else type(default).__name__
            raise ValueError(f"--training-arg {key}={value} is not a valid value: {key} takes {kind} "
                             f"(default {default!r}).")


def count_training_steps(args: TrainingArguments, train_rows: int) -> int:
    """The optimizer steps the Trainer will take: `max_steps` when set, else epochs x updates per epoch."""
    if args.max_steps > 0:
        return args.max_steps
    rows_per_batch = args.train_batch_size * args.world_size
    batches = train_rows // rows_per_batch if args.dataloader_drop_last else math.ceil(train_rows / rows_per_batch)
    return math.ceil(args.num_train_epochs * max(math.ceil(batches / args.gradient_accumulation_steps), 1))


class AdaLoraAllocator(TrainerCallback):
    """Run AdaLoRA's rank allocation after each optimizer step, before the gradients are zeroed, as peft asks;
    the Trainer does not, and without it AdaLoRA never moves its rank budget."""

    def __init__(self, model: PeftModel):
        self.model = model

    def on_optimizer_step(self, args, state, control, **kwargs):
        self.model.base_model.update_and_allocate(state.global_step)


def method_callbacks(model: torch.nn.Module) -> list[TrainerCallback]:
    """Trainer callbacks the method needs (AdaLoRA's budget allocation); none for the others."""
    return [AdaLoraAllocator(model)] if hasattr(getattr(model, "base_model", None), "update_and_allocate") else []


def peak_memory_mb() -> tuple[float, str]:
    """Peak memory and how it was measured: the CUDA allocator's peak, else the process's peak RSS.

    On Linux the peak RSS is VmHWM: getrusage's ru_maxrss survives exec, so a process started from a large
    one (a notebook, a benchmark driver) would report its parent's peak.
    """
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20, "torch.cuda.max_memory_allocated"
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**10, "process peak RSS (VmHWM)"
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux, bytes on macOS
    return rss / (2**20 if sys.platform == "darwin" else 2**10), "process peak RSS (getrusage)"


def train_and_measure(trainer: Trainer) -> dict[str, Any]:
    """Train; return wall time, steps, the final training loss and peak memory."""
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    result = trainer.train()
    wall = time.perf_counter() - start
    memory, how = peak_memory_mb()
    return {"wall_time_s": round(wall, 2), "steps": trainer.state.global_step, "train_loss": result.training_loss,
            "peak_memory_mb": round(memory, 1), "peak_memory_measure": how}


def evaluate_classifier(trainer: Trainer, test, id2label: dict[int, str],
                        train_labels: list[int] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Accuracy and macro-F1 of argmax predictions on the test split, and the test loss; then the classes macro-F1
    averaged over (`macro_f1_classes`), the training classes the test split lacks (`test_missing_classes`) and the
    test classes the training split lacks (`train_missing_classes`).

    Macro-F1 is the unweighted mean of the per-class F1 = 2TP / (2TP + FP + FN) over the classes present in the test
    split, whatever was predicted (as `hfssl evaluate`'s probes compute it): a prediction of a class the test split
    lacks is an error against the true class. A training class without test examples is therefore not measured; it
    is named in a warning. A test class without training examples is measured, as in `hfssl evaluate`: no example
    taught its output to win, so its examples are errors and its F1 is 0 in all but freak cases.

    `train_labels`: the training split's label ids (None: every class of id2label is a training class).
    """
    output = trainer.predict(test)
    logits = output.predictions[0] if isinstance(output.predictions, tuple) else output.predictions
    predicted, labels = np.asarray(logits).argmax(-1), np.asarray(test["label"])
    present = np.unique(labels)
    trained = set(id2label) if train_labels is None else set(np.unique(np.asarray(train_labels)).tolist())
    missing = [id2label[i] for i in sorted(trained - set(present.tolist()))]
    if missing:
        logger.warning(
            "The test split has no example of %d of the %d training classes (%s): accuracy and macro-F1 do not "
            "measure them (macro-F1 averages over the %d classes the test split has). Add test examples of every "
            "class for a complete measure.", len(missing), len(trained), ", ".join(missing), len(present))
    metrics = {
        "accuracy": float(accuracy_score(labels, predicted)),
        "macro_f1": float(f1_score(labels, predicted, labels=present, average="macro", zero_division=0)),
        "test_loss": output.metrics.get("test_loss"),
    }
    unseen = [id2label[i] for i in sorted(set(present.tolist()) - trained)]
    return metrics, {"macro_f1_classes": [id2label[int(i)] for i in present], "test_missing_classes": missing,
                     "train_missing_classes": unseen}


def _remove_if_empty(folder: Path) -> None:
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()

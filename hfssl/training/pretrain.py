"""Pretraining with the Hugging Face Trainer, as a sequence of small named steps.

Everything that can fail on bad input (data, tokenizer, config) runs before the run directory is touched.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from transformers import PreTrainedModel, Trainer, set_seed

from ..data.collators import build_collator
from ..data.corpora import stdlib_docstrings_dataset
from ..data.packing import tokenize_and_pack
from ..data.text import load_text_dataset, texts_for_tokenizer
from ..data.tokenizer import check_tokenizer_fits, default_tokenizer_kind, load_tokenizer, train_tokenizer
from .arguments import DataArguments, ModelArguments, RunArguments
from .environment import hardware, versions
from .objectives import Objective, get_objective
from .rundir import RunDirectory, check_can_start, open_run
from .training_args import PretrainingArguments

logger = logging.getLogger(__name__)

BUILTIN_CORPORA = {"stdlib-docstrings": "docstrings of the Python standard library (ships with every Python)"}
SECRET_ARGUMENTS = ("hub_token", "push_to_hub_token")


@dataclasses.dataclass
class PretrainResult:
    """What a finished pretraining run hands back: where it is and its manifest."""

    run: RunDirectory
    manifest: dict[str, Any]


def pretrain(
    model_args: ModelArguments,
    data_args: DataArguments,
    run_args: RunArguments,
    training_args: PretrainingArguments,
) -> PretrainResult:
    """Pretrain a text model end to end and return the finished run directory."""
    objective = get_objective(model_args.objective)
    run_path = resolve_run_path(run_args, training_args)
    check_can_start(run_path, run_args.overwrite, run_args.resume)
    if data_args.streaming and training_args.max_steps <= 0:
        raise ValueError("A streamed corpus has no length: pass --max-steps N with --streaming.")
    set_seed(training_args.seed)
    raw, data_description = load_corpus(data_args, training_args.seed)
    tokenizer, tokenizer_description = prepare_tokenizer(model_args, objective, raw, data_args, run_path, run_args)
    model = build_model(model_args, objective, tokenizer, data_args.block_size)
    check_tokenizer_fits(tokenizer, model.config.vocab_size, objective.name)
    packed = tokenize_and_pack(
        raw, tokenizer, data_args.block_size, objective.name, num_proc=data_args.preprocessing_num_workers
    )
    with open_run(run_path, run_args.overwrite, run_args.resume) as run:
        trainer = build_trainer(model, tokenizer, packed, objective, data_args, training_args, run)
        stats = train(trainer, run, resume=run_args.resume)
        run.save_model(trainer.model, tokenizer)
        manifest = run.update_manifest(
            **describe_run(objective, trainer, data_description, tokenizer_description, stats,
                           model_args, data_args, run_args, training_args, packed)
        )
    return PretrainResult(run=run, manifest=manifest)


def resolve_run_path(run_args: RunArguments, training_args: PretrainingArguments) -> Path:
    """The run directory: `--output`, else a user-given `--output_dir`."""
    path = run_args.output or training_args.output_dir
    if not path:
        raise ValueError("Say where the run goes: --output runs/<name>.")
    return Path(path)


def load_corpus(data_args: DataArguments, seed: int):
    """Train/validation text splits and their description for run.json; knows the built-in corpora."""
    if data_args.dataset not in BUILTIN_CORPORA:
        return load_text_dataset(data_args, seed=seed)
    dataset = stdlib_docstrings_dataset()
    if data_args.max_train_examples:
        dataset = dataset.select(range(min(data_args.max_train_examples, len(dataset))))
    splits = dataset.train_test_split(test_size=data_args.validation_fraction, seed=seed)
    splits["validation"] = splits.pop("test")
    description = {
        "source": data_args.dataset,
        "description": BUILTIN_CORPORA[data_args.dataset],
        "format": "builtin",
        "text_column": "text",
        "train_rows": len(splits["train"]),
        "validation_rows": len(splits["validation"]),
        "streaming": False,
        "fingerprint": dataset._fingerprint,
    }
    return splits, description


def prepare_tokenizer(model_args, objective: Objective, raw, data_args, run_path: Path, run_args: RunArguments):
    """The run's tokenizer: the checkpoint's when resuming, a given one, the init model's, or one trained here."""
    if run_args.resume:
        checkpoint = RunDirectory(run_path).last_checkpoint()
        return load_tokenizer(checkpoint), {"source": "checkpoint", "path": checkpoint}
    source = model_args.tokenizer or model_args.init_from and resolve_init_path(model_args.init_from)
    if source:
        tokenizer = load_tokenizer(str(source))
        return tokenizer, {"source": str(source), "vocab_size": len(tokenizer)}
    kind = model_args.tokenizer_type or default_tokenizer_kind(objective.name)
    logger.info("Training a %s tokenizer with %d tokens on the corpus", kind, model_args.vocab_size)
    tokenizer = train_tokenizer(
        texts_for_tokenizer(raw["train"]), kind=kind, vocab_size=model_args.vocab_size,
        model_max_length=data_args.block_size,
    )
    return tokenizer, {"source": "trained on the training split", "kind": kind, "vocab_size": len(tokenizer)}


def resolve_init_path(init_from: str) -> str:
    """A run directory means its model/ folder; anything else (folder, Hub id) is passed on as is."""
    run = RunDirectory(init_from)
    return str(run.model_dir) if run.model_dir.is_dir() else init_from


def build_model(model_args: ModelArguments, objective: Objective, tokenizer, block_size: int) -> PreTrainedModel:
    """A fresh model from a size preset and overrides, or an existing checkpoint (continued pretraining)."""
    if model_args.init_from:
        source = resolve_init_path(model_args.init_from)
        logger.info("Continuing pretraining from %s", source)
        return objective.auto_class.from_pretrained(source)
    overrides = {
        "vocab_size": len(tokenizer),
        "max_position_embeddings": max(512, block_size),
        "is_causal": objective.causal,
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.cls_token_id,
        "eos_token_id": tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id,
        **parse_overrides(model_args.config_overrides, objective.config_class),
    }
    config = objective.config_class.from_size(model_args.model_size, **overrides)
    return objective.model_class(config)


def parse_overrides(text: str | None, config_class) -> dict[str, Any]:
    """'a=1,b=true,c=gelu' -> {'a': 1, 'b': True, 'c': 'gelu'}, checked against the config's fields."""
    if not text:
        return {}
    known = config_class().to_dict()
    overrides = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in known:
            valid = ", ".join(sorted(k for k in known if not k.startswith("_")))
            raise ValueError(f"Bad --config-overrides item {item!r}: use field=value with a field among: {valid}.")
        overrides[key] = _parse_value(value.strip(), known[key])
    return overrides


def _parse_value(value: str, like: Any) -> Any:
    if isinstance(like, bool):
        if value.lower() not in ("true", "false", "1", "0"):
            raise ValueError(f"Expected true or false, got {value!r} in --config-overrides.")
        return value.lower() in ("true", "1")
    for kind in (int, float):
        if isinstance(like, kind):
            try:
                return kind(value)
            except ValueError:
                raise ValueError(f"Expected a {kind.__name__}, got {value!r} in --config-overrides.") from None
    return None if value.lower() == "none" else value


def build_trainer(model, tokenizer, packed, objective, data_args, training_args, run: RunDirectory) -> Trainer:
    """The HF Trainer writing checkpoints and logs under <run>/checkpoints."""
    training_args.output_dir = str(run.checkpoints_dir)
    collator = build_collator(objective.name, tokenizer, data_args.mlm_probability, seed=training_args.seed)
    return Trainer(
        model=model,
        args=training_args,
        train_dataset=packed["train"],
        eval_dataset=packed["validation"],
        data_collator=collator,
        processing_class=tokenizer,
    )


def train(trainer: Trainer, run: RunDirectory, resume: bool) -> dict[str, Any]:
    """Evaluate, train (or resume), evaluate again; returns the numbers run.json keeps."""
    before = None if resume else trainer.evaluate()
    checkpoint = run.last_checkpoint() if resume else None
    start = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=checkpoint)
    wall = time.perf_counter() - start
    after = trainer.evaluate()
    tokens = int(trainer.state.num_input_tokens_seen or 0)
    return {
        "steps": trainer.state.global_step,
        "wall_time_s": round(wall, 2),
        "tokens_seen": tokens,
        "tokens_per_second": round(tokens / wall, 1) if wall > 0 and not resume else None,
        "train_loss": result.training_loss,
        "eval_loss_before": before["eval_loss"] if before else None,
        "perplexity_before": _perplexity(before["eval_loss"]) if before else None,
        "eval_loss": after["eval_loss"],
        "perplexity": _perplexity(after["eval_loss"]),
        "resumed_from": checkpoint,
        "log_history": trainer.state.log_history,
    }


def _perplexity(loss: float) -> float:
    return math.exp(loss) if loss < 50 else float("inf")


def describe_run(objective, trainer, data_description, tokenizer_description, stats, model_args, data_args,
                 run_args, training_args, packed) -> dict[str, Any]:
    """The sections this stage adds to run.json."""
    model = trainer.model
    training = {k: v for k, v in training_args.to_dict().items() if k not in SECRET_ARGUMENTS}
    blocks = {split: _length(packed[split]) for split in ("train", "validation")}
    return {
        "format_version": 1,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "stage": "pretrain",
        "objective": objective.name,
        "modality": objective.modality,
        "model": {
            "class": type(model).__name__,
            "parameters": sum(p.numel() for p in model.parameters()),
            "init_from": model_args.init_from,
            "config": model.config.to_diff_dict(),
        },
        "tokenizer": tokenizer_description,
        "data": {**data_description, "block_size": data_args.block_size, "blocks": blocks},
        "arguments": {
            "model": dataclasses.asdict(model_args),
            "data": dataclasses.asdict(data_args),
            "run": dataclasses.asdict(run_args),
            "training": training,
        },
        "seed": training_args.seed,
        "versions": versions(),
        "hardware": hardware(),
        "pretrain": stats,
    }


def _length(dataset) -> int | None:
    try:
        return len(dataset)
    except TypeError:  # streamed
        return None

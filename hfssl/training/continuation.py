"""Continuing from an earlier run: `--init-from` under any objective of its modality, and the checks that keep
`--resume` on the checkpoint's own objective and model. Runs before the run directory is touched.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, PreTrainedModel

from ..data.in_memory import SOURCE_PREFIX
from ..data.tokenizer import load_tokenizer
from .distributed import is_main_process
from .init_from import (
    HFSSL_MODALITY,
    check_stock_objective,
    checkpoint_modality,
    init_source,
    load_stock_model,
    resolve_init_path,
    stock_objectives,
)
from .objectives import OBJECTIVES, Objective
from .rundir import RunDirectory, write_json_atomic

logger = logging.getLogger(__name__)


def load_init_model(objective: Objective, init_from: str, config_extra: dict[str, Any] | None = None,
                    block_size: int | None = None):
    """The checkpoint to continue pretraining from, under the objective's head.

    An hfssl checkpoint (any head) loads into the objective's class, with `config_extra` (the objective's
    method and hybrid weight) and the objective's attention (causal or not) set on its config, so an MLM run can
    continue as simcse, mlm+simcse or clm: the backbone (and an MLM head) start from the checkpoint, new heads
    start fresh. Another checkpoint (a stock BERT, GPT-2, ViT-MAE) goes through the objective's Auto class
    (`load_stock_model`, which checks its attention and, for text, that it takes `block_size` positions).
    """
    source = init_source(init_from)
    logger.info("Continuing pretraining from %s", source)
    config = AutoConfig.from_pretrained(source)
    if config.model_type == objective.config_class.model_type:
        config = objective.config_class.from_pretrained(source)
        apply_objective_fields(config, objective, config_extra or {})
        # The backbone's shape is the checkpoint's own; only heads can differ (a BYOL projector continued as
        # SimCLR's): those start fresh.
        model, info = objective.model_class.from_pretrained(source, config=config, output_loading_info=True,
                                                            ignore_mismatched_sizes=True)
        start_decoder_from_embeddings(model, set(info["missing_keys"]))
        return model
    check_stock_objective(config, objective, init_from, stock_objectives(config, checkpoint_modality(config)))
    return load_stock_model(objective, source, init_from, block_size)


def start_decoder_from_embeddings(model: PreTrainedModel, missing: set[str]) -> None:
    """A masked-LM checkpoint stores its output layer as the token embeddings (tied), which the hybrid's
    own MLM decoder (objective mlm+simcse) does not read: start that decoder from the embeddings, as the
    masked LM predicted with them, rather than from random weights."""
    decoder = getattr(getattr(model, "lm_head", None), "decoder", None)
    if decoder is None or "lm_head.decoder.weight" not in missing or not model.config.tie_word_embeddings:
        return
    embeddings = model.get_input_embeddings().weight
    if decoder.weight is not embeddings and decoder.weight.shape == embeddings.shape:
        with torch.no_grad():
            decoder.weight.copy_(embeddings)


def apply_objective_fields(config, objective: Objective, config_extra: dict[str, Any]) -> None:
    """Set the objective's config fields on a loaded checkpoint's config.

    The method's settings recorded in the checkpoint are kept when it continues with the same method (the
    options given now win); a hybrid weight the objective does not use is set to 0, so a continued
    mlm+simcse run trained as simcse drops its MLM head. Next-token objectives get causal attention and masked ones
    bidirectional attention (a masked LM continued as clm would otherwise read the tokens it predicts); SimCSE
    keeps the checkpoint's."""
    causal = True if objective.causal else False if objective.collator == "mlm" else None  # None: the checkpoint's
    if causal is not None and getattr(config, "is_causal", causal) != causal:
        # pooling follows the attention unless it was chosen (config.pooling's default is "last" for causal models)
        if config.pooling == ("last" if config.is_causal else "mean"):
            config.pooling = "last" if causal else "mean"
        config.is_causal = causal
    if objective.method is not None:
        for hybrid in {o.hybrid for o in OBJECTIVES.values() if o.hybrid and o.hybrid != objective.hybrid}:
            if hasattr(config, f"{hybrid}_weight"):
                setattr(config, f"{hybrid}_weight", 0.0)
    for key, value in config_extra.items():
        previous = getattr(config, key, None)
        if key == "ssl" and isinstance(previous, dict) and previous.get("method") == value.get("method"):
            value = {**previous, **value}
        setattr(config, key, value)


# Bookkeeping that save_pretrained writes, not part of what the model is.
NOT_MODEL_FIELDS = frozenset({"architectures", "auto_map", "transformers_version", "dtype", "torch_dtype",
                              "_name_or_path"})


def checkpoint_objective(config) -> str | None:
    """The objective a checkpoint was trained with, read from its head class, its method (config.ssl) and its
    hybrid weight; for a stock model, the objective whose Auto class gives its head class. None when no objective
    matches."""
    architectures = getattr(config, "architectures", None) or []
    if config.model_type not in HFSSL_MODALITY:
        return next((o for o in stock_objectives(config, checkpoint_modality(config))
                     if OBJECTIVES[o].auto_class._model_mapping[type(config)].__name__ in architectures), None)
    ssl = getattr(config, "ssl", None)
    method = ssl.get("method") if isinstance(ssl, dict) else None
    hybrids = {o.hybrid for o in OBJECTIVES.values() if o.hybrid}
    weighted = {h for h in hybrids if float(getattr(config, f"{h}_weight", 0.0) or 0.0) > 0}
    for objective in OBJECTIVES.values():
        if objective.model_class.__name__ not in architectures:
            continue
        if objective.method is None or (
                objective.method == method and weighted == ({objective.hybrid} if objective.hybrid else set())):
            return objective.name
    return None


def check_resume_objective(objective: Objective, checkpoint: str) -> None:
    """Refuse to resume a checkpoint under another objective than the one it was trained with."""
    if not (Path(checkpoint) / "config.json").is_file():
        return
    config = AutoConfig.from_pretrained(checkpoint)
    trained = checkpoint_objective(config)
    if trained is None and config.model_type == objective.config_class.model_type:
        return  # a head hfssl does not know as an objective: the model check after building decides
    if trained != objective.name:
        what = f"objective {trained!r}" if trained else f"a {config.model_type!r} model"
        run = Path(checkpoint).parent.parent
        fix = f"resume with --objective {trained}, or " if trained else ""
        raise ValueError(
            f"--resume: the checkpoint {checkpoint} was trained with {what}, not {objective.name!r}. To continue it, "
            f"{fix}start a new run from it: --init-from {run} --objective {objective.name} --output <new run>."
        )


def check_matches_checkpoint(model: PreTrainedModel, checkpoint: str) -> None:
    """Refuse to resume when the model these flags build differs from the checkpoint's, naming the fields."""
    if not (Path(checkpoint) / "config.json").is_file():
        return
    saved = type(model.config).from_pretrained(checkpoint).to_dict()
    built = model.config.to_dict()
    keys = (saved.keys() | built.keys()) - NOT_MODEL_FIELDS
    differing = sorted(k for k in keys if saved.get(k) != built.get(k))
    if differing:
        fields = "; ".join(f"{k}: {saved.get(k)!r} in the checkpoint, {built.get(k)!r} from these flags"
                           for k in differing)
        raise ValueError(
            f"--resume: the model these flags build differs from the checkpoint {checkpoint} ({fields}). Resume with "
            "the run's own model flags (--model-size, --config-overrides, --method-options, --block-size as first "
            "given), or start a new run from it with --init-from."
        )


def check_same_vocabulary(tokenizer, init_from: str, given: str) -> None:
    """Refuse a --tokenizer whose ids mean other tokens than those the --init-from model's embeddings learned."""
    source = resolve_init_path(init_from)
    try:
        own = load_tokenizer(source)
    except (OSError, ValueError):
        return  # the checkpoint has no tokenizer of its own to compare with
    if own.get_vocab() != tokenizer.get_vocab():
        raise ValueError(
            f"--tokenizer {given} is not the tokenizer of --init-from {init_from} ({len(tokenizer):,} against "
            f"{len(own):,} tokens, or the same tokens under other ids): the model's embeddings would be read with "
            "the wrong ids. Leave out --tokenizer to continue with the model's own."
        )


# What a run's data description says about the rows it trains on; a resumed run must see the same rows, since the
# Trainer skips the batches the checkpoint already took, counted in the order of the first data.
DATA_IDENTITY = ("text_column", "image_column", "train_rows", "validation_rows", "block_size", "streaming")
DATA_RECORD = "data.json"  # in the run's checkpoints folder


# Training flags a resumed run cannot change. The Trainer skips global_step x (batch x processes x accumulation)
# examples of the sampler's order (drawn from the data seed): another global batch or seed would repeat some
# examples and never show others. The optimizer and scheduler states come from the checkpoint, so another learning
# rate, schedule or warm-up would be silently ignored.
SCHEDULE_IDENTITY = ("examples_per_step", "data_seed", "learning_rate", "lr_scheduler_type", "warmup_steps")


def training_identity(training_args) -> dict[str, Any]:
    """The values of SCHEDULE_IDENTITY for `training_args` (a TrainingArguments)."""
    return {
        "examples_per_step": training_args.per_device_train_batch_size * training_args.world_size
        * training_args.gradient_accumulation_steps,
        "data_seed": training_args.data_seed if training_args.data_seed is not None else training_args.seed,
        "learning_rate": training_args.learning_rate,
        "lr_scheduler_type": str(getattr(training_args.lr_scheduler_type, "value", training_args.lr_scheduler_type)),
        "warmup_steps": training_args.warmup_steps,
    }


def record_run_data(run: RunDirectory, description: dict[str, Any], init_from: str | None = None,
                    training_args=None) -> None:
    """Keep what identifies the run's data, the weights it started from and (with `training_args`) its batch order
    and schedule beside its checkpoints, for `check_resume_data` and `resume_init_from` (main process)."""
    if not is_main_process():
        return
    record = {key: description.get(key) for key in (*DATA_IDENTITY, "fingerprint", "source")}
    record["init_from"] = _comparable(init_from)
    if training_args is not None:
        record.update(training_identity(training_args))
    run.checkpoints_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(run.checkpoints_dir / DATA_RECORD, record)


def check_resume_data(run: RunDirectory, description: dict[str, Any]) -> None:
    """Refuse to resume on other data than the run started on, naming what differs.

    Local text files are compared by their contents' fingerprint too, and in-memory `datasets` objects by theirs
    (`Dataset._fingerprint`, which follows their rows and transforms); other sources' fingerprints change with file
    times and paths, so for those only the columns, row counts and block size are compared."""
    path = run.checkpoints_dir / DATA_RECORD
    if not path.is_file():
        return  # a run from before hfssl kept this record
    then = json.loads(path.read_text(encoding="utf-8"))
    differing = [key for key in DATA_IDENTITY if then.get(key) != description.get(key)]
    compared = _fingerprint_meaning(description) or _fingerprint_meaning(then)
    if compared and then.get("fingerprint") != description.get("fingerprint"):
        differing.append(f"fingerprint ({compared})")
    if not differing:
        return
    changes = "; ".join(
        f"{key}: {then.get(key)!r} then, {description.get(key)!r} now" if key in DATA_IDENTITY else key
        for key in differing
    )
    raise ValueError(
        f"--resume: the data these flags load differs from the data {run.path} started on ({changes}); the run "
        f"would continue counting batches of the first data. Resume with the run's own data flags (--train-files, "
        f"--dataset (from Python: the same in-memory data set), --max-train-examples, --text-column, --block-size as "
        f"first given), or train on the new data "
        f"in a new run from its weights: --init-from {run.path} --output <new run>."
    )


def _fingerprint_meaning(description: dict[str, Any]) -> str | None:
    """What a data description's fingerprint stands for, where it identifies the data; None where it does not."""
    source = description.get("source")
    if isinstance(source, list):
        return "the files' contents"
    if isinstance(source, str) and source.startswith(SOURCE_PREFIX):
        return "the in-memory data set's rows"
    return None


def check_resume_schedule(run: RunDirectory, training_args) -> None:
    """Refuse to resume with another global batch, data seed, learning rate, schedule or warm-up than the run
    started with, naming what differs (runs from before hfssl recorded these are not checked)."""
    path = run.checkpoints_dir / DATA_RECORD
    then = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    now = training_identity(training_args)
    differing = [key for key in SCHEDULE_IDENTITY if key in then and then[key] != now[key]]
    if not differing:
        return
    changes = "; ".join(f"{key}: {then[key]!r} then, {now[key]!r} now" for key in differing)
    order = {"examples_per_step", "data_seed"} & set(differing)
    why = ("the Trainer skips the examples the checkpoint took, counted in the first run's batches and order, so "
           "some would be seen twice and others never" if order else
           "the optimizer and the learning-rate schedule continue from the checkpoint's state, which would ignore "
           "the new values")
    raise ValueError(
        f"--resume: these flags train differently from how {run.path} started ({changes}); {why}. Resume with the "
        "run's own --per-device-train-batch-size x processes x --gradient-accumulation-steps, --seed/--data-seed, "
        "--learning-rate, --lr-scheduler-type and --warmup-steps (run.json records them), or start a new run "
        f"from its weights: --init-from {run.path} --output <new run>."
    )


def _comparable(init_from: str | None) -> str | None:
    """`init_from` as an absolute path where it names a local folder (runs resume from any directory)."""
    return os.path.abspath(init_from) if init_from and os.path.exists(init_from) else init_from


def resume_init_from(run: RunDirectory, init_from: str | None) -> str | None:
    """The `--init-from` the run started with, which a resumed run keeps (its weights come from the checkpoint,
    so that source is not read again); refuses another one. Returns `init_from` for a run from before hfssl
    recorded it."""
    path = run.checkpoints_dir / DATA_RECORD
    then = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    if "init_from" not in then or _comparable(init_from) == then["init_from"]:
        return init_from
    if init_from is None:
        return then["init_from"]
    started = f"from --init-from {then['init_from']}" if then["init_from"] else "from a fresh model (no --init-from)"
    raise ValueError(
        f"--resume: the run {run.path} started {started}, not from --init-from {init_from}. --resume continues the "
        f"run's own checkpoint (weights, optimizer, step); drop --init-from. To train {init_from}'s weights, start a "
        f"new run: --init-from {init_from} --output <new run>."
    )

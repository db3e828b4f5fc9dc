"""Pretraining with the Hugging Face Trainer, as a sequence of small named steps.

Everything that can fail on bad input (data, tokenizer, config) runs before the run directory is touched.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import logging
import math
import signal
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from torch import nn
from transformers import set_seed

from ..data.in_memory import is_in_memory, source_name
from .arguments import DataArguments, ModelArguments, RunArguments
from .callbacks import (
    TimeBudgetCallback,
    add_monitor_callbacks,
    build_monitors,
    load_probe_data,
)
from .continuation import (
    check_resume_data,
    check_resume_schedule,
    record_run_data,
    resume_init_from,
)
from .environment import hardware, versions
from .objectives import Objective, get_objective
from .rundir import RunDirectory, check_can_start, open_run
from .setup import Prepared, dataset_length, prepare
from .ssl_trainer import MomentumCallback, SSLTrainer
from .training_args import PretrainingArguments

logger = logging.getLogger(__name__)

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
    """Pretrain a model end to end and return the finished run directory.

    `training_args` is left as given (the run works on a copy whose `output_dir` is <run>/checkpoints and whose
    batch settings suit the objective), so one object can serve several runs in a process."""
    training_args = copy.copy(training_args)
    objective = get_objective(model_args.objective)
    run_path = resolve_run_path(run_args, training_args)
    check_can_start(run_path, run_args.overwrite, run_args.resume)
    if data_args.streaming and objective.modality == "text" and training_args.max_steps <= 0:
        raise ValueError("A streamed corpus has no length: pass --max-steps N with --streaming.")
    check_batch_size(objective, training_args)
    if run_args.max_time_s != 0:  # checked before the run directory is touched
        TimeBudgetCallback.validate(run_args.max_time_s)
    set_seed(training_args.seed)
    resume_checkpoint = RunDirectory(run_path).resumable_checkpoint() if run_args.resume else None
    if resume_checkpoint:
        check_not_finished(resume_checkpoint, training_args)
        model_args = dataclasses.replace(model_args, init_from=resume_init_from(RunDirectory(run_path),
                                                                                model_args.init_from))
    prepared = prepare(weights_from(model_args, resume_checkpoint), data_args, objective, training_args.seed,
                       resume_checkpoint, min_validation_rows=validation_rows_needed(objective, training_args))
    check_split_sizes(objective, prepared, training_args, run_args)
    if resume_checkpoint:
        check_resume_data(RunDirectory(run_path), prepared.data)
        check_resume_schedule(RunDirectory(run_path), training_args)
    probe_data = load_run_probe_data(run_args, prepared, data_args)
    with stop_on_sigterm(), open_run(run_path, run_args.overwrite, run_args.resume) as run:
        if not resume_checkpoint:
            record_run_data(run, prepared.data, model_args.init_from, training_args)
        trainer = build_trainer(prepared, training_args, run)
        monitors = attach_monitors(trainer, prepared, run_args, probe_data, training_args.seed)
        stats = train(trainer, resume_checkpoint, objective.modality == "text", language_model=objective.method is None)
        guard = monitors[-1]
        if guard.tripped:  # the weights in memory are broken: keep the checkpoints, save nothing else
            raise FloatingPointError(guard.message)
        stats["monitors"] = {MONITOR_KEYS[type(m).__name__]: m.summary() for m in monitors}
        run.save_model(trainer.model, prepared.processor, state_dict=engine_state_dict(trainer))
        manifest = run.update_manifest(
            **describe_run(objective, trainer, prepared, stats, model_args, data_args, run_args, training_args)
        )
    return PretrainResult(run=run, manifest=manifest)


@contextlib.contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """While the run directory is open, SIGTERM (`kill`, a scheduler's stop) ends the run as Ctrl-C does: the run
    directory is cleaned up (a new run without a complete checkpoint is removed, a half-written model/ is not left
    behind), the message names the checkpoint to --resume from, and the process exits with status 143 (128 + 15).
    Without this, SIGTERM kills the process on the spot and leaves a run that can neither resume nor start again.

    Only where SIGTERM still has its default action, in the main thread: a handler someone else installed (a
    launcher, the Trainer's --enable-jit-checkpoint, which saves a checkpoint on SIGTERM) is left alone. A second
    SIGTERM kills at once."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        yield
        return

    def stop(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        logger.error("Received SIGTERM: stopping the run.")
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def weights_from(model_args: ModelArguments, resume_checkpoint: str | None) -> ModelArguments:
    """The model flags to build with: a resumed run that started from --init-from builds from its checkpoint (which
    the Trainer then loads), so the weights it started from are not read again (a Hub id stays offline)."""
    if resume_checkpoint and model_args.init_from:
        return dataclasses.replace(model_args, init_from=resume_checkpoint)
    return model_args


def check_not_finished(checkpoint: str, training_args: PretrainingArguments) -> None:
    """Refuse to resume a checkpoint that already reached --max-steps (or --num-train-epochs without it):
    the Trainer would train one more step and overwrite the finished run's results."""
    state_file = Path(checkpoint) / "trainer_state.json"
    if not state_file.is_file():
        return
    state = json.loads(state_file.read_text(encoding="utf-8"))
    step = int(state.get("global_step", 0))
    if training_args.max_steps > 0:
        if step >= training_args.max_steps:
            raise ValueError(
                f"--resume: {checkpoint} already finished at step {step} (--max-steps {training_args.max_steps}); "
                f"raise --max-steps above {step} to continue training it."
            )
    elif (epoch := float(state.get("epoch") or 0.0)) >= training_args.num_train_epochs:
        raise ValueError(
            f"--resume: {checkpoint} already finished {epoch:g} epochs (--num-train-epochs "
            f"{training_args.num_train_epochs:g}) at step {step}; raise --num-train-epochs or pass --max-steps "
            f"above {step} to continue training it."
        )


def engine_state_dict(trainer) -> dict | None:
    """The full weights where DeepSpeed holds them (ZeRO-3 partitions the parameters across processes):
    accelerate gathers them, a collective call that every process makes, and with our ZeRO-3 config
    (`stage3_gather_16bit_weights_on_model_save`) the main process gets them in 16 bit. None for every
    other engine: DDP's model is whole, and RunDirectory.save_model gathers FSDP2 itself."""
    if getattr(trainer, "is_deepspeed_enabled", False):
        return trainer.accelerator.get_state_dict(trainer.model_wrapped)
    return None


# What transformers puts in `output_dir` when none was given.
TRANSFORMERS_DEFAULT_OUTPUT_DIR = "trainer_output"


def resolve_run_path(run_args: RunArguments, training_args: PretrainingArguments) -> Path:
    """The run directory: `--output`, else a user-given `--output_dir`. With both, `--output` wins (checkpoints go
    to <run>/checkpoints), said with a warning when `--output_dir` names another folder."""
    output_dir = training_args.output_dir
    if output_dir == TRANSFORMERS_DEFAULT_OUTPUT_DIR:  # transformers' stand-in, not a choice of the user's
        output_dir = None
    if not run_args.output:
        if not output_dir:
            raise ValueError("Say where the run goes: --output runs/<name> (RunArguments(output='runs/<name>') "
                             "from Python).")
        return Path(output_dir)
    run_path = Path(run_args.output)
    if output_dir and Path(output_dir).resolve() not in (run_path.resolve(), (run_path / "checkpoints").resolve()):
        logger.warning("--output_dir %s is not used: the run goes to --output %s, its checkpoints to %s.",
                       output_dir, run_path, run_path / "checkpoints")
    return run_path


def check_batch_size(objective: Objective, training_args: PretrainingArguments) -> None:
    """Joint-embedding methods compare examples within a batch (negatives, batch norm, Sinkhorn)."""
    if objective.method is None:
        return
    if training_args.per_device_train_batch_size < 2:
        raise ValueError(
            f"Objective {objective.name!r} learns by comparing the examples of a batch; a batch of "
            f"{training_args.per_device_train_batch_size} has nothing to compare. Use "
            "--per-device-train-batch-size 2 or more (these methods are usually trained with 256 or more)."
        )
    # A last batch of one example would break batch norm and leave no negatives.
    training_args.dataloader_drop_last = True


def validation_rows_needed(objective: Objective, training_args: PretrainingArguments) -> int:
    """Validation rows the evaluation needs: a joint-embedding loss compares the examples of a batch (2 at least,
    one per process with several); other objectives evaluate on one."""
    return max(2, training_args.world_size) if objective.method is not None else 1


def check_split_sizes(objective: Objective, prepared: Prepared, training_args: PretrainingArguments,
                      run_args: RunArguments) -> None:
    """Refuse splits too small to train on, before the run directory is written: fewer training rows than one
    full batch when incomplete batches are dropped (the run would train 0 steps), fewer than 2 for the collapse
    monitor, or a validation split smaller than the evaluation needs."""
    train, validation = dataset_length(prepared.train_dataset), dataset_length(prepared.eval_dataset)
    if train is None or validation is None:  # streamed
        return
    unit = "images" if objective.modality == "image" else "documents" if objective.collator == "padding" else "blocks"
    world, batch = training_args.world_size, training_args.per_device_train_batch_size
    drop_last = training_args.dataloader_drop_last
    processes = f"{world} process{'es' if world > 1 else ''}"
    need_validation = validation_rows_needed(objective, training_args)
    need_train = batch * world if drop_last else 1
    smallest_train = (2 if objective.method is not None else 1) * world if drop_last else 1
    monitor_needs_more = bool(run_args.collapse_every) and smallest_train < 2
    if run_args.collapse_every:
        need_train, smallest_train = max(need_train, 2), max(smallest_train, 2)
    if train >= need_train and validation >= need_validation:
        return
    if train >= smallest_train and validation >= need_validation:  # a smaller batch fits
        raise ValueError(
            f"--per-device-train-batch-size {batch} x {processes} = {batch * world} {unit} per step, but the "
            f"training split has {train} ({validation} more held out for validation); objective {objective.name!r} "
            f"drops incomplete batches, so it would train 0 steps. Lower --per-device-train-batch-size to at most "
            f"{train // world}, or add {unit}."
        )
    reasons = [f"{need_validation} for validation" + (" (its loss compares the examples of a batch)"
                                                      if need_validation > 1 else "")]
    if drop_last and not monitor_needs_more:
        reasons.append(f"{smallest_train} for one full training batch (--per-device-train-batch-size "
                       f"{smallest_train // world} x {processes}; now {batch})")
    else:
        reasons.append(f"{smallest_train} to train on")
    if monitor_needs_more:
        reasons[-1] += " (the collapse monitor compares training examples; --collapse-every 0 turns it off)"
    fix = f"Add {unit}"
    if validation < need_validation:
        fix += (" (or give a larger validation set: --validation-files or --validation-split)"
                if objective.modality == "image" else " (or raise --validation-fraction, or give --validation-files)")
    raise ValueError(
        f"Too few {unit}: the training split has {train} and the validation split {validation}; objective "
        f"{objective.name!r} needs at least {need_validation + smallest_train}: " + ", and ".join(reasons)
        + f". {fix}."
    )


def build_trainer(prepared: Prepared, training_args: PretrainingArguments, run: RunDirectory) -> SSLTrainer:
    """The HF Trainer writing checkpoints and logs under <run>/checkpoints."""
    training_args.output_dir = str(run.checkpoints_dir)
    if prepared.views is not None:
        training_args.remove_unused_columns = False  # the images reach compute_loss as `pixel_values`
        training_args.include_num_input_tokens_seen = "no"  # it would count pixels
    trainer = SSLTrainer(
        model=sync_batch_norm(prepared.model, training_args),
        args=training_args,
        train_dataset=prepared.train_dataset,
        eval_dataset=prepared.eval_dataset,
        data_collator=prepared.collator,
        processing_class=prepared.processor,
        callbacks=[MomentumCallback()],
        views=prepared.views,
        eval_seed=training_args.seed,
    )
    log_tensorboard_under(trainer, run.checkpoints_dir)
    return trainer


def log_tensorboard_under(trainer, folder: Path) -> None:
    """Point the Trainer's TensorBoard writer at `folder`/<date>_<host> now, unless $TENSORBOARD_LOGGING_DIR
    chose a folder.

    transformers picks that folder only in on_train_begin, but the evaluation before training already logs,
    and a writer created then would write to ./runs in the current directory."""
    from transformers.integrations import TensorBoardCallback
    from transformers.integrations.integration_utils import default_logdir

    for callback in trainer.callback_handler.callbacks:
        if isinstance(callback, TensorBoardCallback) and callback.logging_dir is None:
            callback.logging_dir = str(Path(folder) / default_logdir())


def sync_batch_norm(model: nn.Module, training_args) -> nn.Module:
    """With several GPU processes, batch-norm layers (the projection heads of SimCLR, BYOL, SimSiam, SwAV and
    MoCo v3) take their statistics over the global batch, as the papers train them: per-process statistics
    shrink the batch the normalization sees, and in a contrastive loss they let the model match in-batch
    positives by the statistics they share. Converts in place (the state-dict keys stay the same). torch's
    SyncBatchNorm runs on accelerators only, so on CPU processes (gloo) the layers stay per process."""
    if training_args.world_size <= 1 or training_args.device.type not in ("cuda", "xpu", "hpu"):
        return model
    if not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        return model
    logger.info("Batch norm synchronized across %d processes (SyncBatchNorm).", training_args.world_size)
    return nn.SyncBatchNorm.convert_sync_batchnorm(model)


MONITOR_KEYS = {"OnlineProbeCallback": "online_probe", "CollapseMonitorCallback": "collapse",
                "TimeBudgetCallback": "time_budget", "NonFiniteLossGuard": "non_finite_loss"}


def load_run_probe_data(run_args: RunArguments, prepared: Prepared, data_args: DataArguments):
    """(examples, labels) of `--probe-dataset`, loaded and checked before the run directory is touched,
    or None without one."""
    if not run_args.probe_dataset:
        return None
    if run_args.probe_every < 1:
        raise ValueError(f"--probe-every {run_args.probe_every}: the online probe needs a step interval >= 1.")
    return load_probe_data(run_args.probe_dataset, prepared.model, label_column=run_args.probe_label_column,
                           text_column=run_args.probe_text_column, image_column=run_args.probe_image_column,
                           max_examples=run_args.probe_examples,
                           data_dir=data_args.data_dir if run_args.probe_dataset == data_args.dataset else None)


def attach_monitors(trainer: SSLTrainer, prepared: Prepared, run_args: RunArguments, probe_data, seed: int) -> list:
    """Online probe (with --probe-dataset), collapse monitor (unless --collapse-every 0) and the
    non-finite-loss guard (always, last), placed where every logger sees their values."""
    if run_args.collapse_every < 0:
        raise ValueError(f"--collapse-every {run_args.collapse_every}: use 0 to turn the monitor off, or N >= 1.")
    probes = tuple(p.strip() for p in run_args.probes.split(",") if p.strip())
    examples, labels = probe_data if probe_data is not None else (None, None)
    monitors = build_monitors(prepared.model, prepared.processor, train_dataset=prepared.train_dataset,
                              probe_examples=examples, probe_labels=labels, probe_every=run_args.probe_every,
                              probes=probes, collapse_every=run_args.collapse_every,
                              stop_on_collapse=run_args.stop_on_collapse, seed=seed)
    if run_args.max_time_s:  # before the guard, which stays last
        monitors.insert(len(monitors) - 1, TimeBudgetCallback(run_args.max_time_s))
    add_monitor_callbacks(trainer, *monitors)
    return monitors


def train(trainer: SSLTrainer, resume_checkpoint: str | None, text: bool, *, language_model: bool
          ) -> dict[str, Any]:
    """Evaluate, train (or resume), evaluate again; returns the numbers run.json keeps (tokens for `text`,
    images otherwise). Perplexity, exp(validation loss), only for a `language_model` objective (mlm, clm): a
    contrastive or hybrid loss is no token cross-entropy, and its exponential means nothing."""
    before = None if resume_checkpoint else trainer.evaluate()
    start = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=resume_checkpoint)
    wall = time.perf_counter() - start
    after = trainer.evaluate()
    tokens = int(trainer.state.num_input_tokens_seen or 0)
    stats = {
        "steps": trainer.state.global_step,
        "wall_time_s": round(wall, 2),
        "train_loss": result.training_loss,
        "eval_loss_before": before["eval_loss"] if before else None,
        "eval_loss": after["eval_loss"],
        "resumed_from": resume_checkpoint,
        "log_history": trainer.state.log_history,
    }
    if text:
        stats.update(tokens_seen=tokens, tokens_per_second=round(tokens / wall, 1) if not resume_checkpoint else None)
        if language_model:
            stats.update(perplexity_before=_perplexity(before["eval_loss"]) if before else None,
                         perplexity=_perplexity(after["eval_loss"]))
    else:
        rows = dataset_length(trainer.train_dataset)
        images = (images_trained(trainer.state.global_step, rows, trainer.args) if rows is not None else  # streamed
                  trainer.state.global_step * trainer.args.train_batch_size * trainer.args.world_size
                  * trainer.args.gradient_accumulation_steps)
        stats.update(images_seen=images, images_per_second=round(images / wall, 1) if not resume_checkpoint else None)
    signals = [e for e in trainer.state.log_history if "embedding_std" in e]
    if signals:
        stats.update(embedding_std_first=signals[0]["embedding_std"], embedding_std=signals[-1]["embedding_std"])
    return stats


def images_trained(steps: int, rows: int, args) -> int:
    """Images the first `steps` optimizer steps trained on (all processes), by the Trainer's epoch structure:
    batches of `train_batch_size` per process, `gradient_accumulation_steps` of them per step (fewer for the
    last step of an epoch), the last incomplete batch dropped with `dataloader_drop_last` or kept smaller."""
    per_batch = args.train_batch_size * args.world_size
    batches = rows // per_batch if args.dataloader_drop_last else math.ceil(rows / per_batch)
    per_epoch = min(rows, batches * per_batch)
    steps_per_epoch = max(math.ceil(batches / args.gradient_accumulation_steps), 1)
    epochs, partial = divmod(steps, steps_per_epoch)
    return epochs * per_epoch + min(partial * args.gradient_accumulation_steps * per_batch, per_epoch)


def _perplexity(loss: float) -> float:
    return math.exp(loss) if loss < 50 else float("inf")


def recorded_data_arguments(data_args: DataArguments) -> dict[str, Any]:
    """`data_args` for run.json: an in-memory `datasets` object is recorded by its kind, as the data section names
    it (its rows are not JSON, and the data section holds its fingerprint)."""
    if is_in_memory(data_args.dataset):
        data_args = dataclasses.replace(data_args, dataset=source_name(data_args.dataset))
    return dataclasses.asdict(data_args)


def describe_run(objective: Objective, trainer, prepared: Prepared, stats, model_args, data_args, run_args,
                 training_args) -> dict[str, Any]:
    """The sections this stage adds to run.json."""
    model = trainer.model
    training = {k: v for k, v in training_args.to_dict().items() if k not in SECRET_ARGUMENTS}
    processor_key = "tokenizer" if objective.modality == "text" else "image_processor"
    return {
        "format_version": 1,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "stage": "pretrain",
        "objective": objective.name,
        "modality": objective.modality,
        "model": {
            "class": type(model).__name__,
            "parameters": sum(p.numel() for p in model.parameters()),
            "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "init_from": model_args.init_from,
            "config": model.config.to_diff_dict(),
        },
        processor_key: prepared.processor_description,
        "data": prepared.data,
        "arguments": {
            "model": dataclasses.asdict(model_args),
            "data": recorded_data_arguments(data_args),
            "run": dataclasses.asdict(run_args),
            "training": training,
        },
        "seed": training_args.seed,
        "versions": versions(),
        "hardware": hardware(),
        "pretrain": stats,
    }

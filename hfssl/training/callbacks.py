"""Training monitors: TrainerCallbacks that observe and schedule, never touching the loss.

- `OnlineProbeCallback`: kNN and/or linear-probe accuracy on a held-out labelled set every N steps.
- `CollapseMonitorCallback`: std of l2-normalized features and their effective rank on a fixed batch
  every N steps; warns below a threshold and can stop training.
- `NonFiniteLossGuard`: stops at the first NaN/inf training loss and skips the checkpoint that step
  would have saved, so the newest checkpoint on disk is the last good one.

Values reach the Trainer's logs (`state.log_history`, TensorBoard, the console) and each callback's
`summary()`, a dict for run.json. A monitor computes in `on_step_end`, asks the Trainer to log that
step (`control.should_log`), and adds its values to that log in `on_log`. Loggers see them only when
the monitor runs before them: add monitors with `add_monitor_callbacks(trainer, ...)`, which places
them right after the Trainer's flow callback (`Trainer(callbacks=[...])` appends them after the
reporting integrations, so TensorBoard would miss the values; log_history still gets them).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import (
    DefaultFlowCallback,
    TrainerCallback,
    TrainerControl,
    TrainerState,
    TrainingArguments,
)
from transformers.trainer_utils import get_last_checkpoint

from ..evaluation.features import (
    Examples,
    InputEncoder,
    encoder_features,
    extract_features,
    input_encoder,
)
from ..evaluation.metrics import effective_rank
from ..evaluation.probes import knn_probe, linear_probe

logger = logging.getLogger(__name__)

PROBES = ("knn", "linear")


def add_monitor_callbacks(trainer: Any, *callbacks: TrainerCallback) -> None:
    """Add `callbacks` right after the Trainer's DefaultFlowCallback, before TensorBoard and the other
    reporting callbacks, so the values they add to a log reach every logger, and so their
    `on_step_end` decisions come after the default flow's (e.g. a skipped save is not re-enabled)."""
    handler = trainer.callback_handler
    flow = next((i for i, cb in enumerate(handler.callbacks) if isinstance(cb, DefaultFlowCallback)), -1)
    for offset, callback in enumerate(callbacks):
        handler.callbacks.insert(flow + 1 + offset, callback)


class LoggingMonitor(TrainerCallback):
    """Base of the monitors: `publish` values at a step; they join that step's Trainer log."""

    def __init__(self, every: int):
        if every < 1:
            raise ValueError(f"every={every} must be >= 1 (measure every N optimizer steps).")
        self.every = every
        self.history: list[dict[str, float]] = []
        self._pending: dict[str, float] = {}

    def due(self, state: TrainerState) -> bool:
        return state.global_step > 0 and state.global_step % self.every == 0

    def publish(self, state: TrainerState, control: TrainerControl, values: Mapping[str, float]) -> None:
        """Record `values` for this step and make the Trainer log this step, with them in it."""
        self.history.append({"step": state.global_step, **values})
        self._pending.update(values)
        control.should_log = True

    def on_log(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, logs=None, **kwargs):
        if not self._pending or logs is None:
            return
        logs.update(self._pending)  # later callbacks (TensorBoard, console) read this dict
        if state.log_history:
            state.log_history[-1].update(self._pending)  # the Trainer appended a copy before calling on_log
        self._pending = {}

    def last(self) -> dict[str, float]:
        return dict(self.history[-1]) if self.history else {}

    def measure(self, model: nn.Module) -> dict[str, float]:
        raise NotImplementedError

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        """The starting point (step 0, or the resumed step): kept in `history`, not logged."""
        if model is not None and not any(h["step"] == state.global_step for h in self.history):
            self.history.append({"step": state.global_step, **self.measure(model)})

    def on_train_end(self, args, state, control, model=None, **kwargs):
        """The end point, when the last step was not a measured one: kept in `history`, not logged."""
        if model is not None and not any(h["step"] == state.global_step for h in self.history):
            self.history.append({"step": state.global_step, **self.measure(model)})


# ---------------------------------------------------------------------------------------------- online probe


def _stratified_halves(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    _, counts = np.unique(labels, return_counts=True)
    stratify = labels if counts.min() >= 2 else None
    train, test = train_test_split(np.arange(len(labels)), test_size=test_fraction, random_state=seed, stratify=stratify)
    return np.sort(train), np.sort(test)


class OnlineProbeCallback(LoggingMonitor):
    """kNN (`probe_knn_acc`) and/or linear-probe (`probe_linear_acc`) accuracy of the model's frozen
    features on a held-out labelled set, every `every` optimizer steps.

    Args:
        examples: (n,) texts or (n, c, h, w) uint8 pixels; labels: (n,) class ids. Split once (stratified)
            into a probe-train part (kNN memory bank, probe fit) and a probe-test part (`test_fraction`).
        to_inputs: turns a slice of examples into model inputs (`hfssl.evaluation.features.input_encoder`).
        probes: any of "knn", "linear". k: neighbours of the kNN. c: inverse L2 strength of the linear
            probe (fixed: no validation search during training).
        pooling: None uses the model's `get_features`; "mean"/"cls"/"pooler_output" for stock models.
    """

    def __init__(
        self,
        examples: Examples,
        labels: Sequence[int] | np.ndarray,
        to_inputs: InputEncoder,
        *,
        every: int = 200,
        probes: Sequence[str] = ("knn",),
        k: int = 20,
        c: float = 1.0,
        test_fraction: float = 0.3,
        pooling: str | None = None,
        batch_size: int = 256,
        seed: int = 0,
    ):
        super().__init__(every)
        unknown = [p for p in probes if p not in PROBES]
        if unknown or not probes:
            raise ValueError(f"probes={list(probes)} must be a non-empty subset of {PROBES}.")
        self.labels = np.asarray(labels, dtype=np.int64)
        if len(self.labels) != len(examples) or len(np.unique(self.labels)) < 2:
            raise ValueError(f"The online probe needs one label per example and at least 2 classes; got "
                             f"{len(examples)} examples, {len(self.labels)} labels, classes {np.unique(self.labels)}.")
        self.examples, self.to_inputs = examples, to_inputs
        self.probes, self.k, self.c, self.pooling, self.batch_size = tuple(probes), k, c, pooling, batch_size
        self.train_idx, self.test_idx = _stratified_halves(self.labels, test_fraction, seed)

    def measure(self, model: nn.Module) -> dict[str, float]:
        """{"probe_knn_acc", "probe_linear_acc"} (those asked for) of the model as it is now."""
        features = extract_features(model, self.examples, self.to_inputs, pooling=self.pooling,
                                    batch_size=self.batch_size, progress=False).numpy()  # (n, hidden)
        parts = (features[self.train_idx], self.labels[self.train_idx], features[self.test_idx], self.labels[self.test_idx])
        values = {}
        if "knn" in self.probes:
            values["probe_knn_acc"] = knn_probe(*parts, ks=(self.k,))["accuracy"]
        if "linear" in self.probes:
            values["probe_linear_acc"] = linear_probe(*parts, c_grid=(self.c,))["accuracy"]
        return values

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if self.due(state):
            self.publish(state, control, self.measure(model))

    def summary(self) -> dict[str, Any]:
        return {"every": self.every, "probes": list(self.probes), "k": self.k, "c": self.c,
                "probe_train_examples": len(self.train_idx), "probe_test_examples": len(self.test_idx),
                "last": self.last(), "history": self.history}


# ---------------------------------------------------------------------------------------------- collapse


def feature_std(features: torch.Tensor) -> float:
    """Mean over dimensions of the std over the batch of l2-normalized (b, d) features: about 1/sqrt(d)
    when spread out, 0 when every row is the same vector (computed locally: no collective ops)."""
    return float(F.normalize(features.float(), dim=1).std(dim=0).mean())


def centered_effective_rank(features: np.ndarray, noise_floor: float = 1e-8) -> float:
    """RankMe of the features minus their batch mean: how many directions the inputs spread along.

    Centering matters: encoders (a random-init ViT, most text encoders) put a large common vector in every
    feature, which alone would make the raw RankMe about 1 for a perfectly informative model. When the
    spread is at floating-point noise level (total centered energy below `noise_floor` of the raw
    energy), every input has the same feature: rank 1."""
    x = np.asarray(features, dtype=np.float64)
    if not np.isfinite(x).all():  # a diverged model: no rank to speak of (an SVD would fail and hide why)
        return float("nan")
    centered = x - x.mean(axis=0, keepdims=True)
    energy = float(np.square(x).sum())
    if energy == 0 or float(np.square(centered).sum()) <= noise_floor * energy:
        return 1.0
    return effective_rank(centered)


class CollapseMonitorCallback(LoggingMonitor):
    """Watches for representation collapse on a fixed batch every `every` steps.

    Logs `collapse_feature_std` (std of l2-normalized features, see `feature_std`) and
    `collapse_effective_rank` (RankMe of the centered features, see `centered_effective_rank`). A
    measurement is collapsed when std * sqrt(d) < `min_std_ratio` (every feature points the same way:
    complete collapse) or the effective rank < `min_effective_rank` (the inputs spread along one or two
    directions only: dimensional collapse); it warns, and with `stop_on_collapse` stops training after
    `patience` collapsed measurements in a row. The defaults leave healthy but anisotropic encoders alone
    (a random-init ViT has std * sqrt(d) near 0.01 and a centered rank in the tens).

    Args:
        probe_inputs: one batch of model inputs, e.g. {"pixel_values": (b, c, h, w)} or
            {"input_ids": (b, t), "attention_mask": (b, t)}, with b >= 2 (b >= hidden size suits RankMe).
    """

    def __init__(
        self,
        probe_inputs: Mapping[str, torch.Tensor],
        *,
        every: int = 100,
        min_std_ratio: float = 1e-3,
        min_effective_rank: float = 2.0,
        stop_on_collapse: bool = False,
        patience: int = 1,
        pooling: str | None = None,
    ):
        super().__init__(every)
        sizes = {len(v) for v in probe_inputs.values()}
        if not probe_inputs or len(sizes) != 1 or sizes.pop() < 2:
            raise ValueError("probe_inputs must be a non-empty dict of tensors sharing a batch size >= 2.")
        if patience < 1:
            raise ValueError(f"patience={patience} must be >= 1.")
        self.probe_inputs = dict(probe_inputs)
        self.min_std_ratio, self.min_effective_rank = min_std_ratio, min_effective_rank
        self.stop_on_collapse, self.patience, self.pooling = stop_on_collapse, patience, pooling
        self.collapsed_in_a_row = 0
        self.feature_dim = 1
        self.warnings: list[str] = []
        self.stopped_at: int | None = None

    @torch.no_grad()
    def measure(self, model: nn.Module) -> dict[str, float]:
        """{"collapse_feature_std", "collapse_effective_rank"} of the model's features of the probe batch."""
        device, was_training = next(model.parameters()).device, model.training
        model.eval()
        try:
            inputs = {name: value.to(device) for name, value in self.probe_inputs.items()}
            features = encoder_features(model, inputs, self.pooling).float()  # (b, hidden)
        finally:
            model.train(was_training)
        self.feature_dim = features.shape[1]
        return {"collapse_feature_std": feature_std(features),
                "collapse_effective_rank": centered_effective_rank(features.cpu().numpy())}

    def _diagnose(self, values: Mapping[str, float], dim: int) -> str | None:
        ratio = values["collapse_feature_std"] * math.sqrt(dim)
        problems = []
        if ratio < self.min_std_ratio:
            problems.append(f"feature std {values['collapse_feature_std']:.2e} = {ratio:.3f}/sqrt(d), below "
                            f"{self.min_std_ratio}/sqrt(d) (about 1/sqrt(d) when features spread out)")
        if values["collapse_effective_rank"] < self.min_effective_rank:
            problems.append(f"effective rank {values['collapse_effective_rank']:.2f} below {self.min_effective_rank}")
        return "; ".join(problems) or None

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if not self.due(state):
            return
        values = self.measure(model)
        self.publish(state, control, values)
        problem = self._diagnose(values, self.feature_dim)
        self.collapsed_in_a_row = self.collapsed_in_a_row + 1 if problem else 0
        if problem is None:
            return
        message = (f"Representation collapse at step {state.global_step}: {problem}. Typical fixes: a lower "
                   "learning rate, stronger augmentations, a larger batch, or the method's anti-collapse "
                   "settings (momentum, centering, predictor).")
        self.warnings.append(message)
        if state.is_world_process_zero:
            logger.warning(message)
        if self.stop_on_collapse and self.collapsed_in_a_row >= self.patience:
            self.stopped_at = state.global_step
            control.should_training_stop = True
            if state.is_world_process_zero:
                logger.error("Stopping training at step %d: collapsed for %d measurement(s) in a row "
                             "(stop_on_collapse=True).", state.global_step, self.collapsed_in_a_row)

    def on_train_end(self, args, state, control, model=None, **kwargs):
        """The end point, when the last step was not a measured one: diagnosed like the others (a warning, no
        stop), so the verdict on the last measurement agrees with the thresholds."""
        measured = len(self.history)
        super().on_train_end(args, state, control, model=model, **kwargs)
        if len(self.history) == measured:
            return
        values = {k: v for k, v in self.history[-1].items() if k != "step"}
        problem = self._diagnose(values, self.feature_dim)
        if problem is None:
            return
        message = f"Representation collapse at the end of training (step {state.global_step}): {problem}."
        self.warnings.append(message)
        if state.is_world_process_zero:
            logger.warning(message)

    def summary(self) -> dict[str, Any]:
        return {"every": self.every, "min_std_ratio": self.min_std_ratio,
                "min_effective_rank": self.min_effective_rank, "stop_on_collapse": self.stop_on_collapse,
                "last": self.last(), "warnings": self.warnings, "stopped_at_step": self.stopped_at,
                "history": self.history}


# ---------------------------------------------------------------------------------------------- non-finite loss


def _loss_of(output: Any) -> torch.Tensor | None:
    """The loss of a model output (ModelOutput, dict or tuple with the loss first), or None."""
    loss = output.get("loss") if isinstance(output, Mapping) else getattr(output, "loss", None)
    if loss is None and isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        loss = output[0] if output[0].dim() == 0 else None
    return loss if isinstance(loss, torch.Tensor) else None


class NonFiniteLossGuard(TrainerCallback):
    """Stops training at the first optimizer step whose training loss is NaN or inf.

    The loss is read by a forward hook on the model (training mode only), because the Trainer's logged
    loss hides non-finite values by default (`logging_nan_inf_filter`) and averages over steps. At that
    step's end the guard cancels the step's checkpoint, evaluation and logging and stops training, so the
    newest checkpoint on disk (and `save_total_limit` keeps it) is the last good one. The weights in memory
    are not good any more: after training, check `tripped` and do not save the model.
    """

    def __init__(self):
        self.tripped = False
        self.step: int | None = None
        self.last_good_checkpoint: str | None = None
        self.message: str | None = None
        self._bad: torch.Tensor | None = None
        self._hook = None

    def _observe(self, module: nn.Module, args: Any, output: Any) -> None:
        loss = _loss_of(output) if module.training else None
        if loss is not None:
            bad = ~torch.isfinite(loss.detach()).all()  # stays on the device: no sync per micro-batch
            self._bad = bad if self._bad is None else self._bad | bad

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if self._hook is None:
            self._hook = model.register_forward_hook(self._observe)

    def on_train_end(self, args, state, control, **kwargs):
        if self._hook is not None:
            self._hook.remove()
            self._hook = None

    def _step_was_bad(self) -> bool:
        if self._bad is None:
            return False
        bad, self._bad = self._bad.to(torch.int32), None
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(bad, op=torch.distributed.ReduceOp.MAX)  # every rank stops together
        return bool(bad.item())

    def on_step_end(self, args, state, control, **kwargs):
        if not self._step_was_bad():
            return
        self.tripped, self.step = True, state.global_step
        control.should_save = control.should_evaluate = control.should_log = False
        control.should_training_stop = True
        folder = args.output_dir
        self.last_good_checkpoint = get_last_checkpoint(folder) if folder and Path(folder).is_dir() else None
        fix = "Lower the learning rate, clip gradients (--max-grad-norm), or use bf16/fp32 instead of fp16"
        if self.last_good_checkpoint:
            advice = (f"nothing was saved after it; the last good checkpoint is {self.last_good_checkpoint}. {fix}, "
                      "then resume from it (--resume).")
        else:
            advice = f"no checkpoint had been saved yet. {fix}, then start the run again."
        self.message = (f"The training loss became NaN or inf at optimizer step {state.global_step}; training "
                        f"stopped, and {advice}")
        if state.is_world_process_zero:
            logger.error(self.message)

    def on_epoch_end(self, args, state, control, **kwargs):
        if self.tripped:  # the epoch-end save (save_strategy="epoch") would also store the broken weights
            control.should_save = control.should_evaluate = False

    def summary(self) -> dict[str, Any]:
        return {"tripped": self.tripped, "step": self.step, "last_good_checkpoint": self.last_good_checkpoint,
                "message": self.message}


class TimeBudgetCallback(TrainerCallback):
    """Stops training once `seconds` of training have passed, at the end of an optimizer step.

    The stop saves a checkpoint (so `--resume` continues the same schedule) and training ends as if the schedule
    had: the model is evaluated and saved. Every process stops at the same step (rank 0's clock decides).
    """

    def __init__(self, seconds: float):
        self.seconds = self.validate(seconds)
        self.stopped_at_step: int | None = None
        self.elapsed_s: float | None = None
        self._start: float | None = None

    @staticmethod
    def validate(seconds: float) -> float:
        """`seconds` as a float; ValueError unless it is a number > 0."""
        if not seconds > 0:
            raise ValueError(f"--max-time-s {seconds}: give a number of seconds > 0 (0 turns the limit off).")
        return float(seconds)

    def on_train_begin(self, args, state, control, **kwargs):
        self._start = time.monotonic()

    def _over(self, args) -> bool:
        over = time.monotonic() - self._start >= self.seconds
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            flag = torch.tensor([int(over)], device=args.device)
            torch.distributed.broadcast(flag, src=0)  # rank 0's clock decides for all
            over = bool(flag.item())
        return over

    def on_step_end(self, args, state, control, **kwargs):
        over = self._over(args)  # every process joins the broadcast at every step, whatever else decided
        if control.should_training_stop or not over:
            return
        self.stopped_at_step, self.elapsed_s = state.global_step, round(time.monotonic() - self._start, 1)
        control.should_training_stop = control.should_save = True
        if state.is_world_process_zero:
            logger.warning("Time budget of %.0f s reached: training stops at step %d of %d (checkpoint saved; "
                           "--resume continues the schedule).", self.seconds, state.global_step, state.max_steps)

    def summary(self) -> dict[str, Any]:
        return {"seconds": self.seconds, "stopped": self.stopped_at_step is not None,
                "stopped_at_step": self.stopped_at_step, "elapsed_s": self.elapsed_s}


# ---------------------------------------------------------------------------------------------- wiring


def _first_rows(dataset: Any, size: int) -> list[dict[str, Any]]:
    if hasattr(dataset, "select"):  # map-style
        return list(dataset.select(range(min(size, len(dataset)))))
    return list(dataset.take(size))  # streamed


def fixed_probe_batch(dataset: Any, to_inputs: InputEncoder, *, size: int = 256, pad_token_id: int = 0) -> dict[str, torch.Tensor]:
    """The first `size` rows of a pretraining dataset (map-style or streamed) as one batch of model inputs,
    for the collapse monitor.

    Rows hold uint8 `pixel_values` (normalized by `to_inputs`, an `ImageInputs`) or token `input_ids`
    (padded with `pad_token_id`, with an attention mask). No masking, no augmentation.
    """
    rows = _first_rows(dataset, size)
    if rows and "pixel_values" in rows[0]:
        return to_inputs(np.stack([np.asarray(r["pixel_values"]) for r in rows]))
    ids = [[int(t) for t in r["input_ids"]] for r in rows]
    length = max(len(r) for r in ids)
    input_ids = torch.full((len(ids), length), pad_token_id, dtype=torch.long)
    mask = torch.zeros(len(ids), length, dtype=torch.long)
    for i, row in enumerate(ids):
        input_ids[i, : len(row)], mask[i, : len(row)] = torch.tensor(row), 1
    return {"input_ids": input_ids, "attention_mask": mask}


def load_probe_data(
    source: str,
    model: nn.Module,
    *,
    label_column: str = "label",
    text_column: str | None = None,
    image_column: str | None = None,
    max_examples: int = 2000,
    data_dir: str | None = None,
) -> tuple[Examples, np.ndarray]:
    """(examples, labels) for `OnlineProbeCallback` from a labelled source: a file (csv/tsv/json/parquet, or an
    image), or anything `hfssl evaluate --dataset` takes (fashion-mnist, digits, a save_to_disk folder, a
    builder or Hub id). Checked like evaluation data (label column, classes, modality); at most
    `max_examples` rows of its training split. Call it before training starts, so bad input fails early."""
    from ..evaluation.features import modality_of
    from ..evaluation.protocol import DataOptions, load_labeled_data

    is_file = Path(source).is_file()
    options = DataOptions(dataset=None if is_file else source, train_files=[source] if is_file else None,
                          data_dir=data_dir, label_column=label_column, text_column=text_column,
                          image_column=image_column, max_train_examples=max_examples)
    data = load_labeled_data(options, modality_of(model), model.config)
    return data.train.examples, data.train.labels


def build_monitors(
    model: nn.Module,
    processor: Any,
    *,
    train_dataset: Any = None,
    probe_examples: Examples | None = None,
    probe_labels: Sequence[int] | np.ndarray | None = None,
    probe_every: int = 200,
    probes: Sequence[str] = ("knn",),
    collapse_every: int | None = 200,
    stop_on_collapse: bool = False,
    seed: int = 0,
) -> list[TrainerCallback]:
    """The monitors of a pretraining run: an online probe (when probe data is given), a collapse monitor on
    the first rows of `train_dataset` (when given and `collapse_every`), and always the non-finite-loss guard,
    last. `processor` is the run's tokenizer or image processor."""
    is_image = getattr(model, "main_input_name", "input_ids") == "pixel_values"
    to_inputs = input_encoder(model, None if is_image else processor, processor if is_image else None)
    monitors: list[TrainerCallback] = []
    if probe_examples is not None:
        monitors.append(OnlineProbeCallback(probe_examples, probe_labels, to_inputs, every=probe_every, probes=probes,
                                            seed=seed))
    if train_dataset is not None and collapse_every:
        pad = getattr(processor, "pad_token_id", None) or 0
        batch = fixed_probe_batch(train_dataset, to_inputs, pad_token_id=pad)
        monitors.append(CollapseMonitorCallback(batch, every=collapse_every, stop_on_collapse=stop_on_collapse))
    return monitors + [NonFiniteLossGuard()]

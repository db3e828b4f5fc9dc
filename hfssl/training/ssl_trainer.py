"""The Trainer for self-supervised objectives: views made on the training device, SSL signals in the logs.

`SSLTrainer` is the HF `Trainer` with three additions:
- image batches arrive as uint8 `pixel_values`; the multi-view augmentations (kornia) run batched on
  the device the model is on, then the model gets `views=[...]` (joint-embedding methods) or
  `pixel_values=` (MAE);
- the collapse signal (`embedding_std`) and the method's own values are averaged between log steps and
  logged with the loss, so TensorBoard and `trainer.state.log_history` carry them;
- evaluation runs under a fixed seed, so masks and views are the same at every evaluation and
  losses before and after training are comparable.
With several processes (torchrun, accelerate launch) it also wraps the model in DDP before the evaluation
that precedes training, scales token-averaged losses as the stock Trainer does, keeps a small validation
split whole when incomplete batches are dropped, and gives each process its own random draws.
`MomentumCallback` drives EMA targets (BYOL, MoCo v3, DINO) after every optimizer step.
"""

from __future__ import annotations

import copy
from collections import defaultdict

import torch
from torch import nn
from transformers import Trainer, TrainerCallback, set_seed

from ..data.pixels import to_float_pixels


class SSLTrainer(Trainer):
    """HF Trainer that builds views on the device and logs SSL diagnostics."""

    def __init__(self, *args, views: nn.Module | None = None, eval_seed: int = 0, **kwargs):
        super().__init__(*args, **kwargs)
        self._fit_eval_batch_to_processes()
        self.views = views
        self.eval_seed = eval_seed
        self._signals: dict[str, list[float]] = defaultdict(list)

    def _fit_eval_batch_to_processes(self) -> None:
        """With `dataloader_drop_last`, evaluation also keeps only rounds of full batches, one per process:
        make the evaluation batch small enough that a (small) validation split fills at least one round."""
        try:
            rows = len(self.eval_dataset)
        except TypeError:  # streamed, or no evaluation set
            return
        if self.args.dataloader_drop_last and rows:
            per_process = max(1, rows // self.args.world_size)
            self.args.per_device_eval_batch_size = min(self.args.per_device_eval_batch_size, per_process)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if "pixel_values" in inputs:
            inputs = self._image_inputs(inputs)
        # The stock step passes `num_items_in_batch` (token losses summed over the whole accumulated batch of
        # every process) and rescales by the process count, which DDP's gradient averaging then cancels.
        loss, outputs = super().compute_loss(model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch)
        self._record(outputs)
        return (loss, outputs) if return_outputs else loss

    def _image_inputs(self, inputs: dict) -> dict:
        """uint8 (B, C, H, W) -> {"views": [...]} for joint-embedding models, {"pixel_values": ...} for MAE."""
        pixels = to_float_pixels(inputs["pixel_values"])  # (B, C, H, W) in [0, 1]
        views = self.views.to(pixels.device)(pixels)  # [(B, C, h_i, w_i)], normalized
        if getattr(self.model.config, "ssl", None):
            return {"views": views, "pixel_values": views[0]}
        return {"pixel_values": views[0]}

    def _record(self, outputs) -> None:
        std = getattr(outputs, "embedding_std", None)
        if std is not None:
            self._signals["embedding_std"].append(float(std))
        for name, value in (getattr(self.model, "last_ssl_logs", None) or {}).items():
            self._signals[name].append(float(value))

    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        # Training logs (those with "loss") carry the averages since the previous log.
        if "loss" in logs and self._signals:
            logs = {**logs, **{k: sum(v) / len(v) for k, v in self._signals.items() if v}}
            self._signals.clear()
        super().log(logs, *args, **kwargs)

    def _issue_warnings_after_load(self, load_result) -> None:
        # A tied head (the MLM/CLM projection is the embedding matrix) is saved once, under the embedding's name:
        # the checkpoint "misses" the head's name on every resume. Tie it again instead of warning about it.
        tied = set(getattr(self.model, "_tied_weights_keys", None) or ())
        if not getattr(self.model.config, "tie_word_embeddings", False) or not tied & set(load_result.missing_keys):
            super()._issue_warnings_after_load(load_result)
            return
        self.model.tie_weights()
        super()._issue_warnings_after_load(
            load_result._replace(missing_keys=[k for k in load_result.missing_keys if k not in tied]))

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        # Pretraining evaluates the objective's loss only; route it through compute_loss so images get
        # their views (the stock step would call the model on raw uint8 pixels).
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad():
            loss = self.compute_loss(model, inputs)
        return loss.detach(), None, None

    def get_train_dataloader(self):
        dataloader = super().get_train_dataloader()
        if self.args.world_size > 1:
            # Every process was seeded alike, so rank r's i-th example would get the same crop, jitter, MAE
            # mask and dropout as every other rank's i-th example: from here on, draw per process (rank 0
            # keeps the seed). Only now: accelerate's sampler has just taken the shared seed for the data order.
            set_seed(self.args.seed + self.args.process_index)
        return dataloader

    def evaluate(self, *args, **kwargs):
        self._wrap_for_data_parallel_training()
        devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
        training_collator, self.data_collator = self.data_collator, reseeded_copy(self.data_collator)
        try:
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(self.eval_seed)
                metrics = super().evaluate(*args, **kwargs)
        finally:
            self.data_collator = training_collator
        self._signals.clear()  # evaluation batches are not training signals
        return metrics

    def _wrap_for_data_parallel_training(self) -> None:
        """Wrap the model in DistributedDataParallel before an evaluation that comes before training.

        Otherwise the evaluation lets accelerate prepare the model for evaluation only and mark it prepared;
        `train()` then skips the DDP wrapper and no gradient is ever averaged: each process trains its own
        model on its own shard of the data. FSDP and DeepSpeed prepare the model in the evaluation already.
        """
        if self.model_wrapped is self.model and self.accelerator.distributed_type.name.startswith("MULTI_"):
            self.model_wrapped = self.accelerator.prepare_model(self.model)


def reseeded_copy(collator):
    """A copy of `collator` (and of the collators it wraps, through `.collator`) whose own random generators start
    again from their seeds.

    Seeded masking collators draw from a generator of their own, not from torch's global one: evaluating with the
    training collator would give each evaluation other masks (so losses before and after training would not be
    comparable) and would move the training masks along by the number of evaluations. The copy leaves the
    training collator's generator untouched. Collators without a seed are returned as they are."""
    if not hasattr(collator, "seed") and not hasattr(collator, "collator"):
        return collator
    copied = copy.copy(collator)
    if hasattr(copied, "collator"):
        copied.collator = reseeded_copy(copied.collator)
    if getattr(copied, "seed", None) is not None and isinstance(getattr(copied, "generator", None), torch.Generator):
        copied.generator = torch.Generator().manual_seed(copied.seed)
    elif getattr(copied, "seed", None) is not None and hasattr(copied, "generator"):
        copied.generator = None  # a lazily made generator (transformers' collators) is made again from the seed
    return copied


class MomentumCallback(TrainerCallback):
    """Tells an SSL model its step before each optimizer step and updates its EMA targets after it."""

    def on_step_begin(self, args, state, control, model=None, **kwargs):
        if model is not None and hasattr(model, "training_step_counter"):
            model.training_step_counter = state.global_step

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if model is not None and hasattr(model, "momentum_update"):
            model.momentum_update(state.global_step, max(state.max_steps, 1))

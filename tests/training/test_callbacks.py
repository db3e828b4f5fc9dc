"""Training monitors with a real HF Trainer: they fire on a collapsed model and on a NaN loss, stay quiet
on a healthy run, put their values into the Trainer logs (TensorBoard included) and never change training."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from transformers import Trainer, TrainerCallback, TrainingArguments

from hfssl.evaluation.features import ImageInputs
from hfssl.models import HfsslVisionConfig, HfsslVisionForMaskedImageModeling
from hfssl.training.callbacks import (
    CollapseMonitorCallback,
    NonFiniteLossGuard,
    OnlineProbeCallback,
    add_monitor_callbacks,
)

MONITOR_KEYS = {"probe_knn_acc", "probe_linear_acc", "collapse_feature_std", "collapse_effective_rank"}


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models on a shared 2-core machine: thread hand-offs cost more than the math."""
    from threadpoolctl import threadpool_limits

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits():
    """sklearn digits: (1797, 1, 8, 8) uint8 pixels and (1797,) labels."""
    from sklearn.datasets import load_digits

    data = load_digits()
    return np.round(data.images * 255 / 16).astype(np.uint8)[:, None], data.target


def _args(tmp_path: Path, **overrides) -> TrainingArguments:
    settings = {"output_dir": str(tmp_path / "checkpoints"), "max_steps": 12, "per_device_train_batch_size": 32,
                "learning_rate": 1e-3, "logging_steps": 4, "save_strategy": "no", "report_to": [], "use_cpu": True,
                "disable_tqdm": True, "seed": 0, "dataloader_num_workers": 0}
    return TrainingArguments(**{**settings, **overrides})


def _mae(seed: int = 0) -> HfsslVisionForMaskedImageModeling:
    torch.manual_seed(seed)
    return HfsslVisionForMaskedImageModeling(HfsslVisionConfig(
        image_size=8, patch_size=4, num_channels=1, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=64, decoder_hidden_size=16, decoder_num_hidden_layers=1, decoder_num_attention_heads=2,
        decoder_intermediate_size=32, mask_ratio=0.5))


def _pixel_rows(pixels: np.ndarray) -> list[dict[str, torch.Tensor]]:
    return [{"pixel_values": torch.as_tensor(p).float() / 255} for p in pixels]


def _monitors(digits, every: int = 4):
    pixels, labels = digits
    probe = OnlineProbeCallback(pixels[:300], labels[:300], ImageInputs(), every=every, probes=("knn", "linear"), k=10)
    batch = {"pixel_values": torch.as_tensor(pixels[300:364]).float() / 255}
    return probe, CollapseMonitorCallback(batch, every=every), NonFiniteLossGuard()


class LogRecorder(TrainerCallback):
    """Appended after everything else, like a logger: sees exactly what a logger would see."""

    def __init__(self):
        self.logs = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        self.logs.append(dict(logs))


def test_healthy_run_logs_monitor_values_and_stays_quiet(tmp_path, digits, caplog):
    recorder = LogRecorder()
    trainer = Trainer(model=_mae(), args=_args(tmp_path), train_dataset=_pixel_rows(digits[0][400:]),
                      callbacks=[recorder])
    probe, collapse, guard = _monitors(digits)
    add_monitor_callbacks(trainer, probe, collapse, guard)
    with caplog.at_level(logging.WARNING, logger="hfssl.training.callbacks"):
        trainer.train()
    logged = [entry for entry in trainer.state.log_history if MONITOR_KEYS <= set(entry)]
    assert [entry["step"] for entry in logged] == [4, 8, 12]
    assert all(0.5 < entry["probe_knn_acc"] <= 1 for entry in logged)  # 10 classes: chance is 0.1
    assert [e for e in recorder.logs if MONITOR_KEYS <= set(e)] == [
        {k: v for k, v in e.items() if k != "step"} for e in logged]
    assert not collapse.warnings and collapse.stopped_at is None and not guard.tripped
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert probe.summary()["last"]["step"] == 12
    # The starting point is measured too (history only: it is not a Trainer log).
    assert [h["step"] for h in collapse.summary()["history"]] == [0, 4, 8, 12]
    assert [h["step"] for h in probe.history] == [0, 4, 8, 12]


def test_monitor_values_reach_tensorboard(tmp_path, digits):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    trainer = Trainer(model=_mae(), args=_args(tmp_path, report_to=["tensorboard"]),
                      train_dataset=_pixel_rows(digits[0][400:]))
    add_monitor_callbacks(trainer, *_monitors(digits)[:2])
    trainer.train()
    events = EventAccumulator(str(next(tmp_path.rglob("events.out.tfevents.*")).parent)).Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"train/probe_knn_acc", "train/collapse_effective_rank"} <= scalars
    assert [e.step for e in events.Scalars("train/probe_linear_acc")] == [4, 8, 12]


def test_monitors_do_not_change_training(tmp_path, digits):
    def final_weights(with_monitors: bool) -> torch.Tensor:
        trainer = Trainer(model=_mae(), args=_args(tmp_path / str(with_monitors), max_steps=8),
                          train_dataset=_pixel_rows(digits[0][400:]))
        if with_monitors:
            add_monitor_callbacks(trainer, *_monitors(digits, every=2))
        trainer.train()
        return torch.cat([p.detach().flatten() for p in trainer.model.parameters()])

    torch.testing.assert_close(final_weights(True), final_weights(False), rtol=0, atol=0)


class ConstantFeatures(nn.Module):
    """Fully collapsed: every input gets the same feature vector; the loss still trains a parameter."""

    main_input_name = "pixel_values"

    def __init__(self):
        super().__init__()
        self.vector = nn.Parameter(torch.ones(16))

    def get_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.vector.expand(len(pixel_values), -1)  # (b, 16)

    def forward(self, pixel_values: torch.Tensor, **kwargs) -> dict[str, torch.Tensor]:
        return {"loss": (self.get_features(pixel_values).mean() - pixel_values.mean()) ** 2}


@pytest.mark.parametrize("stop", [False, True])
def test_collapse_monitor_fires_on_a_collapsed_model(tmp_path, digits, caplog, stop):
    pixels = digits[0]
    monitor = CollapseMonitorCallback({"pixel_values": torch.as_tensor(pixels[:64]).float()}, every=3,
                                      stop_on_collapse=stop)
    trainer = Trainer(model=ConstantFeatures(), args=_args(tmp_path, max_steps=9), train_dataset=_pixel_rows(pixels))
    add_monitor_callbacks(trainer, monitor)
    with caplog.at_level(logging.WARNING, logger="hfssl.training.callbacks"):
        trainer.train()
    assert "Representation collapse at step 3" in caplog.text
    assert monitor.history[0]["collapse_feature_std"] == pytest.approx(0.0, abs=1e-6)
    assert monitor.history[0]["collapse_effective_rank"] == pytest.approx(1.0, abs=1e-3)
    assert trainer.state.global_step == (3 if stop else 9)
    assert monitor.summary()["stopped_at_step"] == (3 if stop else None)
    assert len(monitor.warnings) == (1 if stop else 3)


class NaNAtStep(nn.Module):
    """Linear regression whose training loss is NaN on its `bad_call`-th training forward."""

    def __init__(self, bad_call: int | None):
        super().__init__()
        self.linear = nn.Linear(4, 1)
        self.bad_call, self.calls = bad_call, 0

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        loss = (self.linear(x).squeeze(-1) - labels).pow(2).mean()
        if self.training:
            self.calls += 1
            if self.calls == self.bad_call:
                loss = loss * float("nan")
        return {"loss": loss}


def _regression_rows(n: int = 256) -> list[dict[str, torch.Tensor]]:
    x = torch.randn(n, 4, generator=torch.Generator().manual_seed(0))
    return [{"x": row, "labels": row.sum()} for row in x]


def _train_guarded(tmp_path: Path, bad_call: int | None) -> tuple[Trainer, NonFiniteLossGuard]:
    trainer = Trainer(model=NaNAtStep(bad_call), train_dataset=_regression_rows(),
                      args=_args(tmp_path, max_steps=10, per_device_train_batch_size=8, save_strategy="steps",
                                 save_steps=2, save_total_limit=2, logging_steps=1))
    guard = NonFiniteLossGuard()
    add_monitor_callbacks(trainer, guard)
    trainer.train()
    return trainer, guard


def test_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(tmp_path, caplog):
    with caplog.at_level(logging.ERROR, logger="hfssl.training.callbacks"):
        trainer, guard = _train_guarded(tmp_path, bad_call=6)  # step 6 would also have saved a checkpoint
    checkpoints = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert checkpoints == ["checkpoint-2", "checkpoint-4"]
    assert trainer.state.global_step == 6 and guard.step == 6 and guard.tripped
    assert guard.last_good_checkpoint.endswith("checkpoint-4")
    assert "became NaN or inf at optimizer step 6" in caplog.text and "checkpoint-4" in caplog.text
    assert guard.summary()["step"] == 6


def test_guard_stays_quiet_on_finite_losses(tmp_path):
    trainer, guard = _train_guarded(tmp_path, bad_call=None)
    assert not guard.tripped and guard.summary()["message"] is None
    assert trainer.state.global_step == 10
    assert (tmp_path / "checkpoints" / "checkpoint-10").is_dir()


def test_bad_monitor_arguments(digits):
    pixels, labels = digits
    with pytest.raises(ValueError, match="every=0"):
        CollapseMonitorCallback({"pixel_values": torch.zeros(4, 1, 8, 8)}, every=0)
    with pytest.raises(ValueError, match="probes"):
        OnlineProbeCallback(pixels[:20], labels[:20], ImageInputs(), probes=("svm",))
    with pytest.raises(ValueError, match="at least 2 classes"):
        OnlineProbeCallback(pixels[:20], np.zeros(20, np.int64), ImageInputs())


def test_build_monitors_for_text_and_image_pretraining(digits):
    import datasets

    from hfssl.data.pixels import build_image_processor
    from hfssl.data.tokenizer import train_tokenizer
    from hfssl.models import HfsslTextConfig, HfsslTextForMaskedLM
    from hfssl.training.callbacks import build_monitors

    tokenizer = train_tokenizer(["a b c d e f g", "h i j k"] * 20, "wordpiece", vocab_size=60, model_max_length=16)
    text_model = HfsslTextForMaskedLM(HfsslTextConfig(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1,
                                                      num_attention_heads=2, intermediate_size=32))
    blocks = datasets.Dataset.from_dict({"input_ids": [[2, 5, 6, 7], [2, 8, 9]] * 10})
    collapse, guard = build_monitors(text_model, tokenizer, train_dataset=blocks, collapse_every=5)
    assert isinstance(collapse, CollapseMonitorCallback) and isinstance(guard, NonFiniteLossGuard)
    assert collapse.probe_inputs["input_ids"].shape == (20, 4)
    assert collapse.probe_inputs["attention_mask"][1].tolist() == [1, 1, 1, 0]
    assert set(collapse.measure(text_model)) == {"collapse_feature_std", "collapse_effective_rank"}
    streamed, _ = build_monitors(text_model, tokenizer, train_dataset=blocks.to_iterable_dataset(), collapse_every=5)
    torch.testing.assert_close(streamed.probe_inputs["input_ids"], collapse.probe_inputs["input_ids"])

    pixels, labels = digits
    images = datasets.Dataset.from_dict({"pixel_values": list(pixels[:50])})
    processor = build_image_processor(8, 1, [0.3], [0.35])
    probe, collapse, _ = build_monitors(_mae(), processor, train_dataset=images, probe_examples=pixels[:100],
                                        probe_labels=labels[:100], probe_every=10)
    assert isinstance(probe, OnlineProbeCallback) and probe.every == 10
    expected = (torch.as_tensor(pixels[:50]).float() / 255 - 0.3) / 0.35
    torch.testing.assert_close(collapse.probe_inputs["pixel_values"], expected)


def test_load_probe_data_checks_and_limits_the_labelled_source():
    from hfssl.training.callbacks import load_probe_data

    examples, labels = load_probe_data("digits", _mae(), max_examples=100)
    assert examples.shape == (100, 1, 8, 8) and examples.dtype == np.uint8 and labels.shape == (100,)
    with pytest.raises(ValueError, match="'kind' not found"):
        load_probe_data("digits", _mae(), label_column="kind")


def test_the_rank_of_diverged_features_is_nan_not_an_svd_error():
    """After a NaN step the final rank measurement must not raise (its LinAlgError hid the NaN guard's message)."""
    from hfssl.training.callbacks import centered_effective_rank

    features = np.ones((6, 4))
    features[2, 1] = np.nan
    assert np.isnan(centered_effective_rank(features))
    assert centered_effective_rank(np.eye(4)) > 1.0

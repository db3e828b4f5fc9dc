"""`TrainingArguments` with defaults suited to pretraining from scratch.

Every Trainer flag still works from the command line and config files; only the defaults differ.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field

from transformers import TrainingArguments


def _default_report_to() -> str:
    return "tensorboard" if importlib.util.find_spec("tensorboard") else "none"


def _pin_memory_default() -> bool:
    """Pinned host memory helps copies to an accelerator only (torch warns when there is none)."""
    from .setup import has_accelerator

    return has_accelerator()


@dataclass
class PretrainingArguments(TrainingArguments):
    """TrainingArguments whose defaults fit pretraining; `output_dir` is set to <run>/checkpoints by hfssl."""

    learning_rate: float = field(default=5e-4, metadata={"help": "Peak learning rate (AdamW)."})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay."})
    warmup_steps: float = field(
        default=0.05, metadata={"help": "Linear warm-up: steps, or a fraction in [0, 1) of the total steps."}
    )
    per_device_train_batch_size: int = field(default=32, metadata={"help": "Training blocks per device per step."})
    per_device_eval_batch_size: int = field(default=32, metadata={"help": "Evaluation blocks per device per step."})
    logging_steps: float = field(default=50, metadata={"help": "Log the training loss every N steps."})
    logging_first_step: bool = field(default=True, metadata={"help": "Log the loss of the first step."})
    eval_strategy: str = field(
        default="steps",
        metadata={"help": "When to evaluate during training: no, steps or epoch. The validation loss before and after "
                          "training is always measured (run.json and the summary report it)."},
    )
    eval_steps: float | None = field(default=500, metadata={"help": "Evaluate every N steps."})
    save_steps: float = field(default=500, metadata={"help": "Checkpoint every N steps."})
    save_total_limit: int | None = field(default=2, metadata={"help": "Keep at most N checkpoints."})
    prediction_loss_only: bool = field(default=True, metadata={"help": "Evaluation computes the loss only."})
    include_num_input_tokens_seen: str | bool = field(
        default=True, metadata={"help": "Count input tokens (recorded in run.json as tokens seen)."}
    )
    dataloader_pin_memory: bool = field(
        default_factory=_pin_memory_default,
        metadata={"help": "Pin batches in host memory for faster copies to the accelerator (default: on when there "
                          "is one)."},
    )
    report_to: None | str | list[str] = field(
        default_factory=_default_report_to, metadata={"help": "Loggers: tensorboard (default when installed), none, ..."}
    )

    def __post_init__(self):
        # Several processes on a machine without GPUs (torchrun, accelerate launch): CPU data parallelism over
        # gloo, whichever entry point (`hfssl pretrain`, scripts/pretrain.py) parsed the arguments.
        from .setup import use_cpu_processes_without_accelerator

        use_cpu_processes_without_accelerator()
        super().__post_init__()

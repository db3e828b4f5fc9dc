"""Test-only launcher: real `hfssl.training.pretrain.pretrain` runs in every process, plus a per-rank report.

    python -m torch.distributed.run --nproc_per_node 2 tests/training/distributed_launcher.py REPORT_DIR RUNS.json

RUNS.json maps a run name to its pretraining flags (as `scripts/pretrain.py` takes them). Every process runs
them one after the other, in the same process group (one launch amortizes the start-up of several runs), and
after each run writes REPORT_DIR/<name>.rank<R>.pt, a dict with:

- `rank`, `world_size`: as the Trainer saw them;
- `parameters`, `buffers`: {name: tensor} of the trained model in this process;
- `tokenizer`: the run's vocabulary as sorted (token, id) pairs (None for images), to check that every
  process tokenized the corpus the same way;
- `train_batches`: for text, the token ids of every training forward pass this process ran, in order
  (`labels` when present, which hold the unmasked ids; else `input_ids`), one list of rows per step.

Batches are recorded by a forward pre-hook on the model: it observes, the run does not change. The report
goes to REPORT_DIR, never into the run directory, which belongs to rank 0.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

import hfssl.training.pretrain as pretrain_module
from hfssl.cli import parse_pretrain_args
from hfssl.training.setup import use_cpu_processes_without_accelerator

TRAINERS: list = []
BATCHES: list[list[list[int]]] = []
BUILD_TRAINER = pretrain_module.build_trainer


def record_batch(module, args, kwargs) -> None:
    """Forward pre-hook: keep the token ids of each training batch."""
    if not module.training:
        return
    ids = kwargs.get("labels") if kwargs.get("labels") is not None else kwargs.get("input_ids")
    if isinstance(ids, torch.Tensor):
        BATCHES.append(ids.tolist())


def build_trainer_and_observe(*args, **kwargs):
    trainer = BUILD_TRAINER(*args, **kwargs)
    trainer.model.register_forward_pre_hook(record_batch, with_kwargs=True)
    TRAINERS.append(trainer)
    return trainer


def report(trainer) -> dict:
    vocabulary = getattr(trainer.processing_class, "get_vocab", None)
    return {
        "rank": trainer.args.process_index,
        "world_size": trainer.args.world_size,
        "parameters": {name: p.detach().cpu().clone() for name, p in trainer.model.named_parameters()},
        "buffers": {name: b.detach().cpu().clone() for name, b in trainer.model.named_buffers()},
        "tokenizer": sorted(vocabulary().items()) if vocabulary else None,
        "train_batches": list(BATCHES),
    }


def main(argv: list[str]) -> None:
    report_dir, runs = Path(argv[0]), json.loads(Path(argv[1]).read_text())
    report_dir.mkdir(parents=True, exist_ok=True)
    use_cpu_processes_without_accelerator()  # as scripts/pretrain.py does, before the arguments are parsed
    pretrain_module.build_trainer = build_trainer_and_observe
    for name, flags in runs.items():
        TRAINERS.clear()
        BATCHES.clear()
        pretrain_module.pretrain(*parse_pretrain_args(flags))
        data = report(TRAINERS[-1])
        torch.save(data, report_dir / f"{name}.rank{data['rank']}.pt")


if __name__ == "__main__":
    main(sys.argv[1:])

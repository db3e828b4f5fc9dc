#!/usr/bin/env python
"""Pretrain with the Hugging Face Trainer: the script form of `hfssl pretrain`.

    python scripts/pretrain.py --objective mlm --train_files 'corpus/*.txt' --output runs/my-mlm --max_steps 1000
    python scripts/pretrain.py --config scripts/configs/mlm-small.yaml
    accelerate launch scripts/pretrain.py --config scripts/configs/mlm-small.yaml     # several GPUs or processes
    torchrun --nproc_per_node 2 scripts/pretrain.py --config scripts/configs/mlm-small.yaml  # 2 CPU processes (gloo)

Arguments are four dataclasses parsed by HfArgumentParser: ModelArguments, DataArguments, RunArguments
(hfssl/training/arguments.py) and every TrainingArguments flag (hfssl/training/training_args.py).
"""

import logging
import sys

from hfssl.cli import parse_pretrain_args, print_summary, run_command
from hfssl.training.pretrain import pretrain
from hfssl.training.setup import use_cpu_processes_without_accelerator


def main(argv: list[str]) -> int:
    """Bad input is one line on stderr and exit 2, as with `hfssl pretrain` (HFSSL_DEBUG=1 keeps the traceback)."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return run_command("pretrain.py", _pretrain, argv)


def _pretrain(argv: list[str]) -> int:
    use_cpu_processes_without_accelerator()  # before the TrainingArguments pick their device
    model_args, data_args, run_args, training_args = parse_pretrain_args(argv)
    result = pretrain(model_args, data_args, run_args, training_args)
    if training_args.process_index == 0:
        print_summary(result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

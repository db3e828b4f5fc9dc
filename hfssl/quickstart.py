"""`hfssl quickstart`: the whole pipeline so far on an embedded corpus, offline, in a few minutes on 2 cores."""

from __future__ import annotations

from .training.arguments import DataArguments, ModelArguments, RunArguments
from .training.pretrain import PretrainResult, pretrain
from .training.rundir import RunDirectory, check_can_start
from .training.training_args import PretrainingArguments


def quickstart(output: str = "runs/quickstart", max_steps: int = 250, overwrite: bool = False) -> PretrainResult:
    """Pretrain a tiny masked LM on the standard library's docstrings into `output`.

    A previous quickstart run in `output` is replaced; any other existing run needs `overwrite=True`.
    """
    own_previous_run = RunDirectory(output).read_manifest().get("quickstart", False)
    model_args = ModelArguments(objective="mlm", model_size="tiny", vocab_size=4096)
    data_args = DataArguments(dataset="stdlib-docstrings", block_size=128, validation_fraction=0.05)
    run_args = RunArguments(output=output, overwrite=overwrite or own_previous_run)
    check_can_start(output, run_args.overwrite, False, can_resume=False)  # quickstart has no --resume to suggest
    training_args = PretrainingArguments(
        output_dir=output,
        max_steps=max_steps,
        learning_rate=1e-3,
        per_device_train_batch_size=32,
        logging_steps=25,
        eval_steps=max(max_steps // 3, 1),
        save_steps=max_steps,
        seed=0,
    )
    result = pretrain(model_args, data_args, run_args, training_args)
    result.manifest = result.run.update_manifest(quickstart=True)
    return result

"""The `hfssl` command: a plain table of subcommand -> function."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import yaml

USER_ERRORS = (ValueError, KeyError, FileNotFoundError, FileExistsError, FloatingPointError)


def _pretrain_parser():
    from transformers import HfArgumentParser

    from .training.arguments import DataArguments, ModelArguments, RunArguments
    from .training.objectives import describe_objectives
    from .training.training_args import PretrainingArguments

    parser = HfArgumentParser(
        (ModelArguments, DataArguments, RunArguments, PretrainingArguments),
        prog="hfssl pretrain",
        description="Pretrain a self-supervised model with the Hugging Face Trainer.\n\nObjectives:\n"
        + describe_objectives()
        + "\n\nEvery TrainingArguments flag works (--max-steps, --learning-rate, --bf16, ...). "
        "--config FILE.yaml|json (once) reads the same flags from a file; flags on the command line win.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", help="YAML or JSON file with any of these flags (keys as in --help).")
    return parser


def config_file_to_argv(path: str) -> list[str]:
    """Turn a YAML/JSON config into flags, so command-line flags placed after it override it."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"Config file {path} does not exist.")
    values = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    if not isinstance(values, dict):
        raise ValueError(f"Config file {path} must hold a mapping of flag names to values.")
    argv: list[str] = []
    for key, value in values.items():
        flag = "--" + str(key).replace("-", "_")
        if isinstance(value, list):
            argv += [flag, *map(str, value)]
        elif value is not None:
            argv += [flag, str(value).lower() if isinstance(value, bool) else str(value)]
    return argv


def split_config_flag(argv: Sequence[str]) -> tuple[str | None, list[str]]:
    """(the file of `--config FILE` or `--config=FILE`, the other flags); at most one --config is allowed."""
    path, rest, i = None, [], 0
    argv = list(argv)
    while i < len(argv):
        arg = argv[i]
        if arg == "--config" or arg.startswith("--config="):
            if path is not None:
                raise ValueError("--config was given more than once; pass a single config file (flags on the "
                                 "command line override its values).")
            if arg == "--config":
                if i + 1 >= len(argv) or argv[i + 1].startswith("--"):
                    raise ValueError("--config needs a file path: --config FILE.yaml.")
                path, i = argv[i + 1], i + 2
            else:
                path, i = arg.partition("=")[2], i + 1
                if not path:
                    raise ValueError("--config needs a file path: --config=FILE.yaml.")
            continue
        rest.append(arg)
        i += 1
    return path, rest


def parse_pretrain_args(argv: Sequence[str]):
    """(model, data, run, training) argument dataclasses from flags and an optional --config file
    (`--config FILE` or `--config=FILE`, once; the flags on the command line override the file's)."""
    parser = _pretrain_parser()
    path, argv = split_config_flag(argv)
    if path is not None:
        argv = config_file_to_argv(path) + argv
    *parsed, remaining = parser.parse_args_into_dataclasses(args=argv, return_remaining_strings=True)
    if remaining:
        raise ValueError(f"Unknown arguments: {' '.join(remaining)}. See `hfssl pretrain --help`.")
    return parsed[:4]  # the fifth item is the namespace holding --config, already consumed


def prepare_command() -> None:
    """What every command needs before its body runs: the Auto classes registered (the console script's
    `import hfssl` left that for here, see hfssl/__init__.py) and $HFSSL_CPU_GEMM checked (a bad value fails here,
    before any data is read). Called once the flags parse, so `--help` and flag errors do not wait for torch."""
    from . import register_auto_classes
    from .models.cpu_gemm import cpu_gemm_backend

    register_auto_classes()
    cpu_gemm_backend()


def _parse_and_run(parser: argparse.ArgumentParser, run: Callable[[argparse.Namespace], int],
                   argv: Sequence[str]) -> int:
    """Parse `argv` with `parser` (quick: --help and flag errors exit here), prepare, then run the command."""
    args = parser.parse_args(list(argv))
    prepare_command()
    return run(args)


def cmd_pretrain(argv: Sequence[str]) -> int:
    """Pretrain a model; see `hfssl pretrain --help`."""
    from .training.pretrain import pretrain

    if any(a in ("-h", "--help") for a in argv):
        _pretrain_parser().print_help()
        return 0
    prepare_command()  # its parser needs transformers anyway
    result = pretrain(*parse_pretrain_args(argv))
    print_summary(result)
    return 0


def cmd_quickstart(argv: Sequence[str]) -> int:
    """Pretrain a tiny masked LM on the standard library's docstrings (offline, a few minutes on a laptop)."""
    parser = argparse.ArgumentParser(prog="hfssl quickstart", description=cmd_quickstart.__doc__)
    parser.add_argument("--output", default="runs/quickstart", help="Run directory (default: runs/quickstart).")
    parser.add_argument("--max-steps", type=int, default=250, help="Training steps (default: 250).")
    parser.add_argument("--overwrite", action="store_true", help="Replace an existing run that is not a quickstart.")
    return _parse_and_run(parser, _run_quickstart, argv)


def _run_quickstart(args: argparse.Namespace) -> int:
    from .quickstart import quickstart

    result = quickstart(args.output, max_steps=args.max_steps, overwrite=args.overwrite)
    print_summary(result)
    return 0


def print_summary(result) -> None:
    """Where everything went and what to run next."""
    manifest, stats, run = result.manifest, result.manifest["pretrain"], result.run
    rate = stats.get("tokens_per_second") or stats.get("images_per_second")
    unit = "tokens/s" if "tokens_per_second" in stats else "images/s"
    before = stats["eval_loss_before"]
    lines = [
        "",
        f"Run finished: {run.path}",
        f"  objective        {manifest['objective']}  ({manifest['model']['parameters']:,} parameters)",
        f"  steps            {stats['steps']}  in {stats['wall_time_s']:.1f} s" + (f"  ({rate:,.0f} {unit})" if rate else ""),
        "  validation loss  " + (f"{before:.3f} -> " if before is not None else "") + f"{stats['eval_loss']:.3f}"
        + (f"  (perplexity {stats['perplexity']:.1f})" if "perplexity" in stats else ""),
    ]
    if "embedding_std" in stats:
        lines.append(f"  embedding std    {stats['embedding_std_first']:.3f} -> {stats['embedding_std']:.3f}"
                     "  (0 means collapse)")
    lines += _monitor_lines(stats.get("monitors", {}))
    lines += [
        f"  model            {run.model_dir}",
        f"  manifest         {run.manifest_path}",
        f"  checkpoints      {run.checkpoints_dir}",
        "",
        "Next:",
        *_next_steps(manifest["objective"], run),
    ]
    print("\n".join(lines))


def _monitor_lines(monitors: dict) -> list[str]:
    """The online probe's first and last accuracy, and the collapse monitor's verdict."""
    lines = []
    history = monitors.get("online_probe", {}).get("history", [])
    for key in ("probe_knn_acc", "probe_linear_acc"):
        values = [(h["step"], h[key]) for h in history if key in h]
        if values:
            trend = " -> ".join(f"{v:.3f} (step {s})" for s, v in [values[0], values[-1]][: 1 + (len(values) > 1)])
            lines.append(f"  {key.replace('_acc', ' accuracy').replace('_', ' '):<16} {trend}")
    collapse = monitors.get("collapse")
    if collapse and collapse.get("last"):
        last = collapse["last"]
        floor = collapse.get("min_effective_rank")
        if collapse["warnings"]:
            verdict = f"{len(collapse['warnings'])} collapse warning(s)"
        elif floor is not None and last["collapse_effective_rank"] < floor:  # a run.json from before end checks
            verdict = f"collapsed: rank below {floor:g}"
        else:
            verdict = "no collapse"
        if collapse.get("stopped_at_step") is not None:
            verdict += f"; training stopped at step {collapse['stopped_at_step']}"
        lines.append(f"  feature rank     {last['collapse_effective_rank']:.1f}  (std {last['collapse_feature_std']:.3f}; "
                     f"{verdict})")
    return lines


def _next_steps(objective: str, run) -> list[str]:
    model = run.model_dir
    if objective == "mlm":
        try_it = f"print(pipeline('fill-mask', model='{model}')('The value is [MASK].'))"
    elif objective == "clm":
        try_it = f"print(pipeline('text-generation', model='{model}')('Return the'))"
    else:
        try_it = f"print(AutoModel.from_pretrained('{model}'))"
    return [
        f'  python -c "import hfssl; from transformers import AutoModel, pipeline; {try_it}"',
        f"  hfssl demo {run.path}",
        f"  tensorboard --logdir {run.checkpoints_dir}",
    ]


# The commands below import only their parser modules (hfssl/*/command.py, which import nothing heavy at the top)
# until the flags parse; the run_*_from_args functions import torch, transformers, datasets, ... as they need.


def cmd_publish(argv: Sequence[str]) -> int:
    """Publish a run to the Hugging Face Hub in one commit (model, card, audit, evaluation)."""
    from .hub.command import build_publish_parser, run_publish_from_args

    return _parse_and_run(build_publish_parser(), run_publish_from_args, argv)


def cmd_publish_space(argv: Sequence[str]) -> int:
    """Publish the Gradio demo of a Hub model as a Space."""
    from .hub.command import build_publish_space_parser, run_publish_space_from_args

    return _parse_and_run(build_publish_space_parser(), run_publish_space_from_args, argv)


def cmd_evaluate(argv: Sequence[str]) -> int:
    """Measure what a run learned: linear probe, kNN, fine-tuning, label-efficiency curves."""
    from .evaluation.command import build_parser, run_evaluate_from_args

    return _parse_and_run(build_parser(), run_evaluate_from_args, argv)


def cmd_finetune(argv: Sequence[str]) -> int:
    """Fine-tune a pretrained run for classification with PEFT (LoRA, DoRA, IA3, ...) or fully."""
    from .finetune.command import build_parser, run_finetune_from_args

    return _parse_and_run(build_parser(), run_finetune_from_args, argv)


def cmd_audit(argv: Sequence[str]) -> int:
    """Audit a run for bias (stereotype sets, association tests, metrics by group) into bias_audit.json."""
    from .audit.command import build_parser, run_audit_from_args

    return _parse_and_run(build_parser(), run_audit_from_args, argv)


def cmd_card(argv: Sequence[str]) -> int:
    """Render a run's model card (model/README.md) from run.json, metadata checked offline."""
    from .cards.command import build_parser, run_card_from_args

    return _parse_and_run(build_parser(), run_card_from_args, argv)


def cmd_demo(argv: Sequence[str]) -> int:
    """Try a run directory or Hub id in a Gradio app (fill-mask, generation, MAE, classifier, gallery search)."""
    from .demo.command import build_parser, run_demo_from_args

    return _parse_and_run(build_parser(), run_demo_from_args, argv)


COMMANDS: dict[str, Callable[[Sequence[str]], int]] = {
    "quickstart": cmd_quickstart,
    "pretrain": cmd_pretrain,
    "evaluate": cmd_evaluate,
    "finetune": cmd_finetune,
    "audit": cmd_audit,
    "card": cmd_card,
    "demo": cmd_demo,
    "publish": cmd_publish,
    "publish-space": cmd_publish_space,
}


def _usage() -> str:
    rows = "\n".join(f"  {name:14} {(fn.__doc__ or '').strip().splitlines()[0]}" for name, fn in COMMANDS.items())
    return f"usage: hfssl <command> [options]\n\nCommands:\n{rows}\n\nRun `hfssl <command> --help` for its options."


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `hfssl` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    if argv[0] in ("-V", "--version"):
        from . import __version__

        print(f"hfssl {__version__}")
        return 0
    command = COMMANDS.get(argv[0])
    if command is None:
        print(f"hfssl: unknown command {argv[0]!r}.\n\n{_usage()}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "httpx2", "httpcore"):  # one INFO line per HTTP request to the Hub
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return run_command(f"hfssl {argv[0]}", command, argv[1:])  # each command parses, then prepare_command()


def run_command(prog: str, command: Callable[[Sequence[str]], int], argv: Sequence[str]) -> int:
    """`command(argv)`'s exit code, with bad input as one line naming `prog` (exit 2, no traceback; HFSSL_DEBUG=1
    keeps the traceback) and Ctrl-C as exit 130: shared by the console script and scripts/pretrain.py."""
    try:
        return command(argv)
    except USER_ERRORS as error:
        if os.environ.get("HFSSL_DEBUG"):
            raise
        message = error.args[0] if error.args else str(error)
        print(f"{prog}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: the run's own warning above says what was kept and how to resume
        if os.environ.get("HFSSL_DEBUG"):
            raise
        print(f"{prog}: interrupted.", file=sys.stderr)
        return 130
    except ConnectionError as error:  # e.g. datasets could not reach a Hub data set
        if os.environ.get("HFSSL_DEBUG"):
            raise
        print(f"{prog}: error: {error}. Check the network (and HF_HUB_OFFLINE), or use local data: "
              "files or folders (--train-files), or a save_to_disk folder.", file=sys.stderr)
        return 2

if __name__ == "__main__":
    sys.exit(main())

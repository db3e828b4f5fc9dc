"""`hfssl evaluate`: flags -> `evaluate_run`. Imports nothing heavy until the command runs."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

PROTOCOL_CHOICES = ("linear-probe", "knn", "finetune", "label-efficiency")
# Flags that only one protocol reads: flag -> (argparse dest, the protocols that use it).
PROTOCOL_FLAGS = {
    "--fractions": ("fractions", ("label-efficiency",)),
    "--seeds": ("seeds", ("label-efficiency",)),
    "--k": ("k", ("knn",)),
    "--finetune-epochs": ("finetune_epochs", ("finetune",)),
    "--finetune-learning-rate": ("finetune_learning_rate", ("finetune",)),
}
EXAMPLES = """examples:
  hfssl evaluate runs/mae --protocol linear-probe --dataset fashion-mnist --baselines random-init
  hfssl evaluate runs/my-mlm --protocol knn --train-files train.csv --test-files test.csv --text-column text
  hfssl evaluate runs/mae --protocol label-efficiency --dataset digits --fractions 0.05,0.25,1.0 --seeds 3 \\
      --baselines random-init,supervised
"""


def _floats(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers such as 0.01,0.1,1.0, got {text!r}") from None


def _ints(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 20,200, got {text!r}") from None


def _names(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The flags of `hfssl evaluate` (see `hfssl.evaluation.api.evaluate_run` for their meaning)."""
    parser.add_argument("run_dir", help="Run directory whose model/ is evaluated (results go to its eval/ and run.json).")
    parser.add_argument("--protocol", choices=PROTOCOL_CHOICES, default="linear-probe",
                        help="Evaluation protocol (default: linear-probe).")
    data = parser.add_argument_group("labelled data (one source)")
    data.add_argument("--dataset", help="fashion-mnist, digits, a save_to_disk folder, a datasets builder or a Hub id.")
    data.add_argument("--data-dir", help="data_dir of the builder; for fashion-mnist the folder of its IDX files "
                                         "(default: $HFSSL_DATA_DIR/fashion_mnist).")
    data.add_argument("--train-files", nargs="+", help="Local labelled files (csv/tsv/json/parquet/txt, or images).")
    data.add_argument("--test-files", nargs="+", help="Local test files; default: carve a stratified test split.")
    data.add_argument("--train-split", default="train", help="Training split of --dataset (default: train).")
    data.add_argument("--test-split", help="Test split of --dataset (default: test when present, else carved).")
    data.add_argument("--text-column", help="Column holding the text (default: text, else the first text column).")
    data.add_argument("--image-column", help="Column holding the images (default: the first image column).")
    data.add_argument("--label-column", default="label", help="Column holding the labels (default: label).")
    data.add_argument("--max-train-examples", type=int, help="Evaluate on a random subset of N training examples.")
    data.add_argument("--max-test-examples", type=int, help="Evaluate on a random subset of N test examples.")
    protocol = parser.add_argument_group("protocol options")
    # Flags of one protocol default to None: given with another protocol they are refused (PROTOCOL_FLAGS), not
    # silently ignored; evaluate_run supplies the defaults the help names.
    protocol.add_argument("--fractions", type=_floats,
                          help="Label fractions for label-efficiency (default: 0.01,0.05,0.1,0.25,1.0).")
    protocol.add_argument("--seeds", type=int, help="Seeds per label fraction for label-efficiency (default: 3).")
    protocol.add_argument("--baselines", type=_names, default=[],
                          help="Comma-separated: random-init (same probe, untrained copy), supervised (same "
                               "architecture trained from scratch on the same labels).")
    protocol.add_argument("--k", type=_ints, help="Neighbours for knn (default: 20,200).")
    protocol.add_argument("--pooling", choices=("mean", "cls", "pooler_output"),
                          help="Pooling of the last hidden states (default: the model's get_features, else mean).")
    protocol.add_argument("--batch-size", type=int, default=64, help="Examples per forward pass (default: 64).")
    protocol.add_argument("--supervised-epochs", type=int,
                          help="Epochs of the supervised baseline (at least 200 steps; default: 10).")
    protocol.add_argument("--finetune-epochs", type=float,
                          help="Epochs of --protocol finetune (default: hfssl finetune's, 3); give it "
                               "--supervised-epochs to compare the two at an equal budget.")
    protocol.add_argument("--finetune-learning-rate", type=float,
                          help="Peak learning rate of --protocol finetune (default: hfssl finetune's).")
    protocol.add_argument("--seed", type=int, default=0, help="Seed of splits, subsets and initializations (default: 0).")
    protocol.add_argument("--device", default="auto",
                          help="Where features and the supervised baseline run: auto (the GPU when there is one), "
                               "cpu, cuda or cuda:N (default: auto).")
    return parser


def check_protocol_flags(args: argparse.Namespace) -> None:
    """A ValueError naming each given flag that the protocol (or the absent supervised baseline) would ignore."""
    unused = [flag for flag, (dest, protocols) in PROTOCOL_FLAGS.items()
              if getattr(args, dest) is not None and args.protocol not in protocols]
    if unused:
        uses = "; ".join(f"{flag} is for --protocol {' or '.join(PROTOCOL_FLAGS[flag][1])}" for flag in unused)
        raise ValueError(f"--protocol {args.protocol} does not use {', '.join(unused)} ({uses}): drop "
                         f"{'it' if len(unused) == 1 else 'them'}, or choose the protocol that uses "
                         f"{'it' if len(unused) == 1 else 'them'}.")
    if args.supervised_epochs is not None and "supervised" not in args.baselines:
        raise ValueError("--supervised-epochs sets the budget of the supervised baseline, which this evaluation does "
                         "not run: add --baselines supervised (or random-init,supervised), or drop --supervised-epochs.")


def run_evaluate_from_args(args: argparse.Namespace) -> int:
    """Run `evaluate_run` with parsed flags; prints the table. Returns the exit code (0)."""
    check_protocol_flags(args)
    from .api import SupervisedSettings, evaluate_run

    given = {name: value for name, value in (("fractions", args.fractions), ("seeds", args.seeds), ("k", args.k))
             if value is not None}
    if args.supervised_epochs is not None:
        given["supervised"] = SupervisedSettings(epochs=args.supervised_epochs)
    evaluate_run(
        args.run_dir, args.protocol, dataset=args.dataset, data_dir=args.data_dir, train_files=args.train_files,
        test_files=args.test_files, train_split=args.train_split, test_split=args.test_split,
        text_column=args.text_column, image_column=args.image_column, label_column=args.label_column,
        baselines=args.baselines, batch_size=args.batch_size, max_train_examples=args.max_train_examples,
        max_test_examples=args.max_test_examples, pooling=args.pooling, finetune_epochs=args.finetune_epochs,
        finetune_learning_rate=args.finetune_learning_rate, seed=args.seed, device=args.device, **given,
    )
    print(f"\nResults: {args.run_dir}/eval/{args.protocol}.json (and .png), run.json section eval.{args.protocol}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The parser of `hfssl evaluate` (quick: nothing heavy is imported)."""
    parser = argparse.ArgumentParser(prog="hfssl evaluate", description=cmd_evaluate.__doc__, epilog=EXAMPLES,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    return add_evaluate_arguments(parser)


def cmd_evaluate(argv: Sequence[str]) -> int:
    """Measure what a run learned: linear probe, kNN, fine-tuning or label efficiency."""
    return run_evaluate_from_args(build_parser().parse_args(argv))

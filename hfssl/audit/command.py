"""`hfssl audit`: flags -> `audit_run`. Imports nothing heavy until the command runs."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

EXAMPLES = """examples:
  hfssl audit runs/my-mlm                                  # CrowS-Pairs, WinoBias, SEAT (+ random-init baseline)
  hfssl audit runs/my-mlm --bias-data-dir ../shared/data/bias --time-budget 300
  hfssl audit runs/my-mlm-sst --test-files test.csv --text-column text --label-column label --group-column gender
  hfssl audit runs/mae --dataset digits --label-column label
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hfssl audit", epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run the bias audits that fit a run's objective (each also on a random-init copy), write "
                    "<run>/bias_audit.json and add an `audit` section to run.json.")
    parser.add_argument("run_dir", help="Run directory with model/ and run.json.")
    parser.add_argument("--group-column", help="Column naming each example's group (classifier and vision audits).")
    parser.add_argument("--bias-data-dir", help="Folder or Hub dataset id with crows_pairs.csv, stereoset.jsonl, "
                                                "winobias.jsonl (default: $HFSSL_DATA_DIR/bias).")
    data = parser.add_argument_group("labelled set (classifier and vision audits)")
    data.add_argument("--dataset", help="Hub id, builder, save_to_disk folder, or digits / fashion-mnist (vision).")
    data.add_argument("--train-files", nargs="+", help="Vision: labelled images for the kNN memory bank.")
    data.add_argument("--test-files", nargs="+", help="csv/tsv/json/jsonl/parquet (text) or image files to audit on.")
    data.add_argument("--split", help="Split of --dataset to audit (default: test, else validation, else train).")
    data.add_argument("--text-column", help="Column holding the text (default: text).")
    data.add_argument("--image-column", help="Column holding the images (default: the first image column).")
    data.add_argument("--label-column", default="label", help="Column holding the labels (default: label).")
    protocol = parser.add_argument_group("protocol")
    protocol.add_argument("--time-budget", type=float, default=120.0,
                          help="Seconds for all audits; a seeded subsample is used when a set won't fit, the clock "
                               "checked every ~10%% of an audit's share. The bootstrap intervals computed after the "
                               "last audit's scoring can add a few seconds (default 120; 0 means no limit).")
    protocol.add_argument("--seed", type=int, default=0, help="Seed of subsamples, bootstrap and baseline (default 0).")
    protocol.add_argument("--no-baseline", action="store_true", help="Skip the random-init baseline (halves the time).")
    protocol.add_argument("--min-group-n", type=int, default=10, help="Suppress groups with fewer items (default 10).")
    protocol.add_argument("--n-boot", type=int, default=1000, help="Bootstrap resamples (default 1000).")
    return parser


def cmd_audit(argv: Sequence[str]) -> int:
    """Audit a run for bias (stereotype sets, association tests, metrics by group) into bias_audit.json."""
    return run_audit_from_args(build_parser().parse_args(list(argv)))


def run_audit_from_args(args: argparse.Namespace) -> int:
    """Check the numeric flags, then run `audit_run` with the parsed flags. Returns the exit code (0)."""
    for flag, value, least in (("--time-budget", args.time_budget, 0), ("--min-group-n", args.min_group_n, 1),
                               ("--n-boot", args.n_boot, 1), ("--seed", args.seed, 0)):
        if not value >= least:  # NaN too
            raise ValueError(f"{flag} {value:g} must be at least {least}"
                             + (" (0 means no limit)" if flag == "--time-budget" else "") + ".")
    # Imports torch: only once the flags are parsed and checked.
    from .api import audit_run

    audit_run(
        args.run_dir, group_column=args.group_column, dataset=args.dataset, train_files=args.train_files,
        test_files=args.test_files, split=args.split, text_column=args.text_column, image_column=args.image_column,
        label_column=args.label_column, bias_data_dir=args.bias_data_dir,
        time_budget_s=args.time_budget if args.time_budget > 0 else None, seed=args.seed,
        baseline=not args.no_baseline, min_group_n=args.min_group_n, n_boot=args.n_boot,
    )
    return 0

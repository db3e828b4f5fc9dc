"""`hfssl card`: render `<run>/model/README.md` from run.json."""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hfssl card", description="Render the model card <run>/model/README.md from run.json alone (model "
        "details, uses, getting started, data, training, evaluation, bias audit, limitations, citation). The "
        "evaluation plots it links are copied into <run>/model/eval/, so the links resolve there as on the Hub.",
        epilog="example:\n  hfssl card runs/my-mlm --license mit", formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", help="Run directory with run.json and model/.")
    parser.add_argument("--license",
                        help="Hub license id of the model (default: run.json's `license`, else apache-2.0).")
    parser.add_argument("--repo-id", help="Hub repo id the card is for (default: a {{repo_id}} placeholder that "
                                          "`hfssl publish` fills in).")
    return parser


def run_card_from_args(args: argparse.Namespace) -> int:
    """Render the card with parsed flags; prints where it went. Returns the exit code (0)."""
    from .render import render_card  # imports torch: only once the flags are parsed

    path = render_card(args.run_dir, repo_id=args.repo_id, license=args.license)
    print(f"Model card written: {path}")
    return 0


def cmd_card(argv: Sequence[str]) -> int:
    """Render a run's model card (model/README.md) from run.json, metadata checked offline."""
    return run_card_from_args(build_parser().parse_args(list(argv)))

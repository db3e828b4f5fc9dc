#!/usr/bin/env python
"""Does self-supervised pretraining help, and how much per label? The quality benchmark of hfssl.

Text:   MLM and next-token (CLM) models pretrained on the news articles, probed on the movie-review
        sentiment split (rotten_tomatoes).
Images: MAE, SimCLR, BYOL and DINO pretrained on the Fashion-MNIST training images (labels unused),
        probed on its test split.

Each objective is pretrained through the CLI (`hfssl.cli.main(["pretrain", ...])`) and evaluated with
`hfssl.evaluation.evaluate_run`: linear probe, kNN and label efficiency, each against the same architecture
randomly initialized and trained from scratch with labels (supervised), plus fine-tuning where available.
Results go to <output>/benchmark.json and <output>/benchmark.md; every run directory keeps its own
eval/ files and run.json section.

    python scripts/benchmark_ssl_quality.py --part text --scale small --data-dir ../shared/data
    python scripts/benchmark_ssl_quality.py --part images --scale full --output runs/benchmark
    python scripts/benchmark_ssl_quality.py --part images --objectives mae,dino --skip-pretrain   # re-evaluate

An objective that fails to pretrain or evaluate is reported with its error and the others go on.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

TEXT_OBJECTIVES = ("mlm", "clm")  # what --part text runs; --objectives may also name the others below
# Frozen features of the next-token model: the mean of its last hidden states, not its default (the last
# token, which its classification head uses). At 2,400 steps the last token probed no better than random
# init (0.577 against 0.582) and the mean did (0.618 against 0.569); docs/evaluation.md has the runs.
FEATURE_POOLING = {"clm": "mean"}
IMAGE_OBJECTIVES = ("mae", "simclr", "byol", "dino")
# Pretrained and evaluated the same way when --objectives names them (e.g. to test a fix for a failing one).
MORE_TEXT_OBJECTIVES = ("simcse", "mlm+simcse")
MORE_IMAGE_OBJECTIVES = ("moco", "simsiam", "swav", "mae+simclr", "mae+byol", "mae+dino")
ALL_TEXT = TEXT_OBJECTIVES + MORE_TEXT_OBJECTIVES
KNOWN = TEXT_OBJECTIVES + IMAGE_OBJECTIVES + MORE_TEXT_OBJECTIVES + MORE_IMAGE_OBJECTIVES


@dataclass(frozen=True)
class Scale:
    """How much compute one objective gets: pretraining steps and the evaluation budget."""

    text_steps: int
    image_steps: int
    max_train_examples: int | None  # labelled training examples used by the probes and baselines
    max_test_examples: int | None
    fractions: tuple[float, ...]
    seeds: int
    supervised_epochs: int


SCALES = {
    "smoke": Scale(30, 30, 1000, 500, (0.05, 1.0), 2, 1),
    "small": Scale(1500, 1500, 5000, 2000, (0.01, 0.05, 0.25, 1.0), 3, 5),
    "full": Scale(6000, 6000, None, None, (0.01, 0.05, 0.1, 0.25, 1.0), 3, 10),
}


def default_data_dir() -> str | None:
    env = os.environ.get("HFSSL_DATA_DIR")
    beside = Path(__file__).resolve().parents[2] / "shared" / "data"
    return env or (str(beside) if beside.is_dir() else None)


def _run_flags(objective: str, run_dir: Path, steps: int) -> list[str]:
    """The `hfssl pretrain` flags every benchmark run shares: output, budget, seed and logging."""
    return ["--objective", objective, "--output", str(run_dir), "--overwrite", "--max-steps", str(steps),
            "--report-to", "none", "--disable-tqdm", "true", "--save-steps", str(steps), "--seed", "0",
            "--logging-steps", "50", "--eval-steps", str(steps)]


TEXT_BATCHES = ["--block-size", "128", "--per-device-train-batch-size", "32"]


def pretrain_argv(objective: str, run_dir: Path, data_dir: Path, steps: int, method_options: str | None = None,
                  model_size: str = "tiny") -> list[str]:
    """`hfssl pretrain` flags for one objective of the benchmark."""
    common = _run_flags(objective, run_dir, steps)
    if method_options:
        common += ["--method-options", method_options]
    if objective in ALL_TEXT:
        return common + ["--train-files", str(data_dir / "news" / "news_articles.jsonl.gz"), "--text-column", "text",
                         "--model-size", model_size, "--vocab-size", "8192", *TEXT_BATCHES]
    return common + ["--dataset", "fashion-mnist", "--data-dir", str(data_dir / "fashion_mnist"),
                     "--image-size", "28", "--model-size", model_size, "--per-device-train-batch-size", "128"]


def adapt_argv(objective: str, run_dir: Path, adapted_dir: Path, data_dir: Path, steps: int) -> list[str]:
    """`hfssl pretrain` flags that continue `run_dir`'s pretraining (same objective, model and tokenizer) on the
    texts of the probes' training split, rotten_tomatoes/train.csv, with its labels unused: task-adaptive
    pretraining. The test split's texts are never read."""
    return [*_run_flags(objective, adapted_dir, steps), "--init-from", str(run_dir),
            "--train-files", str(data_dir / "rotten_tomatoes" / "train.csv"), "--text-column", "text", *TEXT_BATCHES]


def data_options(objective: str, data_dir: Path, scale: Scale) -> dict[str, Any]:
    """`evaluate_run` data arguments: rotten_tomatoes for text objectives, Fashion-MNIST for image ones."""
    limits = {"max_train_examples": scale.max_train_examples, "max_test_examples": scale.max_test_examples}
    if objective in ALL_TEXT:
        folder = data_dir / "rotten_tomatoes"
        return {"train_files": [str(folder / "train.csv")], "test_files": [str(folder / "test.csv")],
                "text_column": "text", "label_column": "label", **limits}
    return {"dataset": "fashion-mnist", "data_dir": str(data_dir / "fashion_mnist"), **limits}


def run_pretraining(argv: list[str]) -> dict[str, Any]:
    """`hfssl pretrain` with `argv`, through the CLI; returns {"ok", "wall_time_s", "error"}."""
    from hfssl.cli import main

    start = time.perf_counter()
    try:
        code = main(["pretrain", *argv])
        error = None if code == 0 else f"hfssl pretrain exited with {code} (its error is printed above)"
    except Exception as exc:  # noqa: BLE001  (a benchmark reports every objective: one failure must not end it)
        error = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
    return {"ok": error is None, "wall_time_s": round(time.perf_counter() - start, 1), "error": error}


PROTOCOLS = ("linear-probe", "knn", "label-efficiency", "finetune")
BASELINES = ("random-init", "supervised")


def run_protocols(objective: str, run_dir: Path, data_dir: Path, scale: Scale, protocols: Sequence[str] = PROTOCOLS,
                  baselines: Sequence[str] = BASELINES) -> dict[str, Any]:
    """`protocols` (default: linear-probe, knn, label-efficiency and finetune) on one run, each against those of
    `baselines` it supports; each protocol's result or error."""
    from hfssl.evaluation import SupervisedSettings, evaluate_run

    options = data_options(objective, data_dir, scale)
    supervised = SupervisedSettings(epochs=scale.supervised_epochs)
    pooling = {"pooling": FEATURE_POOLING[objective]} if objective in FEATURE_POOLING else {}
    probe_baselines = [b for b in baselines if b == "random-init"]
    plans = {
        # Supervised training from scratch with all labels is the label-efficiency curve's last point.
        "linear-probe": {"baselines": probe_baselines, **pooling},
        "knn": {"baselines": probe_baselines, "k": [20, 200], **pooling},
        "label-efficiency": {"baselines": list(baselines), "supervised": supervised,
                             "fractions": scale.fractions, "seeds": scale.seeds, **pooling},
        # As many epochs as the supervised baseline, so fine-tuned and from-scratch compare at an equal budget.
        "finetune": {"finetune_epochs": scale.supervised_epochs},
    }
    results = {}
    for protocol, extra in plans.items():
        if protocol not in protocols:
            continue
        start = time.perf_counter()
        try:
            results[protocol] = evaluate_run(run_dir, protocol, **options, **extra)
        except Exception as exc:  # noqa: BLE001  (reported in the summary; the other protocols still run)
            results[protocol] = {"error": f"{type(exc).__name__}: {exc}"}
            logging.getLogger(__name__).warning("%s %s failed: %s", objective, protocol, exc)
        results[protocol]["benchmark_wall_time_s"] = round(time.perf_counter() - start, 1)
    return results


# ---------------------------------------------------------------------------------------------- verdicts


def _point(curves: dict, arm: str, index: int) -> dict | None:
    points = curves.get(arm) or []
    return points[index] if points else None


def paired_gap(curves: dict, baseline: str, index: int) -> dict | None:
    """Pretrained minus `baseline` accuracy seed by seed at one label fraction: {"examples", "mean", "std", "wins"}.

    Every arm of a seed probes the same stratified label subset, so the per-seed differences cancel what the
    subset draw does to both arms; their std (ddof 1) is the seed spread of the gap itself.
    """
    p, b = _point(curves, "pretrained", index), _point(curves, baseline, index)
    if not p or not b or len(p["accuracies"]) != len(b["accuracies"]):
        return None
    gaps = [x - y for x, y in zip(p["accuracies"], b["accuracies"])]
    std = statistics.stdev(gaps) if len(gaps) > 1 else 0.0
    return {"examples": p["examples"], "mean": statistics.fmean(gaps), "std": std,
            "wins": f"{sum(g > 0 for g in gaps)}/{len(gaps)}"}


def clears_spread(gap: dict) -> bool:
    """A paired gap is a win beyond the seed spread: its mean exceeds twice its std (floored at 0.001)."""
    return gap["mean"] > 2 * max(gap["std"], 1e-3)


def verdicts(results: dict[str, Any]) -> dict[str, Any]:
    """The issue's two checks from the label-efficiency curves, and the headline numbers."""
    curves = results.get("label-efficiency", {}).get("curves", {})
    summary: dict[str, Any] = {}
    gaps = []
    for index in range(len(curves.get("pretrained", []))):
        p, r = _point(curves, "pretrained", index), _point(curves, "random-init", index)
        if p and r:
            spread = max(p["std"], r["std"], 1e-3)
            gaps.append((p["mean"] - r["mean"]) > 2 * spread)
    summary["beats_random_init_beyond_2_std_at_every_fraction"] = all(gaps) if gaps else None
    paired = [paired_gap(curves, "random-init", index) for index in range(len(curves.get("pretrained", [])))]
    paired = [gap for gap in paired if gap is not None]
    summary["paired_gap_to_random_init"] = paired
    summary["beats_random_init_paired_at_every_fraction"] = all(map(clears_spread, paired)) if paired else None
    p, s = _point(curves, "pretrained", 0), _point(curves, "supervised", 0)
    summary["beats_supervised_at_smallest_fraction"] = (p["mean"] > s["mean"]) if p and s else None
    summary["paired_gap_to_supervised_at_smallest_fraction"] = to_supervised = paired_gap(curves, "supervised", 0)
    # The mean alone lets a tie pass (BYOL: +0.002 with 1 seed of 3); paired, the gap must clear its spread.
    summary["beats_supervised_paired_at_smallest_fraction"] = clears_spread(to_supervised) if to_supervised else None
    linear = results.get("linear-probe", {}).get("arms", {})
    knn = results.get("knn", {}).get("arms", {})
    summary["linear_probe"] = {arm: r.get("accuracy") for arm, r in linear.items()}
    last = _point(curves, "supervised", -1)
    if last and last["fraction"] == 1.0:
        summary["linear_probe"]["supervised"] = last["mean"]  # not a probe: the same labels, trained from scratch
    summary["knn"] = {arm: {k: v["accuracy"] for k, v in r.get("by_k", {}).items()} for arm, r in knn.items()}
    summary["finetune"] = results.get("finetune", {}).get("arms", {}).get("pretrained", {}).get("accuracy")
    summary["smallest_fraction"] = {arm: _point(curves, arm, 0) for arm in curves}
    return summary


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else ("—" if value is None else str(value))


def markdown(report: dict[str, Any]) -> str:
    """The summary table of every objective as Markdown."""
    header = ("| objective | pretrain s | linear (SSL / random / supervised) | kNN k=20 (SSL / random) | fine-tune "
              "| smallest fraction (SSL / random / supervised) | > random beyond 2 std | > random, paired "
              "| > supervised at smallest | > supervised, paired |")
    lines = [header, "|---|---|---|---|---|---|---|---|---|---|"]
    for objective, entry in report["objectives"].items():
        adapt = entry.get("adapt")
        stages = [entry["pretrain"], *([adapt["pretrain"]] if adapt else [])]
        if adapt:
            objective = f"{objective} + {adapt['steps']} adaptation steps"
        if not entry.get("evaluation"):
            failed = next(r for r in stages if not r["ok"])
            lines.append(f"| {objective} | failed: {failed['error']} |||||||||")
            continue
        v = entry["verdicts"]
        lin = " / ".join(_fmt(v["linear_probe"].get(a)) for a in ("pretrained", "random-init", "supervised"))
        knn = " / ".join(_fmt(v["knn"].get(a, {}).get("20")) for a in ("pretrained", "random-init"))
        small = " / ".join(_fmt((v["smallest_fraction"].get(a) or {}).get("mean"))
                           for a in ("pretrained", "random-init", "supervised"))
        walls = [r["wall_time_s"] for r in stages]
        wall = None if None in walls else sum(walls)
        lines.append(f"| {objective} | {'—' if wall is None else f'{wall:.0f}'} | {lin} | {knn} | {_fmt(v['finetune'])} "
                     f"| {small} | {_fmt(v['beats_random_init_beyond_2_std_at_every_fraction'])} "
                     f"| {_fmt(v.get('beats_random_init_paired_at_every_fraction'))} "
                     f"| {_fmt(v['beats_supervised_at_smallest_fraction'])} "
                     f"| {_fmt(v.get('beats_supervised_paired_at_smallest_fraction'))} |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------- main


def parse_args(argv: list[str]) -> argparse.Namespace:
    # comma-separated names, read as `hfssl evaluate --baselines` reads them
    from hfssl.evaluation.command import _names

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("text", "images", "all"), default="all")
    parser.add_argument("--objectives", help="Comma-separated subset, e.g. mae,dino (default: all of the part).")
    parser.add_argument("--scale", choices=tuple(SCALES), default="small")
    parser.add_argument("--steps", type=int, help="Pretraining steps (overrides the scale's).")
    parser.add_argument("--data-dir", default=default_data_dir(), help="The shared data folder (news, rotten_tomatoes, "
                                                                         "fashion_mnist); default: $HFSSL_DATA_DIR.")
    parser.add_argument("--output", default="runs/benchmark", help="Folder of the run directories and the report.")
    parser.add_argument("--skip-pretrain", action="store_true", help="Evaluate existing run directories only.")
    parser.add_argument("--method-options", action="append", default=[], metavar="OBJECTIVE:OPTIONS",
                        help="`hfssl pretrain --method-options` for one objective, e.g. "
                             "'dino:use_bn_in_head=true,teacher_temp=0.03'; repeat for several objectives.")
    parser.add_argument("--max-train-examples", type=int, help="Labelled training examples (overrides the scale's).")
    parser.add_argument("--max-test-examples", type=int, help="Labelled test examples (overrides the scale's).")
    parser.add_argument("--fractions", help="Comma-separated label fractions (overrides the scale's).")
    parser.add_argument("--seeds", type=int, help="Seeds per label fraction (overrides the scale's).")
    parser.add_argument("--supervised-epochs", type=int, help="Epochs of the supervised baseline and of fine-tuning "
                                                                  "(overrides the scale's).")
    parser.add_argument("--model-size", choices=("tiny", "small", "base"), default="tiny",
                        help="The models' size preset (`hfssl pretrain --model-size`); the baselines use the same.")
    parser.add_argument("--adapt-steps", type=int, default=0,
                        help="Text only: after the news pretraining, continue it this many steps on the texts of "
                             "rotten_tomatoes/train.csv (labels unused; task-adaptive pretraining) into "
                             "<output>/<objective>-adapted, and evaluate that run instead.")
    parser.add_argument("--protocols", type=_names, default=list(PROTOCOLS),
                        help=f"Comma-separated subset of {','.join(PROTOCOLS)} (default: all).")
    parser.add_argument("--baselines", type=_names, default=list(BASELINES),
                        help="Comma-separated subset of random-init,supervised (default: both); the probes and kNN "
                             "take random-init, the label-efficiency curve both.")
    args = parser.parse_args(argv)
    for flag, chosen, valid in (("--protocols", args.protocols, PROTOCOLS), ("--baselines", args.baselines, BASELINES)):
        unknown = [name for name in chosen if name not in valid]
        if unknown:
            parser.error(f"{flag}: unknown {', '.join(unknown)}; choose from {', '.join(valid)}.")
    if not args.protocols:
        parser.error("--protocols names no protocol; give at least one of " + ", ".join(PROTOCOLS) + ".")
    if args.adapt_steps < 0:
        parser.error(f"--adapt-steps must be >= 0, got {args.adapt_steps}.")
    if args.adapt_steps and any(o not in ALL_TEXT for o in selected_objectives(args)):
        parser.error("--adapt-steps adapts text objectives to the probes' texts; run image objectives without it.")
    return args


def selected_objectives(args: argparse.Namespace) -> list[str]:
    known = {"text": TEXT_OBJECTIVES, "images": IMAGE_OBJECTIVES, "all": TEXT_OBJECTIVES + IMAGE_OBJECTIVES}[args.part]
    if not args.objectives:
        return list(known)
    chosen = [o.strip() for o in args.objectives.split(",") if o.strip()]
    unknown = [o for o in chosen if o not in KNOWN]
    if unknown:
        raise SystemExit(f"Unknown objective(s) {unknown}; the benchmark knows {', '.join(KNOWN)}.")
    return chosen


def method_options_by_objective(args: argparse.Namespace) -> dict[str, str]:
    """--method-options 'dino:a=1' ... -> {"dino": "a=1"}; SystemExit naming the problem otherwise."""
    chosen = selected_objectives(args)
    options: dict[str, str] = {}
    for item in args.method_options:
        objective, sep, value = item.partition(":")
        if not sep or not value.strip():
            raise SystemExit(f"--method-options {item!r}: write OBJECTIVE:name=value,..., e.g. dino:use_bn_in_head=true.")
        if objective.strip() not in chosen:
            raise SystemExit(f"--method-options {item!r} names {objective!r}, which this run does not pretrain ({chosen}).")
        options[objective.strip()] = value.strip()
    return options


def resolve_scale(args: argparse.Namespace) -> Scale:
    """The preset of --scale with any of the explicit budget flags applied."""
    overrides = {
        "max_train_examples": args.max_train_examples, "max_test_examples": args.max_test_examples,
        "fractions": tuple(float(f) for f in args.fractions.split(",")) if args.fractions else None,
        "seeds": args.seeds, "supervised_epochs": args.supervised_epochs,
    }
    return replace(SCALES[args.scale], **{k: v for k, v in overrides.items() if v is not None})


def code_version() -> dict[str, Any]:
    """Package versions and, in a git checkout, the commit and whether the tree had local changes: a result
    that cannot be reproduced later can then be traced to the code that made it."""
    import subprocess

    import hfssl
    from hfssl.training.environment import versions

    version: dict[str, Any] = {**versions(), "path": str(Path(hfssl.__file__).parent)}
    root = Path(hfssl.__file__).resolve().parents[1]
    try:
        version["git_commit"] = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                               check=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                                capture_output=True, text=True, check=True).stdout
        version["git_dirty"] = bool(status.strip())
    except (OSError, subprocess.CalledProcessError):
        version["git_commit"] = None  # an installed package, not a checkout
    return version


def model_size(run_dir: Path, args: argparse.Namespace) -> str | None:
    """The size the run was pretrained with: --model-size, or with --skip-pretrain the run's own record."""
    if not args.skip_pretrain:
        return args.model_size
    try:
        manifest = json.loads((run_dir / "run.json").read_text())
        return manifest["arguments"]["model"]["model_size"]
    except (OSError, KeyError, ValueError):
        return None


SKIPPED = {"ok": True, "wall_time_s": None, "error": None, "skipped": True}  # --skip-pretrain's stand-in result


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    if not args.data_dir or not Path(args.data_dir).is_dir():
        raise SystemExit(f"Data folder {args.data_dir!r} not found; pass --data-dir or set HFSSL_DATA_DIR.")
    scale, data_dir, output = resolve_scale(args), Path(args.data_dir), Path(args.output)
    method_options = method_options_by_objective(args)
    report = {"scale": args.scale, "settings": scale.__dict__, "command": " ".join(["python", *sys.argv]),
              "code": code_version(), "objectives": {}}
    for objective in selected_objectives(args):
        run_dir = output / objective
        steps = args.steps or (scale.text_steps if objective in ALL_TEXT else scale.image_steps)
        pretrain = {**SKIPPED} if args.skip_pretrain else run_pretraining(
            pretrain_argv(objective, run_dir, data_dir, steps, method_options.get(objective), args.model_size))
        entry: dict[str, Any] = {"run_dir": str(run_dir), "steps": steps, "model_size": model_size(run_dir, args),
                                 "pretrain": pretrain, "method_options": method_options.get(objective)}
        evaluated = run_dir
        if pretrain["ok"] and args.adapt_steps:
            evaluated = output / f"{objective}-adapted"
            pretrain = {**SKIPPED} if args.skip_pretrain else run_pretraining(
                adapt_argv(objective, run_dir, evaluated, data_dir, args.adapt_steps))
            entry["adapt"] = {"run_dir": str(evaluated), "steps": args.adapt_steps, "pretrain": pretrain}
        if pretrain["ok"]:
            entry["evaluation"] = run_protocols(objective, evaluated, data_dir, scale, args.protocols,
                                                args.baselines)
            entry["verdicts"] = verdicts(entry["evaluation"])
        report["objectives"][objective] = entry
        output.mkdir(parents=True, exist_ok=True)
        (output / "benchmark.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (output / "benchmark.md").write_text(markdown(report))
    print("\n" + markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

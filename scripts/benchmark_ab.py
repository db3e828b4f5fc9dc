"""Does a switch speed up training? Arms of scripts/benchmark.py under several flag sets, interleaved.

Every variant of one arm (same seed, same batches unless the variant changes the data) trains in alternating
rounds in one process: baseline, variant, baseline, variant, ... so all see the same machine state. The
first round is dropped (compilation, allocator warm-up); each variant's ratio is its median throughput over
the baseline's median of the remaining rounds.

    python scripts/benchmark_ab.py --suite clm --arms hfssl --variant "bf16=--autocast bf16"
    python scripts/benchmark_ab.py --suite mlm --arms hfssl --variant "dense head=--hfssl-text-overrides sparse_prediction=false"
    python scripts/benchmark_ab.py --suite mlm,clm --variant "padded=--no-packing" --variant "1 thread=--threads 1"
    python scripts/benchmark_ab.py --suite clm --arms hfssl --variant "plain head=--hfssl-text-overrides loss_chunk_size=0" \\
        -- --vocab-size 32768

A variant is NAME=FLAGS, FLAGS being scripts/benchmark.py flags added to the baseline's; the baseline's own
flags follow `--`. Throughput is the arm's unit (non-pad tokens or images) per second, so a variant that
changes the batches (--no-packing) is compared on the tokens it trains on. Writes <output>/ab.json and prints
a table.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
SUITES = ("mlm", "clm", "mae")


def load_benchmark():
    """scripts/benchmark.py as a module (it is a script, not part of the package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("hfssl_benchmark_script", HERE / "benchmark.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is created
    spec.loader.exec_module(module)
    return module


def parse_variant(text: str) -> tuple[str, list[str]]:
    name, sep, flags = text.partition("=")
    if not sep or not name.strip() or not flags.strip():
        raise argparse.ArgumentTypeError(f"--variant {text!r}: use NAME=FLAGS, e.g. 'bf16=--autocast bf16'.")
    return name.strip(), shlex.split(flags)


def add_common_flags(p: argparse.ArgumentParser) -> None:
    """The flags this script and scripts/benchmark_compile.py share."""
    p.add_argument("--suite", default="mlm,clm,mae", help="comma-separated: " + ",".join(SUITES))
    p.add_argument("--arms", help="comma-separated arm names (default: every arm of each suite)")
    p.add_argument("--rounds", type=int, default=4, help="rounds per variant; the first is dropped (>= 2)")
    p.add_argument("--steps", type=int, default=20, help="timed steps per round")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps at the start of each round")
    p.add_argument("--threads", type=int, default=2, help="torch threads (a variant may set its own --threads)")
    p.add_argument("--data-dir", default=None, help="folder holding fashion_mnist/ (default $HFSSL_DATA_DIR)")
    p.add_argument("--quick", action="store_true", help="scripts/benchmark.py's tiny --quick shapes")


def check_common_flags(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.rounds < 2:
        p.error(f"--rounds must be >= 2 (the first round is dropped), got {args.rounds}.")
    suites = [s.strip() for s in args.suite.split(",") if s.strip()]
    unknown = sorted(set(suites) - set(SUITES))
    if unknown or not suites:
        p.error(f"--suite {args.suite!r}: unknown {unknown}; choose from {','.join(SUITES)}.")
    args.suites = suites


def split_argv(argv: list[str] | None) -> tuple[list[str], list[str]]:
    argv = sys.argv[1:] if argv is None else argv
    return (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    own, rest = split_argv(argv)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_flags(p)
    p.add_argument("--variant", type=parse_variant, action="append", required=True, metavar="NAME=FLAGS",
                   help="a flag set to compare with the baseline (repeatable)")
    p.add_argument("--memory", action="store_true",
                   help="also each variant's peak RSS, training alone in a fresh subprocess (as the harness's --memory)")
    p.add_argument("--baseline-name", default="baseline")
    p.add_argument("--output", default="runs/bench-ab")
    args = p.parse_args(own)
    check_common_flags(p, args)
    names = [args.baseline_name] + [name for name, _ in args.variant]
    if len(set(names)) != len(names):
        p.error(f"Variant names must differ from each other and from the baseline's: {names}.")
    return args, rest


def measure(bench, args: argparse.Namespace, rest: list[str], variants: list[tuple[str, list[str]]],
            memory: bool = False) -> list[dict]:
    """Rows {"suite", "arm", "variants": {name: median units/s}, "ratios": {name: vs the first}, "per_round"},
    with memory also "peak_rss_mib": {name: MiB}."""
    common = ["--suite", ",".join(args.suites), "--threads", str(args.threads), *rest]
    if args.data_dir:
        common += ["--data-dir", args.data_dir]
    if args.quick:
        common.append("--quick")
    parsed = {name: bench.parse_args([*common, *flags]) for name, flags in variants}
    corpora: dict = {}
    prepared = {name: bench.prepare_suites(vargs, corpora) for name, vargs in parsed.items()}
    wanted = {a.strip() for a in args.arms.split(",")} if args.arms else None
    first = variants[0][0]
    per_round = args.warmup + args.steps
    rows = []
    for suite in args.suites:
        for arm in prepared[first][suite][1]:
            if wanted is not None and arm.name not in wanted:
                continue
            runs = {}
            for name, vargs in parsed.items():
                data, arms = prepared[name][suite]
                variant_arm = next(a for a in arms if a.name == arm.name)
                runs[name] = (vargs, data, variant_arm, bench.build(variant_arm, vargs))
            found = {name: [] for name in runs}
            for r in range(args.rounds):
                for name, (vargs, data, variant_arm, model) in runs.items():
                    batches = [data.train[(r * per_round + i) % len(data.train)] for i in range(per_round)]
                    torch.set_num_threads(vargs.threads)
                    bench.set_cpu_gemm_backend(vargs.cpu_gemm)
                    seconds = bench.train(model, variant_arm, batches, vargs)[args.warmup :]
                    found[name].append(sum(variant_arm.units(b) for b in batches[args.warmup :]) / sum(seconds))
                    bench.log(f"{suite}/{arm.name} round {r + 1}/{args.rounds} {name}: {found[name][-1]:,.0f} units/s")
            medians = {name: statistics.median(values[1:]) for name, values in found.items()}
            row = {"suite": suite, "arm": arm.name, "variants": medians,
                   "ratios": {name: value / medians[first] for name, value in medians.items()}, "per_round": found}
            if memory:
                row["peak_rss_mib"] = {name: round(bench.measure_memory(vargs, suite, data, variant_arm)["peak_rss_mib"])
                                       for name, (vargs, data, variant_arm, _) in runs.items()}
            rows.append(row)
    torch.set_num_threads(args.threads)
    return rows


def save(bench, script: str, argv: list[str] | None, args: argparse.Namespace, rows: list[dict], path: Path) -> None:
    """rows, the command that made them, the settings and the environment, as JSON at `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    saved = {"command": " ".join(["python", f"scripts/{script}", *(sys.argv[1:] if argv is None else argv)]),
             "settings": {k: v for k, v in vars(args).items() if k != "variant"}, "environment": bench.environment(),
             "rows": rows}
    path.write_text(json.dumps(saved, indent=2))


def main(argv: list[str] | None = None) -> list[dict]:
    args, rest = parse_args(argv)
    bench = load_benchmark()
    variants = [(args.baseline_name, []), *args.variant]
    rows = measure(bench, args, rest, variants, memory=args.memory)
    save(bench, "benchmark_ab.py", argv, args, rows, Path(args.output) / "ab.json")
    names = [name for name, _ in variants]
    columns = [f"{n} units/s" for n in names] + [f"{n} / {names[0]}" for n in names[1:]]
    columns += [f"{n} peak RSS MiB" for n in names] if args.memory else []
    print("| suite | arm | " + " | ".join(columns) + " |")
    print("|---|---|" + "---|" * len(columns))
    for row in rows:
        cells = [f"{row['variants'][n]:,.0f}" for n in names] + [f"{row['ratios'][n]:.3f}x" for n in names[1:]]
        cells += [str(row["peak_rss_mib"][n]) for n in names] if args.memory else []
        print(f"| {row['suite']} | {row['arm']} | " + " | ".join(cells) + " |")
    return rows


if __name__ == "__main__":
    main()

"""Does torch.compile speed up training? Each arm of scripts/benchmark.py, eager against compiled, interleaved.

Two copies of one arm (same seed, same batches) train in alternating rounds in one process: eager, compiled,
eager, compiled, ... so both see the same machine state. The first round is dropped (it holds the
compilation); the ratio is the median compiled throughput over the median eager throughput of the rest.

    python scripts/benchmark_compile.py --suite mlm,clm,mae --rounds 4 --data-dir ../shared/data
    python scripts/benchmark_compile.py --suite mlm --arms hfssl,modernbert --rounds 4

Shapes, optimizer and batches are scripts/benchmark.py's (its shape flags can follow `--`, e.g.
`-- --hfssl-text-overrides position_embedding_type=learned`). Writes <output>/compile.json and prints a table.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent


def load_benchmark():
    """scripts/benchmark.py as a module (it is a script, not part of the package)."""
    spec = importlib.util.spec_from_file_location("hfssl_benchmark_script", HERE / "benchmark.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is created
    spec.loader.exec_module(module)
    return module


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    argv = sys.argv[1:] if argv is None else argv
    own, rest = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--suite", default="mlm,clm,mae", help="comma-separated: mlm,clm,mae")
    p.add_argument("--arms", help="comma-separated arm names (default: every arm of each suite)")
    p.add_argument("--rounds", type=int, default=4, help="rounds per variant; the first is dropped (>= 2)")
    p.add_argument("--steps", type=int, default=20, help="timed steps per round")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps at the start of each round")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--data-dir", default=None, help="folder holding fashion_mnist/ (default $HFSSL_DATA_DIR)")
    p.add_argument("--quick", action="store_true", help="scripts/benchmark.py's tiny --quick shapes")
    p.add_argument("--output", default="runs/bench-compile")
    args = p.parse_args(own)
    if args.rounds < 2:
        p.error(f"--rounds must be >= 2 (the first round holds the compilation), got {args.rounds}.")
    suites = [s.strip() for s in args.suite.split(",") if s.strip()]
    unknown = sorted(set(suites) - {"mlm", "clm", "mae"})
    if unknown or not suites:
        p.error(f"--suite {args.suite!r}: unknown {unknown}; choose from mlm,clm,mae.")
    args.suites = suites
    return args, rest


def measure(bench, args: argparse.Namespace, rest: list[str]) -> list[dict]:
    common = ["--suite", ",".join(args.suites), "--threads", str(args.threads), *rest]
    if args.data_dir:
        common += ["--data-dir", args.data_dir]
    if args.quick:
        common.append("--quick")
    eager_args, compiled_args = bench.parse_args(common), bench.parse_args([*common, "--compile"])
    torch.set_num_threads(args.threads)
    wanted = {a.strip() for a in args.arms.split(",")} if args.arms else None
    rows = []
    per_round = args.warmup + args.steps
    for suite, (data, arms) in bench.prepare_suites(eager_args).items():
        for arm in arms:
            if wanted is not None and arm.name not in wanted:
                continue
            models = {"eager": bench.build(arm, eager_args), "compiled": bench.build(arm, compiled_args)}
            found = {name: [] for name in models}
            for r in range(args.rounds):
                batches = [data.train[(r * per_round + i) % len(data.train)] for i in range(per_round)]
                for name, model in models.items():
                    seconds = bench.train(model, arm, batches, eager_args)[args.warmup :]
                    found[name].append(sum(arm.units(b) for b in batches[args.warmup :]) / sum(seconds))
                    bench.log(f"{suite}/{arm.name} round {r + 1}/{args.rounds} {name}: {found[name][-1]:,.0f} units/s")
            eager, compiled = (statistics.median(found[n][1:]) for n in ("eager", "compiled"))
            rows.append({"suite": suite, "arm": arm.name, "eager": eager, "compiled": compiled,
                         "ratio": compiled / eager, "per_round": found})
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    args, rest = parse_args(argv)
    bench = load_benchmark()
    rows = measure(bench, args, rest)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    report = {"command": " ".join(["python", "scripts/benchmark_compile.py", *(sys.argv[1:] if argv is None else argv)]),
              "settings": vars(args), "environment": bench.environment(), "rows": rows}
    (out / "compile.json").write_text(json.dumps(report, indent=2))
    print("| suite | arm | eager units/s | compiled units/s | compiled / eager |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['suite']} | {row['arm']} | {row['eager']:,.0f} | {row['compiled']:,.0f} | {row['ratio']:.3f}x |")
    return rows


if __name__ == "__main__":
    main()

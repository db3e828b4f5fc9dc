"""Does torch.compile speed up training? Each arm of scripts/benchmark.py, eager against compiled, interleaved.

Two copies of one arm (same seed, same batches) train in alternating rounds in one process: eager, compiled,
eager, compiled, ... so both see the same machine state. The first round is dropped (it holds the
compilation); the ratio is the median compiled throughput over the median eager throughput of the rest.
This is scripts/benchmark_ab.py with the one variant `compiled=--compile`.

    python scripts/benchmark_compile.py --suite mlm,clm,mae --rounds 4 --data-dir ../shared/data
    python scripts/benchmark_compile.py --suite mlm --arms hfssl,modernbert --rounds 4

Shapes, optimizer and batches are scripts/benchmark.py's (its shape flags can follow `--`, e.g.
`-- --hfssl-text-overrides position_embedding_type=learned`). Writes <output>/compile.json and prints a table.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def load_ab():
    """scripts/benchmark_ab.py as a module."""
    spec = importlib.util.spec_from_file_location("hfssl_benchmark_ab_script", HERE / "benchmark_ab.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


ab = load_ab()


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    own, rest = ab.split_argv(argv)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ab.add_common_flags(p)
    p.add_argument("--output", default="runs/bench-compile")
    args = p.parse_args(own)
    ab.check_common_flags(p, args)
    return args, rest


def main(argv: list[str] | None = None) -> list[dict]:
    args, rest = parse_args(argv)
    bench = ab.load_benchmark()
    rows = [{"suite": row["suite"], "arm": row["arm"], "eager": row["variants"]["eager"],
             "compiled": row["variants"]["compiled"], "ratio": row["ratios"]["compiled"], "per_round": row["per_round"]}
            for row in ab.measure(bench, args, rest, [("eager", []), ("compiled", ["--compile"])])]
    ab.save(bench, "benchmark_compile.py", argv, args, rows, Path(args.output) / "compile.json")
    print("| suite | arm | eager units/s | compiled units/s | compiled / eager |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['suite']} | {row['arm']} | {row['eager']:,.0f} | {row['compiled']:,.0f} | {row['ratio']:.3f}x |")
    return rows


if __name__ == "__main__":
    main()

"""Which library multiplies float32 matrices faster on this CPU: aten (MKL in PyTorch's x86 builds) or oneDNN?

hfssl's models run their CPU products through oneDNN where `hfssl.models.cpu_gemm` says so (by default on AMD
CPUs, where MKL measured at half of oneDNN's rate). This script measures both libraries on the products of a
training step so the choice can be checked on any machine, and `HFSSL_CPU_GEMM` set by what it finds:

    python scripts/benchmark_gemm.py --threads 2 --output runs/bench-gemm
    python scripts/benchmark_gemm.py --shapes 2048x256x1024,128x256x8192 --repeats 50

A shape MxKxN is one linear layer: M rows of K features into N outputs. For each it times the three products
of a training step (forward x W^T, input gradient G W, weight gradient G^T x), each the way hfssl computes it
(aten: `F.linear` and `@`; oneDNN: `hfssl.models.cpu_gemm`), the median of --repeats calls after a warm-up,
interleaved so both libraries see the same machine state. Prints a table (GFLOP/s per product and library,
oneDNN's speed-up) and writes <output>/gemm.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.nn.functional as F

from hfssl.models import cpu_gemm

# The products of the benchmark's default shapes (scripts/benchmark.py): text 16 x 128 rows at d = 256 (QKV,
# attention output, MLP up and down, a vocabulary chunk), MAE 128 images of 17 visible or 65 decoder tokens.
DEFAULT_SHAPES = "2048x256x768,2048x256x256,2048x256x1024,2048x1024x256,128x256x8192,2176x192x576,8320x128x512"


def parse_shapes(text: str) -> list[tuple[int, int, int]]:
    shapes = []
    for part in text.split(","):
        try:
            m, k, n = (int(v) for v in part.strip().lower().split("x"))
        except ValueError:
            raise SystemExit(f"--shapes: {part.strip()!r} is not MxKxN (e.g. 2048x256x1024)") from None
        if min(m, k, n) < 1:
            raise SystemExit(f"--shapes: {part.strip()!r} has a zero or negative size")
        shapes.append((m, k, n))
    return shapes


def products(m: int, k: int, n: int, library: str) -> dict[str, callable]:
    """The three products of one linear layer's training step, as `library` computes them."""
    x, w, g = torch.randn(m, k), torch.randn(n, k), torch.randn(m, n)
    if library == "onednn":
        nt = cpu_gemm._nt
        return {"forward": lambda: nt(x, w, None), "input grad": lambda: nt(g, w.t(), None),
                "weight grad": lambda: cpu_gemm._weight_grad(g, x)}
    return {"forward": lambda: F.linear(x, w), "input grad": lambda: g @ w, "weight grad": lambda: g.t() @ x}


def time_call(fn, repeats: int) -> float:
    """Median seconds of `repeats` calls after 3 untimed ones."""
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shapes", default=DEFAULT_SHAPES, help="comma-separated MxKxN (rows x in x out)")
    p.add_argument("--repeats", type=int, default=20, help="timed calls per product, library and round")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the median round is reported")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--output", default=None, help="folder for gemm.json")
    args = p.parse_args(argv)
    if args.repeats < 1 or args.rounds < 1:
        p.error("--repeats and --rounds must be >= 1")
    shapes = parse_shapes(args.shapes)
    if args.threads:
        torch.set_num_threads(args.threads)
    if not cpu_gemm._onednn_works():
        raise SystemExit("This PyTorch build has no working oneDNN linear op (torch.ops.mkldnn._linear_pointwise); "
                         "hfssl uses aten's products here, so there is nothing to compare.")
    rows = []
    for m, k, n in shapes:
        calls = {lib: products(m, k, n, lib) for lib in ("aten", "onednn")}
        seconds: dict[str, dict[str, list[float]]] = {lib: {name: [] for name in calls[lib]} for lib in calls}
        for _ in range(args.rounds):
            for name in calls["aten"]:
                for lib in ("aten", "onednn"):
                    seconds[lib][name].append(time_call(calls[lib][name], args.repeats))
        flops = 2 * m * k * n
        for name in calls["aten"]:
            aten, onednn = (statistics.median(seconds[lib][name]) for lib in ("aten", "onednn"))
            rows.append({"shape": f"{m}x{k}x{n}", "product": name, "aten_gflops": flops / aten / 1e9,
                         "onednn_gflops": flops / onednn / 1e9, "onednn_speedup": aten / onednn})
    report = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["python", "scripts/benchmark_gemm.py", *(sys.argv[1:] if argv is None else argv)]),
        "cpu_vendor": cpu_gemm._cpu_vendor(), "torch": torch.__version__, "threads": torch.get_num_threads(),
        "hfssl_cpu_gemm": cpu_gemm.cpu_gemm_backend(), "rows": rows,
    }
    print(f"CPU vendor {report['cpu_vendor'] or 'unknown'}, torch {report['torch']}, {report['threads']} threads; "
          f"hfssl's products run on: {report['hfssl_cpu_gemm']}\n")
    print("| M x K x N | product | aten GFLOP/s | oneDNN GFLOP/s | oneDNN / aten |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['shape']} | {r['product']} | {r['aten_gflops']:.0f} | {r['onednn_gflops']:.0f} | "
              f"{r['onednn_speedup']:.2f}x |")
    if args.output:
        out = Path(args.output)
        out.mkdir(parents=True, exist_ok=True)
        (out / "gemm.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()

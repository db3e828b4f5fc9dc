"""Linear-probe fitting time with BLAS threads left as they are against one BLAS thread (the default).

    python scripts/benchmark_probe.py                       # every size below, 3 repeats, median seconds
    python scripts/benchmark_probe.py --sizes 1020x768x2 --repeats 5

`hfssl.evaluation.linear_probe` fits many small logistic regressions (C chosen by cross-validation on small
label sets). Once torch has run on the CPU (feature extraction does), its OpenMP threads compete with the
BLAS library's own threads for the cores, and the fits slow down. This script runs a torch product first, as an
evaluation does, then times `linear_probe(..., blas_threads=None)` against `blas_threads=1` on synthetic
features shaped like a language model's: a decaying spectrum in a random basis plus an offset, so the fits are
as ill-conditioned as real frozen features. It prints seconds and the chosen C and test accuracy of each.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch

from hfssl.evaluation.probes import linear_probe

DEFAULT_SIZES = "102x768x2,1020x768x2,10201x768x2,30000x384x10"


def features(n: int, dim: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train x, train y, test x, test y): n training and 2,000 test rows of correlated features whose label
    depends on two of the directions, split into `classes` equal-sized classes."""
    rng = np.random.default_rng(seed)
    spectrum = np.exp(-np.arange(dim) / 40.0)
    basis = np.linalg.qr(rng.normal(size=(dim, dim)))[0]
    offset = 3 * rng.normal(size=dim)
    edges = None
    out = []
    for rows in (n, 2000):
        z = rng.normal(size=(rows, dim)) * spectrum
        score = z[:, 3] + z[:, 10] + 0.3 * rng.normal(size=rows)
        edges = np.quantile(score, np.linspace(0, 1, classes + 1)[1:-1]) if edges is None else edges
        out += [(z @ basis.T + offset).astype(np.float32), np.digitize(score, edges)]
    return tuple(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default=DEFAULT_SIZES, help="comma-separated NxDxCLASSES (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.ones(512, 512) @ torch.ones(512, 512)  # start torch's OpenMP threads, as feature extraction does
    print(f"{os.cpu_count()} CPUs, torch {torch.__version__} with {torch.get_num_threads()} threads")
    print("| train rows x dim x classes | BLAS as is (s) | one BLAS thread (s) | speed-up | C (as is / one) | "
          "test accuracy (as is / one) |")
    print("|---|---|---|---|---|---|")
    for size in args.sizes.split(","):
        n, dim, classes = (int(v) for v in size.split("x"))
        x, y, x_test, y_test = features(n, dim, classes, args.seed)
        seconds, results = {}, {}
        for threads in (None, 1):
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                results[threads] = linear_probe(x, y, x_test, y_test, blas_threads=threads)
                times.append(time.perf_counter() - start)
            seconds[threads] = statistics.median(times)
        print(f"| {size} | {seconds[None]:.2f} | {seconds[1]:.2f} | {seconds[None] / seconds[1]:.1f}x | "
              f"{results[None]['protocol']['C']} / {results[1]['protocol']['C']} | "
              f"{results[None]['accuracy']:.4f} / {results[1]['accuracy']:.4f} |")


if __name__ == "__main__":
    main()

"""Side-by-side training benchmark: hfssl models against the transformers reference models (issue 9).

    python scripts/benchmark.py --suite mlm,clm,mae,contrastive --repeats 3 --steps 20 --warmup 3 \
        --threads 2 --budget-s 60 --output runs/bench
    python scripts/benchmark.py --quick --output runs/bench-quick      # a seconds-long smoke run

Suites and arms (every model is built from a config with random weights; nothing is downloaded):
- mlm: hfssl `HfsslTextForMaskedLM` (sparse head) | `BertForMaskedLM` (sdpa) | `ModernBertForMaskedLM`
  (sparse_prediction=True, every layer global attention, so all three run the same full attention);
- clm: hfssl `HfsslTextForCausalLM` | `GPT2LMHeadModel` | `LlamaForCausalLM` (sdpa);
- mae: hfssl `HfsslVisionForMaskedImageModeling` | `ViTMAEForPreTraining` (same encoder, decoder, mask ratio,
  norm_pix_loss, and the same masking noise per batch);
- contrastive: hfssl SimCLR through `SSLTrainer` (the HF Trainer) | a plain PyTorch loop with the same model,
  views, loss, optimizer and batches.

How it measures. One process; for each suite the arms run interleaved (A B C A B C ...) for `--repeats`
rounds of `--warmup` untimed plus `--steps` timed optimizer steps, each round with a fresh optimizer. All arms
of a suite see the same batches in the same order (MLM masks drawn once by hfssl's StaticMaskingCollator),
the same AdamW (Trainer's parameter groups: no decay on biases and norms), the same constant-with-warmup
schedule and gradient clipping. A step time is the interval between the ends of consecutive optimizer steps,
so it covers data fetch, forward, backward, clipping, the optimizer and (Trainer) callbacks and logging.

Model FLOPs per step (training = 3 x forward; a matmul of an (n x a) by an (a x b) matrix is 2nab FLOPs):
    linear(n, a, b)          = 6 n a b
    blocks(B, T, L, d, F, m) = 6 B T L (4 d^2 + m d F) + 12 B L T^2 d
                               m = 2 for a GELU MLP, 3 for a gated (SwiGLU/GeGLU) one; 12 B L T^2 d is
                               QK^T and AV over the full T x T square, also for causal attention.
    mlm  = blocks(B, T, ...) + linear(M, d, d) + linear(M, d, V)     M = masked positions in the batch
    clm  = blocks(B, T, ...) + linear(B T, d, V)
    mae  = linear(B K, p^2 c, d) + blocks(B, K+1, Le, d, F, 2) + linear(B (K+1), d, dd)
           + blocks(B, P+1, Ld, dd, Fd, 2) + linear(B P, dd, p^2 c)      P patches, K = int(P (1 - ratio))
    simclr = 2 views x [linear(B P, p^2 c, d) + blocks(B, P+1, Le, d, F, 2) + linear(B, d, h) + linear(B, h, o)]
Embedding lookups, norms, activations, softmax and the loss are not counted. The model FLOPs count what the
objective needs (the MLM head on the M masked positions for every arm); `executed` FLOPs count what the arm
runs (a dense MLM head on all B T positions, patch embedding and pixel head on every patch; hfssl's sparse last
MLM layer and last MAE decoder layer, whose outputs and heads cover the masked positions only).
MFU = model FLOP/s (timed FLOPs / timed seconds, median over rounds) / the in-run matmul probe (median of
every probe sample; one probe set runs before each round): 1024^3 fp32 on the CPU, each sample the faster of
aten's matmul and oneDNN's (hfssl's models may run their products on either: hfssl.models.cpu_gemm, and
--cpu-gemm); with --device cuda,
8192^3 in the training dtype (bf16 with --autocast bf16), the achievable peak of that GPU.

GPU (--device cuda): models and batches live on the GPU (batches moved once, before timing), every step
ends with torch.cuda.synchronize() before its clock reading, and memory is the GPU's peak allocation.
--preset base gives the BERT-base / GPT-2-124M / ViT-B-MAE shapes:
    python scripts/benchmark.py --device cuda --preset base --autocast bf16 --suite mlm,mae --budget-s 0

Also recorded: versions, CPU model and flags, torch threads, peak RSS per arm (each arm alone in a fresh
subprocess that runs a few steps; on Linux the peak counter is reset once imports and batches are loaded),
and the held-out loss after `--budget-s` seconds of training from the same seed.
`--hfssl-text-overrides use_bias=false` (and `--hfssl-vision-overrides`) try hfssl config switches that keep
the shape, for A/B runs against the same references. `--cpu-gemm aten|onednn|auto` picks the library of the
hfssl arms' float32 CPU products (hfssl.models.cpu_gemm; the references always use aten's): `aten` compares
the architectures with the library held equal.
Writes <output>/benchmark.json and <output>/benchmark.md, prints the table and the issue-9 targets.
"""

from __future__ import annotations

import argparse
import bisect
import gzip
import inspect
import itertools
import json
import os
import platform
import random
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import (
    BertConfig,
    BertForMaskedLM,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    ModernBertConfig,
    ModernBertForMaskedLM,
    PrinterCallback,
    TrainerCallback,
    ViTMAEConfig,
    ViTMAEForPreTraining,
    get_constant_schedule_with_warmup,
)
from transformers.trainer_pt_utils import get_parameter_names

from hfssl.models import (
    HfsslTextConfig,
    HfsslTextForCausalLM,
    HfsslTextForMaskedLM,
    HfsslVisionConfig,
    HfsslVisionForContrastiveLearning,
    HfsslVisionForMaskedImageModeling,
    resolve_method_params,
)
from hfssl.models.cpu_gemm import cpu_gemm_backend, set_cpu_gemm_backend
from hfssl.training.environment import versions

SUITE_NAMES = ("mlm", "clm", "mae", "contrastive")
CPU_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
             "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8", "asimd", "sve", "sve2")
# (suite, reference arm, factor): hfssl's throughput must be >= factor x the reference's (issue 9).
SPEED_TARGETS = (("mlm", "modernbert", 1.10), ("clm", "llama", 1.10), ("mae", "vitmae", 1.15))
MAX_TRAINER_OVERHEAD = 0.05
# p90 / p10 of the matmul probe samples above this: the CPU was shared during the run.
BUSY_PROBE_SPREAD = 1.25
# Config fields the FLOP formulas read from the shape flags: --hfssl-*-overrides may not change them.
SHAPE_FIELDS = frozenset({
    "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "hidden_act",
    "max_position_embeddings", "image_size", "patch_size", "num_channels", "decoder_hidden_size",
    "decoder_num_hidden_layers", "decoder_num_attention_heads", "decoder_intermediate_size", "mask_ratio",
    "is_causal", "sparse_prediction", "ssl",
})
# --quick: a seconds-long smoke run of every arm (explicit flags still win).
QUICK = dict(repeats=3, steps=2, warmup=1, budget_s=0.5, memory=False, layers=1, hidden=64, heads=2, ffn=128,
             seq_len=32, vocab_size=1024, text_batch=4, vit_layers=1, vit_hidden=32, vit_heads=2, vit_ffn=64,
             decoder_hidden=32, decoder_layers=1, decoder_heads=2, decoder_ffn=64, mae_batch=8,
             contrastive_batch=8, max_images=256, eval_batches=1, lr_warmup_steps=1)
# --preset base: the GPU shapes of issue 9 (BERT-base / GPT-2-124M body, ViT-B/16 MAE with its 8 x 512 decoder).
# GPT-2's own context and vocabulary: add --suite clm --seq-len 1024 --vocab-size 50257.
BASE = dict(layers=12, hidden=768, heads=12, ffn=3072, seq_len=512, vocab_size=32768, text_batch=32,
            image_size=224, patch_size=16, vit_layers=12, vit_hidden=768, vit_heads=12, vit_ffn=3072,
            decoder_hidden=512, decoder_layers=8, decoder_heads=16, decoder_ffn=2048, mae_batch=64,
            contrastive_batch=32, max_images=2048)


# ---------------------------------------------------------------- command line


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    run = p.add_argument_group("run")
    run.add_argument("--suite", default=",".join(SUITE_NAMES), help="comma-separated: " + ",".join(SUITE_NAMES))
    run.add_argument("--repeats", type=int, default=3, help="interleaved rounds per arm (medians over rounds)")
    run.add_argument("--steps", type=int, default=20, help="timed optimizer steps per round")
    run.add_argument("--warmup", type=int, default=3, help="untimed steps at the start of each round")
    run.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    run.add_argument("--budget-s", type=float, default=60.0, help="wall-clock training per arm for the loss column")
    run.add_argument("--output", default="runs/bench", help="folder for benchmark.json and benchmark.md")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--quick", action="store_true", help="tiny shapes and budgets: a smoke run of every arm")
    run.add_argument("--preset", choices=("base",), default=None,
                     help="base: BERT-base / GPT-2-124M / ViT-B-MAE shapes for a GPU (explicit flags still win)")
    run.add_argument("--device", default="cpu", choices=("cpu", "cuda"),
                     help="where models and batches live; cuda times steps with torch.cuda.synchronize()")
    run.add_argument("--memory", action=argparse.BooleanOptionalAction, default=True,
                     help="peak RSS per arm, each in a fresh subprocess (off in --quick)")
    run.add_argument("--profile", type=int, default=0, metavar="N",
                     help="also profile N steps of every loop arm with torch.profiler (tables in <output>/profile, "
                          "sorted by the ops' own CPU time, or their kernels' time with --device cuda)")
    run.add_argument("--data-dir", default=os.environ.get("HFSSL_DATA_DIR"),
                     help="folder holding fashion_mnist/ (default $HFSSL_DATA_DIR); else scikit-learn digits")
    run.add_argument("--eval-batches", type=int, default=4, help="held-out batches for the loss column")
    text = p.add_argument_group("text shape (mlm, clm)")
    text.add_argument("--layers", type=int, default=4)
    text.add_argument("--hidden", type=int, default=256)
    text.add_argument("--heads", type=int, default=4)
    text.add_argument("--ffn", type=int, default=1024, help="GELU MLP width")
    text.add_argument("--gated-ffn", type=int, default=None,
                      help="gated MLP width (ModernBERT, Llama); default 2/3 x --ffn to a multiple of 8 "
                           "(equal MLP parameters)")
    text.add_argument("--hfssl-act", choices=("gelu", "swiglu"), default="gelu", help="hfssl text MLP")
    text.add_argument("--hfssl-text-overrides", default=None, metavar="K=V,...",
                      help="HfsslTextConfig fields for the hfssl arms, e.g. use_bias=false (shape fields excluded)")
    text.add_argument("--seq-len", type=int, default=128)
    text.add_argument("--vocab-size", type=int, default=8192)
    text.add_argument("--text-batch", type=int, default=16, help="sequences per step")
    text.add_argument("--mask-prob", type=float, default=0.15)
    text.add_argument("--hfssl-mlm-head", choices=("static", "sparse", "dense"), default="static",
                      help="hfssl MLM head: static (masked_positions from the collator, the default), sparse "
                           "(boolean selection of the masked rows) or dense (every position, as BERT)")
    text.add_argument("--packing", action=argparse.BooleanOptionalAction, default=True,
                      help="packed blocks (default), or --no-packing: one document (or a seq-len piece of one) per "
                           "row, padded to the longest row of its batch; tokens/s counts non-pad tokens, the FLOP "
                           "counts (and MFU) every position")
    vision = p.add_argument_group("vision shape (mae, contrastive)")
    vision.add_argument("--image-size", type=int, default=32)
    vision.add_argument("--patch-size", type=int, default=4)
    vision.add_argument("--vit-layers", type=int, default=6)
    vision.add_argument("--vit-hidden", type=int, default=192)
    vision.add_argument("--vit-heads", type=int, default=3)
    vision.add_argument("--vit-ffn", type=int, default=768)
    vision.add_argument("--decoder-hidden", type=int, default=128)
    vision.add_argument("--decoder-layers", type=int, default=2)
    vision.add_argument("--decoder-heads", type=int, default=4)
    vision.add_argument("--decoder-ffn", type=int, default=512)
    vision.add_argument("--mask-ratio", type=float, default=0.75)
    vision.add_argument("--mae-batch", type=int, default=128, help="images per step")
    vision.add_argument("--contrastive-batch", type=int, default=64, help="images per step (two views each)")
    vision.add_argument("--max-images", type=int, default=4096, help="training images in the pool")
    vision.add_argument("--hfssl-vision-overrides", default=None, metavar="K=V,...",
                        help="HfsslVisionConfig fields for the hfssl arms (shape fields excluded)")
    optim = p.add_argument_group("optimization (the same for every arm)")
    optim.add_argument("--lr", type=float, default=5e-4)
    optim.add_argument("--weight-decay", type=float, default=0.01)
    optim.add_argument("--betas", type=float, nargs=2, default=(0.9, 0.999))
    optim.add_argument("--lr-warmup-steps", type=int, default=10, help="linear warm-up, then constant")
    optim.add_argument("--max-grad-norm", type=float, default=1.0, help="0 turns clipping off")
    optim.add_argument("--fused-adamw", action=argparse.BooleanOptionalAction, default=True,
                       help="torch AdamW fused=True (the Trainer's default optim on torch >= 2.8)")
    optim.add_argument("--hfssl-attention", choices=("sdpa", "eager"), default="sdpa",
                       help="attention of the hfssl arms: sdpa (default, as every reference) or eager (matmul, "
                            "softmax, matmul)")
    optim.add_argument("--cpu-gemm", choices=("auto", "onednn", "aten"), default="auto",
                       help="library of the hfssl arms' float32 CPU products (hfssl.models.cpu_gemm): auto "
                            "(default: oneDNN on AMD CPUs, aten/MKL elsewhere), onednn or aten; the reference "
                            "arms always run aten's")
    optim.add_argument("--autocast", choices=("fp32", "bf16"), default="fp32",
                       help="bf16: forward passes under torch.autocast (bf16 matmuls; as the Trainer's --bf16)")
    optim.add_argument("--dropout", type=float, default=0.0, help="hidden/embedding dropout of every arm")
    optim.add_argument("--compile", action="store_true",
                       help="torch.compile every arm (TorchInductor; give --warmup room for the compilation)")
    optim.add_argument("--compile-dynamic", action=argparse.BooleanOptionalAction, default=None,
                       help="torch.compile(dynamic=...): default None lets torch mark shapes dynamic after a "
                            "recompilation (the references' masked-token count varies per batch)")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse flags; --quick replaces the defaults (not explicit flags) by QUICK."""
    parser = build_parser()
    given = sys.argv[1:] if argv is None else argv
    if "--quick" in given:
        parser.set_defaults(**QUICK)
    if "--preset" in given or "--preset=base" in given:
        parser.set_defaults(**BASE)
    args = parser.parse_args(argv)
    if args.quick and args.preset:
        parser.error("--quick and --preset both set the shapes; choose one.")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA device here (torch.cuda.is_available() is False).")
    args.suites = [s.strip() for s in args.suite.split(",") if s.strip()]
    unknown = sorted(set(args.suites) - set(SUITE_NAMES))
    if unknown or not args.suites:
        parser.error(f"--suite {args.suite!r}: unknown {unknown}; choose from {','.join(SUITE_NAMES)}.")
    for name in ("repeats", "steps", "threads", "eval_batches", "text_batch", "mae_batch"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}.")
    if args.contrastive_batch < 2:
        parser.error("--contrastive-batch must be >= 2: SimCLR contrasts the images of a batch.")
    for flag in ("hfssl_text_overrides", "hfssl_vision_overrides"):
        named = {part.split("=", 1)[0].strip() for part in (getattr(args, flag) or "").split(",") if part.strip()}
        if named & SHAPE_FIELDS:
            parser.error(f"--{flag.replace('_', '-')}: {sorted(named & SHAPE_FIELDS)} set the shape, which the "
                         "FLOP formulas read from the shape flags; use those flags instead.")
    if args.gated_ffn is None:
        args.gated_ffn = max(8, round(2 * args.ffn / 3 / 8) * 8)
    return args


# ---------------------------------------------------------------- environment and the matmul probe


def cpu_description() -> dict[str, Any]:
    """CPU model, the SIMD/matrix flags it has (from /proc/cpuinfo on Linux) and torch's dispatch level."""
    info: dict[str, Any] = {"model": platform.processor() or platform.machine(), "flags": [],
                            "logical_cpus": os.cpu_count(), "torch_cpu_capability": None}
    try:
        text = Path("/proc/cpuinfo").read_text()
        model = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
        flags = re.search(r"^(?:flags|Features)\s*:\s*(.+)$", text, re.MULTILINE)
        info["model"] = model.group(1).strip() if model else info["model"]
        info["flags"] = [f for f in CPU_FLAGS if flags and f in flags.group(1).split()]
    except OSError:
        pass
    try:
        info["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    except AttributeError:
        pass
    return info


def environment() -> dict[str, Any]:
    found = {"versions": versions(), "python": platform.python_version(), "platform": platform.platform(),
             "cpu": cpu_description(), "torch_threads": torch.get_num_threads(),
             "torch_interop_threads": torch.get_num_interop_threads(), "mkldnn": torch.backends.mkldnn.is_available(),
             "hfssl_cpu_gemm": cpu_gemm_backend()}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        found["cuda"] = {"device": props.name, "capability": f"{props.major}.{props.minor}",
                         "memory_gib": round(props.total_memory / 2**30, 1), "cuda": torch.version.cuda}
    return found


def synchronize(device: str) -> None:
    """Wait for queued GPU work, so a host clock reading covers it (nothing to wait for on the CPU)."""
    if device == "cuda":
        torch.cuda.synchronize()


def probe_settings(args: argparse.Namespace) -> tuple[int, torch.dtype]:
    """The matmul probe's size and dtype: 1024^3 fp32 on the CPU; 8192^3 on a GPU, in the training dtype."""
    dtype = torch.bfloat16 if args.autocast == "bf16" else torch.float32
    return (8192, dtype) if args.device == "cuda" else (1024, torch.float32)


def matmul_gflops(n: int = 1024, repeats: int = 8, device: str = "cpu", dtype: torch.dtype = torch.float32,
                  library: str = "aten") -> list[float]:
    """GFLOP/s of an (n x n) @ (n x n) matmul (2 n^3 FLOPs), one value per timed repetition; `library` "onednn"
    computes it with hfssl.models.cpu_gemm's oneDNN product (CPU float32 only)."""
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    if library == "onednn":
        product = lambda: torch.ops.mkldnn._linear_pointwise(a, b, None, "none", [], "")  # a @ b.T: same FLOPs
    else:
        product = lambda: a @ b
    for _ in range(2):
        product()
    rates = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        product()
        synchronize(device)
        rates.append(2 * n**3 / (time.perf_counter() - start) / 1e9)
    return rates


def probe_libraries(args: argparse.Namespace) -> tuple[str, ...]:
    """The libraries the probe times: aten everywhere; on a CPU also oneDNN where this torch build has it, since
    the hfssl arms may run their products there (the faster of the two is the achievable peak)."""
    if args.device != "cpu" or not torch.backends.mkldnn.is_available():
        return ("aten",)
    try:
        matmul_gflops(8, repeats=1, library="onednn")
    except (AttributeError, RuntimeError):
        return ("aten",)
    return ("aten", "onednn")


def probe_round(args: argparse.Namespace, by_library: dict[str, list[float]]) -> list[float]:
    """One probe set: per repetition the fastest library's rate (each library's own samples go to by_library)."""
    n, dtype = probe_settings(args)
    samples = {lib: matmul_gflops(n, device=args.device, dtype=dtype, library=lib) for lib in probe_libraries(args)}
    for lib, rates in samples.items():
        by_library.setdefault(lib, []).extend(rates)
    return [max(rates) for rates in zip(*samples.values())]


def to_device(batch: dict[str, Any], device: str) -> dict[str, Any]:
    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}


# ---------------------------------------------------------------- analytic FLOPs (see the module docstring)


def linear_flops(rows: int, fan_in: int, fan_out: int) -> int:
    """Training FLOPs of a (fan_in -> fan_out) linear layer applied to `rows` vectors."""
    return 6 * rows * fan_in * fan_out


def block_flops(sequences: int, tokens: int, layers: int, width: int, ffn: int, gated: bool = False) -> int:
    """Training FLOPs of `layers` transformer blocks on `sequences` x `tokens`: matmuls plus full attention."""
    matmul_params = layers * (4 * width**2 + (3 if gated else 2) * width * ffn)
    return 6 * sequences * tokens * matmul_params + 12 * sequences * layers * tokens**2 * width


def sparse_last_block_flops(sequences: int, tokens: int, width: int, ffn: int, rows: int, gated: bool = False) -> int:
    """Training FLOPs of one block that computes its output at `rows` of its sequences x tokens positions only
    (hfssl's sparse last layer): Q, K and V still on every position, the queries, attention output and MLP on
    those rows."""
    return (linear_flops(sequences * tokens, width, 3 * width) + linear_flops(rows, width, width)
            + linear_flops(rows, width, (3 if gated else 2) * ffn) + 12 * rows * tokens * width)


def text_flops(batch: int, seq_len: int, layers: int, width: int, ffn: int, gated: bool, vocab: int,
               head_rows: int, mlm_head: bool, last_layer_rows: int | None = None) -> int:
    """One training step of a text model; the vocabulary head runs on `head_rows` positions (MLM: plus a d x d
    transform). `last_layer_rows`: the last block computes its queries, attention output and MLP on that many
    rows only (hfssl's sparse last layer), its Q, K and V projection still on every position."""
    head = linear_flops(head_rows, width, vocab) + (linear_flops(head_rows, width, width) if mlm_head else 0)
    if last_layer_rows is None or layers == 0:
        return block_flops(batch, seq_len, layers, width, ffn, gated) + head
    last = sparse_last_block_flops(batch, seq_len, width, ffn, last_layer_rows, gated)
    return block_flops(batch, seq_len, layers - 1, width, ffn, gated) + last + head


def mae_flops(args: argparse.Namespace, batch: int, executed: bool = False, sparse_last: bool = False) -> int:
    """One MAE training step. Model FLOPs: patch embedding on the kept patches, the pixel head on every patch.
    `executed`: what an arm runs, the patch embedding on every patch and the pixel head on every row (class
    token too); with `sparse_last` (hfssl's sparse last decoder layer) the last decoder block's outputs and the
    pixel head on the masked patches only."""
    patches = (args.image_size // args.patch_size) ** 2
    kept = int(patches * (1 - args.mask_ratio))
    pixels = args.patch_size**2 * 3
    embedded, predicted = (patches, patches + 1) if executed else (kept, patches)
    tokens, width, ffn, layers = patches + 1, args.decoder_hidden, args.decoder_ffn, args.decoder_layers
    decoder = block_flops(batch, tokens, layers, width, ffn)
    if executed and sparse_last and layers > 0:
        predicted = patches - kept
        decoder = (block_flops(batch, tokens, layers - 1, width, ffn)
                   + sparse_last_block_flops(batch, tokens, width, ffn, batch * predicted))
    return (linear_flops(batch * embedded, pixels, args.vit_hidden)
            + block_flops(batch, kept + 1, args.vit_layers, args.vit_hidden, args.vit_ffn)
            + linear_flops(batch * (kept + 1), args.vit_hidden, args.decoder_hidden)
            + decoder + linear_flops(batch * predicted, args.decoder_hidden, pixels))


def simclr_flops(args: argparse.Namespace, batch: int, hidden: int, out: int, views: int = 2) -> int:
    """One SimCLR training step: every view through the ViT (all patches) and the 2-layer projector."""
    patches = (args.image_size // args.patch_size) ** 2
    per_view = (linear_flops(batch * patches, args.patch_size**2 * 3, args.vit_hidden)
                + block_flops(batch, patches + 1, args.vit_layers, args.vit_hidden, args.vit_ffn)
                + linear_flops(batch, args.vit_hidden, hidden) + linear_flops(batch, hidden, out))
    return views * per_view


def count_parameters(model: nn.Module) -> dict[str, int]:
    """Trainable parameters (tied ones once): embedding (token/position embeddings, class and mask tokens)
    and the rest."""
    embedding = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    embedding |= {id(p) for n, p in model.named_parameters()
                  if n.rsplit(".", 1)[-1] in ("position_embeddings", "cls_token", "mask_token")}
    params = [p for p in model.parameters() if p.requires_grad]
    emb = sum(p.numel() for p in params if id(p) in embedding)
    total = sum(p.numel() for p in params)
    return {"total": total, "embedding": emb, "non_embedding": total - emb}


# ---------------------------------------------------------------- data


@dataclass
class SuiteData:
    """Batches every arm of a suite sees, in this order, and the held-out batches of the loss column."""

    train: list[dict[str, Any]]
    eval: list[dict[str, Any]]
    info: dict[str, Any] = field(default_factory=dict)


def batched(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items) - size + 1, size)]


def load_text(args: argparse.Namespace):
    """WordPiece tokenizer trained on the stdlib docstrings, and the token ids of each split: 5% of the documents
    held out, or more where --eval-batches batches of the run's shape need more (large shapes such as --preset
    base; counted at 4 characters per token, a low estimate for this corpus)."""
    from hfssl.data.corpora import stdlib_docstrings
    from hfssl.data.tokenizer import train_tokenizer

    docs = stdlib_docstrings()
    random.Random(args.seed).shuffle(docs)
    chars = 4 * args.eval_batches * args.text_batch * args.seq_len
    enough = bisect.bisect_left(list(itertools.accumulate(map(len, docs))), chars) + 1  # documents holding `chars`
    held_out = max(1, len(docs) // 20, min(enough, len(docs) // 2))
    tokenizer = train_tokenizer(docs[held_out:], "wordpiece", args.vocab_size, model_max_length=1_000_000)
    encode = lambda texts: tokenizer(texts, add_special_tokens=False)["input_ids"]
    return tokenizer, encode(docs[held_out:]), encode(docs[:held_out])


def unpacked_rows(docs: list[list[int]], seq_len: int, separator: int, prefix: int | None = None) -> list[list[int]]:
    """--no-packing: each document cut into pieces that fit a row ([prefix] piece [separator]), one per row."""
    body = seq_len - 1 - (prefix is not None)
    head = [] if prefix is None else [prefix]
    return [head + doc[i : i + body] + [separator] for doc in docs if doc for i in range(0, len(doc), body)]


def mlm_data(args: argparse.Namespace, text) -> SuiteData:
    """Packed [CLS]-led blocks (or padded documents), masked once (15%, 80/10/10) by hfssl's
    StaticMaskingCollator."""
    from hfssl.data.collators import StaticMaskingCollator
    from hfssl.data.packing import pack_token_ids

    tokenizer, train_ids, eval_ids = text
    rows = pack_token_ids if args.packing else unpacked_rows
    splits = []
    for ids, seed in ((train_ids, args.seed), (eval_ids, args.seed + 1)):
        blocks = rows(ids, args.seq_len, tokenizer.sep_token_id, tokenizer.cls_token_id)
        collate = StaticMaskingCollator(tokenizer, args.mask_prob, seed=seed)
        splits.append([collate([{"input_ids": b} for b in group]) for group in batched(blocks, args.text_batch)])
    info = {"corpus": "stdlib docstrings", "tokenizer": "wordpiece", "tokenizer_size": len(tokenizer),
            "pad_id": tokenizer.pad_token_id, "cls_id": tokenizer.cls_token_id, "sep_id": tokenizer.sep_token_id}
    return SuiteData(splits[0], splits[1][: args.eval_batches], info)


def clm_data(args: argparse.Namespace, text) -> SuiteData:
    """Packed blocks (documents joined by [SEP]); labels are the inputs (the models shift them)."""
    from hfssl.data.packing import pack_token_ids

    tokenizer, train_ids, eval_ids = text
    splits = []
    for ids in (train_ids, eval_ids):
        if args.packing:
            blocks = torch.tensor(pack_token_ids(ids, args.seq_len, tokenizer.sep_token_id), dtype=torch.long)
            splits.append([{"input_ids": b, "labels": b.clone()} for b in blocks.split(args.text_batch)
                           if len(b) == args.text_batch])
        else:
            rows = unpacked_rows(ids, args.seq_len, tokenizer.sep_token_id)
            splits.append([padded_causal_batch(group, tokenizer.pad_token_id) for group in batched(rows, args.text_batch)])
    info = {"corpus": "stdlib docstrings", "tokenizer": "wordpiece", "tokenizer_size": len(tokenizer),
            "pad_id": tokenizer.pad_token_id, "sep_id": tokenizer.sep_token_id}
    return SuiteData(splits[0], splits[1][: args.eval_batches], info)


def padded_causal_batch(rows: list[list[int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Rows right-padded to the longest: input_ids, attention_mask, and labels with -100 on the padding."""
    width = max(map(len, rows))
    ids = torch.tensor([row + [pad_id] * (width - len(row)) for row in rows], dtype=torch.long)
    mask = torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in rows], dtype=torch.long)
    return {"input_ids": ids, "attention_mask": mask, "labels": ids.masked_fill(mask == 0, -100)}


def load_images(args: argparse.Namespace) -> tuple[torch.Tensor, str]:
    """uint8 (N, 3, S, S): Fashion-MNIST from --data-dir, else scikit-learn's digits; resized, gray to RGB."""
    folder = Path(args.data_dir) / "fashion_mnist" if args.data_dir else None
    if folder is not None and (folder / "train-images-idx3-ubyte.gz").is_file():
        with gzip.open(folder / "train-images-idx3-ubyte.gz") as f:
            raw, source = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28), "fashion_mnist"
    else:
        from sklearn.datasets import load_digits

        raw, source = np.round(load_digits().images * (255 / 16)).astype(np.uint8), "sklearn_digits"
    needed = args.max_images + args.eval_batches * max(args.mae_batch, args.contrastive_batch)
    pixels = torch.from_numpy(raw[:needed].copy()).float()[:, None]  # (N, 1, h, w)
    pixels = F.interpolate(pixels, size=(args.image_size,) * 2, mode="bilinear", align_corners=False)
    return pixels.round().clamp(0, 255).to(torch.uint8).expand(-1, 3, -1, -1).contiguous(), source


def split_images(args: argparse.Namespace, images: torch.Tensor, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    held_out = args.eval_batches * batch
    if len(images) < held_out + batch:
        raise ValueError(f"{len(images)} images cannot fill {args.eval_batches} held-out and one training batch "
                         f"of {batch}; lower --mae-batch/--contrastive-batch or --eval-batches.")
    return images[held_out : held_out + args.max_images], images[:held_out]


def channel_stats(images: torch.Tensor) -> tuple[list[float], list[float]]:
    pixels = images.float() / 255
    return pixels.mean(dim=(0, 2, 3)).tolist(), pixels.std(dim=(0, 2, 3)).tolist()


def mae_data(args: argparse.Namespace, images_and_source) -> SuiteData:
    """Normalized pixel batches, each with its masking noise (b, P) so every arm masks the same patches."""
    images, source = images_and_source
    train, held_out = split_images(args, images, args.mae_batch)
    mean, std = channel_stats(train)
    generator = torch.Generator().manual_seed(args.seed)
    patches = (args.image_size // args.patch_size) ** 2

    def batches(pool: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        pixels = (pool.float() / 255 - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
        return [{"pixel_values": b, "noise": torch.rand(len(b), patches, generator=generator)}
                for b in pixels.split(args.mae_batch) if len(b) == args.mae_batch]

    return SuiteData(batches(train), batches(held_out), {"images": source, "mean": mean, "std": std})


def contrastive_data(args: argparse.Namespace, images_and_source) -> SuiteData:
    """uint8 training batches (views are made inside each step, as SSLTrainer does); held-out batches carry
    fixed views."""
    images, source = images_and_source
    train, held_out = split_images(args, images, args.contrastive_batch)
    mean, std = channel_stats(train)
    views = simclr_views(args, mean, std)
    with torch.random.fork_rng():
        torch.manual_seed(args.seed)
        evaluation = [{"views": views(b)} for b in held_out.split(args.contrastive_batch)]
    train_batches = [{"pixel_values": b} for b in train.split(args.contrastive_batch)
                     if len(b) == args.contrastive_batch]
    return SuiteData(train_batches, evaluation, {"images": source, "mean": mean, "std": std})


def simclr_views(args: argparse.Namespace, mean: list[float], std: list[float]) -> nn.Module:
    from hfssl.data.views import build_views

    return build_views("simclr", args.image_size, 3, mean, std)


# ---------------------------------------------------------------- arms


@dataclass
class Arm:
    """One model of a suite: how to build it, its loss on a batch, and what a batch is worth."""

    suite: str
    name: str
    build: Callable[[], nn.Module]
    loss: Callable[[nn.Module, dict], torch.Tensor]
    units: Callable[[dict], int]  # non-pad tokens or images in a batch
    flops: Callable[[dict], tuple[int, int]]  # (model, executed) FLOPs of one training step on a batch
    trainer: bool = False  # trained through SSLTrainer instead of the plain loop
    views: nn.Module | None = None  # the augmentations SSLTrainer applies (contrastive suite)


def hfssl_overrides(args: argparse.Namespace, config_class: type) -> dict[str, Any]:
    """--hfssl-text-overrides / --hfssl-vision-overrides as config keyword arguments, checked by hfssl."""
    from hfssl.training.setup import parse_overrides

    text = args.hfssl_text_overrides if config_class is HfsslTextConfig else args.hfssl_vision_overrides
    return parse_overrides(text, config_class)


def call_with(keys: tuple[str, ...]) -> Callable[[nn.Module, dict], torch.Tensor]:
    return lambda model, batch: model(**{k: batch[k] for k in keys if k in batch}).loss


def text_units(batch: dict) -> int:
    mask = batch.get("attention_mask")
    return int(mask.sum()) if mask is not None else batch["input_ids"].numel()


def ready(model: nn.Module, attention: str = "sdpa") -> nn.Module:
    """Every arm runs SDPA attention (hfssl's may be switched by --hfssl-attention); fail loudly where a library
    silently chose otherwise."""
    if attention != "sdpa":
        model.set_attn_implementation(attention)
    chosen = getattr(model.config, "_attn_implementation", "sdpa")
    if chosen != attention:
        raise RuntimeError(f"{type(model).__name__} runs {chosen!r} attention, not {attention}.")
    return model.train()


def mlm_arms(args: argparse.Namespace, data: SuiteData) -> list[Arm]:
    """hfssl (sparse head) vs BERT (dense head) vs ModernBERT (sparse head), one masking, one loss definition."""
    ids, d, layers, vocab = data.info, args.hidden, args.layers, args.vocab_size
    common = dict(vocab_size=vocab, hidden_size=d, num_hidden_layers=layers, num_attention_heads=args.heads,
                  max_position_embeddings=args.seq_len, pad_token_id=ids["pad_id"], attn_implementation="sdpa")
    hfssl_gated = args.hfssl_act == "swiglu"
    hfssl = lambda: HfsslTextForMaskedLM(HfsslTextConfig(
        **common, intermediate_size=args.gated_ffn if hfssl_gated else args.ffn, hidden_act=args.hfssl_act,
        hidden_dropout_prob=args.dropout, attention_dropout_prob=0.0, sparse_prediction=args.hfssl_mlm_head != "dense",
        **hfssl_overrides(args, HfsslTextConfig)))
    bert = lambda: BertForMaskedLM(BertConfig(
        **common, intermediate_size=args.ffn, hidden_dropout_prob=args.dropout, attention_probs_dropout_prob=0.0))
    # Every layer global (layer_types all full_attention) and a window wider than T: the same full attention.
    modern = lambda: ModernBertForMaskedLM(ModernBertConfig(
        **common, intermediate_size=args.gated_ffn, global_attn_every_n_layers=1, local_attention=2 * args.seq_len,
        bos_token_id=ids["cls_id"], cls_token_id=ids["cls_id"], eos_token_id=ids["sep_id"],
        sep_token_id=ids["sep_id"], embedding_dropout=args.dropout, mlp_dropout=args.dropout,
        attention_dropout=0.0, sparse_prediction=True))
    keys = ("input_ids", "attention_mask", "labels")
    hfssl_keys = keys + (("masked_positions",) if args.hfssl_mlm_head == "static" and "masked_positions" in
                         inspect.signature(HfsslTextForMaskedLM.forward).parameters else ())

    sparse_last = hfssl_overrides(args, HfsslTextConfig).get("sparse_last_layer", True)

    def flops(ffn: int, gated: bool, dense_head: bool, keys: tuple[str, ...] = (),
              last_layer: bool = False) -> Callable[[dict], tuple[int, int]]:
        def count(batch: dict) -> tuple[int, int]:
            b, t = batch["input_ids"].shape
            labelled = batch["labels"] != -100
            masked = int(labelled.sum())
            per = lambda rows, last=None: text_flops(b, t, layers, d, ffn, gated, vocab, rows, mlm_head=True,
                                                     last_layer_rows=last)
            if dense_head:
                return per(masked), per(b * t)
            # Given masked_positions (b, k), the hfssl head runs on all b * k rows, short rows' -1 slots too; and
            # so does its sparse last layer. Without them, that layer runs b x (the longest row's count) rows.
            padded = "masked_positions" in keys and "masked_positions" in batch
            rows = batch["masked_positions"].numel() if padded else masked
            last = (rows if padded else b * max(1, int(labelled.sum(dim=1).max()))) if last_layer else None
            return per(masked), per(rows, last)
        return count

    return [
        Arm("mlm", "hfssl", lambda: ready(hfssl(), args.hfssl_attention), call_with(hfssl_keys), text_units,
            flops(args.gated_ffn if hfssl_gated else args.ffn, hfssl_gated, args.hfssl_mlm_head == "dense", hfssl_keys,
                  last_layer=sparse_last and args.hfssl_mlm_head != "dense")),
        Arm("mlm", "bert", lambda: ready(bert()), call_with(keys), text_units, flops(args.ffn, False, True)),
        Arm("mlm", "modernbert", lambda: ready(modern()), call_with(keys), text_units,
            flops(args.gated_ffn, True, False)),
    ]


def clm_arms(args: argparse.Namespace, data: SuiteData) -> list[Arm]:
    """hfssl vs GPT-2 vs Llama (tied embeddings, as hfssl and GPT-2), next-token loss over all positions."""
    ids, d, layers, vocab = data.info, args.hidden, args.layers, args.vocab_size
    hfssl_gated = args.hfssl_act == "swiglu"
    hfssl = lambda: HfsslTextForCausalLM(HfsslTextConfig(
        vocab_size=vocab, hidden_size=d, num_hidden_layers=layers, num_attention_heads=args.heads,
        intermediate_size=args.gated_ffn if hfssl_gated else args.ffn, hidden_act=args.hfssl_act,
        max_position_embeddings=args.seq_len, is_causal=True, hidden_dropout_prob=args.dropout,
        attention_dropout_prob=0.0, attn_implementation="sdpa", **hfssl_overrides(args, HfsslTextConfig)))
    gpt2 = lambda: GPT2LMHeadModel(GPT2Config(
        vocab_size=vocab, n_positions=args.seq_len, n_embd=d, n_layer=layers, n_head=args.heads, n_inner=args.ffn,
        resid_pdrop=args.dropout, embd_pdrop=args.dropout, attn_pdrop=0.0, bos_token_id=ids["sep_id"],
        eos_token_id=ids["sep_id"], use_cache=False, attn_implementation="sdpa"))
    llama = lambda: LlamaForCausalLM(LlamaConfig(
        vocab_size=vocab, hidden_size=d, intermediate_size=args.gated_ffn, num_hidden_layers=layers,
        num_attention_heads=args.heads, num_key_value_heads=args.heads, max_position_embeddings=args.seq_len,
        tie_word_embeddings=True, pad_token_id=ids["pad_id"], bos_token_id=ids["sep_id"],
        eos_token_id=ids["sep_id"], use_cache=False, attn_implementation="sdpa"))

    def flops(ffn: int, gated: bool) -> Callable[[dict], tuple[int, int]]:
        def count(batch: dict) -> tuple[int, int]:
            b, t = batch["input_ids"].shape
            value = text_flops(b, t, layers, d, ffn, gated, vocab, b * t, mlm_head=False)
            return value, value
        return count

    keys = ("input_ids", "attention_mask", "labels")
    return [
        Arm("clm", "hfssl", lambda: ready(hfssl(), args.hfssl_attention), call_with(keys), text_units,
            flops(args.gated_ffn if hfssl_gated else args.ffn, hfssl_gated)),
        Arm("clm", "gpt2", lambda: ready(gpt2()), call_with(keys), text_units, flops(args.ffn, False)),
        Arm("clm", "llama", lambda: ready(llama()), call_with(keys), text_units, flops(args.gated_ffn, True)),
    ]


def vision_fields(args: argparse.Namespace) -> dict[str, Any]:
    return dict(image_size=args.image_size, patch_size=args.patch_size, num_channels=3, hidden_size=args.vit_hidden,
                num_hidden_layers=args.vit_layers, num_attention_heads=args.vit_heads,
                intermediate_size=args.vit_ffn, decoder_hidden_size=args.decoder_hidden,
                decoder_num_hidden_layers=args.decoder_layers, decoder_num_attention_heads=args.decoder_heads,
                decoder_intermediate_size=args.decoder_ffn, mask_ratio=args.mask_ratio, norm_pix_loss=True,
                hidden_dropout_prob=args.dropout, attn_implementation="sdpa")


def mae_arms(args: argparse.Namespace, data: SuiteData) -> list[Arm]:
    """hfssl MAE vs ViTMAE: same encoder and decoder shapes, ratio, norm_pix_loss and per-batch noise."""
    fields = vision_fields(args)
    hfssl = lambda: HfsslVisionForMaskedImageModeling(
        HfsslVisionConfig(**fields, **hfssl_overrides(args, HfsslVisionConfig)))
    vitmae = lambda: ViTMAEForPreTraining(ViTMAEConfig(**fields, attention_probs_dropout_prob=0.0))
    sparse_last = hfssl_overrides(args, HfsslVisionConfig).get("sparse_last_layer", True)

    def flops(sparse: bool) -> Callable[[dict], tuple[int, int]]:
        def count(batch: dict) -> tuple[int, int]:
            b = batch["pixel_values"].shape[0]
            return mae_flops(args, b), mae_flops(args, b, executed=True, sparse_last=sparse)
        return count

    units = lambda batch: batch["pixel_values"].shape[0]
    keys = ("pixel_values", "noise")
    return [Arm("mae", "hfssl", lambda: ready(hfssl(), args.hfssl_attention), call_with(keys), units,
                flops(sparse_last)),
            Arm("mae", "vitmae", lambda: ready(vitmae()), call_with(keys), units, flops(False))]


def contrastive_arms(args: argparse.Namespace, data: SuiteData) -> list[Arm]:
    """The same hfssl SimCLR model through SSLTrainer and through a plain loop (Trainer overhead)."""
    from hfssl.data.pixels import to_float_pixels

    build = lambda: ready(HfsslVisionForContrastiveLearning(
        HfsslVisionConfig(**vision_fields(args), ssl={"method": "simclr"}, **hfssl_overrides(args, HfsslVisionConfig))),
        args.hfssl_attention)
    views = simclr_views(args, data.info["mean"], data.info["std"])
    projector = resolve_method_params("simclr", {})

    def loss(model: nn.Module, batch: dict) -> torch.Tensor:
        # What SSLTrainer.compute_loss does with uint8 pixels: views on the device, then the model.
        made = batch["views"] if "views" in batch else views(to_float_pixels(batch["pixel_values"]))
        return model(views=made, pixel_values=made[0]).loss

    def flops(batch: dict) -> tuple[int, int]:
        value = simclr_flops(args, len(batch["pixel_values"]), projector["projection_hidden_dim"],
                             projector["projection_dim"])
        return value, value

    units = lambda batch: batch["pixel_values"].shape[0]
    return [Arm("contrastive", "hfssl-trainer", build, loss, units, flops, trainer=True, views=views),
            Arm("contrastive", "plain-loop", build, loss, units, flops, views=views)]


SUITES: dict[str, tuple[Callable, Callable]] = {
    "mlm": (mlm_data, mlm_arms), "clm": (clm_data, clm_arms),
    "mae": (mae_data, mae_arms), "contrastive": (contrastive_data, contrastive_arms),
}


# ---------------------------------------------------------------- training


def decay_parameter_names(model: nn.Module) -> set[str]:
    """The Trainer's weight-decay rule (Trainer.get_decay_parameter_names): no decay on norms and biases."""
    patterns = [r"bias", r"layernorm", r"rmsnorm", r"(?:^|\.)norm(?:$|\.)", r"_norm(?:$|\.)"]
    return set(get_parameter_names(model, [nn.LayerNorm], patterns))


def make_optimizer(model: nn.Module, args: argparse.Namespace):
    """AdamW with the Trainer's two parameter groups, and constant-with-warmup: as `adamw_torch(_fused)`."""
    decay = decay_parameter_names(model)
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [{"params": [p for n, p in named if n in decay], "weight_decay": args.weight_decay},
              {"params": [p for n, p in named if n not in decay], "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=args.lr, betas=tuple(args.betas), eps=1e-8,
                                  fused=True if args.fused_adamw else None)
    return optimizer, get_constant_schedule_with_warmup(optimizer, args.lr_warmup_steps)


def train_loop(model: nn.Module, arm: Arm, batches: Iterable[dict], args: argparse.Namespace,
               budget_s: float | None = None) -> list[float]:
    """Plain PyTorch training over `batches` (until `budget_s` seconds have passed, if given); a fresh optimizer.
    Returns the duration of each step (between the ends of consecutive optimizer steps)."""
    optimizer, schedule = make_optimizer(model, args)
    model.train()
    synchronize(args.device)
    ends = [time.perf_counter()]
    for batch in batches:
        with torch.autocast(args.device, dtype=torch.bfloat16, enabled=args.autocast == "bf16"):
            loss = arm.loss(model, batch)
        loss.backward()
        if args.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.max_grad_norm)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        synchronize(args.device)
        ends.append(time.perf_counter())
        if budget_s is not None and ends[-1] - ends[0] >= budget_s:
            break
    return np.diff(ends).tolist()


class StepClock(TrainerCallback):
    """Stamps the end of every optimizer step inside the Trainer; stops training after `budget_s` seconds."""

    def __init__(self, budget_s: float | None = None, device: str = "cpu"):
        self.budget_s, self.device = budget_s, device
        self.ends: list[float] = []

    def on_train_begin(self, args, state, control, **kwargs):
        self.ends = [time.perf_counter()]

    def on_step_end(self, args, state, control, **kwargs):
        synchronize(self.device)
        self.ends.append(time.perf_counter())
        if self.budget_s is not None and self.ends[-1] - self.ends[0] >= self.budget_s:
            control.should_training_stop = True


def trainer_loop(model: nn.Module, arm: Arm, batches: list[dict], args: argparse.Namespace,
                 budget_s: float | None = None) -> list[float]:
    """The same steps through hfssl's SSLTrainer: uint8 images in a `datasets` table, read in order
    (sequential sampler), views made in compute_loss. Without a budget, one step per batch; with one,
    epochs over `batches` until the budget is spent. Returns the step durations."""
    from datasets import Array3D, Dataset, Features
    from transformers import default_data_collator

    from hfssl.training.ssl_trainer import MomentumCallback, SSLTrainer
    from hfssl.training.training_args import PretrainingArguments

    pixels = torch.cat([b["pixel_values"] for b in batches]).cpu().numpy()
    features = Features({"pixel_values": Array3D(shape=pixels.shape[1:], dtype="uint8")})
    dataset = Dataset.from_dict({"pixel_values": pixels}, features=features)
    dataset = dataset.with_format("numpy", columns=["pixel_values"], dtype=np.uint8)
    clock = StepClock(budget_s, args.device)
    with tempfile.TemporaryDirectory() as tmp:
        training = PretrainingArguments(
            output_dir=tmp, max_steps=len(batches) if budget_s is None else 10**9,
            per_device_train_batch_size=len(batches[0]["pixel_values"]), learning_rate=args.lr,
            weight_decay=args.weight_decay, adam_beta1=args.betas[0], adam_beta2=args.betas[1], adam_epsilon=1e-8,
            optim="adamw_torch_fused" if args.fused_adamw else "adamw_torch",
            lr_scheduler_type="constant_with_warmup", warmup_steps=args.lr_warmup_steps,
            max_grad_norm=args.max_grad_norm, eval_strategy="no", save_strategy="no", report_to="none",
            disable_tqdm=True, train_sampling_strategy="sequential", remove_unused_columns=False,
            include_num_input_tokens_seen="no", dataloader_drop_last=True, use_cpu=args.device == "cpu", seed=args.seed,
            bf16=args.autocast == "bf16")
        trainer = SSLTrainer(model=model, args=training, train_dataset=dataset, data_collator=default_data_collator,
                             callbacks=[MomentumCallback(), clock], views=arm.views, eval_seed=args.seed)
        trainer.remove_callback(PrinterCallback)  # it prints every log dict to stdout
        trainer.train()
    return np.diff(clock.ends).tolist()


def train(model: nn.Module, arm: Arm, batches: list[dict], args: argparse.Namespace,
          budget_s: float | None = None) -> list[float]:
    """Train `arm` the way it is benchmarked; with a budget the batches repeat until time runs out."""
    if arm.trainer:
        return trainer_loop(model, arm, batches, args, budget_s)
    torch.manual_seed(args.seed)  # as the Trainer seeds itself: both contrastive arms draw the same views
    return train_loop(model, arm, batches if budget_s is None else itertools.cycle(batches), args, budget_s)


@torch.no_grad()
def eval_loss(arm: Arm, model: nn.Module, batches: list[dict]) -> float:
    """Mean loss over the held-out batches, in eval mode (no dropout; fixed masks, noise and views)."""
    model.eval()
    losses = [float(arm.loss(model, batch)) for batch in batches]
    model.train()
    return statistics.fmean(losses)


def build(arm: Arm, args: argparse.Namespace) -> nn.Module:
    """A fresh model of `arm` (seed `args.seed`); with --compile, compiled in place (`nn.Module.compile`, so
    the class, config and parameter names stay as they were) with TorchInductor."""
    torch.manual_seed(args.seed)
    model = arm.build().to(args.device)
    if args.compile:
        model.compile(dynamic=args.compile_dynamic)
    return model


# ---------------------------------------------------------------- phases

Suites = dict[str, tuple[SuiteData, list[Arm]]]


def log(message: str) -> None:
    print(f"[benchmark] {message}", file=sys.stderr, flush=True)


def prepare_suites(args: argparse.Namespace, corpora: dict | None = None) -> Suites:
    """Load the corpora once, then each suite's batches and arms. `corpora`, if given, caches the loaded
    corpora across calls (keyed by what they depend on), for callers that prepare several flag sets."""
    corpora = {} if corpora is None else corpora

    def cached(key: tuple, load: Callable[[], Any]) -> Any:
        if key not in corpora:
            corpora[key] = load()
        return corpora[key]

    wants_text, wants_images = {"mlm", "clm"} & set(args.suites), {"mae", "contrastive"} & set(args.suites)
    text = cached(("text", args.vocab_size, args.seed), lambda: load_text(args)) if wants_text else None
    image_key = ("images", args.data_dir, args.image_size, args.max_images, args.eval_batches, args.mae_batch,
                 args.contrastive_batch)
    images = cached(image_key, lambda: load_images(args)) if wants_images else None
    suites = {}
    for name in args.suites:
        make_data, make_arms = SUITES[name]
        data = make_data(args, text if name in ("mlm", "clm") else images)
        if args.device != "cpu":  # once, before any timing: the steps then read batches already on the device
            data.train, data.eval = ([to_device(b, args.device) for b in part] for part in (data.train, data.eval))
        if not data.train or not data.eval:
            raise ValueError(f"Suite {name}: too little data for one training and one held-out batch; "
                             "lower the batch size.")
        suites[name] = (data, make_arms(args, data))
    return suites


def summarize(segments: list[dict[str, list]], peak_gflops: float) -> dict[str, Any]:
    """Medians over rounds of throughput and FLOP rates; step-time median and p90 over every timed step."""
    seconds = [sum(s["seconds"]) for s in segments]
    rates = [sum(s["units"]) / t for s, t in zip(segments, seconds)]
    model_rates = [sum(f[0] for f in s["flops"]) / t for s, t in zip(segments, seconds)]
    executed_rates = [sum(f[1] for f in s["flops"]) / t for s, t in zip(segments, seconds)]
    steps = [t for s in segments for t in s["seconds"]]
    flops = [f for s in segments for f in s["flops"]]
    return {
        "throughput": statistics.median(rates), "throughput_per_round": rates,
        "step_ms_median": 1e3 * statistics.median(steps), "step_ms_p90": 1e3 * float(np.percentile(steps, 90)),
        "units_per_step": statistics.fmean(u for s in segments for u in s["units"]),
        "model_gflop_per_step": statistics.fmean(f[0] for f in flops) / 1e9,
        "executed_gflop_per_step": statistics.fmean(f[1] for f in flops) / 1e9,
        "model_gflops_per_s": statistics.median(model_rates) / 1e9,
        "mfu": statistics.median(model_rates) / (peak_gflops * 1e9),
        "executed_utilization": statistics.median(executed_rates) / (peak_gflops * 1e9),
    }


def measure_throughput(args: argparse.Namespace, name: str, data: SuiteData, arms: list[Arm],
                       probes: list[float], probes_by_library: dict[str, list[float]] | None = None
                       ) -> dict[str, dict[str, Any]]:
    """Rounds of A B C ..., each arm `warmup + steps` steps on the same batches; appends matmul probes
    (one set per round) to `probes`. Returns the raw segments and model facts per arm."""
    models = {arm.name: build(arm, args) for arm in arms}
    found: dict[str, dict[str, Any]] = {}
    for arm in arms:
        model = models[arm.name]
        found[arm.name] = {"model_class": type(model).__name__, "parameters": count_parameters(model),
                           "attn_implementation": model.config._attn_implementation, "segments": []}
        p = found[arm.name]["parameters"]
        log(f"{name}/{arm.name}: {type(model).__name__}, {p['total']:,} parameters "
            f"({p['embedding']:,} embedding, {p['non_embedding']:,} non-embedding)")
    per_round = args.warmup + args.steps
    for round_index in range(args.repeats):
        probes.extend(probe_round(args, probes_by_library if probes_by_library is not None else {}))
        batches = [data.train[(round_index * per_round + i) % len(data.train)] for i in range(per_round)]
        for arm in arms:
            seconds = train(models[arm.name], arm, batches, args)[args.warmup :]
            timed = batches[args.warmup :]
            found[arm.name]["segments"].append({"seconds": seconds, "units": [arm.units(b) for b in timed],
                                                "flops": [arm.flops(b) for b in timed]})
            log(f"{name}/{arm.name} round {round_index + 1}/{args.repeats}: "
                f"{sum(arm.units(b) for b in timed) / sum(seconds):,.0f} units/s")
    return found


def budget_run(args: argparse.Namespace, arm: Arm, data: SuiteData) -> dict[str, Any]:
    """Train a fresh model (seed `args.seed`) for `--budget-s` seconds; held-out loss before and after."""
    model = build(arm, args)
    before = eval_loss(arm, model, data.eval)
    steps = len(train(model, arm, data.train, args, budget_s=args.budget_s))
    seen = sum(arm.units(data.train[i % len(data.train)]) for i in range(steps))
    return {"budget_s": args.budget_s, "steps": steps, "units_seen": seen, "eval_loss_init": before,
            "eval_loss": eval_loss(arm, model, data.eval)}


def _proc_status_mib(key: str) -> float | None:
    """A memory line of /proc/self/status (Linux) in MiB, or None where there is none."""
    try:
        found = re.search(rf"^{key}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.MULTILINE)
    except OSError:
        return None
    return int(found.group(1)) / 1024 if found else None


def reset_peak_rss() -> bool:
    """Restart the kernel's peak-RSS count (VmHWM) from the current RSS (Linux >= 4.0); False where impossible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def memory_child(path: str) -> dict[str, Any]:
    """In a fresh process: build one arm and train it for `warmup + 2` steps. The peak is counted from after
    the imports and the batches (VmHWM reset there); elsewhere it is the whole process's max RSS."""
    payload = torch.load(path, weights_only=False)
    args = argparse.Namespace(**payload["args"])
    torch.set_num_threads(args.threads)
    set_cpu_gemm_backend(args.cpu_gemm)
    data = SuiteData(payload["train"], [], payload["info"])
    arm = next(a for a in SUITES[payload["suite"]][1](args, data) if a.name == payload["arm"])
    fresh_peak = reset_peak_rss()
    before = _proc_status_mib("VmRSS")
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        cuda_before = torch.cuda.memory_allocated()
    train(build(arm, args), arm, data.train, args)
    peak = _proc_status_mib("VmHWM") if fresh_peak else None
    if peak is None:
        usage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak = usage / 2**20 if sys.platform == "darwin" else usage / 1024  # bytes on macOS, KiB on Linux
    found = {"peak_rss_mib": peak, "rss_before_model_mib": before, "peak_counted_from_model_build": fresh_peak}
    if args.device == "cuda":  # tensors allocated on the GPU by the model, its optimizer and its steps
        found["peak_cuda_mib"] = (torch.cuda.max_memory_allocated() - cuda_before) / 2**20
    return found


def measure_memory(args: argparse.Namespace, name: str, data: SuiteData, arm: Arm) -> dict[str, Any]:
    """Peak RSS of one arm, alone in a subprocess running this script with --memory-child."""
    steps = args.warmup + 2
    payload = {"args": vars(args), "suite": name, "arm": arm.name, "info": data.info,
               "train": [data.train[i % len(data.train)] for i in range(steps)]}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "payload.pt"
        torch.save(payload, path)
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "TOKENIZERS_PARALLELISM": "false"}
        done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--memory-child", str(path)],
                              capture_output=True, text=True, env=env, check=False)
    if done.returncode:
        raise RuntimeError(f"memory probe of {name}/{arm.name} failed:\n{done.stderr[-3000:]}")
    found = json.loads(done.stdout.strip().splitlines()[-1])
    before = found["rss_before_model_mib"]
    found["rss_increase_mib"] = found["peak_rss_mib"] - before if before is not None else None
    return found


def profile_arm(args: argparse.Namespace, arm: Arm, data: SuiteData, folder: Path) -> list[dict[str, Any]]:
    """torch.profiler over `--profile` steps after two untimed ones; writes the op table, returns the top ops."""
    from torch.profiler import ProfilerActivity, profile

    model = build(arm, args)
    batches = [data.train[i % len(data.train)] for i in range(2 + args.profile)]
    train_loop(model, arm, batches[:2], args)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if args.device == "cuda" else [])
    with profile(activities=activities) as prof:
        train_loop(model, arm, batches[2:], args)
    events = prof.key_averages()
    # On a GPU the time that matters is the kernels' (the CPU's is mostly launching them).
    key = "self_device_time_total" if args.device == "cuda" else "self_cpu_time_total"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{arm.suite}-{arm.name}.txt").write_text(events.table(sort_by=key, row_limit=40))
    total = sum(getattr(e, key) for e in events) or 1
    top = sorted(events, key=lambda e: -getattr(e, key))[:12]
    return [{"op": e.key, "self_ms_per_step": getattr(e, key) / 1e3 / args.profile,
             "share": getattr(e, key) / total, "calls_per_step": e.count / args.profile} for e in top]


# ---------------------------------------------------------------- report

UNITS = {"mlm": "tokens", "clm": "tokens", "mae": "images", "contrastive": "images"}


def trainer_overhead(arms: dict[str, dict]) -> float:
    """1 - loop time per image / Trainer time per image = 1 - Trainer throughput / loop throughput:
    the share of the Trainer's step time that the plain loop does not spend."""
    return 1 - arms["hfssl-trainer"]["throughput"] / arms["plain-loop"]["throughput"]


def evaluate_targets(suites: dict[str, dict]) -> list[dict[str, Any]]:
    """The issue-9 targets that the measured suites allow checking."""
    targets = []
    for suite, reference, factor in SPEED_TARGETS:
        arms = suites.get(suite, {}).get("arms", {})
        if "hfssl" not in arms or reference not in arms:
            continue
        ours, theirs = arms["hfssl"]["throughput"], arms[reference]["throughput"]
        targets.append({"name": f"{suite}_speed", "value": ours / theirs, "threshold": factor,
                        "passed": ours >= factor * theirs,
                        "text": f"{suite}: hfssl {ours:,.0f} {UNITS[suite]}/s = {ours / theirs:.2f}x {reference} "
                                f"({theirs:,.0f}); target >= {factor:.2f}x"})
        best_name, best = max(((n, a["mfu"]) for n, a in arms.items() if n != "hfssl"), key=lambda x: x[1])
        targets.append({"name": f"{suite}_mfu", "value": arms["hfssl"]["mfu"], "threshold": best,
                        "passed": arms["hfssl"]["mfu"] >= best,
                        "text": f"{suite}: hfssl MFU {arms['hfssl']['mfu']:.1%} vs best reference {best_name} "
                                f"{best:.1%}; target >= the best reference"})
    arms = suites.get("contrastive", {}).get("arms", {})
    if {"hfssl-trainer", "plain-loop"} <= set(arms):
        overhead = trainer_overhead(arms)
        targets.append({"name": "trainer_overhead", "value": overhead, "threshold": MAX_TRAINER_OVERHEAD,
                        "passed": overhead <= MAX_TRAINER_OVERHEAD,
                        "text": f"contrastive: Trainer overhead {overhead:.1%} "
                                f"(1 - Trainer images/s / plain-loop images/s); target <= {MAX_TRAINER_OVERHEAD:.0%}"})
    return targets


def _millions(n: int) -> str:
    return f"{n / 1e6:.2f} M"


def _row(name: str, arm: dict[str, Any], hfssl: dict[str, Any] | None) -> str:
    p, memory, budget = arm["parameters"], arm.get("memory") or {}, arm.get("budget") or {}
    ratio = f"{hfssl['throughput'] / arm['throughput']:.2f}x" if hfssl else "-"
    rss = (f"{memory['peak_rss_mib']:.0f} (+{memory['rss_increase_mib']:.0f})"
           if memory.get("rss_increase_mib") is not None else "-")
    if memory.get("peak_cuda_mib") is not None:
        rss += f"; GPU {memory['peak_cuda_mib']:.0f}"
    loss = (f"{budget['eval_loss_init']:.3f} -> {budget['eval_loss']:.3f} ({budget['steps']} steps)"
            if budget else "-")
    return (f"| {name} | {arm['model_class']} | {_millions(p['total'])} ({_millions(p['embedding'])} / "
            f"{_millions(p['non_embedding'])}) | {arm['throughput']:,.0f} | {ratio} | "
            f"{arm['step_ms_median']:.0f} / {arm['step_ms_p90']:.0f} | {arm['model_gflop_per_step']:.2f} "
            f"({arm['executed_gflop_per_step']:.2f}) | {arm['mfu']:.1%} ({arm['executed_utilization']:.1%}) | "
            f"{rss} | {loss} |")


def probe_libraries_note(probe: dict[str, Any]) -> str:
    """'; per sample the faster of aten 224.1 and onednn 471.2' when the probe timed more than one library."""
    rates = probe.get("gflops_by_library") or {}
    if len(rates) < 2:
        return ""
    return "; per sample the faster of " + " and ".join(f"{lib} {r:.1f}" for lib, r in rates.items())


def busy_warning(probe: dict[str, Any]) -> list[str]:
    """A warning paragraph when the probe's samples spread widely (another job shared the CPU), else nothing."""
    spread = probe["spread_p90_over_p10"]
    if spread <= BUSY_PROBE_SPREAD:
        return []
    text = (f"**Warning: the matmul probe's p90 / p10 is {spread:.2f} (> {BUSY_PROBE_SPREAD}): the CPU was "
            "shared during this run; these numbers are not results.**")
    return [text, ""]


def markdown(report: dict[str, Any]) -> str:
    """benchmark.md: environment, one table per suite, the targets."""
    env, probe = report["environment"], report["matmul_probe"]
    cpu, v = env["cpu"], env["versions"]
    lines = [
        "# hfssl training benchmark", "",
        f"{report['created']} · `{report['command']}`", "",
        (f"- CPU: {cpu['model']}, {cpu['logical_cpus']} logical CPUs, flags {' '.join(cpu['flags']) or '-'}, "
         f"torch dispatch {cpu['torch_cpu_capability']}; {env['torch_threads']} torch threads"),
        f"- torch {v['torch']}, transformers {v['transformers']}, Python {env['python']}",
        *([(f"- GPU: {env['cuda']['device']} (compute capability {env['cuda']['capability']}, "
             f"{env['cuda']['memory_gib']} GiB, CUDA {env['cuda']['cuda']}); models and batches on "
             f"{probe.get('device', 'cpu')}")] if env.get("cuda") else []),
        (f"- matmul probe ({probe['n']}^3 {probe['dtype']} on {probe.get('device', 'cpu')}): {probe['gflops']:.1f} "
         f"GFLOP/s, median of {len(probe['samples'])} "
         f"({min(probe['samples']):.1f} to {max(probe['samples']):.1f})" + probe_libraries_note(probe)),
        *([f"- hfssl arms' float32 CPU products: {env['hfssl_cpu_gemm']} (reference arms: aten)"]
          if env.get("hfssl_cpu_gemm") and probe.get("device", "cpu") == "cpu" else []), "",
        *busy_warning(probe),
        ("Columns: parameters total (embedding / non-embedding); throughput of non-pad tokens or images per "
         "second (median of rounds); hfssl's throughput over the arm's; step time median / p90; model GFLOP "
         "per step (executed); MFU (executed FLOPs over the probe); peak RSS MiB of the arm alone "
         "(increase over the process before the model); held-out loss at init -> after the budget."), "",
    ]
    for suite, result in report["suites"].items():
        arms = result["arms"]
        lines += [f"## {suite}: {result['description']}", "",
                  (f"| arm | model | parameters | {UNITS[suite]}/s | hfssl / arm | step ms | GFLOP/step | MFU | "
                   f"peak RSS MiB | loss after {report['settings']['budget_s']:g} s |"),
                  "|---|---|---|---|---|---|---|---|---|---|"]
        lines += [_row(name, arm, arms.get("hfssl")) for name, arm in arms.items()]
        lines.append("")
    lines += ["## Targets (issue 9)", ""]
    lines += [f"- {'PASS' if t['passed'] else 'FAIL'} {t['text']}" for t in report["targets"]] or ["- none measured"]
    return "\n".join(lines) + "\n"


def describe(args: argparse.Namespace, suite: str, data: SuiteData) -> str:
    overrides = args.hfssl_text_overrides if suite in ("mlm", "clm") else args.hfssl_vision_overrides
    return _shape(args, suite, data) + (f"; hfssl config overrides: {overrides}" if overrides else "")


def _shape(args: argparse.Namespace, suite: str, data: SuiteData) -> str:
    if suite in ("mlm", "clm"):
        extra = f", {args.mask_prob:.0%} masked" if suite == "mlm" else ""
        return (f"{args.layers} layers, d={args.hidden}, {args.heads} heads, MLP {args.ffn} (gated "
                f"{args.gated_ffn}), T={args.seq_len}, vocab {args.vocab_size}, batch {args.text_batch}{extra}; "
                f"{len(data.train)} training batches of {data.info['corpus']}")
    batch = args.mae_batch if suite == "mae" else args.contrastive_batch
    what = (f"decoder {args.decoder_layers}x{args.decoder_hidden} ({args.decoder_heads} heads, MLP "
            f"{args.decoder_ffn}), mask ratio {args.mask_ratio}, norm_pix_loss" if suite == "mae"
            else "SimCLR, 2 views per image")
    return (f"{args.image_size} px, patch {args.patch_size}, ViT {args.vit_layers}x{args.vit_hidden} "
            f"({args.vit_heads} heads, MLP {args.vit_ffn}), {what}, batch {batch}; {data.info['images']}")


# ---------------------------------------------------------------- main


def run_suite(args: argparse.Namespace, name: str, data: SuiteData, arms: list[Arm], probes: list[float],
              probes_by_library: dict[str, list[float]],
              output: Path) -> dict[str, Any]:
    """Throughput rounds, then per arm: the loss after the budget, memory in a subprocess, the profile."""
    raw = measure_throughput(args, name, data, arms, probes, probes_by_library)
    result: dict[str, Any] = {"description": describe(args, name, data), "data": data.info, "arms": {}}
    for arm in arms:
        found = raw[arm.name]
        entry = {k: v for k, v in found.items() if k != "segments"}
        entry["segments"] = found["segments"]
        if args.budget_s > 0:
            log(f"{name}/{arm.name}: training for {args.budget_s:g} s")
            entry["budget"] = budget_run(args, arm, data)
        if args.memory:
            log(f"{name}/{arm.name}: peak memory in a subprocess")
            entry["memory"] = measure_memory(args, name, data, arm)
        if args.profile and not arm.trainer:
            entry["profile_top_ops"] = profile_arm(args, arm, data, output / "profile")
        result["arms"][arm.name] = entry
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark; returns the report written to <output>/benchmark.json."""
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["--memory-child"]:
        print(json.dumps(memory_child(argv[1])))
        return {}
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    set_cpu_gemm_backend(args.cpu_gemm)
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    log("preparing data")
    suites = prepare_suites(args)
    probes: list[float] = []
    by_library: dict[str, list[float]] = {}
    results = {name: run_suite(args, name, data, arms, probes, by_library, output)
               for name, (data, arms) in suites.items()}
    peak = statistics.median(probes)
    for result in results.values():
        for entry in result["arms"].values():
            entry.update(summarize(entry["segments"], peak))
    settings = {k: v for k, v in vars(args).items() if k != "suite"}
    probe_n, probe_dtype = probe_settings(args)
    report = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["python", "scripts/benchmark.py", *argv]),
        "settings": settings, "environment": environment(),
        "matmul_probe": {"n": probe_n, "dtype": str(probe_dtype).removeprefix("torch."),
                         "device": args.device, "gflops": peak, "samples": probes,
                         "gflops_by_library": {lib: statistics.median(r) for lib, r in by_library.items()},
                         "spread_p90_over_p10": float(np.percentile(probes, 90) / np.percentile(probes, 10))},
        "suites": results, "targets": evaluate_targets(results),
        "wall_time_s": time.perf_counter() - started,
    }
    (output / "benchmark.json").write_text(json.dumps(report, indent=2) + "\n")
    table = markdown(report)
    (output / "benchmark.md").write_text(table)
    print(table)
    return report


if __name__ == "__main__":
    main()

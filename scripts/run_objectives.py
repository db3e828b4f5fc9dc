#!/usr/bin/env python
"""One short, real pretraining run per objective, and a Markdown table of what each did.

    HFSSL_DATA_DIR=../shared/data python scripts/run_objectives.py --steps 200 --out runs/objectives \
        --table docs/objective-runs.md

Images: Fashion-MNIST train images (labels unused), 28 px grayscale, the `tiny` ViT (patch 4).
Text: the news articles (`news/news_articles.jsonl.gz`), `tiny` text model, 128-token blocks.
Each row comes from the run's run.json: steps, wall time, throughput, validation loss before and
after, and the embedding std of joint-embedding methods (0 means collapse).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from hfssl.cli import main as hfssl

IMAGE_OBJECTIVES = ["mae", "simclr", "moco", "byol", "simsiam", "dino", "swav", "mae+simclr"]
TEXT_OBJECTIVES = ["mlm", "clm", "simcse", "mlm+simcse"]
# Heads sized for a 192-wide ViT on CPU; the paper sizes are the defaults (see METHOD_DEFAULTS).
METHOD_OPTIONS = {
    "simclr": "projection_hidden_dim=512,projection_dim=128",
    "moco": "projection_hidden_dim=512,projection_dim=128,prediction_hidden_dim=512",
    "byol": "projection_hidden_dim=512,projection_dim=128,prediction_hidden_dim=512",
    "simsiam": "projection_hidden_dim=512,projection_dim=512,prediction_hidden_dim=128",
    "dino": "projection_hidden_dim=512,bottleneck_dim=128,out_dim=1024,freeze_last_layer_steps=20",
    "swav": "projection_hidden_dim=512,projection_dim=128,n_prototypes=100,freeze_prototypes_steps=20",
    "mae+simclr": "projection_hidden_dim=512,projection_dim=128,mae_weight=1.0",
}
VIEW_OPTIONS = {"dino": "n_local_crops=4", "swav": "n_local_crops=4"}


def common(steps: int, batch: int) -> list[str]:
    return ["--model-size", "tiny", "--max-steps", str(steps), "--per-device-train-batch-size", str(batch),
            "--eval-steps", str(10**6), "--save-steps", str(10**6), "--logging-steps", "25",
            "--report-to", "none", "--disable-tqdm", "true", "--seed", "0", "--overwrite"]


def image_args(objective: str, data_dir: Path, images: int) -> list[str]:
    args = ["--objective", objective, "--dataset", "fashion-mnist", "--data-dir", str(data_dir / "fashion_mnist"),
            "--image-size", "28", "--max-train-examples", str(images), "--learning-rate", "1e-3"]
    if objective in METHOD_OPTIONS:
        args += ["--method-options", METHOD_OPTIONS[objective]]
    if objective in VIEW_OPTIONS:
        args += ["--view-overrides", VIEW_OPTIONS[objective]]
    return args


def text_args(objective: str, data_dir: Path) -> list[str]:
    return ["--objective", objective, "--train-files", str(data_dir / "news" / "news_articles.jsonl.gz"),
            "--block-size", "128", "--vocab-size", "8192", "--learning-rate", "1e-3"]


def row(objective: str, run: Path) -> str:
    m = json.loads((run / "run.json").read_text())
    s = m["pretrain"]
    rate = s.get("tokens_per_second") or s.get("images_per_second")
    unit = "tokens/s" if "tokens_per_second" in s else "images/s"
    std = f"{s['embedding_std_first']:.3f} → {s['embedding_std']:.3f}" if "embedding_std" in s else "–"
    data = m["data"]
    rows = data.get("train_rows") or data.get("images")
    return (f"| {objective} | {data['source'] if isinstance(data['source'], str) else 'files'} ({rows:,} rows) | "
            f"{m['model']['parameters'] / 1e6:.2f} M | {s['steps']} | {s['wall_time_s']:.0f} s | "
            f"{rate:,.0f} {unit} | {s['eval_loss_before']:.3f} → {s['eval_loss']:.3f} | {std} |")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--images", type=int, default=20000)
    parser.add_argument("--out", default="runs/objectives")
    parser.add_argument("--table", default=None, help="Write the Markdown table here too.")
    parser.add_argument("--objectives", default=",".join(IMAGE_OBJECTIVES + TEXT_OBJECTIVES))
    args = parser.parse_args(argv)
    data_dir = Path(os.environ.get("HFSSL_DATA_DIR", "../shared/data"))
    lines = ["| objective | data | parameters | steps | wall time | throughput | validation loss | embedding std |",
             "|---|---|---|---|---|---|---|---|"]
    for objective in args.objectives.split(","):
        run = Path(args.out) / objective.replace("+", "_")
        specific = image_args(objective, data_dir, args.images) if objective in IMAGE_OBJECTIVES \
            else text_args(objective, data_dir)
        batch = args.batch if objective in IMAGE_OBJECTIVES else 32
        code = hfssl(["pretrain", *specific, *common(args.steps, batch), "--output", str(run)])
        lines.append(row(objective, run) if code == 0 else f"| {objective} | failed with exit code {code} |")
        print(lines[-1], flush=True)
    table = "\n".join(lines)
    print(table)
    if args.table:
        Path(args.table).write_text(table + "\n", encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1:])

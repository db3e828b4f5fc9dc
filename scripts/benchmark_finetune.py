"""Linear probe vs LoRA vs full fine-tuning on real data, at several label fractions.

Text: rotten-tomatoes sentiment from a masked LM pretrained on the news corpus.
Images: Fashion-MNIST from an MAE pretrained on Fashion-MNIST's training images.
Every arm runs in its own process, so the peak memory (max RSS, or the CUDA allocator's peak) is its own.

    python scripts/benchmark_finetune.py --data-dir ../shared/data --output runs/bench-finetune --scale small

Writes <output>/results.json and <output>/results.md and prints the table. The linear probe is scikit-learn's
LogisticRegression on standardized `model.get_features(...)` of the frozen parent.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# Per scale: pretraining steps, label fractions of the full training split, test examples, widths.
SCALES: dict[str, dict[str, Any]] = {
    "small": {"mlm_steps": 300, "mae_steps": 300, "text_fractions": [0.2, 0.02], "image_fractions": [0.05, 0.01],
              "test_examples": 1000, "min_steps": 150, "width": "hidden_size=64,num_hidden_layers=2,"
              "num_attention_heads=2,intermediate_size=128"},
    "medium": {"mlm_steps": 3000, "mae_steps": 3000, "text_fractions": [1.0, 0.1, 0.01],
               "image_fractions": [0.2, 0.05, 0.01], "test_examples": 5000, "min_steps": 500,
               "width": "hidden_size=128,num_hidden_layers=4,num_attention_heads=4,intermediate_size=512"},
}
METHODS = ("probe", "lora", "none")
COMMON = ["--report-to", "none", "--eval-steps", "100000", "--save-steps", "100000", "--logging-steps", "50",
          "--disable-tqdm", "true", "--overwrite"]


def run(command: list[str], threads: int) -> None:
    """Run a command in a fresh process with `threads` intra-op threads; raise with its output tail on failure."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(command, check=False, env=env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(command[:6])} ... failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")


def pretrain_parents(out: Path, data_dir: Path, scale: dict[str, Any], threads: int,
                     reuse: bool) -> dict[str, Path]:
    """A news masked LM and a Fashion-MNIST MAE, with `hfssl pretrain` (kept from an earlier run with `reuse`)."""
    cli = [sys.executable, "-m", "hfssl.cli", "pretrain", *COMMON, "--model-size", "tiny"]
    text, image = out / "parents" / "news-mlm", out / "parents" / "fmnist-mae"
    if reuse and (text / "run.json").is_file() and (image / "run.json").is_file():
        return {"text": text, "image": image}
    run([*cli, "--objective", "mlm", "--train-files", str(data_dir / "news" / "news_articles.jsonl.gz"),
         "--config-overrides", scale["width"], "--vocab-size", "8000", "--block-size", "128",
         "--per-device-train-batch-size", "32", "--learning-rate", "1e-3", "--max-steps", str(scale["mlm_steps"]),
         "--output", str(text)], threads)
    decoder = "decoder_hidden_size=64,decoder_num_hidden_layers=1,decoder_num_attention_heads=2," \
              "decoder_intermediate_size=128,patch_size=7"
    run([*cli, "--objective", "mae", "--dataset", "fashion-mnist", "--data-dir", str(data_dir / "fashion_mnist"),
         "--image-size", "28", "--config-overrides", f"{scale['width']},{decoder}",
         "--per-device-train-batch-size", "128", "--learning-rate", "1.5e-3", "--max-steps", str(scale["mae_steps"]),
         "--output", str(image)], threads)
    return {"text": text, "image": image}


def prepare_subsets(out: Path, data_dir: Path, scale: dict[str, Any]) -> list[dict[str, Any]]:
    """save_to_disk folders holding a stratified label fraction of each training split and a fixed test sample.

    Runs in its own process (`prepare` mode): the driver stays small, so the arms it starts do not inherit
    its memory.
    """
    import datasets

    from hfssl.data.images import fashion_mnist_dataset
    from hfssl.finetune.data import stratified_indices

    rotten = datasets.load_dataset("csv", data_files={s: str(data_dir / "rotten_tomatoes" / f"{s}.csv")
                                                      for s in ("train", "test")})
    fmnist = {s: fashion_mnist_dataset(data_dir / "fashion_mnist", s) for s in ("train", "test")}
    sources = [("rotten-tomatoes", "text-classification", rotten, scale["text_fractions"]),
               ("fashion-mnist", "image-classification", fmnist, scale["image_fractions"])]
    subsets = []
    for name, task, splits, fractions in sources:
        test = splits["test"].select(stratified_indices(splits["test"]["label"], scale["test_examples"], seed=0))
        for fraction in fractions:
            train = splits["train"]
            if fraction < 1:
                train = train.select(stratified_indices(train["label"], round(fraction * len(train)), seed=0))
            folder = out / "data" / f"{name}-{fraction:g}"
            datasets.DatasetDict(train=train, test=test).save_to_disk(str(folder))
            subsets.append({"dataset": name, "task": task, "fraction": fraction, "folder": str(folder),
                            "train_examples": len(train), "test_examples": len(test)})
    (out / "data" / "subsets.json").write_text(json.dumps(subsets, indent=2))
    return subsets


def finetune_arm(parent: Path, subset: dict[str, Any], method: str, out: Path, scale: dict[str, Any],
                 threads: int) -> dict[str, Any]:
    """`hfssl finetune` in a fresh process with the method's default learning rate; returns eval/finetune.json."""
    epochs = max(3, math.ceil(scale["min_steps"] * 32 / subset["train_examples"]))
    target = out / "runs" / f"{subset['dataset']}-{subset['fraction']:g}-{method}"
    code = "import sys; from hfssl.finetune.command import main; sys.exit(main(sys.argv[1:]))"
    run([sys.executable, "-c", code, str(parent), "--task", subset["task"], "--dataset", str(subset["folder"]),
         "--peft", method, "--epochs", str(epochs), "--output", str(target), "--overwrite",
         "--training-arg", "disable_tqdm=true"], threads)
    return json.loads((target / "eval" / "finetune.json").read_text())


def probe_arm(parent: Path, subset: dict[str, Any], out: Path, threads: int) -> dict[str, Any]:
    """The linear probe in a fresh process (this script's `probe` mode)."""
    target = out / "runs" / f"{subset['dataset']}-{subset['fraction']:g}-probe.json"
    run([sys.executable, __file__, "probe", str(parent), str(subset["folder"]), subset["task"], str(target)], threads)
    return json.loads(target.read_text())


def features(parent: Path, folder: Path, task: str):
    """Frozen parent features (n, hidden) and labels of the train and test splits, in batches of 256."""
    import datasets
    import numpy as np
    import torch
    from transformers import AutoModel

    import hfssl  # noqa: F401
    from hfssl.finetune.api import TrainSettings, prepare_inputs, resolve_parent
    from hfssl.finetune.data import DataSpec, task_modality
    from hfssl.finetune.labels import encode_labels

    modality = task_modality(task)
    parent_info = resolve_parent(str(parent))
    model = AutoModel.from_pretrained(parent_info.model_path).eval()
    splits, _ = encode_labels(datasets.load_from_disk(str(folder)), "label")
    encoded, _, collator = prepare_inputs(splits, parent_info, model, modality, DataSpec(dataset=str(folder)),
                                          TrainSettings())
    result = {}
    for role, split in encoded.items():
        chunks, labels = [], []
        for start in range(0, len(split), 256):
            batch = collator([split[i] for i in range(start, min(start + 256, len(split)))])
            labels.append(batch.pop("labels").numpy())
            batch.pop("token_type_ids", None)
            with torch.no_grad():
                chunks.append(model.get_features(**batch).float().numpy())
        result[role] = (np.concatenate(chunks), np.concatenate(labels))
    return result


def probe(parent: Path, folder: Path, task: str, target: Path) -> None:
    """Logistic regression on standardized frozen features; writes a result shaped like eval/finetune.json."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from hfssl.finetune.api import peak_memory_mb

    start = time.perf_counter()
    data = features(parent, folder, task)
    (x_train, y_train), (x_test, y_test) = data["train"], data["test"]
    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(x_train, y_train)
    predicted = classifier.predict(x_test)
    n_classes = len(set(y_train.tolist()))
    result = {
        "method": "probe", "metrics": {"accuracy": float(accuracy_score(y_test, predicted)),
                                       "macro_f1": float(f1_score(y_test, predicted, average="macro"))},
        "trainable_parameters": x_train.shape[1] * n_classes + n_classes,
        "wall_time_s": round(time.perf_counter() - start, 2),
        "peak_memory_mb": round(peak_memory_mb()[0], 1),
        "train_examples": len(y_train), "test_examples": len(y_test),
    }
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(result, indent=2))


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown table of every arm."""
    lines = ["| data | labels used | method | accuracy | macro-F1 | trainable params | wall time (s) | peak RSS (MB) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['dataset']} | {r['fraction']:g} ({r['train_examples']:,}) | {r['method']} | "
                     f"{r['accuracy']:.3f} | {r['macro_f1']:.3f} | {r['trainable_parameters']:,} | "
                     f"{r['wall_time_s']:.1f} | {r['peak_memory_mb']:,.0f} |")
    return "\n".join(lines)


def benchmark(args: argparse.Namespace) -> None:
    """Pretrain both parents, cut the subsets, run every arm, write and print the table."""
    out, data_dir, scale = Path(args.output), Path(args.data_dir), SCALES[args.scale]
    start = time.perf_counter()
    parents = pretrain_parents(out, data_dir, scale, args.threads, args.reuse_parents)
    rows = []
    run([sys.executable, __file__, "prepare", "--data-dir", str(data_dir), "--output", str(out),
         "--scale", args.scale], args.threads)
    for subset in json.loads((out / "data" / "subsets.json").read_text()):
        parent = parents["text" if subset["task"] == "text-classification" else "image"]
        for method in METHODS:
            if method == "probe":
                result = probe_arm(parent, subset, out, args.threads)
            else:
                result = finetune_arm(parent, subset, method, out, scale, args.threads)
            row = {**{k: subset[k] for k in ("dataset", "fraction", "train_examples")}, "method": method,
                   **result["metrics"], **{k: result[k] for k in ("trainable_parameters", "wall_time_s",
                                                                  "peak_memory_mb")}}
            rows.append(row)
            print(table([row]).splitlines()[-1], flush=True)
    summary = {"scale": args.scale, "threads": args.threads, "total_wall_time_s": round(time.perf_counter() - start),
               "rows": rows}
    (out / "results.json").write_text(json.dumps(summary, indent=2, default=str))
    (out / "results.md").write_text(table(rows) + "\n")
    print(f"\n{table(rows)}\n\ntotal {summary['total_wall_time_s']} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", nargs="?", default="all", choices=["all", "prepare", "probe"],
                        help="all (default); prepare and probe are the steps run in their own processes")
    parser.add_argument("probe_args", nargs="*", help="probe: PARENT FOLDER TASK TARGET")
    parser.add_argument("--data-dir", default=os.environ.get("HFSSL_DATA_DIR", "../shared/data"))
    parser.add_argument("--output", default="runs/bench-finetune")
    parser.add_argument("--scale", choices=list(SCALES), default="small")
    parser.add_argument("--threads", type=int, default=1, help="Intra-op threads per arm (tiny models: 1).")
    parser.add_argument("--reuse-parents", action="store_true", help="Keep parents pretrained by an earlier run.")
    args = parser.parse_args()
    if args.mode == "probe":
        parent, folder, task, target = args.probe_args
        probe(Path(parent), Path(folder), task, Path(target))
    elif args.mode == "prepare":
        prepare_subsets(Path(args.output), Path(args.data_dir), SCALES[args.scale])
    else:
        benchmark(args)


if __name__ == "__main__":
    main()

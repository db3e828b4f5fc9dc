#!/usr/bin/env python
"""Which layer of a pretrained text encoder carries the label, and from how many labels on? The diagnostic
behind "Measured: where the text features stand, layer by layer" in docs/evaluation.md.

    python scripts/text_layer_probe.py runs/my-mlm --train-file ../shared/data/rotten_tomatoes/train.csv \
        --test-file ../shared/data/rotten_tomatoes/test.csv --fractions 0.01,0.05,1.0 --seeds 3

For every hidden state the encoder returns (the embeddings, each block, and the final norm) and for all of
them concatenated, it mean-pools the real tokens of each text, fits hfssl's linear probe (standardized
logistic regression, C chosen by cross-validation or a validation split) on stratified label subsets, and
does the same for a randomly initialized copy of the model. It prints, per layer and fraction, both
arms' test accuracy and their paired gap (seed by seed, the same labelled subset for both arms), and
writes the table as JSON. If no layer beats random init at a fraction, no choice of pooled layer will make
the benchmark's probe pass there: the features, not where they are read, are what is missing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from hfssl.evaluation.api import load_encoder
from hfssl.evaluation.features import input_encoder
from hfssl.evaluation.label_efficiency import random_init_copy, stratified_subset
from hfssl.evaluation.probes import linear_probe
from hfssl.evaluation.protocol import DataOptions, load_labeled_data
from hfssl.training.rundir import RunDirectory


def layer_features(model: torch.nn.Module, texts, to_inputs, batch_size: int = 128) -> list[np.ndarray]:
    """Mean-pooled features of every hidden state: [(n, d)] per state, embeddings first, final norm last."""
    model.eval()
    per_batch = []
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            inputs = to_inputs(texts[start : start + batch_size])
            out = model(**inputs, output_hidden_states=True)
            states = list(out.hidden_states or ()) + [out.last_hidden_state]  # (b, t, d) each
            mask = inputs["attention_mask"].unsqueeze(-1).float()  # (b, t, 1)
            per_batch.append([((h * mask).sum(1) / mask.sum(1).clamp(min=1)).numpy() for h in states])
    return [np.concatenate([batch[i] for batch in per_batch]) for i in range(len(per_batch[0]))]


def layer_names(count: int) -> list[str]:
    return ["embeddings"] + [f"block {i}" for i in range(1, count - 1)] + ["final norm"]


def probe_table(pretrained, random, train_labels, test_labels, fractions, seeds) -> list[dict]:
    """One row per (layer, fraction): both arms' accuracies over seeds and their paired gap. `pretrained` and
    `random`: [(train features (n, d), test features (m, d))], one pair per layer."""
    rows = []
    names = layer_names(len(pretrained)) + ["all, concatenated"]

    def with_concatenation(pairs):  # [(train (n, d), test (m, d))] per layer, plus every layer side by side
        return [*pairs, tuple(np.concatenate([pair[i] for pair in pairs], axis=1) for i in (0, 1))]

    pretrained, random = with_concatenation(pretrained), with_concatenation(random)
    for (train_p, test_p), (train_r, test_r), name in zip(pretrained, random, names):
        for fraction in fractions:
            accuracy = {"pretrained": [], "random_init": []}
            for seed in range(seeds):
                index = stratified_subset(train_labels, fraction, seed) if fraction < 1 else np.arange(len(train_labels))
                for arm, (train, test) in (("pretrained", (train_p, test_p)), ("random_init", (train_r, test_r))):
                    result = linear_probe(train[index], train_labels[index], test, test_labels, seed=seed)
                    accuracy[arm].append(result["accuracy"])
            gap = np.array(accuracy["pretrained"]) - np.array(accuracy["random_init"])
            rows.append({
                "layer": name, "fraction": fraction, "labels": len(index),
                **{arm: {"mean": float(np.mean(v)), "std": float(np.std(v)), "per_seed": v} for arm, v in accuracy.items()},
                "paired_gap": {"mean": float(gap.mean()), "std": float(gap.std()), "wins": int((gap > 0).sum()),
                               "seeds": seeds, "beyond_spread": bool(gap.mean() > 2 * gap.std())},
            })
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| layer | labels | pretrained | random init | paired gap (wins) |", "|---|---|---|---|---|"]
    for r in rows:
        g = r["paired_gap"]
        lines.append(
            f"| {r['layer']} | {r['labels']:,} | {r['pretrained']['mean']:.3f} ± {r['pretrained']['std']:.3f} | "
            f"{r['random_init']['mean']:.3f} ± {r['random_init']['std']:.3f} | "
            f"{g['mean']:+.3f} ± {g['std']:.3f} ({g['wins']}/{g['seeds']}){' *' if g['beyond_spread'] else ''} |"
        )
    return "\n".join(lines) + "\n\n`*`: the paired gap's mean is above twice its std."


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", help="an hfssl run directory with a text model in model/")
    parser.add_argument("--train-file", required=True, help="labelled training CSV/JSON(L)")
    parser.add_argument("--test-file", required=True, help="labelled test CSV/JSON(L)")
    parser.add_argument("--text-column", default="text")
    parser.add_argument("--label-column", default="label")
    parser.add_argument("--fractions", default="0.01,0.05,1.0", help="comma-separated label fractions in (0, 1]")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--random-init-seed", type=int, default=0)
    parser.add_argument("--output", default=None, help="JSON file for the table (default: <run>/eval/layer_probe.json)")
    args = parser.parse_args(argv)
    try:
        args.fractions = [float(f) for f in args.fractions.split(",") if f.strip()]
    except ValueError:
        parser.error(f"--fractions must be comma-separated numbers, got {args.fractions!r}")
    if not args.fractions or not all(0 < f <= 1 for f in args.fractions):
        parser.error(f"--fractions must lie in (0, 1], got {args.fractions}")
    if args.seeds < 1:
        parser.error(f"--seeds must be >= 1, got {args.seeds}")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    run = RunDirectory(args.run)
    try:
        model, tokenizer, _ = load_encoder(run)
        if tokenizer is None:
            raise ValueError(f"{run.model_dir} holds an image model; this diagnostic probes text encoders.")
        options = DataOptions(train_files=[args.train_file], test_files=[args.test_file],
                              text_column=args.text_column, label_column=args.label_column)
        data = load_labeled_data(options, "text")
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    to_inputs = input_encoder(model, tokenizer)
    train_texts, test_texts = list(data.train.examples), list(data.test.examples)
    train_labels, test_labels = np.asarray(data.train.labels), np.asarray(data.test.labels)
    features = {}
    for arm, encoder in (("pretrained", model), ("random_init", random_init_copy(model, args.random_init_seed))):
        train, test = layer_features(encoder, train_texts, to_inputs), layer_features(encoder, test_texts, to_inputs)
        features[arm] = list(zip(train, test))
    rows = probe_table(features["pretrained"], features["random_init"], train_labels, test_labels,
                       args.fractions, args.seeds)
    table = markdown(rows)
    print(table)
    output = Path(args.output) if args.output else run.path / "eval" / "layer_probe.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    command = "python scripts/text_layer_probe.py " + " ".join(argv)
    output.write_text(json.dumps({"command": command, "rows": rows, "table": table}, indent=2))
    print(f"\nwrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

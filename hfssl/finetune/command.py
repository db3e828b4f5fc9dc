"""`hfssl finetune`: PEFT or full fine-tuning of a pretrained run from the command line.

```
hfssl finetune runs/my-mlm --task text-classification --train-files train.csv --test-files test.csv \
      --text-column text --label-column label --peft lora --lora-r 8 --output runs/my-mlm-sst
hfssl finetune runs/mae --task image-classification --dataset imagefolder --data-dir labeled/ --peft lora
```
Heavy imports happen inside `run_finetune_from_args`, so building the parser (and `--help`) is quick.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

from .method_table import describe_methods


def _key_values(items: Sequence[str] | None, flag: str) -> dict[str, Any]:
    """["r=4", "use_rslora=true"] -> {"r": 4, "use_rslora": True}; values are read as JSON when they parse."""
    parsed: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{flag} takes KEY=VALUE, got {item!r}.")
        try:
            parsed[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            parsed[key.strip()] = value
    return parsed


def _names(items: Sequence[str] | None) -> list[str] | None:
    """--target-modules a b,c -> ["a", "b", "c"]."""
    if not items:
        return None
    return [name.strip() for item in items for name in item.split(",") if name.strip()]


def add_finetune_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The flags of `hfssl finetune`, in groups: what, data, method, training, output."""
    parser.add_argument("parent", help="Run directory, model folder or Hub id of the pretrained model.")
    parser.add_argument("--task", required=True, choices=["text-classification", "image-classification"])
    parser.add_argument("--output", required=True, help="Child run directory to create (runs/<name>).")
    data = parser.add_argument_group("data")
    data.add_argument("--train-files", nargs="+", help="Training files: csv/tsv/json/jsonl/parquet, or images.")
    data.add_argument("--test-files", nargs="+", help="Test files; default: a stratified 20%% of the training rows.")
    data.add_argument("--dataset", help="Hub id, builder (csv, imagefolder, ...), save_to_disk folder, or a built-in: "
                                        "fashion-mnist, digits, stdlib-docstrings.")
    data.add_argument("--dataset-config", help="The dataset's configuration name.")
    data.add_argument("--data-dir", help="data_dir for --dataset (imagefolder: the folder; fashion-mnist: IDX files).")
    data.add_argument("--train-split", default="train")
    data.add_argument("--test-split", default="test")
    data.add_argument("--text-column", default="text")
    data.add_argument("--image-column", help="Default: the first image column.")
    data.add_argument("--label-column", default="label")
    data.add_argument("--label-fraction", type=float, help="Keep this stratified fraction of the training labels.")
    data.add_argument("--max-train-examples", type=int, help="Stratified cap on training rows (quick runs).")
    data.add_argument("--max-test-examples", type=int, help="Stratified cap on test rows (quick runs).")
    data.add_argument("--max-length", type=int, default=128, help="Tokens per text (default 128).")
    method = parser.add_argument_group("method")
    method.add_argument("--peft", default="lora", help="none (full fine-tuning), lora (default), dora, ia3, loha, "
                                                       "lokr, or any peft method by name (prompt_tuning and other "
                                                       "prompt-learning methods: 20 virtual tokens by default).")
    # Method flags default to None: a flag the method has no use for (--lora-r with ia3) is refused only when given.
    method.add_argument("--lora-r", type=int, help="Adapter rank (default 8 for lora, dora, loha, lokr; other methods "
                                                   "with a rank: peft's default).")
    method.add_argument("--lora-alpha", type=float, help="Scaling: updates are scaled by alpha / r (default 16 for "
                                                         "lora, dora, loha, lokr).")
    method.add_argument("--lora-dropout", type=float, help="Dropout on the adapter's input (default 0.05 for lora, "
                                                           "dora, loha, lokr).")
    method.add_argument("--target-modules", nargs="+", help="Modules to adapt (names or endings, e.g. attn.qkv); "
                                                            "default: detected for the model family. Not for --peft "
                                                            "none or prompt-learning methods.")
    method.add_argument("--peft-option", action="append", metavar="KEY=VALUE",
                        help="Any other field of the method's peft config, e.g. use_rslora=true (repeatable).")
    training = parser.add_argument_group("training")
    training.add_argument("--epochs", type=float, default=3.0)
    training.add_argument("--learning-rate", type=float, help="Default: the method's (see --peft).")
    training.add_argument("--batch-size", type=int, default=32)
    training.add_argument("--training-arg", action="append", metavar="KEY=VALUE",
                          help="Any TrainingArguments field, e.g. bf16=true or weight_decay=0 (repeatable).")
    training.add_argument("--seed", type=int, default=0)
    output = parser.add_argument_group("output")
    output.add_argument("--merge", action="store_true", help="Also export the merged model as <output>/merged "
                                                             "(methods that merge: not none or prompt learning).")
    output.add_argument("--overwrite", action="store_true", help="Replace an existing --output run.")
    return parser


def build_parser() -> argparse.ArgumentParser:
    """The parser of `hfssl finetune` (quick: nothing heavy is imported)."""
    parser = argparse.ArgumentParser(
        prog="hfssl finetune", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Fine-tune a pretrained run for classification into a child run directory "
                    "(adapter/, model/, run.json, eval/finetune.json).\n\nMethods:\n" + describe_methods(),
    )
    return add_finetune_arguments(parser)


def run_finetune_from_args(args: argparse.Namespace) -> int:
    """Run `hfssl.finetune.finetune` with parsed flags and print a table of the results."""
    from .api import finetune

    result = finetune(
        args.parent, task=args.task, output=args.output, train_files=args.train_files, test_files=args.test_files,
        dataset=args.dataset, dataset_config=args.dataset_config, data_dir=args.data_dir,
        train_split=args.train_split, test_split=args.test_split, text_column=args.text_column,
        image_column=args.image_column, label_column=args.label_column, peft=args.peft, lora_r=args.lora_r,
        lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout, target_modules=_names(args.target_modules),
        peft_options=_key_values(args.peft_option, "--peft-option"), label_fraction=args.label_fraction,
        max_train_examples=args.max_train_examples, max_test_examples=args.max_test_examples,
        max_length=args.max_length, epochs=args.epochs, learning_rate=args.learning_rate, batch_size=args.batch_size,
        training_args=_key_values(args.training_arg, "--training-arg"), merge=args.merge, seed=args.seed,
        overwrite=args.overwrite,
    )
    print(format_result(result))
    return 0


def format_result(result: dict[str, Any]) -> str:
    """A plain table of one fine-tuning run, the folders it wrote and how to use the model."""
    metrics = result["metrics"]
    width = max(8, len(result["method"]))
    row = (f"  {result['method']:{width}} {metrics['accuracy']:>8.4f} {metrics['macro_f1']:>8.4f} "
           f"{result['trainable_parameters']:>12,} {result['trainable_percent']:>7.2f}% "
           f"{result['wall_time_s']:>8.1f} s {result['peak_memory_mb']:>9,.0f} MB")
    lines = [
        "",
        (f"Fine-tuned {result['parent']['path']} -> {result['run_dir']}  ({result['task']}, "
         f"{len(result['id2label'])} labels, {result['train_examples']:,} training / {result['test_examples']:,} "
         "test examples)"),
        (f"  {'method':{width}} {'accuracy':>8} {'macro-F1':>8} {'trainable':>12} {'share':>8} {'train':>10} "
         f"{'peak mem':>12}"),
        row,
        "",
    ]
    if result.get("test_missing_classes"):
        lines[-1:-1] = [f"  (the test split has no example of: {', '.join(result['test_missing_classes'])})"]
    if result.get("train_missing_classes"):
        unseen = ", ".join(result["train_missing_classes"])
        lines[-1:-1] = [f"  (never in training, so not learned and scored F1 0: {unseen})"]
    for key in ("adapter_dir", "base_dir", "model_dir", "merged_dir"):
        if result.get(key):
            lines.append(f"  {key.removesuffix('_dir'):8} {result[key]}")
    lines.append(f"  manifest {result['run_dir']}/run.json")
    return "\n".join(lines + ["", "Next:", _usage(result)])


def _usage(result: dict[str, Any]) -> str:
    """How to use what the run wrote: the model folder in a pipeline, else the adapter with peft."""
    if result.get("model_dir"):
        example = "'path/to/image.png'" if result["task"] == "image-classification" else "'A warm, funny film.'"
        return (f"  python -c \"import hfssl; from transformers import pipeline; "
                f"print(pipeline('{result['task']}', model='{result['model_dir']}')({example}))\"\n"
                f"  hfssl demo {result['run_dir']}   (class probabilities in a Gradio app)")
    if result["task"] == "image-classification":
        base = result.get("base_dir") or result["parent"]["model"]
        load = (f"from peft import PeftModel; from transformers import AutoModelForImageClassification as A; "
                f"print(PeftModel.from_pretrained(A.from_pretrained('{base}'), '{result['adapter_dir']}'))")
    else:
        load = (f"from peft import AutoPeftModelForSequenceClassification as A; "
                f"print(A.from_pretrained('{result['adapter_dir']}'))")
    return f"  python -c \"import hfssl; {load}\"   (no model/: this method cannot merge)"


def main(argv: Sequence[str]) -> int:
    """Fine-tune a pretrained run with PEFT (LoRA, DoRA, IA3, ...) or fully, into a child run."""
    return run_finetune_from_args(build_parser().parse_args(list(argv)))

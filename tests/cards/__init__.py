"""Tiny run directories for every objective family, with run.json sections shaped like those of
`hfssl.training.pretrain.describe_run`, `hfssl.evaluation.evaluate_run` and `hfssl.finetune.finetune`.

Imported by the card and audit tests (this folder cannot have a conftest.py of its own).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from hfssl.data.pixels import build_image_processor
from hfssl.data.tokenizer import train_tokenizer
from hfssl.models import (
    HfsslTextConfig,
    HfsslTextForCausalLM,
    HfsslTextForContrastiveLearning,
    HfsslTextForMaskedLM,
    HfsslTextForSequenceClassification,
    HfsslVisionConfig,
    HfsslVisionForContrastiveLearning,
    HfsslVisionForImageClassification,
    HfsslVisionForMaskedImageModeling,
)
from hfssl.training.rundir import RunDirectory

TEXTS = [
    "Return the value of the key if the key is in the dictionary, else default.",
    "Split the string at the first occurrence of sep, and return a tuple.",
    "Open file and return a stream. Raise OSError upon failure.",
    "Return a new list containing all items from the iterable in ascending order.",
    "He said that she would return the list of the function.",
] * 20
TEXT_OBJECTIVES = ("mlm", "clm", "simcse", "mlm+simcse")
VISION_OBJECTIVES = ("mae", "simclr", "mae+dino")
FINETUNED = ("finetune-text", "finetune-image", "adapter-text")
ALL_KINDS = TEXT_OBJECTIVES + VISION_OBJECTIVES + FINETUNED


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny models on a shared 2-core machine: thread hand-offs cost more than the math (10x and worse measured).
    Module-scoped, so it is in place before the module's other fixtures train or load models."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_tokenizer(kind: str):
    return train_tokenizer(TEXTS, kind=kind, vocab_size=300 if kind == "bpe" else 160, model_max_length=64)


def text_config(tokenizer, **extra) -> HfsslTextConfig:
    return HfsslTextConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                           intermediate_size=64, max_position_embeddings=64, pad_token_id=tokenizer.pad_token_id,
                           **extra)


def vision_config(**extra) -> HfsslVisionConfig:
    return HfsslVisionConfig(image_size=8, patch_size=4, num_channels=1, hidden_size=32, num_hidden_layers=1,
                             num_attention_heads=2, intermediate_size=64, decoder_hidden_size=32,
                             decoder_num_hidden_layers=1, decoder_num_attention_heads=2, decoder_intermediate_size=64,
                             **extra)


def _model(kind: str):
    """(model, processor, objective, modality) of one kind of run."""
    torch.manual_seed(0)
    if kind in TEXT_OBJECTIVES:
        tokenizer = tiny_tokenizer("bpe" if kind == "clm" else "wordpiece")
        if kind == "mlm":
            model = HfsslTextForMaskedLM(text_config(tokenizer))
        elif kind == "clm":
            model = HfsslTextForCausalLM(text_config(tokenizer, is_causal=True))
        else:
            extra = {"mlm_weight": 1.0} if kind == "mlm+simcse" else {}
            model = HfsslTextForContrastiveLearning(text_config(tokenizer, ssl={"method": "simcse"}, **extra))
        return model, tokenizer, kind, "text"
    processor = build_image_processor(8, 1, [0.3], [0.3])
    if kind == "mae":
        return HfsslVisionForMaskedImageModeling(vision_config()), processor, kind, "image"
    method = kind.split("+")[-1]
    extra = {"mae_weight": 1.0} if kind.startswith("mae+") else {}
    return HfsslVisionForContrastiveLearning(vision_config(ssl={"method": method}, **extra)), processor, kind, "image"


def pretrain_manifest(objective: str, modality: str, model, processor_description: dict[str, Any],
                      source: Any = "stdlib-docstrings", with_eval: bool = True) -> dict[str, Any]:
    """run.json of a pretraining run, section by section as `describe_run` writes them."""
    text = modality == "text"
    manifest = {
        "format_version": 1, "created": "2025-01-01T00:00:00+00:00", "stage": "pretrain", "objective": objective,
        "modality": modality,
        "model": {"class": type(model).__name__, "parameters": sum(p.numel() for p in model.parameters()),
                  "trainable_parameters": sum(p.numel() for p in model.parameters()), "init_from": None,
                  "config": model.config.to_diff_dict()},
        "tokenizer" if text else "image_processor": processor_description,
        "data": {"source": source, "format": "builtin" if text else "images", "train_rows": 95,
                 "validation_rows": 5, "fingerprint": "0123456789abcdef"},
        "arguments": {"model": {"objective": objective}, "data": {}, "run": {},
                      "training": {"learning_rate": 0.003, "per_device_train_batch_size": 16, "max_steps": 40,
                                   "seed": 0, "output_dir": "/tmp/somewhere/checkpoints",
                                   "lr_scheduler_type": "linear"}},
        "seed": 0, "versions": {"python": "3.11.7", "hfssl": "0.1.0", "torch": torch.__version__},
        "hardware": {"platform": "Linux", "machine": "x86_64", "cpu_count": 2, "torch_threads": 2, "cuda_devices": []},
        "pretrain": {"steps": 40, "wall_time_s": 36.0, "train_loss": 4.1, "eval_loss_before": 5.2, "eval_loss": 4.0,
                     **({"tokens_seen": 40960, "perplexity": 54.6} if text else {"images_seen": 640,
                                                                                  "embedding_std": 0.12})},
    }
    if with_eval:
        manifest["eval"] = eval_sections("digits" if not text else "files:/tmp/data/sentiment.csv")
    return manifest


def eval_sections(source: str) -> dict[str, Any]:
    """The run.json `eval` section of `evaluate_run` for linear-probe, knn and label-efficiency."""
    data = {"source": source, "train_examples": 80, "test_examples": 20, "num_classes": 2}
    point = lambda f, m: {"fraction": f, "examples": int(80 * f), "mean": m, "std": 0.02, "accuracies": [m]}  # noqa: E731
    return {
        "linear-probe": {"protocol": "linear-probe", "data": data, "plots": ["eval/linear-probe.png"],
                         "arms": {"pretrained": {"accuracy": 0.875, "macro_f1": 0.8601, "protocol": {"C": 1.0}},
                                  "random-init": {"accuracy": 0.55, "macro_f1": 0.5, "protocol": {"C": 0.1}}}},
        "knn": {"protocol": "knn", "data": data, "plots": ["eval/knn.png"],
                "arms": {"pretrained": {"accuracy": 0.8, "by_k": {"20": {"accuracy": 0.8, "macro_f1": 0.79}}}}},
        "label-efficiency": {"protocol": "label-efficiency", "data": data, "seeds": [0, 1],
                             "plots": ["eval/label-efficiency.png"],
                             "curves": {"pretrained": [point(0.1, 0.7), point(1.0, 0.875)],
                                        "random-init": [point(0.1, 0.5), point(1.0, 0.55)]}},
    }


def make_pretrain_run(root: Path, kind: str, *, with_eval: bool = True,
                      source: Any = "stdlib-docstrings") -> RunDirectory:
    """A run directory of one objective: model/ saved with its processor, run.json, eval/ plots."""
    model, processor, objective, modality = _model(kind)
    run = RunDirectory(root / kind.replace("+", "-"))
    run.path.mkdir(parents=True)
    run.save_model(model.eval(), processor)
    description = ({"source": "trained on the training split", "kind": "wordpiece", "vocab_size": len(processor)}
                   if modality == "text" else {"image_size": 8, "num_channels": 1})
    run.update_manifest(**pretrain_manifest(objective, modality, model, description, source, with_eval))
    if with_eval:
        run.eval_dir.mkdir(exist_ok=True)
        for name in ("linear-probe", "knn", "label-efficiency"):
            Image.fromarray(np.full((8, 8, 3), 120, dtype=np.uint8)).save(run.eval_dir / f"{name}.png")
    return run


def make_finetune_run(root: Path, kind: str, parent: RunDirectory | str) -> RunDirectory:
    """A fine-tuned classifier run as `hfssl.finetune` writes it (model/ and, for adapters, adapter/)."""
    torch.manual_seed(0)
    id2label = {0: "negative", 1: "positive"}
    label2id = {name: i for i, name in id2label.items()}
    if kind == "finetune-image":
        processor = build_image_processor(8, 1, [0.3], [0.3])
        model = HfsslVisionForImageClassification(vision_config(num_labels=2, id2label=id2label, label2id=label2id))
        modality = "image"
    else:
        processor = tiny_tokenizer("wordpiece")
        model = HfsslTextForSequenceClassification(text_config(processor, num_labels=2, id2label=id2label,
                                                                label2id=label2id))
        modality = "text"
    run = RunDirectory(root / kind)
    run.path.mkdir(parents=True)
    run.save_model(model.eval(), processor)
    if kind.startswith("adapter"):
        _save_adapter(run, model, processor)
    parent_path = str(parent.path) if isinstance(parent, RunDirectory) else parent
    summary = {"parent": {"path": parent_path, "model": parent_path, "modality": modality, "run_json": True,
                          "objective": "mlm" if modality == "text" else "mae"},
               "task": f"{modality}-classification", "method": "lora" if kind.startswith("adapter") else "none",
               "id2label": {str(k): v for k, v in id2label.items()}, "train_examples": 80, "test_examples": 20,
               "metrics": {"accuracy": 0.9, "macro_f1": 0.8889, "test_loss": 0.3}, "wall_time_s": 12.5, "steps": 30,
               "trainable_parameters": 1234, "learning_rate": 0.001, "epochs": 3.0, "batch_size": 16}
    run.update_manifest(format_version=1, created="2025-01-02T00:00:00+00:00", stage="finetune",
                        task=summary["task"], modality=modality,
                        model={"class": type(model).__name__, "parameters": sum(p.numel() for p in model.parameters()),
                               "config": model.config.to_diff_dict()},
                        id2label=summary["id2label"],
                        data={"source": {"train": ["/tmp/x/train.csv"], "test": ["/tmp/x/test.csv"]},
                              "train_examples": 80, "test_examples": 20},
                        seed=0, versions={"hfssl": "0.1.0"},
                        hardware={"cpu_count": 2, "torch_threads": 2, "cuda_devices": []}, finetune=summary)
    return run


def _save_adapter(run: RunDirectory, model, processor) -> None:
    """A LoRA adapter over the classifier in model/, saved as peft does (base = the local model folder)."""
    from peft import LoraConfig, get_peft_model

    from hfssl.models import HfsslTextForSequenceClassification as Classifier

    base = Classifier.from_pretrained(run.model_dir)
    config = LoraConfig(r=2, lora_alpha=4, target_modules=["qkv", "out"], modules_to_save=["classifier"],
                        task_type="SEQ_CLS")
    peft_model = get_peft_model(base, config)
    peft_model.save_pretrained(run.path / "adapter")
    processor.save_pretrained(run.path / "adapter")
    adapter_config = run.path / "adapter" / "adapter_config.json"
    values = json.loads(adapter_config.read_text())
    values["base_model_name_or_path"] = str(run.model_dir.resolve())
    adapter_config.write_text(json.dumps(values))


def make_run(root: Path, kind: str, **options) -> RunDirectory:
    """Any kind of ALL_KINDS; fine-tuned kinds get an unpublished mlm/mae parent beside them."""
    if kind not in FINETUNED:
        return make_pretrain_run(root, kind, **options)
    parent_kind = "mae" if kind == "finetune-image" else "mlm"
    parent = make_pretrain_run(root / f"parent-of-{kind}", parent_kind, with_eval=False)
    return make_finetune_run(root, kind, parent)

"""`evaluate_run`: measure what a run directory's encoder learned, and record it in the run.

```
runs/<name>/model/  ─▶ frozen features of labelled train/test data ─▶ linear probe | kNN | label efficiency
                     (+ the same on a randomly initialized copy, + supervised training from scratch)
                    ─▶ runs/<name>/eval/<protocol>.json, eval/<protocol>.png, run.json "eval" section, a table
```
Everything is computed before eval/<protocol>.* and run.json are written, so a failed evaluation leaves them as
they were (the finetune protocol's child run, eval/finetune/, is written by `hfssl.finetune` as it trains).
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..training.rundir import RunDirectory, write_json_atomic
from .features import extract_features, input_encoder, modality_of
from .label_efficiency import (
    DEFAULT_FRACTIONS,
    check_fractions,
    learning_curve,
    random_init_copy,
    train_supervised,
)
from .labels import class_note
from .metrics import effective_rank, uniformity
from .plots import plot_accuracies, plot_label_efficiency
from .probes import DEFAULT_KS, knn_probe, linear_probe
from .protocol import DataOptions, LabeledData, load_labeled_data

logger = logging.getLogger(__name__)

PROTOCOLS = ("linear-probe", "knn", "finetune", "label-efficiency")
BASELINES = ("random-init", "supervised")
DIAGNOSTIC_ROWS = 2048  # uniformity is O(n^2): a fixed subset of the test features
FEW_TEST_EXAMPLES = 50  # below this, one test example moves accuracy by more than 2 points: warn


@dataclass
class SupervisedSettings:
    """Budget of the supervised-from-scratch baseline (`train_supervised`)."""

    epochs: int = 10
    min_steps: int = 200
    learning_rate: float = 1e-3
    batch_size: int = 64


@dataclass
class Setup:
    """One evaluation: the encoder, its input encoder, the labelled data and the options of every arm."""

    model: nn.Module
    to_inputs: Any
    modality: str
    data: LabeledData
    baselines: tuple[str, ...] = ()
    batch_size: int = 64
    pooling: str | None = None
    seed: int = 0
    progress: bool = True
    supervised: SupervisedSettings = field(default_factory=SupervisedSettings)
    _cache: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    @property
    def extracted_arms(self) -> list[str]:
        """Arms whose features were computed so far."""
        return list(self._cache)

    @property
    def feature_arms(self) -> list[str]:
        return ["pretrained"] + (["random-init"] if "random-init" in self.baselines else [])

    def features(self, arm: str) -> tuple[np.ndarray, np.ndarray]:
        """(train (n, d), test (m, d)) features of the pretrained encoder or its random-init copy, cached."""
        if arm not in self._cache:
            model = self.model if arm == "pretrained" else random_init_copy(self.model, self.seed)
            self._cache[arm] = tuple(
                extract_features(model, split.examples, self.to_inputs, pooling=self.pooling,
                                 batch_size=self.batch_size, progress=self.progress,
                                 desc=f"Features ({arm}, {role})").numpy()
                for role, split in (("train", self.data.train), ("test", self.data.test))
            )
        return self._cache[arm]

    def train_supervised(self, subset: np.ndarray | None = None, seed: int | None = None) -> dict[str, Any]:
        """Supervised-from-scratch baseline on the training rows `subset` (all when None)."""
        train = self.data.train
        index = np.arange(len(train)) if subset is None else subset
        examples = train.examples[index] if isinstance(train.examples, np.ndarray) else [train.examples[i] for i in index]
        return train_supervised(
            self.model.config, examples, train.labels[index], self.data.test.examples, self.data.test.labels,
            self.to_inputs, modality=self.modality, num_labels=self.data.num_classes,
            epochs=self.supervised.epochs, min_steps=self.supervised.min_steps,
            batch_size=self.supervised.batch_size, learning_rate=self.supervised.learning_rate,
            seed=self.seed if seed is None else seed, device=next(self.model.parameters()).device,
        )


# ---------------------------------------------------------------------------------------------- loading


@contextlib.contextmanager
def _quiet_transformers():
    """Silence the loading report: a pretraining head's weights are expected to be left out."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)


def resolve_device(device: str | torch.device | None) -> torch.device:
    """Where evaluation runs: None or "auto" is the GPU when torch sees one, else the CPU."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"Unknown device {device!r}; use auto, cpu, cuda or cuda:N.") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={str(device)!r} but torch sees no CUDA GPU here; use device='cpu' (or 'auto').")
    return resolved


def load_encoder(run: RunDirectory, device: str | torch.device | None = "cpu") -> tuple[nn.Module, Any, Any]:
    """(encoder in eval mode on `device`, tokenizer or None, image processor or None) from `run.model_dir`.

    The encoder is `AutoModel` of the saved checkpoint (the bare backbone of any head). `device` None or "auto"
    is the GPU when there is one.
    """
    from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

    import hfssl  # noqa: F401  (registers the hfssl Auto classes)

    if not (run.model_dir / "config.json").is_file():
        if (run.path / "config.json").is_file():  # a save_pretrained folder given where a run directory goes
            raise FileNotFoundError(
                f"{run.path} holds a model itself (config.json at its top), not a run directory with a model/ folder: "
                "evaluation writes eval/ and run.json beside model/, so it does not write into a model folder. Make a "
                f"run directory for it, e.g. `mkdir runs/mine && ln -s {run.path.resolve()} runs/mine/model`, and "
                "evaluate runs/mine.")
        raise run.no_model_error("evaluate")
    with _quiet_transformers():
        model, info = AutoModel.from_pretrained(run.model_dir, output_loading_info=True)
    if info.get("missing_keys"):
        logger.warning("Encoder weights missing from %s (randomly initialized): %s",
                       run.model_dir, sorted(info["missing_keys"])[:10])
    model.to(resolve_device(device)).eval()
    if modality_of(model) == "text":
        return model, AutoTokenizer.from_pretrained(run.model_dir), None
    has_processor = (run.model_dir / "preprocessor_config.json").is_file()
    return model, None, AutoImageProcessor.from_pretrained(run.model_dir) if has_processor else None


# ---------------------------------------------------------------------------------------------- protocols


def _diagnostics(test_features: np.ndarray) -> dict[str, Any]:
    rows = test_features[:DIAGNOSTIC_ROWS]
    if len(rows) < 2:  # both measure how features spread out: one row has no spread
        return {"uniformity": None, "effective_rank": None, "rows": len(rows),
                "skipped": "uniformity and effective rank need at least 2 test examples"}
    return {"uniformity": uniformity(rows), "effective_rank": effective_rank(rows), "rows": len(rows)}


def run_linear_probe(setup: Setup) -> dict[str, Any]:
    """Linear probe per feature arm, plus the supervised baseline when asked."""
    arms = {}
    for arm in setup.feature_arms:
        train_f, test_f = setup.features(arm)
        arms[arm] = linear_probe(train_f, setup.data.train.labels, test_f, setup.data.test.labels, seed=setup.seed)
    if "supervised" in setup.baselines:
        arms["supervised"] = setup.train_supervised()
    return {"arms": arms}


def run_knn(setup: Setup, ks: Sequence[int]) -> dict[str, Any]:
    """Weighted kNN per feature arm and k, plus the supervised baseline when asked."""
    arms = {}
    for arm in setup.feature_arms:
        train_f, test_f = setup.features(arm)
        arms[arm] = knn_probe(train_f, setup.data.train.labels, test_f, setup.data.test.labels, ks=ks)
    if "supervised" in setup.baselines:
        arms["supervised"] = setup.train_supervised()
    return {"arms": arms}


def run_label_efficiency(setup: Setup, fractions: Sequence[float], seeds: Sequence[int]) -> dict[str, Any]:
    """A learning curve per arm: the linear probe on each feature arm, supervised training from scratch."""
    train_y, test_y = setup.data.train.labels, setup.data.test.labels
    curves = {}
    for arm in setup.feature_arms:
        train_f, test_f = setup.features(arm)

        def score(subset: np.ndarray, seed: int, train_f=train_f, test_f=test_f) -> float:
            return linear_probe(train_f[subset], train_y[subset], test_f, test_y, seed=seed)["accuracy"]

        curves[arm] = learning_curve(train_y, fractions, seeds, score, desc=f"Label efficiency ({arm})",
                                     progress=setup.progress)
    if "supervised" in setup.baselines:
        curves["supervised"] = learning_curve(
            train_y, fractions, seeds, lambda subset, seed: setup.train_supervised(subset, seed)["accuracy"],
            desc="Label efficiency (supervised)", progress=setup.progress,
        )
    return {"curves": curves, "seeds": list(seeds), "probe": "linear probe (C chosen per subset)"}


def run_finetune(setup: Setup, run: RunDirectory, options: DataOptions, batch_size: int,
                 epochs: float | None = None, learning_rate: float | None = None) -> dict[str, Any]:
    """Full fine-tuning of the pretrained encoder with a classification head, through `hfssl.finetune.finetune`
    (the HF Trainer), into the child run <run>/eval/finetune/; plus supervised training from scratch when asked.
    `epochs` and `learning_rate` default to `hfssl.finetune.finetune`'s.

    The fine-tune reads the rows this evaluation loaded (`setup.data.rows`, saved to a temporary folder), not the
    source again: `hfssl.finetune` carves a missing test split and draws --max-*-examples subsets its own way, so
    from the source it would score other test examples than the supervised baseline and the other protocols.

    A "random-init" fine-tune is training from scratch: ask for the "supervised" baseline instead.
    """
    try:
        from ..finetune import finetune
    except ImportError:
        raise ValueError(
            "The finetune protocol needs hfssl.finetune.finetune, which this installation lacks. "
            "Use --protocol linear-probe, knn or label-efficiency, or install an hfssl with fine-tuning."
        ) from None
    task = "image-classification" if setup.modality == "image" else "text-classification"
    column = setup.data.description["input_column"]
    data = {"image_column" if setup.modality == "image" else "text_column": column,
            "label_column": options.label_column, "seed": options.seed}
    schedule = {k: v for k, v in (("epochs", epochs), ("learning_rate", learning_rate)) if v is not None}
    with tempfile.TemporaryDirectory(prefix="hfssl-evaluate-finetune-") as folder:
        setup.data.rows.save_to_disk(folder)
        outcome = finetune(run.path, task=task, output=run.eval_dir / "finetune", peft="none", batch_size=batch_size,
                           overwrite=True, dataset=folder, train_split="train", test_split="test", **schedule, **data)
    _record_evaluation_rows(outcome.get("run_dir"), setup.data.description)
    metrics = outcome.get("metrics", {})
    protocol = {"name": "full fine-tuning (hfssl.finetune, HF Trainer)", "run_dir": outcome.get("run_dir"),
                "data": "the train and test rows of this evaluation (see data)",
                **{k: outcome.get(k) for k in ("epochs", "learning_rate", "batch_size", "train_examples",
                                               "test_examples", "trainable_parameters", "wall_time_s")}}
    arms = {"pretrained": {"accuracy": metrics.get("accuracy"), "macro_f1": metrics.get("macro_f1"), "protocol": protocol}}
    if "supervised" in setup.baselines:
        arms["supervised"] = setup.train_supervised()
    return {"arms": arms}


def _record_evaluation_rows(run_dir: str | None, data: dict[str, Any]) -> None:
    """The fine-tuned child run read the evaluation's rows from a temporary folder, gone by now: record the
    evaluation's own source in its run.json instead, so its card and provenance name data that exists."""
    if not run_dir or not (Path(run_dir) / "run.json").is_file():
        return
    child = RunDirectory(Path(run_dir))
    recorded = child.read_manifest().get("data") or {}
    child.update_manifest(data={**recorded, "source": data.get("source"), "data_dir": None,
                                "rows": "the train and test rows of the parent's `hfssl evaluate` (its eval/finetune.json)"})


# ---------------------------------------------------------------------------------------------- outputs


def plot_title(result: dict[str, Any]) -> str:
    """The title of a result's plot: protocol, data without local paths (the plot is published), seeds of a curve."""
    from ..cards.results import public_source

    title = f"{result['protocol']} on {public_source(result['data']['source'])}"
    if "curves" in result:
        seeds = len(result.get("seeds") or [])
        title += f"\n(mean ± std over {seeds} seeds)" if seeds > 1 else "\n(1 seed)"
    return title


def _plot(result: dict[str, Any], protocol: str, eval_dir: Path) -> list[str]:
    """Write the protocol's PNG into eval/; returns file names relative to the run directory."""
    path = eval_dir / f"{protocol}.png"
    title = plot_title(result)
    if protocol == "label-efficiency":
        plot_label_efficiency(result["curves"], path, title=title)
    elif protocol == "knn":
        bars = {f"{arm} k={k}": s["accuracy"] for arm, r in result["arms"].items() for k, s in r.get("by_k", {}).items()}
        bars.update({arm: r["accuracy"] for arm, r in result["arms"].items() if "by_k" not in r})
        plot_accuracies(bars, path, title=title)
    else:
        accuracies = {arm: r["accuracy"] for arm, r in result["arms"].items() if "accuracy" in r}
        if not accuracies:
            return []
        plot_accuracies(accuracies, path, title=title)
    return [f"{eval_dir.name}/{path.name}"]


def table_rows(result: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(arm, setting, accuracy, macro-F1 or spread) rows of a result, for the printed table."""
    rows = []
    for arm, points in result.get("curves", {}).items():
        for p in points:
            spread = f"± {p['std']:.4f}" if len(p.get("accuracies", ())) != 1 else "(1 seed)"
            rows.append((arm, f"{p['fraction']:g} ({p['examples']} labels)", f"{p['mean']:.4f}", spread))
    for arm, r in result.get("arms", {}).items():
        if "by_k" in r:
            used = dict(zip(map(str, r.get("protocol", {}).get("k_requested", [])), r.get("protocol", {}).get("k_used", [])))
            rows += [(arm, f"k={k}" + (f" ({used[k]} used: all the training examples)" if used.get(k, int(k)) < int(k)
                                       else ""), f"{s['accuracy']:.4f}", f"{s['macro_f1']:.4f}")
                     for k, s in r["by_k"].items()]
        elif "accuracy" in r:
            setting = f"C={r['protocol']['C']:g}" if "C" in r.get("protocol", {}) else r.get("protocol", {}).get("name", "")
            rows.append((arm, setting, f"{r['accuracy']:.4f}", f"{r.get('macro_f1', float('nan')):.4f}"))
    return rows


def format_table(result: dict[str, Any]) -> str:
    """A plain-text table of a result, headed by the protocol and the data."""
    data = result["data"]
    last = "± std" if "curves" in result else "macro-F1"
    rows = [("arm", "setting", "accuracy", last)] + table_rows(result)
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    heading = (f"{result['protocol']}: {data['source']} (train {data['train_examples']}, test {data['test_examples']}, "
               f"{data['num_classes']} classes), {result['wall_time_s']:.1f} s")
    note = class_note(data) if "curves" not in result else ""  # a curve reports accuracy only
    lines = [heading] + ([note] if note else [])
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    return "\n".join(lines)


def _record(run: RunDirectory, protocol: str, result: dict[str, Any]) -> None:
    """eval/<protocol>.json and the run.json "eval" section, merged with earlier protocols."""
    write_json_atomic(run.eval_dir / f"{protocol}.json", result)
    manifest = run.read_manifest()
    run.update_manifest(eval={**manifest.get("eval", {}), protocol: result})


# ---------------------------------------------------------------------------------------------- entry point


def features_rule(model: nn.Module, pooling: str | None) -> str:
    """How the features were pooled, as run.json records it: the rule asked for, else `get_features`, else the
    default mean over real tokens or patches (a stock encoder without `get_features`, see `encoder_features`)."""
    if pooling:
        return f"pooling={pooling}"
    return "get_features" if hasattr(model, "get_features") else "pooling=mean (default: the model has no get_features)"


def check_supervised_baseline(model: nn.Module, modality: str) -> None:
    """ValueError, before any feature is extracted, when no classification head is registered for the model's
    architecture: the supervised baseline builds one (`classifier_from_config`)."""
    from transformers import (
        AutoModelForImageClassification,
        AutoModelForSequenceClassification,
    )

    import hfssl  # noqa: F401  (registers the hfssl Auto classes)

    auto = AutoModelForImageClassification if modality == "image" else AutoModelForSequenceClassification
    if type(model.config) not in auto._model_mapping:
        raise ValueError(
            f"The supervised baseline needs an {auto.__name__} for {type(model.config).__name__} "
            f"({type(model).__name__}), "
            "and transformers registers none: drop 'supervised' from the baselines (--baselines random-init), or "
            "evaluate an architecture that has a classification head.")


def _check_choices(protocol: str, baselines: Sequence[str]) -> None:
    if protocol not in PROTOCOLS:
        raise ValueError(f"Unknown protocol {protocol!r}; valid protocols: {', '.join(PROTOCOLS)}.")
    unknown = [b for b in baselines if b not in BASELINES]
    if unknown:
        raise ValueError(f"Unknown baseline(s) {unknown}; valid baselines: {', '.join(BASELINES)}.")


def _check_numbers(ks: Sequence[int], batch_size: int, finetune_epochs: float | None,
                   finetune_learning_rate: float | None) -> None:
    """ValueErrors for option values no protocol can use, before the model and the data load."""
    for name, value in (("finetune_epochs", finetune_epochs), ("finetune_learning_rate", finetune_learning_rate)):
        if value is not None and not value > 0:
            raise ValueError(f"{name} must be > 0, got {value}.")
    if not ks or any(k < 1 for k in ks):
        raise ValueError(f"k={list(ks)}: give one or more neighbour counts, each >= 1 (e.g. --k 20,200).")
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be >= 1 (--batch-size).")


def evaluate_run(
    run_dir: str | Path,
    protocol: str,
    *,
    dataset: Any = None,
    data_dir: str | None = None,
    train_files: Sequence[str] | None = None,
    test_files: Sequence[str] | None = None,
    train_split: str = "train",
    test_split: str | None = None,
    text_column: str | None = None,
    image_column: str | None = None,
    label_column: str = "label",
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    seeds: int | Sequence[int] = 3,
    baselines: Sequence[str] = (),
    k: Sequence[int] = DEFAULT_KS,
    batch_size: int = 64,
    max_train_examples: int | None = None,
    max_test_examples: int | None = None,
    pooling: str | None = None,
    supervised: SupervisedSettings | None = None,
    finetune_epochs: float | None = None,
    finetune_learning_rate: float | None = None,
    seed: int = 0,
    progress: bool = True,
    print_table: bool = True,
    device: str | torch.device | None = None,
) -> dict[str, Any]:
    """Evaluate the encoder of `run_dir` by `protocol` on labelled data, and record the result in the run.

    Args:
        protocol: "linear-probe", "knn", "label-efficiency" or "finetune".
        dataset / train_files (+ test_files): the labelled data (see `hfssl.evaluation.protocol.load_source`).
        baselines: any of "random-init" (same probe on a randomly initialized copy of the architecture) and
            "supervised" (the architecture with a classification head trained from scratch on the same labels).
        fractions, seeds: label fractions and seeds (a count n means seeds 0..n-1) of "label-efficiency".
        k: neighbour counts of "knn". pooling: None uses `get_features`; "mean", "cls" or "pooler_output"
            for stock transformers encoders.
        finetune_epochs, finetune_learning_rate: the schedule of "finetune" (None: `hfssl.finetune.finetune`'s
            defaults). Give it the supervised baseline's epochs to compare the two at an equal budget.
        device: where features are extracted and the supervised baseline trains; None or "auto" is the GPU
            when torch sees one, else the CPU. (The finetune protocol trains wherever the Trainer puts it.)

    Returns:
        The result written to eval/<protocol>.json and to run.json["eval"][protocol].
    """
    _check_choices(protocol, baselines)
    _check_numbers(k, batch_size, finetune_epochs, finetune_learning_rate)
    device = resolve_device(device)  # a GPU asked for where there is none fails before anything loads
    run = RunDirectory(run_dir)
    model, tokenizer, image_processor = load_encoder(run, device)
    modality = modality_of(model)
    if "supervised" in baselines:
        check_supervised_baseline(model, modality)
    options = DataOptions(
        dataset=dataset, data_dir=data_dir, train_files=list(train_files) if train_files else None,
        test_files=list(test_files) if test_files else None, train_split=train_split, test_split=test_split,
        text_column=text_column, image_column=image_column, label_column=label_column,
        max_train_examples=max_train_examples, max_test_examples=max_test_examples, seed=seed,
    )
    start = time.perf_counter()
    data = load_labeled_data(options, modality, model.config)
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    if not seed_list:
        raise ValueError(f"seeds={seeds!r} gives no seed; pass a count >= 1 or a list of seeds.")
    if len(data.test) < FEW_TEST_EXAMPLES:
        logger.warning("The test split holds %d example(s): accuracy moves in steps of %.2g, so differences between "
                       "arms below that mean little. Give a larger test split (--test-files, --max-test-examples).",
                       len(data.test), 1 / len(data.test))
    if protocol == "label-efficiency":
        fractions = sorted(set(fractions))
        check_fractions(data.train.labels, fractions, data.class_names)
    setup = Setup(model, input_encoder(model, tokenizer, image_processor), modality, data, tuple(baselines),
                  batch_size, pooling, seed, progress, supervised or SupervisedSettings())
    runners = {
        "linear-probe": lambda: run_linear_probe(setup),
        "knn": lambda: run_knn(setup, k),
        "label-efficiency": lambda: run_label_efficiency(setup, fractions, seed_list),
        "finetune": lambda: run_finetune(setup, run, options, batch_size, finetune_epochs, finetune_learning_rate),
    }
    outcome = runners[protocol]()
    result = {
        "protocol": protocol,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": {"path": str(run.model_dir), "class": type(model).__name__, "modality": modality,
                  "features": features_rule(model, pooling),
                  "device": str(next(model.parameters()).device)},
        "data": data.description,
        "baselines": list(baselines),
        **outcome,
        "diagnostics": {arm: _diagnostics(setup.features(arm)[1]) for arm in setup.extracted_arms},
        "wall_time_s": round(time.perf_counter() - start, 2),
    }
    result["plots"] = _plot(result, protocol, run.eval_dir)
    _record(run, protocol, result)
    if print_table:
        print(format_table(result))
    return result

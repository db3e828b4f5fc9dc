"""Measure what a self-supervised encoder learned: features, linear probe, kNN, label efficiency, metrics, plots.

    from hfssl.evaluation import evaluate_run
    evaluate_run("runs/mae", "linear-probe", dataset="fashion-mnist", baselines=["random-init"])

The probe and curve functions are pure over features and labels; `evaluate_run` ties them to a run
directory (reads model/, writes eval/ and the run.json "eval" section).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_attributes

if TYPE_CHECKING:
    from .api import (
        BASELINES,
        PROTOCOLS,
        SupervisedSettings,
        evaluate_run,
        format_table,
        load_encoder,
    )
    from .features import (
        POOLING_RULES,
        ImageInputs,
        TextInputs,
        encoder_features,
        extract_features,
        input_encoder,
    )
    from .label_efficiency import (
        DEFAULT_FRACTIONS,
        check_fractions,
        learning_curve,
        random_init_copy,
        stratified_subset,
        train_supervised,
    )
    from .metrics import METRIC_NAMES, load_metric, metric_path
    from .plots import plot_accuracies, plot_label_efficiency
    from .probes import (
        DEFAULT_KS,
        KNN_TEMPERATURE,
        knn_predict,
        knn_probe,
        linear_probe,
    )
    from .protocol import DataOptions, LabeledData, LabeledSplit, load_labeled_data

__all__ = [
    "BASELINES",
    "DEFAULT_FRACTIONS",
    "DEFAULT_KS",
    "KNN_TEMPERATURE",
    "METRIC_NAMES",
    "POOLING_RULES",
    "PROTOCOLS",
    "DataOptions",
    "ImageInputs",
    "LabeledData",
    "LabeledSplit",
    "SupervisedSettings",
    "TextInputs",
    "check_fractions",
    "encoder_features",
    "evaluate_run",
    "extract_features",
    "format_table",
    "input_encoder",
    "knn_predict",
    "knn_probe",
    "learning_curve",
    "linear_probe",
    "load_encoder",
    "load_labeled_data",
    "load_metric",
    "metric_path",
    "plot_accuracies",
    "plot_label_efficiency",
    "random_init_copy",
    "stratified_subset",
    "train_supervised",
]
# Public name -> its submodule, imported on first use: `hfssl <command> --help` and argument errors need
# only the command's parser, not torch and transformers, which the submodules import.
_EXPORTS = {
    "BASELINES": ".api",
    "PROTOCOLS": ".api",
    "SupervisedSettings": ".api",
    "evaluate_run": ".api",
    "format_table": ".api",
    "load_encoder": ".api",
    "POOLING_RULES": ".features",
    "ImageInputs": ".features",
    "TextInputs": ".features",
    "encoder_features": ".features",
    "extract_features": ".features",
    "input_encoder": ".features",
    "DEFAULT_FRACTIONS": ".label_efficiency",
    "check_fractions": ".label_efficiency",
    "learning_curve": ".label_efficiency",
    "random_init_copy": ".label_efficiency",
    "stratified_subset": ".label_efficiency",
    "train_supervised": ".label_efficiency",
    "METRIC_NAMES": ".metrics",
    "load_metric": ".metrics",
    "metric_path": ".metrics",
    "plot_accuracies": ".plots",
    "plot_label_efficiency": ".plots",
    "DEFAULT_KS": ".probes",
    "KNN_TEMPERATURE": ".probes",
    "knn_predict": ".probes",
    "knn_probe": ".probes",
    "linear_probe": ".probes",
    "DataOptions": ".protocol",
    "LabeledData": ".protocol",
    "LabeledSplit": ".protocol",
    "load_labeled_data": ".protocol",
}

__getattr__, __dir__ = lazy_attributes(__name__, _EXPORTS)

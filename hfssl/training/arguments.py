"""Argument dataclasses for pretraining, parsed by `HfArgumentParser` from flags or one YAML/JSON file.

Model hyperparameters live in the model config; run settings live here and in `TrainingArguments`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field


def _paths_as_strings(arguments, path_fields: tuple[str, ...], list_fields: tuple[str, ...] = ()) -> None:
    """Let Python callers pass `pathlib.Path`s where the command line gives strings: a path becomes its string,
    and a single path (or string) given for a list field becomes a one-item list."""
    for name in path_fields:
        value = getattr(arguments, name)
        if isinstance(value, os.PathLike):
            setattr(arguments, name, os.fspath(value))
    for name in list_fields:
        value = getattr(arguments, name)
        if isinstance(value, (str, os.PathLike)):
            value = [value]
        if value is not None:
            setattr(arguments, name, [os.fspath(v) if isinstance(v, os.PathLike) else v for v in value])


def _check_dataset_object(arguments) -> None:
    """`dataset` is a name or folder (a string), or an in-memory `datasets` object from Python: check such an object
    now, naming the fix, instead of failing deep inside loading. A stream (`IterableDataset`) is read as
    `streaming=True` reads a corpus, so it sets `streaming`."""
    from ..data.in_memory import check_in_memory, is_stream

    value = arguments.dataset
    if value is None or isinstance(value, str):
        return
    check_in_memory(value, arguments.train_split, arguments.validation_split)
    for name in ("dataset_config", "data_dir"):
        if getattr(arguments, name) is not None:
            raise ValueError(f"{name}={getattr(arguments, name)!r} goes with a named dataset and would be ignored "
                             f"with an in-memory {type(value).__name__}: drop it.")
    if is_stream(value):
        arguments.streaming = True


@dataclass
class ModelArguments:
    """What to train: the objective, the architecture and the tokenizer."""

    objective: str = field(default="mlm", metadata={"help": "Pretraining objective, one of the Objectives listed above."})
    model_size: str = field(default="tiny", metadata={"help": "Size preset: tiny, small or base."})
    config_overrides: str | None = field(
        default=None,
        metadata={"help": "Comma-separated config fields over the preset, e.g. "
                          "'num_hidden_layers=2,position_embedding_type=learned' (an unknown field is refused, "
                          "naming the valid ones)."},
    )
    init_from: str | None = field(
        default=None,
        metadata={"help": "Continue pretraining from a run directory, a saved model folder or a Hub id."},
    )
    tokenizer: str | None = field(
        default=None,
        metadata={"help": "Use an existing tokenizer (folder or Hub id) instead of training one on the corpus."},
    )
    tokenizer_type: str | None = field(
        default=None,
        metadata={"help": "Tokenizer to train: bpe (byte-level), wordpiece or unigram. Default: wordpiece for "
                          "masked objectives, bpe for next-token."},
    )
    vocab_size: int = field(default=8192, metadata={"help": "Vocabulary size of a trained tokenizer."})
    method_options: str | None = field(
        default=None,
        metadata={"help": "Hyperparameters of a contrastive method under the paper's names, e.g. "
                          "'temperature=0.2,projection_dim=128' (saved in the model config)."},
    )

    def __post_init__(self):
        _paths_as_strings(self, ("init_from", "tokenizer"))


@dataclass
class DataArguments:
    """Where the text comes from and how it becomes training blocks."""

    train_files: list[str] | None = field(
        default=None, metadata={"help": "Local files, globs or folders (txt, json, jsonl, csv, tsv, parquet)."}
    )
    validation_files: list[str] | None = field(
        default=None, metadata={"help": "Validation files; default: carve a split off the training data."}
    )
    dataset: str | None = field(
        default=None,
        metadata={"help": "A Hub dataset id, a `datasets` builder name (json, csv, text, imagefolder) or a "
                          "save_to_disk folder (from Python also an in-memory datasets.Dataset, DatasetDict or "
                          "IterableDataset)."},
    )
    dataset_config: str | None = field(default=None, metadata={"help": "The dataset's configuration name."})
    data_dir: str | None = field(default=None, metadata={"help": "`data_dir` passed to `load_dataset`."})
    train_split: str = field(default="train", metadata={"help": "Split to train on."})
    validation_split: str | None = field(
        default=None, metadata={"help": "Existing split to validate on; default: carve one off the training split."}
    )
    validation_fraction: float = field(
        default=0.05, metadata={"help": "Fraction of training rows carved off for validation (non-streaming)."}
    )
    validation_examples: int = field(
        default=500, metadata={"help": "Rows taken from the start of the stream for validation (streaming)."}
    )
    text_column: str = field(default="text", metadata={"help": "Column that holds the text."})
    block_size: int = field(default=128, metadata={"help": "Tokens per packed training block."})
    streaming: bool = field(default=False, metadata={"help": "Stream the corpus instead of loading it in memory."})
    max_train_examples: int | None = field(
        default=None, metadata={"help": "Keep only the first N training rows (quick experiments)."}
    )
    strict: bool = field(
        default=False, metadata={"help": "Fail on undecodable input instead of skipping it with a count."}
    )
    mlm_probability: float = field(default=0.15, metadata={"help": "Fraction of tokens masked for MLM."})
    mlm_static_masking: bool = field(
        default=False,
        metadata={"help": "MLM: mask exactly round(p * block size) tokens per block, so batches have static shapes "
                          "(torch.compile compiles once; no host-device sync in the sparse head on a GPU)."},
    )
    image_column: str | None = field(default=None, metadata={"help": "Column holding the images (default: detected)."})
    image_size: int | None = field(default=None, metadata={"help": "Images are resized to this square size (default 32)."})
    num_channels: int | None = field(
        default=None, metadata={"help": "1 (grayscale) or 3 (RGB); images are converted (default 3, 1 for the "
                                         "built-in grayscale sets)."}
    )
    view_overrides: str | None = field(
        default=None,
        metadata={"help": "Change the method's augmentation recipe, e.g. 'n_local_crops=2,global_crop_scale=(0.3,1.0)'."},
    )
    preprocessing_num_workers: int | None = field(default=None, metadata={"help": "Processes for tokenization."})

    def __post_init__(self):
        _paths_as_strings(self, ("dataset", "data_dir"), ("train_files", "validation_files"))
        _check_dataset_object(self)


@dataclass
class RunArguments:
    """Where the run goes and how it starts."""

    output: str | None = field(default=None, metadata={"help": "Run directory (runs/<name>)."})
    overwrite: bool = field(default=False, metadata={"help": "Replace an existing run directory."})
    resume: bool = field(default=False, metadata={"help": "Resume from the last checkpoint in the run directory."})
    probe_dataset: str | None = field(
        default=None,
        metadata={"help": "Labelled data for an online kNN/linear probe while pretraining: a file (csv, json, "
                          "parquet), a save_to_disk folder, a built-in set (fashion-mnist, digits) or a Hub id."},
    )
    probe_label_column: str = field(default="label", metadata={"help": "Label column of --probe-dataset."})
    probe_text_column: str | None = field(
        default=None, metadata={"help": "Text column of --probe-dataset (default: detected)."}
    )
    probe_image_column: str | None = field(
        default=None, metadata={"help": "Image column of --probe-dataset (default: detected)."}
    )
    probe_examples: int = field(
        default=2000, metadata={"help": "Rows of --probe-dataset used (70%% memory bank / probe fit, 30%% scored)."}
    )
    probes: str = field(default="knn", metadata={"help": "Online probes: knn, linear or knn,linear."})
    probe_every: int = field(default=200, metadata={"help": "Run the online probe every N optimizer steps."})
    collapse_every: int = field(
        default=200,
        metadata={"help": "Measure feature std and effective rank on a fixed batch every N steps (0: off)."},
    )
    stop_on_collapse: bool = field(
        default=False, metadata={"help": "Stop training when the collapse monitor finds collapsed features."}
    )
    max_time_s: float = field(
        default=0.0,
        metadata={"help": "Stop training after this many seconds of optimizer steps (0: no limit). The model is "
                          "saved as at the end; --max-steps still sets the schedule, and --resume goes on from the "
                          "checkpoint saved at the stop."},
    )

    def __post_init__(self):
        _paths_as_strings(self, ("output", "probe_dataset"))

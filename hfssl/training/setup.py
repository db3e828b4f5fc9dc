"""Turn arguments into what the Trainer needs, per modality: model, processor, datasets, collator, views.

Everything here runs before the run directory is touched, so bad input fails with nothing written.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from datasets import DatasetDict
from transformers import PreTrainedModel, default_data_collator
from transformers.data.data_collator import DataCollatorWithPadding

from ..data.collators import build_collator
from ..data.corpora import stdlib_docstrings_dataset
from ..data.files import file_format
from ..data.images import IMAGE_SUFFIXES
from ..data.in_memory import (
    describe_in_memory,
    in_memory_fingerprint,
    in_memory_splits,
    is_in_memory,
    is_stream,
    source_name,
)
from ..data.packing import check_block_size, tokenize_and_pack, tokenize_documents
from ..data.text import Rereadable, carve_validation, limit_rows, load_text_dataset, texts_for_tokenizer
from ..data.tokenizer import (
    TOKENIZER_KINDS,
    check_tokenizer_fits,
    default_tokenizer_kind,
    is_masked_objective,
    load_tokenizer,
    train_tokenizer,
)
from ..models.configuration_hfssl_text import TEXT_SIZES
from ..models.configuration_hfssl_vision import VISION_SIZES
from .arguments import DataArguments, ModelArguments
from .continuation import (
    check_matches_checkpoint,
    check_resume_objective,
    check_same_vocabulary,
    load_init_model,
)
from .distributed import group_rank, group_world_size
from .init_from import (
    check_init_source,
    check_init_tokenizer,
    check_tokenizer_flags,
    resolve_init_path,
    warn_unused_image_flags,
    warn_unused_vocab_size,
)
from .objectives import OBJECTIVES, Objective
from .options import parse_options, parse_overrides

logger = logging.getLogger(__name__)

BUILTIN_CORPORA = {"stdlib-docstrings": "docstrings of the Python standard library (ships with every Python)"}


@dataclass
class Prepared:
    """Everything a pretraining run needs, built and checked before anything is written."""

    model: PreTrainedModel
    processor: Any  # tokenizer or image processor, saved beside the model
    train_dataset: Any
    eval_dataset: Any
    collator: Any
    data: dict[str, Any]
    processor_description: dict[str, Any]
    views: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------- shared


def has_accelerator() -> bool:
    """Whether torch sees a GPU-like device (torch >= 2.6: CUDA, XPU, MPS, ...; before that, CUDA)."""
    probe = getattr(torch, "accelerator", None)
    return probe.is_available() if probe is not None else torch.cuda.is_available()


def use_cpu_processes_without_accelerator() -> bool:
    """Launched as several processes (torchrun, accelerate launch) on a machine without GPUs: make them
    CPU data-parallel processes over gloo. Call it before TrainingArguments are parsed; returns whether
    it changed anything.

    Without it accelerate finds no device to distribute over and sets up no data parallelism: every
    process trains its own copy on all the data, each believing it is rank 0 (accelerate launch even
    exports ACCELERATE_USE_CPU=False unless given --cpu).
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or has_accelerator():
        return False
    os.environ["ACCELERATE_USE_CPU"] = "true"
    return True


def process_seed(seed: int) -> int:
    """`seed` plus this process's rank: for draws that must differ between processes, such as the MLM
    collator's masks (with one seed, every rank would mask the same positions of its i-th block)."""
    return seed + group_rank()


def from_main_process(make: Callable[[], Any]) -> Any:
    """`make()` run once, on the main process, and its (pickled) result sent to every other process of a
    running process group; just `make()` with one process.

    For what must be identical everywhere but is not reproducible: the Rust tokenizer trainers break ties
    differently from one process to the next, and ranks with different vocabularies would train one model
    on token ids that mean different things.
    """
    if group_world_size() == 1:
        return make()
    box = [make() if group_rank() == 0 else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


# ---------------------------------------------------------------- text


def named_dataset(data_args: DataArguments) -> str | None:
    """`--dataset` when it names data (a string); None for an in-memory `datasets` object or no dataset."""
    return data_args.dataset if isinstance(data_args.dataset, str) else None


def load_corpus(data_args: DataArguments, seed: int):
    """Train/validation text splits and their description for run.json; knows the built-in corpora."""
    if named_dataset(data_args) not in BUILTIN_CORPORA:
        return load_text_dataset(data_args, seed=seed)
    check_builtin_corpus_flags(data_args)
    dataset = limit_rows(stdlib_docstrings_dataset(), data_args.max_train_examples)
    train, validation = carve_validation(dataset, data_args, seed)
    splits = DatasetDict(train=train, validation=validation)
    description = {
        "source": data_args.dataset,
        "description": BUILTIN_CORPORA[data_args.dataset],
        "format": "builtin",
        "text_column": "text",
        "train_rows": len(splits["train"]),
        "validation_rows": len(splits["validation"]),
        "streaming": False,
        "fingerprint": dataset._fingerprint,
    }
    return splits, description


def check_builtin_corpus_flags(data_args: DataArguments) -> None:
    """Refuse the data flags a built-in corpus has no use for, instead of ignoring them."""
    defaults = DataArguments()
    ignored = [flag for flag, name in (
        ("--train-files", "train_files"), ("--validation-files", "validation_files"),
        ("--validation-split", "validation_split"), ("--train-split", "train_split"), ("--data-dir", "data_dir"),
        ("--dataset-config", "dataset_config"), ("--text-column", "text_column"), ("--streaming", "streaming"),
    ) if getattr(data_args, name) != getattr(defaults, name)]
    if ignored:
        raise ValueError(
            f"--dataset {data_args.dataset} is a built-in corpus with one text column and no splits, so "
            f"{', '.join(ignored)} cannot apply: drop {'it' if len(ignored) == 1 else 'them'}, or pass your own data "
            f"with --train-files (a validation split is carved off with --validation-fraction)."
        )


def prepare_tokenizer(model_args: ModelArguments, objective: Objective, raw, data_args: DataArguments,
                      resume_checkpoint: str | None):
    """The run's tokenizer: the checkpoint's when resuming, a given one, the init model's, or one trained here."""
    if resume_checkpoint:
        tokenizer = load_tokenizer(resume_checkpoint)
        if model_args.tokenizer:  # the checkpoint's embeddings were learned with the checkpoint's token ids
            given = load_tokenizer(str(resolve_init_path(model_args.tokenizer)), "--tokenizer")
            if given.get_vocab() != tokenizer.get_vocab():
                raise ValueError(
                    f"--resume continues with the tokenizer saved in {resume_checkpoint}, and --tokenizer "
                    f"{model_args.tokenizer} is another one ({len(given):,} against {len(tokenizer):,} tokens, or "
                    "the same tokens under other ids): the model's embeddings would be read with the wrong ids. "
                    "Leave out --tokenizer to resume, or start a new run from the weights with --init-from.")
        return tokenizer, {"source": "checkpoint", "path": resume_checkpoint}
    # A run directory stands for its model/ folder, as with --init-from.
    given = model_args.tokenizer or model_args.init_from
    source = resolve_init_path(given) if given else None
    if source:
        tokenizer = load_tokenizer(str(source), "--tokenizer" if model_args.tokenizer else "--init-from")
        if model_args.tokenizer and model_args.init_from:
            check_same_vocabulary(tokenizer, model_args.init_from, model_args.tokenizer)
        if model_args.init_from:
            check_init_tokenizer(tokenizer, objective, model_args.init_from)
        warn_unused_vocab_size(model_args, tokenizer)
        return tokenizer, {"source": str(source), "vocab_size": len(tokenizer)}
    kind = model_args.tokenizer_type or default_tokenizer_kind(objective.name)
    logger.info("Training a %s tokenizer with %d tokens on the corpus", kind, model_args.vocab_size)
    tokenizer = from_main_process(lambda: train_tokenizer(
        Rereadable(lambda: texts_for_tokenizer(raw["train"])), kind=kind, vocab_size=model_args.vocab_size,
        model_max_length=data_args.block_size,
    ))
    return tokenizer, {"source": "trained on the training split", "kind": kind, "vocab_size": len(tokenizer)}


def build_text_model(model_args: ModelArguments, objective: Objective, tokenizer, block_size: int):
    """A fresh model from a size preset and overrides, or an existing checkpoint (continued pretraining)."""
    if model_args.init_from:
        extra = objective.config_extra(parse_options(model_args.method_options, "--method-options"))
        return load_init_model(objective, model_args.init_from, extra, block_size)
    overrides = {
        "vocab_size": len(tokenizer),
        "max_position_embeddings": max(512, block_size),
        "is_causal": objective.causal,
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.cls_token_id,
        "eos_token_id": tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id,
        **dict(objective.config_defaults),
        **objective.config_extra(parse_options(model_args.method_options, "--method-options")),
        **parse_overrides(model_args.config_overrides, objective.config_class),
    }
    config = objective.config_class.from_size(model_args.model_size, **overrides)
    return objective.model_class(config)


def prepare_text(model_args: ModelArguments, data_args: DataArguments, objective: Objective, seed: int,
                 resume_checkpoint: str | None) -> Prepared:
    """Corpus -> tokenizer -> model -> tokenized (packed or per-document) splits -> collator."""
    check_block_size(data_args.block_size)
    raw, description = load_corpus(data_args, seed)
    tokenizer, tokenizer_description = prepare_tokenizer(model_args, objective, raw, data_args, resume_checkpoint)
    model = build_text_model(model_args, objective, tokenizer, data_args.block_size)
    check_tokenizer_fits(tokenizer, model.config.vocab_size, objective.collator, model_args.init_from)
    fit_block_size(tokenizer, model.config, data_args.block_size, tokenizer_description)
    if objective.collator == "padding":
        data = tokenize_documents(raw, tokenizer, data_args.block_size, num_proc=data_args.preprocessing_num_workers)
        collator = document_collator(tokenizer, data_args.block_size, data_args.streaming)
    else:
        data = tokenize_and_pack(raw, tokenizer, data_args.block_size, objective.collator,
                                 num_proc=data_args.preprocessing_num_workers)
        collator = build_collator(objective.collator, tokenizer, data_args.mlm_probability,
                                  seed=process_seed(seed), static_masking=data_args.mlm_static_masking)
    description = {**description, "block_size": data_args.block_size,
                   "blocks": {split: dataset_length(data[split]) for split in ("train", "validation")}}
    return Prepared(model, tokenizer, data["train"], data["validation"], collator, description, tokenizer_description)


def fit_block_size(tokenizer, config, block_size: int, tokenizer_description: dict[str, Any]) -> None:
    """Check the block fits the model's positions, and let a tokenizer made for shorter blocks (a tokenizer
    records the block size it was trained with as its model_max_length) serve longer ones the model can take."""
    learned = getattr(config, "position_embedding_type", "rope") == "learned"
    limit = getattr(config, "max_position_embeddings", None)
    if learned and limit is not None and block_size > limit:
        raise ValueError(f"--block-size {block_size} is longer than the model's {limit} learned positions; lower "
                         f"--block-size, or raise max_position_embeddings (--config-overrides) for a new model.")
    if block_size > tokenizer.model_max_length and tokenizer_description.get("source") != "trained on the training split":
        logger.info("The tokenizer's model_max_length (%d) is below --block-size %d: raised to %d.",
                    tokenizer.model_max_length, block_size, block_size)
        tokenizer.model_max_length = block_size


def document_collator(tokenizer, max_length: int, streaming: bool) -> DataCollatorWithPadding:
    """Pads one-document-per-example batches: to the longest document, or to `max_length` for a stream read
    by several processes.

    accelerate reads a stream on the main process only and sends each process its share of a batch made by
    concatenating one collated batch per process, which must then all have the same shape; every example
    is still seen exactly once per pass, in the order one process would see it.
    """
    if streaming and group_world_size() > 1:
        return DataCollatorWithPadding(tokenizer, padding="max_length", max_length=max_length)
    return DataCollatorWithPadding(tokenizer)


def dataset_length(dataset) -> int | None:
    try:
        return len(dataset)
    except TypeError:  # streamed
        return None


# ---------------------------------------------------------------- images


BUILTIN_IMAGE_SETS = {
    "fashion-mnist": "Fashion-MNIST (Xiao et al. 2017), 28x28 grayscale, read from --data-dir or "
                     "$HFSSL_DATA_DIR/fashion_mnist",
    "digits": "scikit-learn's 1,797 8x8 grayscale digits",
}


def _builtin_images(data_args: DataArguments, split: str):
    from ..data.images import digits_dataset, fashion_mnist_dataset

    if data_args.dataset == "digits":
        return digits_dataset()
    import os

    folder = data_args.data_dir or (Path(os.environ.get("HFSSL_DATA_DIR", "")) / "fashion_mnist")
    if not (Path(folder) / "train-images-idx3-ubyte.gz").is_file():
        raise FileNotFoundError(
            f"Fashion-MNIST files not found in {folder}; pass --data-dir with the folder holding "
            "train-images-idx3-ubyte.gz (or set HFSSL_DATA_DIR)."
        )
    return fashion_mnist_dataset(folder, split=split)


def load_images(data_args: DataArguments, image_size: int, num_channels: int, seed: int,
                min_validation_rows: int = 1):
    """Train/validation image splits (uint8 pixel_values) and their description.

    The validation split is `--validation-files` or `--validation-split` when given, else carved off the training
    images: `--validation-fraction` of them, at least `min_validation_rows` while at least one image is left to
    train on (objectives whose loss compares examples need 2 to evaluate)."""
    from ..data.images import image_files, load_image_dataset

    builtin = named_dataset(data_args) in BUILTIN_IMAGE_SETS
    in_memory = in_memory_image_splits(data_args)
    validation_split = data_args.validation_split or in_memory.get("validation", (None, None))[0]

    def load(split: str, files: list[str] | None, max_examples: int | None):
        source = _builtin_images(data_args, split) if builtin and files is None else data_args.dataset
        if in_memory and files is None:
            source = in_memory["validation" if split == validation_split else "train"][1]
        dataset, description = load_image_dataset(
            train_files=files, dataset=None if files is not None else source,
            data_dir=None if builtin else data_args.data_dir, dataset_config=data_args.dataset_config,
            split=split, image_column=data_args.image_column, image_size=image_size,
            num_channels=num_channels, strict=data_args.strict, max_examples=max_examples, seed=seed,
            num_proc=data_args.preprocessing_num_workers,
        )
        if builtin and files is None:
            description["source"] = f"{data_args.dataset}({split})" if split != "train" else data_args.dataset
        if in_memory and files is None:
            description.update(source=source_name(data_args.dataset), fingerprint=in_memory_fingerprint(source))
        return dataset.remove_columns([c for c in dataset.column_names if c != "pixel_values"]), description

    dataset, description = load(data_args.train_split, data_args.train_files, data_args.max_train_examples)
    if in_memory:
        description.update({k: v for k, v in describe_in_memory(data_args.dataset, in_memory).items()
                            if k != "format"})
    if data_args.validation_files or validation_split:
        files = image_files(data_args.validation_files, "--validation-files") if data_args.validation_files else None
        validation, validation_description = load(validation_split or data_args.train_split, files, None)
        source = f"files:{','.join(data_args.validation_files)}" if files else validation_description["source"]
        if in_memory:
            source = f"{source} (split {validation_split!r})"
            description["validation_fingerprint"] = validation_description["fingerprint"]
        description.update(validation_source=source, train_rows=len(dataset),
                           validation_rows=len(validation), format="images", streaming=False)
        return DatasetDict(train=dataset, validation=validation), description
    if not 0 < data_args.validation_fraction < 1:
        raise ValueError(f"--validation-fraction {data_args.validation_fraction} must be in (0, 1); or give "
                         "--validation-files / --validation-split.")
    if len(dataset) < 2:
        raise ValueError(f"Only {len(dataset)} usable image(s); pretraining needs at least 2 (one for validation).")
    n_val = max(1, round(len(dataset) * data_args.validation_fraction))
    if n_val < min_validation_rows <= len(dataset) - 1:
        logger.info("Holding out %d images for validation (not %d): evaluating this objective needs %d.",
                    min_validation_rows, n_val, min_validation_rows)
        n_val = min_validation_rows
    splits = dataset.train_test_split(test_size=n_val, seed=seed)
    description.update(train_rows=len(splits["train"]), validation_rows=len(splits["test"]), format="images",
                       streaming=False)
    return DatasetDict(train=splits["train"], validation=splits["test"]), description


def in_memory_image_splits(data_args: DataArguments) -> dict[str, tuple[str | None, Any]]:
    """The training (and, where it has one, validation) split of an in-memory `datasets` object; {} for other
    sources."""
    if not is_in_memory(data_args.dataset):
        return {}
    return in_memory_splits(data_args.dataset, data_args.train_split, data_args.validation_split)


def check_image_sources(data_args: DataArguments) -> None:
    """Refuse the data flags image objectives do not take: --streaming (images are decoded in memory) and a
    validation source that does not go with the training source."""
    if is_stream(data_args.dataset):
        raise ValueError(
            f"Image objectives decode every image in memory, and an {type(data_args.dataset).__name__} is a stream: "
            "pass a datasets.Dataset instead, e.g. datasets.Dataset.from_list(list(stream.take(n))) for its first n "
            "rows (a Hub stream: load_dataset(name, split='train') without streaming=True)."
        )
    if data_args.streaming:
        raise ValueError("--streaming is for text corpora: image objectives decode every image in memory. Drop "
                         "--streaming (--max-train-examples N trains on a subset).")
    if data_args.validation_files and data_args.validation_split:
        raise ValueError("Give one validation source: --validation-files or --validation-split, not both.")
    if data_args.dataset and data_args.validation_files:
        raise ValueError("--validation-files goes with --train-files; with --dataset use --validation-split.")
    if data_args.train_files and data_args.validation_split:
        raise ValueError("--validation-split goes with --dataset; with --train-files use --validation-files.")
    if data_args.dataset == "digits" and data_args.validation_split:
        raise ValueError("--dataset digits has a single split: drop --validation-split (a validation split is "
                         "carved off with --validation-fraction).")


def default_patch_size(image_size: int) -> int:
    """The largest usual patch size that still leaves a grid of at least 7 x 7 patches (at least 2 x 2)."""
    for patch in (16, 14, 8, 7, 4, 2):
        if image_size % patch == 0 and image_size // patch >= 7:
            return patch
    return next(p for p in (4, 2, 1) if image_size % p == 0 and image_size // p >= 2) if image_size >= 2 else 1


def local_crop_pixels(image_size: int, patch_size: int) -> int:
    """Local crops at 96/224 of the image (DINO, SwAV), rounded to whole patches so the ViT tiles them."""
    return max(patch_size, round(image_size * 96 / 224 / patch_size) * patch_size)


def build_vision_model(model_args: ModelArguments, objective: Objective, image_size: int, num_channels: int):
    """A fresh ViT model for the objective, or an existing checkpoint (continued pretraining)."""
    extra = objective.config_extra(parse_options(model_args.method_options, "--method-options"))
    if model_args.init_from:
        return load_init_model(objective, model_args.init_from, extra)
    overrides = {
        "image_size": image_size, "num_channels": num_channels, "patch_size": default_patch_size(image_size),
        **dict(objective.config_defaults), **extra,
        **parse_overrides(model_args.config_overrides, objective.config_class),
    }
    config = objective.config_class.from_size(model_args.model_size, **overrides)
    return objective.model_class(config)


def prepare_images(model_args: ModelArguments, data_args: DataArguments, objective: Objective, seed: int,
                   min_validation_rows: int = 1) -> Prepared:
    """Images -> model -> normalization statistics -> image processor and multi-view augmentations."""
    from ..data.images import check_image_size
    from ..data.pixels import build_image_processor, compute_mean_std
    from ..data.views import build_views, view_config, view_sizes

    if data_args.image_size is not None and data_args.image_size < 1:
        raise ValueError(f"--image-size {data_args.image_size}: give a positive number of pixels (default 32).")
    check_image_sources(data_args)
    image_size = 32 if data_args.image_size is None else data_args.image_size
    num_channels = data_args.num_channels or (1 if named_dataset(data_args) in BUILTIN_IMAGE_SETS else 3)
    model = build_vision_model(model_args, objective, image_size, num_channels)
    warn_unused_image_flags(data_args, model.config, model_args.init_from)
    image_size, num_channels = model.config.image_size, model.config.num_channels
    check_image_size(image_size, model.config.patch_size)
    view_options = parse_options(data_args.view_overrides, "--view-overrides")
    view_options.setdefault("local_crop_size", local_crop_pixels(image_size, model.config.patch_size))
    # Bad view options (a crop off the patch grid) are refused here, not after every image is decoded.
    view_sizes(view_config(objective.views, image_size, **view_options), image_size, model.config.patch_size)
    data, description = load_images(data_args, image_size, num_channels, seed, min_validation_rows)
    mean, std = compute_mean_std(data["train"])
    processor = build_image_processor(image_size, num_channels, mean, std)
    views = build_views(objective.views, image_size, num_channels, mean, std, patch_size=model.config.patch_size,
                        **view_options)
    description["views"] = {"method": objective.views, **_plain(view_config(objective.views, image_size, **view_options))}
    processor_description = {"mean": mean, "std": std, "image_size": image_size, "num_channels": num_channels}
    return Prepared(model, processor, data["train"], data["validation"], default_data_collator, description,
                    processor_description, views=views)


def _plain(config) -> dict[str, Any]:
    import dataclasses

    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()}


def check_modality(objective: Objective, data_args: DataArguments) -> None:
    """Refuse data of the other modality before loading it: text for an image objective, or the reverse."""
    named = named_dataset(data_args)
    builtin = "text" if named in BUILTIN_CORPORA else "image" if named in BUILTIN_IMAGE_SETS else None
    if named == "imagefolder":
        builtin = "image"
    files = [Path(f) for f in data_args.train_files or [] if Path(f).suffix]
    suffixes = {f.suffix.lower() for f in files}
    if suffixes and suffixes <= IMAGE_SUFFIXES:
        builtin = "image"
    elif suffixes and objective.modality == "image" and file_format(files[0]) == "text":
        # Plain text; tables (parquet, jsonl, csv) may hold images as bytes or paths (loading names the column).
        builtin = "text"
    if builtin is not None and builtin != objective.modality:
        other = ", ".join(o.name for o in OBJECTIVES.values() if o.modality == builtin)
        raise ValueError(
            f"Objective {objective.name!r} trains on {objective.modality}, but the data given "
            f"({named or ', '.join(map(str, data_args.train_files))}) is {builtin}. "
            f"Objectives for {builtin}: {other}."
        )


def check_model_flags(model_args: ModelArguments, objective: Objective) -> None:
    """Refuse bad model flags before the data is read and a tokenizer trained (minutes on a large corpus): the
    size preset, --config-overrides and --method-options as the model build reads them, and a --tokenizer-type
    that lacks the special token the objective needs. A text config is built and validated here too (with the
    default vocabulary); an image config depends on the data's image size, so its checks stay with the build."""
    extra = objective.config_extra(parse_options(model_args.method_options, "--method-options"))
    check_tokenizer_flags(model_args)
    overrides = parse_overrides(model_args.config_overrides, objective.config_class)
    if model_args.init_from:
        return check_init_source(model_args, objective, overrides)
    sizes = TEXT_SIZES if objective.modality == "text" else VISION_SIZES
    if model_args.model_size not in sizes:
        raise ValueError(f"Unknown --model-size {model_args.model_size!r}; valid sizes: {', '.join(sizes)}.")
    if objective.modality == "text":
        objective.config_class.from_size(model_args.model_size, **{**dict(objective.config_defaults), **extra,
                                                                   **overrides})
        kind = model_args.tokenizer_type
        if kind in TOKENIZER_KINDS and not model_args.tokenizer:
            needs = ("eos_token", "an eos token to end documents") if objective.causal else (
                ("mask_token", "a mask token") if is_masked_objective(objective.name) else (None, ""))
            if needs[0] and needs[0] not in TOKENIZER_KINDS[kind]()[2]:
                fits = [k for k, make in TOKENIZER_KINDS.items() if needs[0] in make()[2]]
                raise ValueError(f"Objective {objective.name!r} needs {needs[1]}, which a {kind} tokenizer trained by "
                                 f"hfssl lacks: use --tokenizer-type {' or '.join(fits)}.")


def prepare(model_args: ModelArguments, data_args: DataArguments, objective: Objective, seed: int,
            resume_checkpoint: str | None, *, min_validation_rows: int = 1) -> Prepared:
    """Check the modality (and, with `resume_checkpoint`, that the objective and the model are the checkpoint's),
    then build everything for the objective. A carved image validation split gets at least `min_validation_rows`
    rows when the data allows."""
    check_modality(objective, data_args)
    if resume_checkpoint:
        check_resume_objective(objective, resume_checkpoint)
    else:
        check_model_flags(model_args, objective)
    if objective.modality == "image":
        prepared = prepare_images(model_args, data_args, objective, seed, min_validation_rows)
    else:
        prepared = prepare_text(model_args, data_args, objective, seed, resume_checkpoint)
    if resume_checkpoint:
        check_matches_checkpoint(prepared.model, resume_checkpoint)
    return prepared

"""Starting a run from existing weights (`--init-from`): where they are, whether the objective can train them,
and loading a stock transformers checkpoint (BERT, RoBERTa, GPT-2, Llama, ViT-MAE) under the objective's Auto
class. Everything here runs before the run directory is touched, and before the corpus is read.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, PreTrainedModel
from transformers.integrations import is_deepspeed_zero3_enabled

from .arguments import ModelArguments
from .objectives import OBJECTIVES, Objective
from .rundir import RunDirectory, newest_checkpoint

logger = logging.getLogger(__name__)

HFSSL_MODALITY = {"hfssl_text": "text", "hfssl_vision": "image"}
WHERE = "a run directory, its model/ folder, one of its checkpoints/checkpoint-N folders, or a Hub id"


def resolve_init_path(init_from: str) -> str:
    """A run directory means its model/ folder; anything else (folder, Hub id) is passed on as is."""
    run = RunDirectory(init_from)
    return str(run.model_dir) if run.model_dir.is_dir() else init_from


def init_source(init_from: str) -> str:
    """The folder (or Hub id) that `--init-from` names, as `resolve_init_path` reads it, checked to hold a model.
    Raises FileNotFoundError / ValueError naming what the path holds instead of a model."""
    path = Path(init_from).expanduser()
    if path.is_file():
        raise ValueError(f"--init-from {init_from} is a file; give the folder that holds the model's config.json: "
                         f"{WHERE}.")
    if path.is_dir():
        source = Path(resolve_init_path(str(path)))
        if (source / "config.json").is_file():
            return str(source)
        raise FileNotFoundError(f"--init-from {init_from} holds no model (no config.json){_what_it_holds(path)}")
    if _looks_local(init_from):
        raise FileNotFoundError(f"--init-from {init_from}: no such folder. Give {WHERE}.")
    return init_from


def _what_it_holds(path: Path) -> str:
    """The rest of the no-model message: the checkpoint to start from where the folder has one."""
    for folder in (path, path / "checkpoints"):
        last = newest_checkpoint(folder)  # a complete one where there is one
        if last:
            return (f". Its newest checkpoint is {last}: pass --init-from {last} to start a new run from it (or "
                    "--resume with that run's --output to continue the run itself).")
    return f". Give {WHERE} (a folder written by save_pretrained)."


def _looks_local(name: str) -> bool:
    """A path rather than a Hub id (`name` or `namespace/name`)."""
    return (Path(name).expanduser().is_absolute() or name.startswith((".", "~")) or name.count("/") > 1
            or os.sep != "/" and os.sep in name)


def load_init_config(init_from: str, source: str):
    """The config of the checkpoint `--init-from` names, with a message that says what to do when it cannot load
    (offline, unknown model type)."""
    try:
        return AutoConfig.from_pretrained(source)
    except OSError as error:
        reason = str(error).splitlines()[0]
        raise ValueError(
            f"--init-from {init_from}: no folder of that name exists here, and it could not be loaded as a Hub id "
            f"({reason}). Offline (no network, or HF_HUB_OFFLINE=1) a Hub model loads only from the local cache: "
            f"download it where there is network (`hf download {init_from} --local-dir <folder>`) and pass the "
            "folder, or check the path."
        ) from error
    except (ValueError, KeyError) as error:
        raise ValueError(f"--init-from {init_from}: {source}/config.json names no model type transformers knows "
                         f"({error}). Give {WHERE}.") from error


def checkpoint_modality(config) -> str | None:
    """"text" or "image" for the checkpoint's config; None when it cannot tell (e.g. a multimodal model)."""
    if config.model_type in HFSSL_MODALITY:
        return HFSSL_MODALITY[config.model_type]
    if hasattr(config, "image_size") and hasattr(config, "num_channels"):
        return "image"
    return "text" if hasattr(config, "vocab_size") else None


def stock_objectives(config, modality: str | None) -> list[str]:
    """The objectives (of `modality`) whose Auto class has a class for this stock config."""
    return [o.name for o in OBJECTIVES.values()
            if o.method is None and o.modality == modality and type(config) in o.auto_class._model_mapping]


def check_init_source(model_args: ModelArguments, objective: Objective, overrides: dict[str, Any]) -> None:
    """Refuse an `--init-from` the objective cannot train, before any data is read: no model there, the other
    modality, a stock model without the objective's Auto class or under a joint-embedding objective, or
    `--config-overrides` that would change the checkpoint's config."""
    init_from = model_args.init_from
    config = load_init_config(init_from, init_source(init_from))
    modality = checkpoint_modality(config)
    if modality is not None and modality != objective.modality:
        fits = ", ".join(o.name for o in OBJECTIVES.values() if o.modality == modality)
        raise ValueError(f"--init-from {init_from} is {'an' if modality == 'image' else 'a'} {modality} model "
                         f"({config.model_type!r}); objective "
                         f"{objective.name!r} trains {objective.modality} models. Objectives for {modality}: {fits}.")
    if config.model_type not in HFSSL_MODALITY:
        check_stock_objective(config, objective, init_from, stock_objectives(config, modality))
    differing = {k: v for k, v in overrides.items() if getattr(config, k, None) != v}
    if differing:
        fields = "; ".join(f"{k}: {getattr(config, k, None)!r} in the checkpoint, {v!r} given"
                           for k, v in differing.items())
        raise ValueError(
            f"--config-overrides cannot change a model loaded with --init-from {init_from} ({fields}): it continues "
            "with its checkpoint's config. Drop --config-overrides, or leave out --init-from to build a new model."
        )
    if model_args.model_size != ModelArguments.model_size:
        logger.warning("--model-size %s is not used: the model is --init-from %s's own.", model_args.model_size,
                       init_from)


def check_stock_objective(config, objective: Objective, init_from: str, fits: list[str]) -> None:
    """Refuse a stock (non-hfssl) checkpoint the objective cannot train, naming the objectives that can."""
    kind = config.model_type
    instead = f"continue it with --objective {' or '.join(fits)}" if fits else (
        f"no hfssl objective continues a stock {kind!r} model (it lacks a pretraining head hfssl knows); drop "
        "--init-from to train a fresh model")
    if objective.method is not None:
        then = (f"continue it with --objective {' or '.join(fits)} and start {objective.name} from that run "
                "(--init-from <run>), or " if fits else "")
        raise ValueError(
            f"--init-from {init_from} is a stock {kind!r} model; objective {objective.name!r} trains hfssl's "
            f"joint-embedding wrapper, which continues only hfssl checkpoints (runs of `hfssl pretrain`): {then}"
            f"drop --init-from to train {objective.name} from a fresh model."
        )
    if objective.name not in fits:
        raise ValueError(
            f"--init-from {init_from} is a {kind!r} model, for which transformers has no "
            f"{objective.auto_class.__name__} class, so objective {objective.name!r} cannot train it: {instead}."
        )


def check_tokenizer_flags(model_args: ModelArguments) -> None:
    """--tokenizer-type chooses the tokenizer trained on the corpus; none is trained with --tokenizer or --init-from."""
    if model_args.tokenizer_type and (model_args.tokenizer or model_args.init_from):
        given = "--tokenizer" if model_args.tokenizer else "--init-from (the model's own tokenizer)"
        raise ValueError(f"--tokenizer-type {model_args.tokenizer_type} chooses a tokenizer to train on the corpus, "
                         f"but the tokenizer comes from {given}: drop --tokenizer-type.")


def warn_unused_vocab_size(model_args: ModelArguments, tokenizer) -> None:
    """--vocab-size sizes a tokenizer trained here; say so when a given tokenizer makes it moot."""
    if len(tokenizer) != model_args.vocab_size and (len(tokenizer) > model_args.vocab_size
                                                    or model_args.vocab_size != ModelArguments.vocab_size):
        logger.warning("--vocab-size %d is not used: it sizes a tokenizer trained on the corpus, and the tokenizer "
                       "given has %d tokens, which the model's vocabulary takes.", model_args.vocab_size,
                       len(tokenizer))


def warn_unused_image_flags(data_args, config, init_from: str | None) -> None:
    """Images are converted to the --init-from model's size and channels: say so when the flags asked for others."""
    given = {"--image-size": (data_args.image_size, config.image_size),
             "--num-channels": (data_args.num_channels, config.num_channels)}
    for flag, (asked, model) in given.items():
        if init_from and asked is not None and asked != model:
            logger.warning("%s %s is not used: images are converted to %s, as the --init-from %s model takes them.",
                           flag, asked, model, init_from)


def needs_of(objective: Objective) -> dict[str, str]:
    """Special tokens a text objective's batches are built with, and what each is for."""
    if objective.causal:
        return {"eos_token": "to end each document"}
    if objective.collator == "mlm":
        return {"mask_token": "to mask tokens", "cls_token": "to start each block",
                "sep_token": "to separate documents"}
    return {}


def check_init_tokenizer(tokenizer, objective: Objective, init_from: str) -> None:
    """Refuse an `--init-from` model whose own tokenizer lacks a token the objective needs: unlike a tokenizer
    trained here it cannot be replaced, since the model's embeddings learned its ids."""
    missing = {name: why for name, why in needs_of(objective).items() if getattr(tokenizer, name) is None}
    if not missing:
        return
    config = load_init_config(init_from, init_source(init_from))
    trainable = (stock_objectives(config, "text") if config.model_type not in HFSSL_MODALITY
                 else [o.name for o in OBJECTIVES.values() if o.modality == "text"])
    fits = [o for o in trainable if all(getattr(tokenizer, name) is not None for name in needs_of(OBJECTIVES[o]))]
    tokens = [f"{'an' if name == 'eos_token' else 'a'} {name.removesuffix('_token')} token ({why})"
              for name, why in missing.items()]
    what = ", ".join(tokens[:-1]) + (" and " if len(tokens) > 1 else "") + tokens[-1]
    raise ValueError(
        f"Objective {objective.name!r} needs {what}, which the tokenizer of --init-from {init_from} lacks; it is "
        "the model's own (its embeddings learned these ids), so another tokenizer cannot replace it. "
        + (f"Continue this model with --objective {' or '.join(fits)}, or " if fits else "")
        + f"drop --init-from to train {objective.name} from a fresh model and tokenizer."
    )


# ---------------------------------------------------------------- stock checkpoints


def load_stock_model(objective: Objective, source: str, init_from: str, block_size: int | None = None):
    """A stock transformers checkpoint under the objective's Auto class, checked to attend as the objective needs:
    next-token training on a model that sees later tokens would read the tokens it predicts. An encoder with an
    `is_decoder` switch (BERT, RoBERTa) is loaded as a decoder for a causal objective (and the reverse). For text,
    `block_size` tokens are run through it once, so a block longer than its positions fails here, not mid-run."""
    model = objective.auto_class.from_pretrained(source)
    if objective.modality != "text" or is_deepspeed_zero3_enabled():  # ZeRO-3 parameters exist only in the engine
        return model
    length = block_size or 8
    ahead = attends_ahead(model, length, init_from)
    if ahead == objective.causal and getattr(model.config, "is_decoder", objective.causal) != objective.causal:
        model = objective.auto_class.from_pretrained(source, is_decoder=objective.causal)
        ahead = attends_ahead(model, length, init_from)
        logger.info("--init-from %s loaded with is_decoder=%s for objective %s.", init_from, objective.causal,
                    objective.name)
    if ahead and objective.causal:
        raise ValueError(
            f"--init-from {init_from} is a bidirectional {model.config.model_type!r} model (each position sees the "
            "later tokens too), so next-token training would read the tokens it predicts. Continue it with --objective "
            "mlm, or start next-token training from a causal model (GPT-2, Llama).")
    if not ahead and not objective.causal:
        raise ValueError(
            f"--init-from {init_from} is a causal {model.config.model_type!r} model (each position sees only the "
            f"earlier tokens), which objective {objective.name!r} would train blind to the context after each "
            "mask. Continue it with --objective clm.")
    limit = getattr(model.config, "max_position_embeddings", None)
    if limit is not None and length > limit:
        logger.warning("--block-size %d is longer than the %d positions --init-from %s was made for.", length,
                       limit, init_from)
    return model


def attends_ahead(model: PreTrainedModel, length: int, init_from: str) -> bool:
    """Whether the backbone's outputs at the first `length - 1` positions change with the last token (bidirectional
    attention). Runs two blocks of `length` tokens, which also checks the model has that many positions."""
    vocab, pad = model.config.vocab_size, getattr(model.config, "pad_token_id", None)
    tokens = [i for i in range(min(vocab, 64)) if i != pad]
    ids = torch.tensor([tokens[i % len(tokens)] for i in range(length)]).repeat(2, 1)  # (2, length)
    ids[1, -1] = tokens[(tokens.index(int(ids[0, -1])) + 1) % len(tokens)]
    training = model.training
    model.eval()
    try:
        with torch.no_grad():
            hidden = model.base_model(input_ids=ids, attention_mask=torch.ones_like(ids))[0]  # (2, length, hidden)
    except (IndexError, RuntimeError) as error:  # positions beyond the model's table
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        limit = getattr(model.config, "max_position_embeddings", None)
        raise ValueError(f"--block-size {length}: a block of that many tokens failed in --init-from {init_from}'s "
                         f"model ({reason}); its config has max_position_embeddings={limit}. Lower --block-size to "
                         "what the model takes.") from error
    finally:
        model.train(training)
    before = hidden[:, :-1]
    return bool((before[0] - before[1]).abs().max() > 1e-4 * max(1.0, float(before[0].abs().max())))

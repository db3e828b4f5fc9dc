"""Train a tokenizer on the corpus (`tokenizers`), or load an existing one, and check it fits the model.

Trained tokenizers are wrapped as `PreTrainedTokenizerFast`, so `save_pretrained` writes files that
`AutoTokenizer.from_pretrained` and the fill-mask / text-generation pipelines read back anywhere.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

logger = logging.getLogger(__name__)

# GPT-2 style: one token marks document boundaries and doubles as bos/unk (byte-level BPE never needs unk).
ENDOFTEXT, BPE_PAD = "<|endoftext|>", "<|pad|>"
# BERT style; the order fixes their ids (pad = 0).
BERT_SPECIALS = {"pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]", "sep_token": "[SEP]",
                 "mask_token": "[MASK]"}


def is_causal_objective(objective: str) -> bool:
    """Next-token objectives: documents end with eos and blocks carry no [CLS]."""
    return objective == "clm" or objective.startswith("clm")


def is_masked_objective(objective: str) -> bool:
    """Objectives that need a mask token (MLM and its variants, SimCSE)."""
    return objective.startswith("mlm") or objective == "simcse"


def default_tokenizer_kind(objective: str) -> str:
    """Tokenizer trained when none is given: byte-level BPE for next-token, WordPiece otherwise."""
    return "bpe" if is_causal_objective(objective) else "wordpiece"


def _show_progress() -> bool:
    """The `tokenizers` trainers' progress bars, only on a terminal: elsewhere (a log file, a pipe, CI) they draw
    nothing but print blank lines on standard output."""
    return sys.stderr.isatty()


def _bpe() -> tuple[Tokenizer, Callable[[int], trainers.Trainer], dict[str, str]]:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    specials = {"bos_token": ENDOFTEXT, "eos_token": ENDOFTEXT, "unk_token": ENDOFTEXT, "pad_token": BPE_PAD}

    def trainer(size: int) -> trainers.Trainer:
        # The full byte alphabet up front, so any input (emoji, binary junk) encodes without unk.
        return trainers.BpeTrainer(
            vocab_size=size, special_tokens=[ENDOFTEXT, BPE_PAD], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=_show_progress(),
        )

    return tokenizer, trainer, specials


def _wordpiece() -> tuple[Tokenizer, Callable[[int], trainers.Trainer], dict[str, str]]:
    tokenizer = Tokenizer(models.WordPiece(unk_token=BERT_SPECIALS["unk_token"]))
    # Case is kept: a cased vocabulary serves both cased and uncased downstream text.
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=False)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece(prefix="##")
    specials = list(BERT_SPECIALS.values())

    def trainer(size: int, pieces: Sequence[str] = ()) -> trainers.Trainer:
        # `pieces`: `##c` pieces numbered up front, after the specials (see `_train_wordpiece`).
        return trainers.WordPieceTrainer(vocab_size=size, special_tokens=specials + list(pieces),
                                         show_progress=_show_progress())

    return tokenizer, trainer, BERT_SPECIALS


def _unigram() -> tuple[Tokenizer, Callable[[int], trainers.Trainer], dict[str, str]]:
    tokenizer = Tokenizer(models.Unigram())
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    specials = list(BERT_SPECIALS.values())

    def trainer(size: int) -> trainers.Trainer:
        return trainers.UnigramTrainer(vocab_size=size, special_tokens=specials, unk_token=BERT_SPECIALS["unk_token"],
                                       show_progress=_show_progress())

    return tokenizer, trainer, BERT_SPECIALS


TOKENIZER_KINDS: dict[str, Callable[[], tuple[Tokenizer, Callable[[int], trainers.Trainer], dict[str, str]]]] = {
    "bpe": _bpe,
    "wordpiece": _wordpiece,
    "unigram": _unigram,
}


def _add_cls_sep(tokenizer: Tokenizer) -> None:
    """Encode single texts as `[CLS] text [SEP]` and pairs as `[CLS] a [SEP] b [SEP]`, as BERT does."""
    cls, sep = BERT_SPECIALS["cls_token"], BERT_SPECIALS["sep_token"]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{cls} $A {sep}",
        pair=f"{cls} $A {sep} $B:1 {sep}:1",
        special_tokens=[(cls, tokenizer.token_to_id(cls)), (sep, tokenizer.token_to_id(sep))],
    )


def _train_wordpiece(tokenizer: Tokenizer, make_trainer: Callable[..., trainers.Trainer], texts: Iterable[str],
                     vocab_size: int, specials: list[str]) -> Tokenizer:
    """`tokenizer` trained as WordPiece on `texts` (iterated twice), the same in every process.

    The `tokenizers` trainer numbers each `##c` piece (a character inside a word) when it first meets it while
    walking its word counts in hash-map order, which changes between processes, and it breaks ties between
    equally frequent merges by those numbers: trained twice on one corpus, a vocabulary could differ by a few
    tokens. So a first pass of the trainer with no merges lists the pieces, and the real training gets them
    as special tokens in sorted order, numbered the same way every time (they are in the vocabulary either
    way). The result gets canonical ids (special tokens first, the rest sorted; WordPiece segments by greedy
    longest match, so ids change nothing else), in a fresh tokenizer where the pieces are plain tokens again.
    """
    probe = _wordpiece()[0]
    probe.train_from_iterator(texts, trainer=make_trainer(1))  # vocab_size 1: count words, no merges
    pieces = sorted(token for token in probe.get_vocab() if token.startswith("##"))
    tokenizer.train_from_iterator(texts, trainer=make_trainer(vocab_size, pieces))
    vocab = tokenizer.get_vocab()
    ordered = list(dict.fromkeys(specials)) + sorted(t for t in vocab if t not in specials)
    fresh = _wordpiece()[0]
    fresh.model = models.WordPiece(
        vocab={token: i for i, token in enumerate(ordered)}, unk_token=BERT_SPECIALS["unk_token"]
    )
    fresh.add_special_tokens(specials)
    return fresh


def train_tokenizer(
    texts: Iterable[str], kind: str, vocab_size: int, model_max_length: int
) -> PreTrainedTokenizerFast:
    """Train a `kind` tokenizer ("bpe", "wordpiece" or "unigram") with at most `vocab_size` tokens on `texts`.

    "bpe" and "wordpiece" give the same tokenizer for the same texts in every process; "unigram" does not (its
    trainer differs between runs). WordPiece reads the texts twice: pass a list or another re-iterable
    (`hfssl.data.text.Rereadable`), or a one-shot iterator is first read into memory.

    Returns:
        A fast tokenizer whose special tokens are set (bpe: `<|endoftext|>` as bos/eos/unk, `<|pad|>`;
        wordpiece/unigram: `[PAD] [UNK] [CLS] [SEP] [MASK]` with `[CLS] text [SEP]` encoding).
    """
    if kind not in TOKENIZER_KINDS:
        raise ValueError(f"Unknown tokenizer kind {kind!r}; valid kinds: {', '.join(TOKENIZER_KINDS)}.")
    if model_max_length < 1:
        raise ValueError(f"model_max_length must be >= 1, got {model_max_length}.")
    tokenizer, make_trainer, specials = TOKENIZER_KINDS[kind]()
    if kind == "wordpiece" and iter(texts) is texts:  # a one-shot iterator: kept for WordPiece's second pass
        texts = list(texts)
    try:
        if kind == "wordpiece":
            tokenizer = _train_wordpiece(tokenizer, make_trainer, texts, vocab_size, list(specials.values()))
        else:
            tokenizer.train_from_iterator(texts, trainer=make_trainer(vocab_size))
    except Exception as error:  # the Rust trainers raise bare `Exception` (e.g. unigram: vocabulary too small)
        raise ValueError(
            f"Training a {kind} tokenizer with vocab_size={vocab_size} failed: {error}. Raise --vocab-size."
        ) from error
    learned = tokenizer.get_vocab_size()
    if learned <= len(set(specials.values())):
        raise ValueError("The tokenizer learned no tokens: the texts are empty. Give a corpus with text.")
    if learned > vocab_size:
        # Trainers keep the whole base alphabet (256 bytes for byte-level BPE) even past vocab_size.
        raise ValueError(
            f"A {kind} tokenizer needs {learned} tokens for its alphabet and special tokens on this corpus, "
            f"more than vocab_size={vocab_size}. Raise --vocab-size to at least {learned}."
        )
    if kind != "bpe":
        _add_cls_sep(tokenizer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, model_max_length=model_max_length, **specials)


# Tokens that are padding by name: a tokenizer that has one in its vocabulary but declares no pad token pads with it.
PAD_NAMES = ("[PAD]", "<pad>", "<|pad|>", BPE_PAD)
# Files one of which every saved tokenizer has (fast: tokenizer.json; slow: a vocabulary or sentencepiece model).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "tokenizer.model",
                   "spiece.model", "sentencepiece.bpe.model")


def load_tokenizer(name_or_path: str, flag: str = "--tokenizer") -> PreTrainedTokenizerBase:
    """Load a tokenizer from a folder or Hub id (`flag` names where it came from in messages); a missing pad token
    becomes the vocabulary's padding token ([PAD], <pad>), else eos, else unk."""
    path = Path(name_or_path).expanduser()
    if path.is_file():
        raise ValueError(f"{flag} {name_or_path} is a file; give the folder holding the tokenizer files "
                         "(tokenizer.json, tokenizer_config.json) that save_pretrained writes.")
    looks_local = path.is_absolute() or name_or_path.startswith((".", "~"))
    if looks_local and not path.exists():
        raise FileNotFoundError(f"{flag} {name_or_path}: no such folder. Check {flag}.")
    try:
        if path.is_dir() and not any((path / name).is_file() for name in TOKENIZER_FILES):
            # AutoTokenizer would build a tokenizer of the model type's class with no vocabulary from config.json
            # alone: every text would become [UNK].
            raise OSError(f"none of {', '.join(TOKENIZER_FILES)}")
        tokenizer = AutoTokenizer.from_pretrained(name_or_path)
    except (OSError, ValueError) as error:
        where = ("the folder holds no tokenizer files" if path.is_dir() else "no folder of that name exists here, "
                 "and it could not be loaded as a Hub id (offline, a Hub tokenizer loads only from the local cache)")
        fix = ("Pass the tokenizer the model was trained with: --tokenizer <folder or Hub id>." if flag == "--init-from"
               else "Give a folder written by save_pretrained (tokenizer.json, tokenizer_config.json) or a Hub id "
                    "reachable from here.")
        raise ValueError(f"Could not load a tokenizer from {flag} {name_or_path}: {where} "
                         f"({str(error).splitlines()[0] if str(error) else type(error).__name__}). {fix}") from error
    if tokenizer.pad_token is None:
        # Packed blocks never need padding, but collators and pipelines ask for a pad token.
        vocab = tokenizer.get_vocab()
        fallback = next((t for t in PAD_NAMES if t in vocab), None) or tokenizer.eos_token or tokenizer.unk_token
        if fallback is None:
            logger.warning("Tokenizer %s has no pad, eos or unk token; batches cannot be padded.", name_or_path)
        else:
            logger.info("Tokenizer %s declares no pad token: padding with %s.", name_or_path, fallback)
            tokenizer.pad_token = fallback
    return tokenizer


def check_tokenizer_fits(tokenizer: PreTrainedTokenizerBase, vocab_size: int, objective: str,
                         init_from: str | None = None) -> None:
    """Raise when token ids could overflow the embedding (of the `init_from` checkpoint's model, when given), or a
    masked objective has no mask token."""
    if len(tokenizer) > vocab_size:
        fix = (f"Pass the tokenizer --init-from {init_from}'s model was trained with (--tokenizer)" if init_from else
               f"Use --config-overrides vocab_size={len(tokenizer)} or a tokenizer with at most that many tokens")
        raise ValueError(
            f"The tokenizer has {len(tokenizer)} tokens but the model's vocab_size is {vocab_size}: "
            f"ids >= {vocab_size} would overflow the embedding. {fix}."
        )
    if is_masked_objective(objective) and tokenizer.mask_token is None:
        raise ValueError(
            f"Objective {objective!r} masks tokens but the tokenizer has no mask token. Train one "
            "(--tokenizer-type wordpiece or unigram) or pass a tokenizer that has one (e.g. [MASK])."
        )

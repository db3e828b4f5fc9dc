"""Tokenize a `text` column and pack the token stream into fixed-size blocks of `input_ids`.

Documents are joined with a separator (eos for next-token objectives, [SEP] otherwise) and cut into
blocks; the remainder of each map batch is dropped, as transformers' run_mlm.py `group_texts` does, so
a map-style dataset and the same data streamed give identical blocks (with one process). A batch takes enough
documents for `BLOCKS_PER_BATCH` blocks (unless told its size), so that remainder stays a small share of the tokens. Blocks for
encoder objectives start with [CLS], so position 0 always holds a pooling token.
"""

from __future__ import annotations

import logging
import math
from functools import partial
from itertools import chain

from datasets import Dataset, DatasetDict, Features, IterableDataset, IterableDatasetDict, List, Value
from transformers import PreTrainedTokenizerBase

from .tokenizer import is_causal_objective

logger = logging.getLogger(__name__)
AnyDataset = Dataset | IterableDataset
AnyData = Dataset | DatasetDict | IterableDataset | IterableDatasetDict

MIN_BLOCK_SIZE = 8
# A packing batch takes enough documents for about this many blocks, so the tail each batch drops (under one block)
# stays under 1/64 of its tokens however short the documents are.
BLOCKS_PER_BATCH = 64
MIN_DOCS_PER_BATCH = 1000
# Above this share of unknown tokens in a split's first documents, packing warns that the tokenizer does not fit.
MAX_UNKNOWN_SHARE = 0.05
# int32 halves the cache on disk; collators turn ids into int64 tensors.
PACKED_FEATURES = Features({"input_ids": List(Value("int32"))})


def _special_ids(tokenizer: PreTrainedTokenizerBase, objective: str) -> tuple[int, int | None]:
    """(separator id, id put at the start of each block or None) for this objective."""
    if is_causal_objective(objective):
        if tokenizer.eos_token_id is None:
            raise ValueError(
                f"Objective {objective!r} separates documents with an eos token, but the tokenizer has none. "
                "Train one (--tokenizer-type bpe) or pass a tokenizer with an eos token."
            )
        return tokenizer.eos_token_id, None
    if tokenizer.sep_token_id is None or tokenizer.cls_token_id is None:
        raise ValueError(
            f"Objective {objective!r} needs [CLS] and [SEP] tokens (cls={tokenizer.cls_token!r}, "
            f"sep={tokenizer.sep_token!r}). Train one (--tokenizer-type wordpiece or unigram) or pass a "
            "BERT-style tokenizer."
        )
    return tokenizer.sep_token_id, tokenizer.cls_token_id


def pack_token_ids(
    docs: list[list[int]], block_size: int, separator: int, prefix: int | None = None
) -> list[list[int]]:
    """Join documents (each followed by `separator`) and cut the stream into blocks of `block_size`.

    With `prefix`, each block is `[prefix] + (block_size - 1)` stream tokens. The tail that does not
    fill a block is dropped.
    """
    stream = list(chain.from_iterable(doc + [separator] for doc in docs))
    body = block_size - (prefix is not None)
    head = [] if prefix is None else [prefix]
    return [head + stream[start : start + body] for start in range(0, len(stream) - body + 1, body)]


def _tokenize_batch(
    batch: dict[str, list], tokenizer: PreTrainedTokenizerBase, block_size: int, separator: int, prefix: int | None
) -> dict[str, list[list[int]]]:
    # verbose=False: documents longer than model_max_length are expected here; packing cuts them.
    ids = tokenizer(batch["text"], add_special_tokens=False, return_attention_mask=False, verbose=False)["input_ids"]
    return {"input_ids": pack_token_ids(ids, block_size, separator, prefix)}


def _count_tokens(ds: AnyDataset, tokenizer: PreTrainedTokenizerBase, batch_size: int) -> int:
    """Tokens of all documents plus one separator each (only used to explain an empty result)."""
    total = 0
    for batch in ds.iter(batch_size=batch_size):
        ids = tokenizer(batch["text"], add_special_tokens=False, return_attention_mask=False, verbose=False)
        total += sum(len(doc) + 1 for doc in ids["input_ids"])
    return total


def _first_documents(ds: AnyDataset, tokenizer: PreTrainedTokenizerBase, count: int) -> list[list[int]]:
    """Token ids of the first `count` documents (the same for a dataset and its stream)."""
    sample = next(iter(ds.iter(batch_size=count)), None)
    if not sample:
        return []
    return tokenizer(sample["text"], add_special_tokens=False, return_attention_mask=False, verbose=False)["input_ids"]


def _docs_per_batch(first: list[list[int]], block_size: int) -> int:
    """Documents per packing batch: `MIN_DOCS_PER_BATCH`, or more when that many documents (estimated from the
    first ones) hold fewer than `BLOCKS_PER_BATCH` blocks of tokens.

    Each batch drops its tail of up to block_size - 1 tokens: with short documents and long blocks (tweets into
    4096-token blocks) a batch of 1000 documents lost most of its tokens, or all of them, so a corpus of many
    blocks' worth of tokens could pack into none.
    """
    if not first:
        return MIN_DOCS_PER_BATCH
    tokens_per_doc = sum(len(doc) + 1 for doc in first) / len(first)
    return max(MIN_DOCS_PER_BATCH, math.ceil(BLOCKS_PER_BATCH * block_size / tokens_per_doc))


def _warn_unknown_tokens(ids: list[list[int]], tokenizer: PreTrainedTokenizerBase, name: str) -> None:
    """Warn when many tokens of a split's first documents are the unknown token: a tokenizer made for another
    language or script (--tokenizer from another run) turns the corpus into [UNK]s, and training still runs."""
    unk, total = tokenizer.unk_token_id, sum(len(doc) for doc in ids)
    if unk is None or unk == tokenizer.eos_token_id or not total:  # byte-level BPE: eos doubles as unk, never unknown
        return
    share = sum(doc.count(unk) for doc in ids) / total
    if share > MAX_UNKNOWN_SHARE:
        logger.warning(
            "%.0f%% of the tokens of the %s split's first %d documents are %s: the tokenizer does not cover this "
            "text (another language or script?). Train one on this corpus (leave out --tokenizer) or pass one that "
            "covers it.", 100 * share, name, len(ids), tokenizer.unk_token,
        )


def _pack_split(
    ds: AnyDataset, tokenizer: PreTrainedTokenizerBase, block_size: int, objective: str,
    num_proc: int | None, batch_size: int | None, name: str = "data",
) -> AnyDataset:
    """Pack one split (`name` says which in errors and warnings) and make sure at least one block came out."""
    columns = ds.column_names or ["text"]
    if "text" not in columns:
        raise ValueError(f"Packing needs a 'text' column; the data has {columns}. Load it with load_text_dataset.")
    separator, prefix = _special_ids(tokenizer, objective)
    first = _first_documents(ds, tokenizer, batch_size or MIN_DOCS_PER_BATCH)
    _warn_unknown_tokens(first, tokenizer, name)
    batch_size = batch_size or _docs_per_batch(first, block_size)
    function = partial(_tokenize_batch, tokenizer=tokenizer, block_size=block_size, separator=separator, prefix=prefix)
    kwargs = dict(batched=True, batch_size=batch_size, remove_columns=columns, features=PACKED_FEATURES)
    if isinstance(ds, Dataset):
        packed = ds.map(function, num_proc=num_proc, desc=f"Packing into blocks of {block_size}", **kwargs)
        empty = len(packed) == 0
    else:
        packed = ds.map(function, **kwargs)
        empty = next(iter(packed), None) is None
    if empty:
        total = _count_tokens(ds, tokenizer, batch_size)
        if total < block_size:
            raise ValueError(
                f"texts are shorter than the block size everywhere ({total} tokens in total < block_size "
                f"{block_size}) in the {name} split; lower --block-size or add text"
                + (" to the validation split (--validation-files, --validation-fraction)." if name == "validation"
                   else ".")
            )
        raise ValueError(
            f"no block of {block_size} tokens came out of the {name} split ({total} tokens in all): packing cuts "
            f"blocks within batches of {batch_size} documents and none held {block_size} tokens. Lower --block-size."
        )
    return packed


def check_block_size(block_size: int) -> None:
    """Refuse a block too short to train on, before any tokenizer is made for it."""
    if block_size < MIN_BLOCK_SIZE:
        raise ValueError(f"block_size must be at least {MIN_BLOCK_SIZE}, got {block_size}. Change --block-size.")


def tokenize_and_pack(
    ds: AnyData,
    tokenizer: PreTrainedTokenizerBase,
    block_size: int,
    objective: str,
    num_proc: int | None = None,
    batch_size: int | None = None,
) -> AnyData:
    """Turn a `text` column into blocks: the same container type, with only `input_ids` (block_size ints each).

    Map-style data is cached by `datasets`. With `num_proc > 1` each process drops its own remainder,
    so the blocks differ slightly from a single-process or streamed run. `batch_size`: documents per packing
    batch; None (the default) takes at least `MIN_DOCS_PER_BATCH`, more for short documents (`_docs_per_batch`).
    """
    max_length = tokenizer.model_max_length
    check_block_size(block_size)
    if block_size > max_length:
        raise ValueError(
            f"block_size must be at most the tokenizer's model_max_length ({max_length}), got {block_size}. "
            "Change --block-size."
        )
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    pack = partial(
        _pack_split, tokenizer=tokenizer, block_size=block_size, objective=objective,
        num_proc=num_proc, batch_size=batch_size,
    )
    if isinstance(ds, (DatasetDict, IterableDatasetDict)):
        return type(ds)({name: pack(split, name=name) for name, split in ds.items()})
    return pack(ds)


def packed_tokens(ds: AnyData) -> int | None:
    """Tokens in packed map-style data (blocks x block_size; the `train` split of a dict); None for streams."""
    if isinstance(ds, DatasetDict):
        ds = ds["train"]
    if not isinstance(ds, Dataset):
        return None
    return len(ds) * len(ds[0]["input_ids"]) if len(ds) else 0


def tokenize_documents(ds: AnyData, tokenizer: PreTrainedTokenizerBase, max_length: int,
                       num_proc: int | None = None, batch_size: int = 1000) -> AnyData:
    """One example per document (special tokens added, truncated to `max_length`), for sentence-level
    objectives such as SimCSE where each embedding must stand for one text. Columns: `input_ids`."""
    def tokenize(batch: dict[str, list]) -> dict[str, list[list[int]]]:
        ids = tokenizer(batch["text"], truncation=True, max_length=max_length, return_attention_mask=False)
        return {"input_ids": ids["input_ids"]}

    kwargs = {"num_proc": num_proc, "desc": "Tokenizing documents"} if isinstance(ds, (Dataset, DatasetDict)) else {}
    return ds.map(tokenize, batched=True, batch_size=batch_size, remove_columns=["text"], **kwargs)

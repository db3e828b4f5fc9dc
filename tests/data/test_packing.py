"""Packing text into fixed blocks: layout, streaming parity, caching and errors."""

from __future__ import annotations

from itertools import chain

import pytest
from datasets import Dataset, DatasetDict, IterableDatasetDict

from hfssl.data.packing import pack_token_ids, packed_tokens, tokenize_and_pack
from hfssl.data.text import load_text_dataset
from hfssl.training.arguments import DataArguments


def token_stream(texts: list[str], tokenizer, separator: int) -> list[int]:
    """What packing should see: each document's ids without special tokens, then the separator."""
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    return list(chain.from_iterable(doc + [separator] for doc in ids))


def test_pack_token_ids_layout():
    docs = [[1, 2, 3], [4, 5], [6, 7, 8, 9]]
    assert pack_token_ids(docs, 5, separator=0) == [[1, 2, 3, 0, 4], [5, 0, 6, 7, 8]]
    with_cls = [[99, 1, 2, 3], [99, 0, 4, 5], [99, 0, 6, 7], [99, 8, 9, 0]]
    assert pack_token_ids(docs, 4, separator=0, prefix=99) == with_cls
    assert pack_token_ids([[1]], 4, separator=0) == []


def test_clm_blocks_are_the_token_stream_cut_in_order(docstrings, bpe):
    texts = docstrings[:200]
    packed = tokenize_and_pack(Dataset.from_dict({"text": texts}), bpe, block_size=64, objective="clm")
    blocks = packed["input_ids"]
    assert packed.column_names == ["input_ids"]
    assert all(len(block) == 64 for block in blocks)
    stream = token_stream(texts, bpe, bpe.eos_token_id)
    assert len(blocks) == len(stream) // 64
    assert list(chain.from_iterable(blocks)) == stream[: 64 * len(blocks)]
    assert packed_tokens(packed) == 64 * len(blocks)


def test_mlm_blocks_start_with_cls_and_separate_documents_with_sep(docstrings, wordpiece):
    texts = docstrings[:200]
    packed = tokenize_and_pack(Dataset.from_dict({"text": texts}), wordpiece, block_size=32, objective="mlm")
    blocks = packed["input_ids"]
    assert all(len(block) == 32 and block[0] == wordpiece.cls_token_id for block in blocks)
    assert all(wordpiece.cls_token_id not in block[1:] for block in blocks)
    stream = token_stream(texts, wordpiece, wordpiece.sep_token_id)
    bodies = list(chain.from_iterable(block[1:] for block in blocks))
    assert bodies == stream[: len(bodies)] and len(stream) - len(bodies) < 31


def test_remainder_is_dropped_per_map_batch(docstrings, bpe):
    texts = docstrings[:50]
    whole = tokenize_and_pack(Dataset.from_dict({"text": texts}), bpe, 64, "clm", batch_size=50)
    batched = tokenize_and_pack(Dataset.from_dict({"text": texts}), bpe, 64, "clm", batch_size=10)
    first_batch = pack_token_ids(bpe(texts[:10], add_special_tokens=False)["input_ids"], 64, bpe.eos_token_id)
    assert batched["input_ids"][: len(first_batch)] == first_batch
    assert len(batched) < len(whole)


def test_streaming_and_map_style_give_the_same_blocks(docstrings, wordpiece):
    ds = Dataset.from_dict({"text": docstrings[:300]})
    kwargs = dict(tokenizer=wordpiece, block_size=48, objective="mlm", batch_size=64)
    map_style = tokenize_and_pack(ds, **kwargs)["input_ids"]
    streamed = [row["input_ids"] for row in tokenize_and_pack(ds.to_iterable_dataset(), **kwargs)]
    assert len(map_style) > 100 and map_style == streamed


def test_loaded_news_corpus_packs_the_same_streamed_or_not(news_file, bpe):
    packed = {}
    for streaming in (False, True):
        args = DataArguments(train_files=[str(news_file)], validation_files=[str(news_file)], streaming=streaming)
        splits, _ = load_text_dataset(args)
        result = tokenize_and_pack(splits, bpe, block_size=128, objective="clm", batch_size=16)
        packed[streaming] = [row["input_ids"] for row in result["train"]]
    assert len(packed[False]) > 500 and packed[False] == packed[True]


def test_map_style_packing_is_cached(docstrings, wordpiece, tmp_path):
    path = tmp_path / "docs.txt"
    path.write_text("\n".join(doc.replace("\n", " ") for doc in docstrings[:100]) + "\n")
    splits, _ = load_text_dataset(DataArguments(train_files=[str(path)]))
    first = tokenize_and_pack(splits["train"], wordpiece, 32, "mlm")
    second = tokenize_and_pack(splits["train"], wordpiece, 32, "mlm")
    assert first.cache_files and first.cache_files == second.cache_files


@pytest.mark.parametrize("streaming", [False, True])
def test_texts_shorter_than_a_block_everywhere(wordpiece, streaming):
    ds = DatasetDict({"train": Dataset.from_dict({"text": ["tiny text", "another one"]})})
    if streaming:
        ds = IterableDatasetDict({name: split.to_iterable_dataset() for name, split in ds.items()})
    with pytest.raises(ValueError, match=r"texts are shorter than the block size everywhere") as error:
        tokenize_and_pack(ds, wordpiece, block_size=64, objective="mlm")
    total = len(wordpiece("tiny text", add_special_tokens=False)["input_ids"]) + len(
        wordpiece("another one", add_special_tokens=False)["input_ids"]) + 2
    assert f"({total} tokens in total < block_size 64)" in str(error.value)
    assert "--block-size" in str(error.value)


def test_block_size_bounds(wordpiece):
    ds = Dataset.from_dict({"text": ["some text"]})
    for bad in (4, wordpiece.model_max_length + 1):
        with pytest.raises(ValueError, match=f"got {bad}"):
            tokenize_and_pack(ds, wordpiece, block_size=bad, objective="mlm")


def test_objective_needs_its_special_tokens(wordpiece, bpe):
    ds = Dataset.from_dict({"text": ["some text " * 50]})
    with pytest.raises(ValueError, match=r"\[CLS\] and \[SEP\]"):
        tokenize_and_pack(ds, bpe, block_size=16, objective="mlm")
    with pytest.raises(ValueError, match="eos token"):
        tokenize_and_pack(ds, wordpiece, block_size=16, objective="clm")


def test_packed_tokens_is_none_for_streams(docstrings, bpe):
    stream = Dataset.from_dict({"text": docstrings[:20]}).to_iterable_dataset()
    assert packed_tokens(tokenize_and_pack(stream, bpe, 32, "clm")) is None

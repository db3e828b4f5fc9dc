"""Text corpora as users have them: byte-order marks, compressed files with bad lines, csv cells that pandas reads as
missing, mixed formats per split, globs over folders with other files, short documents in long blocks, tokenizers
that do not cover the corpus, and masked-LM batches too small to mask anything by chance."""

from __future__ import annotations

import bz2
import copy
import csv
import gzip
import logging
import lzma
from itertools import chain
from pathlib import Path

import pytest
from datasets import Dataset, DatasetDict

from hfssl.data.collators import build_collator
from hfssl.data.packing import tokenize_and_pack
from hfssl.data.text import load_text_dataset
from hfssl.training.arguments import DataArguments

DOCS = [f"Document number {i} says something about topic {i % 7}." for i in range(40)]
BOM = b"\xef\xbb\xbf"
OPENERS = {"gz": gzip.open, "bz2": bz2.open, "xz": lzma.open}


def write_bytes(path: Path, data: bytes) -> Path:
    opener = OPENERS.get(path.suffix.lstrip("."), open)
    with opener(path, "wb") as f:
        f.write(data)
    return path


def texts(path_or_paths, **kwargs) -> tuple[list[str], dict]:
    """All texts (train, then validation) and the description of a corpus loaded from files."""
    files = path_or_paths if isinstance(path_or_paths, list) else [path_or_paths]
    kwargs.setdefault("validation_examples", 2)
    splits, description = load_text_dataset(DataArguments(train_files=[str(f) for f in files], **kwargs))
    return [row["text"] for name in ("train", "validation") for row in splits[name]], description


# --------------------------------------------------------------------------------------------- loading


@pytest.mark.parametrize("streaming", [False, True])
@pytest.mark.parametrize("name", ["a.txt", "a.txt.gz", "a.txt.bz2"])
def test_a_utf8_byte_order_mark_is_not_text(tmp_path, name, streaming):
    """Notepad writes a BOM; it must not become an invisible U+FEFF at the start of the first document."""
    path = write_bytes(tmp_path / name, BOM + "\n".join(DOCS).encode() + b"\n")
    got, _ = texts(path, streaming=streaming)
    assert sorted(got) == sorted(DOCS)


@pytest.mark.parametrize("streaming", [False, True])
@pytest.mark.parametrize("suffix", ["gz", "bz2", "xz"])
def test_compressed_text_with_an_undecodable_line_skips_and_counts_it(tmp_path, caplog, suffix, streaming):
    """README: a non-UTF-8 line is skipped with a count (fails only with --strict), compressed or not."""
    data = "\n".join(DOCS[:20]).encode() + b"\ncaf\xe9 in latin-1\n" + "\n".join(DOCS[20:]).encode() + b"\n"
    path = write_bytes(tmp_path / f"a.txt.{suffix}", data)
    with caplog.at_level(logging.WARNING, logger="hfssl.data.text"):
        got, description = texts(path, streaming=streaming)
    assert sorted(got) == sorted(DOCS)
    assert description["skipped_undecodable"] == 1 and "not valid UTF-8" in caplog.text


def test_compressed_text_is_read_again_when_its_contents_change(tmp_path):
    path = write_bytes(tmp_path / "a.txt.gz", "\n".join(DOCS[:10]).encode())
    assert sorted(texts(path)[0]) == sorted(DOCS[:10])
    write_bytes(path, "\n".join(DOCS[10:30]).encode())
    assert sorted(texts(path)[0]) == sorted(DOCS[10:30])


@pytest.mark.parametrize("streaming", [False, True])
@pytest.mark.parametrize("sep", [",", "\t"])
def test_csv_cells_that_pandas_calls_missing_are_text(tmp_path, sep, streaming):
    """"NA", "None", "null", "nan" are short texts, not missing values to drop as empty rows."""
    words = ["NA", "N/A", "None", "null", "NULL", "nan", "#N/A", "n/a"]
    path = tmp_path / ("a.csv" if sep == "," else "a.tsv")
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, delimiter=sep)
        writer.writerow(["id", "text"])
        writer.writerows([i, text] for i, text in enumerate(DOCS + words))
    got, description = texts(path, streaming=streaming)
    assert sorted(got) == sorted(DOCS + words)
    if not streaming:
        assert description["skipped_empty"] == 0


@pytest.mark.parametrize("streaming", [False, True])
def test_csv_whose_first_rows_are_numbers_loads_every_row(tmp_path, streaming):
    """pandas types each 10,000-row chunk alone: a chunk of number-only cells became an int column that later text
    failed to cast to (map-style), or whose rows were dropped as not text (streamed)."""
    rows = [str(i) for i in range(10_500)] + DOCS
    path = tmp_path / "a.csv"
    path.write_text("text,score\n" + "".join(f"{row},{i}\n" for i, row in enumerate(rows)))
    got, _ = texts(path, streaming=streaming)
    assert len(got) == len(rows) and sorted(got) == sorted(rows)


def test_train_and_validation_files_may_be_of_different_formats(tmp_path):
    train = tmp_path / "train.jsonl"
    train.write_text("".join(f'{{"text": "{doc}"}}\n' for doc in DOCS[:30]))
    valid = write_bytes(tmp_path / "valid.txt", "\n".join(DOCS[30:]).encode())
    args = DataArguments(train_files=[str(train)], validation_files=[str(valid)])
    splits, description = load_text_dataset(args)
    assert splits["train"]["text"][:] == DOCS[:30] and splits["validation"]["text"][:] == DOCS[30:]
    assert description["format"] == "json" and description["validation_format"] == "text"


def test_a_glob_leaves_out_files_of_other_types_as_a_folder_does(tmp_path):
    (tmp_path / "corpus").mkdir()
    write_bytes(tmp_path / "corpus" / "a.txt", "\n".join(DOCS).encode())
    (tmp_path / "corpus" / "README.md").write_text("# about this corpus\n")
    (tmp_path / "corpus" / "LICENSE").write_text("CC-BY\n")
    for pattern in (tmp_path / "corpus", tmp_path / "corpus" / "*"):
        got, description = texts(pattern)
        assert sorted(got) == sorted(DOCS) and description["source"] == [str(tmp_path / "corpus" / "a.txt")]


# --------------------------------------------------------------------------------------------- packing


def stream_of(tokenizer, docs: list[str], separator: int) -> list[int]:
    ids = tokenizer(docs, add_special_tokens=False)["input_ids"]
    return list(chain.from_iterable(doc + [separator] for doc in ids))


@pytest.mark.parametrize("objective", ["mlm", "clm"])
def test_packing_keeps_every_token_once_in_order_but_the_last_partial_block(docstrings, wordpiece, bpe, objective):
    tokenizer = wordpiece if objective == "mlm" else bpe
    separator = tokenizer.sep_token_id if objective == "mlm" else tokenizer.eos_token_id
    docs = docstrings[:600]
    for block_size in (8, 64, 512):
        blocks = tokenize_and_pack(Dataset.from_dict({"text": docs}), tokenizer, block_size, objective)["input_ids"]
        if objective == "mlm":
            assert all(block[0] == tokenizer.cls_token_id for block in blocks)
            blocks = [block[1:] for block in blocks]
        flat, stream = list(chain.from_iterable(blocks)), stream_of(tokenizer, docs, separator)
        assert flat == stream[: len(flat)] and len(stream) - len(flat) < len(blocks[0])


@pytest.mark.parametrize("streaming", [False, True])
def test_many_short_documents_fill_long_blocks(wordpiece, streaming):
    """6,000 three-word lines hold 5 blocks of 4096 tokens, but each batch of 1000 documents held fewer than 4096:
    packing made no block and said the corpus had fewer tokens in total than one block."""
    tokenizer = copy.deepcopy(wordpiece)
    tokenizer.model_max_length = 4096
    docs = [f"hello world {i % 10}" for i in range(6000)]
    ds = Dataset.from_dict({"text": docs})
    packed = tokenize_and_pack(ds.to_iterable_dataset() if streaming else ds, tokenizer, 4096, "mlm")
    blocks = [row["input_ids"][1:] for row in packed]
    stream = stream_of(tokenizer, docs, tokenizer.sep_token_id)
    assert len(blocks) == len(stream) // 4095
    assert list(chain.from_iterable(blocks)) == stream[: len(blocks) * 4095]


def test_a_validation_split_too_short_for_one_block_is_named(wordpiece):
    splits = {"train": Dataset.from_dict({"text": DOCS * 20}), "validation": Dataset.from_dict({"text": DOCS[:1]})}
    with pytest.raises(ValueError, match=r"tokens in total < block_size 64\) in the validation split; .*"
                                         r"--validation-files"):
        tokenize_and_pack(DatasetDict(splits), wordpiece, 64, "mlm")


def test_a_tokenizer_that_turns_the_corpus_into_unknown_tokens_is_warned_about(wordpiece, caplog):
    foreign = ["这是一个中文句子，分词器从未见过这些字。" * 4 for _ in range(40)]
    with caplog.at_level(logging.WARNING, logger="hfssl.data.packing"):
        tokenize_and_pack(Dataset.from_dict({"text": foreign}), wordpiece, 16, "mlm")
    assert "of the tokens of the data split's first 40 documents are [UNK]" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="hfssl.data.packing"):
        tokenize_and_pack(Dataset.from_dict({"text": DOCS}), wordpiece, 16, "mlm")
    assert "[UNK]" not in caplog.text


# --------------------------------------------------------------------------------------------- masking


def test_every_masked_lm_batch_has_a_token_to_predict(wordpiece):
    """A block of 8 in a batch of 1 has 7 maskable tokens: at 15% a third of such batches masked none, whose
    mean loss is NaN, which stopped `hfssl pretrain --block-size 8 --per-device-train-batch-size 1`."""
    block = tokenize_and_pack(Dataset.from_dict({"text": DOCS}), wordpiece, 8, "mlm")[0]
    collator = build_collator("mlm", wordpiece, mlm_probability=0.15, seed=0)
    for _ in range(60):
        batch = collator([block])
        selected = batch["labels"] != -100
        assert int(selected.sum()) >= 1
        assert (batch["labels"][selected] == batch["labels"].new_tensor(block["input_ids"])[selected[0]]).all()


def test_a_batch_of_only_special_tokens_is_an_error_naming_them(wordpiece):
    unk, cls = wordpiece.unk_token_id, wordpiece.cls_token_id
    with pytest.raises(ValueError, match=r"only special tokens \(\[CLS\], \[UNK\]\).*leave out --tokenizer"):
        build_collator("mlm", wordpiece, seed=0)([{"input_ids": [cls] + [unk] * 7}])


@pytest.mark.parametrize(("sep", "cause"), [(";", "separates its fields with semicolons"),
                                            ("\t", "separates its fields with tabs, not commas; name the file .tsv")])
def test_a_csv_separated_by_another_character_is_named_as_the_cause(tmp_path, sep, cause):
    path = tmp_path / "reviews.csv"
    path.write_text(f"text{sep}label\nA fine film{sep}1\nA dull one{sep}0\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no column 'text'") as error:
        load_text_dataset(DataArguments(train_files=[str(path)], text_column="text"))
    assert cause in str(error.value)
    if sep == ";":
        assert "pandas.read_csv(path, sep=';').to_csv(path, index=False)" in str(error.value)

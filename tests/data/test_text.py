"""Loading text corpora: formats, globs, folders, bad input, validation splits, streaming, descriptions."""

from __future__ import annotations

import gzip
import json
import logging
from pathlib import Path

import pandas as pd
import pytest
from datasets import Dataset, DatasetDict, IterableDatasetDict

from hfssl.data.corpora import _all_docstrings, stdlib_docstrings, stdlib_docstrings_dataset
from hfssl.data.text import load_text_dataset, texts_for_tokenizer
from hfssl.training.arguments import DataArguments

DOCS = [f"Document number {i} says something about topic {i % 7}." for i in range(40)]


def write_lines(path: Path, lines: list[bytes | str], opener=open) -> Path:
    """Write lines (str as UTF-8, bytes as they are), one per line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with opener(path, "wb") as f:
        f.write(b"".join((ln.encode() if isinstance(ln, str) else ln) + b"\n" for ln in lines))
    return path


def jsonl_lines(texts: list[str], column: str = "text") -> list[str]:
    return [json.dumps({column: t, "id": i}) for i, t in enumerate(texts)]


def write_corpus(path: Path, texts: list[str]) -> Path:
    """Write `texts` in the format its file name says."""
    name = path.name
    if name.endswith((".txt", ".txt.gz")):
        return write_lines(path, texts, gzip.open if name.endswith(".gz") else open)
    if name.endswith((".jsonl", ".jsonl.gz")):
        return write_lines(path, jsonl_lines(texts), gzip.open if name.endswith(".gz") else open)
    frame = pd.DataFrame({"text": texts, "id": range(len(texts))})
    path.parent.mkdir(parents=True, exist_ok=True)
    if name.endswith(".json"):
        path.write_text(json.dumps(frame.to_dict("records")))
    elif name.endswith(".csv"):
        frame.to_csv(path, index=False)
    elif name.endswith(".tsv"):
        frame.to_csv(path, index=False, sep="\t")
    elif name.endswith(".parquet"):
        frame.to_parquet(path)
    return path


def load(tmp_path: Path, files: list, **kwargs) -> tuple:
    return load_text_dataset(DataArguments(train_files=[str(f) for f in files], **kwargs))


def all_texts(splits) -> list[str]:
    return [row["text"] for name in ("train", "validation") for row in splits[name]]


# --------------------------------------------------------------------------------------------- stdlib corpus


def test_stdlib_docstrings_are_real_long_deterministic_and_cached():
    docs = stdlib_docstrings()
    assert len(docs) >= 6000
    assert sum(map(len, docs)) >= 1_500_000
    assert min(map(len, docs)) >= 40
    assert stdlib_docstrings(limit=10) == docs[:10]
    assert _all_docstrings.cache_info().hits >= 1
    assert any("Return" in doc for doc in docs[:500])
    assert stdlib_docstrings_dataset(limit=5)["text"] == docs[:5]


# --------------------------------------------------------------------------------------------- formats and paths


@pytest.mark.parametrize("name", ["a.txt", "a.txt.gz", "a.jsonl", "a.jsonl.gz", "a.json", "a.csv", "a.tsv",
                                  "a.parquet"])
def test_each_format_loads_one_text_column(tmp_path, name):
    path = write_corpus(tmp_path / name, DOCS)
    splits, description = load(tmp_path, [path])
    assert isinstance(splits, DatasetDict)
    assert splits["train"].column_names == ["text"] == splits["validation"].column_names
    assert sorted(all_texts(splits)) == sorted(DOCS)
    assert description["train_rows"] + description["validation_rows"] == len(DOCS)
    assert description["format"] == {"txt": "text", "jsonl": "json"}.get(name.split(".")[1], name.split(".")[1])


def test_tab_separated_text_keeps_commas_quotes_and_quoted_tabs(tmp_path):
    texts = ['Commas, "quotes" and more', "A quoted\ttab inside", "Plain words only"] * 4
    path = tmp_path / "a.tsv"
    pd.DataFrame({"id": range(len(texts)), "body": texts}).to_csv(path, index=False, sep="\t")
    splits, description = load(tmp_path, [path], text_column="body")
    assert sorted(all_texts(splits)) == sorted(texts) and description["format"] == "tsv"
    with pytest.raises(ValueError, match=r"has no column 'text'; its columns are \['id', 'body'\]"):
        load(tmp_path, [path])


def test_folders_and_recursive_globs_collect_sorted_files(tmp_path):
    write_corpus(tmp_path / "corpus" / "b.txt", DOCS[20:])
    write_corpus(tmp_path / "corpus" / "sub" / "deeper" / "a.txt", DOCS[:20])
    write_corpus(tmp_path / "corpus" / ".hidden" / "c.txt", ["hidden text must not load"])
    by_folder, description = load(tmp_path, [tmp_path / "corpus"], validation_fraction=0.25)
    by_glob, _ = load(tmp_path, [tmp_path / "corpus" / "**" / "*.txt"], validation_fraction=0.25)
    assert sorted(all_texts(by_folder)) == sorted(DOCS) == sorted(all_texts(by_glob))
    assert [Path(p).name for p in description["source"]] == ["b.txt", "a.txt"]


def test_mixed_formats_are_an_error_naming_the_files(tmp_path):
    txt = write_corpus(tmp_path / "a.txt", DOCS)
    csv = write_corpus(tmp_path / "b.csv", DOCS)
    with pytest.raises(ValueError, match="mix formats") as error:
        load(tmp_path, [txt, csv])
    assert str(txt) in str(error.value) and str(csv) in str(error.value)


def test_missing_files_and_empty_globs_name_the_pattern(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        load(tmp_path, [tmp_path / "nope.txt"])
    with pytest.raises(FileNotFoundError, match=r"\*\.jsonl"):
        load(tmp_path, [tmp_path / "*.jsonl"])


def test_exactly_one_source_is_required(tmp_path):
    with pytest.raises(ValueError, match="exactly one data source"):
        load_text_dataset(DataArguments())
    with pytest.raises(ValueError, match="exactly one data source"):
        load_text_dataset(DataArguments(train_files=["a.txt"], dataset="json"))


# --------------------------------------------------------------------------------------------- columns


def test_text_column_is_selected_and_renamed(tmp_path):
    path = write_lines(tmp_path / "a.jsonl", jsonl_lines(DOCS, column="body"))
    splits, description = load(tmp_path, [path], text_column="body")
    assert splits["train"].column_names == ["text"]
    assert sorted(all_texts(splits)) == sorted(DOCS)
    assert description["text_column"] == "body"


def test_missing_text_column_lists_the_columns(tmp_path):
    path = write_lines(tmp_path / "a.jsonl", jsonl_lines(DOCS, column="body"))
    for streaming in (False, True):
        with pytest.raises(ValueError, match="'text' not found") as error:
            load(tmp_path, [path], streaming=streaming)
        assert "body" in str(error.value) and "id" in str(error.value) and "--text-column" in str(error.value)


def test_non_text_column_is_rejected(tmp_path):
    path = write_lines(tmp_path / "a.jsonl", jsonl_lines(DOCS))
    with pytest.raises(ValueError, match="'id' holds int64, not text"):
        load(tmp_path, [path], text_column="id")


# --------------------------------------------------------------------------------------------- empty input


@pytest.mark.parametrize("streaming", [False, True])
def test_empty_corpus_is_an_error(tmp_path, streaming):
    empty = write_lines(tmp_path / "empty.txt", [])
    blank = write_lines(tmp_path / "blank.txt", ["", "   ", "\t"])
    empty_json = write_lines(tmp_path / "empty.jsonl", jsonl_lines(["", "  ", ""]))
    for files in ([empty], [blank], [empty_json]):
        with pytest.raises(ValueError, match="corpus is empty") as error:
            load(tmp_path, files, streaming=streaming)
        assert str(files[0]) in str(error.value)


def test_empty_rows_and_empty_files_are_skipped_with_a_count(tmp_path):
    path = write_lines(tmp_path / "a.txt", DOCS[:10] + ["", "  "] + DOCS[10:])
    empty = write_lines(tmp_path / "z.txt", [])
    splits, description = load(tmp_path, [path, empty])
    assert sorted(all_texts(splits)) == sorted(DOCS)
    assert description["skipped_empty"] == 2


# --------------------------------------------------------------------------------------------- bad bytes


BAD = [b"caf\xe9 latin-1 bytes", b"\xff\xfe broken"]


def bad_corpus(tmp_path: Path, suffix: str) -> Path:
    """DOCS with two non-UTF-8 lines inserted, in txt, jsonl, jsonl.gz or csv."""
    if suffix == "csv":
        lines = ["text"] + DOCS[:5] + BAD + DOCS[5:]
        return write_lines(tmp_path / "bad.csv", lines)
    if suffix == "txt":
        return write_lines(tmp_path / "bad.txt", DOCS[:5] + BAD + DOCS[5:])
    bad_json = [b'{"text": "' + b + b'"}' for b in BAD]
    lines = jsonl_lines(DOCS[:5]) + bad_json + jsonl_lines(DOCS[5:])
    return write_lines(tmp_path / f"bad.{suffix}", lines, gzip.open if suffix.endswith("gz") else open)


@pytest.mark.parametrize("suffix", ["txt", "jsonl", "jsonl.gz", "csv"])
@pytest.mark.parametrize("streaming", [False, True])
def test_undecodable_lines_are_skipped_and_counted(tmp_path, caplog, suffix, streaming):
    path = bad_corpus(tmp_path, suffix)
    with caplog.at_level(logging.WARNING, logger="hfssl.data.text"):
        splits, description = load(tmp_path, [path], streaming=streaming, validation_examples=5)
    assert description["skipped_undecodable"] == 2
    assert sorted(all_texts(splits)) == sorted(DOCS)
    assert "not valid UTF-8" in caplog.text and "bad." in caplog.text


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32"])
def test_utf16_and_utf32_files_are_refused_not_read_as_text_with_nuls(tmp_path, encoding):
    """Split on newline bytes, UTF-16 text is valid UTF-8 with a NUL after every letter: it must not train."""
    bom = {"utf-16-be": "\ufeff"}.get(encoding, "")  # the plain codecs write their own byte-order mark
    path = tmp_path / "wide.txt"
    path.write_bytes((bom + "\n".join(DOCS) + "\n").encode(encoding))
    with pytest.raises(ValueError, match=rf"is {encoding[:6].upper()} text .* Convert it first, e.g. `iconv"):
        load(tmp_path, [path])


def test_a_file_with_no_utf8_line_is_refused_not_skipped_row_by_row(tmp_path):
    path = write_lines(tmp_path / "latin1.txt", [f"{doc} caf\xe9".encode("latin-1") for doc in DOCS])
    with pytest.raises(ValueError, match=r"none of its 40 line\(s\) decode as UTF-8 .*`iconv -f LATIN1"):
        load(tmp_path, [path])


@pytest.mark.parametrize("suffix", ["txt", "jsonl.gz"])
def test_strict_mode_names_file_and_line(tmp_path, suffix):
    path = bad_corpus(tmp_path, suffix)
    with pytest.raises(ValueError, match="at line 6") as error:
        load(tmp_path, [path], strict=True)
    assert str(path) in str(error.value) and "--strict" in str(error.value)


# --------------------------------------------------------------------------------------------- validation and limits


def test_validation_is_carved_with_a_seed(tmp_path):
    path = write_corpus(tmp_path / "a.txt", DOCS)
    splits, description = load(tmp_path, [path], validation_fraction=0.1)
    again, _ = load(tmp_path, [path], validation_fraction=0.1)
    assert (len(splits["train"]), len(splits["validation"])) == (36, 4)
    assert not set(splits["train"]["text"]) & set(splits["validation"]["text"])
    assert splits["validation"]["text"] == again["validation"]["text"]
    other, _ = load_text_dataset(DataArguments(train_files=[str(path)], validation_fraction=0.1), seed=7)
    assert other["validation"]["text"] != splits["validation"]["text"]
    tiny, _ = load(tmp_path, [path], validation_fraction=0.001)
    assert len(tiny["validation"]) == 1


def test_validation_files_are_used_as_given(tmp_path):
    train = write_corpus(tmp_path / "train.txt", DOCS[:30])
    valid = write_corpus(tmp_path / "valid.txt", DOCS[30:])
    args = DataArguments(train_files=[str(train)], validation_files=[str(valid)])
    splits, description = load_text_dataset(args)
    assert splits["train"]["text"] == DOCS[:30] and splits["validation"]["text"] == DOCS[30:]
    assert description["validation_rows"] == 10


def test_streaming_takes_validation_from_the_start_and_skips_it_for_training(tmp_path):
    path = write_corpus(tmp_path / "a.jsonl", DOCS)
    splits, description = load(tmp_path, [path], streaming=True, validation_examples=5, max_train_examples=8)
    assert isinstance(splits, IterableDatasetDict)
    assert [r["text"] for r in splits["validation"]] == DOCS[:5]
    assert [r["text"] for r in splits["train"]] == DOCS[5:13]
    assert description["streaming"] is True and description["train_rows"] is None
    with pytest.raises(ValueError, match="lower --validation-examples"):
        load(tmp_path, [path], streaming=True, validation_examples=len(DOCS))


def test_max_train_examples_limits_training_rows(tmp_path):
    path = write_corpus(tmp_path / "a.txt", DOCS)
    splits, description = load(tmp_path, [path], max_train_examples=7)
    assert len(splits["train"]) == 7 == description["train_rows"]


# --------------------------------------------------------------------------------------------- descriptions


def test_description_and_fingerprint_follow_contents_not_location(tmp_path):
    first = write_corpus(tmp_path / "one" / "a.txt", DOCS)
    moved = write_corpus(tmp_path / "two" / "a.txt", DOCS)
    changed = write_corpus(tmp_path / "three" / "a.txt", DOCS[:-1])
    _, description = load(tmp_path, [first])
    assert set(description) >= {"source", "format", "text_column", "train_rows", "validation_rows",
                                "skipped_undecodable", "skipped_empty", "streaming", "fingerprint"}
    assert description["fingerprint"] == load(tmp_path, [moved])[1]["fingerprint"]
    assert description["fingerprint"] != load(tmp_path, [changed])[1]["fingerprint"]
    json.dumps(description)  # run.json must be able to hold it


def test_dataset_folder_or_builder_with_named_splits(tmp_path):
    folder = tmp_path / "hub_like"
    write_corpus(folder / "train.jsonl", DOCS[:30])
    write_corpus(folder / "validation.jsonl", DOCS[30:])
    args = DataArguments(dataset=str(folder), validation_split="validation")
    splits, description = load_text_dataset(args)
    assert splits["train"]["text"] == DOCS[:30] and splits["validation"]["text"] == DOCS[30:]
    assert description["source"] == str(folder) and description["fingerprint"]
    streamed, stream_description = load_text_dataset(DataArguments(dataset="json", data_dir=str(folder), streaming=True,
                                                                   validation_split="validation"))
    assert [r["text"] for r in streamed["validation"]] == DOCS[30:]
    assert len(stream_description["fingerprint"]) == 64
    with pytest.raises(ValueError, match="no split 'dev'") as error:
        load_text_dataset(DataArguments(dataset=str(folder), validation_split="dev"))
    assert "validation" in str(error.value)


@pytest.mark.parametrize("streaming", [False, True])
def test_a_save_to_disk_dataset_is_the_training_split(tmp_path, streaming):
    """One saved Dataset (no splits) trains, with a validation split carved off, as a DatasetDict folder does."""
    folder = tmp_path / "saved"
    Dataset.from_dict({"text": DOCS, "id": list(range(len(DOCS)))}).save_to_disk(str(folder))
    splits, _ = load_text_dataset(DataArguments(dataset=str(folder), validation_fraction=0.1, validation_examples=4,
                                                streaming=streaming))
    assert sorted(all_texts(splits)) == sorted(DOCS)
    assert len(list(splits["validation"])) == 4


def test_a_builder_that_cannot_read_its_files_is_a_user_error(tmp_path):
    folder = tmp_path / "csvs"
    folder.mkdir()
    (folder / "a.csv").write_bytes(b"text\n" + "caf\xe9\n".encode("latin-1") * 3)
    with pytest.raises(ValueError, match=r"--dataset csv \(data_dir .*csvs\) could not be read: UnicodeDecodeError"):
        load_text_dataset(DataArguments(dataset="csv", data_dir=str(folder)))


def test_news_corpus_loads_with_all_rows(news_file):
    splits, description = load_text_dataset(DataArguments(train_files=[str(news_file)]))
    assert description["train_rows"] + description["validation_rows"] == 100
    assert description["validation_rows"] == 5
    assert all(len(t) > 100 for t in splits["validation"]["text"])


def test_texts_for_tokenizer_is_bounded_for_both_kinds(tmp_path):
    path = write_corpus(tmp_path / "a.jsonl", DOCS)
    splits, _ = load(tmp_path, [path])
    streamed, _ = load(tmp_path, [path], streaming=True, validation_examples=5)
    assert list(texts_for_tokenizer(splits, max_texts=3)) == splits["train"]["text"][:3]
    assert list(texts_for_tokenizer(streamed, max_texts=4)) == DOCS[5:9]
    assert len(list(texts_for_tokenizer(Dataset.from_dict({"text": DOCS})))) == len(DOCS)


# --------------------------------------------------------------------------------------------- column types and schemas


@pytest.mark.parametrize("streaming", [False, True])
@pytest.mark.parametrize(("rows", "column", "expected"), [
    ([{"meta": {"text": t}} for t in DOCS], "meta", r"'meta' holds objects with fields \['text'\], not text"),
    ([{"text": [t, t]} for t in DOCS], "text", "'text' holds lists of string, not text"),
    ([{"text": t} for t in DOCS[:30]] + [{"text": 7}] + [{"text": t} for t in DOCS[30:]], "text",
     r"'text' mixes text with other values \(the train files \(.*a\.jsonl\)\): row 31 holds 7 \(int\)"),
])
def test_json_values_that_are_not_text_are_rejected(tmp_path, rows, column, expected, streaming):
    path = write_lines(tmp_path / "a.jsonl", [json.dumps(row) for row in rows])
    with pytest.raises(ValueError, match=expected) as error:
        load(tmp_path, [path], text_column=column, streaming=streaming)
    assert "--text-column" in str(error.value)


def test_validation_file_without_the_text_column_names_the_file(tmp_path):
    train = tmp_path / "train.csv"
    pd.DataFrame({"body": DOCS, "id": range(40)}).to_csv(train, index=False)
    valid = write_corpus(tmp_path / "valid.csv", DOCS[:5])  # columns text, id
    args = DataArguments(train_files=[str(train)], validation_files=[str(valid)], text_column="body")
    with pytest.raises(ValueError, match=r"Validation file '.*valid\.csv' \(from --validation-files\) has no column "
                                         r"'body'; its columns are \['text', 'id'\]"):
        load_text_dataset(args)


@pytest.mark.parametrize("streaming", [False, True])
@pytest.mark.parametrize("suffix", ["csv", "tsv", "parquet"])
def test_files_with_differing_other_columns_load(tmp_path, suffix, streaming):
    """Train and validation files, and files of one split, need only share the text column."""
    def write(name: str, frame: pd.DataFrame) -> str:
        path = tmp_path / f"{name}.{suffix}"
        if suffix == "parquet":
            frame.to_parquet(path)
        else:
            frame.to_csv(path, index=False, sep="," if suffix == "csv" else "\t")
        return str(path)

    train = [write("a", pd.DataFrame({"body": DOCS[:20], "id": range(20)})),
             write("b", pd.DataFrame({"source": ["web"] * 10, "body": DOCS[20:30]}))]
    valid = [write("v", pd.DataFrame({"body": DOCS[30:], "score": [0.5] * 10}))]
    args = DataArguments(train_files=train, validation_files=valid, text_column="body", streaming=streaming)
    splits, _ = load_text_dataset(args)
    assert [r["text"] for r in splits["train"]] == DOCS[:30]
    assert [r["text"] for r in splits["validation"]] == DOCS[30:]


@pytest.mark.parametrize("streaming", [False, True])
def test_literal_replacement_characters_are_text_not_undecodable(tmp_path, caplog, streaming):
    """Valid UTF-8 holding U+FFFD is kept; only rows that failed to decode are dropped, and counted the same way."""
    with_fffd = [f"{doc} \ufffd quoted badly upstream" for doc in DOCS[:7]]
    clean = write_lines(tmp_path / "a.txt", with_fffd + DOCS[7:])
    bad = write_lines(tmp_path / "b.txt", [b"caf\xe9 latin-1 bytes", b"\xff\xfe broken", DOCS[0].encode()])
    with caplog.at_level(logging.WARNING, logger="hfssl.data.text"):
        splits, description = load(tmp_path, [clean, bad], streaming=streaming, validation_examples=5)
    assert "2 line(s) are not valid UTF-8" in caplog.text
    assert description["skipped_undecodable"] == 2
    assert sorted(all_texts(splits)) == sorted(with_fffd + DOCS[7:] + DOCS[:1])

"""`read_labeled_split`: the one reader of labelled table files behind `hfssl evaluate`, `finetune` and `audit`.

A non-UTF-8 csv was a named file and line in `evaluate` only: `finetune` raised datasets' DatasetGenerationError
traceback and `audit` a generic "could not read" without the line or a fix. Latin-1 json lines were loaded, then
failed on the first read of the text with a bare UnicodeDecodeError that named no file.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd
import pytest

from hfssl.audit.data import load_table
from hfssl.data.tables import read_labeled_split
from hfssl.evaluation.protocol import DataOptions, load_source
from hfssl.finetune.data import DataSpec, load_splits

LATIN1_ROWS = "text,label\nun bon film,pos\nun caf\u00e9 froid,neg\nune belle \u00e9t\u00e9,pos\n"
TRUNCATED_GZ = gzip.compress(b"text,label\n" + b"hello,1\n" * 1000, mtime=0)[:40]  # a download cut short
UTF8_FIX = r"\(line 3\) \(from {flag}\) is not UTF-8 text \(2 line\(s\) are not\)\. .*`iconv -f latin1 -t utf-8 "


def write(path: Path, data: str | bytes) -> Path:
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


@pytest.fixture
def latin1_csv(tmp_path) -> Path:
    return write(tmp_path / "latin1.csv", LATIN1_ROWS.encode("latin-1"))


ENTRY_POINTS = {
    "evaluate": (lambda f: load_source(DataOptions(train_files=[str(f)])), r"The train file", "--train-files"),
    "finetune": (lambda f: load_splits(DataSpec(train_files=[str(f)]), "text"), r"The train file", "--train-files"),
    "audit": (lambda f: load_table(test_files=[str(f)]), r"The audit set file", "--test-files"),
}


@pytest.mark.parametrize("command", ENTRY_POINTS)
def test_every_command_names_the_non_utf8_file_and_line(command, latin1_csv):
    load, what, flag = ENTRY_POINTS[command]
    with pytest.raises(ValueError, match=rf"{what} '.*latin1\.csv' " + UTF8_FIX.format(flag=flag)):
        load(latin1_csv)


@pytest.mark.parametrize("name, builder", [("a.jsonl", "json"), ("a.json", "json"), ("a.tsv", "tsv")])
def test_non_utf8_json_and_tsv_are_named_with_their_first_bad_line(tmp_path, name, builder):
    """json lines failed with a bare UnicodeDecodeError, a json array with 'Invalid octet' (no file, no line)."""
    rows = {"a.jsonl": '{"text": "ok", "label": 1}\n{"text": "caf\u00e9", "label": 0}\n',
            "a.json": '[{"text": "ok", "label": 1},\n{"text": "caf\u00e9", "label": 0}]\n',
            "a.tsv": "text\tlabel\ncaf\u00e9\t0\nok\t1\n"}[name]
    path = write(tmp_path / name, rows.encode("latin-1"))
    with pytest.raises(ValueError, match=rf"The test file '.*{name}' \(line 2\) \(from --test-files\) is not UTF-8"):
        read_labeled_split(builder, [path], what="test", flag="--test-files")


def test_an_empty_file_is_named_among_good_ones(tmp_path):
    good = write(tmp_path / "good.csv", "text,label\nhi,1\n")
    empty = write(tmp_path / "empty.csv", "")
    with pytest.raises(ValueError, match=r"The train file '.*empty\.csv' \(from --train-files\) is empty; give"):
        read_labeled_split("csv", [good, empty], what="train", flag="--train-files")


@pytest.mark.parametrize("name, builder, data", [("header.csv", "csv", "text,label\n"), ("blank.jsonl", "json", "\n\n"),
                                                 ("array.json", "json", "[]")])
def test_files_without_rows_say_so(tmp_path, name, builder, data):
    path = write(tmp_path / name, data)
    with pytest.raises(ValueError, match=rf"The test file\(s\) .*{name} \(from --test-files\) hold no rows"):
        read_labeled_split(builder, [path], what="test", flag="--test-files")


def test_a_blank_csv_among_good_ones_is_the_one_named(tmp_path):
    """pandas' 'No columns to parse from file' named neither file; only the blank one is at fault."""
    good = write(tmp_path / "good.csv", "text,label\nhi,1\n")
    blank = write(tmp_path / "blank.csv", "\n\n")
    with pytest.raises(ValueError, match=r"file\(s\) \S*blank\.csv \(from --train-files\) hold no rows") as caught:
        read_labeled_split("csv", [good, blank], what="train", flag="--train-files")
    assert "good.csv" not in str(caught.value)


@pytest.mark.parametrize("name, builder, data, cause", [
    ("ragged.csv", "csv", "text,label\na,1\nb,2,3,4\n", "ParserError"),
    ("broken.jsonl", "json", '{"text": "a", "label": 1}\n{"text": oops}\n', "ArrowInvalid"),
    ("broken.parquet", "parquet", "not parquet", "ArrowInvalid"),
    ("cut.csv.gz", "csv", TRUNCATED_GZ, "EOFError"),  # the UTF-8 scan reads it first, and must not fail on it
], ids=["ragged-csv", "broken-jsonl", "broken-parquet", "cut-gz"])
def test_other_reader_failures_name_files_builder_cause_and_fix(tmp_path, name, builder, data, cause):
    path = write(tmp_path / name, data)
    with pytest.raises(ValueError, match=rf"The audit set file\(s\) .*{name} \(from --test-files\) could not be read "
                                         rf"as {builder}: {cause}: .*Check that each file is valid {builder}"):
        read_labeled_split(builder, [path], what="audit set", flag="--test-files")


def test_good_files_are_read_with_the_callers_keywords(tmp_path):
    a = tmp_path / "a.parquet"
    pd.DataFrame({"text": ["x", "y"], "label": [0, 1], "extra": [1.0, 2.0]}).to_parquet(a)
    split = read_labeled_split("parquet", [a], what="train", flag="--train-files", columns=["text", "label"])
    assert split.column_names == ["text", "label"] and split["text"] == ["x", "y"]


@pytest.mark.parametrize("name, data", [("broken.parquet", b"not parquet"), ("cut.csv.gz", TRUNCATED_GZ)])
def test_evaluate_names_a_damaged_file_when_reading_its_header(tmp_path, name, data):
    """evaluate reads each file's header before the rows: a bare ArrowInvalid / EOFError named no file there."""
    path = write(tmp_path / name, data)
    with pytest.raises(ValueError, match=rf"{name} cannot be read as (parquet|csv): \w+: .*complete, valid"):
        load_source(DataOptions(train_files=[str(path)]))


def test_a_compressed_non_utf8_file_is_told_to_decompress_before_iconv(tmp_path):
    path = write(tmp_path / "latin1.csv.gz", gzip.compress(LATIN1_ROWS.encode("latin-1"), mtime=0))
    with pytest.raises(ValueError, match=r"`gzip -dc latin1\.csv\.gz \| iconv -f latin1 -t utf-8 > utf8-latin1\.csv`"):
        read_labeled_split("csv", [path], what="train", flag="--train-files")

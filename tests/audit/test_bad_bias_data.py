"""Bias files that exist but hold nothing usable (empty, or the slot spelled other than [MASK]), files with some
unusable rows, and what one bad file does to the whole audit.

The rule, checked here: a file that is *missing* marks its audit "not evaluated" (the user did not supply that set,
and the card says so), but a file that *exists* and holds no usable row is an error naming it, with exit 2 and
nothing written. The user pointed hfssl at that file, so it is almost certainly a broken copy (truncated download,
another tool's mask token); quietly recording "not evaluated" would publish a card without an audit the user asked
for, and it matches how a file with missing columns or bad JSON was already refused. A file with only some unusable
rows is audited on the rest, with the dropped count and reason logged, in the result's data and in its caveats.
"""

from __future__ import annotations

import json
import shutil

import pytest

from hfssl.audit import AUDIT_FILE, audit_run
from hfssl.audit.data import read_crows_pairs, read_stereoset, read_winobias
from hfssl.audit.text_clm import stereoset_audit
from hfssl.audit.text_mlm import winobias_audit
from hfssl.cli import main

from ..cards import make_pretrain_run, one_torch_thread  # noqa: F401
from .test_text_audits import context

FILES = ("crows_pairs.csv", "stereoset.jsonl", "winobias.jsonl")


@pytest.fixture(scope="module")
def bias_dir(data_dir):
    folder = data_dir / "bias"
    if not all((folder / name).is_file() for name in FILES):
        pytest.skip(f"no bias sets in {folder}")
    return folder


def copy_of(bias_dir, target):
    target.mkdir(exist_ok=True)
    for name in FILES:
        shutil.copy(bias_dir / name, target / name)
    return target


@pytest.mark.parametrize("name", FILES)
def test_an_empty_file_is_an_error_naming_it_and_what_a_row_needs(tmp_path, name):
    (tmp_path / name).write_bytes(b"")
    read = {"crows_pairs.csv": read_crows_pairs, "winobias.jsonl": read_winobias,
            "stereoset.jsonl": lambda path: read_stereoset(path, "intrasentence")}[name]
    with pytest.raises(ValueError, match=rf"{name} \(.*\) has no usable .*: it is empty\. Each row needs"):
        read(tmp_path / name)


def test_a_slot_spelled_other_than_mask_is_named_in_the_error(bias_dir, tmp_path):
    wino = tmp_path / "winobias.jsonl"
    wino.write_text((bias_dir / "winobias.jsonl").read_text().replace("[MASK]", "<mask>"))
    with pytest.raises(ValueError, match=r"all 761 rows were unusable: 761 without exactly one \[MASK\] in the text; "
                                         r'the slot is written as "<mask>" in some rows: write it as \[MASK\]'):
        read_winobias(wino)
    crows = tmp_path / "crows_pairs.csv"
    crows.write_text((bias_dir / "crows_pairs.csv").read_text().replace("[MASK]", "___"))
    with pytest.raises(ValueError, match=r"crows_pairs.csv .*no usable rows.*the slot is written as \"___\".*Each "
                                         r"row needs a sentence with exactly one \[MASK\] and non-empty mask1"):
        read_crows_pairs(crows)


def test_stereoset_without_rows_of_the_audited_type_says_which_types_it_has(bias_dir, tmp_path):
    lines = [line for line in (bias_dir / "stereoset.jsonl").read_text().splitlines()
             if json.loads(line)["type"] == "intersentence"]
    (tmp_path / "stereoset.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r'no usable "type": "intrasentence" rows: its 2123 rows have the types '
                                         r"\['intersentence'\]"):
        stereoset_audit(context("clm", tmp_path), budget_s=None, kind="intrasentence")


def test_some_unusable_rows_are_dropped_logged_and_stated(bias_dir, tmp_path, caplog):
    lines = (bias_dir / "winobias.jsonl").read_text().splitlines(keepends=True)
    broken = [line.replace("[MASK]", "___") if i % 10 == 0 else line for i, line in enumerate(lines)]  # 77 rows
    (tmp_path / "winobias.jsonl").write_text("".join(broken))
    result = winobias_audit(context("mlm", tmp_path), budget_s=0.5)
    assert result["data"]["rows"] == 761 - 77
    assert result["data"]["rows_dropped"] == {"without exactly one [MASK] in the text": 77}
    assert "77 row(s) of winobias.jsonl were unusable and left out (77 without exactly one [MASK]" in " ".join(
        result["caveats"])
    assert "winobias.jsonl: 77 of 761 rows dropped as unusable" in caplog.text
    full = winobias_audit(context("mlm", bias_dir), budget_s=0.5)
    assert full["data"]["rows_dropped"] == {} and not any("unusable" in c for c in full["caveats"])


def test_an_unusable_file_fails_the_whole_audit_but_a_missing_one_is_not_evaluated(bias_dir, tmp_path, capsys):
    """See the module docstring for why these two cases differ."""
    run = make_pretrain_run(tmp_path, "mlm", with_eval=False)
    folder = copy_of(bias_dir, tmp_path / "bias")
    (folder / "winobias.jsonl").write_bytes(b"")
    before = run.manifest_path.read_bytes()
    with pytest.raises(ValueError, match=r"winobias.jsonl \(.*bias\) has no usable rows: it is empty"):
        audit_run(run.path, bias_data_dir=str(folder), time_budget_s=4, n_boot=50, print_table=False)
    assert main(["audit", str(run.path), "--bias-data-dir", str(folder), "--time-budget", "4", "--n-boot", "50"]) == 2
    assert "winobias.jsonl" in capsys.readouterr().err
    assert run.manifest_path.read_bytes() == before and not (run.path / AUDIT_FILE).exists()

    (folder / "winobias.jsonl").unlink()
    report = audit_run(run.path, bias_data_dir=str(folder), time_budget_s=4, n_boot=50, print_table=False)
    assert set(report["audits"]) == {"seat", "crows_pairs"}
    assert "winobias.jsonl not found" in report["not_evaluated"]["winobias"]


CROWS_HEADER = ",bias_type,sentence,mask1,mask2\n"


def test_a_file_in_another_encoding_is_an_error_naming_it(tmp_path):
    (tmp_path / "crows_pairs.csv").write_bytes((CROWS_HEADER + "0,race,The [MASK] café owner,black,white\n")
                                               .encode("latin-1"))
    with pytest.raises(ValueError, match=r"crows_pairs.csv is not UTF-8 text \(byte 0xe9 at offset .*save it as UTF-8"):
        read_crows_pairs(tmp_path / "crows_pairs.csv")
    (tmp_path / "winobias.jsonl").write_bytes('{"text": "The [MASK] café", "pro_stereotyped": "he"}\n'
                                              .encode("latin-1"))
    with pytest.raises(ValueError, match="winobias.jsonl is not UTF-8 text"):
        read_winobias(tmp_path / "winobias.jsonl")


def test_a_byte_order_mark_is_not_read_into_the_first_column_name(tmp_path):
    """Excel's "CSV UTF-8" starts with a BOM; without utf-8-sig the first column would be '\\ufeffbias_type'."""
    path = tmp_path / "crows_pairs.csv"
    path.write_bytes(b"\xef\xbb\xbf" + b"bias_type,sentence,mask1,mask2\nrace,The [MASK] man,black,white\n")
    assert read_crows_pairs(path) == [{"bias_type": "race", "sentence": "The [MASK] man", "stereo": "black",
                                       "anti": "white"}]


def test_a_header_without_rows_is_called_that(tmp_path):
    (tmp_path / "crows_pairs.csv").write_text(CROWS_HEADER)
    with pytest.raises(ValueError, match="has no usable rows: it has a header but no rows"):
        read_crows_pairs(tmp_path / "crows_pairs.csv")


def test_a_set_in_another_format_is_named_when_the_expected_file_is_missing(tmp_path):
    from hfssl.audit.data import MissingAuditData, resolve_bias_file

    (tmp_path / "crows_pairs.jsonl").write_text('{"sentence": "The [MASK] man"}\n')
    with pytest.raises(MissingAuditData, match=r"crows_pairs.csv not found in .* \(it holds crows_pairs.jsonl, but "
                                               r"this audit reads the .csv format"):
        resolve_bias_file(tmp_path, "crows_pairs.csv")


def test_winobias_rows_whose_pro_stereotyped_pronoun_is_not_an_option_are_dropped(tmp_path):
    """Such a row would otherwise be scored as pro = the stray value against the first option."""
    rows = [{"text": " The [nurse] said [MASK] would help.", "pro_stereotyped": pro, "options": "A. he\nB. she\nC. Both"}
            for pro in ("she", "they", "5", "she")]
    (tmp_path / "winobias.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    kept = read_winobias(tmp_path / "winobias.jsonl")
    assert [(r["pro"], r["anti"]) for r in kept] == [("she", "he"), ("she", "he")]
    assert kept.dropped == {"without pro_stereotyped among the first two options and a second pronoun there": 2}


def test_a_blank_bias_type_is_a_visible_group_not_an_empty_name(tmp_path):
    (tmp_path / "crows_pairs.csv").write_text(CROWS_HEADER + "0,,The [MASK] man,black,white\n"
                                              "1,race,The [MASK] woman,black,white\n")
    assert [r["bias_type"] for r in read_crows_pairs(tmp_path / "crows_pairs.csv")] == ["(bias_type not given)", "race"]
    row = {"type": "intrasentence", "bias_type": None, "context": "A BLANK man.", "stereotype": "A x man.",
           "anti-stereotype": "A y man.", "unrelated": "A z man."}
    (tmp_path / "stereoset.jsonl").write_text(json.dumps(row) + "\n")
    assert read_stereoset(tmp_path / "stereoset.jsonl", "intrasentence")[0]["bias_type"] == "(bias_type not given)"

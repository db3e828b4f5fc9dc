"""Classes only one split has: a warning naming them, the classes macro-F1 averages in run.json and the printed
table, and the same class set for every arm whatever it predicts. Also rows without a text, single-example
classes in the carved test split and in the probe's choice of C, and plot titles without local paths."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hfssl.evaluation import evaluate_run
from hfssl.evaluation.api import format_table
from hfssl.evaluation.labels import carve_test_split
from hfssl.evaluation.probes import _cv_folds, classification_scores, linear_probe
from hfssl.evaluation.protocol import DataOptions, load_labeled_data

from .conftest import sentiment_texts, separable_blobs


def write_csv(path: Path, texts: list[str], labels: list) -> str:
    pd.DataFrame({"text": texts, "label": labels}).to_csv(path, index=False)
    return str(path)


@pytest.fixture
def three_classes(tmp_path: Path) -> dict[str, str]:
    """Training labels 5, 6, 7 (ints not starting at 0); test files without 7, with an extra 8, with other names."""
    texts = sentiment_texts(90, seed=1)[0]
    test = sentiment_texts(30, seed=2)[0]
    return {
        "train": write_csv(tmp_path / "train.csv", texts, [5 + i % 3 for i in range(90)]),
        "no_seven": write_csv(tmp_path / "no7.csv", test, [5 + i % 2 for i in range(30)]),
        "extra_eight": write_csv(tmp_path / "extra8.csv", test, [5 + i % 4 for i in range(30)]),
        "renamed": write_csv(tmp_path / "renamed.csv", test, ["five", "six"] * 15),
    }


def test_macro_f1_averages_the_test_classes_for_every_arm():
    references = np.array([0, 0, 1, 1])
    # Arm b predicts class 2, which has no test example: sklearn's default would average over {0, 1, 2} for b and
    # {0, 1} for a, so the two macro-F1s would average different class sets.
    a, b = np.array([0, 1, 1, 1]), np.array([0, 2, 1, 1])
    assert classification_scores(a, references)["macro_f1"] == pytest.approx((2 / 3 + 0.8) / 2)
    assert classification_scores(b, references)["macro_f1"] == pytest.approx((2 / 3 + 1.0) / 2)


def test_a_class_missing_from_the_test_split_is_named_and_recorded(three_classes, caplog):
    with caplog.at_level(logging.WARNING, logger="hfssl.evaluation.labels"):
        data = load_labeled_data(DataOptions(train_files=[three_classes["train"]],
                                             test_files=[three_classes["no_seven"]]), "text")
    assert "no example of 1 class(es) of the training split: ('7')" in caplog.text
    assert data.description["macro_f1_classes"] == ["5", "6"]
    assert data.description["classes_without_test_examples"] == ["7"]
    assert data.description["classes_without_training_examples"] == []


def test_a_test_class_never_seen_in_training_is_a_warning_not_an_error(three_classes, caplog):
    with caplog.at_level(logging.WARNING, logger="hfssl.evaluation.labels"):
        data = load_labeled_data(DataOptions(train_files=[three_classes["train"]],
                                             test_files=[three_classes["extra_eight"]]), "text")
    assert "7 test example(s) belong to class(es) the training split lacks: ('8')" in caplog.text
    assert data.class_names == ["5", "6", "7", "8"] and set(data.train.labels) == {0, 1, 2}
    assert (data.test.labels == 3).sum() == 7
    assert data.description["classes_without_training_examples"] == ["8"]


def test_test_labels_named_unlike_the_training_labels_are_refused(three_classes):
    with pytest.raises(ValueError, match=r"None of the test labels \('five', 'six'\) is a label of the training "
                                         r"split \('5', '6', '7'\)"):
        load_labeled_data(DataOptions(train_files=[three_classes["train"]], test_files=[three_classes["renamed"]]),
                          "text")


def test_the_result_and_the_table_say_which_classes_macro_f1_averages(text_run, three_classes):
    result = evaluate_run(text_run, "linear-probe", train_files=[three_classes["train"]],
                          test_files=[three_classes["no_seven"]], progress=False, print_table=False)
    assert result["data"]["macro_f1_classes"] == ["5", "6"]
    table = format_table(result)
    assert "Macro-F1 averages the 2 class(es) with test examples (5, 6); left out, without test examples: 7." in table


def test_rows_without_a_text_are_dropped_with_a_count(tmp_path, caplog):
    texts, labels = sentiment_texts(40, seed=1)
    path = write_csv(tmp_path / "train.csv", [None if i % 10 == 0 else t for i, t in enumerate(texts)], labels)
    with caplog.at_level(logging.WARNING, logger="hfssl.evaluation.labels"):
        data = load_labeled_data(DataOptions(train_files=[path]), "text")
    assert "Dropped 4 of 40 training row(s) without a text (column 'text')" in caplog.text
    assert len(data.train) + len(data.test) == 36 and "" not in data.train.examples


def test_the_carved_test_split_stays_stratified_beside_a_single_example_class():
    import datasets

    labels = ["a"] * 20 + ["b"] * 20 + ["c"]
    train, test = carve_test_split(datasets.Dataset.from_dict({"label": labels}), "label", 0.2, seed=0)
    assert sorted(test["label"]) == ["a"] * 4 + ["b"] * 4  # was an unstratified split of all 41 rows
    assert train["label"].count("c") == 1
    tiny = datasets.Dataset.from_dict({"label": ["a", "a", "b", "b", "c", "c"]})
    assert sorted(carve_test_split(tiny, "label", 0.2, seed=0)[1]["label"]) == ["a", "b", "c"]  # one of each
    with pytest.raises(ValueError, match="single example, so no test split can be carved"):
        carve_test_split(datasets.Dataset.from_dict({"label": ["a", "b", "c"]}), "label", 0.2, seed=0)


def test_a_single_example_class_trains_in_every_fold_and_c_is_still_chosen():
    x, y = separable_blobs(n_per_class=30, classes=3)
    x, y = np.concatenate([x, x[:1] + 20]), np.concatenate([y, [3]])
    folds = _cv_folds(y, seed=0)
    assert all(len(y) - 1 in train and len(y) - 1 not in val for train, val in folds)
    x_test, y_test = separable_blobs(n_per_class=10, classes=3, seed=1)
    selection = linear_probe(x, y, x_test, y_test)["protocol"]["selection"]
    assert "cross-validation" in selection and "1 class(es) with a single example" in selection  # was "skipped"


def test_plot_titles_name_the_data_without_local_paths(text_run, three_classes):
    from hfssl.evaluation.api import plot_title

    result = evaluate_run(text_run, "label-efficiency", train_files=[three_classes["train"]], fractions=[0.5, 1.0],
                          seeds=2, progress=False, print_table=False)
    assert plot_title(result) == "label-efficiency on files: train.csv\n(mean ± std over 2 seeds)"
    assert str(Path(three_classes["train"]).parent) not in plot_title(result)  # the PNG is published with the card

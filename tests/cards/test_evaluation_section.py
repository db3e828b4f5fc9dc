"""The card's evaluation section: plot links that resolve where the card is read, numbers at one precision, the
labelled examples and seeds of every curve point, and the classes macro-F1 averages."""

from __future__ import annotations

import logging
import re

from huggingface_hub import metadata_load

from hfssl.cards import card_text, render_card
from hfssl.hub.publish import publish_run

from . import make_pretrain_run, one_torch_thread  # noqa: F401

IMAGE_LINK = re.compile(r"!\[[^\]]*\]\(([^)]+)\)")


def test_plot_links_resolve_next_to_the_card_in_the_run_and_in_the_published_repo(tmp_path):
    run = make_pretrain_run(tmp_path, "mae")
    card = render_card(run.path)
    links = IMAGE_LINK.findall(card.read_text())
    assert sorted(links) == ["eval/knn.png", "eval/label-efficiency.png", "eval/linear-probe.png"]
    for link in links:  # model/README.md links into model/eval/, a copy of the run's eval/ plot
        assert (card.parent / link).read_bytes() == (run.path / link).read_bytes()
    preview = publish_run(run.path, "alice/tiny-mae", dry_run=True, dry_run_dir=tmp_path / "preview")["folder"]
    published = (tmp_path / "preview" / "README.md").read_text()
    assert preview and IMAGE_LINK.findall(published) == links
    assert all((tmp_path / "preview" / link).is_file() for link in links)


def test_plot_links_do_not_depend_on_the_working_directory(tmp_path, monkeypatch):
    run = make_pretrain_run(tmp_path, "simclr")
    monkeypatch.chdir(run.path)  # inside the run, "eval/knn.png" exists relative to the working directory
    text = card_text(".")
    assert "](eval/knn.png)" in text and "](knn.png)" not in text


def test_a_missing_plot_is_not_linked_and_stale_copies_go(tmp_path, caplog):
    run = make_pretrain_run(tmp_path, "mae")
    render_card(run.path)
    (run.eval_dir / "knn.png").unlink()
    with caplog.at_level(logging.WARNING, logger="hfssl.cards.render"):
        text = render_card(run.path).read_text()
    assert "eval/knn.png" not in text and "eval/linear-probe.png" in text
    assert "knn" in caplog.text and "leaves it out" in caplog.text
    assert not (run.model_dir / "eval" / "knn.png").exists()  # the copy of the plot the card dropped is removed
    assert (run.model_dir / "eval" / "linear-probe.png").is_file()


def _curve(run, seeds, points):
    manifest = run.read_manifest()
    curve = manifest["eval"]["label-efficiency"]
    curve["seeds"] = seeds
    curve["curves"] = {"pretrained": points, "random-init": points}
    run.update_manifest(**manifest)


def test_label_efficiency_numbers_have_one_precision_with_examples_and_seeds(tmp_path):
    run = make_pretrain_run(tmp_path, "mae")
    point = {"fraction": 0.01, "examples": 10, "accuracies": [0.37, 0.41, 0.35], "mean": 0.37870370370370,
             "std": 0.0127300012}
    full = {"fraction": 1.0, "examples": 1437, "accuracies": [0.8583] * 3, "mean": 0.8583333333, "std": 0.0}
    _curve(run, [0, 1, 2], [point, full])
    text = render_card(run.path).read_text()
    section = text.split("### Label efficiency")[1].split("###")[0]
    assert "| label fraction | labelled examples | pretrained | random-init |" in section
    assert "| 0.01 | 10 | 0.3787 ± 0.0127 | 0.3787 ± 0.0127 |" in section  # was 0.3787 ± 0.01273
    assert "| 1 | 1,437 | 0.8583 ± 0.0000 |" in section  # was 0.8583 ± 0
    assert "Mean ± sample standard deviation over 3 seeds (0, 1, 2)." in section
    names = [m["name"] for m in metadata_load(run.model_dir / "README.md")["model-index"][0]["results"][0]["metrics"]]
    assert "linear-probe accuracy with 1% of the labels" in names


def test_one_seed_shows_no_spread_and_small_fractions_keep_their_name(tmp_path):
    run = make_pretrain_run(tmp_path, "mae")
    points = [{"fraction": f, "examples": n, "accuracies": [a], "mean": a, "std": 0.0}
              for f, n, a in ((0.005, 7, 0.31), (0.01, 14, 0.42))]
    _curve(run, [0], points)
    text = render_card(run.path).read_text()
    assert "| 0.005 | 7 | 0.3100 | 0.3100 |" in text and "± 0.0000" not in text.split("### Label efficiency")[1]
    assert "One seed (0): no spread measured." in text
    index = metadata_load(run.model_dir / "README.md")["model-index"][0]["results"][0]["metrics"]
    names = [m["name"] for m in index]
    assert "linear-probe accuracy with 0.5% of the labels" in names  # was "0%", twice with 0.004
    assert len(names) == len(set(names))


def test_arms_tables_show_four_decimals_the_k_used_and_the_macro_f1_classes(tmp_path):
    run = make_pretrain_run(tmp_path, "mae")
    manifest = run.read_manifest()
    knn = manifest["eval"]["knn"]
    knn["arms"]["pretrained"]["by_k"]["200"] = {"accuracy": 0.85, "macro_f1": 0.851}
    knn["arms"]["pretrained"]["protocol"] = {"k_requested": [20, 200], "k_used": [20, 80]}
    manifest["eval"]["linear-probe"]["data"] = {
        **manifest["eval"]["linear-probe"]["data"], "macro_f1_classes": ["cat", "dog"],
        "classes_without_test_examples": ["bird"], "classes_without_training_examples": []}
    run.update_manifest(**manifest)
    text = render_card(run.path).read_text()
    assert "| pretrained | k=200 (80 used: every training example) | 0.8500 | 0.8510 |" in text
    assert "| pretrained | k=20 | 0.8000 | 0.7900 |" in text
    probe = text.split("### Linear probe")[1].split("###")[0]
    assert "Macro-F1 averages the 2 class(es) with test examples (cat, dog); left out, without test examples: bird." \
        in probe
    assert "Arms: random-init: the same probe on a randomly initialized copy" in probe


def test_a_curve_which_reports_accuracy_only_carries_no_macro_f1_note(tmp_path):
    run = make_pretrain_run(tmp_path, "mae")
    manifest = run.read_manifest()
    coverage = {"macro_f1_classes": ["cat", "dog"], "classes_without_test_examples": ["bird"],
                "classes_without_training_examples": []}
    for protocol in ("linear-probe", "label-efficiency"):
        manifest["eval"][protocol]["data"] = {**manifest["eval"][protocol]["data"], **coverage}
    run.update_manifest(**manifest)
    text = render_card(run.path).read_text()
    assert "Macro-F1 averages" in text.split("### Linear probe")[1].split("###")[0]
    assert "Macro-F1" not in text.split("### Label efficiency")[1].split("###")[0]


def test_the_fine_tuned_classifiers_table_names_classes_one_split_lacks(tmp_path):
    run = make_pretrain_run(tmp_path, "mae")
    run.update_manifest(finetune={"metrics": {"accuracy": 0.6, "macro_f1": 0.4}, "train_examples": 40,
                                  "test_examples": 10, "macro_f1_classes": ["cat", "dog", "fox"],
                                  "test_missing_classes": ["bird"], "train_missing_classes": ["fox"]})
    block = render_card(run.path).read_text().split("Fine-tuned classifier on its test split")[1].split("###")[0]
    assert ("Macro-F1 averages the 3 class(es) with test examples (cat, dog, fox); left out, without test examples: "
            "bird; never in training, so never predicted (F1 0): fox.") in block


def test_summary_and_hyperparameters_read_as_sentences(tmp_path):
    run = make_pretrain_run(tmp_path, "mae", with_eval=False)
    manifest = run.read_manifest()
    manifest["arguments"]["training"].update(num_train_epochs=3, warmup_steps=0.05)
    del manifest["model"]["parameters"]
    run.update_manifest(**manifest)
    text = render_card(run.path).read_text()
    assert "\nAn image model pretrained with hfssl, without labels, by self-supervised masked" in text
    assert "| num_train_epochs |" not in text  # max_steps=40 overrides it
    assert "| warmup (fraction of the steps) | 0.05 |" in text
    assert "(hfssl's default (" not in text


def test_test_examples_also_in_training_are_told_under_each_table_that_has_them(tmp_path):
    run = make_pretrain_run(tmp_path, "mae")
    manifest = run.read_manifest()
    manifest["eval"]["knn"]["data"] = {**manifest["eval"]["knn"]["data"], "test_examples_also_in_training": 16}
    run.update_manifest(**manifest)
    text = render_card(run.path).read_text()
    knn = text.split("### k-nearest-neighbour classification")[1].split("###")[0]
    assert "16 test example(s) also in the training data (identical input), which inflates the scores" in knn
    assert "also in the training data" not in text.split("### Linear probe")[1].split("###")[0]

"""Model cards render from run.json for every objective family, parse back, and tell the truth."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from huggingface_hub import ModelCard, metadata_load

from hfssl.cards import DEFAULT_LICENSE, card_text, render_card, template_text
from hfssl.cards.command import cmd_card
from hfssl.hub.metadata import PLACEHOLDER, check_card
from hfssl.hub.publish import REPO_ID_SLOT, build_repo_files

from . import ALL_KINDS, make_pretrain_run, make_run, one_torch_thread  # noqa: F401

PIPELINE_TAGS = {"mlm": "fill-mask", "clm": "text-generation", "simcse": "feature-extraction",
                 "mlm+simcse": "feature-extraction", "mae": "image-feature-extraction",
                 "simclr": "image-feature-extraction", "mae+dino": "image-feature-extraction",
                 "finetune-text": "text-classification", "finetune-image": "image-classification",
                 "adapter-text": "text-classification"}
SECTIONS = ("## Model details", "## Intended uses and out-of-scope uses", "## How to get started", "## Training data",
            "## Training procedure", "## Evaluation", "## Bias audit", "## Limitations", "## Citation")


def snippet_of(text: str) -> str:
    """The Python code block of the card's "How to get started" section."""
    section = text.split("## How to get started", 1)[1]
    return re.search(r"```python\n(.*?)\n```", section, re.S).group(1)


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_card_renders_for_every_objective_and_parses_back(kind, tmp_path):
    run = make_run(tmp_path, kind)
    path = render_card(run.path)
    assert path == run.model_dir / "README.md"
    text = path.read_text(encoding="utf-8")
    check_card(text)  # the publisher's offline checks: license id, model-index shape, no null, no placeholder
    assert PLACEHOLDER not in text and all(s in text for s in SECTIONS)
    metadata = metadata_load(path)
    assert metadata["library_name"] == ("peft" if kind.startswith("adapter") else "transformers")
    assert metadata["pipeline_tag"] == PIPELINE_TAGS[kind]
    assert metadata["license"] == DEFAULT_LICENSE and {"hfssl", "self-supervised"} <= set(metadata["tags"])
    assert ModelCard.load(path).data.pipeline_tag == PIPELINE_TAGS[kind]
    assert REPO_ID_SLOT in snippet_of(text)  # the publisher fills in the repo id
    assert str(tmp_path) not in text and "/tmp/" not in text  # no local paths (run.json has some)


def test_model_index_round_trips_the_evaluation_numbers(tmp_path):
    run = make_pretrain_run(tmp_path, "mae")
    card = ModelCard.load(render_card(run.path))
    results = {r.metric_name: r.metric_value for r in card.data.eval_results}
    probe = run.read_manifest()["eval"]["linear-probe"]["arms"]["pretrained"]
    assert results["linear-probe accuracy"] == probe["accuracy"] and results["linear-probe macro-F1"] == 0.8601
    assert results["kNN accuracy (k=20)"] == 0.8
    assert results["linear-probe accuracy with 10% of the labels"] == 0.7
    assert {(r.task_type, r.dataset_type) for r in card.data.eval_results} == {("image-classification", "digits")}
    index = metadata_load(run.model_dir / "README.md")["model-index"]
    assert index[0]["name"] == "mae" and index[0]["results"][0]["metrics"][0]["value"] == probe["accuracy"]


def test_numbers_come_from_run_json_alone(tmp_path):
    run = make_pretrain_run(tmp_path, "mlm")
    manifest = run.read_manifest()
    manifest["eval"]["linear-probe"]["arms"]["pretrained"]["accuracy"] = 0.6543
    manifest["pretrain"]["tokens_seen"] = 123457
    run.update_manifest(**manifest)
    text = render_card(run.path).read_text()
    assert "| pretrained | C=1 | 0.6543 |" in text and "| tokens seen | 123,457 |" in text
    assert metadata_load(run.model_dir / "README.md")["model-index"][0]["results"][0]["metrics"][0]["value"] == 0.6543


def test_evaluation_tables_plot_and_not_evaluated_list(tmp_path):
    evaluated = make_pretrain_run(tmp_path / "a", "simclr")
    text = render_card(evaluated.path).read_text()
    assert "| 0.1 | 8 | 0.7000 ± 0.0200 | 0.5000 ± 0.0200 |" in text  # label-efficiency table, 4 decimals
    assert "![Label efficiency (linear probe with a fraction of the labels)](eval/label-efficiency.png)" in text
    assert "- Fine-tuning on a labelled task" in text.split("**Not evaluated:**")[1]
    bare = make_pretrain_run(tmp_path / "b", "clm", with_eval=False)
    text = render_card(bare.path).read_text()
    missing = text.split("**Not evaluated:**")[1].split("## Bias audit")[0]
    assert "Linear probe on frozen features" in missing and "Label efficiency" in missing
    assert "model-index" not in metadata_load(bare.model_dir / "README.md")


def test_training_data_hub_ids_and_local_sources(tmp_path):
    hub = make_pretrain_run(tmp_path / "a", "mlm", source="wikimedia/wikipedia")
    assert metadata_load(render_card(hub.path))["datasets"] == ["wikimedia/wikipedia"]
    local = make_pretrain_run(tmp_path / "b", "mlm", source=["/data/corpus/part0.txt", "/data/corpus/part1.txt"])
    text = render_card(local.path).read_text()
    assert "datasets" not in metadata_load(local.model_dir / "README.md")
    assert "| name | part0.txt, part1.txt |" in text and "| fingerprint | 0123456789abcdef |" in text
    assert "/data/corpus" not in text


def test_the_builtin_fashion_mnist_links_its_hub_dataset(tmp_path):
    # The built-in reads Fashion-MNIST's IDX files; the same data is zalando-datasets/fashion_mnist on the Hub.
    run = make_pretrain_run(tmp_path, "mae", source="fashion-mnist")
    manifest = run.read_manifest()
    manifest["eval"]["linear-probe"]["data"] = {**manifest["eval"]["linear-probe"]["data"],
                                                "source": "fashion-mnist:/data/fashion_mnist"}
    run.update_manifest(**manifest)
    metadata = metadata_load(render_card(run.path))
    assert metadata["datasets"] == ["zalando-datasets/fashion_mnist"]
    probe = next(r for r in metadata["model-index"][0]["results"]
                 if any(m["name"] == "linear-probe accuracy" for m in r["metrics"]))
    assert probe["dataset"]["type"] == "zalando-datasets/fashion_mnist"


def test_energy_estimate_in_grams_or_not_measured(tmp_path):
    run = make_pretrain_run(tmp_path, "mlm")
    text = render_card(run.path).read_text()
    # 2 threads x 10 W x 36 s = 0.2 Wh; x 475 g/kWh = 0.095 g
    assert "about 0.2 Wh and 0.095 g CO2e" in text and "10 W each" in text and "475 g CO2e per kWh" in text
    manifest = run.read_manifest()
    del manifest["pretrain"]["wall_time_s"]
    run.update_manifest(**manifest)
    assert "were not measured" in render_card(run.path).read_text()


def test_license_argument_run_json_and_bad_ids(tmp_path):
    run = make_pretrain_run(tmp_path, "mlm", with_eval=False)
    assert metadata_load(render_card(run.path, license="mit"))["license"] == "mit"
    run.update_manifest(license="cc-by-4.0")
    text = render_card(run.path).read_text()
    assert "license: cc-by-4.0" in text and "recorded in run.json" in text
    with pytest.raises(ValueError, match="not a Hub license id"):
        render_card(run.path, license="Apache 2")


def test_default_license_is_stated_as_a_default(tmp_path):
    text = render_card(make_pretrain_run(tmp_path, "mae", with_eval=False).path).read_text()
    assert "apache-2.0 (hfssl's default" in text and "not derived from the training data" in text


def test_repo_id_fills_the_snippet_and_title(tmp_path):
    run = make_pretrain_run(tmp_path, "clm", with_eval=False)
    text = card_text(run.path, repo_id="alice/tiny-clm")
    assert "# tiny-clm" in text and 'model="alice/tiny-clm"' in text and REPO_ID_SLOT not in text


def test_base_model_is_a_hub_id_never_a_local_path(tmp_path):
    run = make_run(tmp_path, "finetune-text")
    assert "base_model" not in metadata_load(render_card(run.path))  # the parent is local and unpublished
    parent = Path(run.read_manifest()["finetune"]["parent"]["path"])
    manifest = json.loads((parent / "run.json").read_text())
    (parent / "run.json").write_text(json.dumps({**manifest, "publish": {"repo_id": "alice/tiny-mlm"}}))
    metadata = metadata_load(render_card(run.path))
    assert metadata["base_model"] == "alice/tiny-mlm"
    assert "| classes | 0: negative, 1: positive |" in (run.model_dir / "README.md").read_text()


def test_publisher_uses_the_rendered_card_with_the_repo_id(tmp_path):
    run = make_pretrain_run(tmp_path, "mlm")
    render_card(run.path)
    readme = build_repo_files(run, "alice/tiny-mlm")["README.md"].decode()
    assert 'model="alice/tiny-mlm"' in readme and REPO_ID_SLOT not in readme
    assert "## Bias audit" in readme  # ours, not the publisher's minimal fallback card


def test_publisher_sets_the_adapter_base_model_in_the_rendered_card(tmp_path):
    run = make_run(tmp_path, "adapter-text")
    render_card(run.path)
    parent = Path(run.read_manifest()["finetune"]["parent"]["path"])
    manifest = json.loads((parent / "run.json").read_text())
    (parent / "run.json").write_text(json.dumps({**manifest, "publish": {"repo_id": "alice/tiny-mlm"}}))
    files = build_repo_files(run, "alice/tiny-lora")
    metadata = metadata_load_text(files["README.md"].decode())
    assert metadata["base_model"] == "alice/tiny-mlm" and metadata["library_name"] == "peft"
    assert 'PeftConfig.from_pretrained("alice/tiny-lora")' in files["README.md"].decode()
    assert "ships in the base model's repository" in files["README.md"].decode()  # not in the adapter's
    assert json.loads(files["adapter_config.json"])["base_model_name_or_path"] == "alice/tiny-mlm"


def metadata_load_text(text: str) -> dict:
    from hfssl.hub.metadata import split_front_matter

    return split_front_matter(text)[0]


def test_template_ships_in_the_package_and_matches_model_cards(tmp_path, monkeypatch):
    repo_copy = Path(__file__).resolve().parents[2] / "model_cards" / "hfssl_model_card.md"
    assert template_text() == repo_copy.read_text(encoding="utf-8")
    monkeypatch.chdir(tmp_path)  # loaded through importlib.resources, not relative to the working directory
    run = make_pretrain_run(tmp_path, "mae", with_eval=False)
    assert render_card(run.path).is_file()


def test_command_writes_the_card_and_refuses_a_missing_run(tmp_path, capsys):
    run = make_pretrain_run(tmp_path, "simcse", with_eval=False)
    assert cmd_card([str(run.path), "--license", "mit", "--repo-id", "alice/sim"]) == 0
    assert "Model card written" in capsys.readouterr().out
    assert metadata_load(run.model_dir / "README.md")["license"] == "mit"
    with pytest.raises(FileNotFoundError, match="run.json"):
        cmd_card([str(tmp_path / "nothing")])

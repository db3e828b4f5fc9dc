"""`hfssl demo` arguments and launch, and how spaces/app.py finds the model it shows."""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

import pytest

from hfssl.demo.command import add_demo_arguments, cmd_demo, run_demo_from_args

SPACE_APP = Path(__file__).resolve().parents[2] / "spaces" / "app.py"


def _parse(*argv: str) -> argparse.Namespace:
    return add_demo_arguments(argparse.ArgumentParser()).parse_args(argv)


def test_arguments_and_defaults():
    args = _parse("runs/my-mlm")
    assert (args.model, args.host, args.port, args.share, args.kind, args.pooling) == (
        "runs/my-mlm", "127.0.0.1", 7860, False, None, "mean")
    args = _parse("me/my-mae", "--share", "--port", "8000", "--host", "0.0.0.0", "--kind", "gallery")
    assert (args.share, args.port, args.host, args.kind) == (True, 8000, "0.0.0.0", "gallery")
    with pytest.raises(SystemExit):
        _parse("runs/x", "--kind", "chat")


def test_cmd_demo_builds_and_launches_with_the_given_address(monkeypatch, mlm_run):
    calls = {}

    def fake_launch(self, **kwargs):
        calls.update(kwargs, blocks=self)

    monkeypatch.setattr("gradio.Blocks.launch", fake_launch)
    assert cmd_demo([str(mlm_run), "--port", "7999", "--host", "127.0.0.2", "--share"]) == 0
    assert (calls["server_name"], calls["server_port"], calls["share"]) == ("127.0.0.2", 7999, True)
    assert calls["max_file_size"] == "50mb"
    assert "fill_mask" in {d.get("api_name") for d in calls["blocks"].config["dependencies"]}


def test_missing_run_and_busy_port_are_user_errors(monkeypatch, mlm_run, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        run_demo_from_args(_parse(str(tmp_path / "nowhere" / "run")))

    def busy(self, **kwargs):
        raise OSError("Cannot find empty port in range: 7860-7860.")

    monkeypatch.setattr("gradio.Blocks.launch", busy)
    with pytest.raises(ValueError, match="Pass another --port"):
        run_demo_from_args(_parse(str(mlm_run)))


@pytest.mark.parametrize(("flags", "message"), [
    (["--port", "99999"], "--port 99999 is not a port number"),  # was an OverflowError from the socket
    (["--kind", "reconstruction"], ("is a text model; the reconstruction demo needs an image model. Kinds for text "
                                    "models: fill-mask, generation, classification, gallery")),  # was a message about config.ssl
])
def test_a_port_or_kind_that_cannot_work_is_named_before_loading(mlm_run, flags, message):
    with pytest.raises(ValueError, match=message):
        run_demo_from_args(_parse(str(mlm_run), *flags))


def test_a_file_is_not_a_run(mlm_run):
    with pytest.raises(FileNotFoundError, match="config.json is a file; pass the run directory"):
        run_demo_from_args(_parse(str(mlm_run / "model" / "config.json")))


@pytest.fixture
def space_app():
    spec = importlib.util.spec_from_file_location("hfssl_space_app", SPACE_APP)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_space_reads_the_model_from_env_json_or_readme(space_app, tmp_path, monkeypatch):
    for name in space_app.ENV_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValueError, match="HFSSL_MODEL_ID"):
        space_app.resolve_model_id(tmp_path)
    (tmp_path / "README.md").write_text("---\ntitle: x\nmodels:\n- me/from-readme\n---\n# Demo\n")
    assert space_app.resolve_model_id(tmp_path) == "me/from-readme"
    (tmp_path / "hfssl_space.json").write_text(json.dumps({"model_id": "me/from-json"}))
    assert space_app.resolve_model_id(tmp_path) == "me/from-json"
    monkeypatch.setenv("HFSSL_MODEL", "me/from-env")
    assert space_app.resolve_model_id(tmp_path) == "me/from-env"
    monkeypatch.setenv("HFSSL_MODEL_ID", "me/from-publisher-variable")
    assert space_app.resolve_model_id(tmp_path) == "me/from-publisher-variable"


def test_space_readme_shipped_here_has_no_model_yet(space_app, monkeypatch):
    for name in space_app.ENV_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    if (SPACE_APP.parent / "hfssl_space.json").exists():
        pytest.skip("a published hfssl_space.json sits beside spaces/app.py")
    with pytest.raises(ValueError, match="No model to show"):
        space_app.resolve_model_id()


def test_space_main_launches_the_demo_of_the_resolved_model(space_app, monkeypatch, mae_run):
    launched = {}
    monkeypatch.setenv("HFSSL_MODEL_ID", str(mae_run))
    monkeypatch.setattr("gradio.Blocks.launch", lambda self, **kwargs: launched.update(kwargs, demo=self))
    space_app.main()
    assert launched["server_name"] is None and launched["server_port"] is None  # the Space's variables decide
    names = {d.get("api_name") for d in launched["demo"].config["dependencies"]}
    assert "reconstruct" in names

"""A user demos Hub ids that cannot be shown: each is one line naming the problem and the fix (exit 2 from the CLI),
not transformers' paragraph about huggingface.co, nor "Unrecognized model" for a repository whose main branch is
empty because the run went to another branch."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from hfssl.demo import load_demo_model
from hfssl.hub.publish import publish_run

from .conftest import TOKEN, USER


@pytest.fixture
def hub_session(hub, online, monkeypatch):
    """This process's huggingface_hub reads from `hub` with no token (as HF_ENDPOINT set before the import would)."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", hub.endpoint)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_IMPLICIT_TOKEN", True)
    return hub


def _one_line_error(ref: str) -> str:
    with pytest.raises(FileNotFoundError) as caught:
        load_demo_model(ref)
    message = str(caught.value)
    assert "\n" not in message, message
    return message


def test_a_missing_run_path_or_hub_id_is_one_line(hub_session):
    # `runs/x` has one slash, so a run directory that does not exist is looked up on the Hub too.
    for ref in ("runs/no-such-run", f"{USER}/no-such-model"):
        message = _one_line_error(ref)
        assert f"{ref} is no folder here and no model on {hub_session.endpoint}" in message
        assert "huggingface.co" not in message and "hf auth login" in message


def test_a_private_model_without_a_token_is_one_line(hub_session, run):
    publish_run(run.path, f"{USER}/secret", endpoint=hub_session.endpoint, token=TOKEN, private=True)
    assert "HF_TOKEN" in _one_line_error(f"{USER}/secret")


def test_a_model_published_to_a_branch_only_names_the_branch_rule(hub_session, run):
    publish_run(run.path, f"{USER}/branchy", endpoint=hub_session.endpoint, token=TOKEN, revision="exp1")
    assert set(hub_session.files(f"{USER}/branchy")) <= {".gitattributes"}
    message = _one_line_error(f"{USER}/branchy")
    assert "holds no model on its main branch" in message and "--revision" in message


def test_cli_demo_of_a_missing_hub_id_exits_2_with_one_line(hub, tmp_path):
    env = {**os.environ, "HF_ENDPOINT": hub.endpoint, "HF_HUB_OFFLINE": "0", "HF_HOME": str(tmp_path / "hf_home")}
    env.pop("HF_TOKEN", None)
    done = subprocess.run([sys.executable, "-m", "hfssl.cli", "demo", f"{USER}/nothing", "--port", "7"],
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    expected = (f"hfssl demo: error: {USER}/nothing is no folder here and no model on {hub.endpoint} that this "
                "session can read: pass an existing run directory (runs/<name>), a model folder or a Hub id "
                "owner/name; for a private model log in with `hf auth login` or set HF_TOKEN.")
    assert lines == [expected], done.stderr

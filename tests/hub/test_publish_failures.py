"""A failed publish creates no revision and says why; the token never appears in logs, output, files or the repo."""

from __future__ import annotations

import json
import logging

import pytest

from hfssl.hub import PublishError, publish_run
from hfssl.hub.command import cmd_publish

from .conftest import READ_TOKEN, TOKEN, USER

pytestmark = pytest.mark.usefixtures("online")


def _publish(run, hub, repo, **kwargs):
    return publish_run(run.path, f"{USER}/{repo}", endpoint=hub.endpoint, **{"token": TOKEN, **kwargs})


def test_a_5xx_answer_is_retried_and_the_publish_lands_once(hub, run):
    hub.faults.fail_next("commit", status=503)
    result = _publish(run, hub, "retried", retry_for_s=30)
    assert hub.routes_called().count("commit") == 2
    assert hub.revisions(f"{USER}/retried") == [result["commit_sha"], hub.revisions(f"{USER}/retried")[-1]]


def test_a_lost_answer_after_the_commit_landed_adds_no_second_commit(hub, run):
    hub.faults.drop_next("commit", after_handling=True)
    result = _publish(run, hub, "lost-answer", retry_for_s=30)
    assert len(hub.revisions(f"{USER}/lost-answer")) == 2  # the Hub's initial commit and ours, once
    assert hub.revisions(f"{USER}/lost-answer")[0] == result["commit_sha"]


def test_a_connection_dropped_mid_commit_creates_no_revision(hub, run):
    first = _publish(run, hub, "dropped")
    (run.eval_dir / "knn.json").write_text(json.dumps({"accuracy": 0.4}))
    hub.faults.drop_next("commit", times=5)
    with pytest.raises(PublishError, match="unreachable or failing") as raised:
        _publish(run, hub, "dropped", retry_for_s=0)
    assert "Nothing was published" in str(raised.value)
    assert hub.revisions(f"{USER}/dropped")[0] == first["commit_sha"]
    assert run.read_manifest()["publish"]["commit_sha"] == first["commit_sha"]


def test_an_invalid_token_gives_a_clear_401_message_and_creates_nothing(hub, run):
    bad = "hf_InvalidToken0123456789abcdefghij"
    with pytest.raises(PublishError, match="rejected the token \\(401\\)") as raised:
        _publish(run, hub, "nope", token=bad)
    assert bad not in str(raised.value) and "HF_TOKEN" in str(raised.value)
    assert hub.store.repos == {}
    assert "publish" not in run.read_manifest()


def test_a_token_without_write_rights_names_the_namespace(hub, run):
    with pytest.raises(PublishError, match=f"lacks write rights on the namespace '{USER}' \\(403\\)"):
        _publish(run, hub, "read-only", token=READ_TOKEN)
    assert hub.store.repos == {}


def test_no_token_at_all_fails_before_any_request(hub, run):
    with pytest.raises(ValueError, match="No Hugging Face token"):
        _publish(run, hub, "anonymous", token=None)
    assert hub.requests == []


def test_metadata_the_hub_rejects_uploads_nothing(hub, run):
    first = _publish(run, hub, "rejected")
    (run.eval_dir / "knn.json").write_text(json.dumps({"accuracy": 0.4}))
    hub.faults.fail_next("validate", status=400, message='"license" is not a valid license id')
    with pytest.raises(PublishError, match="rejected the card's metadata.*nothing was uploaded") as raised:
        _publish(run, hub, "rejected")
    assert "is not a valid license id" in str(raised.value)
    routes = hub.routes_called()
    assert "preupload" not in routes[routes.index("validate", routes.index("commit") + 1):]
    assert hub.revisions(f"{USER}/rejected")[0] == first["commit_sha"]


@pytest.mark.parametrize(
    ("card", "message"),
    [
        ("---\nlicense: not-a-license\n---\n# x\n", "license"),
        ("---\nlicense: mit\n---\n# x\n\n[More Information Needed]\n", "placeholder"),
        ("# x\nno header\n", "no YAML metadata header"),
    ],
)
def test_an_invalid_card_fails_before_any_request(hub, run, card, message):
    (run.model_dir / "README.md").write_text(card)
    with pytest.raises(ValueError, match=message):
        _publish(run, hub, "bad-card")
    assert hub.requests == []


def test_the_card_stage_readme_is_published_with_the_repo_id_filled_in(hub, run):
    card = "---\nlicense: apache-2.0\nlibrary_name: transformers\n---\n# A rendered card\nLoad {{repo_id}}.\n"
    (run.model_dir / "README.md").write_text(card)
    _publish(run, hub, "carded")
    assert hub.files(f"{USER}/carded")["README.md"].decode() == card.replace("{{repo_id}}", f"{USER}/carded")


def test_offline_mode_is_a_clear_error(hub, run, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(PublishError, match="HF_HUB_OFFLINE"):
        _publish(run, hub, "offline")
    assert hub.requests == []


def test_the_token_never_appears_in_logs_output_files_or_the_repo(hub, run, tmp_path, monkeypatch, caplog, capsys):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    caplog.set_level(logging.DEBUG)
    assert cmd_publish([str(run.path), "--repo-id", f"{USER}/secret-safe"]) == 0
    assert cmd_publish([str(run.path), "--repo-id", f"{USER}/secret-safe", "--dry-run",
                        "--dry-run-dir", str(tmp_path / "preview")]) == 0
    monkeypatch.setenv("HF_TOKEN", "hf_AnotherBadToken0123456789abcdefgh")
    assert cmd_publish([str(run.path), "--repo-id", f"{USER}/secret-safe"]) == 1
    out = capsys.readouterr()
    assert "Published" in out.out and "401" in out.err
    for text in (caplog.text, out.out, out.err):
        assert TOKEN not in text and "hf_AnotherBadToken" not in text
    for folder in (run.path, tmp_path / "preview"):
        for path in folder.rglob("*"):
            assert not path.is_file() or TOKEN.encode() not in path.read_bytes(), path
    for path, content in hub.files(f"{USER}/secret-safe").items():
        assert TOKEN.encode() not in content and b"hf_SecretFromTrainingArgs" not in content, path
    assert run.read_manifest()["publish"]["endpoint"] == hub.endpoint


def test_an_unreachable_hub_is_a_clear_error_after_the_retry_budget(run):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{sock.getsockname()[1]}"  # nothing listens here once the socket closes
    with pytest.raises(PublishError, match="unreachable or failing for 1 s.*Nothing was published"):
        publish_run(run.path, f"{USER}/x", endpoint=endpoint, token=TOKEN, retry_for_s=1)
    assert "publish" not in run.read_manifest()

"""Failure paths of `hfssl publish` / `publish-space` against the local Hub: a repository the failed publish created
is deleted again (one that existed never is), each Hub failure says what happened and what to do, and broken run
directories or endpoints are refused before any request."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import threading
import time

import pytest
from huggingface_hub import HfApi

from hfssl.cli import main as cli_main
from hfssl.hub import PublishError, publish_run, publish_space
from hfssl.hub.client import Target, explain
from hfssl.hub.space import default_spaces_dir

from .conftest import READ_TOKEN, TOKEN, USER

pytestmark = pytest.mark.usefixtures("online")


def _publish(run, hub, repo, **kwargs):
    return publish_run(run.path, f"{USER}/{repo}", endpoint=hub.endpoint, **{"token": TOKEN, "retry_for_s": 0, **kwargs})


def _api(hub) -> HfApi:
    return HfApi(endpoint=hub.endpoint, token=TOKEN)


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        (lambda f: f.fail_next("commit", 422, message="eval/curve.png is not allowed"),
         r"rejected the commit \(422\).*eval/curve.png is not allowed.*Nothing was published"),
        (lambda f: f.fail_next("commit", 413, message="Payload Too Large"),
         r"too large \(413\).*largest file is model.safetensors"),
        (lambda f: f.fail_next("preupload", 403, message="forbidden"), r"lacks write rights.*\(403\)"),
        (lambda f: f.drop_next("commit", times=3), r"connection closed before the Hub answered"),
    ],
    ids=["file-rejected", "too-large", "forbidden", "interrupted"],
)
def test_a_failed_publish_deletes_the_repository_it_created(hub, run, fault, message):
    fault(hub.faults)
    with pytest.raises(PublishError, match=message) as raised:
        _publish(run, hub, "new")
    assert f"The repository {hub.endpoint}/{USER}/new, which this publish had created, was deleted again." in str(
        raised.value)
    assert hub.store.repos == {}
    assert "publish" not in run.read_manifest()


def test_a_failed_publish_to_a_new_branch_deletes_the_new_repository_too(hub, run):
    hub.faults.fail_next("commit", 422, message="rejected")
    with pytest.raises(PublishError, match="deleted again"):
        _publish(run, hub, "branched", revision="dev")
    assert hub.store.repos == {}


@pytest.mark.parametrize("holds", ["nothing", "a publish"])
def test_a_failed_publish_never_deletes_a_repository_that_existed(hub, run, holds):
    _api(hub).create_repo(f"{USER}/kept")
    before = _publish(run, hub, "kept")["commit_sha"] if holds == "a publish" else None
    (run.eval_dir / "knn.json").write_text(json.dumps({"accuracy": 0.4}))
    hub.faults.fail_next("commit", 422, message="rejected")
    with pytest.raises(PublishError, match=r"\(422\)") as raised:
        _publish(run, hub, "kept")
    assert "deleted" not in str(raised.value) and "created" not in str(raised.value)
    assert (("model", f"{USER}/kept")) in hub.store.repos
    if before:
        assert hub.revisions(f"{USER}/kept")[0] == before


@pytest.mark.parametrize("branch_existed", [False, True])
def test_a_failed_publish_to_a_new_branch_of_an_existing_repository_deletes_only_that_branch(hub, run, branch_existed):
    main_head = _publish(run, hub, "branches")["commit_sha"]
    if branch_existed:
        _api(hub).create_branch(f"{USER}/branches", branch="dev")
    (run.eval_dir / "knn.json").write_text(json.dumps({"accuracy": 0.4}))
    hub.faults.fail_next("commit", 422, message="rejected")
    with pytest.raises(PublishError, match=r"\(422\)") as raised:
        _publish(run, hub, "branches", revision="dev")
    refs = {b.name: b.target_commit for b in _api(hub).list_repo_refs(f"{USER}/branches").branches}
    if branch_existed:
        assert refs == {"main": main_head, "dev": main_head} and "deleted" not in str(raised.value)
    else:
        assert refs == {"main": main_head}
        assert f"The branch 'dev' of {USER}/branches, which this publish had created, was deleted again." in str(
            raised.value)
    # A publish to the branch that succeeds keeps it.
    assert _publish(run, hub, "branches", revision="dev")["revision"] == "dev"
    assert "dev" in {b.name for b in _api(hub).list_repo_refs(f"{USER}/branches").branches}


def test_a_repository_that_cannot_be_deleted_again_is_named_with_how_to_delete_it(hub, run):
    hub.faults.fail_next("commit", 422, message="rejected")
    hub.faults.fail_next("delete", 403, message="You may not delete repositories")
    with pytest.raises(PublishError, match=r"\(422\)") as raised:
        _publish(run, hub, "orphan")
    url = f"{hub.endpoint}/{USER}/orphan"
    assert f"This publish created the repository {url}, which is still there, empty" in str(raised.value)
    assert "You may not delete repositories" in str(raised.value)
    assert f"{url}/settings" in str(raised.value) and f"hf repos delete {USER}/orphan --repo-type model" in str(
        raised.value)
    assert hub.files(f"{USER}/orphan") == {".gitattributes": hub.files(f"{USER}/orphan")[".gitattributes"]}


def test_a_new_repository_where_the_commit_landed_is_kept(hub, run):
    """The commit went through but its answer was lost and no retry was left: the repository is not empty."""
    hub.faults.drop_next("commit", after_handling=True)
    with pytest.raises(PublishError, match="connection closed") as raised:
        _publish(run, hub, "landed")
    assert "was kept: it holds a commit besides the Hub's initial one" in str(raised.value)
    assert "model.safetensors" in hub.files(f"{USER}/landed")


def test_an_interrupted_publish_deletes_the_repository_it_created(hub, run, caplog):
    """Ctrl-C while the commit is on its way: the new repository goes, and the interrupt goes on to the caller."""
    hub.faults.hang_next("commit", seconds=10)

    def interrupt_once_the_commit_is_sent():
        deadline = time.monotonic() + 30
        while "commit" not in hub.routes_called() and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt_once_the_commit_is_sent, daemon=True).start()
    with caplog.at_level(logging.WARNING, logger="hfssl.hub.client"), pytest.raises(KeyboardInterrupt):
        _publish(run, hub, "interrupted")
    assert hub.store.repos == {}
    assert "Interrupted" in caplog.text and "was deleted again" in caplog.text


def test_a_space_whose_upload_fails_is_deleted_again(hub, tmp_path):
    spaces = tmp_path / "spaces"
    shutil.copytree(default_spaces_dir(), spaces)
    hub.faults.fail_next("commit", 422, message="rejected")
    with pytest.raises(PublishError, match=r"\(422\)") as raised:
        publish_space(f"{USER}/demo", f"{USER}/m", endpoint=hub.endpoint, token=TOKEN, spaces_dir=spaces,
                      sdk_version="6.0.0", vendor_hfssl=False, retry_for_s=0)
    assert f"{hub.endpoint}/spaces/{USER}/demo, which this publish had created, was deleted again" in str(raised.value)
    assert hub.store.repos == {}


def test_a_bad_space_model_id_names_the_model_flag(hub):
    with pytest.raises(ValueError, match=r"^--model must look like 'namespace/name'.*got 'my model'"):
        publish_space(f"{USER}/demo", "my model", endpoint=hub.endpoint, token=TOKEN, sdk_version="6.0.0")
    assert hub.requests == []


def test_a_read_only_token_on_an_existing_repository_says_so_and_changes_nothing(hub, run):
    first = _publish(run, hub, "shared")
    with pytest.raises(PublishError, match=r"\(403\).*a read-only token cannot publish") as raised:
        _publish(run, hub, "shared", token=READ_TOKEN)
    assert "deleted" not in str(raised.value)
    assert hub.revisions(f"{USER}/shared")[0] == first["commit_sha"]


def test_a_rejected_token_names_where_it_came_from(hub, run, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_ExpiredToken0123456789abcdefghijk")
    with pytest.raises(PublishError, match=r"rejected the token \(401\) from HF_TOKEN.*unset it to use the saved "
                                           r"login") as raised:
        _publish(run, hub, "env-token", token=None)
    assert "hf_ExpiredToken" not in str(raised.value)
    assert f"{hub.endpoint}/settings/tokens" in str(raised.value)
    result = _publish(run, hub, "env-token", token=TOKEN)  # a token passed in wins over HF_TOKEN
    assert hub.revisions(f"{USER}/env-token")[0] == result["commit_sha"]


def test_run_json_records_the_visibility_the_repository_has(hub, run):
    """Publishing without --private to an existing private repository keeps it private, and says so in run.json
    (an adapter published on top of it warns that only those who can read it can load it)."""
    _api(hub).create_repo(f"{USER}/secretive", private=True)
    result = _publish(run, hub, "secretive")
    assert result["private"] is True and run.read_manifest()["publish"]["private"] is True


@pytest.mark.parametrize("endpoint", ["127.0.0.1:8000", "huggingface.co", "ftp://hub.example", "not a url"])
def test_an_endpoint_that_is_not_an_http_url_is_refused_before_any_request(run, endpoint, capsys):
    with pytest.raises(ValueError, match=r"--endpoint must be the Hub's URL.*got"):
        publish_run(run.path, f"{USER}/x", endpoint=endpoint, token=TOKEN)
    assert cli_main(["publish", str(run.path), "--repo-id", f"{USER}/x", "--endpoint", endpoint]) == 2
    assert "--endpoint must be the Hub's URL" in capsys.readouterr().err


def test_a_bad_hf_endpoint_is_named(run, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "localhost:8000")
    with pytest.raises(ValueError, match="HF_ENDPOINT must be the Hub's URL"):
        publish_run(run.path, f"{USER}/x", token=TOKEN)


def test_an_endpoint_with_a_trailing_slash_publishes_to_the_same_hub(hub, run):
    result = publish_run(run.path, f"{USER}/slashed", endpoint=hub.endpoint + "/", token=TOKEN)
    assert result["url"] == f"{hub.endpoint}/{USER}/slashed"
    assert run.read_manifest()["publish"]["endpoint"] == hub.endpoint


def test_an_endpoint_that_refuses_connections_says_so_and_names_it(run):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{sock.getsockname()[1]}"
    with pytest.raises(PublishError, match=f"no connection could be made.*--endpoint/HF_ENDPOINT \\({endpoint}\\)"):
        publish_run(run.path, f"{USER}/x", endpoint=endpoint, token=TOKEN, retry_for_s=0)


def test_a_timeout_and_a_persistent_5xx_are_told_apart():
    from huggingface_hub.errors import HfHubHTTPError

    from hfssl.hub.client import _httpx

    target, endpoint = Target(f"{USER}/x"), "https://hub.example"
    timeout = _httpx.ReadTimeout("The read operation timed out")
    assert "did not answer in time" in str(explain(timeout, target, endpoint, 60))
    response = _httpx.Response(503, request=_httpx.Request("POST", f"{endpoint}/api/models/{USER}/x/commit/main"))
    overloaded = HfHubHTTPError("503 Service Unavailable", response=response, server_message="Hub is down")
    message = str(explain(overloaded, target, endpoint, 60))
    assert "its last answer was 503: Hub is down" in message and "retry later" in message


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (lambda run: run.manifest_path.write_text('{"stage": "pretrain", '), r"run.json is not valid JSON"),
        (lambda run: run.manifest_path.write_text("[1, 2]"), r"run.json holds a JSON list"),
        (lambda run: (run.model_dir / "config.json").write_text("{"), r"config.json is not valid JSON"),
        (lambda run: _cut(run.model_dir / "model.safetensors", -10),
         r"model.safetensors is not a complete safetensors file \(its tensors need"),
        (lambda run: _cut(run.model_dir / "model.safetensors", 50),
         r"model.safetensors is not a complete safetensors file \(its header needs"),
    ],
    ids=["run-json-cut", "run-json-list", "config-cut", "weights-cut", "weights-header-cut"],
)
def test_a_broken_run_directory_is_a_user_error_before_any_request(hub, run, breakage, message, capsys):
    breakage(run)
    with pytest.raises(ValueError, match=message):
        _publish(run, hub, "broken")
    assert hub.requests == []
    assert cli_main(["publish", str(run.path), "--repo-id", f"{USER}/broken", "--dry-run"]) == 2
    assert "Traceback" not in capsys.readouterr().err


def _cut(path, keep: int) -> None:
    """Keep the first `keep` bytes of a file (a negative `keep` drops that many from its end): a save cut short."""
    with path.open("r+b") as f:
        f.truncate(keep if keep >= 0 else path.stat().st_size + keep)


def test_a_model_without_a_tokenizer_is_published_with_a_warning(hub, run, caplog):
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (run.model_dir / name).unlink()
    with caplog.at_level(logging.WARNING, logger="hfssl.hub.bundle"):
        _publish(run, hub, "no-tokenizer", dry_run=True)
    assert "has no tokenizer or image processor" in caplog.text


def test_publishing_again_updates_the_card_and_an_unchanged_run_adds_no_commit(hub, run):
    first = _publish(run, hub, "twice")
    (run.eval_dir / "knn.json").write_text(json.dumps({"accuracy": 0.77, "k": 5}))
    run.update_manifest(eval={**run.read_manifest()["eval"], "knn": {"accuracy": 0.77, "k": 5}})
    second = _publish(run, hub, "twice")
    assert second["commit_sha"] != first["commit_sha"]
    assert "0.77" in hub.files(f"{USER}/twice")["README.md"].decode()
    third = _publish(run, hub, "twice")
    assert third["commit_sha"] == second["commit_sha"] and len(hub.revisions(f"{USER}/twice")) == 3

"""The local Hub server speaks the protocol the real huggingface_hub client expects."""

from __future__ import annotations

from pathlib import Path

import pytest
from huggingface_hub import (
    CommitOperationAdd,
    CommitOperationDelete,
    HfApi,
    hf_hub_download,
)
from huggingface_hub.errors import (
    EntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from hfssl.hub.local_server import LocalHub
from hfssl.hub.local_store import git_blob_sha

from .conftest import READ_TOKEN, TOKEN, USER

try:  # the HTTP library huggingface_hub itself uses: httpx2 (huggingface_hub 2.x) or httpx (1.x)
    import httpx2 as httpx
except ImportError:  # pragma: no cover
    import httpx

pytestmark = pytest.mark.usefixtures("online")
REPO = f"{USER}/repo"


@pytest.fixture
def api(hub) -> HfApi:
    api = HfApi(endpoint=hub.endpoint, token=TOKEN)
    api.create_repo(REPO)
    return api


def _add(path: str, content: bytes) -> CommitOperationAdd:
    return CommitOperationAdd(path_in_repo=path, path_or_fileobj=content)


def test_create_repo_conflict_still_returns_the_url(hub, api):
    answer = httpx.post(f"{hub.endpoint}/api/repos/create", json={"name": "repo"},
                        headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 409 and answer.json()["url"] == f"{hub.endpoint}/{REPO}"
    assert str(api.create_repo(REPO, exist_ok=True)) == f"{hub.endpoint}/{REPO}"


def test_every_commit_is_an_immutable_snapshot(hub, api):
    first = api.create_commit(REPO, [_add("a.txt", b"1"), _add("dir/b.txt", b"2")], commit_message="one").oid
    second = api.create_commit(REPO, [_add("a.txt", b"3"), CommitOperationDelete("dir/")], commit_message="two").oid
    assert hub.files(REPO, revision=first) == {".gitattributes": hub.files(REPO)[".gitattributes"],
                                               "a.txt": b"1", "dir/b.txt": b"2"}
    assert set(hub.files(REPO)) == {".gitattributes", "a.txt"} and hub.files(REPO)["a.txt"] == b"3"
    assert [c.commit_id for c in api.list_repo_commits(REPO)][:2] == [second, first]


def test_commit_ids_are_unique_across_servers_for_the_same_content():
    oids = []
    for _ in range(2):
        with LocalHub(tokens={TOKEN: USER}) as hub:
            api = HfApi(endpoint=hub.endpoint, token=TOKEN)
            api.create_repo(REPO)
            oids.append(api.create_commit(REPO, [_add("a.txt", b"same")], commit_message="same").oid)
    assert oids[0] != oids[1]


def test_downloads_carry_commit_and_etag_and_404s_carry_error_codes(hub, api, tmp_path):
    oid = api.create_commit(REPO, [_add("x/y.txt", b"hello")], commit_message="add").oid
    head = httpx.head(f"{hub.endpoint}/{REPO}/resolve/main/x/y.txt")
    assert head.headers["X-Repo-Commit"] == oid and head.headers["ETag"] == f'"{git_blob_sha(b"hello")}"'
    assert int(head.headers["Content-Length"]) == 5
    assert httpx.head(f"{hub.endpoint}/{REPO}/resolve/main/nope").headers["X-Error-Code"] == "EntryNotFound"
    kwargs = {"endpoint": hub.endpoint, "cache_dir": tmp_path}
    assert Path(hf_hub_download(REPO, "x/y.txt", **kwargs)).read_bytes() == b"hello"
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(REPO, "missing.txt", **kwargs)
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(REPO, "x/y.txt", revision="nope", **kwargs)
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download(f"{USER}/other", "x/y.txt", **kwargs)


def test_tree_lists_folders_and_files(hub, api):
    api.create_commit(REPO, [_add("a.txt", b"1"), _add("d/e/f.txt", b"2")], commit_message="tree")
    top = {(e.path, type(e).__name__) for e in api.list_repo_tree(REPO)}
    assert top == {(".gitattributes", "RepoFile"), ("a.txt", "RepoFile"), ("d", "RepoFolder")}
    assert {e.path for e in api.list_repo_tree(REPO, recursive=True)} >= {"d/e", "d/e/f.txt"}
    assert [e.path for e in api.list_repo_tree(REPO, path_in_repo="d/e")] == ["d/e/f.txt"]


def test_writes_need_a_token_with_rights_to_the_namespace(hub, api):
    reader = HfApi(endpoint=hub.endpoint, token=READ_TOKEN)
    with pytest.raises(Exception, match="403"):
        reader.create_commit(REPO, [_add("a.txt", b"1")], commit_message="nope")
    anonymous = httpx.post(f"{hub.endpoint}/api/models/{REPO}/commit/main", content=b'{"key":"header","value":{}}\n')
    assert anonymous.status_code == 401
    invalid = httpx.get(f"{hub.endpoint}/api/models/{REPO}", headers={"Authorization": "Bearer hf_wrong"})
    assert invalid.status_code == 401
    assert len(hub.revisions(REPO)) == 1


def test_private_repos_are_hidden_from_others(hub):
    HfApi(endpoint=hub.endpoint, token=TOKEN).create_repo(f"{USER}/secret", private=True)
    assert httpx.get(f"{hub.endpoint}/api/models/{USER}/secret").headers["X-Error-Code"] == "RepoNotFound"
    owner = httpx.get(f"{hub.endpoint}/api/models/{USER}/secret", headers={"Authorization": f"Bearer {TOKEN}"})
    assert owner.json()["private"] is True


def test_validate_yaml_rejects_bad_metadata_with_messages(hub):
    bad = httpx.post(f"{hub.endpoint}/api/validate-yaml",
                     json={"content": "---\nlicense: nope\ntags: [a, null]\n---\n", "repoType": "model"})
    messages = [e["message"] for e in bad.json()["errors"]]
    assert bad.status_code == 400 and any("license" in m for m in messages) and any("null" in m for m in messages)
    good = httpx.post(f"{hub.endpoint}/api/validate-yaml", json={"content": "---\nlicense: mit\n---\n"})
    assert good.status_code == 200


def test_faults_fail_or_drop_the_next_requests(hub, api):
    hub.faults.fail_next("info", status=502, times=1)
    assert httpx.get(f"{hub.endpoint}/api/models/{REPO}").status_code == 502
    assert httpx.get(f"{hub.endpoint}/api/models/{REPO}").status_code == 200
    hub.faults.drop_next("info")
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(f"{hub.endpoint}/api/models/{REPO}")


def test_branches_and_pull_requests(hub, api):
    api.create_branch(REPO, branch="dev")
    pr = api.create_commit(REPO, [_add("p.txt", b"1")], commit_message="pr", create_pr=True)
    refs = api.list_repo_refs(REPO, include_pull_requests=True)
    assert {b.name for b in refs.branches} == {"main", "dev"}
    assert [p.ref for p in refs.pull_requests] == ["refs/pr/1"] and pr.pr_revision == "refs/pr/1"
    assert "p.txt" not in hub.files(REPO) and "p.txt" in hub.files(REPO, revision="refs/pr/1")


def test_a_data_dir_keeps_repositories_across_restarts(tmp_path):
    with LocalHub(tokens={TOKEN: USER}, data_dir=tmp_path) as hub:
        api = HfApi(endpoint=hub.endpoint, token=TOKEN)
        api.create_repo(REPO)
        oid = api.create_commit(REPO, [_add("a.txt", b"kept")], commit_message="keep").oid
    with LocalHub(tokens={TOKEN: USER}, data_dir=tmp_path) as hub:
        assert hub.revisions(REPO)[0] == oid and hub.files(REPO)["a.txt"] == b"kept"

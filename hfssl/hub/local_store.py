"""The storage of the local Hub server: repositories whose every commit is an immutable snapshot of its files.

Kept in memory; with `data_dir`, also written to disk (a `state.json` plus content-addressed blobs) after every
change and read back at start, so a server can be restarted without losing what was published to it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import tempfile
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import Any

REPO_TYPES = ("model", "dataset", "space")
URL_PREFIXES = {"model": "", "dataset": "datasets/", "space": "spaces/"}
GITATTRIBUTES = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n*.bin filter=lfs diff=lfs merge=lfs -text\n"


class HubError(Exception):
    """An HTTP error answer: status, the Hub's `X-Error-Code` (RepoNotFound, ...) and a message."""

    def __init__(self, status: int, message: str, code: str | None = None, extra: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.extra = status, message, code, extra or {}


def git_blob_sha(content: bytes) -> str:
    """The git object id of a file: what the Hub reports as a regular file's oid and ETag."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Commit:
    """One revision: the full file snapshot (path -> bytes) and how it came to be."""

    oid: str
    parent: str | None
    files: Mapping[str, bytes]
    title: str
    message: str
    author: str
    date: str


@dataclass
class Repo:
    """A repository: its commits by oid and its refs (branch names and `refs/pr/N`) -> commit oid."""

    repo_type: str
    repo_id: str
    private: bool
    sdk: str | None = None
    created_at: str = field(default_factory=_now)
    commits: dict[str, Commit] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)
    next_pr: int = 1

    @property
    def namespace(self) -> str:
        return self.repo_id.split("/")[0]

    def resolve(self, revision: str) -> Commit:
        """The commit a branch, PR ref or full commit oid points to; 404 RevisionNotFound otherwise."""
        oid = self.refs.get(revision, revision)
        if oid not in self.commits:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return self.commits[oid]

    def history(self, revision: str) -> list[Commit]:
        """Commits from `revision` back to the first, newest first."""
        commit, out = self.resolve(revision), []
        while commit is not None:
            out.append(commit)
            commit = self.commits.get(commit.parent) if commit.parent else None
        return out


class HubStore:
    """Thread-safe repositories, with optional persistence under `data_dir`."""

    def __init__(self, data_dir: str | os.PathLike | None = None):
        self.repos: dict[tuple[str, str], Repo] = {}
        self.lock = threading.RLock()
        self.data_dir = Path(data_dir) if data_dir is not None else None
        if self.data_dir is not None and (self.data_dir / "state.json").exists():
            self._load()

    def get(self, repo_type: str, repo_id: str) -> Repo:
        with self.lock:
            repo = self.repos.get((repo_type, repo_id))
        if repo is None:
            raise HubError(404, f"Repository Not Found for {repo_type} {repo_id}.", "RepoNotFound")
        return repo

    def create(self, repo_type: str, repo_id: str, private: bool, author: str, sdk: str | None = None) -> Repo:
        """A new repository with the Hub's initial commit (`.gitattributes`); 409 when it exists."""
        with self.lock:
            if (repo_type, repo_id) in self.repos:
                raise HubError(409, f"You already created this {repo_type} repo: {repo_id}")
            repo = Repo(repo_type, repo_id, private, sdk)
            self.repos[(repo_type, repo_id)] = repo
            self._add_commit(repo, "main", {".gitattributes": GITATTRIBUTES}, "initial commit", "", author)
            return repo

    def delete(self, repo_type: str, repo_id: str) -> None:
        with self.lock:
            self.get(repo_type, repo_id)
            del self.repos[(repo_type, repo_id)]
            self._save()

    def create_branch(self, repo: Repo, branch: str, starting_point: str | None) -> None:
        with self.lock:
            if branch in repo.refs:
                raise HubError(409, f"Reference refs/heads/{branch} already exists")
            repo.refs[branch] = repo.resolve(starting_point or "main").oid
            self._save()

    def delete_branch(self, repo: Repo, branch: str) -> None:
        """As the Hub: the default branch cannot be deleted; an unknown one is a 404."""
        with self.lock:
            if branch == "main":
                raise HubError(403, "The default branch cannot be deleted.")
            if branch not in repo.refs or branch.startswith("refs/"):
                raise HubError(404, f"Invalid rev id: {branch}", "RevisionNotFound")
            del repo.refs[branch]
            self._save()

    def commit(
        self, repo: Repo, revision: str, header: dict, operations: list[dict], author: str, create_pr: bool = False
    ) -> tuple[Commit, int | None]:
        """Apply a commit payload's operations on top of `revision` atomically; (commit, PR number or None)."""
        with self.lock:
            head = repo.resolve(revision)
            parent = header.get("parentCommit")
            if parent and not create_pr and parent != head.oid:
                raise HubError(412, f"A commit has happened since {parent}: the head of {revision} is {head.oid}.")
            files = apply_operations(dict(head.files), operations)
            pr_num, ref = None, revision
            if create_pr:
                pr_num, ref = repo.next_pr, f"refs/pr/{repo.next_pr}"
                repo.next_pr += 1
                repo.refs[ref] = head.oid
            commit = self._add_commit(repo, ref, files, header.get("summary") or "", header.get("description") or "", author)
            return commit, pr_num

    def _add_commit(self, repo: Repo, ref: str, files: dict[str, bytes], title: str, message: str, author: str) -> Commit:
        parent = repo.refs.get(ref)
        # A random component keeps commit ids unique across server runs: clients cache files by commit id.
        seed = f"{uuid.uuid4()}{parent}{sorted((p, git_blob_sha(c)) for p, c in files.items())}"
        oid = hashlib.sha1(seed.encode()).hexdigest()
        commit = Commit(oid, parent, MappingProxyType(files), title, message, author, _now())
        repo.commits[oid] = commit
        repo.refs[ref] = oid
        self._save()
        return commit

    def _save(self) -> None:
        if self.data_dir is None:
            return
        blobs = self.data_dir / "blobs"
        blobs.mkdir(parents=True, exist_ok=True)
        state = [self._repo_state(repo, blobs) for repo in self.repos.values()]
        fd, tmp = tempfile.mkstemp(dir=self.data_dir, prefix=".state.")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(state, f)
        os.replace(tmp, self.data_dir / "state.json")

    @staticmethod
    def _repo_state(repo: Repo, blobs: Path) -> dict[str, Any]:
        commits = []
        for c in repo.commits.values():
            for content in c.files.values():
                blob = blobs / git_blob_sha(content)
                if not blob.exists():
                    blob.write_bytes(content)
            tree = {p: git_blob_sha(content) for p, content in c.files.items()}
            commits.append({**{k: getattr(c, k) for k in ("oid", "parent", "title", "message", "author", "date")},
                            "files": tree})
        return {"repo_type": repo.repo_type, "repo_id": repo.repo_id, "private": repo.private, "sdk": repo.sdk,
                "created_at": repo.created_at, "refs": repo.refs, "next_pr": repo.next_pr, "commits": commits}

    def _load(self) -> None:
        blobs = self.data_dir / "blobs"
        for item in json.loads((self.data_dir / "state.json").read_text(encoding="utf-8")):
            commits = {
                c["oid"]: Commit(c["oid"], c["parent"], MappingProxyType(
                    {p: (blobs / sha).read_bytes() for p, sha in c["files"].items()}
                ), c["title"], c["message"], c["author"], c["date"])
                for c in item.pop("commits")
            }
            repo = Repo(**item, commits=commits)
            self.repos[(repo.repo_type, repo.repo_id)] = repo


def check_path(path: Any) -> str:
    """A path inside a repository: relative, no `..`, no empty parts; 400 otherwise."""
    if not isinstance(path, str) or not path or path.startswith("/") or "\\" in path:
        raise HubError(400, f"Invalid path in repository: {path!r}")
    if any(part in ("", ".", "..") for part in path.split("/")):
        raise HubError(400, f"Invalid path in repository: {path!r}")
    return path


def apply_operations(files: dict[str, bytes], operations: list[dict]) -> dict[str, bytes]:
    """The file snapshot after the commit payload's `file`, `deletedFile` and `deletedFolder` lines."""
    for op in operations:
        key, value = op.get("key"), op.get("value") or {}
        path = check_path(value.get("path", "").rstrip("/") if key == "deletedFolder" else value.get("path"))
        if key == "file":
            if value.get("encoding", "base64") != "base64":
                raise HubError(400, f"Unsupported encoding {value.get('encoding')!r} for {path}")
            files[path] = base64.b64decode(value.get("content", ""), validate=True)
        elif key == "deletedFile":
            if files.pop(path, None) is None:
                raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
        elif key == "deletedFolder":
            inside = [p for p in files if PurePosixPath(path) in PurePosixPath(p).parents]
            if not inside:
                raise HubError(404, f"A folder with this name doesn't exist: {path}", "EntryNotFound")
            for p in inside:
                del files[p]
        elif key == "lfsFile":
            raise HubError(400, "This local Hub keeps every file as a regular file; it answered 'regular' at "
                                "preupload, so LFS pointers are not accepted.")
        else:
            raise HubError(400, f"Unknown commit operation {key!r}")
    return files

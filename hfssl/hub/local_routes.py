"""The routes of the local Hub server: each takes a parsed request and returns (status, JSON or bytes, headers)."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from .local_store import URL_PREFIXES, HubError, Repo, git_blob_sha
from .metadata import readme_errors, split_front_matter

if TYPE_CHECKING:
    from http.server import BaseHTTPRequestHandler

    from .local_server import Identity, LocalHub

logger = logging.getLogger(__name__)

_TYPE = r"(?P<type>models|datasets|spaces)"
_REPO = r"(?P<ns>[^/]+)/(?P<name>[^/]+)"
# (method, route name, pattern on the raw, still percent-encoded path): order matters, first match wins.
ROUTES: list[tuple[str, str, re.Pattern]] = [
    (m, name, re.compile(pattern))
    for m, name, pattern in [
        ("GET", "whoami", r"^/api/whoami-v2$"),
        ("POST", "create", r"^/api/repos/create$"),
        ("DELETE", "delete", r"^/api/repos/delete$"),
        ("POST", "validate", r"^/api/validate-yaml$"),
        ("POST", "preupload", rf"^/api/{_TYPE}/{_REPO}/preupload/(?P<rev>[^/]+)$"),
        ("POST", "commit", rf"^/api/{_TYPE}/{_REPO}/commit/(?P<rev>[^/]+)$"),
        ("POST", "branch", rf"^/api/{_TYPE}/{_REPO}/branch/(?P<rev>[^/]+)$"),
        ("DELETE", "delete_branch", rf"^/api/{_TYPE}/{_REPO}/branch/(?P<rev>[^/]+)$"),
        ("GET", "refs", rf"^/api/{_TYPE}/{_REPO}/refs$"),
        ("GET", "commits", rf"^/api/{_TYPE}/{_REPO}/commits/(?P<rev>[^/]+)$"),
        ("GET", "tree", rf"^/api/{_TYPE}/{_REPO}/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?$"),
        ("GET", "info", rf"^/api/{_TYPE}/{_REPO}(?:/revision/(?P<rev>[^/]+))?$"),
        ("GET", "resolve", rf"^/(?:(?P<type>datasets|spaces)/)?{_REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)$"),
        ("HEAD", "resolve", rf"^/(?:(?P<type>datasets|spaces)/)?{_REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)$"),
    ]
]
INVALID_TOKEN = "Invalid credentials in Authorization header"


class Request:
    """One parsed request: route, path groups, query, JSON or raw body, caller identity."""

    def __init__(self, hub: LocalHub, handler: BaseHTTPRequestHandler, route: str, groups: dict, body: bytes):
        self.hub, self.handler, self.route, self.body = hub, handler, route, body
        self.groups = {k: unquote(v) for k, v in groups.items() if v is not None}
        self.query = parse_qs(urlsplit(handler.path).query)
        self.base_url = f"http://{handler.headers.get('Host') or hub.endpoint.split('://')[1]}"
        self.identity = self._identity(handler.headers.get("Authorization"))

    def _identity(self, header: str | None) -> Identity | None:
        if not header:
            return None
        token = header.removeprefix("Bearer ").strip()
        identity = self.hub.tokens.get(token)
        if identity is None:
            raise HubError(401, INVALID_TOKEN)
        return identity

    def json(self) -> dict:
        try:
            data = json.loads(self.body or b"{}")
        except json.JSONDecodeError:
            raise HubError(400, "The request body is not valid JSON.") from None
        if not isinstance(data, dict):
            raise HubError(400, "The request body must be a JSON object.")
        return data

    @property
    def repo_type(self) -> str:
        return {"models": "model", "datasets": "dataset", "spaces": "space", None: "model"}[self.groups.get("type")]

    @property
    def repo_id(self) -> str:
        return f"{self.groups['ns']}/{self.groups['name']}"

    def repo(self) -> Repo:
        """The repository named in the path, hidden (404) when private and the caller cannot read it."""
        repo = self.hub.store.get(self.repo_type, self.repo_id)
        if repo.private and not (self.identity and self.identity.can_read(repo.namespace)):
            raise HubError(404, f"Repository Not Found for {self.repo_type} {self.repo_id}.", "RepoNotFound")
        return repo

    def require_write(self, namespace: str) -> Identity:
        if self.identity is None:
            raise HubError(401, "You must be authenticated with a write token to do this (no Authorization header).")
        if not self.identity.can_write(namespace):
            raise HubError(403, f"You don't have the rights to create or write to repositories in {namespace!r}.")
        return self.identity

    def repo_url(self, repo_type: str, repo_id: str) -> str:
        return f"{self.base_url}/{URL_PREFIXES[repo_type]}{repo_id}"


def handle(request: Request) -> tuple[int, Any, dict[str, str]]:
    """Run the route; malformed input is a 400, a bug in a route a 500 with its message."""
    try:
        return HANDLERS[request.route](request)
    except HubError:
        raise
    except (ValueError, KeyError, TypeError) as error:  # bad base64, JSON lines, missing fields
        raise HubError(400, f"Malformed request: {error}") from None
    except Exception as error:
        logger.exception("local Hub route %s failed", request.route)
        raise HubError(500, f"Internal error: {error}") from None


def match(method: str, path: str) -> tuple[str | None, dict]:
    for m, name, pattern in ROUTES:
        found = pattern.match(path)
        if found and m == method:
            return name, found.groupdict()
    return None, {}


Answer = tuple[int, Any, dict[str, str]]


def _whoami(req: Request) -> Answer:
    if req.identity is None:
        raise HubError(401, "You must be authenticated.")
    orgs = [{"name": org} for org in req.identity.orgs]
    role = "write" if req.identity.write else "read"
    return 200, {"type": "user", "name": req.identity.name, "orgs": orgs,
                 "auth": {"type": "access_token", "accessToken": {"role": role, "displayName": "local"}}}, {}


def _create(req: Request) -> Answer:
    data = req.json()
    repo_type = data.get("type") or "model"
    if repo_type not in URL_PREFIXES:
        raise HubError(400, f"Invalid repo type {repo_type!r}")
    if req.identity is None:
        raise HubError(401, "You must be authenticated with a write token to create a repository.")
    namespace = data.get("organization") or req.identity.name
    repo_id = f"{namespace}/{data.get('name')}"
    if not re.fullmatch(r"[\w.-]{1,96}", str(data.get("name") or "")):
        raise HubError(400, f"Invalid repository name {data.get('name')!r}: use letters, digits, '-', '_' or '.'.")
    req.require_write(namespace)
    if repo_type == "space" and data.get("sdk") not in ("gradio", "streamlit", "docker", "static"):
        raise HubError(400, f"A Space needs an sdk among gradio, streamlit, docker, static; got {data.get('sdk')!r}.")
    private = data.get("private", data.get("visibility") == "private") is True
    url = req.repo_url(repo_type, repo_id)
    try:
        req.hub.store.create(repo_type, repo_id, private, req.identity.name, data.get("sdk"))
    except HubError as error:
        if error.status == 409:
            error.extra = {"body": {"url": url}}  # the client reads `url` even from a 409
        raise
    return 200, {"url": url, "name": repo_id, "id": repo_id}, {}


def _delete(req: Request) -> Answer:
    data = req.json()
    repo_type = data.get("type") or "model"
    namespace = data.get("organization") or (req.identity.name if req.identity else "")
    req.require_write(namespace)
    req.hub.store.delete(repo_type, f"{namespace}/{data.get('name')}")
    return 200, {}, {}


def _validate(req: Request) -> Answer:
    data = req.json()
    content, repo_type = data.get("content"), data.get("repoType") or "model"
    if not isinstance(content, str):
        raise HubError(400, "validate-yaml needs a string 'content'.")
    errors = readme_errors(content, repo_type)
    if errors:
        return 400, {"errors": [{"message": e} for e in errors]}, {}
    metadata, _ = split_front_matter(content)
    warnings = [] if metadata else [{"message": "Empty metadata: add a YAML header to describe the repository."}]
    return 200, {"errors": [], "warnings": warnings}, {}


def _preupload(req: Request) -> Answer:
    repo = req.repo()
    req.require_write(repo.namespace)
    files = req.json().get("files")
    if not isinstance(files, list):
        raise HubError(400, "preupload needs a 'files' list.")
    head = repo.resolve(req.groups["rev"])
    answer = [{"path": f.get("path"), "uploadMode": "regular", "shouldIgnore": False,
               "oid": git_blob_sha(head.files[f["path"]]) if f.get("path") in head.files else None} for f in files]
    return 200, {"files": answer, "commitOid": head.oid}, {}


def _commit(req: Request) -> Answer:
    repo = req.repo()
    identity = req.require_write(repo.namespace)
    lines = [json.loads(line) for line in req.body.splitlines() if line.strip()]
    if not lines or lines[0].get("key") != "header":
        raise HubError(400, "A commit payload starts with a 'header' line.")
    create_pr = req.query.get("create_pr", ["0"])[0] in ("1", "true", "True")
    commit, pr_num = req.hub.store.commit(
        repo, req.groups["rev"], lines[0].get("value") or {}, lines[1:], identity.name, create_pr
    )
    url = req.repo_url(repo.repo_type, repo.repo_id)
    answer = {"success": True, "commitOid": commit.oid, "commitUrl": f"{url}/commit/{commit.oid}",
              "pullRequestUrl": f"{url}/discussions/{pr_num}" if pr_num else None}
    return 200, answer, {}


def _branch(req: Request) -> Answer:
    repo = req.repo()
    req.require_write(repo.namespace)
    req.hub.store.create_branch(repo, req.groups["rev"], req.json().get("startingPoint"))
    return 200, {}, {}


def _delete_branch(req: Request) -> Answer:
    repo = req.repo()
    req.require_write(repo.namespace)
    req.hub.store.delete_branch(repo, req.groups["rev"])
    return 200, {}, {}


def _refs(req: Request) -> Answer:
    repo = req.repo()
    branches = [{"name": n, "ref": f"refs/heads/{n}", "targetCommit": oid}
                for n, oid in repo.refs.items() if not n.startswith("refs/")]
    prs = [{"name": n, "ref": n, "targetCommit": oid} for n, oid in repo.refs.items() if n.startswith("refs/pr/")]
    return 200, {"branches": branches, "converts": [], "tags": [], "pullRequests": prs}, {}


def _commits(req: Request) -> Answer:
    history = req.repo().history(req.groups["rev"])
    return 200, [{"id": c.oid, "title": c.title, "message": c.message, "date": c.date,
                  "authors": [{"user": c.author}]} for c in history], {}


def _tree(req: Request) -> Answer:
    files = req.repo().resolve(req.groups["rev"]).files
    prefix = req.groups.get("path", "").strip("/")
    recursive = req.query.get("recursive", ["false"])[0].lower() in ("1", "true")
    entries = _tree_entries(files, prefix, recursive)
    if prefix and not entries and prefix not in files:
        raise HubError(404, f"Entry not found: {prefix}", "EntryNotFound")
    return 200, entries, {}


def _tree_entries(files: Mapping[str, bytes], prefix: str, recursive: bool) -> list[dict]:
    base = PurePosixPath(prefix) if prefix else None
    out: dict[str, dict] = {}
    for path, content in sorted(files.items()):
        pure = PurePosixPath(path)
        if base is not None and base not in pure.parents:
            continue
        rel = pure.relative_to(base) if base is not None else pure
        for depth in range(1, len(rel.parts)):
            folder = str((base or PurePosixPath("")) / PurePosixPath(*rel.parts[:depth]))
            if recursive or depth == 1:
                out.setdefault(folder, {"type": "directory", "path": folder, "oid": git_blob_sha(folder.encode())})
        if recursive or len(rel.parts) == 1:
            out[path] = {"type": "file", "path": path, "size": len(content), "oid": git_blob_sha(content)}
    return list(out.values())


def _info(req: Request) -> Answer:
    repo = req.repo()
    commit = repo.resolve(req.groups.get("rev", "main"))
    siblings = [{"rfilename": p, "size": len(c), "blobId": git_blob_sha(c)} for p, c in sorted(commit.files.items())]
    card = commit.files.get("README.md", b"").decode("utf-8", "replace")
    try:
        card_data = split_front_matter(card)[0] or {}
    except ValueError:
        card_data = {}
    info = {"id": repo.repo_id, "_id": repo.repo_id, "author": repo.namespace, "sha": commit.oid,
            "private": repo.private, "disabled": False, "gated": False, "createdAt": repo.created_at,
            "lastModified": commit.date, "siblings": siblings, "cardData": card_data, "tags": card_data.get("tags", []),
            "downloads": 0, "likes": 0}
    if repo.repo_type == "space":
        info.update(sdk=repo.sdk, runtime={"stage": "NO_APP_FILE" if "app.py" not in commit.files else "BUILDING"})
    return 200, info, {}


def _resolve(req: Request) -> Answer:
    repo = req.repo()
    commit = repo.resolve(req.groups["rev"])
    content = commit.files.get(req.groups["path"])
    if content is None:
        raise HubError(404, f"Entry not found: {req.groups['path']}", "EntryNotFound",
                       {"headers": {"X-Repo-Commit": commit.oid}})
    headers = {"X-Repo-Commit": commit.oid, "ETag": f'"{git_blob_sha(content)}"',
               "Content-Type": "application/octet-stream", "Accept-Ranges": "none"}
    return 200, content, headers


HANDLERS: dict[str, Callable[[Request], Answer]] = {
    "whoami": _whoami, "create": _create, "delete": _delete, "validate": _validate, "preupload": _preupload,
    "commit": _commit, "branch": _branch, "delete_branch": _delete_branch, "refs": _refs, "commits": _commits, "tree": _tree, "info": _info,
    "resolve": _resolve,
}

"""One commit to the Hub through `huggingface_hub.HfApi`, with bounded retries and errors that say what to do.

The token comes from the caller, `HF_TOKEN` or the saved login (`huggingface_hub.get_token`); it is passed to
HfApi and nowhere else: never printed, logged or written.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from huggingface_hub import (
    CommitInfo,
    CommitOperationAdd,
    CommitOperationDelete,
    HfApi,
    constants,
    get_token,
)
from huggingface_hub.errors import (
    HfHubHTTPError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

try:  # huggingface_hub 2.x talks through httpx2, 1.x through httpx
    import httpx2 as _httpx
except ImportError:  # pragma: no cover - depends on the installed huggingface_hub
    import httpx as _httpx

logger = logging.getLogger(__name__)

NETWORK_ERRORS = (_httpx.TransportError, ConnectionError, TimeoutError)
RETRY_STATUSES = (408, 429, 500, 502, 503, 504)
DEFAULT_RETRY_FOR_S = 60.0
CLEANUP_RETRY_S = 10.0  # at most this long retrying the deletion of a repository a failed publish created
T = TypeVar("T")


class PublishError(RuntimeError):
    """The Hub refused the publish or could not be reached; no new revision was created."""


@dataclass(frozen=True)
class Target:
    """Where a commit goes: repository, its type and visibility, the branch, and whether to open a PR."""

    repo_id: str
    repo_type: str = "model"
    revision: str | None = None
    private: bool = False
    create_pr: bool = False
    space_sdk: str | None = None

    @property
    def namespace(self) -> str:
        return self.repo_id.split("/")[0]


def check_repo_id(repo_id: str, flag: str = "--repo-id") -> str:
    """`namespace/name` with the Hub's allowed characters and huggingface_hub's rules (no leading or trailing '-' or
    '.', no '--' or '..', no '.git' ending, at most 96 characters); otherwise a ValueError naming `flag` (where the id
    came from), before any request."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    parts = repo_id.split("/") if isinstance(repo_id, str) else []
    valid = len(parts) == 2 and all(parts) and all(p.replace("-", "").replace("_", "").replace(".", "").isalnum()
                                                   for p in parts)
    reason = ""
    if valid:
        try:
            validate_repo_id(repo_id)
        except HFValidationError as error:
            valid, reason = False, f" ({str(error).split(':')[0]})"
    if not valid:
        raise ValueError(f"{flag} must look like 'namespace/name' (letters, digits, '-', '_', '.'; no leading or "
                         f"trailing '-' or '.', no '--' or '..'), got {repo_id!r}{reason}.")
    return repo_id


def resolve_endpoint(endpoint: str | None = None) -> str:
    """`endpoint`, else `HF_ENDPOINT`, else the public Hub; without trailing '/'. ValueError for what is not an
    http(s) URL (a host without its scheme would otherwise fail only after the retries)."""
    source = "--endpoint" if endpoint else "HF_ENDPOINT" if os.environ.get("HF_ENDPOINT") else "The Hub URL"
    url = (endpoint or os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ValueError(f"{source} must be the Hub's URL, like https://huggingface.co or http://localhost:8000 "
                         f"(scheme and host, no query), got {url!r}.")
    return url


def resolve_token(token: str | None = None) -> str:
    """`token`, else `HF_TOKEN`, else the saved login; ValueError (naming no token) when there is none."""
    found = token or get_token()
    if not found:
        raise ValueError(
            "No Hugging Face token found. Set HF_TOKEN to a token with write access, or run `hf auth login` "
            "(or pass --dry-run to see what would be uploaded)."
        )
    return found


@dataclass(frozen=True)
class Upload:
    """What `upload_files` did: the commit, and the repository's visibility (an existing one keeps its own)."""

    commit: CommitInfo
    private: bool


def upload_files(
    files: Mapping[str, bytes | Path],
    target: Target,
    *,
    commit_message: str,
    commit_description: str = "",
    endpoint: str,
    token: str,
    retry_for_s: float = DEFAULT_RETRY_FOR_S,
    stale: Callable[[HfApi], Sequence[str]] | None = None,
) -> Upload:
    """Create the repository if needed, then commit every file in one commit: all of them or none.

    `stale(api)`: paths of files in the repository to delete in the same commit (asked again on each attempt).

    Transient failures (connection errors, 5xx, 429) are retried with exponential backoff for at most
    `retry_for_s` seconds. Each attempt builds fresh operations, so when a commit landed but its answer was
    lost, the retry finds every file unchanged and adds no second commit. When the upload fails (or is
    interrupted) after this call created the repository, the repository is deleted again if it holds nothing
    but the Hub's initial commit; a repository that existed before is never deleted.
    """
    if constants.is_offline_mode():
        raise PublishError("HF_HUB_OFFLINE is set: publishing needs the Hub. Unset HF_HUB_OFFLINE, or use --dry-run.")
    api = HfApi(endpoint=endpoint, token=token, library_name="hfssl")
    repo: tuple[bool, bool] | None = None  # (created, private), once the repository is known to exist
    branch: str | None = None  # the head commit of a branch this call created, once the branch is known to exist
    new_branch = target.revision not in (None, constants.DEFAULT_REVISION) and not target.create_pr

    def attempt() -> CommitInfo:
        nonlocal repo, branch
        if repo is None:
            repo = ensure_repo(api, target)
        if new_branch and branch is None:
            branch = ensure_branch(api, target)
        operations = [CommitOperationAdd(path_in_repo=path, path_or_fileobj=content) for path, content in files.items()]
        operations += [CommitOperationDelete(path_in_repo=path) for path in (stale(api) if stale else ())]
        return api.create_commit(
            target.repo_id, operations, commit_message=commit_message, commit_description=commit_description,
            repo_type=target.repo_type, revision=target.revision, create_pr=target.create_pr,
        )

    def undo(retry: float) -> str | None:
        """Remove the repository or branch this call created; a sentence saying what happened, None if none was."""
        if repo is not None and repo[0]:
            return remove_created_repo(api, target, endpoint, retry)
        return remove_created_branch(api, target, branch, retry) if branch else None

    try:
        commit = with_retries(attempt, retry_for_s)
    except KeyboardInterrupt:
        undone = undo(0.0)
        if undone:
            logger.warning("Interrupted. %s", undone)
        raise
    except Exception as error:
        explained = explain(error, target, endpoint, retry_for_s, files, token)
        undone = undo(retry_for_s)
        if undone is None:
            raise explained from error
        raise PublishError(f"{explained} {undone}") from error
    return Upload(commit, private=repo[1])


def ensure_repo(api: HfApi, target: Target) -> tuple[bool, bool]:
    """Create the repository, or find it already there: (created by this call, private).

    Like `create_repo(exist_ok=True)`, a 401/402/403 on creation is fine when the repository exists (a token may
    write to a repository without the right to create one). An existing public repository is refused when the
    target asks for a private one: `private` applies only when the repository is created."""
    try:
        api.create_repo(target.repo_id, repo_type=target.repo_type, private=True if target.private else None,
                        space_sdk=target.space_sdk)
        return True, target.private
    except HfHubHTTPError as error:
        if _status(error) not in (401, 402, 403, 409):
            raise
        try:
            private = bool(api.repo_info(target.repo_id, repo_type=target.repo_type).private)
        except HfHubHTTPError:
            raise error from None
    if target.private and not private:
        raise PublishError(
            f"{target.repo_type.capitalize()} repo {target.repo_id!r} already exists and is public, so --private "
            "(which applies when the repository is created) cannot keep this upload private. Nothing was "
            "uploaded. Make the repository private in its settings on the Hub, or publish without --private."
        )
    return False, private


def ensure_branch(api: HfApi, target: Target) -> str:
    """Create the branch `target.revision`, or find it already there: the head commit of a branch this call created
    (what it still points at when nothing landed on it), "" for one that existed. Like `create_branch(exist_ok=True)`,
    a 403 is fine when the branch exists (a token may write to it without the right to create branches)."""
    try:
        api.create_branch(target.repo_id, repo_type=target.repo_type, branch=target.revision)
    except HfHubHTTPError as error:
        if _status(error) == 409:
            return ""
        if _status(error) == 403 and _branch_head(api, target) is not None:
            return ""
        raise
    return _branch_head(api, target) or ""


def _branch_head(api: HfApi, target: Target) -> str | None:
    refs = api.list_repo_refs(target.repo_id, repo_type=target.repo_type)
    return next((b.target_commit for b in refs.branches if b.name == target.revision), None)


def remove_created_branch(api: HfApi, target: Target, start: str, retry_for_s: float = DEFAULT_RETRY_FOR_S) -> str:
    """Delete a branch this publish created and then failed to commit to; a sentence saying what happened. A branch
    that moved since (a commit landed although its answer was lost) is kept."""
    budget = min(retry_for_s, CLEANUP_RETRY_S)
    name = f"branch {target.revision!r} of {target.repo_id}"
    try:
        head = with_retries(lambda: _branch_head(api, target), budget)
        if head is None:
            return f"The {name}, which this publish created, is gone already."
        if head != start:
            return f"The {name}, which this publish created, was kept: it holds a commit now. Check it on the Hub."
        with_retries(lambda: api.delete_branch(target.repo_id, repo_type=target.repo_type, branch=target.revision),
                     budget)
    except Exception as error:  # noqa: BLE001 - best effort: reported, and the publish's own error still raised
        return (f"This publish created the {name}, which is still there: deleting it failed ({_short(error)}). "
                f"Delete it with `hf repos branch delete {target.repo_id} {target.revision} --repo-type "
                f"{target.repo_type}`.")
    return f"The {name}, which this publish had created, was deleted again."


def remove_created_repo(api: HfApi, target: Target, endpoint: str, retry_for_s: float = DEFAULT_RETRY_FOR_S) -> str:
    """Delete a repository this publish created and then failed to commit to; a sentence saying what happened.

    Best effort: a repository holding any commit besides the Hub's initial one (a commit that landed although its
    answer was lost), a branch or a pull request is kept, and a failed deletion is reported with how to delete."""
    url = repo_url(endpoint, target)
    budget = min(retry_for_s, CLEANUP_RETRY_S)
    try:
        if with_retries(lambda: _holds_commits(api, target), budget):
            return (f"The repository {url} was created by this publish and was kept: it holds a commit besides the "
                    "Hub's initial one (one may have landed although its answer was lost). Check it on the Hub.")
        with_retries(lambda: api.delete_repo(target.repo_id, repo_type=target.repo_type, missing_ok=True), budget)
    except Exception as error:  # noqa: BLE001 - best effort: reported, and the publish's own error still raised
        return (f"This publish created the repository {url}, which is still there, empty: deleting it failed "
                f"({_short(error)}). Delete it in its settings ({url}/settings) or with "
                f"`hf repos delete {target.repo_id} --repo-type {target.repo_type}`.")
    return f"The repository {url}, which this publish had created, was deleted again."


def _holds_commits(api: HfApi, target: Target) -> bool:
    """Anything besides the Hub's initial commit: a second commit on main, a branch elsewhere, a pull request."""
    commits = api.list_repo_commits(target.repo_id, repo_type=target.repo_type)
    refs = api.list_repo_refs(target.repo_id, repo_type=target.repo_type, include_pull_requests=True)
    first = commits[-1].commit_id if commits else None
    return len(commits) > 1 or bool(refs.pull_requests) or any(b.target_commit != first for b in refs.branches)


def repo_url(endpoint: str, target: Target) -> str:
    """The repository's page: {endpoint}/{id} for a model, {endpoint}/spaces/{id} or /datasets/{id} otherwise."""
    prefix = "" if target.repo_type == "model" else f"{target.repo_type}s/"
    return f"{endpoint}/{prefix}{target.repo_id}"


def is_transient(error: BaseException) -> bool:
    """Worth retrying: the network failed, or the Hub answered 5xx/429/408."""
    if isinstance(error, NETWORK_ERRORS):
        return True
    return isinstance(error, HfHubHTTPError) and _status(error) in RETRY_STATUSES


def with_retries(fn: Callable[[], T], retry_for_s: float, first_wait_s: float = 1.0, max_wait_s: float = 16.0) -> T:
    """Call `fn` until it succeeds, retrying transient errors with exponential backoff for `retry_for_s` seconds."""
    deadline, wait, attempt = time.monotonic() + retry_for_s, first_wait_s, 1
    while True:
        try:
            return fn()
        except Exception as error:
            if not is_transient(error) or time.monotonic() + wait > deadline:
                raise
            logger.warning("Publishing hit a transient error (%s); retry %d in %.0f s.", _short(error), attempt, wait)
            time.sleep(wait)
            wait, attempt = min(wait * 2, max_wait_s), attempt + 1


def explain(error: BaseException, target: Target, endpoint: str, retry_for_s: float,
            files: Mapping[str, bytes | Path] | None = None, token: str | None = None) -> PublishError:
    """A PublishError that says what failed and how to fix it (never quoting the token).

    `files`: what the commit held (a 413 names the largest); `token`: the token used, to say where it came from."""
    where = f"{target.repo_type} repo {target.repo_id!r} on {endpoint}"
    if isinstance(error, PublishError):
        return error
    if isinstance(error, OfflineModeIsEnabled):
        return PublishError("HF_HUB_OFFLINE is set: publishing needs the Hub. Unset it, or use --dry-run.")
    if isinstance(error, ValueError) and "Invalid metadata in README.md" in str(error):
        return PublishError(f"The Hub rejected the card's metadata for {where}; nothing was uploaded.\n{error}")
    if isinstance(error, NETWORK_ERRORS) or (isinstance(error, HfHubHTTPError) and is_transient(error)):
        detail, fix = _network_failure(error, endpoint)
        return PublishError(
            f"Could not publish to {where}: the Hub stayed unreachable or failing for {retry_for_s:.0f} s ({detail}). "
            f"Nothing was published. {fix}"
        )
    if isinstance(error, RevisionNotFoundError):
        return PublishError(f"Revision {target.revision!r} does not exist in {where}. Nothing was published. Create "
                            "the branch or use --revision main.")
    if isinstance(error, HfHubHTTPError):
        return _explain_status(error, target, endpoint, files or {}, token_source(token))
    return PublishError(f"Publishing to {where} failed: {_short(error)}. Nothing was published.")


def _network_failure(error: BaseException, endpoint: str) -> tuple[str, str]:
    """What went wrong on the way to the Hub, and what to do about it."""
    if isinstance(error, HfHubHTTPError):
        return (f"its last answer was {_status(error)}: {_server_message(error)}",
                "The Hub may be down or overloaded: retry later.")
    if isinstance(error, (_httpx.TimeoutException, TimeoutError)):
        return f"it did not answer in time: {_short(error)}", "Check the network and proxy, then retry."
    if isinstance(error, (_httpx.ConnectError, ConnectionRefusedError)):
        return (f"no connection could be made: {_short(error)}",
                f"Check that --endpoint/HF_ENDPOINT ({endpoint}) is the Hub's URL and reachable from here, then retry.")
    return (f"the connection closed before the Hub answered: {_short(error)}",
            "Check the network, then retry (a proxy that refuses large uploads fails the same way each time).")


def token_source(token: str | None) -> str:
    """Where the token came from, in words: HF_TOKEN, the saved login, or the caller."""
    if token and token == os.environ.get("HF_TOKEN"):
        return "HF_TOKEN"
    if token and token == get_token():
        return "the saved login (`hf auth login`)"
    return "the `token` argument"


def _explain_status(error: HfHubHTTPError, target: Target, endpoint: str, files: Mapping[str, bytes | Path],
                    source: str) -> PublishError:
    status, server = _status(error), _server_message(error)
    where = f"{target.repo_type} repo {target.repo_id!r} on {endpoint}"
    if status == 401:
        fix = {"HF_TOKEN": "Set HF_TOKEN to a valid token with write access, or unset it to use the saved login "
                           "(`hf auth login`)",
               "the saved login (`hf auth login`)": "Run `hf auth login` with a valid token with write access, or "
                                                    "set HF_TOKEN to one"}.get(
            source, "Pass a valid token with write access, or leave it out to use HF_TOKEN or the saved login")
        return PublishError(
            f"The Hub rejected the token (401) from {source} for {where}: it is invalid or expired ({server}). "
            f"Nothing was published. {fix}; tokens are created at {endpoint}/settings/tokens."
        )
    if status == 403:
        return PublishError(
            f"The token lacks write rights on the namespace {target.namespace!r} (403) for {where} ({server}). "
            f"Nothing was published. Use a token with the 'write' role for {target.namespace!r} (a read-only token "
            "cannot publish; a fine-grained token needs write access to that user or organization), or publish "
            "under a namespace the token can write."
        )
    if status == 404 or isinstance(error, RepositoryNotFoundError):
        return PublishError(
            f"Not found (404): {where} ({server}). Nothing was published. Check that --endpoint/HF_ENDPOINT "
            f"({endpoint}) is the Hub's URL and that --repo-id is right; a private repo needs a token that can read it."
        )
    if status in (409, 412):
        return PublishError(f"Conflict ({status}) on {where}: {server}. Nothing was published. Someone else may be "
                            "writing to it at the same time; publish again.")
    if status == 413:
        return PublishError(
            f"The Hub refused the upload as too large (413) for {where} ({server}). Nothing was published. "
            f"{_largest(files)}Leave files the repository does not need out of the run directory, then publish again."
        )
    if status in (400, 422):
        return PublishError(
            f"The Hub rejected the commit ({status}) for {where}: {server}. Nothing was published. Fix or remove what "
            "it names in the run directory (or pass --dry-run to see every file that would be uploaded), then "
            "publish again."
        )
    return PublishError(f"The Hub answered {status} for {where}: {server}. Nothing was published.")


def _largest(files: Mapping[str, bytes | Path]) -> str:
    sizes = {path: len(c) if isinstance(c, bytes) else Path(c).stat().st_size for path, c in files.items()}
    if not sizes:
        return ""
    path = max(sizes, key=sizes.get)
    return f"Its largest file is {path} ({sizes[path] / 1e6:.1f} MB). "


def _status(error: HfHubHTTPError) -> int | None:
    response = getattr(error, "response", None)
    return getattr(response, "status_code", None)


def _server_message(error: HfHubHTTPError) -> str:
    return getattr(error, "server_message", None) or str(error).splitlines()[0]


def _short(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"

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

from huggingface_hub import CommitInfo, CommitOperationAdd, CommitOperationDelete, HfApi, constants, get_token
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


def check_repo_id(repo_id: str) -> str:
    """`namespace/name` with the Hub's allowed characters and huggingface_hub's rules (no leading or trailing '-' or
    '.', no '--' or '..', no '.git' ending, at most 96 characters); ValueError otherwise, before any request."""
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
        raise ValueError(f"--repo-id must look like 'namespace/name' (letters, digits, '-', '_', '.'; no leading or "
                         f"trailing '-' or '.', no '--' or '..'), got {repo_id!r}{reason}.")
    return repo_id


def resolve_endpoint(endpoint: str | None = None) -> str:
    """`endpoint`, else `HF_ENDPOINT`, else the public Hub."""
    return (endpoint or os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def resolve_token(token: str | None = None) -> str:
    """`token`, else `HF_TOKEN`, else the saved login; ValueError (naming no token) when there is none."""
    found = token or get_token()
    if not found:
        raise ValueError(
            "No Hugging Face token found. Set HF_TOKEN to a token with write access, or run `hf auth login` "
            "(or pass --dry-run to see what would be uploaded)."
        )
    return found


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
) -> CommitInfo:
    """Create the repository if needed, then commit every file in one commit: all of them or none.

    `stale(api)`: paths of files in the repository to delete in the same commit (asked again on each attempt).

    Transient failures (connection errors, 5xx, 429) are retried with exponential backoff for at most
    `retry_for_s` seconds. Each attempt builds fresh operations, so when a commit landed but its answer was
    lost, the retry finds every file unchanged and adds no second commit.
    """
    if constants.is_offline_mode():
        raise PublishError("HF_HUB_OFFLINE is set: publishing needs the Hub. Unset HF_HUB_OFFLINE, or use --dry-run.")
    api = HfApi(endpoint=endpoint, token=token, library_name="hfssl")

    def attempt() -> CommitInfo:
        api.create_repo(target.repo_id, repo_type=target.repo_type, private=True if target.private else None,
                        exist_ok=True, space_sdk=target.space_sdk)
        # create_repo leaves an existing repository as it is: asked for a private one, never upload to a public one.
        if target.private and not api.repo_info(target.repo_id, repo_type=target.repo_type).private:
            raise PublishError(
                f"{target.repo_type.capitalize()} repo {target.repo_id!r} already exists and is public, so --private "
                "(which applies when the repository is created) cannot keep this upload private. Nothing was "
                "uploaded. Make the repository private in its settings on the Hub, or publish without --private."
            )
        if target.revision not in (None, constants.DEFAULT_REVISION) and not target.create_pr:
            api.create_branch(target.repo_id, repo_type=target.repo_type, branch=target.revision, exist_ok=True)
        operations = [CommitOperationAdd(path_in_repo=path, path_or_fileobj=content) for path, content in files.items()]
        operations += [CommitOperationDelete(path_in_repo=path) for path in (stale(api) if stale else ())]
        return api.create_commit(
            target.repo_id, operations, commit_message=commit_message, commit_description=commit_description,
            repo_type=target.repo_type, revision=target.revision, create_pr=target.create_pr,
        )

    try:
        return with_retries(attempt, retry_for_s)
    except Exception as error:
        raise explain(error, target, endpoint, retry_for_s) from error


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


def explain(error: BaseException, target: Target, endpoint: str, retry_for_s: float) -> PublishError:
    """A PublishError that says what failed and how to fix it (never quoting the token)."""
    where = f"{target.repo_type} repo {target.repo_id!r} on {endpoint}"
    if isinstance(error, PublishError):
        return error
    if isinstance(error, OfflineModeIsEnabled):
        return PublishError("HF_HUB_OFFLINE is set: publishing needs the Hub. Unset it, or use --dry-run.")
    if isinstance(error, ValueError) and "Invalid metadata in README.md" in str(error):
        return PublishError(f"The Hub rejected the card's metadata for {where}; nothing was uploaded.\n{error}")
    if isinstance(error, NETWORK_ERRORS) or (isinstance(error, HfHubHTTPError) and is_transient(error)):
        return PublishError(
            f"Could not publish to {where}: the Hub stayed unreachable or failing for {retry_for_s:.0f} s "
            f"({_short(error)}). Nothing was published. Check the network and --endpoint/HF_ENDPOINT, then retry."
        )
    if isinstance(error, RevisionNotFoundError):
        return PublishError(f"Revision {target.revision!r} does not exist in {where}. Create the branch or use --revision main.")
    if isinstance(error, HfHubHTTPError):
        return _explain_status(error, target, where)
    return PublishError(f"Publishing to {where} failed: {_short(error)}")


def _explain_status(error: HfHubHTTPError, target: Target, where: str) -> PublishError:
    status, server = _status(error), _server_message(error)
    if status == 401:
        return PublishError(
            f"The Hub rejected the token (401) for {where}: it is missing, invalid or expired ({server}). "
            "Create a token with write access in your Hub settings, then set HF_TOKEN or run `hf auth login`."
        )
    if status == 403:
        return PublishError(
            f"The token lacks write rights on the namespace {target.namespace!r} (403) for {where} ({server}). "
            f"Use a token with the 'write' role for {target.namespace!r} (a fine-grained token needs write access to "
            "that user or organization), or publish under a namespace the token can write."
        )
    if status == 404 or isinstance(error, RepositoryNotFoundError):
        return PublishError(f"Not found (404): {where} ({server}). Check --repo-id; a private repo needs a token that can read it.")
    if status in (409, 412):
        return PublishError(f"Conflict ({status}) on {where}: {server}. Someone else may be writing to it; retry.")
    return PublishError(f"The Hub answered {status} for {where}: {server}")


def _status(error: HfHubHTTPError) -> int | None:
    response = getattr(error, "response", None)
    return getattr(response, "status_code", None)


def _server_message(error: HfHubHTTPError) -> str:
    return getattr(error, "server_message", None) or str(error).splitlines()[0]


def _short(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"

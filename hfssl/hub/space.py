"""Publish the Gradio demo in `spaces/` as a Hugging Face Space, with the model id filled in.

The Space gets `spaces/` as it is (app.py, requirements.txt, ...), its README's YAML header set to `sdk: gradio`,
`sdk_version` = the installed gradio, `app_file: app.py` and `models: [model_id]`, a `hfssl_space.json` beside
app.py (`{"model_id": ...}`: the app's default model; the HFSSL_MODEL_ID variable overrides it), and a copy of
the hfssl package so `import hfssl` works in the Space without installing hfssl from an index.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
from pathlib import Path
from typing import Any

import yaml
from huggingface_hub import get_token

import hfssl

from .bundle import find_secret, folder_files
from .client import (
    DEFAULT_RETRY_FOR_S,
    NETWORK_ERRORS,
    Target,
    check_repo_id,
    repo_url,
    resolve_endpoint,
    resolve_token,
    upload_files,
    with_retries,
)
from .metadata import check_card, split_front_matter
from .publish import write_dry_run

logger = logging.getLogger(__name__)

SPACE_CONFIG = "hfssl_space.json"
PACKAGE_SUFFIXES = (".py", ".json", ".yaml", ".md", ".txt")


def default_spaces_dir() -> Path:
    """`spaces/` of the hfssl checkout this package was imported from."""
    return Path(hfssl.__file__).resolve().parents[1] / "spaces"


def publish_space(
    repo_id: str,
    model_id: str,
    *,
    endpoint: str | None = None,
    token: str | None = None,
    private: bool = False,
    dry_run: bool = False,
    dry_run_dir: str | os.PathLike | None = None,
    spaces_dir: str | os.PathLike | None = None,
    sdk_version: str | None = None,
    commit_message: str | None = None,
    vendor_hfssl: bool = True,
    retry_for_s: float = DEFAULT_RETRY_FOR_S,
) -> dict[str, Any]:
    """Upload `spaces/` as the Space `repo_id` (created with the gradio SDK if missing) demoing `model_id`.

    With `dry_run`, the files are written to `dry_run_dir` (default ./space_preview) and nothing is uploaded.
    Returns {"repo_id", "url", "commit_sha", "commit_url", "endpoint", "files"} (dry run: "folder" instead).
    """
    check_repo_id(repo_id)
    check_repo_id(model_id, "--model")
    endpoint = resolve_endpoint(endpoint)
    token = (token or get_token()) if dry_run else resolve_token(token)
    files = build_space_files(model_id, Path(spaces_dir) if spaces_dir else default_spaces_dir(),
                              sdk_version=sdk_version or installed_gradio_version(), vendor_hfssl=vendor_hfssl)
    leaked = find_secret(files, (token,) if token else ())
    if leaked:
        raise ValueError(f"{leaked} contains the Hub token; remove it before publishing the Space.")
    if dry_run:
        folder = write_dry_run(files, Path(dry_run_dir) if dry_run_dir else Path("space_preview"))
        return {"repo_id": repo_id, "dry_run": True, "folder": str(folder), "files": sorted(files)}
    check_demo_model(model_id, endpoint, token)
    target = Target(repo_id, "space", private=private, space_sdk="gradio")
    info = upload_files(files, target, commit_message=commit_message or f"Demo of {model_id} (hfssl)",
                        endpoint=endpoint, token=token, retry_for_s=retry_for_s).commit
    url = repo_url(endpoint, target)
    logger.info("Published the Space %s (commit %s).", url, info.oid[:10])
    return {"repo_id": repo_id, "url": url, "commit_sha": info.oid, "commit_url": info.commit_url,
            "endpoint": endpoint, "files": sorted(files)}


def check_demo_model(model_id: str, endpoint: str, token: str | None) -> None:
    """Before uploading a Space, look at the model it will show: one that is missing or private gets a warning,
    since the Space would fail to start until it is published (or, when private, given an HF_TOKEN secret that can
    read it). An adapter repository is fine: the demo loads it on its base model."""
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

    if constants.is_offline_mode():
        return  # the upload refuses offline mode with its own message
    api = HfApi(endpoint=endpoint, token=token, library_name="hfssl")
    try:
        info = with_retries(lambda: api.model_info(model_id), 10.0)
    except RepositoryNotFoundError:
        logger.warning("The model %s is not on %s (or this token cannot read it): the Space will fail to start until "
                       "it is published there (hfssl publish RUN --repo-id %s).", model_id, endpoint, model_id)
        return
    except (HfHubHTTPError, *NETWORK_ERRORS) as error:  # the upload that follows reports the Hub's state
        logger.warning("Could not check the model %s on %s (%s).", model_id, endpoint, error)
        return
    if info.private:
        logger.warning("The model %s is private: the Space can load it only with a secret HF_TOKEN that can read it "
                       "(set it in the Space's settings), or make the model public.", model_id)


def installed_gradio_version() -> str:
    """The installed gradio's version, which the Space's `sdk_version` must match."""
    try:
        return importlib.metadata.version("gradio")
    except importlib.metadata.PackageNotFoundError:
        raise ValueError(
            "gradio is not installed, so the Space's sdk_version is unknown: install gradio (pip install gradio) "
            "or pass --sdk-version."
        ) from None


def build_space_files(model_id: str, spaces_dir: Path, *, sdk_version: str, vendor_hfssl: bool = True) -> dict[str, bytes]:
    """The Space repository's files: spaces/ with its README header filled in, the model config, hfssl's code."""
    for name in ("app.py", "README.md", "requirements.txt"):
        if not (spaces_dir / name).is_file():
            raise FileNotFoundError(
                f"{spaces_dir / name} is missing: publish-space uploads spaces/ (app.py, README.md, requirements.txt). "
                "Pass --spaces-dir to use another folder."
            )
    files = {rel: path.read_bytes() for rel, path in folder_files(spaces_dir, weights=False).items()}
    files["README.md"] = space_readme(files["README.md"].decode("utf-8"), model_id, sdk_version).encode()
    files[SPACE_CONFIG] = (json.dumps({"model_id": model_id, "hfssl_version": hfssl.__version__}, indent=2) + "\n").encode()
    if vendor_hfssl:
        files.update(package_files())
    return dict(sorted(files.items()))


def space_readme(template: str, model_id: str, sdk_version: str) -> str:
    """The README template with its YAML header set for this Space, checked like the Hub checks it."""
    metadata, body = split_front_matter(template)
    metadata = {**(metadata or {}), "sdk": "gradio", "sdk_version": sdk_version,
                "app_file": (metadata or {}).get("app_file", "app.py"), "models": [model_id]}
    header = yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True).strip()
    text = f"---\n{header}\n---\n{body}"
    check_card(text, "space")
    return text


def package_files() -> dict[str, bytes]:
    """The hfssl package's source and data files, under hfssl/, for `import hfssl` inside the Space."""
    root = Path(hfssl.__file__).resolve().parent
    return {f"hfssl/{rel}": path.read_bytes() for rel, path in folder_files(root, weights=False).items()
            if path.suffix in PACKAGE_SUFFIXES}

"""Publish a run directory to the Hub in one commit, or write the exact folder that would be uploaded.

    publish_run("runs/my-mlm", "me/my-mlm")                # model, card, eval artifacts, sanitized run.json
    publish_run("runs/my-mlm-sst", "me/my-mlm-sst")        # a PEFT adapter whose base is the parent's Hub repo
    publish_run("runs/my-mlm", "me/my-mlm", dry_run=True)  # writes runs/my-mlm/publish_preview/, uploads nothing

After a successful upload, run.json gets a `publish` section (repo id, commit, url, revision, endpoint).
"""

from __future__ import annotations

import json
import logging
import os
import posixpath
import re
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from huggingface_hub import HfApi, constants, get_token
from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

from ..training.rundir import RunDirectory, replace_dir
from .bundle import (
    check_model_folder,
    check_safetensors,
    eval_files,
    find_local_path,
    find_secret,
    folder_files,
    is_adapter_run,
    local_prefixes,
    public_json,
    read_json_file,
    sanitize_manifest,
    without_load_state,
)
from .client import (
    DEFAULT_RETRY_FOR_S,
    Target,
    check_repo_id,
    repo_url,
    resolve_endpoint,
    resolve_token,
    upload_files,
)
from .metadata import check_card, split_front_matter

logger = logging.getLogger(__name__)

DRY_RUN_FOLDER = "publish_preview"
PUBLISHED_FILES = "published_files"  # the published run.json's list of the files in that commit
PUBLISH_SECTION = "publish"
REPO_ID_SLOT = "{{repo_id}}"


def publish_run(
    run_dir: str | os.PathLike,
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
    create_pr: bool = False,
    endpoint: str | None = None,
    token: str | None = None,
    dry_run: bool = False,
    dry_run_dir: str | os.PathLike | None = None,
    base_model_id: str | None = None,
    retry_for_s: float = DEFAULT_RETRY_FOR_S,
    full_model: bool = False,
) -> dict[str, Any]:
    """Upload a run as one commit to `repo_id` (created if missing), or with `dry_run` write what would be uploaded.

    Args:
        run_dir: a run directory with `model/` (model run) or `adapter/` (PEFT adapter run) and run.json.
        repo_id: "namespace/name".
        revision: branch to commit to (created from main if missing); default main.
        create_pr: open a pull request (refs/pr/N) instead of committing to the branch.
        endpoint: Hub URL; default HF_ENDPOINT, else the public Hub.
        token: default HF_TOKEN, else the saved login. Never printed, logged or written.
        dry_run_dir: where a dry run writes its folder; default <run_dir>/publish_preview.
        base_model_id: adapters only: the base model's Hub id; default the parent run's `publish.repo_id`.
        full_model: a fine-tuned run with adapter/ and model/ (a merged adapter): publish model/, the complete
            classifier, instead of the adapter, so the repository loads without its base (or an unpublished parent).
        retry_for_s: how long connection failures and 5xx answers are retried.

    Returns:
        {"repo_id", "url", "commit_sha", "commit_url", "revision", "pr_url", "endpoint", "files"} or, for a dry run,
        {"repo_id", "dry_run": True, "folder", "files"}.
    """
    run = RunDirectory(run_dir)
    check_repo_id(repo_id)
    if base_model_id is not None and not _is_repo_id(base_model_id):
        raise ValueError(f"--base-model-id must be the base model's Hub id, NAMESPACE/NAME (a published model), got "
                         f"{base_model_id!r}.")
    endpoint = resolve_endpoint(endpoint)
    token = (token or get_token()) if dry_run else resolve_token(token)
    # A branch other than main: the card's code loads from it (a pull request's ref is not known before it opens).
    branch = revision if revision not in (None, constants.DEFAULT_REVISION) and not create_pr else None
    files = build_repo_files(run, repo_id, base_model_id=base_model_id, secrets=(token,) if token else (),
                             revision=branch, endpoint=endpoint, full_model=full_model)
    if dry_run:
        folder = write_dry_run(files, Path(dry_run_dir) if dry_run_dir else run.path / DRY_RUN_FOLDER)
        logger.info("Dry run: %d files written to %s; nothing uploaded.", len(files), folder)
        return {"repo_id": repo_id, "dry_run": True, "folder": str(folder), "files": sorted(files)}
    target = Target(repo_id, "model", revision, private, create_pr)
    message = commit_message or f"Publish {run.path.name} with hfssl"
    upload = upload_files(files, target, commit_message=message, endpoint=endpoint, token=token,
                          retry_for_s=retry_for_s, stale=lambda api: stale_files(api, target, files))
    info = upload.commit
    # `private` as the repository is: publishing without --private to a private repository keeps it private.
    result = {
        "repo_id": repo_id, "url": repo_url(endpoint, target), "commit_sha": info.oid, "commit_url": info.commit_url,
        "revision": info.pr_revision or revision or "main", "pr_url": info.pr_url, "endpoint": endpoint,
        "private": upload.private, "published": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    run.update_manifest(**{PUBLISH_SECTION: result})
    logger.info("Published %s at %s (commit %s).", run.path, result["url"], info.oid[:10])
    return {**result, "files": sorted(files)}


def build_repo_files(
    run: RunDirectory, repo_id: str, *, base_model_id: str | None = None, secrets: tuple[str, ...] = (),
    revision: str | None = None, endpoint: str | None = None, full_model: bool = False,
) -> dict[str, bytes]:
    """Every file of the repository, path in repo -> bytes, checked (card metadata, no secrets, no local paths)
    before upload. `revision`: the branch they go to, when not main (the card's code loads from it). `endpoint`: the
    Hub they go to; an adapter whose parent run was published to another Hub is refused (its base would not resolve)."""
    if not run.path.is_dir():
        raise FileNotFoundError(f"Run directory {run.path} does not exist.")
    manifest = read_json_file(run.manifest_path) if run.manifest_path.is_file() else None
    if not manifest:
        raise FileNotFoundError(f"{run.manifest_path} is missing: publish a run directory written by hfssl.")
    if not isinstance(manifest, dict):
        raise ValueError(f"{run.manifest_path} holds a JSON {type(manifest).__name__}, not the object hfssl "  # noqa: TRY004
                         "writes: restore the run's run.json before publishing.")
    public_manifest = sanitize_manifest(manifest, secrets, run_path=run.path)
    if full_model and not (run.model_dir / "config.json").is_file():
        raise FileNotFoundError(
            f"--full-model publishes {run.model_dir}, which does not exist: this run holds an adapter only (its method "
            "cannot merge into the weights). Publish the adapter (leave out --full-model) with its base on the Hub.")
    if full_model and base_model_id is not None:
        raise ValueError("--base-model-id names an adapter's base, and --full-model publishes no adapter; pass one.")
    if is_adapter_run(run.path) and not full_model:
        files, _, base = _adapter_files(run, manifest, base_model_id, endpoint)
    else:
        files, base = _model_files(run), None
    # Evaluation and audit JSON record where their data and models were read from: published sanitized, as run.json.
    for rel, path in eval_files(run.path).items():
        files[rel] = public_json(path.read_bytes(), secrets, run.path) if rel.endswith(".json") else path.read_bytes()
    if (run.path / "bias_audit.json").is_file():
        files["bias_audit.json"] = public_json((run.path / "bias_audit.json").read_bytes(), secrets, run.path)
    files["README.md"] = _card(run, repo_id, base, revision, full_model and is_adapter_run(run.path))
    # The file list lets the next publish to this repository delete what this one uploaded and it does not.
    listed = sorted({*files, "run.json"})
    files["run.json"] = (json.dumps({**public_manifest, PUBLISHED_FILES: listed}, indent=2, default=str) + "\n").encode()
    leaked = find_secret(files, secrets)
    if leaked:
        raise ValueError(f"{leaked} contains the Hub token; remove it from the run before publishing.")
    missing = broken_links(files["README.md"].decode("utf-8"), set(files))
    if missing:
        logger.warning("The card links %s, which the repository will not hold: those links and images will be broken "
                       "on the Hub. Link files under eval/ (uploaded next to README.md) or full URLs.",
                       ", ".join(missing))
    local = find_local_path(files, local_prefixes(run.path))
    if local:
        raise ValueError(f"{local[0]} would publish the local path {local[1]!r}; remove it from that file in "
                         f"{run.path} (or the file itself) before publishing.")
    return dict(sorted(files.items()))


def broken_links(card: str, repo_files: set[str]) -> list[str]:
    """Relative links and images of a card (Markdown or HTML) that name no file of the repository (a hand-edited card
    may point at files in the run directory that are not uploaded); fenced code is not searched."""
    text = re.sub(r"```.*?```", "", card, flags=re.DOTALL)
    links = re.findall(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)", text) + re.findall(r"(?:src|href)\s*=\s*[\"']([^\"']+)", text)
    missing = []
    for link in links:
        if re.match(r"^([a-z][\w+.-]*:|#|//)", link, flags=re.IGNORECASE):
            continue  # a URL, mailto:, or an anchor in the card
        target = posixpath.normpath(unquote(link.split("#")[0].split("?")[0]).lstrip("/"))
        if target and target != "." and target not in repo_files and link not in missing:
            missing.append(link)
    return missing


def stale_files(api: HfApi, target: Target, files: dict[str, bytes]) -> list[str]:
    """Files an earlier hfssl publish put in the repository (its run.json lists them) that this publish does not
    have: a model's weights after an adapter, an earlier audit or evaluation. Files added by other means stay; so
    does everything in a repository whose run.json lists nothing (published by an older hfssl), with a warning."""
    revision = target.revision or constants.DEFAULT_REVISION
    try:
        present = set(api.list_repo_files(target.repo_id, repo_type=target.repo_type, revision=revision))
    except (RepositoryNotFoundError, RevisionNotFoundError):
        return []
    if "run.json" not in present:
        return []
    with tempfile.TemporaryDirectory() as folder:
        path = api.hf_hub_download(target.repo_id, "run.json", repo_type=target.repo_type, revision=revision,
                                   local_dir=folder)
        try:
            listed = json.loads(Path(path).read_text(encoding="utf-8")).get(PUBLISHED_FILES)
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            listed = None
    if not isinstance(listed, list):
        extra = sorted(present - set(files) - {".gitattributes"})
        if extra:
            logger.warning("%s already holds files this run does not have: %s. They stay (its run.json does not say "
                           "which an earlier hfssl publish uploaded); delete them on the Hub if they are stale.",
                           target.repo_id, ", ".join(extra))
        return []
    return sorted((set(map(str, listed)) & present) - set(files))


def _model_files(run: RunDirectory) -> dict[str, bytes]:
    if not run.model_dir.is_dir():
        raise FileNotFoundError(
            f"{run.model_dir} does not exist: a model run needs model/ (save_pretrained output), "
            "an adapter run needs adapter/."
        )
    found = folder_files(run.model_dir, skip=("README.md",))
    check_model_folder(found, run.model_dir)
    return {rel: without_load_state(rel, path.read_bytes()) for rel, path in found.items()}


def _adapter_files(
    run: RunDirectory, manifest: dict[str, Any], base_model_id: str | None, endpoint: str | None = None
) -> tuple[dict[str, bytes], dict[str, Any], str]:
    """The adapter folder (peft's template README left out), its config pointing at the base model's Hub id."""
    if base_model_id is None and endpoint is not None:
        _check_parent_publish(run, manifest, endpoint)
    folder = run.path / "adapter"
    found = folder_files(folder, skip=("README.md",))
    if not any(rel.endswith(".safetensors") for rel in found):
        raise FileNotFoundError(f"{folder} has no adapter_model.safetensors; save the adapter with peft's save_pretrained.")
    check_safetensors(found)
    config = read_json_file(found["adapter_config.json"])
    base = base_model_id or parent_hub_id(run, manifest)
    files = {rel: without_load_state(rel, path.read_bytes()) for rel, path in found.items()}
    config["base_model_name_or_path"] = base
    if base_model_id is None:
        # The parent's published commit: publishing the parent again later does not change what this loads on.
        config["revision"] = _parent_commit(run, manifest) or config.get("revision")
    files["adapter_config.json"] = (json.dumps(config, indent=2, sort_keys=True) + "\n").encode()
    return files, config, base


def _check_parent_publish(run: RunDirectory, manifest: dict[str, Any], endpoint: str) -> None:
    """Refuse an adapter whose parent run was last published to another Hub: its base id and pinned commit name a
    repository there, which loading the adapter from `endpoint` would not find (or find at another commit). A base
    published private gets a warning: who cannot read it cannot load the adapter."""
    parent = _parent_reference(manifest)
    parent_run = _find_parent(run, parent) if parent else None
    published = (parent_run.read_manifest().get(PUBLISH_SECTION) or {}) if parent_run else {}
    where = published.get("endpoint")
    if published.get("repo_id") and where and where.rstrip("/") != endpoint.rstrip("/"):
        raise ValueError(
            f"The parent run {parent_run.path} was last published to {where} ({published['repo_id']}), not to "
            f"{endpoint} where this adapter goes: its base model and pinned commit would not resolve there. Publish "
            f"the parent to {endpoint} first (hfssl publish {parent_run.path} --repo-id NAMESPACE/NAME --endpoint "
            f"{endpoint}), or pass --base-model-id with the base model's id on {endpoint}."
        )
    if published.get("repo_id") and published.get("private"):
        logger.warning("The adapter's base %s (where the parent run %s was last published) is private: only those who "
                       "can read it can load this adapter. Make it public, or publish the parent to a public "
                       "repository first.", published["repo_id"], parent_run.path)


def parent_hub_id(run: RunDirectory, manifest: dict[str, Any]) -> str:
    """The base model's Hub id: the parent run's run.json `publish.repo_id`, or the parent itself if a Hub id."""
    parent = _parent_reference(manifest)
    if not parent:
        raise ValueError(
            f"{run.manifest_path} names no parent run (finetune.parent): pass --base-model-id with the base model's Hub id."
        )
    parent_run = _find_parent(run, parent)
    if parent_run is None:
        return _parent_as_hub_id(run, parent)
    published = parent_run.read_manifest().get(PUBLISH_SECTION) or {}
    if not published.get("repo_id"):
        raise ValueError(
            f"The parent run {parent_run.path} has not been published, so the adapter's base has no Hub id. "
            f"Publish it first (hfssl publish {parent_run.path} --repo-id NAMESPACE/NAME) or pass --base-model-id."
        )
    return published["repo_id"]


def _parent_reference(manifest: dict[str, Any]) -> str | None:
    """run.json's `finetune.parent`: the parent run's path (or a dict with `path`, as the finetune stage writes
    it), or a Hub id."""
    parent = (manifest.get("finetune") or {}).get("parent")
    if isinstance(parent, dict):
        parent = parent.get("path") or parent.get("run_dir")
    return str(parent) if parent else None


def _parent_commit(run: RunDirectory, manifest: dict[str, Any]) -> str | None:
    """The commit the parent run was last published as (its run.json `publish.commit_sha`), if it is a local run."""
    parent = _parent_reference(manifest)
    parent_run = _find_parent(run, parent) if parent else None
    published = (parent_run.read_manifest().get(PUBLISH_SECTION) or {}) if parent_run else {}
    return published.get("commit_sha")


def _find_parent(run: RunDirectory, parent: str) -> RunDirectory | None:
    """The parent's run directory: the path itself, relative to the run, a sibling, or above its model/ folder."""
    path = Path(parent).expanduser()
    candidates = [path, run.path / parent, run.path.parent / path.name]
    if path.name == "model":
        candidates.append(path.parent)
    return next((RunDirectory(c) for c in candidates if (c / "run.json").is_file()), None)


def _is_repo_id(value: str) -> bool:
    try:
        check_repo_id(value)
    except ValueError:
        return False
    return True


def _parent_as_hub_id(run: RunDirectory, parent: str) -> str:
    """A parent that was a Hub id to begin with is the base; a local parent that is gone is an error."""
    if not Path(parent).expanduser().exists():
        try:
            return check_repo_id(parent)
        except ValueError:
            pass
    raise FileNotFoundError(
        f"The parent run {parent!r} named in {run.manifest_path} was not found; pass --base-model-id instead."
    )


def _card(run: RunDirectory, repo_id: str, base_model: str | None, revision: str | None = None,
          full_model: bool = False) -> bytes:
    """The repository's README.md, checked offline.

    The card is rendered from run.json as `hfssl card` renders it, so it shows every evaluation and audit the
    run has now. A model/README.md (adapter/README.md) that `hfssl card` wrote and nobody edited since (its digest is the one run.json
    records) is rendered again, in case the run gained results after it; one edited by hand is published as it
    is, with a warning when the run's results changed after it was rendered.
    """
    from ..cards.render import CARD_SECTION, card_digest, card_text

    rendered = run.card_dir / "README.md"
    record = run.read_manifest().get(CARD_SECTION) or {}
    license = record.get("license")
    if full_model:  # the card `hfssl card` writes for such a run is the adapter's: render the full model's
        text = card_text(run.path, repo_id, license, revision, full_model=True)
        if rendered.is_file() and record.get("sha256") != card_digest(rendered.read_text(encoding="utf-8")):
            logger.warning("%s was edited by hand for the adapter; --full-model publishes a card rendered for the "
                           "merged model instead.", rendered)
    # adapter/README.md is peft's template until `hfssl card` (which records it) writes the card there.
    elif not rendered.is_file() or (rendered.parent == run.adapter_dir and not record):
        text = card_text(run.path, repo_id, license, revision)
    else:
        existing = rendered.read_text(encoding="utf-8")
        if record.get("sha256") == card_digest(existing):
            text = card_text(run.path, repo_id, license, revision)
            if card_digest(card_text(run.path, record.get("repo_id"), license)) != record["sha256"]:
                logger.info("The run has results newer than %s: the published card is rendered again with them.",
                            rendered)
        else:
            # The card stage cannot know where the run will be published: `{{repo_id}}` stands for it.
            text = existing.replace(REPO_ID_SLOT, repo_id)
            now = card_text(run.path, record.get("repo_id"), license)
            # What it was rendered from, if known (then only newer results matter), else the file itself.
            if card_digest(now) != record.get("sha256", card_digest(existing)):
                logger.warning(
                    "%s differs from the card `hfssl card` renders from run.json now (edited by hand, or the run "
                    "has results newer than the card): publishing it as it is. `hfssl card %s` renders it again "
                    "(replacing hand edits).", rendered, run.path)
    if base_model:
        text = _with_base_model(text, base_model)
    check_card(text, "model")
    return text.encode()


def _with_base_model(text: str, base_model: str) -> str:
    """Set `base_model` in a card's YAML header to the Hub id (the card stage may only know a local path)."""
    import yaml

    metadata, body = split_front_matter(text)
    metadata = {**(metadata or {}), "base_model": base_model}
    return f"---\n{yaml.safe_dump(metadata, sort_keys=False).strip()}\n---\n{body}"


def write_dry_run(files: dict[str, bytes], folder: Path) -> Path:
    """Write exactly the files that would be uploaded into `folder`, replacing it atomically."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        for rel, content in files.items():
            target = staging / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        replace_dir(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return folder

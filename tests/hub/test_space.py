"""Publishing the demo Space: spaces/ with its README header filled in, the model id, and hfssl's code."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import re
import shutil
from pathlib import Path

import pytest
import tomllib
from huggingface_hub import HfApi, hf_hub_download

from hfssl.hub import publish_space
from hfssl.hub.metadata import split_front_matter
from hfssl.hub.space import SPACE_CONFIG, default_spaces_dir

from .conftest import TOKEN, USER

REPO_ROOT = Path(__file__).resolve().parents[2]
GRADIO = importlib.metadata.version("gradio") if importlib.util.find_spec("gradio") else "6.0.0"


@pytest.fixture
def spaces_dir(tmp_path) -> Path:
    """The repo's spaces/ templates, with a placeholder app.py where the demo's is not written yet."""
    folder = tmp_path / "spaces"
    shutil.copytree(default_spaces_dir(), folder)
    if not (folder / "app.py").exists():
        (folder / "app.py").write_text("import json\nMODEL_ID = json.load(open('hfssl_space.json'))['model_id']\n")
    return folder


@pytest.mark.usefixtures("online")
def test_space_round_trip(hub, spaces_dir, tmp_path):
    repo_id, model_id = f"{USER}/demo", f"{USER}/tiny-mlm"
    result = publish_space(repo_id, model_id, endpoint=hub.endpoint, token=TOKEN, spaces_dir=spaces_dir,
                           sdk_version=GRADIO)
    info = HfApi(endpoint=hub.endpoint).space_info(repo_id)
    assert info.sdk == "gradio" and info.sha == result["commit_sha"]
    readme = Path(hf_hub_download(repo_id, "README.md", repo_type="space", endpoint=hub.endpoint,
                                  cache_dir=tmp_path / "cache")).read_text()
    metadata, _ = split_front_matter(readme)
    assert metadata["sdk"] == "gradio" and metadata["sdk_version"] == GRADIO
    assert metadata["app_file"] == "app.py" and metadata["models"] == [model_id]
    files = hub.files(repo_id, repo_type="space")
    assert json.loads(files[SPACE_CONFIG])["model_id"] == model_id
    assert files["app.py"] == (spaces_dir / "app.py").read_bytes()
    assert "hfssl/__init__.py" in files and "hfssl/hub/space.py" in files
    assert not any("__pycache__" in f or f.endswith(".pyc") for f in files)


def test_space_dry_run_writes_what_would_be_uploaded(hub, spaces_dir, tmp_path):
    result = publish_space(f"{USER}/demo", f"{USER}/m", dry_run=True, dry_run_dir=tmp_path / "preview",
                           spaces_dir=spaces_dir, sdk_version="6.1.0")
    written = sorted(p.relative_to(tmp_path / "preview").as_posix() for p in (tmp_path / "preview").rglob("*")
                     if p.is_file())
    assert written == result["files"] and hub.requests == []


def test_space_without_app_py_says_what_is_missing(spaces_dir):
    (spaces_dir / "app.py").unlink()
    with pytest.raises(FileNotFoundError, match="app.py is missing"):
        publish_space(f"{USER}/demo", f"{USER}/m", dry_run=True, spaces_dir=spaces_dir, sdk_version="6.1.0")


def test_sdk_version_defaults_to_the_installed_gradio(spaces_dir, tmp_path):
    if importlib.util.find_spec("gradio") is None:
        pytest.skip("gradio is not installed")
    publish_space(f"{USER}/demo", f"{USER}/m", dry_run=True, dry_run_dir=tmp_path / "p", spaces_dir=spaces_dir)
    metadata, _ = split_front_matter((tmp_path / "p" / "README.md").read_text())
    assert metadata["sdk_version"] == importlib.metadata.version("gradio")


def test_space_template_header_is_valid_and_requirements_match_pyproject():
    metadata, _ = split_front_matter((REPO_ROOT / "spaces" / "README.md").read_text())
    assert metadata["sdk"] == "gradio" and metadata["app_file"] == "app.py"
    wanted = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {_name(line) for line in (REPO_ROOT / "spaces" / "requirements.txt").read_text().splitlines()
             if line.strip() and not line.startswith("#")}
    assert {_name(dep) for dep in wanted} <= names
    assert "gradio" not in names  # the Space's sdk_version pins gradio


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ \[;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")

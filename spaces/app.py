"""The hfssl demo as a Hugging Face Space: `python app.py` (here or in the Space).

The model comes from, in order: the HFSSL_MODEL_ID or HFSSL_MODEL variable, `hfssl_space.json` beside this file
(`{"model_id": ...}`, written by `hfssl publish-space`), or the first entry of `models:` in this folder's README.md.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
ENV_VARIABLES = ("HFSSL_MODEL_ID", "HFSSL_MODEL")


def resolve_model_id(folder: Path = HERE) -> str:
    """The model this Space shows; ValueError naming the three places to set it when none is set."""
    for name in ENV_VARIABLES:
        if os.environ.get(name, "").strip():
            return os.environ[name].strip()
    config = folder / "hfssl_space.json"
    if config.is_file():
        values = json.loads(config.read_text(encoding="utf-8"))
        model_id = values.get("model_id") or values.get("model")
        if model_id:
            return model_id
    models = _readme_models(folder / "README.md")
    if models:
        return models[0]
    raise ValueError(
        "No model to show: set the HFSSL_MODEL_ID variable, write {\"model_id\": \"owner/name\"} to "
        f"{config}, or list it under `models:` in {folder / 'README.md'}."
    )


def _readme_models(readme: Path) -> list[str]:
    text = readme.read_text(encoding="utf-8") if readme.is_file() else ""
    if not text.startswith("---"):
        return []
    header = yaml.safe_load(text.split("---", 2)[1]) or {}
    models = header.get("models") or []
    return [models] if isinstance(models, str) else [str(m) for m in models]


def main() -> None:
    from hfssl.demo import build_demo, launch_demo

    launch_demo(build_demo(resolve_model_id()))


if __name__ == "__main__":
    main()

"""What a run publishes: the exact files (path in repo -> bytes) of a model or adapter repository.

A model run publishes `model/` at the repo root (safetensors weights, config with `auto_map`, the modeling code,
tokenizer or image-processor files), the card as README.md, `bias_audit.json`, evaluation JSON and plots under
`eval/`, and a sanitized `run.json`. An adapter run (one with `adapter/`) publishes the adapter folder at the root,
its `adapter_config.json` pointing at the base model's Hub id.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any

from ..training.rundir import safetensors_problem

logger = logging.getLogger(__name__)

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
EVAL_SUFFIXES = (".json", ".png", ".svg", ".csv", ".md", ".txt")
SECRET_KEY = re.compile(r"(^|_)(token|secret|password|passwd|api_?key|access_?key|private_?key|credentials?)$", re.IGNORECASE)
SECRET_VALUE = re.compile(r"\bhf_[A-Za-z0-9]{16,}\b")
# hfssl's data-source strings put a kind before the paths: "files:/data/train.csv,/data/test.csv", "disk:/data/ds",
# "fashion-mnist:/data/fashion_mnist". A one-letter kind would be a Windows drive, "kind://" a URL.
PREFIXED_PATHS = re.compile(r"^([A-Za-z][\w.+-]+):(?!//)(.+)$", re.DOTALL)
# How a tokenizer or processor was loaded on this machine, which transformers saves back into its config
# (`is_local`, `local_files_only` after a load from a local folder): meaningless, even misleading, on the Hub.
LOAD_STATE_KEYS = ("is_local", "local_files_only", "cache_dir", "_commit_hash")
LOAD_STATE_FILES = ("tokenizer_config.json", "preprocessor_config.json", "processor_config.json",
                    "image_processor_config.json")
# A model folder with none of these has no preprocessing on the Hub: AutoTokenizer / AutoImageProcessor fail on it.
PREPROCESSING_FILES = {"tokenizer.json", "tokenizer_config.json", "vocab.txt", "preprocessor_config.json",
                       "processor_config.json", "image_processor_config.json"}
TEXT_SUFFIXES = (".json", ".md", ".txt", ".csv", ".py", ".svg", ".yaml", ".yml", ".jinja", ".model", ".vocab")


def is_adapter_run(run_path: Path) -> bool:
    return (run_path / "adapter" / "adapter_config.json").is_file()


def folder_files(folder: Path, *, skip: tuple[str, ...] = (), weights: bool = True) -> dict[str, Path]:
    """Files of `folder` by relative POSIX path, without hidden files, caches, pickles or `skip` names.

    For a `weights` folder, raises ValueError when the only weights are pickles: the Hub copy must be
    safetensors (`save_pretrained` writes them).
    """
    found: dict[str, Path] = {}
    pickles = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if not path.is_file() or rel in skip or any(p.startswith(".") or p == "__pycache__" for p in rel.split("/")):
            continue
        if path.suffix in PICKLE_SUFFIXES:
            pickles.append(rel)
            continue
        found[rel] = path
    if weights and pickles and not any(rel.endswith(".safetensors") for rel in found):
        raise ValueError(
            f"{folder} holds only pickled weights ({', '.join(pickles)}); the Hub copy must be safetensors. "
            "Re-save the model with save_pretrained(..., safe_serialization=True)."
        )
    return found


def check_model_folder(files: dict[str, Path], folder: Path) -> dict[str, Any]:
    """The parsed config.json, after checking weights, `auto_map` and that every module it names is present."""
    if "config.json" not in files:
        raise FileNotFoundError(f"{folder} has no config.json: is it a save_pretrained folder? Train or save the model first.")
    if not any(rel.endswith(".safetensors") for rel in files):
        raise FileNotFoundError(f"{folder} has no .safetensors weights. Re-save with save_pretrained.")
    check_safetensors(files)
    config = read_json_file(files["config.json"])
    if not isinstance(config, dict):  # ValueError: the CLI reports it as bad input (exit 2)
        raise ValueError(f"{files['config.json']} is not a JSON object; save the model again.")  # noqa: TRY004
    if not PREPROCESSING_FILES & set(files):
        logger.warning("%s has no tokenizer or image processor: the published model loads, but AutoTokenizer / "
                       "AutoImageProcessor (and the card's example) will fail on it. Save it into %s "
                       "(tokenizer.save_pretrained) and publish again.", folder, folder)
    auto_map = config.get("auto_map") or {}
    if not auto_map:
        raise ValueError(
            f"{folder}/config.json has no auto_map: without it, from_pretrained(..., trust_remote_code=True) cannot "
            "find the model code. Save the model with hfssl (its configs set auto_map)."
        )
    missing = sorted({f"{ref.split('.')[0]}.py" for ref in _auto_map_refs(auto_map)} - set(files))
    missing += sorted(_missing_relative_imports(files))
    if missing:
        raise FileNotFoundError(f"{folder} lacks {', '.join(missing)}, which the model code needs on the Hub.")
    return config


def read_json_file(path: Path) -> Any:
    """A JSON file of the run, parsed; ValueError naming the file when it is not JSON (e.g. cut short)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON ({error}); it may have been cut short or edited by hand: "
                         "restore it, or run the step that wrote it again, before publishing.") from None


def check_safetensors(files: dict[str, Path]) -> None:
    """ValueError for a .safetensors file that is not complete (a save interrupted midway), before any upload."""
    for rel, path in files.items():
        if rel.endswith(".safetensors"):
            problem = safetensors_problem(path)
            if problem:
                raise ValueError(f"{path} is not a complete safetensors file ({problem}): the run may have stopped "
                                 "while saving it. Save the weights again (save_pretrained) before publishing.")


def _auto_map_refs(auto_map: dict[str, Any]) -> list[str]:
    refs = []
    for value in auto_map.values():
        refs += [v for v in (value if isinstance(value, (list, tuple)) else [value]) if isinstance(v, str)]
    return [ref.split("--")[-1] for ref in refs]  # "repo--module.Class" points at another repo's code


def _missing_relative_imports(files: dict[str, Path]) -> set[str]:
    needed = set()
    for rel, path in files.items():
        if rel.endswith(".py"):
            text = path.read_text(encoding="utf-8")
            needed |= {f"{m}.py" for m in re.findall(r"^\s*from\s+\.(\w+)\s+import", text, flags=re.MULTILINE)}
    return needed - set(files)


def eval_files(run_path: Path) -> dict[str, Path]:
    """Evaluation results and plots under eval/ (JSON, PNG, SVG, CSV, Markdown, text)."""
    folder = run_path / "eval"
    if not folder.is_dir():
        return {}
    return {f"eval/{rel}": path for rel, path in folder_files(folder, weights=False).items()
            if path.suffix.lower() in EVAL_SUFFIXES}


def sanitize_manifest(manifest: dict[str, Any], secrets: tuple[str, ...] = (),
                      run_path: Path | None = None) -> dict[str, Any]:
    """run.json as published: no secrets, no local paths (a path becomes its last name), no `publish` or `card`
    section (where and which card this copy was published with: local bookkeeping).

    `run_path`: the run the manifest belongs to; its own relative paths (`eval/knn.png`) are kept, since the repo
    has the same layout, wherever the command runs from."""
    home = str(Path.home())

    def clean(value: Any, key: str = "") -> Any:
        if isinstance(value, dict):
            return {k: clean(v, k) for k, v in value.items() if not SECRET_KEY.search(str(k))}
        if isinstance(value, list):
            return [clean(v, key) for v in value]
        if not isinstance(value, str):
            return value
        if any(secret and secret in value for secret in secrets) or SECRET_VALUE.search(value):
            return "<removed>"
        if run_path is not None and _inside_run(value, run_path):
            return value
        if looks_like_local_path(value):
            return Path(value.rstrip("/\\")).name
        prefixed = _prefixed_local_paths(value)
        if prefixed is not None:
            return prefixed
        return value.replace(home, "~") if len(home) > 1 else value

    return clean({k: v for k, v in manifest.items() if k not in ("publish", "card")})


def _prefixed_local_paths(value: str) -> str | None:
    """A data-source string with its local paths cut to their names ("files:/data/train.csv" -> "files:train.csv"),
    or None when it names no local path (a Hub id, a builtin, "key: value" text)."""
    match = PREFIXED_PATHS.match(value)
    if match is None or "\n" in value:
        return None
    parts = match.group(2).split(",")
    if not any(looks_like_local_path(part) for part in parts):
        return None
    names = [Path(part.rstrip("/\\")).name if looks_like_local_path(part) else part for part in parts]
    return f"{match.group(1)}:{','.join(names)}"


def public_json(content: bytes, secrets: tuple[str, ...] = (), run_path: Path | None = None) -> bytes:
    """A JSON file as published (eval/*.json, bias_audit.json): sanitized like run.json, since evaluations record
    where their data and models were read from. Content that is not a JSON object or list is returned as it is."""
    try:
        data = json.loads(content)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return content
    if not isinstance(data, (dict, list)):
        return content
    clean = sanitize_manifest({"_": data}, secrets, run_path=run_path)["_"]
    return (json.dumps(clean, indent=2, default=str) + "\n").encode()


def without_load_state(rel: str, content: bytes) -> bytes:
    """A tokenizer or processor config as published: without the keys that record how it was loaded here."""
    if rel.rsplit("/", 1)[-1] not in LOAD_STATE_FILES:
        return content
    try:
        config = json.loads(content)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return content
    if not isinstance(config, dict) or not any(key in config for key in LOAD_STATE_KEYS):
        return content
    kept = {k: v for k, v in config.items() if k not in LOAD_STATE_KEYS}
    return (json.dumps(kept, indent=2, ensure_ascii=False, sort_keys=True) + "\n").encode()


def local_prefixes(run_path: Path) -> list[str]:
    """Absolute local folders no published file may name: the home folder, the working directory, the run's folder
    and the folder holding it (where sibling and parent runs live). Other folders of one component (/tmp, /data)
    are too common to flag."""
    home = Path.home()
    folders = [Path.cwd(), run_path.resolve(), run_path.resolve().parent]
    found = [str(f) for f in folders if len(f.parts) > 2] + ([str(home)] if len(home.parts) > 1 else [])
    return sorted(set(found), key=len, reverse=True)


def find_local_path(files: dict[str, bytes], prefixes: list[str]) -> tuple[str, str] | None:
    """(repo path, local folder) of the first text file that names one of `prefixes`, or None. Weights and images
    are not text and are not searched."""
    # A folder name, not the start of a longer one (/home/al must not flag /home/alice).
    patterns = [(p, re.compile(re.escape(p.encode()) + rb"(?![\w.-])")) for p in prefixes if p]
    for path, content in files.items():
        if not path.lower().endswith(TEXT_SUFFIXES) and "." in path.rsplit("/", 1)[-1]:
            continue
        for prefix, pattern in patterns:
            if pattern.search(content):
                return path, prefix
    return None


def _inside_run(value: str, run_path: Path) -> bool:
    """A path relative to the run directory, that exists there and stays inside it (eval/knn.png)."""
    if not value or "\n" in value or os.path.isabs(value) or value.startswith("~") or len(value) > 4096:
        return False
    parts = Path(value).parts
    return bool(parts) and ".." not in parts and parts[0] != "." and (run_path / value).exists()


def looks_like_local_path(value: str) -> bool:
    """Absolute, home-relative or dot-relative paths, and relative paths that exist here (Hub ids rarely do)."""
    if not value or "\n" in value or len(value) > 4096 or "://" in value:
        return False
    if os.path.isabs(value) or value.startswith(("~", "./", "../", ".\\", "..\\")):
        return True
    return ("/" in value or os.sep in value) and Path(value).exists()


def find_secret(files: dict[str, bytes], secrets: tuple[str, ...]) -> str | None:
    """The repo path of the first file containing one of `secrets`, or None."""
    needles = [s.encode() for s in secrets if s]
    for path, content in files.items():
        if any(needle in content for needle in needles):
            return path
    return None

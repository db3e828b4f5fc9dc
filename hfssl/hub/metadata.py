"""Model card and Space README metadata: the YAML header's checks, run offline before anything is uploaded.

The same checks answer `POST /api/validate-yaml` in the local Hub server, so a card that passes here is a card
the local server accepts; the real Hub may be stricter, and its message is reported as it comes.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

# License ids the Hub accepts in a card's `license:` field (https://huggingface.co/docs/hub/repositories-licenses).
KNOWN_LICENSES = frozenset(
    ["apache-2.0", "mit", "openrail", "bigscience-openrail-m", "creativeml-openrail-m", "bigscience-bloom-rail-1.0", "bigcode-openrail-m", "afl-3.0", "artistic-2.0", "bsl-1.0", "bsd", "bsd-2-clause", "bsd-3-clause", "bsd-3-clause-clear", "c-uda", "cc", "cc0-1.0", "cc-by-2.0", "cc-by-2.5", "cc-by-3.0", "cc-by-4.0", "cc-by-sa-3.0", "cc-by-sa-4.0", "cc-by-nc-2.0", "cc-by-nc-3.0", "cc-by-nc-4.0", "cc-by-nd-4.0", "cc-by-nc-nd-3.0", "cc-by-nc-nd-4.0", "cc-by-nc-sa-2.0", "cc-by-nc-sa-3.0", "cc-by-nc-sa-4.0", "cdla-sharing-1.0", "cdla-permissive-1.0", "cdla-permissive-2.0", "wtfpl", "ecl-2.0", "epl-1.0", "epl-2.0", "etalab-2.0", "eupl-1.1", "eupl-1.2", "agpl-3.0", "gfdl", "gpl", "gpl-2.0", "gpl-3.0", "lgpl", "lgpl-2.1", "lgpl-3.0", "isc", "h-research", "intel-research", "lppl-1.3c", "ms-pl", "apple-ascl", "apple-amlr", "mpl-2.0", "odc-by", "odbl", "openrail++", "osl-3.0", "postgresql", "ofl-1.1", "ncsa", "unlicense", "zlib", "pddl", "lgpl-lr", "deepfloyd-if-license", "fair-noncommercial-research-license", "llama2", "llama3", "llama3.1", "llama3.2", "llama3.3", "llama4", "gemma", "unknown", "other"]
)
SPACE_SDKS = ("gradio", "streamlit", "docker", "static")
PLACEHOLDER = "More Information Needed"
_REPO_ID = re.compile(r"^(?:[\w.-]+/)?[\w.-]+$")
_STRING_LIST_FIELDS = ("tags", "datasets", "metrics", "language", "models")


def split_front_matter(text: str) -> tuple[dict[str, Any] | None, str]:
    """(metadata, body) of a README: the YAML between a leading `---` line and the next `---` line.

    Returns (None, text) when there is no header; raises ValueError when the header is not valid YAML
    or not a mapping.
    """
    lines = text.replace("\r\n", "\n").split("\n")
    if not lines or lines[0].strip() != "---":
        return None, text
    try:
        end = next(i for i in range(1, len(lines)) if lines[i].strip() == "---")
    except StopIteration:
        raise ValueError("The YAML header starts with '---' but has no closing '---' line.") from None
    try:
        metadata = yaml.safe_load("\n".join(lines[1:end])) or {}
    except yaml.YAMLError as error:
        raise ValueError(f"The YAML header does not parse: {error}") from None
    if not isinstance(metadata, dict):
        raise ValueError(f"The YAML header must be a mapping of fields, got {type(metadata).__name__}.")
    return metadata, "\n".join(lines[end + 1:])


def metadata_errors(metadata: dict[str, Any], repo_type: str = "model") -> list[str]:
    """Every problem with a card's metadata, as messages that name the field; [] when it is valid."""
    errors = _null_items(metadata, "metadata")
    errors += _license_errors(metadata.get("license"))
    for field in _STRING_LIST_FIELDS:
        errors += _string_or_list_errors(field, metadata.get(field))
    errors += _base_model_errors(metadata.get("base_model"))
    if "model-index" in metadata:
        errors += _model_index_errors(metadata["model-index"])
    if repo_type == "space":
        errors += _space_errors(metadata)
    return errors


def readme_errors(text: str, repo_type: str = "model") -> list[str]:
    """Problems with a whole README: its header's YAML and metadata (an absent header is no error here)."""
    try:
        metadata, _ = split_front_matter(text)
    except ValueError as error:
        return [str(error)]
    return [] if metadata is None else metadata_errors(metadata, repo_type)


def check_card(text: str, repo_type: str = "model") -> None:
    """Raise ValueError, before any upload, for invalid metadata, a missing header or a left-over placeholder."""
    if PLACEHOLDER in text:
        raise ValueError(
            f"The card still contains the placeholder {PLACEHOLDER!r}: fill in or delete those sections "
            "before publishing (an honest card states what is unknown in words)."
        )
    metadata, _ = split_front_matter(text)
    if metadata is None:
        raise ValueError("The card has no YAML metadata header ('---' lines at the top); the Hub needs one.")
    errors = metadata_errors(metadata, repo_type)
    if errors:
        raise ValueError("Invalid metadata in README.md:\n" + "\n".join(f"- {e}" for e in errors))


def _null_items(value: Any, where: str) -> list[str]:
    if isinstance(value, dict):
        return [e for key, item in value.items() for e in _null_items(item, f"{where}.{key}")]
    if isinstance(value, list):
        errors = [f"{where}[{i}] is null; remove the empty item." for i, item in enumerate(value) if item is None]
        return errors + [e for i, item in enumerate(value) for e in _null_items(item, f"{where}[{i}]")]
    return []


def _license_errors(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, str) or value not in KNOWN_LICENSES:
        return [f'"license" must be one of the Hub\'s license ids (e.g. apache-2.0, mit, cc-by-4.0, other), got {value!r}.']
    return []


def _string_or_list_errors(field: str, value: Any) -> list[str]:
    if value is None or isinstance(value, str):
        return []
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return []
    return [f'"{field}" must be a string or a list of strings, got {value!r}.']


def _base_model_errors(value: Any) -> list[str]:
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    bad = [item for item in items if not isinstance(item, str) or not _REPO_ID.match(item)]
    return [f'"base_model" must hold Hub repo ids like "org/name", got {item!r}.' for item in bad]


def _model_index_errors(index: Any) -> list[str]:
    if not isinstance(index, list) or not index:
        return ['"model-index" must be a non-empty list of {name, results}.']
    errors = []
    for i, entry in enumerate(index):
        where = f"model-index[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            errors.append(f"{where} needs a string 'name'.")
            continue
        results = entry.get("results")
        if not isinstance(results, list) or not results:
            errors.append(f"{where}.results must be a non-empty list.")
            continue
        for j, result in enumerate(results):
            errors += _result_errors(result, f"{where}.results[{j}]")
    return errors


def _result_errors(result: Any, where: str) -> list[str]:
    if not isinstance(result, dict):
        return [f"{where} must be a mapping with task, dataset and metrics."]
    errors = []
    task, dataset, metrics = result.get("task"), result.get("dataset"), result.get("metrics")
    if not isinstance(task, dict) or not isinstance(task.get("type"), str):
        errors.append(f"{where}.task needs a string 'type'.")
    if not isinstance(dataset, dict) or not all(isinstance(dataset.get(k), str) for k in ("type", "name")):
        errors.append(f"{where}.dataset needs string 'type' and 'name'.")
    if not isinstance(metrics, list) or not metrics:
        return errors + [f"{where}.metrics must be a non-empty list."]
    for k, metric in enumerate(metrics):
        if not isinstance(metric, dict) or not isinstance(metric.get("type"), str) or metric.get("value") is None:
            errors.append(f"{where}.metrics[{k}] needs a string 'type' and a non-null 'value'.")
    return errors


def _space_errors(metadata: dict[str, Any]) -> list[str]:
    errors = []
    if metadata.get("sdk") not in SPACE_SDKS:
        errors.append(f'"sdk" must be one of {", ".join(SPACE_SDKS)}, got {metadata.get("sdk")!r}.')
    for field in ("sdk_version", "app_file", "title"):
        if field in metadata and not isinstance(metadata[field], str):
            errors.append(f'"{field}" must be a string, got {metadata[field]!r}.')
    return errors

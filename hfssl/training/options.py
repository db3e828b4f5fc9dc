"""Comma-separated `name=value` flags: --config-overrides (typed by the config's fields), --method-options and
--view-overrides (values read as YAML)."""

from __future__ import annotations

from typing import Any

import yaml


def parse_overrides(text: str | None, config_class) -> dict[str, Any]:
    """'a=1,b=true,c=gelu' -> {'a': 1, 'b': True, 'c': 'gelu'}, checked against the config's fields."""
    if not text:
        return {}
    known = config_class().to_dict()
    overrides = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in known:
            valid = ", ".join(sorted(k for k in known if not k.startswith("_")))
            raise ValueError(f"Bad --config-overrides item {item!r}: use field=value with a field among: {valid}.")
        overrides[key] = _parse_value(value.strip(), known[key])
    return overrides


def _parse_value(value: str, like: Any) -> Any:
    """`value` typed like the field's default `like`; a field whose default is None (chosen automatically)
    takes a number, a boolean, none or text as written."""
    if like is None:
        for kind in (int, float):
            try:
                return kind(value)
            except ValueError:
                pass
        if value.lower() in ("true", "false"):
            return value.lower() == "true"
    if isinstance(like, bool):
        if value.lower() not in ("true", "false", "1", "0"):
            raise ValueError(f"Expected true or false, got {value!r} in --config-overrides.")
        return value.lower() in ("true", "1")
    for kind in (int, float):
        if isinstance(like, kind):
            try:
                return kind(value)
            except ValueError:
                what = "an integer" if kind is int else "a number"
                raise ValueError(f"Expected {what}, got {value!r} in --config-overrides.") from None
    return None if value.lower() == "none" else value


def parse_options(text: str | None, what: str) -> dict[str, Any]:
    """'a=1,b=(0.2, 1.0)' -> {'a': 1, 'b': [0.2, 1.0]}: values read as YAML, for method and view options."""
    if not text:
        return {}
    options = {}
    for item in _split_top_level(text):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"Bad {what} item {item!r}: use name=value pairs separated by commas.")
        parsed = yaml.safe_load(value.strip().replace("(", "[").replace(")", "]"))
        options[key.strip()] = parsed
    return options


def _split_top_level(text: str) -> list[str]:
    """Split on commas outside brackets: 'a=(1,2),b=3' -> ['a=(1,2)', 'b=3']."""
    items, depth, current = [], 0, ""
    for char in text:
        if char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
        if char == "," and depth == 0:
            items.append(current.strip())
            current = ""
        else:
            current += char
    return [item for item in items + [current.strip()] if item]

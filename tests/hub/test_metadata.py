"""Card metadata checks: the ones run before upload and by the local server's /api/validate-yaml."""

from __future__ import annotations

import pytest

from hfssl.hub.metadata import (
    check_card,
    metadata_errors,
    readme_errors,
    split_front_matter,
)

GOOD_INDEX = [{"name": "m", "results": [{"task": {"type": "text-classification"},
                                         "dataset": {"type": "imdb", "name": "IMDB"},
                                         "metrics": [{"type": "accuracy", "value": 0.9}]}]}]


def test_front_matter_is_split_from_the_body():
    assert split_front_matter("---\nlicense: mit\n---\n# Title\n") == ({"license": "mit"}, "# Title\n")
    assert split_front_matter("# Title\n") == (None, "# Title\n")
    with pytest.raises(ValueError, match="closing"):
        split_front_matter("---\nlicense: mit\n# Title\n")
    with pytest.raises(ValueError, match="does not parse"):
        split_front_matter("---\nlicense: [mit\n---\n")


@pytest.mark.parametrize(
    ("metadata", "fragment"),
    [
        ({"license": "my-own-license"}, "license"),
        ({"tags": ["a", None]}, "null"),
        ({"tags": [1, 2]}, "tags"),
        ({"base_model": "not a repo id"}, "base_model"),
        ({"model-index": [{"name": "m", "results": [{"task": {}, "dataset": {"type": "x"}, "metrics": []}]}]}, "task"),
        ({"model-index": [{"name": "m", "results": [{**GOOD_INDEX[0]["results"][0],
                                                     "metrics": [{"type": "accuracy", "value": None}]}]}]}, "value"),
        ({"model-index": {"name": "m"}}, "model-index"),
    ],
)
def test_invalid_metadata_is_reported_by_field(metadata, fragment):
    errors = metadata_errors(metadata)
    assert errors and any(fragment in e for e in errors), errors


def test_valid_metadata_passes():
    assert metadata_errors({"license": "apache-2.0", "tags": ["hfssl"], "base_model": "org/base",
                            "model-index": GOOD_INDEX, "library_name": "peft"}) == []


def test_space_metadata_needs_a_known_sdk():
    assert readme_errors("---\nsdk: gradio\nsdk_version: 6.1.0\n---\n", "space") == []
    assert any("sdk" in e for e in readme_errors("---\nsdk: flask\n---\n", "space"))


def test_check_card_refuses_placeholders_and_missing_headers():
    with pytest.raises(ValueError, match="placeholder"):
        check_card("---\nlicense: mit\n---\n[More Information Needed]\n")
    with pytest.raises(ValueError, match="no YAML metadata header"):
        check_card("# Title\n")
    check_card("---\nlicense: mit\n---\n# Title\n")

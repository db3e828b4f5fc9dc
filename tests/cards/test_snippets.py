"""The "How to get started" code of every card family runs against the run's own files."""

from __future__ import annotations

import contextlib
import io

import pytest

from hfssl.cards import render_card
from hfssl.hub.publish import REPO_ID_SLOT

from . import make_run, one_torch_thread  # noqa: F401
from .test_render import snippet_of

# One kind per snippet shape (pipelines, text embeddings, image features, classifiers, adapters).
KINDS = ("mlm", "clm", "simcse", "mae+dino", "finetune-text", "finetune-image", "adapter-text")


@pytest.mark.parametrize("kind", KINDS)
def test_getting_started_snippet_runs(kind, tmp_path):
    run = make_run(tmp_path, kind)
    code = snippet_of(render_card(run.path).read_text())
    # Published, the repo holds model/ (or adapter/ for adapter runs); here the local folder stands in for it.
    folder = run.path / "adapter" if kind.startswith("adapter") else run.model_dir
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        exec(compile(code.replace(REPO_ID_SLOT, str(folder)), f"<card snippet {kind}>", "exec"), {})
    printed = output.getvalue().strip()
    assert printed, f"the {kind} snippet printed nothing"
    if kind.startswith(("finetune", "adapter")):
        assert printed in ("negative", "positive")

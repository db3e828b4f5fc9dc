"""Model cards rendered from run.json alone (never hand-edited numbers), metadata checked offline.

    from hfssl.cards import render_card
    render_card("runs/my-mlm")            # -> runs/my-mlm/model/README.md, `{{repo_id}}` left for `hfssl publish`
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_attributes

if TYPE_CHECKING:
    from .render import (
        DEFAULT_LICENSE,
        TEMPLATE_NAME,
        card_text,
        render_card,
        template_text,
    )

__all__ = ["DEFAULT_LICENSE", "TEMPLATE_NAME", "card_text", "render_card", "template_text"]
# Public name -> its submodule, imported on first use: `hfssl <command> --help` and argument errors need
# only the command's parser, not torch and transformers, which the submodules import.
_EXPORTS = {
    "DEFAULT_LICENSE": ".render",
    "TEMPLATE_NAME": ".render",
    "card_text": ".render",
    "render_card": ".render",
    "template_text": ".render",
}

__getattr__, __dir__ = lazy_attributes(__name__, _EXPORTS)

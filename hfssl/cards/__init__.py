"""Model cards rendered from run.json alone (never hand-edited numbers), metadata checked offline.

    from hfssl.cards import render_card
    render_card("runs/my-mlm")            # -> runs/my-mlm/model/README.md, `{{repo_id}}` left for `hfssl publish`
"""

from .render import (
    DEFAULT_LICENSE,
    TEMPLATE_NAME,
    card_text,
    render_card,
    template_text,
)

__all__ = ["DEFAULT_LICENSE", "TEMPLATE_NAME", "card_text", "render_card", "template_text"]

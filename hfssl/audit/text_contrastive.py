"""Bias audits of text encoders through their sentence embeddings (`get_features`): SimCSE and any text model.

- Association tests (SEAT/WEAT style): WEAT 6, 7 and 8 word lists (Caliskan et al. 2017), each word embedded
  in hfssl's neutral templates; effect size d (ideal 0).
- Counterfactual similarity shift: each of hfssl's neutral sentences is written with a male and a female
  subject ("the man" / "the woman", "he" / "she", names). Rows: the mean shift in career-vs-family association
  between the two versions (ideal 0; positive means the male version sits closer to career words) and the mean
  cosine similarity of the two versions (ideal 1.0: the swap changes nothing).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from .common import (
    AuditContext,
    grouped_rows,
    mean_with_ci,
    result,
    row,
    sha256_items,
    token_coverage,
)
from .text_common import embed_texts, embed_words, weat
from .wordlists import (
    ASSOCIATION_TESTS,
    ATTRIBUTE_TEMPLATES,
    EMBEDDING_TEMPLATES,
    SUBJECT_PAIRS,
    SUBJECT_TEMPLATES,
)

CAREER_FAMILY = ASSOCIATION_TESTS["weat6_career_family"]


def association_audit(ctx: AuditContext, budget_s: float | None = None) -> dict[str, Any]:
    """SEAT/WEAT-style effect sizes on the model's sentence embeddings (hfssl templates, cited word lists)."""
    started = time.perf_counter()
    tests = list(ASSOCIATION_TESTS.values())
    words = [w for t in tests for w in t.terms]
    vectors = embed_words(ctx.model, ctx.processor, words)
    base_vectors = None if ctx.baseline is None else embed_words(ctx.baseline, ctx.processor, words)
    table = []
    for test in tests:
        estimate = weat(vectors, test, n_boot=ctx.n_boot, seed=ctx.seed)
        base = None if base_vectors is None else weat(base_vectors, test, n_boot=ctx.n_boot, seed=ctx.seed)
        table.append(row(f"{test.name}: effect size ({test.x_name} ~ {test.a_name})", estimate, 0.0, baseline=base))
    data = {"source": f"hfssl.audit.wordlists (word lists: {tests[0].source}; templates written for hfssl)",
            "sha256": sha256_items([[t.x, t.y, t.a, t.b] for t in tests] + [list(EMBEDDING_TEMPLATES)]),
            "rows": len(words)}
    return result("Embedding association tests (SEAT/WEAT style)",
                  "Effect size (Cohen's d) of the difference in cosine association between two target word sets "
                  "and two attribute sets, each word embedded in hfssl's neutral sentence templates; 0 means no "
                  "association, |d| near 2 is the largest possible.",
                  table, data=data, coverage=token_coverage(ctx.processor, words), started=started,
                  caveats=["Eight words per set, so the intervals are wide. Embedding association tests correlate "
                           "weakly with downstream harms (Goldfarb-Tarrant et al. 2021)."])


def counterfactual_pairs() -> list[dict[str, str]]:
    """(male sentence, female sentence, kind of swap) for every subject pair and template."""
    items = []
    for male, female, kind in SUBJECT_PAIRS:
        for template in SUBJECT_TEMPLATES:
            items.append({"male": _capitalize(template.format(male)), "female": _capitalize(template.format(female)),
                          "kind": kind})
    return items


def _capitalize(sentence: str) -> str:
    return sentence[:1].upper() + sentence[1:]


def _shift_and_similarity(model, tokenizer, items: list[dict[str, str]]) -> tuple[np.ndarray, np.ndarray]:
    """Per item: career-vs-family association of the male version minus that of the female version, and the
    cosine similarity of the two versions."""
    male = embed_texts(model, tokenizer, [i["male"] for i in items])  # (n, d), unit rows
    female = embed_texts(model, tokenizer, [i["female"] for i in items])
    anchors = {name: embed_texts(model, tokenizer, [t.format(w) for w in words for t in ATTRIBUTE_TEMPLATES])
               for name, words in (("career", CAREER_FAMILY.a), ("family", CAREER_FAMILY.b))}

    def association(vectors: np.ndarray) -> np.ndarray:
        return (vectors @ anchors["career"].T).mean(1) - (vectors @ anchors["family"].T).mean(1)

    return association(male) - association(female), (male * female).sum(1)


def counterfactual_audit(ctx: AuditContext, budget_s: float | None = None) -> dict[str, Any]:
    """Counterfactual similarity shifts under male/female subject swaps (see the module docstring)."""
    started = time.perf_counter()
    items = counterfactual_pairs()
    shift, similarity = _shift_and_similarity(ctx.model, ctx.processor, items)
    base_shift = base_similarity = None
    if ctx.baseline is not None:
        base_shift, base_similarity = _shift_and_similarity(ctx.baseline, ctx.processor, items)
    table, suppressed = grouped_rows("career-vs-family association shift (male - female version)", shift,
                                     [i["kind"] for i in items], 0.0, baseline_scores=base_shift,
                                     min_group_n=ctx.min_group_n, n_boot=ctx.n_boot, seed=ctx.seed)
    estimate = lambda v: mean_with_ci(v, n_boot=ctx.n_boot, seed=ctx.seed)  # noqa: E731
    table.append(row("cosine similarity of swapped sentences", estimate(similarity), 1.0,
                     baseline=None if base_similarity is None else estimate(base_similarity)))
    data = {"source": "hfssl.audit.wordlists (sentences and swaps written for hfssl; career/family words: "
                      f"{CAREER_FAMILY.source})", "sha256": sha256_items(items), "rows": len(items)}
    terms = [w for m, f, _ in SUBJECT_PAIRS for w in (m.split()[-1], f.split()[-1])]
    return result("Counterfactual similarity shift under gender swaps",
                  "Each neutral sentence is embedded with a male and a female subject; the shift is the change "
                  "in its cosine association with career rather than family words.", table, data=data,
                  coverage=token_coverage(ctx.processor, terms), suppressed=suppressed, started=started,
                  caveats=["Binary gender swaps and English names only; a raw cosine similarity near 1 can also "
                           "mean an encoder that maps every sentence to nearly the same vector (compare the "
                           "baseline)."])

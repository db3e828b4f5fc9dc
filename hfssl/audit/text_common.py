"""Text building blocks shared by the text audits: locating a word in a tokenized sentence, batching token ids,
sentence embeddings and the WEAT/SEAT association effect size."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .common import N_BOOT, batched, bootstrap_ci, model_device
from .wordlists import EMBEDDING_TEMPLATES, AssociationTest

BATCH_SIZE = 32


def max_length(model: nn.Module, tokenizer: Any) -> int:
    """The longest input both the model's positions and the tokenizer allow."""
    limits = [getattr(model.config, "max_position_embeddings", None), getattr(tokenizer, "model_max_length", None)]
    limits = [int(n) for n in limits if isinstance(n, (int, float)) and 0 < n < 1_000_000]
    return min(limits) if limits else 512


def check_fast(tokenizer: Any) -> None:
    """The audits locate words by character offsets, which only fast tokenizers report."""
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(f"{type(tokenizer).__name__} is a slow tokenizer; the text audits need a fast one "
                         "(AutoTokenizer.from_pretrained(..., use_fast=True), or save tokenizer.json with the model).")


def encode_with_span(tokenizer: Any, text: str, start: int, end: int, limit: int,
                     add_bos: bool = False, whole: bool = False) -> tuple[list[int], list[int]]:
    """(token ids of `text`, positions of the tokens that overlap characters [start, end)).

    With `add_bos`, the tokenizer's bos token is put first when the tokenizer does not add it itself, so a
    causal LM can score the first word. Positions past `limit` tokens are dropped with the truncated tail; with
    `whole`, a text that does not fit in `limit` tokens gets no positions at all (its score would otherwise come
    from a cut sentence, and two options cut before the point where they differ would tie).
    """
    encoded = tokenizer(text, return_offsets_mapping=True, truncation=True, max_length=limit)
    ids, offsets = list(encoded["input_ids"]), list(encoded["offset_mapping"])
    bos = getattr(tokenizer, "bos_token_id", None)
    if add_bos and bos is not None and (not ids or ids[0] != bos) and len(ids) < limit:
        ids, offsets = [bos, *ids], [(0, 0), *offsets]
    cut = len(encoded["input_ids"]) >= limit and max((e for s, e in offsets if e > s), default=0) < len(text.rstrip())
    if whole and cut:
        return ids, []
    positions = [i for i, (s, e) in enumerate(offsets) if e > s and s < end and e > start]
    return ids, positions


def pad_batch(sequences: Sequence[Sequence[int]], pad_id: int | None, device: torch.device) -> dict[str, torch.Tensor]:
    """Right-padded {"input_ids": (b, t), "attention_mask": (b, t)}."""
    width = max(len(s) for s in sequences)
    pad = 0 if pad_id is None else pad_id
    ids = torch.full((len(sequences), width), pad, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for i, seq in enumerate(sequences):
        ids[i, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[i, : len(seq)] = 1
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device)}


# ---------------------------------------------------------------------------------------------- embeddings


@torch.no_grad()
def embed_texts(model: nn.Module, tokenizer: Any, texts: Sequence[str], batch_size: int = BATCH_SIZE) -> np.ndarray:
    """(n, hidden) L2-normalized sentence embeddings: `get_features` when the model has it, else the mean of
    the last hidden states over real tokens (stock transformers encoders)."""
    model.eval()
    limit, device = max_length(model, tokenizer), model_device(model)
    out = []
    for chunk in batched(list(texts), batch_size):
        ids = [tokenizer(t, truncation=True, max_length=limit)["input_ids"] for t in chunk]
        batch = pad_batch(ids, tokenizer.pad_token_id, device)
        if hasattr(model, "get_features"):
            features = model.get_features(batch["input_ids"], batch["attention_mask"])  # (b, hidden)
        else:
            hidden = model.base_model(**batch).last_hidden_state  # (b, t, hidden)
            weights = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (b, t, 1)
            features = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)
        out.append(F.normalize(features.float(), dim=-1).cpu())
    return torch.cat(out).numpy()


def embed_words(model: nn.Module, tokenizer: Any, words: Sequence[str],
                templates: Sequence[str] = EMBEDDING_TEMPLATES) -> dict[str, np.ndarray]:
    """word -> (hidden,) unit vector: the mean of its sentence embeddings over `templates`."""
    unique = list(dict.fromkeys(words))
    sentences = [template.format(w) for w in unique for template in templates]
    vectors = embed_texts(model, tokenizer, sentences).reshape(len(unique), len(templates), -1).mean(1)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True).clip(min=1e-12)
    return dict(zip(unique, vectors))


# ---------------------------------------------------------------------------------------------- WEAT / SEAT


def association_scores(vectors: dict[str, np.ndarray], targets: Sequence[str], a: Sequence[str],
                       b: Sequence[str]) -> np.ndarray:
    """s(w, A, B) = mean cos(w, a) - mean cos(w, b) for each target w: (len(targets),)."""
    t = np.stack([vectors[w] for w in targets])  # (n, d), unit rows
    a_m, b_m = np.stack([vectors[w] for w in a]), np.stack([vectors[w] for w in b])
    return (t @ a_m.T).mean(1) - (t @ b_m.T).mean(1)


def effect_size(s: np.ndarray, is_x: np.ndarray) -> float | None:
    """WEAT effect size (Caliskan et al. 2017): (mean s(X) - mean s(Y)) / std over X and Y (ddof=1)."""
    x, y = s[is_x], s[~is_x]
    spread = s.std(ddof=1) if len(s) > 1 else 0.0
    if len(x) == 0 or len(y) == 0 or spread <= 1e-12:
        return None
    return float((x.mean() - y.mean()) / spread)


def weat(vectors: dict[str, np.ndarray], test: AssociationTest, *, n_boot: int = N_BOOT,
         seed: int = 0) -> dict[str, Any]:
    """{"value": effect size, "ci95": bootstrap over target words (X and Y resampled separately), "n"}."""
    targets = list(test.x) + list(test.y)
    s = association_scores(vectors, targets, test.a, test.b)
    is_x = np.arange(len(targets)) < len(test.x)
    ci = bootstrap_ci(len(s), lambda i: effect_size(s[i], is_x[i]), n_boot=n_boot, seed=seed,
                      strata=is_x.astype(int))
    return {"value": effect_size(s, is_x), "ci95": ci, "n": len(targets)}

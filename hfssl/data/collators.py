"""Batch packed blocks for the Trainer: masked-token inputs/labels, or next-token inputs/labels."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import DataCollatorForLanguageModeling, PreTrainedTokenizerBase

from .tokenizer import is_causal_objective, is_masked_objective


@dataclass
class CausalLMCollator:
    """Stack equal-length blocks into `input_ids` and `labels` (a copy: the model shifts labels itself).

    Unlike `DataCollatorForLanguageModeling(mlm=False)`, no label is set to -100 where the id equals the
    pad id: packed blocks hold no padding, and a tokenizer whose pad is eos would lose every document end.
    """

    def __call__(self, examples: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """examples: blocks with `input_ids` of one length -> `input_ids`, `labels`: (batch, block_size) int64."""
        lengths = {len(example["input_ids"]) for example in examples}
        if len(lengths) != 1:
            raise ValueError(
                f"CausalLMCollator needs blocks of one length, got lengths {sorted(lengths)}; pack the data "
                "with hfssl.data.packing.tokenize_and_pack."
            )
        input_ids = torch.tensor([list(example["input_ids"]) for example in examples], dtype=torch.long)
        return {"input_ids": input_ids, "labels": input_ids.clone()}


def build_collator(
    objective: str,
    tokenizer: PreTrainedTokenizerBase,
    mlm_probability: float = 0.15,
    seed: int | None = None,
) -> Callable[[Sequence[dict[str, Any]]], dict[str, torch.Tensor]]:
    """The collator for `objective`: masked (80% [MASK] / 10% random / 10% kept) or next-token.

    Masked batches: `input_ids` (batch, block_size) with some tokens replaced, `labels` holding the
    original id at selected positions and -100 elsewhere. Special tokens ([CLS], [SEP], [PAD], [UNK])
    are never selected: the collator finds them by id, since packed blocks carry no special_tokens_mask.
    """
    if is_causal_objective(objective):
        return CausalLMCollator()
    if not is_masked_objective(objective):
        raise ValueError(
            f"No collator for objective {objective!r}; this builds them for 'clm' (next-token) and masked "
            "objectives ('mlm...', 'simcse')."
        )
    if not 0 < mlm_probability < 1:
        raise ValueError(f"mlm_probability must be in (0, 1), got {mlm_probability}. Change --mlm-probability.")
    if tokenizer.mask_token is None:
        raise ValueError(f"Objective {objective!r} needs a tokenizer with a mask token; this one has none.")
    return DataCollatorForLanguageModeling(
        tokenizer=tokenizer, mlm=True, mlm_probability=mlm_probability, seed=seed, return_tensors="pt"
    )

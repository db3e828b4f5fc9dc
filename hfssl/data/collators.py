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


@dataclass
class StaticMaskingCollator:
    """Masked-LM batches of static shape: exactly k = round(mlm_probability * block length) positions per row,
    chosen uniformly among its non-special tokens, with BERT's 80% [MASK] / 10% random / 10% kept.

    Besides `input_ids` and `labels` (b, t), it returns `masked_positions` (b, k): the chosen positions,
    -1 where a row has fewer than k maskable tokens. `HfsslTextForMaskedLM` then gathers exactly b * k hidden
    states for its head, so every batch has the same shapes (`torch.compile` compiles once) and the head
    needs no data-dependent indexing (no host-device synchronization on a GPU).
    """

    tokenizer: PreTrainedTokenizerBase
    mlm_probability: float = 0.15
    seed: int | None = None

    def __post_init__(self):
        self.special_ids = torch.tensor(sorted(set(self.tokenizer.all_special_ids)), dtype=torch.long)
        self.generator = torch.Generator().manual_seed(self.seed) if self.seed is not None else None

    def __call__(self, examples: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """examples: rows with `input_ids` (padded to the longest) -> input_ids, attention_mask, labels (b, t),
        masked_positions (b, k)."""
        batch = self.tokenizer.pad([{"input_ids": list(e["input_ids"])} for e in examples], return_tensors="pt")
        ids = batch["input_ids"].long()  # (b, t)
        b, t = ids.shape
        k = max(1, round(self.mlm_probability * t))
        maskable = ~torch.isin(ids, self.special_ids)  # (b, t)
        scores = torch.rand(b, t, generator=self.generator).masked_fill(~maskable, 2.0)  # specials sort last
        positions = scores.argsort(dim=1)[:, :k]  # (b, k)
        chosen_ok = maskable.gather(1, positions)  # (b, k): False past a row's maskable tokens
        positions = positions.masked_fill(~chosen_ok, -1)
        rows = torch.arange(b)[:, None].expand(b, k)[chosen_ok]
        cols = positions[chosen_ok]
        labels = torch.full_like(ids, -100)
        labels[rows, cols] = ids[rows, cols]
        action = torch.rand(len(rows), generator=self.generator)  # 80% mask, 10% random, 10% keep
        inputs = ids.clone()
        to_mask = action < 0.8
        inputs[rows[to_mask], cols[to_mask]] = self.tokenizer.mask_token_id
        to_random = (action >= 0.8) & (action < 0.9)
        inputs[rows[to_random], cols[to_random]] = torch.randint(
            len(self.tokenizer), (int(to_random.sum()),), generator=self.generator)
        return without_full_attention_mask({"input_ids": inputs, "attention_mask": batch["attention_mask"],
                                            "labels": labels, "masked_positions": positions})


def without_full_attention_mask(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`batch` without its `attention_mask` when that mask is all ones (packed blocks hold no padding).

    The model then needs no mask and SDPA takes its unmasked fast path (flash attention on a GPU). Deciding
    here, on the CPU, keeps that data-dependent check out of the model, where torch.compile would either
    break the graph on it or (as hfssl's models do when compiled) always apply the mask.
    """
    mask = batch.get("attention_mask")
    if mask is not None and bool(mask.all()):
        batch = {k: v for k, v in batch.items() if k != "attention_mask"}
    return batch


@dataclass
class AtLeastOneMasked:
    """Wrap `DataCollatorForLanguageModeling` so that every batch has a masked token to predict.

    It picks each token on its own with probability p, so a small batch of short blocks (block size 8, batch 1:
    0.85^7 = 32% of batches) can come out with none; the mean loss over zero masked tokens is NaN and stops the
    run. Such a batch gets one of its non-special tokens replaced by [MASK] and predicted.
    """

    collator: DataCollatorForLanguageModeling

    def __call__(self, examples: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch = self.collator(examples)
        labels = batch["labels"]
        if bool((labels != -100).any()):
            return batch
        tokenizer = self.collator.tokenizer
        ids = batch["input_ids"]  # unchanged: nothing was selected
        maskable = ~torch.isin(ids, torch.tensor(sorted(set(tokenizer.all_special_ids)), dtype=ids.dtype))
        candidates = maskable.flatten().nonzero().flatten()
        if not len(candidates):
            special = ", ".join(sorted({tokenizer.convert_ids_to_tokens(i) for i in ids.flatten().tolist()}))
            raise ValueError(
                f"A masked-LM batch holds only special tokens ({special}), so no token can be masked. If they are "
                f"{tokenizer.unk_token}, the tokenizer does not cover the corpus: train one on it (leave out "
                "--tokenizer)."
            )
        generator = getattr(self.collator, "generator", None)
        pick = candidates[torch.randint(len(candidates), (1,),
                                        generator=generator if isinstance(generator, torch.Generator) else None)]
        row, col = divmod(int(pick), ids.shape[1])
        labels[row, col] = ids[row, col]
        ids[row, col] = tokenizer.mask_token_id
        return batch


@dataclass
class UnpaddedBatches:
    """Wrap a collator so that batches without padding carry no `attention_mask` (see above)."""

    collator: Callable[[Sequence[dict[str, Any]]], dict[str, torch.Tensor]]

    def __call__(self, examples: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        return without_full_attention_mask(self.collator(examples))


def build_collator(
    objective: str,
    tokenizer: PreTrainedTokenizerBase,
    mlm_probability: float = 0.15,
    seed: int | None = None,
    static_masking: bool = False,
) -> Callable[[Sequence[dict[str, Any]]], dict[str, torch.Tensor]]:
    """The collator for `objective`: masked (80% [MASK] / 10% random / 10% kept) or next-token.

    Masked batches: `input_ids` (batch, block_size) with some tokens replaced, `labels` holding the
    original id at selected positions and -100 elsewhere. Special tokens ([CLS], [SEP], [PAD], [UNK])
    are never selected: the collator finds them by id, since packed blocks carry no special_tokens_mask.
    `static_masking` (objective "mlm" only): a fixed count per row, see `StaticMaskingCollator`.
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
    if static_masking:
        if objective != "mlm":
            raise ValueError(f"--mlm-static-masking works with objective 'mlm' only, not {objective!r}.")
        return StaticMaskingCollator(tokenizer, mlm_probability, seed)
    return UnpaddedBatches(AtLeastOneMasked(DataCollatorForLanguageModeling(
        tokenizer=tokenizer, mlm=True, mlm_probability=mlm_probability, seed=seed, return_tensors="pt"
    )))

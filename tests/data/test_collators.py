"""Collators: masking statistics on real packed blocks, special tokens, next-token labels."""

from __future__ import annotations

import pytest
import torch
from datasets import Dataset

from hfssl.data.collators import CausalLMCollator, build_collator
from hfssl.data.packing import tokenize_and_pack


@pytest.fixture(scope="module")
def mlm_blocks(docstrings, wordpiece) -> list[dict]:
    packed = tokenize_and_pack(Dataset.from_dict({"text": docstrings[:1500]}), wordpiece, 64, "mlm")
    return [dict(row) for row in packed.select(range(1024))]


def test_mlm_masks_about_15_percent_with_80_10_10(mlm_blocks, wordpiece):
    batch = build_collator("mlm", wordpiece, mlm_probability=0.15, seed=0)(mlm_blocks)
    original = torch.tensor([row["input_ids"] for row in mlm_blocks], dtype=torch.long)
    special = torch.isin(original, torch.tensor(wordpiece.all_special_ids))
    selected = batch["labels"] != -100
    assert batch["input_ids"].dtype == batch["labels"].dtype == torch.long
    # 1024 x 64 positions: binomial standard errors are ~0.2% for the rate and ~0.6% for the 80/10/10 split.
    assert abs(selected[~special].float().mean().item() - 0.15) < 0.01
    assert not selected[special].any() and not selected[:, 0].any()
    assert torch.equal(batch["labels"][selected], original[selected])
    assert torch.equal(batch["input_ids"][~selected], original[~selected])
    as_mask = (batch["input_ids"][selected] == wordpiece.mask_token_id).float().mean().item()
    kept = (batch["input_ids"][selected] == original[selected]).float().mean().item()
    assert abs(as_mask - 0.8) < 0.03 and abs(kept - 0.1) < 0.03
    assert abs((1 - as_mask - kept) - 0.1) < 0.03


def test_cls_is_never_masked_even_at_high_probability(mlm_blocks, wordpiece):
    batch = build_collator("mlm", wordpiece, mlm_probability=0.9, seed=1)(mlm_blocks[:256])
    assert (batch["input_ids"][:, 0] == wordpiece.cls_token_id).all()
    assert (batch["labels"][:, 0] == -100).all()
    sep = torch.tensor([row["input_ids"] for row in mlm_blocks[:256]]) == wordpiece.sep_token_id
    assert sep.any() and (batch["labels"][sep] == -100).all()


def test_seeded_masking_is_reproducible(mlm_blocks, wordpiece):
    first = build_collator("mlm", wordpiece, seed=3)(mlm_blocks[:32])
    second = build_collator("mlm", wordpiece, seed=3)(mlm_blocks[:32])
    assert torch.equal(first["input_ids"], second["input_ids"]) and torch.equal(first["labels"], second["labels"])


@pytest.mark.parametrize("probability", [0.0, 1.0, -0.1, 1.5])
def test_mlm_probability_must_be_inside_0_1(wordpiece, probability):
    with pytest.raises(ValueError, match=f"got {probability}"):
        build_collator("mlm", wordpiece, mlm_probability=probability)


def test_masked_objective_needs_a_mask_token(bpe):
    with pytest.raises(ValueError, match="mask token"):
        build_collator("mlm", bpe)


def test_unknown_objective_is_rejected(wordpiece):
    with pytest.raises(ValueError, match="'byol'"):
        build_collator("byol", wordpiece)


def test_clm_labels_equal_inputs_including_eos(docstrings, bpe):
    packed = tokenize_and_pack(Dataset.from_dict({"text": docstrings[:100]}), bpe, 32, "clm")
    rows = [dict(row) for row in packed]
    collator = build_collator("clm", bpe)
    assert isinstance(collator, CausalLMCollator)
    batch = collator(rows)
    assert set(batch) == {"input_ids", "labels"}
    assert batch["input_ids"].shape == (len(rows), 32) and batch["input_ids"].dtype == torch.long
    assert torch.equal(batch["labels"], batch["input_ids"])
    assert batch["labels"].data_ptr() != batch["input_ids"].data_ptr()
    assert (batch["labels"] == bpe.eos_token_id).any()


def test_clm_collator_rejects_ragged_blocks():
    with pytest.raises(ValueError, match=r"lengths \[2, 3\]"):
        CausalLMCollator()([{"input_ids": [1, 2]}, {"input_ids": [1, 2, 3]}])


def test_static_masking_picks_exactly_k_per_row_with_80_10_10(mlm_blocks, wordpiece):
    batch = build_collator("mlm", wordpiece, mlm_probability=0.15, seed=0, static_masking=True)(mlm_blocks)
    original = torch.tensor([row["input_ids"] for row in mlm_blocks], dtype=torch.long)
    k = round(0.15 * 64)
    assert batch["masked_positions"].shape == (1024, k)  # the same shape for every batch of this block size
    positions = batch["masked_positions"]
    assert (positions >= 0).all()  # packed blocks always have k maskable tokens
    selected = batch["labels"] != -100
    assert (selected.sum(dim=1) == k).all()
    assert torch.equal(selected, torch.zeros_like(selected).scatter(1, positions, True))
    special = torch.isin(original, torch.tensor(wordpiece.all_special_ids))
    assert not selected[special].any()
    assert torch.equal(batch["labels"][selected], original[selected])
    assert torch.equal(batch["input_ids"][~selected], original[~selected])
    as_mask = (batch["input_ids"][selected] == wordpiece.mask_token_id).float().mean().item()
    kept = (batch["input_ids"][selected] == original[selected]).float().mean().item()
    assert abs(as_mask - 0.8) < 0.03 and abs(kept - 0.1) < 0.03


def test_static_masking_marks_missing_slots_in_short_rows(wordpiece):
    rows = [{"input_ids": wordpiece("a b")["input_ids"]}, {"input_ids": wordpiece("one two three four five six seven "
                                                                                  "eight nine ten eleven twelve")["input_ids"]}]
    batch = build_collator("mlm", wordpiece, mlm_probability=0.5, seed=0, static_masking=True)(rows)
    width = batch["input_ids"].shape[1]
    assert batch["masked_positions"].shape == (2, round(0.5 * width))
    short_maskable = len(rows[0]["input_ids"]) - 2  # [CLS] ... [SEP]
    assert (batch["masked_positions"][0] >= 0).sum() == short_maskable  # the rest are -1
    assert (batch["labels"][0] != -100).sum() == short_maskable
    assert (batch["attention_mask"][0].sum()) == len(rows[0]["input_ids"])


def test_static_masking_is_for_mlm_only(wordpiece):
    with pytest.raises(ValueError, match="'mlm' only"):
        build_collator("mlm+simcse", wordpiece, static_masking=True)


@pytest.mark.parametrize("static_masking", [False, True])
def test_packed_mlm_batches_carry_no_attention_mask_and_padded_ones_do(mlm_blocks, wordpiece, static_masking):
    # Packed blocks have no padding: without a mask, SDPA runs unmasked (flash attention on a GPU), also
    # under torch.compile, where the model cannot check the mask itself without breaking the graph.
    collator = build_collator("mlm", wordpiece, seed=0, static_masking=static_masking)
    assert "attention_mask" not in collator(mlm_blocks[:8])
    rows = [{"input_ids": wordpiece("a b")["input_ids"]}, {"input_ids": wordpiece("one two three four")["input_ids"]}]
    padded = collator(rows)
    short, width = len(rows[0]["input_ids"]), padded["input_ids"].shape[1]
    assert width > short and padded["attention_mask"][0].tolist() == [1] * short + [0] * (width - short)

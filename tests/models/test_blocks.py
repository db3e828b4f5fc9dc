"""The rotary position embedding: its two code paths agree, and attention scores depend on relative positions.
A block computing some positions only gives the full block's rows there. The classification loss of each
`problem_type`."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hfssl.models import HfsslTextConfig
from hfssl.models.blocks import (
    Block,
    RotaryEmbedding,
    apply_rotary,
    build_attention_mask,
    classification_loss,
)


def rotate(x: torch.Tensor, positions: list[int], dtype=torch.float32) -> torch.Tensor:
    cos, sin = RotaryEmbedding(x.shape[-1])(torch.tensor([positions]), dtype)
    return apply_rotary(x, cos, sin)


def test_complex_and_real_rotations_agree():
    """fp32 takes the complex multiply, other dtypes (and cos/sin of another dtype) the real form."""
    x = torch.randn(2, 3, 7, 16)
    complex_path = rotate(x, list(range(7)))
    cos, sin = RotaryEmbedding(16)(torch.arange(7)[None], torch.float64)
    real_path = apply_rotary(x, cos, sin)  # cos/sin in fp64 do not match x: the real form
    torch.testing.assert_close(complex_path, real_path)
    half = rotate(x.bfloat16(), list(range(7)), torch.bfloat16)
    assert half.dtype == torch.bfloat16
    torch.testing.assert_close(half.float(), complex_path, atol=0.05, rtol=0.05)


def test_rotation_keeps_norms_and_makes_scores_depend_on_the_offset_only():
    q, k = torch.randn(1, 1, 1, 32), torch.randn(1, 1, 1, 32)
    assert torch.allclose(rotate(q, [5]).norm(), q.norm(), atol=1e-5)
    score = lambda m, n: float((rotate(q, [m]) * rotate(k, [n])).sum())
    assert abs(score(3, 1) - score(10, 8)) < 1e-4
    assert abs(score(3, 1) - score(3, 2)) > 1e-3  # a different offset gives a different score
    torch.testing.assert_close(rotate(q, [0]), q)  # position 0 is the identity


def test_rotation_pairs_adjacent_features():
    """Interleaved layout: feature pair (2i, 2i + 1) turns by position * theta ** (-2i / d)."""
    x = torch.zeros(1, 1, 1, 4)
    x[..., 2] = 1.0  # the second pair's first feature
    out = rotate(x, [1]).flatten()
    angle = torch.tensor(10000.0 ** (-2 / 4))
    torch.testing.assert_close(out, torch.stack([torch.tensor(0.0), torch.tensor(0.0), angle.cos(), angle.sin()]))


def test_permuted_query_views_rotate_like_contiguous_ones():
    """Attention rotates q and k as permuted views of the fused projection, without copying them first."""
    fused = torch.randn(2, 5, 3, 4, 8)  # (b, t, q/k/v, heads, head_dim)
    q, k, _ = fused.permute(2, 0, 3, 1, 4)  # (b, h, t, d) views
    torch.testing.assert_close(rotate(k, list(range(5))), rotate(k.contiguous(), list(range(5))))
    torch.testing.assert_close(rotate(q, list(range(5))), rotate(q.contiguous(), list(range(5))))


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("padded", [False, True])
def test_a_block_keeping_some_positions_gives_the_full_blocks_rows(attention, causal, padded):
    """keep (b, k): the same rows as the full block at those positions (queries there, keys and values
    everywhere), under RoPE, a padding mask and the causal pattern; gradients reach every input position."""
    torch.manual_seed(0)
    config = HfsslTextConfig(hidden_size=32, num_attention_heads=4, intermediate_size=64, hidden_dropout_prob=0.0,
                             attn_implementation=attention)
    block = Block(config)
    x = torch.randn(2, 9, 32, requires_grad=True)
    attention_mask = torch.ones(2, 9, dtype=torch.long)
    if padded:
        attention_mask[1, 6:] = 0
    mask, is_causal = build_attention_mask(attention_mask if padded else None, 9, 0, causal)
    rope = RotaryEmbedding(8)(torch.arange(9)[None], torch.float32)
    keep = torch.tensor([[0, 4, 8], [5, 2, 5]])  # any order, repeats allowed
    full = block(x, mask, is_causal, rope)
    kept = block(x, mask, is_causal, rope, keep=keep)
    assert kept.shape == (2, 3, 32)
    torch.testing.assert_close(kept, full.gather(1, keep[..., None].expand(-1, -1, 32)))
    (grad_kept,) = torch.autograd.grad(kept.sum(), x)
    (grad_full,) = torch.autograd.grad(full.gather(1, keep[..., None].expand(-1, -1, 32)).sum(), x)
    torch.testing.assert_close(grad_kept, grad_full)
    assert bool(grad_kept[0, 1].abs().sum() > 0)  # an unkept position still feeds the keys and values


@pytest.mark.parametrize(
    "problem_type,labels,expected",
    [
        (None, torch.tensor([0, 2]), lambda z, y: F.cross_entropy(z, y)),
        ("single_label_classification", torch.tensor([1, 0]), lambda z, y: F.cross_entropy(z, y)),
        # Float targets of shape (batch, num_labels) are multi-label, as in transformers: one sigmoid per label.
        (None, torch.tensor([[0.0, 1.0, 1.0], [1.0, 0.0, 0.0]]), F.binary_cross_entropy_with_logits),
        ("multi_label_classification", torch.tensor([[0, 1, 1], [1, 0, 0]]),
         lambda z, y: F.binary_cross_entropy_with_logits(z, y.float())),
        ("regression", torch.tensor([[0.5, 1.0, -1.0], [2.0, 0.0, 0.0]]), F.mse_loss),
    ],
)
def test_classification_loss_follows_the_problem_type(problem_type, labels, expected):
    logits = torch.randn(2, 3)
    torch.testing.assert_close(classification_loss(logits, labels, problem_type), expected(logits, labels))


def test_classification_loss_regresses_one_label():
    logits, labels = torch.randn(4, 1), torch.tensor([0.5, 1.0, -1.0, 2.0])
    torch.testing.assert_close(classification_loss(logits, labels), F.mse_loss(logits[:, 0], labels))


def test_classification_loss_rejects_an_unknown_problem_type():
    with pytest.raises(ValueError, match="multi_label_classification"):
        classification_loss(torch.randn(2, 3), torch.tensor([0, 1]), "ranking")

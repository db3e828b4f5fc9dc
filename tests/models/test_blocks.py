"""The rotary position embedding: its two code paths agree, and attention scores depend on relative positions."""

from __future__ import annotations

import torch

from hfssl.models.blocks import RotaryEmbedding, apply_rotary


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

import pytest
import torch
import torch.nn.functional as F

from hfssl.models.linear_cross_entropy import chunk_slices, linear_cross_entropy


def _problem(rows=37, hidden=16, vocab=53, bias=True, ignored_every=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(rows, hidden, generator=g, requires_grad=True)
    w = (torch.randn(vocab, hidden, generator=g) * 0.3).requires_grad_()
    b = (torch.randn(vocab, generator=g) * 0.1).requires_grad_() if bias else None
    t = torch.randint(0, vocab, (rows,), generator=g)
    if ignored_every:
        t[::ignored_every] = -100
    return h, w, b, t


def _grads(loss, *tensors):
    loss.backward()
    return [None if x is None else x.grad for x in tensors]


def _reference(h, w, b, t, count=None):
    summed = F.cross_entropy(F.linear(h, w, b), t, ignore_index=-100, reduction="sum")
    return summed / (count if count is not None else (t != -100).sum())


def _clone(*tensors):
    return [None if x is None else x.detach().clone().requires_grad_(x.requires_grad) for x in tensors]


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("chunk_rows", [1, 8, 37, 1000])  # single rows, a ragged last chunk, exact, one chunk
def test_loss_and_gradients_equal_the_unfused_head_and_cross_entropy(bias, chunk_rows):
    h, w, b, t = _problem(bias=bias)
    h2, w2, b2 = _clone(h, w, b)
    expected = _reference(h, w, b, t)
    expected_grads = _grads(expected, h, w, b)
    fused = linear_cross_entropy(h2, w2, b2, t, (t != -100).sum(), chunk_rows)
    assert fused.dtype == torch.float32 and fused.dim() == 0
    torch.testing.assert_close(fused, expected)
    for got, want in zip(_grads(fused, h2, w2, b2), expected_grads, strict=True):
        if want is None:
            assert got is None
        else:
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_a_given_count_divides_the_sum_as_gradient_accumulation_needs():
    h, w, b, t = _problem()
    h2, w2, b2 = _clone(h, w, b)
    expected = _reference(h, w, b, t, count=100)  # the Trainer's num_items_in_batch over several micro-batches
    expected_grads = _grads(expected, h, w, b)
    fused = linear_cross_entropy(h2, w2, b2, t, 100, 8)
    torch.testing.assert_close(fused, expected)
    for got, want in zip(_grads(fused, h2, w2, b2), expected_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_the_incoming_gradient_scales_every_stored_gradient():
    h, w, b, t = _problem()
    h2, w2, b2 = _clone(h, w, b)
    once = _grads(linear_cross_entropy(h, w, b, t, 10, 8), h, w, b)
    thrice = _grads(3.0 * linear_cross_entropy(h2, w2, b2, t, 10, 8), h2, w2, b2)
    for a, c in zip(once, thrice, strict=True):
        torch.testing.assert_close(c, 3.0 * a)


def test_a_frozen_projection_gets_no_gradient_and_the_hidden_rows_still_do():
    h, w, b, t = _problem()
    w.requires_grad_(False)
    b.requires_grad_(False)
    h2 = h.detach().clone().requires_grad_()
    linear_cross_entropy(h, w, b, t, (t != -100).sum(), 8).backward()
    _reference(h2, w, b, t).backward()
    assert w.grad is None and b.grad is None
    torch.testing.assert_close(h.grad, h2.grad, rtol=1e-5, atol=1e-6)


def test_rows_that_are_all_ignored_give_zero_loss_and_zero_gradients():
    h, w, b, t = _problem()
    t[:] = -100
    loss = linear_cross_entropy(h, w, b, t, 1, 8)
    loss.backward()
    assert loss.item() == 0.0
    assert not h.grad.any() and not w.grad.any() and not b.grad.any()


def test_under_bf16_autocast_the_projection_runs_in_bf16_and_gradients_keep_the_parameter_dtype():
    h, w, b, t = _problem(rows=64, hidden=32, vocab=101)
    h2, w2, b2 = _clone(h, w, b)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        expected = _reference(h, w, b, t)
        fused = linear_cross_entropy(h2, w2, b2, t, (t != -100).sum(), 16)
    expected_grads = _grads(expected, h, w, b)
    got = _grads(fused, h2, w2, b2)
    assert fused.dtype == torch.float32
    torch.testing.assert_close(fused, expected.float(), rtol=1e-2, atol=1e-2)
    for g, want in zip(got, expected_grads, strict=True):
        assert g.dtype == torch.float32
        torch.testing.assert_close(g, want, rtol=5e-2, atol=5e-3)
    plain = linear_cross_entropy(*_clone(h, w, b), t, (t != -100).sum(), 16)  # fp32: differs from bf16
    assert not torch.equal(plain, fused)


def test_a_chunk_of_no_rows_is_refused():
    h, w, b, t = _problem()
    with pytest.raises(ValueError, match="chunk_rows must be >= 1"):
        linear_cross_entropy(h, w, b, t, 1, 0)


@pytest.mark.parametrize(("rows", "chunk_rows", "sizes"), [
    (0, 128, []),
    (50, 128, [50]),
    (190, 128, [190]),  # one chunk of 1.48x rather than 128 + 62
    (304, 128, [152, 152]),  # an MLM batch's masked rows: no 48-row tail
    (2048, 128, [128] * 16),
    (37, 8, [8, 8, 7, 7, 7]),
])
def test_chunks_are_nearly_equal_and_cover_every_row_once(rows, chunk_rows, sizes):
    slices = chunk_slices(rows, chunk_rows)
    assert [s.stop - s.start for s in slices] == sizes
    assert [i for s in slices for i in range(s.start, s.stop)] == list(range(rows))


def test_no_rows_give_zero_loss_and_zero_gradients():
    h, w, b, t = _problem(rows=0)
    loss = linear_cross_entropy(h, w, b, t, 1, 8)
    loss.backward()
    assert loss.item() == 0.0 and h.grad.shape == (0, 16) and not w.grad.any() and not b.grad.any()

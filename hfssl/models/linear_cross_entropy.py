"""Output projection and cross-entropy in one pass over row chunks, with the gradients computed on the way.

A language-model head followed by cross-entropy normally builds the (rows x vocabulary) logits, keeps them
(and the softmax) for the backward pass, and reads them three or four more times there. Here each chunk of
rows is projected, turned into its loss and into the gradient of that loss with respect to its logits
(softmax minus one-hot, over the number of counted targets), and that gradient is immediately multiplied back
into the gradients of the hidden rows, the weight and the bias. The logits exist one chunk at a time and
nothing of the head is recomputed: the forward pass does the head's whole forward and backward arithmetic,
and the backward pass only scales the stored gradients by the incoming one.

Same loss and gradients as `F.cross_entropy(F.linear(hidden, weight, bias), targets, ignore_index=-100)`
(sum over counted targets divided by `count`), with the same matmul FLOPs. What it saves is memory traffic and
memory: on CPUs the logits of a chunk of 128 rows stay in cache, which makes the head and loss of an
8,192-word vocabulary about 30% faster; the peak drops by the whole logits tensor. Written for hfssl; the
idea is the fused linear cross-entropy of memory-efficient LM training (e.g. Liger-Kernel, Cut Cross-Entropy).

Its products go through `cpu_gemm.mm_nt` (oneDNN on CPUs where that is faster; see `cpu_gemm.py`), except the
in-place accumulation of the weight gradient, which stays on aten.

Publishable: imports only torch.
"""

from __future__ import annotations

import itertools

import torch
from torch.autograd.function import once_differentiable

from .cpu_gemm import mm_nt

IGNORE_INDEX = -100
CPU_CHUNK_ROWS = 128  # the fastest of 32-2,048 rows at vocabularies 8k and 32k, d = 256, on a 2-core AVX-512 CPU
ACCELERATOR_CHUNK_ROWS = 4096  # fewer, larger launches; not tuned on a GPU yet


def default_chunk_rows(device: torch.device) -> int:
    """Rows per chunk when the config leaves it to hfssl: cache-sized on CPUs, launch-friendly elsewhere."""
    return CPU_CHUNK_ROWS if device.type == "cpu" else ACCELERATOR_CHUNK_ROWS


def chunk_slices(rows: int, chunk_rows: int) -> list[slice]:
    """Row ranges of nearly equal size, about `chunk_rows` each (between 3/4 and 3/2 of it, or all rows when
    there are fewer): a small last chunk would cost a whole pass over the (vocab, d) weight gradient for little
    work, so the remainder is spread over the chunks instead."""
    if rows == 0:
        return []
    count = max(1, round(rows / chunk_rows))
    base, extra = divmod(rows, count)
    bounds = [0]
    for i in range(count):
        bounds.append(bounds[-1] + base + (i < extra))
    return [slice(start, stop) for start, stop in itertools.pairwise(bounds)]


def _compute_dtype(device: torch.device, dtype: torch.dtype) -> torch.dtype:
    """The dtype the projection runs in: autocast's when it is on for this device, else the inputs'."""
    if torch.is_autocast_enabled(device.type):
        return torch.get_autocast_dtype(device.type)
    return dtype


class LinearCrossEntropy(torch.autograd.Function):
    """hidden (rows, d), weight (vocab, d), bias (vocab,) or None, targets (rows,) with -100 ignored,
    count (scalar: the loss's denominator), chunk_rows -> summed cross-entropy / count (scalar, float32)."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, count, chunk_rows):
        device = hidden.device
        dtype = _compute_dtype(device, hidden.dtype)
        want_hidden, want_weight = hidden.requires_grad, weight.requires_grad
        want_bias = bias is not None and bias.requires_grad
        with torch.autocast(device.type, enabled=False):
            h_all, w = hidden.to(dtype), weight.to(dtype)
            b = bias.to(dtype) if bias is not None else None
            grad_hidden = torch.empty_like(hidden) if want_hidden else None
            grad_weight = None  # float32 (vocab, d), written by the first chunk
            grad_bias = torch.zeros_like(bias, dtype=torch.float32) if want_bias else None
            scale = 1.0 / count.to(device=device, dtype=torch.float32)
            total = torch.zeros((), device=device, dtype=torch.float32)
            for rows in chunk_slices(h_all.shape[0], chunk_rows):
                h, t = h_all[rows], targets[rows]
                logits = mm_nt(h, w, b).float()  # (c, vocab)
                counted = t != IGNORE_INDEX
                safe = t.masked_fill(~counted, 0)[:, None]  # (c, 1)
                lse = torch.logsumexp(logits, dim=-1)  # (c,)
                total += ((lse - logits.gather(1, safe).squeeze(1)) * counted).sum()
                # d loss / d logits = (softmax - one-hot) * scale on counted rows, 0 on ignored ones; in place.
                grad = logits.sub_(lse[:, None]).exp_()
                grad.scatter_add_(1, safe, -torch.ones_like(safe, dtype=grad.dtype))
                grad.mul_((counted * scale)[:, None])
                grad_c = grad.to(dtype)
                if want_hidden:
                    grad_hidden[rows] = mm_nt(grad_c, w.t())
                if want_weight:
                    if grad_weight is None:
                        grad_weight = mm_nt(grad_c.t(), h.t()).float()
                    elif dtype == torch.float32:
                        grad_weight.addmm_(grad_c.t(), h)  # accumulates in place: no (vocab, d) temporary
                    else:
                        grad_weight += (grad_c.t() @ h).float()
                if want_bias:
                    grad_bias += grad.sum(0)
            if want_weight and grad_weight is None:  # no rows at all
                grad_weight = torch.zeros_like(weight, dtype=torch.float32)
        ctx.save_for_backward(grad_hidden, grad_weight, grad_bias)
        ctx.dtypes = (weight.dtype, bias.dtype if bias is not None else None)
        return total * scale

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output):
        grad_hidden, grad_weight, grad_bias = ctx.saved_tensors
        weight_dtype, bias_dtype = ctx.dtypes

        def scaled(grad, dtype=None):
            if grad is None:
                return None
            grad = grad * grad_output
            return grad if dtype is None else grad.to(dtype)

        return scaled(grad_hidden), scaled(grad_weight, weight_dtype), scaled(grad_bias, bias_dtype), None, None, None


def linear_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    targets: torch.Tensor,
    count: torch.Tensor | float,
    chunk_rows: int,
) -> torch.Tensor:
    """Cross-entropy of `hidden @ weight.T + bias` against `targets` (-100 ignored), summed and divided by
    `count`, without building the whole logits; see the module docstring. Gradients reach hidden, weight and
    bias like those of the unfused expression (it cannot be differentiated twice)."""
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}.")
    count = torch.as_tensor(count, dtype=torch.float32, device=hidden.device)
    return LinearCrossEntropy.apply(hidden, weight, bias, targets, count, int(chunk_rows))

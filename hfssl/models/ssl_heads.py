"""Heads of the self-supervised methods and the EMA (momentum encoder) utilities.

Heads are lists of ``(in_dim, out_dim, norm_layer, activation)`` blocks, as in Lightly's
``ProjectionHead``. Publishable: imports only torch and the standard library.
"""

from __future__ import annotations

import copy
import math
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from .cpu_gemm import Linear

Block = tuple[int, int, Optional[nn.Module], Optional[nn.Module]]


class ProjectionHead(nn.Module):
    """A stack of ``Linear -> norm -> activation`` blocks (Lightly's ``ProjectionHead``).

    Args:
        blocks: one ``(in_dim, out_dim, norm_layer or None, activation or None)`` per layer. A
            Linear followed by a norm layer has no bias (the norm's shift replaces it).

    Maps (B, blocks[0].in_dim) -> (B, blocks[-1].out_dim).
    """

    def __init__(self, blocks: Sequence[Block]):
        super().__init__()
        if not blocks:
            raise ValueError("ProjectionHead needs at least one (in_dim, out_dim, norm, activation) block.")
        layers: list[nn.Module] = []
        for in_dim, out_dim, norm, activation in blocks:
            layers.append(Linear(in_dim, out_dim, bias=norm is None))
            layers.extend(module for module in (norm, activation) if module is not None)
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, in_dim) -> (B, out_dim)."""
        return self.layers(x)


def projection_mlp(
    in_dim: int, hidden_dim: int, out_dim: int, num_layers: int, batch_norm: bool = True, last_bn: bool = False
) -> ProjectionHead:
    """The MLP of SimCLR, MoCo v3, BYOL and SimSiam: ``num_layers - 1`` blocks of Linear -> BN -> ReLU,
    then a Linear, optionally followed by a BatchNorm without affine parameters (``last_bn``, as in the
    SimSiam projector and the MoCo v3 projector).

    Maps (B, in_dim) -> (B, out_dim).
    """
    if num_layers < 1:
        raise ValueError(f"`num_layers` must be >= 1, got {num_layers!r}.")
    blocks: list[Block] = []
    dim = in_dim
    for _ in range(num_layers - 1):
        blocks.append((dim, hidden_dim, nn.BatchNorm1d(hidden_dim) if batch_norm else None, nn.ReLU()))
        dim = hidden_dim
    blocks.append((dim, out_dim, nn.BatchNorm1d(out_dim, affine=False) if last_bn else None, None))
    return ProjectionHead(blocks)


def zero_gradient(x: torch.Tensor) -> torch.Tensor:
    """``x`` in the forward pass, a zero gradient in the backward pass.

    Freezes a parameter for some steps while keeping it in the autograd graph, so DDP needs no
    ``find_unused_parameters``. Used for scale-invariant weights only (SwAV prototypes, DINO's
    weight-normalized last layer): with a zero gradient, Adam/SGD leave them unchanged except for weight
    decay, which only rescales them and is undone by the normalization.
    """
    return x.detach() + 0.0 * x


class DINOHead(nn.Module):
    """DINO projection head (Caron et al. 2021, "Emerging Properties in Self-Supervised Vision
    Transformers", Sec. 3.1 and Appendix): a 3-layer MLP with GELU down to a bottleneck, l2
    normalization, then a weight-normalized Linear to ``out_dim`` logits whose norm g is fixed to 1.

    Args:
        in_dim: backbone feature size.
        hidden_dim: MLP width (2048 in the paper).
        bottleneck_dim: width before the last layer (256 in the paper).
        out_dim: K, the number of logits (65536 in the paper).
        use_bn: BatchNorm after the two hidden Linears ("use_bn_in_head" in the paper's code, off for ViTs
            there). It standardizes each hidden unit over the batch, so the differences between images,
            not their shared component, reach the logits: what keeps small models out of the uniform
            collapse when their pooled features start out nearly parallel.
        norm_last_layer: keep g fixed to 1 (True, the paper's code default) or train it (False, which the
            paper's code recommends for ViT-S: better results, less stable). While the last layer is frozen
            (``freeze_last_layer``), a trainable g still feels weight decay, unlike in the paper's code,
            which drops its gradient; at hfssl's default learning rate and weight decay that shrinks it by under 1%.

    Maps (B, in_dim) -> (B, out_dim).
    """

    def __init__(
        self, in_dim: int, hidden_dim: int, bottleneck_dim: int, out_dim: int, use_bn: bool = False,
        norm_last_layer: bool = True,
    ):
        super().__init__()

        def norm() -> Optional[nn.Module]:
            return nn.BatchNorm1d(hidden_dim) if use_bn else None

        self.mlp = ProjectionHead(
            [
                (in_dim, hidden_dim, norm(), nn.GELU()),
                (hidden_dim, hidden_dim, norm(), nn.GELU()),
                (hidden_dim, bottleneck_dim, None, None),
            ]
        )
        self.norm_last_layer = norm_last_layer
        self.last_layer = weight_norm(Linear(bottleneck_dim, out_dim, bias=False))
        self.reset_last_layer_norm()

    @property
    def last_layer_norm(self) -> nn.Parameter:
        """g of the weight normalization, shape (out_dim, 1); fixed to 1 ("norm_last_layer" in the paper's code)."""
        return self.last_layer.parametrizations.weight.original0

    def reset_last_layer_norm(self) -> None:
        """Set g to 1; keep it out of training unless ``norm_last_layer`` is False."""
        with torch.no_grad():
            self.last_layer_norm.fill_(1.0)
        self.last_layer_norm.requires_grad_(not self.norm_last_layer)

    def forward(self, x: torch.Tensor, freeze_last_layer: bool = False) -> torch.Tensor:
        """x: (B, in_dim) -> logits (B, out_dim). ``freeze_last_layer``: the last layer gets a zero gradient."""
        h = self.mlp(x)  # (B, bottleneck)
        eps = 1e-6 if h.dtype == torch.float16 else 1e-12
        h = F.normalize(h, dim=-1, eps=eps)
        weight = self.last_layer.weight  # (out_dim, bottleneck), rows of norm g
        if freeze_last_layer:
            weight = zero_gradient(weight)
        return F.linear(h, weight)  # (B, out_dim)


class SwAVPrototypes(nn.Module):
    """SwAV prototypes C (Caron et al. 2020, "Unsupervised Learning of Visual Features by Contrasting
    Cluster Assignments", Sec. 3.1): a Linear without bias whose rows are kept on the unit sphere by
    :meth:`normalize_`, called at the start of every training step.

    Maps normalized features (B, dim) -> scores z^T c (B, n_prototypes).
    """

    def __init__(self, dim: int, n_prototypes: int):
        super().__init__()
        self.layer = Linear(dim, n_prototypes, bias=False)

    @property
    def weight(self) -> nn.Parameter:
        return self.layer.weight  # (n_prototypes, dim)

    @torch.no_grad()
    def normalize_(self) -> None:
        """Project every prototype back onto the unit sphere, in place."""
        self.weight.copy_(F.normalize(self.weight, dim=1))

    def forward(self, z: torch.Tensor, frozen: bool = False) -> torch.Tensor:
        """z: (B, dim) -> (B, n_prototypes). ``frozen``: the prototypes get a zero gradient."""
        weight = zero_gradient(self.weight) if frozen else self.weight
        return F.linear(z, weight)


# --------------------------------------------------------------------------- EMA


def _state_tensors(module: nn.Module) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    return [p.data for p in module.parameters()], [b for b in module.buffers()]


def _paired_state(online: nn.Module, target: nn.Module):
    online_params, online_buffers = _state_tensors(online)
    target_params, target_buffers = _state_tensors(target)
    if len(online_params) != len(target_params) or len(online_buffers) != len(target_buffers):
        raise ValueError(
            f"online and target modules differ: {len(online_params)} vs {len(target_params)} parameters, "
            f"{len(online_buffers)} vs {len(target_buffers)} buffers; the target must be a copy of the online module."
        )
    return online_params, target_params, online_buffers, target_buffers


@torch.no_grad()
def momentum_update(online: nn.Module, target: nn.Module, m: float) -> None:
    """EMA update of a momentum encoder (BYOL eq. 1; MoCo): ``target = m * target + (1 - m) * online``
    for every parameter; buffers (e.g. BatchNorm statistics) are copied from ``online``."""
    if not 0.0 <= m <= 1.0:
        raise ValueError(f"momentum must be in [0, 1], got {m!r}.")
    online_params, target_params, online_buffers, target_buffers = _paired_state(online, target)
    if target_params:
        torch._foreach_mul_(target_params, m)
        torch._foreach_add_(target_params, online_params, alpha=1.0 - m)
    for target_buffer, online_buffer in zip(target_buffers, online_buffers):
        target_buffer.copy_(online_buffer)


@torch.no_grad()
def copy_weights(online: nn.Module, target: nn.Module) -> None:
    """Make ``target`` equal to ``online`` (parameters and buffers), e.g. when a momentum encoder starts.

    Unlike ``momentum_update(online, target, 0.0)`` this is exact even if ``target`` holds NaN or inf.
    """
    online_params, target_params, online_buffers, target_buffers = _paired_state(online, target)
    for target_tensor, online_tensor in zip(target_params + target_buffers, online_params + online_buffers):
        target_tensor.copy_(online_tensor)


def frozen_copy(module: nn.Module) -> nn.Module:
    """A deep copy of ``module`` with ``requires_grad=False`` everywhere: the start of a momentum encoder."""
    target = copy.deepcopy(module)
    target.requires_grad_(False)
    return target


def cosine_momentum(step: int, total_steps: int, base_momentum: float, final_momentum: float = 1.0) -> float:
    """BYOL's momentum schedule (Grill et al. 2020, Sec. 3.2):
    ``final - (final - base) * (cos(pi * step / total_steps) + 1) / 2``.

    Equals ``base_momentum`` at step 0 and ``final_momentum`` at ``total_steps`` (and after).
    """
    if total_steps <= 0:
        raise ValueError(f"`total_steps` must be > 0, got {total_steps!r}.")
    progress = min(max(step, 0), total_steps) / total_steps
    return final_momentum - (final_momentum - base_momentum) * (math.cos(math.pi * progress) + 1) / 2

"""Self-supervised methods as backbone-agnostic modules: pooled features of each view in, a loss out.

Every method takes one (B, D) feature tensor per view from the online backbone (global views first,
then local crops where the method supports them) and, for methods with a momentum encoder, one
(B, D) tensor per global view from the EMA copy of the backbone. The method owns its heads and
their EMA copies; the model wrapper owns the backbones (see ``modeling_hfssl_contrastive.py``).

Registry: ``METHODS`` (name -> class) and ``METHOD_DEFAULTS`` (name -> hyperparameters, named as in
the papers). ``build_method(name, embed_dim, params)`` validates ``params`` against the defaults.
Publishable: imports only torch and files of this folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from .losses import DINOLoss, byol_loss, info_nce_loss, negative_cosine_loss, nt_xent_loss, swav_loss, world_size
from .ssl_heads import (
    DINOHead,
    ProjectionHead,
    SwAVPrototypes,
    copy_weights,
    cosine_momentum,
    frozen_copy,
    momentum_update,
    projection_mlp,
)


@dataclass
class SSLOutput:
    """What a method returns for one batch.

    loss: scalar. embeddings_for_collapse: (B, d) detached online embeddings of the first view, the
    input of the collapse signal ``std_of_l2_normalized``. logs: scalars worth logging; tensors are
    detached and 0-d, so reading them (``float()``) can wait for a logging step instead of syncing
    the device every step.
    """

    loss: torch.Tensor
    embeddings_for_collapse: torch.Tensor
    logs: dict[str, Union[float, torch.Tensor]] = field(default_factory=dict)


class SSLMethod(nn.Module):
    """Common interface. Subclasses set the class attributes and implement ``forward``.

    Attributes:
        uses_target_encoder: the wrapper keeps an EMA copy of the backbone and passes its features.
        n_global_views: views seen by every branch (the first ``n_global_views`` of ``online``).
        supports_local_views: more online views (multi-crop local crops) are allowed after the global ones.
        base_momentum: start of the cosine EMA schedule (None without EMA).
    """

    uses_target_encoder: bool = False
    n_global_views: int = 2
    supports_local_views: bool = False
    base_momentum: Optional[float] = None

    def forward(
        self, online: Sequence[torch.Tensor], target: Optional[Sequence[torch.Tensor]], step: int
    ) -> SSLOutput:
        """online: one (B, D) tensor per view; target: one (B, D) tensor per global view or None;
        step: optimizer step, for schedules."""
        raise NotImplementedError

    def target_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        """(online head, EMA copy) pairs that :meth:`momentum_update` updates."""
        return []

    def momentum(self, step: int, total_steps: int) -> Optional[float]:
        """EMA momentum at ``step`` (BYOL cosine schedule from ``base_momentum`` to 1), None without EMA."""
        if self.base_momentum is None:
            return None
        return cosine_momentum(step, total_steps, self.base_momentum)

    def momentum_update(self, step: int, total_steps: int) -> Optional[float]:
        """EMA update of the method's own target heads; returns the momentum used (None without EMA)."""
        m = self.momentum(step, total_steps)
        if m is not None:
            for online, target in self.target_pairs():
                momentum_update(online, target, m)
        return m

    def sync_targets(self) -> None:
        """Copy every online head into its EMA copy (the start of training)."""
        for online, target in self.target_pairs():
            copy_weights(online, target)

    def freeze_targets(self) -> None:
        """Set ``requires_grad=False`` on what is never trained by gradients (EMA heads; overridden to add more).
        Loading can reset the flag on parameters missing from a checkpoint."""
        for _, target in self.target_pairs():
            target.requires_grad_(False)

    def check_views(self, online: Sequence[torch.Tensor], target: Optional[Sequence[torch.Tensor]]) -> None:
        """Raise ValueError unless the number of views fits the method."""
        name = type(self).__name__
        n = len(online)
        if n < self.n_global_views or (n > self.n_global_views and not self.supports_local_views):
            allowed = f">= {self.n_global_views}" if self.supports_local_views else f"exactly {self.n_global_views}"
            raise ValueError(f"{name} needs {allowed} online views, got {n}.")
        if self.uses_target_encoder and (target is None or len(target) != self.n_global_views):
            got = None if target is None else len(target)
            raise ValueError(f"{name} needs {self.n_global_views} target (EMA backbone) views, got {got}.")


class SimCLR(SSLMethod):
    """SimCLR (Chen et al. 2020): projector g, then NT-Xent between the two views over the global batch."""

    def __init__(self, embed_dim: int, *, temperature: float, projection_hidden_dim: int, projection_dim: int):
        super().__init__()
        self.temperature = temperature
        self.projector = projection_mlp(embed_dim, projection_hidden_dim, projection_dim, num_layers=2)

    def forward(self, online, target=None, step=0) -> SSLOutput:
        self.check_views(online, target)
        z1, z2 = self.projector(online[0]), self.projector(online[1])  # (B, projection_dim) each
        return SSLOutput(nt_xent_loss(z1, z2, self.temperature), z1.detach())


class SimCSE(SSLMethod):
    """Unsupervised SimCSE (Gao, Yao & Chen 2021, "SimCSE: Simple Contrastive Learning of Sentence
    Embeddings", eq. 4): the two views are the same sentences under different dropout masks; an MLP
    pooler (Linear + tanh, used in training only) maps them to z1, z2 and the loss is the cross-entropy
    of cos(z1_i, z2_j) / tau over the global batch, with positives on the diagonal. One direction only
    (z1 queries z2), as in the paper; gradients flow through both views."""

    def __init__(self, embed_dim: int, *, temperature: float):
        super().__init__()
        self.temperature = temperature
        self.pooler = ProjectionHead([(embed_dim, embed_dim, None, nn.Tanh())])

    def forward(self, online, target=None, step=0) -> SSLOutput:
        self.check_views(online, target)
        z1, z2 = self.pooler(online[0]), self.pooler(online[1])  # (B, D) each
        # info_nce_loss is exactly this cross-entropy, times MoCo v3's 2 * tau, which we undo.
        loss = info_nce_loss(z1, z2, self.temperature) / (2 * self.temperature)
        return SSLOutput(loss, z1.detach())


class SimSiam(SSLMethod):
    """SimSiam (Chen & He 2021, Algorithm 1): projector f (3 layers, last BN), predictor h (bottleneck),
    loss D(p1, stopgrad(z2)) / 2 + D(p2, stopgrad(z1)) / 2 with D the negative cosine. No EMA."""

    def __init__(self, embed_dim: int, *, projection_hidden_dim: int, projection_dim: int, prediction_hidden_dim: int):
        super().__init__()
        self.projector = projection_mlp(embed_dim, projection_hidden_dim, projection_dim, num_layers=3, last_bn=True)
        self.predictor = projection_mlp(projection_dim, prediction_hidden_dim, projection_dim, num_layers=2)

    def forward(self, online, target=None, step=0) -> SSLOutput:
        self.check_views(online, target)
        z1, z2 = self.projector(online[0]), self.projector(online[1])  # (B, projection_dim) each
        p1, p2 = self.predictor(z1), self.predictor(z2)
        loss = negative_cosine_loss(p1, z2) / 2 + negative_cosine_loss(p2, z1) / 2  # z detached inside
        return SSLOutput(loss, z1.detach())


class _PredictorWithMomentumTarget(SSLMethod):
    """Shared by BYOL and MoCo v3: online projector + predictor, EMA target projector."""

    uses_target_encoder = True
    projector_layers = 2
    projector_last_bn = False

    def __init__(
        self, embed_dim: int, *, base_momentum: float, projection_hidden_dim: int, projection_dim: int,
        prediction_hidden_dim: int,
    ):
        super().__init__()
        self.base_momentum = base_momentum
        self.projector = projection_mlp(
            embed_dim, projection_hidden_dim, projection_dim, self.projector_layers, last_bn=self.projector_last_bn
        )
        self.predictor = projection_mlp(projection_dim, prediction_hidden_dim, projection_dim, num_layers=2)
        self.target_projector = frozen_copy(self.projector)

    def target_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [(self.projector, self.target_projector)]

    def project(self, online, target):
        """-> online projections z (2 x (B, P)), predictions p (2 x (B, P)), target projections (2 x (B, P), no grad)."""
        self.check_views(online, target)
        z = [self.projector(x) for x in online]
        p = [self.predictor(zi) for zi in z]
        with torch.no_grad():
            z_target = [self.target_projector(t) for t in target]
        return z, p, z_target


class BYOL(_PredictorWithMomentumTarget):
    """BYOL (Grill et al. 2020, eq. 2): the online predictor regresses the target projection of the
    other view; symmetric loss L + L~ (their sum, as in the paper). Target = EMA of online."""

    def forward(self, online, target, step=0) -> SSLOutput:
        z, p, z_target = self.project(online, target)
        loss = byol_loss(p[0], z_target[1]) + byol_loss(p[1], z_target[0])
        return SSLOutput(loss, z[0].detach())


class MoCo(_PredictorWithMomentumTarget):
    """MoCo v3 (Chen, Xie & He 2021, Algorithm 1): 3-layer projector with a last BN (the ViT setting),
    predictor, momentum projector; loss ctr(q1, k2) + ctr(q2, k1) with in-batch (global) negatives."""

    projector_layers = 3
    projector_last_bn = True

    def __init__(self, embed_dim: int, *, temperature: float, **kwargs):
        super().__init__(embed_dim, **kwargs)
        self.temperature = temperature

    def forward(self, online, target, step=0) -> SSLOutput:
        z, q, k = self.project(online, target)
        loss = info_nce_loss(q[0], k[1], self.temperature) + info_nce_loss(q[1], k[0], self.temperature)
        return SSLOutput(loss, z[0].detach())


class DINO(SSLMethod):
    """DINO (Caron et al. 2021, Algorithm 1): a student head on every crop, an EMA teacher head on the
    global crops, cross-entropy between centered/sharpened teacher and student distributions.

    The student's last layer gets a zero gradient for the first ``freeze_last_layer_steps`` steps
    (the paper freezes it for the first epoch; see ``ssl_heads.zero_gradient``). In eval mode the
    loss is computed but the teacher center is left unchanged.
    """

    uses_target_encoder = True
    supports_local_views = True

    def __init__(
        self, embed_dim: int, *, out_dim: int, projection_hidden_dim: int, bottleneck_dim: int, student_temp: float,
        teacher_temp: float, warmup_teacher_temp: float, warmup_teacher_temp_steps: int, center_momentum: float,
        base_momentum: float, freeze_last_layer_steps: int, use_bn_in_head: bool, norm_last_layer: bool,
    ):
        super().__init__()
        self.base_momentum = base_momentum
        self.freeze_last_layer_steps = freeze_last_layer_steps
        self.student_head = DINOHead(
            embed_dim, projection_hidden_dim, bottleneck_dim, out_dim, use_bn=use_bn_in_head,
            norm_last_layer=norm_last_layer,
        )
        self.teacher_head = frozen_copy(self.student_head)
        self.loss = DINOLoss(
            out_dim, self.n_global_views, warmup_teacher_temp, teacher_temp, warmup_teacher_temp_steps,
            student_temp, center_momentum,
        )

    def target_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [(self.student_head, self.teacher_head)]

    def freeze_targets(self) -> None:
        super().freeze_targets()
        self.student_head.last_layer_norm.requires_grad_(not self.student_head.norm_last_layer)

    def forward(self, online, target, step=0) -> SSLOutput:
        self.check_views(online, target)
        sizes = [x.shape[0] for x in online]
        freeze = step < self.freeze_last_layer_steps
        student = self.student_head(torch.cat(list(online)), freeze_last_layer=freeze).split(sizes)  # views x (B, K)
        with torch.no_grad():
            teacher = self.teacher_head(torch.cat(list(target))).split(sizes[: len(target)])  # global x (B, K)
        saved_center = None if self.training else self.loss.center.clone()
        loss = self.loss(list(student), list(teacher), step)
        if saved_center is not None:
            self.loss.center.copy_(saved_center)
        logs = {"teacher_temp": self.loss.teacher_temperature(step)}
        return SSLOutput(loss, student[0].detach(), logs)


class SwAV(SSLMethod):
    """SwAV (Caron et al. 2020, Algorithm 1): projector on every crop, l2-normalized, scored against
    prototypes kept on the unit sphere; codes of the two global crops (Sinkhorn-Knopp) are predicted
    from every other crop.

    Prototypes are renormalized at the start of every training forward and get a zero gradient for the
    first ``freeze_prototypes_steps`` steps (``ssl_heads.zero_gradient``: nothing for a callback to do).
    With ``queue_length > 0``, the normalized projections of the global crops enter a FIFO queue from
    ``queue_start_step`` on; once full, its scores join the batch in Sinkhorn (not in the loss). The
    queue holds ``queue_length // world_size`` rows per process (the global queue has ``queue_length``),
    is allocated on first use and is not saved with the weights: after a resume it refills.
    """

    supports_local_views = True

    def __init__(
        self, embed_dim: int, *, temperature: float, projection_hidden_dim: int, projection_dim: int,
        n_prototypes: int, epsilon: float, sinkhorn_iterations: int, queue_length: int, queue_start_step: int,
        freeze_prototypes_steps: int,
    ):
        super().__init__()
        self.temperature = temperature
        self.epsilon = epsilon
        self.sinkhorn_iterations = sinkhorn_iterations
        self.queue_length = queue_length
        self.queue_start_step = queue_start_step
        self.freeze_prototypes_steps = freeze_prototypes_steps
        self.projector = projection_mlp(embed_dim, projection_hidden_dim, projection_dim, num_layers=2)
        self.prototypes = SwAVPrototypes(projection_dim, n_prototypes)
        self.register_buffer("queue", None, persistent=False)  # (n_global_views, L, projection_dim)
        self.queue_rows = 0  # rows filled so far

    @property
    def queue_full(self) -> bool:
        return self.queue is not None and self.queue_rows >= self.queue.shape[1]

    def forward(self, online, target=None, step=0) -> SSLOutput:
        self.check_views(online, target)
        if self.training:
            self.prototypes.normalize_()
        sizes = [x.shape[0] for x in online]
        z = F.normalize(self.projector(torch.cat(list(online))), dim=1)  # (views * B, P)
        scores = self.prototypes(z, frozen=step < self.freeze_prototypes_steps).split(sizes)  # views x (B, K)
        queue_scores = self.queue @ self.prototypes.weight.detach().T if self.queue_full else None  # (2, L, K)
        loss = swav_loss(
            scores, tuple(range(self.n_global_views)), self.temperature, self.epsilon, self.sinkhorn_iterations,
            queue=queue_scores,
        )
        if self.training and self.queue_length > 0 and step >= self.queue_start_step:
            self.enqueue(z.split(sizes)[: self.n_global_views])
        z_first = z[: sizes[0]].detach()
        return SSLOutput(loss, z_first, {"queue_in_use": float(queue_scores is not None)})

    @torch.no_grad()
    def enqueue(self, global_z: Sequence[torch.Tensor]) -> None:
        """Push the (B, P) normalized projections of each global crop to the front of the queue."""
        new = torch.stack([zi.detach().float() for zi in global_z])  # (2, B, P)
        if self.queue is None:
            rows = max(self.queue_length // world_size(), 1)
            self.queue = torch.zeros(new.shape[0], rows, new.shape[2], device=new.device)
        rows = self.queue.shape[1]
        self.queue.copy_(torch.cat([new, self.queue], dim=1)[:, :rows])
        self.queue_rows = min(rows, self.queue_rows + new.shape[1])


METHODS: dict[str, type[SSLMethod]] = {
    "simclr": SimCLR,
    "moco": MoCo,
    "byol": BYOL,
    "simsiam": SimSiam,
    "dino": DINO,
    "swav": SwAV,
    "simcse": SimCSE,
}

# Paper defaults, named as in the papers. Two are scaled for hfssl's small models and short runs,
# each marked "scaled" with the reason.
METHOD_DEFAULTS: dict[str, dict[str, Any]] = {
    # Chen et al. 2020: 2-layer MLP 2048 -> 128. tau = 0.5, the paper's value for small batches
    # (CIFAR-10); 0.1 suits batches of 4096 on ImageNet.
    "simclr": {"temperature": 0.5, "projection_hidden_dim": 2048, "projection_dim": 128},
    # MoCo v3, ViT setting: 3-layer projector 4096 -> 256, predictor 4096, tau = 0.2, m = 0.99 -> 1 (cosine).
    "moco": {
        "temperature": 0.2, "base_momentum": 0.99, "projection_hidden_dim": 4096, "projection_dim": 256,
        "prediction_hidden_dim": 4096,
    },
    # BYOL: projector and predictor 4096 -> 256, tau_base = 0.996 -> 1 (cosine).
    "byol": {"base_momentum": 0.996, "projection_hidden_dim": 4096, "projection_dim": 256, "prediction_hidden_dim": 4096},
    # SimSiam: 3-layer projector 2048 -> 2048, predictor bottleneck 512.
    "simsiam": {"projection_hidden_dim": 2048, "projection_dim": 2048, "prediction_hidden_dim": 512},
    # DINO, the defaults of the paper's code (ViT-S/16).
    "dino": {
        # scaled: K = 65536 in the paper; its ablation of K shows small differences from a few thousand
        # up, and 65536 logits per crop cost as much as a tiny backbone on CPU.
        "out_dim": 4096,
        "projection_hidden_dim": 2048,
        "bottleneck_dim": 256,
        "student_temp": 0.1,
        "teacher_temp": 0.04,
        "warmup_teacher_temp": 0.04,
        "warmup_teacher_temp_steps": 0,
        "center_momentum": 0.9,
        "base_momentum": 0.996,
        # scaled: the paper freezes the last layer for 1 epoch (1251 steps at batch 1024); hfssl runs
        # are a few thousand steps, so we take SwAV's 313-step figure for the same first-epoch rule.
        "freeze_last_layer_steps": 313,
        # scaled: off in the paper's code for ViTs. Small ViTs pool images into nearly parallel features, the
        # centered teacher targets start out uniform and the student collapses to them; BatchNorm in the head
        # (the code's use_bn_in_head) prevents it (docs/evaluation.md, "Measured: images").
        "use_bn_in_head": True,
        "norm_last_layer": True,
    },
    # SwAV: tau = 0.1, epsilon = 0.05, 3 Sinkhorn iterations, 3000 prototypes, 2048 -> 128 projector,
    # prototypes frozen for the first 313 steps (1 epoch at batch 4096). The queue is off by default: the
    # paper adds 3840 features from epoch 15 with batches of 256; set queue_length and queue_start_step together.
    "swav": {
        "temperature": 0.1, "projection_hidden_dim": 2048, "projection_dim": 128, "n_prototypes": 3000,
        "epsilon": 0.05, "sinkhorn_iterations": 3, "queue_length": 0, "queue_start_step": 0,
        "freeze_prototypes_steps": 313,
    },
    # Gao et al. 2021, unsupervised SimCSE: tau = 0.05.
    "simcse": {"temperature": 0.05},
}


def get_method_class(name: str) -> type[SSLMethod]:
    """The method class registered as ``name``; KeyError naming the valid ones otherwise."""
    try:
        return METHODS[name]
    except KeyError:
        raise KeyError(f"Unknown SSL method {name!r}; valid methods: {', '.join(METHODS)}.") from None


def resolve_method_params(name: str, params: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    """``METHOD_DEFAULTS[name]`` updated with ``params``, validated: unknown names -> ValueError listing the
    valid ones; wrong types -> TypeError; out-of-range values -> ValueError."""
    get_method_class(name)
    defaults = METHOD_DEFAULTS[name]
    params = dict(params or {})
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise ValueError(
            f"Unknown hyperparameter(s) {', '.join(unknown)} for SSL method {name!r}; valid: {', '.join(defaults)}."
        )
    resolved = {**defaults, **params}
    for key, value in resolved.items():
        _check_param(name, key, value, defaults[key])
    return resolved


class HyperparameterTypeError(TypeError, ValueError):
    """A method hyperparameter of the wrong type: a TypeError, and a ValueError so that the CLI reports it as
    bad input (an option the user typed) rather than as a crash."""


def _check_param(method: str, key: str, value: Any, default: Any) -> None:
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise HyperparameterTypeError(f"{method}.{key} must be true or false, got {value!r}.")
        return
    expected = int if isinstance(default, int) else float
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (expected is int and not isinstance(value, int)):
        raise HyperparameterTypeError(f"{method}.{key} must be {expected.__name__}, got {value!r}.")
    if "momentum" in key:
        ok, rule = 0 <= value <= 1, "in [0, 1]"
    elif key.endswith(("_steps", "_step", "_length")):
        ok, rule = value >= 0, ">= 0"
    else:  # widths, counts, temperatures, epsilon
        ok, rule = value > 0, "> 0"
    if not ok:
        raise ValueError(f"{method}.{key} must be {rule}, got {value!r}.")


def build_method(name: str, embed_dim: int, params: Optional[dict[str, Any]] = None) -> SSLMethod:
    """The method ``name`` for backbone features of size ``embed_dim``, with ``params`` overriding
    ``METHOD_DEFAULTS[name]`` (see :func:`resolve_method_params` for the errors)."""
    return get_method_class(name)(embed_dim, **resolve_method_params(name, params))

"""Self-supervised losses as pure tensor functions, correct under data parallelism.

Distributed convention (verified in ``tests/models/test_losses_distributed.py``): every loss
returns the mean over the rows held by *this* process, while negatives (NT-Xent, InfoNCE),
Sinkhorn sums (SwAV) and the DINO center use the *global* batch. With ``W`` processes each
holding ``B`` of the ``N = W * B`` samples:

* the mean of the per-process losses equals the 1-process loss on the full batch;
* because :func:`gather_with_grad` sends the gradients of the gathered copies back to their
  owners (summed over processes), the gradient each process gets for its own inputs is
  ``W`` times the gradient of the 1-process full-batch loss w.r.t. those inputs;
* DDP then averages parameter gradients over the ``W`` processes, which cancels the factor
  ``W``: the update equals the 1-process update on the full batch.
"""

from typing import Optional, Sequence

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


# --------------------------------------------------------------------------- distributed


def is_distributed() -> bool:
    """True when a process group with more than one process is running."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """Rank of this process (0 when not distributed)."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """Number of processes (1 when not distributed)."""
    return dist.get_world_size() if is_distributed() else 1


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """All-gather ``x`` (B, ...) from every process into (world_size * B, ...), keeping gradients.

    Rows are ordered by rank. In backward, each process receives the sum over processes of the
    gradients flowing into its slice. Returns ``x`` unchanged when not distributed.
    """
    if not is_distributed():
        return x
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(x), dim=0)


def _all_reduce(x: torch.Tensor, op: str) -> torch.Tensor:
    """Reduce ``x`` across processes with ``op`` ("SUM" or "MAX"); no gradient. Returns a copy."""
    x = x.detach().clone()
    if is_distributed():
        dist.all_reduce(x, op=getattr(dist.ReduceOp, op))
    return x


def all_reduce_sum(x: torch.Tensor) -> torch.Tensor:
    """Sum of ``x`` over processes, as a new tensor without gradient (a copy of ``x`` on 1 process)."""
    return _all_reduce(x, "SUM")


def all_reduce_mean(x: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` over processes, as a new tensor without gradient (a copy of ``x`` on 1 process)."""
    return all_reduce_sum(x) / world_size()


def _check_positive(name: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"`{name}` must be > 0, got {value!r}.")


def _check_pair(a: torch.Tensor, b: torch.Tensor, names: str) -> None:
    if a.dim() != 2 or a.shape != b.shape:
        raise ValueError(
            f"{names} must both have shape (batch_size, dim); got {tuple(a.shape)} and {tuple(b.shape)}."
        )


# --------------------------------------------------------------------------- contrastive


def nt_xent_loss(
    z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5, gather: bool = True
) -> torch.Tensor:
    """NT-Xent loss of SimCLR (Chen et al. 2020, "A Simple Framework for Contrastive Learning of
    Visual Representations", eq. 1).

    Args:
        z1, z2: (B, D) projections of two views of the same B local samples.
        temperature: tau in the paper.
        gather: use the global batch (all processes) for negatives.

    Each of the 2B local rows is scored (cosine / tau) against the 2N rows of the global batch
    (N = world_size * B); its own column is excluded, the other view of the same sample is the
    positive, the remaining 2N - 2 are negatives. Returns the mean cross-entropy over the 2B
    local rows: a scalar.
    """
    _check_pair(z1, z2, "`z1` and `z2`")
    _check_positive("temperature", temperature)
    batch_size = z1.shape[0]
    z1, z2 = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
    z1_all = gather_with_grad(z1) if gather else z1  # (N, D)
    z2_all = gather_with_grad(z2) if gather else z2  # (N, D)
    n_global = z1_all.shape[0]
    offset = rank() * batch_size if gather else 0

    rows = torch.cat([z1, z2])  # (2B, D)
    columns = torch.cat([z1_all, z2_all])  # (2N, D)
    logits = rows @ columns.T / temperature  # (2B, 2N)

    local = torch.arange(batch_size, device=z1.device) + offset  # (B,) global index of each sample
    self_columns = torch.cat([local, local + n_global])  # (2B,)
    positive_columns = torch.cat([local + n_global, local])  # (2B,)
    is_self = torch.zeros_like(logits, dtype=torch.bool)
    is_self[torch.arange(2 * batch_size, device=z1.device), self_columns] = True
    logits = logits.masked_fill(is_self, float("-inf"))
    return F.cross_entropy(logits, positive_columns)


def info_nce_loss(
    q: torch.Tensor, k: torch.Tensor, temperature: float = 0.2, gather: bool = True
) -> torch.Tensor:
    """InfoNCE loss of MoCo v3 (Chen, Xie & He 2021, "An Empirical Study of Training
    Self-Supervised Vision Transformers", Algorithm 1 ``ctr``).

    Args:
        q: (B, D) predictor outputs (queries) of one view.
        k: (B, D) momentum-encoder outputs (keys) of the other view; the caller detaches them.
        temperature: tau in the paper.
        gather: use the keys of the global batch (all processes) as negatives.

    Logits are cos(q_i, k_j) / tau over the N = world_size * B global keys; the positive of
    local query i is global key ``rank * B + i``. Returns the mean cross-entropy over the B
    local queries times ``2 * tau`` (the paper's scaling): a scalar. The symmetric MoCo v3 loss
    is ``info_nce_loss(q1, k2) + info_nce_loss(q2, k1)``.
    """
    _check_pair(q, k, "`q` and `k`")
    _check_positive("temperature", temperature)
    q, k = F.normalize(q, dim=1), F.normalize(k, dim=1)
    k_all = gather_with_grad(k) if gather else k  # (N, D)
    logits = q @ k_all.T / temperature  # (B, N)
    offset = rank() * q.shape[0] if gather else 0
    labels = torch.arange(q.shape[0], device=q.device) + offset  # (B,)
    return F.cross_entropy(logits, labels) * (2 * temperature)


# --------------------------------------------------------------------------- non-contrastive


def negative_cosine_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """SimSiam's D(p, z) = -cos(p, stopgrad(z)) (Chen & He 2021, "Exploring Simple Siamese
    Representation Learning", eq. 1 and 3).

    Args:
        p: (B, D) predictor outputs; gradients flow into ``p``.
        z: (B, D) projections of the other view; detached here (stop-gradient).

    Returns the mean over the B rows: a scalar in [-1, 1].
    """
    _check_pair(p, z, "`p` and `z`")
    return -F.cosine_similarity(p, z.detach(), dim=1).mean()


def byol_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """BYOL regression loss ||p/|p| - z/|z|||^2 = 2 - 2 cos(p, stopgrad(z)) (Grill et al. 2020,
    "Bootstrap Your Own Latent", eq. 2).

    Args:
        p: (B, D) online predictions; gradients flow into ``p``.
        z: (B, D) target projections; detached here (stop-gradient).

    Returns the mean over the B rows: a scalar in [0, 4].
    """
    _check_pair(p, z, "`p` and `z`")
    return (2 - 2 * F.cosine_similarity(p, z.detach(), dim=1)).mean()


# --------------------------------------------------------------------------- DINO


class DINOLoss(nn.Module):
    """Self-distillation loss of DINO (Caron et al. 2021, "Emerging Properties in Self-Supervised
    Vision Transformers", Algorithm 1), with teacher centering and sharpening.

    Args:
        out_dim: K, the number of prototype logits.
        n_global_crops: crops seen by the teacher; they are the first crops of the student.
        warmup_teacher_temp: teacher temperature at step 0.
        teacher_temp: teacher temperature after ``warmup_teacher_temp_steps``.
        warmup_teacher_temp_steps: length of the linear temperature warm-up, in optimizer steps.
        student_temp: student temperature.
        center_momentum: m in ``center = m * center + (1 - m) * batch_center``.

    The center is a persistent buffer of shape (1, K), so it is saved with the weights.
    """

    def __init__(
        self,
        out_dim: int,
        n_global_crops: int = 2,
        warmup_teacher_temp: float = 0.04,
        teacher_temp: float = 0.04,
        warmup_teacher_temp_steps: int = 0,
        student_temp: float = 0.1,
        center_momentum: float = 0.9,
    ):
        super().__init__()
        if out_dim < 1 or n_global_crops < 1 or warmup_teacher_temp_steps < 0:
            raise ValueError(
                f"Need out_dim >= 1, n_global_crops >= 1 and warmup_teacher_temp_steps >= 0; got "
                f"{out_dim!r}, {n_global_crops!r} and {warmup_teacher_temp_steps!r}."
            )
        for name, value in [
            ("warmup_teacher_temp", warmup_teacher_temp),
            ("teacher_temp", teacher_temp),
            ("student_temp", student_temp),
        ]:
            _check_positive(name, value)
        if not 0 <= center_momentum <= 1:
            raise ValueError(f"`center_momentum` must be in [0, 1], got {center_momentum!r}.")
        self.n_global_crops = n_global_crops
        self.warmup_teacher_temp = warmup_teacher_temp
        self.teacher_temp = teacher_temp
        self.warmup_teacher_temp_steps = warmup_teacher_temp_steps
        self.student_temp = student_temp
        self.center_momentum = center_momentum
        self.register_buffer("center", torch.zeros(1, out_dim), persistent=True)

    def teacher_temperature(self, step: int) -> float:
        """Linear warm-up from ``warmup_teacher_temp`` (step 0) to ``teacher_temp`` (step
        ``warmup_teacher_temp_steps``), constant afterwards."""
        if step >= self.warmup_teacher_temp_steps:
            return self.teacher_temp
        fraction = max(step, 0) / self.warmup_teacher_temp_steps
        return self.warmup_teacher_temp + fraction * (self.teacher_temp - self.warmup_teacher_temp)

    def forward(
        self, student_out: Sequence[torch.Tensor], teacher_out: Sequence[torch.Tensor], step: int
    ) -> torch.Tensor:
        """
        Args:
            student_out: one (B, K) logit tensor per crop, the ``n_global_crops`` global crops first.
            teacher_out: one (B, K) logit tensor per global crop; gradients never flow into it.
            step: optimizer step, for the teacher temperature schedule.

        Returns the cross-entropy H(teacher, student) averaged over the B local rows and over all
        (teacher crop, student crop) pairs of different crops: a scalar. Afterwards the center is
        updated with the teacher outputs of the global batch.
        """
        self._check_crops(student_out, teacher_out)
        temperature = self.teacher_temperature(step)
        teacher_probs = [
            F.softmax((t.detach() - self.center) / temperature, dim=-1) for t in teacher_out
        ]  # n_global_crops x (B, K)
        student_log_probs = [F.log_softmax(s / self.student_temp, dim=-1) for s in student_out]

        total, n_pairs = 0.0, 0
        for t_index, probs in enumerate(teacher_probs):
            for s_index, log_probs in enumerate(student_log_probs):
                if s_index == t_index:
                    continue
                total = total + torch.sum(-probs * log_probs, dim=-1).mean()
                n_pairs += 1
        self.update_center(teacher_out)
        return total / n_pairs

    @torch.no_grad()
    def update_center(self, teacher_out: Sequence[torch.Tensor]) -> None:
        """EMA update of the center with the mean teacher logit over all crops of the global batch.

        Args:
            teacher_out: one (B, K) logit tensor per global crop.
        """
        local_sum = torch.stack([t.detach().sum(dim=0) for t in teacher_out]).sum(dim=0)  # (K,)
        # Counting rows globally keeps the mean exact when ranks hold batches of different sizes.
        local_rows = torch.tensor(float(sum(t.shape[0] for t in teacher_out)), device=local_sum.device)
        batch_center = all_reduce_sum(local_sum).unsqueeze(0) / all_reduce_sum(local_rows)  # (1, K)
        batch_center = batch_center.to(self.center.dtype)
        self.center.mul_(self.center_momentum).add_(batch_center, alpha=1 - self.center_momentum)

    def _check_crops(self, student_out: Sequence[torch.Tensor], teacher_out: Sequence[torch.Tensor]) -> None:
        if len(teacher_out) != self.n_global_crops:
            raise ValueError(
                f"Expected {self.n_global_crops} teacher crops (n_global_crops), got {len(teacher_out)}."
            )
        if len(student_out) < self.n_global_crops or len(student_out) < 2:
            raise ValueError(
                f"Expected at least max(2, n_global_crops={self.n_global_crops}) student crops "
                f"(global crops first), got {len(student_out)}."
            )


# --------------------------------------------------------------------------- SwAV


@torch.no_grad()
def sinkhorn_knopp(scores: torch.Tensor, epsilon: float = 0.05, n_iters: int = 3) -> torch.Tensor:
    """Soft codes by the Sinkhorn-Knopp algorithm (SwAV, Caron et al. 2020, "Unsupervised
    Learning of Visual Features by Contrasting Cluster Assignments", Sec. 3.1 and eq. 3).

    Args:
        scores: (B, K) prototype scores of the local rows.
        epsilon: entropy regularization; Q = exp(scores / epsilon).T.
        n_iters: Sinkhorn iterations (each normalizes prototypes, then samples).

    With N = world_size * B global rows, Q is projected towards the transport polytope with
    prototype marginals 1/K and sample marginals 1/N; sums run over the global batch, so the
    result equals the 1-process run on all rows. The last step normalizes samples, so each
    returned row sums to exactly 1 (codes are multiplied by N at the end). Returns (B, K).
    """
    if scores.dim() != 2:
        raise ValueError(f"`scores` must have shape (batch_size, n_prototypes), got {tuple(scores.shape)}.")
    _check_positive("epsilon", epsilon)
    if n_iters < 1:
        raise ValueError(f"`n_iters` must be >= 1, got {n_iters!r}.")
    if scores.dtype not in (torch.float32, torch.float64):
        scores = scores.float()  # half precision underflows exp(scores / epsilon)
    # Subtracting the global max cancels in the normalization and keeps exp() finite.
    shift = _all_reduce(scores.max(), "MAX")
    q = torch.exp((scores - shift) / epsilon).T  # (K, B)
    n_prototypes, n_samples = q.shape[0], q.shape[1] * world_size()
    q /= all_reduce_sum(q.sum())
    for _ in range(n_iters):
        q /= all_reduce_sum(q.sum(dim=1, keepdim=True))  # each prototype sums to 1 ...
        q /= n_prototypes  # ... then to 1/K
        q /= q.sum(dim=0, keepdim=True)  # each sample sums to 1 ...
        q /= n_samples  # ... then to 1/N
    return (q * n_samples).T  # (B, K)


def swav_loss(
    scores_per_crop: Sequence[torch.Tensor],
    crops_for_assign: Sequence[int] = (0, 1),
    temperature: float = 0.1,
    epsilon: float = 0.05,
    n_iters: int = 3,
    queue: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Swapped-prediction loss of SwAV (Caron et al. 2020, eq. 1-2 and Algorithm 1).

    Args:
        scores_per_crop: one (B, K) tensor of prototype scores z^T c per crop.
        crops_for_assign: crops whose codes are computed (Sinkhorn) and predicted from the others.
        temperature: tau of the softmax over prototypes.
        epsilon, n_iters: see :func:`sinkhorn_knopp`.
        queue: optional (len(crops_for_assign), L, K) scores of stored features, one queue per
            assigned crop; they are prepended to the crop's scores for Sinkhorn, and only the
            batch's B codes are used.

    For each assigned crop s, the loss is the cross-entropy between its codes q_s (no gradient)
    and softmax(scores_t / tau) for every other crop t, averaged over the B local rows and the
    other crops; then averaged over the assigned crops. Returns a scalar.
    """
    n_crops = len(scores_per_crop)
    if n_crops < 2 or any(not 0 <= c < n_crops for c in crops_for_assign) or not crops_for_assign:
        raise ValueError(
            f"Need >= 2 crops and non-empty `crops_for_assign` in [0, {n_crops}); got {n_crops} "
            f"crops and crops_for_assign={tuple(crops_for_assign)}."
        )
    _check_positive("temperature", temperature)
    if queue is not None and (queue.dim() != 3 or queue.shape[0] != len(crops_for_assign)):
        raise ValueError(
            f"`queue` must have shape (len(crops_for_assign)={len(crops_for_assign)}, length, "
            f"n_prototypes), got {tuple(queue.shape)}."
        )
    log_probs = [F.log_softmax(s / temperature, dim=1) for s in scores_per_crop]  # n_crops x (B, K)
    total = 0.0
    for i, crop in enumerate(crops_for_assign):
        codes = _swav_codes(scores_per_crop[crop], None if queue is None else queue[i], epsilon, n_iters)
        others = [log_probs[t] for t in range(n_crops) if t != crop]
        total = total + sum(-(codes * lp).sum(dim=1).mean() for lp in others) / len(others)
    return total / len(crops_for_assign)


def _swav_codes(
    scores: torch.Tensor, queue_scores: Optional[torch.Tensor], epsilon: float, n_iters: int
) -> torch.Tensor:
    """Sinkhorn codes (B, K) for ``scores`` (B, K), optionally using the queue's (L, K) rows too."""
    batch_size = scores.shape[0]
    scores = scores.detach()
    if queue_scores is not None:
        scores = torch.cat([queue_scores.detach().to(scores.dtype), scores])  # (L + B, K)
    codes = sinkhorn_knopp(scores, epsilon=epsilon, n_iters=n_iters)  # (L + B, K)
    return codes[-batch_size:].to(scores.dtype)  # (B, K)


# --------------------------------------------------------------------------- monitoring


def std_of_l2_normalized(z: torch.Tensor) -> torch.Tensor:
    """Collapse signal: mean over dimensions of the std over the batch of l2-normalized rows.

    Args:
        z: (B, D) embeddings; gathered over processes when distributed.

    About 1/sqrt(D) for well-spread embeddings, 0 when all rows collapse to one vector
    (Lightly's ``std_of_l2_normalized``; cf. SimSiam, Chen & He 2021, Sec. 4.1). Returns a scalar.
    """
    if z.dim() != 2:
        raise ValueError(f"`z` must have shape (batch_size, dim), got {tuple(z.shape)}.")
    z_all = gather_with_grad(F.normalize(z, dim=1))  # (N, D)
    if z_all.shape[0] < 2:
        raise ValueError(f"Need at least 2 rows to compute a std, got {z_all.shape[0]}.")
    return z_all.std(dim=0).mean()

"""Losses against slow references written from each paper's pseudocode, and analytic values."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from hfssl.models.losses import (
    DINOLoss,
    byol_loss,
    gather_with_grad,
    info_nce_loss,
    negative_cosine_loss,
    nt_xent_loss,
    rank,
    sinkhorn_knopp,
    std_of_l2_normalized,
    swav_loss,
    world_size,
)


def _randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# --------------------------------------------------------------------------- slow references


def nt_xent_reference(z1, z2, temperature):
    """SimCLR eq. 1: l(i, j) = -log exp(s_ij / t) / sum_{k != i} exp(s_ik / t), mean over 2N terms."""
    z = [F.normalize(v, dim=0) for v in torch.cat([z1, z2])]
    n = z1.shape[0]
    total = 0.0
    for i in range(2 * n):
        positive = (i + n) % (2 * n)
        denominator = sum(torch.exp(z[i] @ z[k] / temperature) for k in range(2 * n) if k != i)
        total = total - torch.log(torch.exp(z[i] @ z[positive] / temperature) / denominator)
    return total / (2 * n)


def info_nce_reference(q, k, temperature):
    """MoCo v3 Algorithm 1: CrossEntropy(q @ k.T / t, arange(N)) * 2t, row by row."""
    q, k = F.normalize(q, dim=1), F.normalize(k, dim=1)
    total = 0.0
    for i in range(q.shape[0]):
        logits = torch.stack([q[i] @ k[j] / temperature for j in range(k.shape[0])])
        total = total - (logits[i] - torch.logsumexp(logits, dim=0))
    return total / q.shape[0] * 2 * temperature


def dino_reference(student_out, teacher_out, center, teacher_temp, student_temp):
    """DINO Algorithm 1 H(t, s) averaged over pairs of different crops, sample by sample."""
    total, n_pairs = 0.0, 0
    for t_index, t in enumerate(teacher_out):
        for s_index, s in enumerate(student_out):
            if s_index == t_index:
                continue
            per_sample = []
            for b in range(t.shape[0]):
                teacher_probs = torch.exp((t[b] - center) / teacher_temp)
                teacher_probs = teacher_probs / teacher_probs.sum()
                student_probs = torch.exp(s[b] / student_temp)
                student_probs = student_probs / student_probs.sum()
                per_sample.append(-(teacher_probs * torch.log(student_probs)).sum())
            total = total + sum(per_sample) / len(per_sample)
            n_pairs += 1
    return total / n_pairs


def sinkhorn_reference(scores, epsilon, n_iters):
    """SwAV Algorithm 1 with explicit loops over prototypes and samples."""
    q = torch.exp(scores / epsilon).T.clone()  # (K, B)
    n_prototypes, n_samples = q.shape
    q = q / q.sum()
    for _ in range(n_iters):
        for k in range(n_prototypes):
            q[k] = q[k] / q[k].sum() / n_prototypes
        for b in range(n_samples):
            q[:, b] = q[:, b] / q[:, b].sum() / n_samples
    return (q * n_samples).T


def swav_reference(scores_per_crop, crops_for_assign, temperature, epsilon, n_iters, queue=None):
    total = 0.0
    for i, crop in enumerate(crops_for_assign):
        assigned = scores_per_crop[crop]
        if queue is not None:
            assigned = torch.cat([queue[i], assigned])
        codes = sinkhorn_reference(assigned, epsilon, n_iters)[-scores_per_crop[crop].shape[0] :]
        sub = 0.0
        others = [v for v in range(len(scores_per_crop)) if v != crop]
        for v in others:
            p = torch.softmax(scores_per_crop[v] / temperature, dim=1)
            sub = sub - (codes * torch.log(p)).sum(dim=1).mean()
        total = total + sub / len(others)
    return total / len(crops_for_assign)


# --------------------------------------------------------------------------- helpers


def test_helpers_are_identity_without_process_group():
    x = _randn(3, 2)
    assert gather_with_grad(x) is x
    assert (rank(), world_size()) == (0, 1)


# --------------------------------------------------------------------------- NT-Xent


@pytest.mark.parametrize("temperature", [0.1, 0.5])
def test_nt_xent_matches_reference(temperature):
    z1, z2 = _randn(6, 5, seed=1), _randn(6, 5, seed=2)
    assert_close(nt_xent_loss(z1, z2, temperature), nt_xent_reference(z1, z2, temperature))


def test_nt_xent_identical_vectors_gives_log_2n_minus_1():
    n = 5
    z = torch.ones(n, 4)
    assert_close(nt_xent_loss(z, z), torch.tensor(math.log(2 * n - 1)))


def test_nt_xent_separated_pairs_give_zero():
    z = torch.eye(4) * 3.0  # each pair its own axis, pairs orthogonal to each other
    assert nt_xent_loss(z, z, temperature=0.01) < 1e-6


def test_nt_xent_gradients_are_finite_despite_masked_self_similarity():
    z1, z2 = _randn(4, 3, seed=3).requires_grad_(), _randn(4, 3, seed=4).requires_grad_()
    nt_xent_loss(z1, z2).backward()
    assert torch.isfinite(z1.grad).all() and z1.grad.abs().sum() > 0


# --------------------------------------------------------------------------- InfoNCE


def test_info_nce_matches_reference():
    q, k = _randn(7, 5, seed=5), _randn(7, 5, seed=6)
    assert_close(info_nce_loss(q, k, 0.2), info_nce_reference(q, k, 0.2))


def test_info_nce_analytic_values():
    n, temperature = 6, 0.2
    same = torch.ones(n, 3)
    assert_close(info_nce_loss(same, same, temperature), torch.tensor(math.log(n) * 2 * temperature))
    separated = torch.eye(n)
    assert info_nce_loss(separated, separated, temperature=0.01) < 1e-6


# --------------------------------------------------------------------------- cosine losses


def test_cosine_losses_analytic_values():
    p = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    orthogonal = torch.tensor([[0.0, 5.0], [3.0, 0.0]])
    assert_close(negative_cosine_loss(p, 2 * p), torch.tensor(-1.0))
    assert_close(negative_cosine_loss(p, orthogonal), torch.tensor(0.0))
    assert_close(byol_loss(p, 2 * p), torch.tensor(0.0))
    assert_close(byol_loss(p, orthogonal), torch.tensor(2.0))
    assert_close(byol_loss(p, -p), torch.tensor(4.0))


def test_byol_loss_is_normalized_mse():
    p, z = _randn(4, 6, seed=7), _randn(4, 6, seed=8)
    expected = ((F.normalize(p, dim=1) - F.normalize(z, dim=1)) ** 2).sum(dim=1).mean()
    assert_close(byol_loss(p, z), expected)


@pytest.mark.parametrize("loss_fn", [negative_cosine_loss, byol_loss])
def test_cosine_losses_stop_gradient_into_target(loss_fn):
    p, z = _randn(4, 3, seed=9).requires_grad_(), _randn(4, 3, seed=10).requires_grad_()
    loss_fn(p, z).backward()
    assert z.grad is None
    assert p.grad.abs().sum() > 0


# --------------------------------------------------------------------------- DINO


def _dino_crops(batch=4, dim=6, n_crops=4, seed=20):
    student = [_randn(batch, dim, seed=seed + i) for i in range(n_crops)]
    teacher = [_randn(batch, dim, seed=seed + 10 + i) for i in range(2)]
    return student, teacher


def test_dino_loss_matches_reference_with_nonzero_center():
    loss_fn = DINOLoss(out_dim=6, teacher_temp=0.07, warmup_teacher_temp=0.04, warmup_teacher_temp_steps=10)
    loss_fn = loss_fn.double()
    loss_fn.center.copy_(_randn(1, 6, seed=30))
    center = loss_fn.center.clone()
    student, teacher = _dino_crops()
    expected = dino_reference(student, teacher, center[0], loss_fn.teacher_temperature(3), 0.1)
    assert_close(loss_fn(student, teacher, step=3), expected)


def test_dino_loss_with_teacher_equal_student_is_teacher_entropy():
    loss_fn = DINOLoss(out_dim=5, teacher_temp=0.1, warmup_teacher_temp=0.1, student_temp=0.1)
    logits = torch.randn(3, 5)
    probs = torch.softmax(logits / 0.1, dim=1)
    entropy = -(probs * probs.log()).sum(dim=1).mean()
    assert_close(loss_fn([logits, logits], [logits, logits], step=0), entropy)


def test_dino_teacher_temperature_schedule():
    loss_fn = DINOLoss(out_dim=2, warmup_teacher_temp=0.04, teacher_temp=0.07, warmup_teacher_temp_steps=100)
    assert loss_fn.teacher_temperature(0) == pytest.approx(0.04)
    assert loss_fn.teacher_temperature(50) == pytest.approx(0.055)
    assert loss_fn.teacher_temperature(100) == pytest.approx(0.07)
    assert loss_fn.teacher_temperature(10_000) == pytest.approx(0.07)
    assert DINOLoss(out_dim=2, teacher_temp=0.07).teacher_temperature(0) == pytest.approx(0.07)


def test_dino_center_ema_update():
    loss_fn = DINOLoss(out_dim=6, center_momentum=0.9)
    student, teacher = _dino_crops()
    loss_fn(student, teacher, step=0)
    first_mean = torch.cat(teacher).mean(dim=0, keepdim=True).float()
    assert_close(loss_fn.center, 0.1 * first_mean)
    student, teacher = _dino_crops(seed=40)
    loss_fn(student, teacher, step=1)
    second_mean = torch.cat(teacher).mean(dim=0, keepdim=True).float()
    assert_close(loss_fn.center, 0.9 * 0.1 * first_mean + 0.1 * second_mean)


def test_dino_center_is_saved_in_state_dict():
    loss_fn = DINOLoss(out_dim=3)
    assert loss_fn.state_dict()["center"].shape == (1, 3)


def test_dino_stop_gradient_into_teacher():
    student, teacher = _dino_crops()
    student = [s.requires_grad_() for s in student]
    teacher = [t.requires_grad_() for t in teacher]
    DINOLoss(out_dim=6)(student, teacher, step=0).backward()
    assert all(t.grad is None for t in teacher)
    assert all(s.grad.abs().sum() > 0 for s in student)


def test_dino_rejects_wrong_number_of_teacher_crops():
    student, teacher = _dino_crops()
    with pytest.raises(ValueError, match="teacher crops"):
        DINOLoss(out_dim=6, n_global_crops=2)(student, teacher[:1], step=0)


# --------------------------------------------------------------------------- SwAV


@pytest.mark.parametrize("n_iters", [1, 3])
def test_sinkhorn_matches_reference(n_iters):
    scores = _randn(7, 4, seed=50) * 0.3
    assert_close(sinkhorn_knopp(scores, 0.05, n_iters), sinkhorn_reference(scores, 0.05, n_iters))


def test_sinkhorn_marginals():
    """Each returned row (sample) sums to exactly 1, since the last step normalizes samples to
    1/B before the multiplication by B; each column (prototype) sums to B/K only at convergence."""
    batch, n_prototypes = 12, 4
    scores = _randn(batch, n_prototypes, seed=51) * 0.2
    codes = sinkhorn_knopp(scores, epsilon=0.05, n_iters=3)
    assert_close(codes.sum(dim=1), torch.ones(batch, dtype=codes.dtype))
    converged = sinkhorn_knopp(scores, epsilon=0.05, n_iters=500)
    assert_close(converged.sum(dim=0), torch.full((n_prototypes,), batch / n_prototypes, dtype=codes.dtype))


def test_sinkhorn_is_a_diagonal_scaling_of_exp_scores():
    """Sinkhorn only rescales rows and columns: log(codes) - scores / eps = a_b + c_k."""
    scores = _randn(6, 5, seed=52) * 0.2
    residual = sinkhorn_knopp(scores, epsilon=0.05, n_iters=3).log() - scores / 0.05
    rank_one = residual[:, :1] + residual[:1, :] - residual[0, 0]
    assert_close(residual, rank_one)


def test_sinkhorn_is_stable_for_large_scores():
    codes = sinkhorn_knopp(torch.tensor([[100.0, 0.0], [0.0, 100.0]]), epsilon=0.05)
    assert torch.isfinite(codes).all()
    assert_close(codes, torch.eye(2))


@pytest.mark.parametrize("use_queue", [False, True])
def test_swav_loss_matches_reference(use_queue):
    scores = [_randn(5, 4, seed=60 + i) * 0.5 for i in range(4)]
    queue = _randn(2, 6, 4, seed=70) * 0.5 if use_queue else None
    loss = swav_loss(scores, (0, 1), temperature=0.1, epsilon=0.05, n_iters=3, queue=queue)
    assert_close(loss, swav_reference(scores, (0, 1), 0.1, 0.05, 3, queue))


def test_swav_queue_changes_the_codes():
    scores = [_randn(5, 4, seed=60 + i) * 0.5 for i in range(2)]
    queue = _randn(2, 6, 4, seed=71) * 0.5
    assert not torch.allclose(swav_loss(scores, queue=queue), swav_loss(scores))


def test_swav_stop_gradient_through_codes():
    scores = [(_randn(5, 4, seed=80 + i) * 0.5).requires_grad_() for i in range(2)]
    swav_loss(scores, crops_for_assign=(0,)).backward()
    assert scores[0].grad is None  # crop 0 is only a Sinkhorn target
    assert scores[1].grad.abs().sum() > 0


def test_swav_rejects_bad_crop_index():
    with pytest.raises(ValueError, match="crops_for_assign"):
        swav_loss([torch.zeros(2, 3)] * 2, crops_for_assign=(2,))


# --------------------------------------------------------------------------- collapse signal


def test_std_of_l2_normalized():
    assert_close(std_of_l2_normalized(torch.ones(8, 16) * 3.0), torch.tensor(0.0))
    z = _randn(4096, 64, seed=90)
    assert std_of_l2_normalized(z).item() == pytest.approx(1 / math.sqrt(64), rel=0.05)
    expected = torch.stack([F.normalize(z, dim=1)[:, d].std() for d in range(64)]).mean()
    assert_close(std_of_l2_normalized(z), expected)


# --------------------------------------------------------------------------- input validation


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: nt_xent_loss(torch.zeros(2, 3), torch.zeros(3, 3)), "z1"),
        (lambda: nt_xent_loss(torch.zeros(2, 3), torch.zeros(2, 3), temperature=0.0), "temperature"),
        (lambda: info_nce_loss(torch.zeros(2, 3), torch.zeros(2, 4)), "`q`"),
        (lambda: negative_cosine_loss(torch.zeros(3), torch.zeros(3)), "`p`"),
        (lambda: sinkhorn_knopp(torch.zeros(2, 3), epsilon=-1.0), "epsilon"),
        (lambda: sinkhorn_knopp(torch.zeros(2, 3), n_iters=0), "n_iters"),
        (lambda: swav_loss([torch.zeros(2, 3)] * 2, queue=torch.zeros(5, 3)), "queue"),
        (lambda: DINOLoss(out_dim=3, center_momentum=1.5), "center_momentum"),
        (lambda: DINOLoss(out_dim=3, student_temp=0.0), "student_temp"),
        (lambda: std_of_l2_normalized(torch.zeros(1, 3)), "2 rows"),
    ],
)
def test_bad_input_raises_value_error_naming_it(call, match):
    with pytest.raises(ValueError, match=match):
        call()

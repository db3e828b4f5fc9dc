import math

import pytest
import torch
from torch import nn

from hfssl.models.cpu_gemm import Linear
from hfssl.models.ssl_heads import (
    DINOHead,
    ProjectionHead,
    SwAVPrototypes,
    copy_weights,
    cosine_momentum,
    frozen_copy,
    momentum_update,
    projection_mlp,
    zero_gradient,
)


def test_projection_head_builds_linear_norm_activation_blocks():
    head = ProjectionHead([(8, 16, nn.BatchNorm1d(16), nn.ReLU()), (16, 4, None, None)])
    kinds = [type(m) for m in head.layers]
    assert kinds == [Linear, nn.BatchNorm1d, nn.ReLU, Linear] and issubclass(Linear, nn.Linear)
    assert head.layers[0].bias is None, "a Linear followed by a norm needs no bias"
    assert head.layers[3].bias is not None
    assert head(torch.randn(5, 8)).shape == (5, 4)


def test_projection_head_rejects_no_blocks():
    with pytest.raises(ValueError, match="at least one"):
        ProjectionHead([])


def test_projection_mlp_layers_and_last_batch_norm():
    head = projection_mlp(8, 32, 6, num_layers=3, last_bn=True)
    linears = [m for m in head.layers if isinstance(m, nn.Linear)]
    norms = [m for m in head.layers if isinstance(m, nn.BatchNorm1d)]
    assert [(m.in_features, m.out_features) for m in linears] == [(8, 32), (32, 32), (32, 6)]
    assert len(norms) == 3 and not norms[-1].affine and norms[0].affine
    no_bn = projection_mlp(8, 32, 6, num_layers=2, batch_norm=False)
    assert not any(isinstance(m, nn.BatchNorm1d) for m in no_bn.layers)
    assert no_bn(torch.randn(3, 8)).shape == (3, 6)


def test_zero_gradient_keeps_values_and_zeroes_the_gradient():
    x = torch.randn(4, requires_grad=True)
    y = zero_gradient(x)
    torch.testing.assert_close(y, x)
    (y * torch.arange(4.0)).sum().backward()
    assert x.grad is not None and torch.equal(x.grad, torch.zeros(4))


def test_dino_head_normalizes_the_last_layer_with_norm_fixed_to_one():
    torch.manual_seed(0)
    head = DINOHead(in_dim=8, hidden_dim=16, bottleneck_dim=4, out_dim=10)
    assert not head.last_layer_norm.requires_grad
    assert torch.equal(head.last_layer_norm, torch.ones(10, 1))
    optimizer = torch.optim.SGD([p for p in head.parameters() if p.requires_grad], lr=1.0)
    head(torch.randn(6, 8)).pow(2).sum().backward()
    optimizer.step()
    torch.testing.assert_close(head.last_layer.weight.norm(dim=1), torch.ones(10))
    assert head(torch.randn(6, 8)).shape == (6, 10)


def test_dino_head_with_a_trainable_norm_learns_g():
    torch.manual_seed(0)
    head = DINOHead(in_dim=8, hidden_dim=16, bottleneck_dim=4, out_dim=10, norm_last_layer=False)
    assert head.last_layer_norm.requires_grad
    optimizer = torch.optim.SGD([p for p in head.parameters() if p.requires_grad], lr=1.0)
    head(torch.randn(6, 8)).pow(2).sum().backward()
    optimizer.step()
    assert not torch.allclose(head.last_layer.weight.norm(dim=1), torch.ones(10))


def test_dino_head_batch_norm_spreads_nearly_parallel_inputs_apart():
    torch.manual_seed(0)
    shared = torch.randn(1, 8) * 5
    x = shared + 0.05 * torch.randn(32, 8)  # 32 inputs that differ by 1% of their common part
    spread = {}
    for use_bn in (False, True):
        torch.manual_seed(1)
        head = DINOHead(in_dim=8, hidden_dim=16, bottleneck_dim=4, out_dim=10, use_bn=use_bn).train()
        assert any(isinstance(m, torch.nn.BatchNorm1d) for m in head.modules()) == use_bn
        with torch.no_grad():
            spread[use_bn] = head(x).std(dim=0).mean().item()
    assert spread[True] > 10 * spread[False]


@pytest.mark.parametrize("freeze", [True, False])
def test_dino_head_freezes_the_last_layer_with_a_zero_gradient(freeze):
    torch.manual_seed(0)
    head = DINOHead(in_dim=8, hidden_dim=16, bottleneck_dim=4, out_dim=10)
    head(torch.randn(6, 8), freeze_last_layer=freeze).pow(2).sum().backward()
    grad = head.last_layer.parametrizations.weight.original1.grad
    assert bool(grad.abs().sum() == 0) == freeze
    assert head.mlp.layers[0].weight.grad.abs().sum() > 0


def test_swav_prototypes_normalize_and_freeze():
    torch.manual_seed(0)
    prototypes = SwAVPrototypes(dim=4, n_prototypes=7)
    with torch.no_grad():
        prototypes.weight.mul_(3.0)
    prototypes.normalize_()
    torch.testing.assert_close(prototypes.weight.norm(dim=1), torch.ones(7))
    z = torch.nn.functional.normalize(torch.randn(5, 4), dim=1)
    prototypes(z, frozen=True).sum().backward()
    assert torch.equal(prototypes.weight.grad, torch.zeros(7, 4))
    prototypes.weight.grad = None
    prototypes(z).sum().backward()
    assert prototypes.weight.grad.abs().sum() > 0


def test_frozen_prototypes_stay_put_under_adamw_with_weight_decay():
    """The zero-gradient freeze relies on this: AdamW moves them only by weight decay, undone by normalize_()."""
    torch.manual_seed(0)
    prototypes = SwAVPrototypes(dim=4, n_prototypes=7)
    prototypes.normalize_()
    before = prototypes.weight.detach().clone()
    optimizer = torch.optim.AdamW(prototypes.parameters(), lr=0.1, weight_decay=0.5)
    for _ in range(3):
        optimizer.zero_grad()
        prototypes(torch.randn(5, 4), frozen=True).pow(2).sum().backward()
        optimizer.step()
        prototypes.normalize_()
    torch.testing.assert_close(prototypes.weight, before)


def _small_module(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    module = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    module.train()(torch.randn(8, 3))  # moves the BatchNorm running statistics away from their init
    return module


def test_momentum_update_follows_the_ema_formula_and_copies_buffers():
    online, target = _small_module(0), frozen_copy(_small_module(1))
    m = 0.9
    expected = [m * t.detach().clone() + (1 - m) * o.detach() for o, t in zip(online.parameters(), target.parameters())]
    momentum_update(online, target, m)
    for new, want in zip(target.parameters(), expected):
        torch.testing.assert_close(new, want, rtol=0, atol=1e-7)
    for target_buffer, online_buffer in zip(target.buffers(), online.buffers()):
        assert torch.equal(target_buffer, online_buffer)
    assert not any(p.requires_grad for p in target.parameters())


def test_momentum_one_keeps_the_target_and_zero_copies_the_online():
    online, target = _small_module(0), _small_module(1)
    before = [p.detach().clone() for p in target.parameters()]
    momentum_update(online, target, 1.0)
    for p, b in zip(target.parameters(), before):
        assert torch.equal(p, b)
    momentum_update(online, target, 0.0)
    for p, o in zip(target.parameters(), online.parameters()):
        assert torch.equal(p, o)


def test_copy_weights_overwrites_nan():
    online, target = _small_module(0), _small_module(1)
    with torch.no_grad():
        for p in target.parameters():
            p.fill_(float("nan"))
    copy_weights(online, target)
    for p, o in zip(target.parameters(), online.parameters()):
        assert torch.equal(p, o)


def test_momentum_update_rejects_mismatched_modules_and_bad_momentum():
    with pytest.raises(ValueError, match="copy of the online module"):
        momentum_update(nn.Linear(2, 2), nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2)), 0.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        momentum_update(nn.Linear(2, 2), nn.Linear(2, 2), 1.5)


def test_cosine_momentum_schedule():
    assert cosine_momentum(0, 100, 0.996) == pytest.approx(0.996)
    assert cosine_momentum(50, 100, 0.996) == pytest.approx((0.996 + 1.0) / 2)
    assert cosine_momentum(25, 100, 0.99) == pytest.approx(1 - 0.01 * (math.cos(math.pi / 4) + 1) / 2)
    assert cosine_momentum(100, 100, 0.996) == pytest.approx(1.0)
    assert cosine_momentum(150, 100, 0.996) == pytest.approx(1.0)
    assert cosine_momentum(50, 100, 0.9, final_momentum=0.99) == pytest.approx(0.945)
    with pytest.raises(ValueError, match="total_steps"):
        cosine_momentum(0, 0, 0.99)

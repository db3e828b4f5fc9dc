import inspect

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hfssl.models.ssl_heads import frozen_copy
from hfssl.models.ssl_methods import (
    METHOD_DEFAULTS,
    METHODS,
    SSLMethod,
    build_method,
    resolve_method_params,
)

EMBED, IN, BATCH = 16, 12, 8
SMALL = {  # shrinks the heads so every test runs in milliseconds
    "simclr": dict(projection_hidden_dim=32, projection_dim=16),
    "moco": dict(projection_hidden_dim=32, projection_dim=16, prediction_hidden_dim=32),
    "byol": dict(projection_hidden_dim=32, projection_dim=16, prediction_hidden_dim=32),
    "simsiam": dict(projection_hidden_dim=32, projection_dim=16, prediction_hidden_dim=8),
    "dino": dict(out_dim=64, projection_hidden_dim=32, bottleneck_dim=8, freeze_last_layer_steps=0),
    "swav": dict(projection_hidden_dim=32, projection_dim=16, n_prototypes=20, freeze_prototypes_steps=0),
    "simcse": {},
}


class StandIn:
    """A tiny backbone and its EMA copy producing (B, EMBED) features from random inputs.

    The copy and the method's target heads are made trainable on purpose: any gradient that reaches them
    means a missing stop-gradient.
    """

    def __init__(self, name: str, seed: int = 0, **overrides):
        torch.manual_seed(seed)
        self.backbone = nn.Sequential(nn.Linear(IN, 24), nn.ReLU(), nn.Linear(24, EMBED))
        self.target_backbone = frozen_copy(self.backbone).requires_grad_(True)
        self.method = build_method(name, EMBED, {**SMALL[name], **overrides}).train()
        for _, target in self.method.target_pairs():
            target.requires_grad_(True)

    def views(self, n_views: int = 2, seed: int = 1) -> list[torch.Tensor]:
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(BATCH, IN, generator=g)
        return [x + 0.3 * torch.randn(BATCH, IN, generator=g) for _ in range(n_views)]

    def features(self, views):
        online = [self.backbone(v) for v in views]
        target = None
        if self.method.uses_target_encoder:
            target = [self.target_backbone(v) for v in views[: self.method.n_global_views]]
        return online, target

    def run(self, n_views: int = 2, step: int = 0, seed: int = 1):
        online, target = self.features(self.views(n_views, seed))
        return self.method(online, target, step)

    def target_parameters(self) -> dict[str, nn.Parameter]:
        params = {f"target_backbone.{n}": p for n, p in self.target_backbone.named_parameters()}
        for i, (_, target) in enumerate(self.method.target_pairs()):
            params.update({f"target_head{i}.{n}": p for n, p in target.named_parameters()})
        return params

    def online_parameters(self) -> dict[str, nn.Parameter]:
        target_ids = {id(p) for p in self.target_parameters().values()}
        params = {f"backbone.{n}": p for n, p in self.backbone.named_parameters()}
        params.update({f"method.{n}": p for n, p in self.method.named_parameters() if id(p) not in target_ids})
        return {n: p for n, p in params.items() if p.requires_grad}


def _has_grad(p: torch.Tensor) -> bool:
    return p.grad is not None and bool(p.grad.abs().sum() > 0)


@pytest.mark.parametrize("name", list(METHODS))
def test_gradients_reach_every_online_parameter_and_no_target(name):
    stand_in = StandIn(name)
    n_views = 6 if stand_in.method.supports_local_views else 2
    out = stand_in.run(n_views)
    assert out.loss.dim() == 0 and torch.isfinite(out.loss)
    out.loss.backward()
    missing = [n for n, p in stand_in.online_parameters().items() if not _has_grad(p)]
    assert not missing, f"{name}: no gradient reaches {missing}"
    leaked = [n for n, p in stand_in.target_parameters().items() if _has_grad(p)]
    assert not leaked, f"{name}: gradient leaks into target parameters {leaked}"
    assert out.embeddings_for_collapse.shape[0] == BATCH and not out.embeddings_for_collapse.requires_grad


@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_has_defaults_matching_its_constructor(name):
    keyword_only = [
        p.name for p in inspect.signature(METHODS[name].__init__).parameters.values() if p.kind is p.KEYWORD_ONLY
    ]
    if name == "moco":  # MoCo adds its temperature to the BYOL-style constructor
        keyword_only += list(inspect.signature(METHODS["byol"].__init__).parameters)[2:]
    assert set(keyword_only) == set(METHOD_DEFAULTS[name])
    method = build_method(name, EMBED)
    assert isinstance(method, SSLMethod)
    assert resolve_method_params(name) == METHOD_DEFAULTS[name]


def test_registry_errors_name_what_is_valid():
    with pytest.raises(KeyError, match="simclr, moco, byol, simsiam, dino, swav, simcse"):
        build_method("barlow", EMBED)
    with pytest.raises(ValueError, match="tau.*valid: temperature, projection_hidden_dim, projection_dim"):
        build_method("simclr", EMBED, {"tau": 0.1})
    with pytest.raises(TypeError, match="simclr.temperature must be float"):
        build_method("simclr", EMBED, {"temperature": "0.1"})
    with pytest.raises(TypeError, match="swav.n_prototypes must be int"):
        build_method("swav", EMBED, {"n_prototypes": 10.0})
    with pytest.raises(ValueError, match=r"byol.base_momentum must be in \[0, 1\]"):
        build_method("byol", EMBED, {"base_momentum": 1.5})
    with pytest.raises(ValueError, match="simcse.temperature must be > 0"):
        build_method("simcse", EMBED, {"temperature": 0.0})


def test_wrong_number_of_views_is_rejected():
    simclr = StandIn("simclr")
    with pytest.raises(ValueError, match="exactly 2 online views"):
        simclr.run(n_views=3)
    byol = StandIn("byol")
    online, _ = byol.features(byol.views())
    with pytest.raises(ValueError, match="2 target"):
        byol.method(online, None, 0)


def test_simclr_is_nt_xent_of_the_projections():
    stand_in = StandIn("simclr")
    online, _ = stand_in.features(stand_in.views())
    loss = stand_in.method(online, None, 0).loss
    z = F.normalize(torch.cat([stand_in.method.projector(x) for x in online]), dim=1)  # (2B, P); BN per view
    logits = (z @ z.T / 0.5).fill_diagonal_(float("-inf"))
    labels = torch.cat([torch.arange(BATCH, 2 * BATCH), torch.arange(BATCH)])
    torch.testing.assert_close(loss, F.cross_entropy(logits, labels))


def test_simcse_is_cross_entropy_of_cosines_over_temperature():
    stand_in = StandIn("simcse")
    online, _ = stand_in.features(stand_in.views())
    loss = stand_in.method(online, None, 0).loss
    z1, z2 = (stand_in.method.pooler(x) for x in online)
    cos = F.cosine_similarity(z1[:, None], z2[None], dim=-1)  # (B, B)
    torch.testing.assert_close(loss, F.cross_entropy(cos / 0.05, torch.arange(BATCH)))


def test_simsiam_stops_gradients_through_the_projections():
    stand_in = StandIn("simsiam")
    online = [x.detach().requires_grad_(True) for x in stand_in.features(stand_in.views())[0]]
    stand_in.method(online, None, 0).loss.backward()
    got = [x.grad.clone() for x in online]

    method = stand_in.method
    x1, x2 = (x.detach().requires_grad_(True) for x in online)
    z1, z2 = method.projector(x1), method.projector(x2)
    p1, p2 = method.predictor(z1), method.predictor(z2)
    reference = -(F.cosine_similarity(p1, z2.detach()).mean() + F.cosine_similarity(p2, z1.detach()).mean()) / 2
    reference.backward()
    torch.testing.assert_close(got[0], x1.grad)
    torch.testing.assert_close(got[1], x2.grad)


def test_byol_and_moco_are_the_papers_symmetric_losses():
    for name in ("byol", "moco"):
        stand_in = StandIn(name)
        online, target = stand_in.features(stand_in.views())
        method = stand_in.method
        loss = method(online, target, 0).loss
        p = [method.predictor(method.projector(x)) for x in online]
        z = [method.target_projector(t) for t in target]
        if name == "byol":
            expected = sum((2 - 2 * F.cosine_similarity(p[i], z[1 - i])).mean() for i in range(2))
        else:
            expected = sum(
                F.cross_entropy(F.normalize(p[i]) @ F.normalize(z[1 - i]).T / 0.2, torch.arange(BATCH)) * 2 * 0.2
                for i in range(2)
            )
        torch.testing.assert_close(loss, expected)


@pytest.mark.parametrize("name", ["byol", "moco", "dino"])
def test_method_momentum_update_moves_target_heads_towards_online(name):
    stand_in = StandIn(name)
    (online, target), = stand_in.method.target_pairs()
    with torch.no_grad():
        for p in online.parameters():
            p.add_(1.0)
    before = [t.detach().clone() for t in target.parameters()]
    m = stand_in.method.momentum_update(step=0, total_steps=10)
    assert m == pytest.approx(METHOD_DEFAULTS[name]["base_momentum"])
    for new, old, o in zip(target.parameters(), before, online.parameters()):
        torch.testing.assert_close(new, m * old + (1 - m) * o, rtol=0, atol=1e-6)
    stand_in.method.sync_targets()
    for t, o in zip(target.parameters(), online.parameters()):
        assert torch.equal(t, o)


def test_methods_without_ema_have_no_momentum():
    for name in ("simclr", "simsiam", "swav", "simcse"):
        method = build_method(name, EMBED, SMALL[name])
        assert not method.uses_target_encoder and method.target_pairs() == []
        assert method.momentum_update(0, 10) is None


def test_dino_uses_local_crops_and_updates_the_center_in_training_only():
    stand_in = StandIn("dino")
    online, target = stand_in.features(stand_in.views(n_views=6))
    online = [x.detach().requires_grad_(True) for x in online]
    out = stand_in.method(online, [t.detach() for t in target], 0)
    out.loss.backward()
    assert all(_has_grad(x) for x in online), "every crop, local ones included, enters the student loss"
    center = stand_in.method.loss.center.clone()
    assert center.abs().sum() > 0
    stand_in.method.eval()
    stand_in.method(online, target, 0)
    assert torch.equal(stand_in.method.loss.center, center)
    assert out.logs["teacher_temp"] == pytest.approx(0.04)


def test_dino_last_layer_is_frozen_for_the_first_steps():
    stand_in = StandIn("dino", freeze_last_layer_steps=5)
    last = stand_in.method.student_head.last_layer.parametrizations.weight.original1
    stand_in.run(step=4).loss.backward()
    assert not _has_grad(last)
    stand_in.run(step=5).loss.backward()
    assert _has_grad(last)


def test_dino_options_of_the_paper_code_batch_norm_and_a_trainable_last_layer_norm():
    stand_in = StandIn("dino", use_bn_in_head=True, norm_last_layer=False)
    student, teacher = stand_in.method.student_head, stand_in.method.teacher_head
    assert any(isinstance(m, nn.BatchNorm1d) for m in student.modules())
    assert student.last_layer_norm.requires_grad
    stand_in.method.freeze_targets()  # what loading does; must not freeze the student's g again
    assert student.last_layer_norm.requires_grad and not teacher.last_layer_norm.requires_grad
    stand_in.run().loss.backward()
    assert _has_grad(student.last_layer_norm)
    with pytest.raises(TypeError, match="dino.use_bn_in_head must be true or false"):
        build_method("dino", EMBED, {"use_bn_in_head": 1})


def test_swav_with_local_crops_normalizes_and_freezes_prototypes():
    stand_in = StandIn("swav", freeze_prototypes_steps=3)
    prototypes = stand_in.method.prototypes
    with torch.no_grad():
        prototypes.weight.mul_(2.0)
    out = stand_in.run(n_views=5, step=2)
    torch.testing.assert_close(prototypes.weight.norm(dim=1), torch.ones(20))
    out.loss.backward()
    assert not _has_grad(prototypes.weight)
    stand_in.run(n_views=5, step=3).loss.backward()
    assert _has_grad(prototypes.weight)


def test_swav_queue_is_fifo():
    method = build_method("swav", EMBED, {**SMALL["swav"], "queue_length": 6})
    a, b = torch.randn(2, 4, 16), torch.randn(2, 4, 16)
    method.enqueue(list(a))
    assert method.queue.shape == (2, 6, 16) and method.queue_rows == 4 and not method.queue_full
    method.enqueue(list(b))
    assert method.queue_full
    torch.testing.assert_close(method.queue, torch.cat([b, a[:, :2]], dim=1))


def test_swav_queue_fills_during_training_and_is_used_once_full():
    stand_in = StandIn("swav", queue_length=2 * BATCH, queue_start_step=1)
    method = stand_in.method
    in_use = []
    for step in range(4):
        in_use.append(stand_in.run(step=step, seed=step).logs["queue_in_use"])
    assert in_use == [0.0, 0.0, 0.0, 1.0]  # starts filling at step 1, full after steps 1 and 2
    assert method.queue_rows == 2 * BATCH
    torch.testing.assert_close(method.queue.norm(dim=-1), torch.ones(2, 2 * BATCH))

    method.eval()
    queue = method.queue.clone()
    with_queue = stand_in.run(seed=9).loss
    assert torch.equal(method.queue, queue), "evaluation must not enqueue"
    method.queue_rows = 0
    without_queue = stand_in.run(seed=9).loss
    assert not torch.allclose(with_queue, without_queue)

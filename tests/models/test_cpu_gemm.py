import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hfssl.models import cpu_gemm
from hfssl.models.cpu_gemm import (
    Linear,
    cpu_gemm_backend,
    linear,
    mm_nt,
    set_cpu_gemm_backend,
)

needs_onednn = pytest.mark.skipif(not cpu_gemm._onednn_works(), reason="this torch build has no oneDNN linear op")


@pytest.fixture
def backend(monkeypatch):
    """Force a backend for one test; the setting and the cached resolution are restored afterwards."""
    monkeypatch.setattr(cpu_gemm, "_resolved", {})
    yield set_cpu_gemm_backend
    set_cpu_gemm_backend(None)


def ran_onednn(out: torch.Tensor) -> bool:
    """Whether `out` came from the oneDNN Function (`linear` reshapes its (rows, n) result: a view of it)."""
    fn = out.grad_fn
    if type(fn).__name__ == "ViewBackward0":
        fn = fn.next_functions[0][0]
    return type(fn).__name__ == "_OneDnnLinearBackward"


def _linear_and_grads(fn, x, weight, bias, grad_out):
    x, weight = x.clone().requires_grad_(), weight.clone().requires_grad_()
    bias = bias.clone().requires_grad_() if bias is not None else None
    out = fn(x, weight, bias)
    out.backward(grad_out)
    return out, out, [t.grad for t in (x, weight, bias) if t is not None]


@needs_onednn
@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize(
    "x_shape, out_features",
    [
        ((2, 64, 128), 256),  # the weight gradient's output rows: the smaller of n = 256 and k = 128
        ((4, 256, 256), 128),  # n < k: the other orientation
        ((1024, 128), 512),  # 2-D input
        ((8, 64, 128), 64),  # above the product threshold, below the weight gradient's (aten there)
    ],
)
def test_onednn_linear_matches_f_linear_in_output_and_every_gradient(backend, x_shape, out_features, use_bias):
    backend("onednn")
    torch.manual_seed(0)
    x, weight = torch.randn(*x_shape), torch.randn(out_features, x_shape[-1]) / x_shape[-1] ** 0.5
    bias = torch.randn(out_features) if use_bias else None
    grad_out = torch.randn(*x_shape[:-1], out_features)
    out, _, grads = _linear_and_grads(linear, x, weight, bias, grad_out)
    ref, _, ref_grads = _linear_and_grads(F.linear, x, weight, bias, grad_out)
    assert ran_onednn(out)  # the oneDNN path ran, not F.linear
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    for got, want in zip(grads, ref_grads, strict=True):
        assert got.shape == want.shape and got.is_contiguous()
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


@needs_onednn
def test_the_output_may_be_modified_in_place(backend):
    """AdaLoRA (and any caller) adds to a layer's output in place: allowed, with F.linear's gradients."""
    backend("onednn")
    torch.manual_seed(0)
    x, weight, bias = torch.randn(4, 64, 128), torch.randn(256, 128) / 128**0.5, torch.randn(256)
    grad_out = torch.randn(4, 64, 256)

    def plus_one(fn):
        def run(x, weight, bias):
            out = fn(x, weight, bias)
            out += 1.0
            return out
        return run

    out, _, grads = _linear_and_grads(plus_one(linear), x, weight, bias, grad_out)
    ref, _, ref_grads = _linear_and_grads(plus_one(F.linear), x, weight, bias, grad_out)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    for got, want in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


@needs_onednn
def test_products_that_onednn_should_not_run_take_f_linear(backend):
    backend("onednn")
    torch.manual_seed(0)
    big_x, big_w = torch.randn(64, 256, requires_grad=True), torch.randn(256, 256, requires_grad=True)
    assert ran_onednn(linear(big_x, big_w))
    small = linear(torch.randn(4, 8, requires_grad=True), torch.randn(8, 8))  # call overhead beats oneDNN
    assert not ran_onednn(small)
    double = linear(big_x.detach().double().requires_grad_(), big_w.detach().double())
    assert double.dtype == torch.float64 and not ran_onednn(double)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert linear(big_x, big_w).dtype == torch.bfloat16  # autocast's bf16 matmul, as F.linear does
    empty = linear(torch.randn(0, 256, requires_grad=True), big_w)
    assert empty.shape == (0, 256)
    with pytest.raises(RuntimeError):  # shapes that do not fit get PyTorch's own error
        linear(torch.randn(64, 255), big_w)
    with torch.no_grad():  # inference: oneDNN's product without an autograd node
        # Sums of 256 products of size ~1 in another order: float32 rounding differs by ~1e-5.
        torch.testing.assert_close(linear(big_x, big_w), F.linear(big_x, big_w), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(mm_nt(big_x.detach(), big_w.detach()), big_x.detach() @ big_w.detach().t(),
                               rtol=1e-4, atol=1e-4)


@needs_onednn
def test_aten_backend_keeps_f_linear(backend):
    backend("aten")
    assert cpu_gemm_backend() == "aten"
    out = linear(torch.randn(64, 256, requires_grad=True), torch.randn(256, 256))
    assert not ran_onednn(out)


def test_auto_picks_onednn_on_amd_cpus_only(backend, monkeypatch):
    backend("auto")
    monkeypatch.setattr(cpu_gemm, "_onednn_works", lambda: True)
    monkeypatch.setattr(cpu_gemm.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(cpu_gemm, "_cpu_vendor", lambda: "GenuineIntel")
    assert cpu_gemm_backend() == "aten"
    monkeypatch.setattr(cpu_gemm, "_resolved", {})
    monkeypatch.setattr(cpu_gemm, "_cpu_vendor", lambda: "AuthenticAMD")
    assert cpu_gemm_backend() == "onednn"
    monkeypatch.setattr(cpu_gemm, "_resolved", {})
    monkeypatch.setattr(cpu_gemm, "_onednn_works", lambda: False)  # a torch build without oneDNN
    assert cpu_gemm_backend() == "aten"


def test_backend_comes_from_the_environment_and_bad_values_are_refused(backend, monkeypatch):
    monkeypatch.setenv(cpu_gemm.ENV_VAR, "aten")
    assert cpu_gemm_backend() == "aten"
    monkeypatch.setenv(cpu_gemm.ENV_VAR, "mkl")
    with pytest.raises(ValueError, match=r"HFSSL_CPU_GEMM='mkl'.*auto, onednn, aten"):
        cpu_gemm_backend()
    with pytest.raises(ValueError, match="Unknown CPU matmul backend 'fast'"):
        set_cpu_gemm_backend("fast")


@needs_onednn
def test_linear_module_is_an_nn_linear_for_hooks_and_peft(backend):
    from peft import LoraConfig, get_peft_model

    backend("onednn")
    torch.manual_seed(0)
    model = nn.Sequential(Linear(256, 256), nn.GELU(), Linear(256, 8))
    calls = []
    model[0].register_forward_hook(lambda *args: calls.append(1))
    peft_model = get_peft_model(model, LoraConfig(r=4, target_modules=["0"], init_lora_weights=False))
    x = torch.randn(64, 256)
    out = peft_model(x)
    out.sum().backward()
    assert calls == [1]
    lora = peft_model.base_model.model[0]
    assert lora.lora_A["default"].weight.grad is not None and lora.base_layer.weight.grad is None  # frozen base
    with torch.no_grad():
        base = model[0].base_layer if hasattr(model[0], "base_layer") else model[0]
        a, b = lora.lora_A["default"].weight, lora.lora_B["default"].weight
        scale = lora.scaling["default"]
        want = F.linear(x, base.weight, base.bias) + scale * (x @ a.t() @ b.t())
        torch.testing.assert_close(lora(x), want, rtol=1e-4, atol=1e-4)


def _compiled_code(fn, *args):
    """The code inductor generates for fn's forward and backward (fn returns a scalar to differentiate)."""
    from torch._inductor.utils import run_and_get_code

    torch._dynamo.reset()
    compiled = torch.compile(fn, fullgraph=True)
    _, codes = run_and_get_code(lambda *a: compiled(*a).backward(), *args)
    return "\n".join(codes)


@needs_onednn
@pytest.mark.parametrize("name", ["onednn", "aten"])
def test_compiled_linear_keeps_the_chosen_library(backend, name):
    # inductor would lower the products to its own (MKL) matmuls; on oneDNN each of the three stays one
    # call of hfssl's custom op, in one graph, with the gradients of eager F.linear
    backend(name)
    torch.manual_seed(0)
    layer = Linear(256, 512)
    x = torch.randn(4, 256, 256, requires_grad=True)
    code = _compiled_code(lambda t: torch.relu(layer(t)).sum(), x)
    assert ("onednn_mm_nt" in code) is (name == "onednn")
    assert ("extern_kernels.mm" in code or "extern_kernels.addmm" in code) is (name == "aten")
    got = [x.grad.clone(), layer.weight.grad.clone(), layer.bias.grad.clone()]
    x.grad = None
    layer.zero_grad()
    torch.relu(F.linear(x, layer.weight, layer.bias)).sum().backward()
    for found, want in zip(got, [x.grad, layer.weight.grad, layer.bias.grad], strict=True):
        torch.testing.assert_close(found, want, rtol=1e-4, atol=1e-4)
    explained = torch._dynamo.explain(lambda t: layer(t).sum())(x)
    assert explained.graph_break_count == 0 and explained.graph_count == 1


@needs_onednn
def test_compiled_autocast_leaves_the_product_to_inductor(backend):
    backend("onednn")
    layer = Linear(256, 256)
    x = torch.randn(64, 256, requires_grad=True)

    def step(t):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return layer(t).float().sum()

    assert "onednn_mm_nt" not in _compiled_code(step, x)


def test_a_second_copy_of_the_module_reuses_the_registered_op():
    # trust_remote_code imports the saved cpu_gemm.py under another module name; registering the custom op
    # again would fail, so the copy must find and use the one already there
    import importlib.util

    spec = importlib.util.spec_from_file_location("hfssl_remote_copy.cpu_gemm", cpu_gemm.__file__)
    copy = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(copy)
    assert copy is not cpu_gemm and copy._compiled_op is cpu_gemm._compiled_op
    a, b = torch.randn(8, 16), torch.randn(4, 16)
    if cpu_gemm._onednn_works():
        torch.testing.assert_close(copy._compiled_op(a, b, None), a @ b.t())


def _training_step(model, inputs):
    model.zero_grad()
    loss = model(**inputs).loss
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@needs_onednn
@pytest.mark.parametrize("objective", ["mlm", "clm", "mae"])
def test_models_train_the_same_on_onednn_as_on_aten(backend, objective):
    from hfssl.models import (
        HfsslTextConfig,
        HfsslTextForCausalLM,
        HfsslTextForMaskedLM,
        HfsslVisionConfig,
        HfsslVisionForMaskedImageModeling,
    )

    torch.manual_seed(0)
    if objective == "mae":
        model = HfsslVisionForMaskedImageModeling(HfsslVisionConfig(
            image_size=32, patch_size=4, num_channels=3, hidden_size=128, num_hidden_layers=2,
            num_attention_heads=2, intermediate_size=256, decoder_hidden_size=64, decoder_num_hidden_layers=1,
            decoder_num_attention_heads=2, decoder_intermediate_size=128))
        inputs = {"pixel_values": torch.randn(16, 3, 32, 32), "noise": torch.rand(16, 64)}
    else:
        config = HfsslTextConfig(vocab_size=2048, hidden_size=128, num_hidden_layers=2, num_attention_heads=2,
                                 intermediate_size=256, max_position_embeddings=128, is_causal=objective == "clm")
        model = (HfsslTextForCausalLM if objective == "clm" else HfsslTextForMaskedLM)(config)
        ids = torch.randint(5, 2048, (4, 128))
        labels = ids.clone() if objective == "clm" else torch.where(torch.rand(ids.shape) < 0.15, ids, -100)
        inputs = {"input_ids": ids, "labels": labels}
    model.train()
    found = {}
    for name in ("aten", "onednn"):
        backend(name)
        assert cpu_gemm_backend() == name
        torch.manual_seed(1)  # the same dropout masks
        found[name] = _training_step(model, inputs)
    torch.testing.assert_close(found["onednn"][0], found["aten"][0], rtol=1e-5, atol=1e-5)
    assert found["onednn"][1].keys() == found["aten"][1].keys()
    for name, grad in found["aten"][1].items():
        torch.testing.assert_close(found["onednn"][1][name], grad, rtol=1e-3, atol=1e-5, msg=name)


@needs_onednn
def test_compiled_mae_trains_like_eager_aten(backend):
    # the whole pretraining step compiled, with oneDNN products inside the compiled graph
    from hfssl.models import HfsslVisionConfig, HfsslVisionForMaskedImageModeling

    torch._dynamo.reset()
    torch.manual_seed(0)
    model = HfsslVisionForMaskedImageModeling(HfsslVisionConfig(
        image_size=32, patch_size=4, num_channels=3, hidden_size=128, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=256, decoder_hidden_size=64, decoder_num_hidden_layers=1, decoder_num_attention_heads=2,
        decoder_intermediate_size=128)).train()
    inputs = {"pixel_values": torch.randn(16, 3, 32, 32), "noise": torch.rand(16, 64)}
    backend("aten")
    want = _training_step(model, inputs)
    backend("onednn")
    model.compile()
    got = _training_step(model, inputs)
    torch.testing.assert_close(got[0], want[0], rtol=1e-5, atol=1e-5)
    assert got[1].keys() == want[1].keys()
    for name, grad in want[1].items():
        torch.testing.assert_close(got[1][name], grad, rtol=1e-3, atol=1e-5, msg=name)

"""Float32 matrix products on CPUs through oneDNN where that is the faster library.

PyTorch computes `F.linear` and `@` on x86 CPUs with MKL's sgemm. On the AMD CPU we measured, oneDNN (which
the same PyTorch build ships, as `torch.ops.mkldnn._linear_pointwise`) was about twice as fast: on a 2-core
AMD EPYC with AVX-512, a (2048 x 256) by (256 x 1024) product took 4.9 ms through MKL and
2.2 ms through oneDNN (`scripts/benchmark_gemm.py` measures it on any machine). Same float32 arithmetic; only
the order of the additions differs, as it does between any two BLAS libraries.

`Linear` is `nn.Linear` whose forward and backward products (output, input gradient, weight gradient) run on
the library this module picks; `mm_nt` is one such product without autograd, which the fused LM loss
(`linear_cross_entropy.py`) uses. Which library (`cpu_gemm_backend`):

- `HFSSL_CPU_GEMM=auto` (default): oneDNN on x86-64 AMD CPUs where PyTorch has it, MKL (aten) elsewhere;
- `HFSSL_CPU_GEMM=onednn` or `aten`: that one wherever it can run; `set_cpu_gemm_backend()` from Python.

oneDNN is used only for plain float32 CPU tensors outside autocast, tracing, `torch.func` transforms and
DeepSpeed ZeRO-3-partitioned weights; everything else, and a GPU, takes `F.linear` as before. Under
`torch.compile` the products are one custom op each (`hfssl::onednn_mm_nt`), which inductor calls as it is
while it fuses the code around them; otherwise inductor would lower them to MKL. Module hooks and PEFT adapters
see an ordinary `nn.Linear`.

Publishable: imports only torch.
"""

from __future__ import annotations

import os
import platform

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

ENV_VAR = "HFSSL_CPU_GEMM"
BACKENDS = ("auto", "onednn", "aten")

# Below these sizes (multiply-adds, m * n * k) oneDNN's per-call overhead outweighs its speed, measured on the
# AMD CPU above: a (1024 x 64) by (64 x 64) product was 1.5x faster through oneDNN, a (256 x 32) by (32 x 64) one
# 1.6x slower; the weight gradient (a product over the rows, of two transposed operands) gains only from larger
# sizes: 0.7x at 1024 x 64 x 64, 1.6x at 256 x 256 x 256.
MIN_MACS = 1 << 21
MIN_WEIGHT_GRAD_MACS = 1 << 24

_setting: str | None = None  # set_cpu_gemm_backend(); None: read ENV_VAR
_resolved: dict[str, bool] = {}  # setting -> whether oneDNN runs the products


def _cpu_vendor() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("vendor_id"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def _onednn_works() -> bool:
    """Whether this PyTorch build has the oneDNN linear op and it computes a small product correctly."""
    op = getattr(getattr(torch.ops, "mkldnn", None), "_linear_pointwise", None)
    if op is None or not torch.backends.mkldnn.is_available():
        return False
    try:
        a, b = torch.arange(6.0).view(2, 3), torch.arange(12.0).view(4, 3)
        return bool(torch.equal(op(a, b, None, "none", [], ""), a @ b.t()))
    except (RuntimeError, NotImplementedError):
        return False


def _setting_now() -> str:
    setting = _setting if _setting is not None else os.environ.get(ENV_VAR, "auto").strip().lower() or "auto"
    if setting not in BACKENDS:
        raise ValueError(f"{ENV_VAR}={setting!r} is not a CPU matmul backend; use one of {', '.join(BACKENDS)}.")
    return setting


def _onednn_enabled() -> bool:
    setting = _setting_now()
    if setting not in _resolved:
        if setting == "aten":
            _resolved[setting] = False
        elif setting == "onednn":
            _resolved[setting] = _onednn_works()
        else:
            amd64 = platform.machine().lower() in ("x86_64", "amd64")
            _resolved[setting] = amd64 and _cpu_vendor() == "AuthenticAMD" and _onednn_works()
    return _resolved[setting]


def cpu_gemm_backend() -> str:
    """The library that float32 CPU products of hfssl models run on here: "onednn" or "aten" (MKL)."""
    return "onednn" if _onednn_enabled() else "aten"


def set_cpu_gemm_backend(backend: str | None) -> None:
    """"auto", "onednn" or "aten" for this process (overrides $HFSSL_CPU_GEMM); None: back to the variable."""
    global _setting
    if backend is not None and backend not in BACKENDS:
        raise ValueError(f"Unknown CPU matmul backend {backend!r}; use one of {', '.join(BACKENDS)}.")
    _setting = backend


def _plain(t: torch.Tensor | None, compiling: bool) -> bool:
    return t is None or (
        type(t) in (torch.Tensor, nn.Parameter)
        and t.device.type == "cpu"
        and t.dtype == torch.float32
        and not hasattr(t, "ds_id")  # a DeepSpeed ZeRO-3 partition: its F.linear gathers the weight
        and (compiling or not torch._C._functorch.is_functorch_wrapped_tensor(t))
    )


@torch.compiler.assume_constant_result
def _onednn_enabled_when_compiled() -> bool:
    # Read once per compilation: dynamo bakes the answer into the graph instead of tracing the setting's lookup.
    return _onednn_enabled()


def _onednn_applies(*tensors: torch.Tensor | None) -> bool:
    compiling = torch.compiler.is_compiling()
    return (
        (compiling or not torch.jit.is_tracing())
        and all(_plain(t, compiling) for t in tensors)
        and not torch.is_autocast_enabled("cpu")
        and (_onednn_enabled_when_compiled() if compiling else _onednn_enabled())
    )


OP_NAME = "hfssl::onednn_mm_nt"


def _onednn_mm_nt(a: torch.Tensor, b: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    return torch.ops.mkldnn._linear_pointwise(a, b, bias, "none", [], "")


def _register_compiled_op():
    """The product as a custom op for `torch.compile`: inductor keeps it as one call (its own lowering of
    `mkldnn._linear_pointwise` is for frozen inference weights only). Registered once per process: a model
    loaded with trust_remote_code imports a second copy of this module, which finds the op already there."""
    namespace, name = OP_NAME.split("::")
    if not hasattr(getattr(torch.ops, namespace), name):
        op = torch.library.custom_op(OP_NAME, _onednn_mm_nt, mutates_args=())
        op.register_fake(lambda a, b, bias: a.new_empty((a.shape[0], b.shape[0])))
    return getattr(getattr(torch.ops, namespace), name).default


_compiled_op = _register_compiled_op()


def _nt(a: torch.Tensor, b: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    if torch.compiler.is_compiling():
        return _compiled_op(a, b, bias)
    return _onednn_mm_nt(a, b, bias)


def mm_nt(a: torch.Tensor, b: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """a (m, k) @ b (n, k).T (+ bias (n,)) -> (m, n), through oneDNN where `cpu_gemm_backend()` says so.
    Either operand may be a transposed view. Not differentiable through oneDNN: use `Linear` or `linear`."""
    if (a.dim() == 2 and b.dim() == 2 and a.shape[0] * a.shape[1] * b.shape[0] >= MIN_MACS
            and a.numel() > 0 and b.numel() > 0 and _onednn_applies(a, b, bias)):
        return _nt(a, b, bias)
    return F.linear(a, b, bias)


def _weight_grad(grad: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """grad (m, n).T @ rows (m, k) -> (n, k). oneDNN makes the smaller of n and k its output rows (measured:
    1.5-1.8x faster than the other way round where they differ much), unless the sum runs over few rows."""
    m, n, k = grad.shape[0], grad.shape[1], rows.shape[1]
    if m * n * k < MIN_WEIGHT_GRAD_MACS:
        return grad.t() @ rows
    if n > k and m >= k:
        return _nt(rows.t(), grad.t(), None).t().contiguous()
    return _nt(grad.t(), rows.t(), None)


class _OneDnnLinear(torch.autograd.Function):
    """F.linear of rows (m, k) with all three products (output, input gradient, weight gradient) through oneDNN.

    It returns the (m, n) product itself, not a reshaped view of it: autograd forbids modifying a view made inside
    a Function in place, which callers (AdaLoRA adds to a layer's output) do; `linear` reshapes outside."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        rows = x.reshape(-1, x.shape[-1])
        if not rows.is_contiguous():
            rows = rows.contiguous()
        ctx.save_for_backward(rows, weight)
        ctx.has_bias = bias is not None
        return _nt(rows, weight, bias)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output):
        rows, weight = ctx.saved_tensors
        grad = grad_output.reshape(-1, grad_output.shape[-1])
        if not grad.is_contiguous():
            grad = grad.contiguous()
        want_x, want_w, want_b = ctx.needs_input_grad
        grad_x = _nt(grad, weight.t(), None) if want_x else None  # (m, k), as x was passed in
        grad_w = _weight_grad(grad, rows) if want_w else None
        grad_b = grad.sum(0) if ctx.has_bias and want_b else None
        return grad_x, grad_w, grad_b


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """`F.linear`, differentiable, with its products on oneDNN where `cpu_gemm_backend()` says so."""
    shapes_fit = (
        x.dim() >= 1 and weight.dim() == 2 and x.shape[-1] == weight.shape[1]
        and (bias is None or tuple(bias.shape) == (weight.shape[0],))
        and x.numel() > 0 and weight.numel() > 0  # oneDNN has no empty products
        and x.numel() * weight.shape[0] >= MIN_MACS
    )
    if not (shapes_fit and _onednn_applies(x, weight, bias)):
        return F.linear(x, weight, bias)  # also raises PyTorch's own error for shapes that do not fit
    rows = x.reshape(-1, x.shape[-1])  # (m, k): a view, or a copy where x's layout needs one
    # Without gradients the Function records nothing, as any Function.
    return _OneDnnLinear.apply(rows, weight, bias).view(*x.shape[:-1], weight.shape[0])


class Linear(nn.Linear):
    """`nn.Linear` (same parameters, state dict and initialization) whose products run on oneDNN where
    `cpu_gemm_backend()` says so; PEFT and hooks treat it as the `nn.Linear` it is."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self.weight, self.bias)


def as_fast_linear(module: nn.Module) -> nn.Module:
    """A plain `nn.Linear` becomes this module's `Linear` in place (same parameters and state dict; no copy): what
    `resize_token_embeddings` builds for a new output layer would otherwise leave the oneDNN path. Anything else (a
    peft wrapper, a subclass) is returned as it is."""
    if type(module) is nn.Linear:
        module.__class__ = Linear
    return module

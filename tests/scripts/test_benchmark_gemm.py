"""scripts/benchmark_gemm.py: aten against oneDNN on the products of a linear layer's training step."""

from __future__ import annotations

import json

import pytest

from hfssl.models import cpu_gemm

from . import load_script, torch_threads_restored

pytestmark = pytest.mark.skipif(not cpu_gemm._onednn_works(), reason="this torch build has no oneDNN linear op")


@pytest.fixture(scope="module")
def script():
    return load_script("benchmark_gemm.py")


def test_every_product_of_every_shape_is_timed_on_both_libraries(script, tmp_path, capsys):
    with torch_threads_restored():
        report = script.main(["--shapes", "64x32x48,96x16x8", "--repeats", "2", "--rounds", "1", "--threads", "1",
                              "--output", str(tmp_path)])
    assert [(r["shape"], r["product"]) for r in report["rows"]] == [
        (shape, product) for shape in ("64x32x48", "96x16x8") for product in ("forward", "input grad", "weight grad")]
    for row in report["rows"]:
        assert row["aten_gflops"] > 0 and row["onednn_gflops"] > 0
        assert row["onednn_speedup"] == pytest.approx(row["onednn_gflops"] / row["aten_gflops"])
    assert report["hfssl_cpu_gemm"] in ("aten", "onednn") and report["threads"] == 1
    assert json.loads((tmp_path / "gemm.json").read_text())["rows"] == report["rows"]
    assert "| 96x16x8 | weight grad |" in capsys.readouterr().out


def test_products_of_both_libraries_agree(script):
    import torch

    for m, k, n in [(64, 32, 48), (2048, 64, 512), (512, 256, 64)]:  # both orientations of the weight gradient
        torch.manual_seed(0)
        aten = {name: fn() for name, fn in script.products(m, k, n, "aten").items()}
        torch.manual_seed(0)
        onednn = {name: fn() for name, fn in script.products(m, k, n, "onednn").items()}
        for name, value in aten.items():
            torch.testing.assert_close(onednn[name], value, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("shapes", ["64x32", "64x0x8", "axbxc"])
def test_malformed_shapes_are_refused_with_the_expected_form(script, shapes):
    with pytest.raises(SystemExit, match="MxKxN|zero or negative"):
        script.main(["--shapes", shapes])

"""scripts/benchmark.py: a --quick run of every arm, the FLOP formulas against hand counts and against the
models' own matmul weights, the per-arm memory probe, and the optimizer's weight-decay groups."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn
from transformers import Trainer
from transformers.pytorch_utils import Conv1D

from . import load_script, torch_threads_restored

ARMS = {"mlm": {"hfssl", "bert", "modernbert"}, "clm": {"hfssl", "gpt2", "llama"}, "mae": {"hfssl", "vitmae"},
        "contrastive": {"hfssl-trainer", "plain-loop"}}


@pytest.fixture(scope="module")
def bench():
    return load_script("benchmark.py")


@pytest.fixture(scope="module")
def quick(bench, tmp_path_factory):
    """One --quick run of every suite on one thread (about 20 s); the thread count is restored afterwards."""
    out = tmp_path_factory.mktemp("bench")
    with torch_threads_restored():
        bench.main(["--quick", "--output", str(out), "--threads", "1"])
    return json.loads((out / "benchmark.json").read_text()), (out / "benchmark.md").read_text()


def test_quick_run_measures_every_arm(quick):
    report, _ = quick
    assert {suite: set(result["arms"]) for suite, result in report["suites"].items()} == ARMS
    for suite, result in report["suites"].items():
        for name, arm in result["arms"].items():
            where = f"{suite}/{name}"
            assert arm["throughput"] > 0 and len(arm["throughput_per_round"]) == 3, where
            assert 0 < arm["mfu"] < 1.5 and 0 < arm["executed_utilization"] < 1.5, where
            assert 0 < arm["step_ms_median"] <= arm["step_ms_p90"], where
            assert all(len(segment["seconds"]) == 2 for segment in arm["segments"]), where  # warm-up steps dropped
            params = arm["parameters"]
            assert params["total"] == params["embedding"] + params["non_embedding"] > 0, where
            budget = arm["budget"]
            assert budget["steps"] >= 1 and math.isfinite(budget["eval_loss"]), where
            assert math.isfinite(budget["eval_loss_init"]), where
            assert arm["attn_implementation"] == "sdpa", where


def test_quick_run_records_the_environment_and_the_probe(bench, quick):
    report, table = quick
    env = report["environment"]
    assert env["versions"]["torch"] == torch.__version__
    assert env["versions"]["transformers"] and env["python"] == env["versions"]["python"]
    assert env["cpu"]["model"] and isinstance(env["cpu"]["flags"], list)
    assert env["torch_threads"] == 1 and report["settings"]["threads"] == 1
    probe = report["matmul_probe"]
    assert probe["gflops"] > 0 and len(probe["samples"]) == 8 * 3 * len(ARMS)  # 8 per round, per suite
    assert f"{probe['gflops']:.1f} GFLOP/s" in table
    assert (probe["n"], probe["dtype"], probe["device"]) == (1024, "float32", "cpu")
    assert "matmul probe (1024^3 float32 on cpu)" in table
    assert probe["spread_p90_over_p10"] >= 1
    assert ("the CPU was shared" in table) == (probe["spread_p90_over_p10"] > bench.BUSY_PROBE_SPREAD)
    # On a CPU the peak is the faster library's: each sample is the max of aten's and (where torch has it)
    # oneDNN's product, so MFU never credits hfssl's oneDNN products against MKL's slower peak.
    rates = probe["gflops_by_library"]
    assert "aten" in rates and set(rates) <= {"aten", "onednn"}
    assert probe["gflops"] >= max(rates.values()) * 0.999 or len(rates) == 1
    assert env["hfssl_cpu_gemm"] in ("aten", "onednn")
    assert f"hfssl arms' float32 CPU products: {env['hfssl_cpu_gemm']} (reference arms: aten)" in table


def test_quick_run_checks_the_issue_targets(quick):
    report, table = quick
    names = {target["name"] for target in report["targets"]}
    assert names == {"mlm_speed", "mlm_mfu", "clm_speed", "clm_mfu", "mae_speed", "mae_mfu", "trainer_overhead"}
    for target in report["targets"]:
        assert f"{'PASS' if target['passed'] else 'FAIL'} {target['text']}" in table
    arms = report["suites"]["contrastive"]["arms"]
    overhead = next(t for t in report["targets"] if t["name"] == "trainer_overhead")["value"]
    assert overhead == pytest.approx(1 - arms["hfssl-trainer"]["throughput"] / arms["plain-loop"]["throughput"])


def test_flop_formulas_give_hand_computed_values(bench):
    # One layer, d=4, MLP 8, two tokens: matmuls 6*2*(4*16 + 2*4*8) = 1536, attention 12*1*2*2*4 = 192.
    assert bench.block_flops(1, 2, 1, 4, 8) == 1536 + 192
    assert bench.block_flops(1, 2, 1, 4, 8, gated=True) == 6 * 2 * (64 + 3 * 4 * 8) + 192
    # Next-token head on both positions, vocabulary 10: 6*2*4*10 = 480.
    assert bench.text_flops(1, 2, 1, 4, 8, False, 10, head_rows=2, mlm_head=False) == 1728 + 480
    # Masked LM head on 3 positions: transform 6*3*4*4 = 288 plus vocabulary 6*3*4*10 = 720.
    assert bench.text_flops(1, 2, 1, 4, 8, False, 10, head_rows=3, mlm_head=True) == 1728 + 1008
    # A last layer computing 1 of its 2 rows: QKV on both 6*2*4*12 = 576, output projection and MLP on one
    # 6*1*(16 + 64) = 480, attention of one query over 2 keys 12*1*2*4 = 96.
    assert bench.text_flops(1, 2, 1, 4, 8, False, 10, head_rows=3, mlm_head=True, last_layer_rows=1) == 1152 + 1008
    assert bench.text_flops(1, 2, 1, 4, 8, False, 10, 3, True, last_layer_rows=2) == 1728 + 1008  # every row


def _matmul_weights(model: nn.Module) -> int:
    """Weights of every linear layer (transformers' Conv1D is GPT-2's), tied ones counted at each use."""
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, (nn.Linear, Conv1D)))


@pytest.mark.parametrize("suite", ["mlm", "clm"])
def test_text_flops_match_each_models_matmul_weights(bench, suite):
    # One token, one sequence: the formula is 6 x (matmul weights) + attention 12 * L * 1 * d.
    args = bench.parse_args(["--quick"])
    data = bench.SuiteData([], [], {"pad_id": 0, "cls_id": 2, "sep_id": 3})
    arms = (bench.mlm_arms if suite == "mlm" else bench.clm_arms)(args, data)
    batch = {"input_ids": torch.tensor([[5]]), "attention_mask": torch.ones(1, 1, dtype=torch.long),
             "labels": torch.tensor([[5]])}
    for arm in arms:
        model = arm.build()
        model_flops, executed = arm.flops(batch)
        assert model_flops == executed == 6 * _matmul_weights(model) + 12 * args.layers * args.hidden, arm.name


def test_mae_flops_match_the_models_blocks(bench):
    args = bench.parse_args(["--quick"])
    arms = bench.mae_arms(args, bench.SuiteData([], [], {}))
    model = next(a for a in arms if a.name == "hfssl").build()
    encoder, decoder = _matmul_weights(model.model), _matmul_weights(model.decoder.layers)

    def one_token(layers: int, width: int, ffn: int) -> int:  # matmul FLOPs of the blocks on one token
        return bench.block_flops(1, 1, layers, width, ffn) - 12 * layers * width

    assert one_token(args.vit_layers, args.vit_hidden, args.vit_ffn) == 6 * encoder
    assert one_token(args.decoder_layers, args.decoder_hidden, args.decoder_ffn) == 6 * decoder
    vitmae = next(a for a in arms if a.name == "vitmae").build()
    assert _matmul_weights(vitmae.vit) == encoder and _matmul_weights(vitmae.decoder.decoder_layers) == decoder


@pytest.mark.parametrize("sparse", [True, False])
def test_mae_executed_flops_follow_the_rows_the_decoder_computes(bench, sparse):
    flags = [] if sparse else ["--hfssl-vision-overrides", "sparse_last_layer=false"]
    args = bench.parse_args(["--quick", "--suite", "mae", "--threads", "1", *flags])
    data, arms = bench.prepare_suites(args)["mae"]
    hfssl, vitmae = (next(a for a in arms if a.name == name) for name in ("hfssl", "vitmae"))
    model, batch = hfssl.build(), data.train[0]
    rows = []
    for module in (model.decoder.layers[-1].mlp, model.decoder.pred):
        module.register_forward_hook(lambda m, inputs, output: rows.append(inputs[0].shape[:-1].numel()))
    hfssl.loss(model, batch).backward()
    b, patches = batch["pixel_values"].shape[0], (args.image_size // args.patch_size) ** 2
    masked = patches - int(patches * (1 - args.mask_ratio))
    assert rows == ([b * masked] * 2 if sparse else [b * (patches + 1)] * 2)
    useful, executed = hfssl.flops(batch)
    assert useful == vitmae.flops(batch)[0] == bench.mae_flops(args, b)
    assert executed == bench.mae_flops(args, b, executed=True, sparse_last=sparse)
    assert (executed < vitmae.flops(batch)[1]) == sparse


def test_memory_probe_runs_an_arm_alone_in_a_subprocess(bench):
    args = bench.parse_args(["--quick", "--threads", "1"])
    data = bench.SuiteData([], [], {"pad_id": 0, "cls_id": 2, "sep_id": 3})
    ids = torch.randint(5, args.vocab_size, (args.text_batch, args.seq_len))
    labels = torch.full_like(ids, -100)
    labels[:, ::7] = ids[:, ::7]
    data.train = [{"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}]
    arm = next(a for a in bench.mlm_arms(args, data) if a.name == "hfssl")
    found = bench.measure_memory(args, "mlm", data, arm)
    assert found["peak_rss_mib"] > 50  # python, torch and transformers alone take more
    if found["rss_increase_mib"] is not None:
        assert 0 <= found["rss_increase_mib"] < found["peak_rss_mib"]


def test_weight_decay_groups_are_the_trainers(bench):
    args = bench.parse_args(["--quick"])
    data = bench.SuiteData([], [], {"pad_id": 0, "cls_id": 2, "sep_id": 3})
    for arm in bench.clm_arms(args, data):
        model = arm.build()
        ours = bench.decay_parameter_names(model)
        assert ours == set(Trainer.get_decay_parameter_names(None, model)), arm.name  # it does not use self
        assert ours and not any("norm" in name or name.endswith("bias") for name in ours), arm.name


def test_unknown_suite_is_refused(bench):
    with pytest.raises(SystemExit):
        bench.parse_args(["--suite", "mlm,nope"])


def test_compile_flag_compiles_every_arm_in_place_and_it_still_trains(bench):
    args = bench.parse_args(["--quick", "--suite", "clm", "--compile", "--threads", "1"])
    data = bench.SuiteData([], [], {"pad_id": 0, "cls_id": 2, "sep_id": 3})
    ids = torch.randint(5, args.vocab_size, (args.text_batch, args.seq_len))
    batches = [{"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone()}] * 2
    arm = next(a for a in bench.clm_arms(args, data) if a.name == "hfssl")
    model = bench.build(arm, args)
    assert type(model).__name__ == "HfsslTextForCausalLM"  # compiled in place: class and names unchanged
    assert model._compiled_call_impl is not None
    seconds = bench.train_loop(model, arm, batches, args)
    assert len(seconds) == 2 and math.isfinite(bench.eval_loss(arm, model, batches[:1]))
    assert not bench.build(arm, bench.parse_args(["--quick"]))._compiled_call_impl  # off by default


def test_unpacked_rows_keep_every_token_one_document_per_row(bench):
    docs = [[5, 6, 7, 8, 9], [10], [], [11, 12]]
    rows = bench.unpacked_rows(docs, seq_len=4, separator=3, prefix=2)
    assert rows == [[2, 5, 6, 3], [2, 7, 8, 3], [2, 9, 3], [2, 10, 3], [2, 11, 12, 3]]
    assert sum(len(r) - 2 for r in rows) == sum(map(len, docs))  # nothing dropped, unlike packing's tail


@pytest.mark.parametrize("suite", ["mlm", "clm"])
def test_no_packing_gives_padded_batches_whose_units_are_the_real_tokens(bench, suite):
    packed, padded = (bench.parse_args(["--quick", "--suite", suite, *flags]) for flags in ([], ["--no-packing"]))
    corpora: dict = {}
    (packed_data, _), (padded_data, arms) = (bench.prepare_suites(a, corpora)[suite] for a in (packed, padded))
    assert len(corpora) == 1  # the tokenizer and corpus were loaded once for both flag sets
    assert all("attention_mask" not in b or bool(b["attention_mask"].all()) for b in packed_data.train)
    batch = padded_data.train[0]
    mask = batch["attention_mask"]
    assert not bool(mask.all())  # documents differ in length: some rows are padded
    assert bool((batch["labels"][mask == 0] == -100).all())  # padding is never a target
    hfssl = next(a for a in arms if a.name == "hfssl")
    assert hfssl.units(batch) == int(mask.sum()) < batch["input_ids"].numel()


def test_bf16_autocast_runs_the_forward_pass_in_bf16(bench):
    args = bench.parse_args(["--quick", "--suite", "clm", "--autocast", "bf16", "--threads", "1"])
    data = bench.SuiteData([], [], {"pad_id": 0, "cls_id": 2, "sep_id": 3})
    ids = torch.randint(5, args.vocab_size, (args.text_batch, args.seq_len))
    arm = next(a for a in bench.clm_arms(args, data) if a.name == "hfssl")
    model = bench.build(arm, args)
    seen = []  # the last MLP projection (the fused LM loss reads the head's weight, not its module call)
    model.model.layers[-1].mlp.down.register_forward_hook(lambda module, inputs, output: seen.append(output.dtype))
    seconds = bench.train_loop(model, arm, [{"input_ids": ids, "labels": ids.clone()}], args)
    assert len(seconds) == 1 and seen == [torch.bfloat16]
    assert model.lm_head.weight.dtype == torch.float32  # autocast, not a bf16 model


@pytest.mark.parametrize("head", ["static", "sparse", "dense"])
def test_hfssl_mlm_head_flag_picks_the_head_path_and_its_flop_count(bench, head):
    args = bench.parse_args(["--quick", "--suite", "mlm", "--hfssl-mlm-head", head, "--threads", "1"])
    data, arms = bench.prepare_suites(args)["mlm"]
    hfssl = next(a for a in arms if a.name == "hfssl")
    model, batch = hfssl.build(), data.train[0]
    rows = []
    # The head's first layer: the fused LM loss calls it, and reads the vocabulary projection's weight directly.
    model.lm_head.dense.register_forward_hook(lambda module, inputs, output: rows.append(inputs[0].shape[:-1].numel()))
    model.model.layers[-1].mlp.register_forward_hook(lambda module, inputs, output: rows.append(inputs[0].shape[:-1].numel()))
    hfssl.loss(model, batch).backward()
    labelled = batch["labels"] != -100
    masked, b_t = int(labelled.sum()), batch["input_ids"].numel()
    expected_rows = {"static": batch["masked_positions"].numel(), "sparse": masked, "dense": b_t}[head]
    # The last layer computes the masked positions only, b x k rows (k: the collator's, or the longest row's count).
    last_rows = {"static": expected_rows, "sparse": len(labelled) * int(labelled.sum(dim=1).max()), "dense": b_t}[head]
    assert rows == [last_rows, expected_rows] and model.config.sparse_prediction == (head != "dense")
    useful, executed = hfssl.flops(batch)
    b, t = batch["input_ids"].shape
    assert executed == bench.text_flops(b, t, args.layers, args.hidden, args.ffn, False, args.vocab_size, expected_rows,
                                        True, last_layer_rows=last_rows)
    bert = next(a for a in arms if a.name == "bert")
    assert useful == bert.flops(batch)[0]  # the same useful work whatever the head runs
    assert (executed == bert.flops(batch)[1]) == (head == "dense")


def test_hfssl_attention_flag_switches_only_the_hfssl_arms(bench, monkeypatch):
    args = bench.parse_args(["--quick", "--suite", "mae", "--hfssl-attention", "eager", "--threads", "1"])
    data, arms = bench.prepare_suites(args)["mae"]
    built = {arm.name: arm.build() for arm in arms}
    assert built["hfssl"].config._attn_implementation == "eager"
    assert built["vitmae"].config._attn_implementation == "sdpa"
    calls = []
    sdpa = torch.nn.functional.scaled_dot_product_attention
    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention",
                        lambda *a, **k: calls.append(1) or sdpa(*a, **k))
    hfssl = next(a for a in arms if a.name == "hfssl")
    hfssl.loss(built["hfssl"], data.train[0]).backward()
    assert calls == []  # the eager path: matmul, softmax, matmul
    vitmae = next(a for a in arms if a.name == "vitmae")
    vitmae.loss(built["vitmae"], data.train[0])
    assert calls  # the reference still runs SDPA


def test_base_preset_sets_the_gpu_shapes_and_explicit_flags_still_win(bench):
    args = bench.parse_args(["--preset", "base", "--suite", "clm", "--seq-len", "1024", "--vocab-size", "50257"])
    assert (args.layers, args.hidden, args.heads, args.ffn) == (12, 768, 12, 3072)  # BERT-base / GPT-2-124M body
    assert (args.seq_len, args.vocab_size) == (1024, 50257)  # GPT-2's own, given explicitly
    assert (args.image_size, args.patch_size, args.vit_layers, args.decoder_layers) == (224, 16, 12, 8)  # ViT-B MAE
    assert bench.parse_args([]).layers == 4  # the CPU shapes stay the default


@pytest.mark.parametrize("argv", [["--quick", "--preset", "base"], ["--device", "tpu"]])
def test_conflicting_or_unknown_run_flags_are_refused(bench, argv):
    with pytest.raises(SystemExit) as exit_info:
        bench.parse_args(argv)
    assert exit_info.value.code == 2


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal where there is no GPU")
def test_device_cuda_without_a_gpu_names_the_problem(bench, capsys):
    with pytest.raises(SystemExit):
        bench.parse_args(["--device", "cuda"])
    assert "no CUDA device" in capsys.readouterr().err


def test_probe_runs_in_the_training_dtype_on_a_gpu_and_in_fp32_on_the_cpu(bench):
    cpu = bench.parse_args(["--autocast", "bf16"])
    assert bench.probe_settings(cpu) == (1024, torch.float32)  # the CPU harness's fp32 baseline stays
    cpu.device = "cuda"  # as parse_args leaves it on a GPU machine
    assert bench.probe_settings(cpu) == (8192, torch.bfloat16)
    assert all(rate > 0 for rate in bench.matmul_gflops(64, repeats=2, dtype=torch.bfloat16))


def test_held_out_text_fills_an_eval_batch_of_large_shapes_and_keeps_5_percent_for_small_ones(bench):
    small = bench.parse_args(["--suite", "mlm"])
    docs = len(bench.load_text(small)[2])
    assert 0 < len(bench.mlm_data(small, bench.load_text(small)).eval)
    base = bench.parse_args(["--preset", "base", "--suite", "mlm,clm"])  # 32 x 512 tokens per batch
    text = bench.load_text(base)
    assert len(text[2]) > docs  # more held out than the default 5%, which filled no batch of this shape
    assert bench.mlm_data(base, text).eval and bench.clm_data(base, text).eval


def test_profile_writes_each_arms_op_table_sorted_by_own_time(bench, tmp_path):
    with torch_threads_restored():
        report = bench.main(["--quick", "--suite", "mlm", "--profile", "1", "--repeats", "1", "--threads", "1",
                             "--output", str(tmp_path)])
    for arm in ("hfssl", "bert"):
        assert (tmp_path / "profile" / f"mlm-{arm}.txt").read_text().count("aten::") > 5
        top = report["suites"]["mlm"]["arms"][arm]["profile_top_ops"]
        times = [op["self_ms_per_step"] for op in top]
        assert times == sorted(times, reverse=True) and 0 < sum(op["share"] for op in top) <= 1.0001

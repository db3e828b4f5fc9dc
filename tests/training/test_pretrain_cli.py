"""End-to-end pretraining through the `hfssl` CLI on real text, and every bad input the CLI must refuse."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import hfssl  # noqa: F401
from hfssl.cli import main
from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer, pipeline

# Small enough for 2 CPU cores, big enough to learn: 64-wide, 2 layers, 64-token blocks.
TINY = [
    "--model-size", "tiny", "--config-overrides", "hidden_size=64,num_attention_heads=2,intermediate_size=128",
    "--vocab-size", "1000", "--block-size", "64", "--per-device-train-batch-size", "16",
    "--learning-rate", "3e-3", "--report-to", "none", "--eval-steps", "1000", "--save-steps", "1000",
    "--logging-steps", "10", "--disable-tqdm", "true",
]


def run_cli(*args: str) -> int:
    return main([str(a) for a in args])


def run_pretrain(*args) -> int:
    """`hfssl pretrain` with the tiny settings first, so the test's own flags win."""
    return run_cli("pretrain", *TINY, *args)


@pytest.fixture(scope="module")
def docstring_corpus(tmp_path_factory) -> Path:
    """A few thousand real docstrings as a folder of text files (one docstring per line)."""
    from hfssl.data.corpora import stdlib_docstrings

    folder = tmp_path_factory.mktemp("corpus")
    texts = [" ".join(t.split()) for t in stdlib_docstrings()[:3000]]
    for i in range(3):
        (folder / f"part{i}.txt").write_text("\n".join(texts[i::3]) + "\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def mlm_run(tmp_path_factory, docstring_corpus) -> Path:
    out = tmp_path_factory.mktemp("runs") / "mlm"
    code = run_pretrain("--objective", "mlm", "--train-files", str(docstring_corpus / "*.txt"),
                   "--output", out, "--max-steps", "120", "--save-steps", "30")
    assert code == 0
    return out


def test_mlm_run_learns_and_writes_the_run_directory(mlm_run: Path):
    manifest = json.loads((mlm_run / "run.json").read_text())
    stats = manifest["pretrain"]
    assert stats["eval_loss"] < stats["eval_loss_before"] - 1.0, stats
    assert stats["steps"] == 120 and stats["tokens_seen"] == 120 * 16 * 64
    assert stats["perplexity"] == pytest.approx(2.718281828 ** stats["eval_loss"])  # a token cross-entropy's
    assert manifest["objective"] == "mlm" and manifest["data"]["format"] == "text"
    assert manifest["data"]["fingerprint"] and manifest["versions"]["transformers"]
    assert manifest["hardware"]["cpu_gemm"] in ("onednn", "aten")  # which library ran the CPU products
    assert manifest["arguments"]["training"]["max_steps"] == 120
    assert "hub_token" not in manifest["arguments"]["training"]
    model_files = {p.name for p in (mlm_run / "model").iterdir()}
    assert {"config.json", "model.safetensors", "modeling_hfssl_text.py", "tokenizer.json"} <= model_files
    assert json.loads((mlm_run / "model" / "config.json").read_text())["auto_map"]["AutoModelForMaskedLM"]
    assert (mlm_run / "checkpoints" / "checkpoint-120").is_dir()


def test_fill_mask_pipeline_on_the_saved_model(mlm_run: Path):
    fill = pipeline("fill-mask", model=str(mlm_run / "model"))
    predictions = fill("Return the [MASK] of the object.")
    assert len(predictions) == 5 and all(0 <= p["score"] <= 1 for p in predictions)
    assert predictions[0]["score"] > 1.0 / 1000  # better than uniform over the vocabulary


def test_resume_continues_from_the_checkpoint_step(mlm_run: Path, docstring_corpus, tmp_path):
    resumed = tmp_path / "resumed"
    import shutil

    shutil.copytree(mlm_run, resumed)
    shutil.rmtree(resumed / "checkpoints" / "checkpoint-120")
    code = run_pretrain("--objective", "mlm", "--train-files", str(docstring_corpus / "*.txt"),
                   "--output", resumed, "--max-steps", "100", "--resume")
    assert code == 0
    stats = json.loads((resumed / "run.json").read_text())["pretrain"]
    assert stats["resumed_from"].endswith("checkpoint-90")
    assert stats["steps"] == 100
    logged = [e["step"] for e in stats["log_history"] if "loss" in e]
    assert 100 in logged and 10 in logged  # history from before the checkpoint was kept and continued


def test_continued_pretraining_starts_from_the_saved_weights(mlm_run: Path, docstring_corpus, tmp_path):
    out = tmp_path / "continued"
    code = run_pretrain("--objective", "mlm", "--train-files", str(docstring_corpus / "*.txt"),
                   "--init-from", mlm_run, "--output", out, "--max-steps", "2")
    assert code == 0
    first = json.loads((mlm_run / "run.json").read_text())["pretrain"]
    second = json.loads((out / "run.json").read_text())
    assert second["model"]["init_from"] == str(mlm_run)
    # It starts where the first run ended, far below a fresh model's starting loss.
    assert second["pretrain"]["eval_loss_before"] < first["eval_loss_before"] - 1.0


def test_clm_on_news_with_config_file_and_text_generation(tmp_path, data_dir):
    news = data_dir / "news" / "news100.jsonl.gz"
    out = tmp_path / "clm"
    config = tmp_path / "clm.yaml"
    config.write_text(
        f"objective: clm\ntrain_files: [{news}]\ntext_column: text\noutput: {out}\nmax_steps: 150\n", encoding="utf-8"
    )
    assert run_pretrain("--config", config) == 0
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["objective"] == "clm" and manifest["tokenizer"]["kind"] == "bpe"
    assert manifest["pretrain"]["eval_loss"] < manifest["pretrain"]["eval_loss_before"] - 1.0
    generate = pipeline("text-generation", model=str(out / "model"))
    text = generate("The government said", max_new_tokens=12, do_sample=False)[0]["generated_text"]
    assert text.startswith("The government said") and len(text) > len("The government said")
    model = AutoModelForCausalLM.from_pretrained(out / "model")
    assert model.config.is_causal and model.config.eos_token_id is not None


def test_streaming_gives_a_run_too(tmp_path, docstring_corpus):
    out = tmp_path / "streamed"
    code = run_pretrain("--objective", "mlm", "--train-files", str(docstring_corpus / "*.txt"),
                   "--streaming", "--validation-examples", "100", "--output", out, "--max-steps", "5")
    assert code == 0
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["data"]["streaming"] is True and manifest["pretrain"]["steps"] == 5
    assert AutoModelForMaskedLM.from_pretrained(out / "model") is not None


def test_script_form_reports_bad_input_in_one_line_like_the_command(tmp_path):
    """scripts/pretrain.py (the accelerate/torchrun entry point) printed a traceback and exited 1 on bad input."""
    script = Path(__file__).resolve().parents[2] / "scripts" / "pretrain.py"
    result = subprocess.run([sys.executable, str(script), "--objective", "mlm", "--train_files",
                             str(tmp_path / "missing.txt"), "--output", str(tmp_path / "run")],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert "pretrain.py: error: No such file or folder" in result.stderr and "missing.txt" in result.stderr
    assert not (tmp_path / "run").exists()


def test_script_form_parses_the_same_arguments(tmp_path, docstring_corpus):
    out = tmp_path / "script"
    script = Path(__file__).resolve().parents[2] / "scripts" / "pretrain.py"
    result = subprocess.run(
        [sys.executable, str(script), "--objective", "clm", "--train_files", str(docstring_corpus / "part0.txt"),
         "--output", str(out), "--max_steps", "3", *TINY, "--report_to", "tensorboard"],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((out / "run.json").read_text())["pretrain"]["steps"] == 3
    assert list((out / "checkpoints").rglob("events.out.tfevents.*")), "no TensorBoard log was written"


def test_the_same_seed_gives_the_same_run(tmp_path, docstring_corpus):
    # Each run trains its own WordPiece tokenizer, in its own process: that is repeatable too.
    losses = []
    for name in ("a", "b"):
        assert run_pretrain("--objective", "mlm", "--train-files", str(docstring_corpus / "part1.txt"),
                            "--output", tmp_path / name, "--max-steps", "4", "--seed", "7") == 0
        losses.append(json.loads((tmp_path / name / "run.json").read_text())["pretrain"]["eval_loss"])
    assert losses[0] == losses[1]
    a = (tmp_path / "a" / "model" / "model.safetensors").read_bytes()
    assert a == (tmp_path / "b" / "model" / "model.safetensors").read_bytes()


def test_help_lists_the_commands_and_objectives(capsys):
    assert main(["--help"]) == 0
    assert "pretrain" in capsys.readouterr().out
    assert main(["pretrain", "--help"]) == 0
    help_text = capsys.readouterr().out
    assert "mlm" in help_text and "clm" in help_text and "--learning_rate" in help_text


# ---------------------------------------------------------------- bad input: message, exit 2, nothing written


def refuse(capsys, out: Path, *args, message: str, existed: bool = False) -> None:
    code = run_pretrain("--max-steps", "2", "--output", out, *args)
    err = capsys.readouterr().err
    assert code == 2, err
    assert message.lower() in err.lower(), err
    if not existed:
        assert not out.exists(), "a failed run left a directory behind"


def test_empty_corpus(tmp_path, capsys):
    (tmp_path / "empty.txt").write_text("\n   \n\n", encoding="utf-8")
    refuse(capsys, tmp_path / "run", "--train-files", tmp_path / "empty.txt", message="empty")


def test_missing_text_column_names_the_columns(tmp_path, capsys):
    (tmp_path / "d.jsonl").write_text('{"body": "some words here", "id": 1}\n' * 20, encoding="utf-8")
    refuse(capsys, tmp_path / "run", "--train-files", tmp_path / "d.jsonl", "--text-column", "text", message="body")


def test_non_utf8_is_an_error_with_strict(tmp_path, capsys, docstring_corpus):
    bad = tmp_path / "bad.txt"
    bad.write_bytes((docstring_corpus / "part0.txt").read_bytes() + b"caf\xe9 latin-1 line\n")
    refuse(capsys, tmp_path / "run", "--train-files", bad, "--strict", message="bad.txt")


def test_non_utf8_lines_are_skipped_and_counted_without_strict(tmp_path, docstring_corpus):
    bad = tmp_path / "bad.txt"
    bad.write_bytes((docstring_corpus / "part0.txt").read_bytes() + b"caf\xe9 latin-1 line\n\xff\xfe\n")
    assert run_pretrain("--objective", "mlm", "--train-files", bad, "--output", tmp_path / "run",
                        "--max-steps", "1") == 0
    assert json.loads((tmp_path / "run" / "run.json").read_text())["data"]["skipped_undecodable"] == 2


def test_texts_shorter_than_the_block_size(tmp_path, capsys):
    (tmp_path / "short.txt").write_text("a b\n" * 3, encoding="utf-8")
    refuse(capsys, tmp_path / "run", "--train-files", tmp_path / "short.txt", message="block size")


def test_unknown_objective_lists_the_valid_ones(tmp_path, capsys, docstring_corpus):
    refuse(capsys, tmp_path / "run", "--objective", "xlnet", "--train-files", docstring_corpus,
           message="valid objectives: mlm, clm")


def test_unknown_model_size_lists_the_valid_ones(tmp_path, capsys, docstring_corpus):
    code = run_cli("pretrain", "--output", tmp_path / "run", "--train-files", docstring_corpus,
                   "--model-size", "huge", "--max-steps", "1", "--report-to", "none")
    assert code == 2 and "tiny, small, base" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_existing_output_is_refused_without_overwrite(tmp_path, capsys, docstring_corpus):
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    refuse(capsys, out, "--train-files", docstring_corpus, message="--overwrite", existed=True)
    assert (out / "keep.txt").read_text() == "precious"


def test_overwrite_that_fails_restores_the_previous_run(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    (tmp_path / "short.txt").write_text("a b\n" * 3, encoding="utf-8")
    refuse(capsys, out, "--train-files", tmp_path / "short.txt", "--overwrite", message="block size", existed=True)
    assert (out / "keep.txt").read_text() == "precious"


def test_resume_without_a_checkpoint(tmp_path, capsys, docstring_corpus):
    refuse(capsys, tmp_path / "run", "--train-files", docstring_corpus, "--resume", message="no checkpoint")


def test_tokenizer_larger_than_the_model_vocabulary(tmp_path, capsys, docstring_corpus, mlm_run):
    refuse(capsys, tmp_path / "run", "--train-files", docstring_corpus, "--tokenizer", mlm_run / "model",
           "--config-overrides", "vocab_size=100", message="vocab")


def test_unknown_config_override_names_the_fields(tmp_path, capsys, docstring_corpus):
    refuse(capsys, tmp_path / "run", "--train-files", docstring_corpus, "--config-overrides", "n_layers=3",
           message="num_hidden_layers")


def test_missing_files(tmp_path, capsys):
    refuse(capsys, tmp_path / "run", "--train-files", tmp_path / "nothing-*.txt", message="nothing-")


def test_unknown_cpu_matmul_library_is_refused_before_any_work(tmp_path, capsys, docstring_corpus, monkeypatch):
    monkeypatch.setenv("HFSSL_CPU_GEMM", "mkl")
    refuse(capsys, tmp_path / "run", "--train-files", docstring_corpus,
           message="HFSSL_CPU_GEMM='mkl' is not a CPU matmul backend; use one of auto, onednn, aten.")


@pytest.mark.parametrize(("flags", "named"), [
    (["--text-column", "body"], "so --text-column cannot apply"),
    (["--streaming", "true", "--validation-split", "test"], "so --validation-split, --streaming cannot apply"),
])
def test_data_flags_a_builtin_corpus_cannot_use_are_refused(tmp_path, capsys, flags, named):
    refuse(capsys, tmp_path / "run", "--dataset", "stdlib-docstrings", *flags, message=named)


@pytest.mark.parametrize(("flags", "named"), [
    (["--block-size", "0"], "block_size must be at least 8, got 0. Change --block-size."),
    (["--validation-fraction", "1.5"], "validation_fraction must be in (0, 1), got 1.5. Change --validation-fraction"),
    (["--max-train-examples", "-1"], "max_train_examples must be >= 1 or unset, got -1."),
])
def test_the_builtin_corpus_checks_its_sizes_as_files_do(tmp_path, capsys, flags, named):
    refuse(capsys, tmp_path / "run", "--dataset", "stdlib-docstrings", *flags, message=named)


def test_console_script_exits_non_zero_on_bad_input(tmp_path):
    result = subprocess.run(
        ["hfssl", "pretrain", "--objective", "nope", "--train-files", str(tmp_path), "--output", str(tmp_path / "r")],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 2 and "valid objectives" in result.stderr


def test_static_masking_and_activation_checkpointing_train(tmp_path, docstring_corpus):
    out = tmp_path / "static"
    assert run_pretrain("--objective", "mlm", "--train-files", str(docstring_corpus / "part0.txt"), "--output", out,
                        "--max-steps", "30", "--mlm-static-masking", "true", "--activation-checkpointing", "true") == 0
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["arguments"]["data"]["mlm_static_masking"] is True
    assert manifest["arguments"]["training"]["activation_checkpointing"] is True
    stats = manifest["pretrain"]
    assert stats["eval_loss"] < stats["eval_loss_before"] - 0.3, stats


@pytest.mark.slow
def test_torch_compile_with_static_masking(tmp_path, docstring_corpus):
    """Compiles once on CPU (about a minute): static shapes mean no recompilation per batch."""
    import torch._dynamo

    torch._dynamo.reset()
    out = tmp_path / "compiled"
    assert run_pretrain("--objective", "mlm", "--train-files", str(docstring_corpus / "part0.txt"), "--output", out,
                        "--max-steps", "12", "--mlm-static-masking", "true", "--torch-compile", "true") == 0
    stats = json.loads((out / "run.json").read_text())["pretrain"]
    assert stats["eval_loss"] < stats["eval_loss_before"]


def test_config_overrides_are_typed_like_the_field_including_fields_that_default_to_none():
    from hfssl.models import HfsslTextConfig
    from hfssl.training.setup import parse_overrides

    parsed = parse_overrides("hidden_size=64, loss_chunk_size=256, pooling=cls, use_bias=false, rope_theta=500.5",
                             HfsslTextConfig)
    assert parsed == {"hidden_size": 64, "loss_chunk_size": 256, "pooling": "cls", "use_bias": False,
                      "rope_theta": 500.5}
    assert parse_overrides("loss_chunk_size=0", HfsslTextConfig) == {"loss_chunk_size": 0}
    assert parse_overrides("loss_chunk_size=none", HfsslTextConfig) == {"loss_chunk_size": None}
    HfsslTextConfig(**parse_overrides("loss_chunk_size=0", HfsslTextConfig))  # accepted by the config itself
    with pytest.raises(ValueError, match="Expected an integer"):
        parse_overrides("hidden_size=wide", HfsslTextConfig)


def test_a_hub_dataset_that_cannot_be_reached_is_a_clear_error(tmp_path, capsys):
    """The tests run offline (HF_HUB_OFFLINE=1), as a machine without the Hub would: exit 2, a hint, no run."""
    code = main(["pretrain", "--objective", "mlm", "--dataset", "someone/not-here", "--output", str(tmp_path / "r"),
                 "--max-steps", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "Couldn't reach 'someone/not-here'" in err and "use local data" in err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("flags, message", [
    (["--model-size", "huge"], "Unknown --model-size 'huge'"),
    (["--tokenizer-type", "bpe"], "needs a mask token, which a bpe tokenizer"),
    (["--config-overrides", "hidden_size=100,num_attention_heads=3"], "must be a multiple of num_attention_heads"),
    (["--method-options", "temperature=0.1"], "has no method options"),
])
def test_bad_model_flags_fail_before_the_data_is_read(tmp_path, capsys, flags, message):
    """A corpus path that does not exist: the flag's error comes first, so no data or tokenizer work was done."""
    out = tmp_path / "r"
    code = main(["pretrain", "--objective", "mlm", "--train-files", str(tmp_path / "missing.txt"), "--output",
                 str(out), *flags])
    assert code == 2 and message in capsys.readouterr().err and not out.exists()

"""Continuing and resuming runs, --config forms, TensorBoard logs and run-directory permissions, on a tiny real run."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest
import torch

import hfssl  # noqa: F401
from hfssl.cli import main, parse_pretrain_args
from hfssl.training.objectives import get_objective
from hfssl.training.rundir import (
    RunDirectory,
    check_can_start,
    open_run,
    write_json_atomic,
)
from hfssl.training.setup import load_init_model

TINY_MODEL = [
    "--model-size", "tiny", "--config-overrides", "hidden_size=64,num_attention_heads=2,intermediate_size=128",
    "--vocab-size", "500", "--block-size", "64", "--per-device-train-batch-size", "8", "--report-to", "none",
    "--eval-steps", "1000", "--logging-steps", "1", "--disable-tqdm", "true",
]
TINY = [*TINY_MODEL, "--dataset", "stdlib-docstrings", "--max-train-examples", "400"]


def pretrain(*args, data: bool = True) -> int:
    """`hfssl pretrain` with the tiny settings first (and the built-in corpus with `data`), so the test's own
    flags win."""
    return main(["pretrain", *(TINY if data else TINY_MODEL), *map(str, args)])


@pytest.fixture(scope="module")
def mlm_run(tmp_path_factory) -> Path:
    """A finished 4-step MLM run with checkpoints at steps 2 and 4."""
    out = tmp_path_factory.mktemp("runs") / "mlm"
    assert pretrain("--objective", "mlm", "--output", out, "--max-steps", "4", "--save-steps", "2") == 0
    return out


def copy_run(run: Path, to: Path) -> Path:
    shutil.copytree(run, to)
    return to


# ---------------------------------------------------------------- --init-from under another objective


@pytest.mark.parametrize("objective", ["simcse", "mlm+simcse"])
def test_an_mlm_run_continues_as_a_contrastive_objective_from_its_weights(mlm_run, tmp_path, objective):
    from transformers import AutoModelForMaskedLM

    source = AutoModelForMaskedLM.from_pretrained(mlm_run / "model").state_dict()
    model = load_init_model(get_objective(objective), str(mlm_run),
                            get_objective(objective).config_extra({"temperature": 0.1}))
    assert type(model).__name__ == "HfsslTextForContrastiveLearning"
    assert model.config.ssl["method"] == "simcse" and model.config.ssl["temperature"] == 0.1
    backbone = {k: v for k, v in model.state_dict().items() if k.startswith("model.")}
    assert backbone and all(torch.equal(v, source[k]) for k, v in backbone.items())
    if objective == "mlm+simcse":  # the MLM head carries over too
        assert model.config.mlm_weight == 1.0 and model.lm_head is not None
        head = {k: v for k, v in model.state_dict().items() if k.startswith("lm_head.")}
        assert head and all(torch.equal(v, source[k]) for k, v in head.items() if k in source)
        # the masked LM's output layer is its token embeddings (tied); the hybrid's decoder starts from them
        assert torch.equal(model.lm_head.decoder.weight, source["model.embed_tokens.weight"])
    else:
        assert model.lm_head is None

    out = tmp_path / "continued"
    assert pretrain("--objective", objective, "--init-from", mlm_run, "--output", out, "--max-steps", "2",
                    "--save-steps", "1000") == 0
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["objective"] == objective and manifest["pretrain"]["steps"] == 2
    assert manifest["model"]["init_from"] == str(mlm_run)
    assert manifest["model"]["config"]["ssl"]["method"] == "simcse"


def test_an_mlm_plus_simcse_run_continued_as_simcse_drops_the_mlm_head(mlm_run, tmp_path):
    hybrid = tmp_path / "hybrid"
    assert pretrain("--objective", "mlm+simcse", "--init-from", mlm_run, "--output", hybrid, "--max-steps", "1",
                    "--save-steps", "1000") == 0
    model = load_init_model(get_objective("simcse"), str(hybrid), get_objective("simcse").config_extra({}))
    assert model.lm_head is None and model.config.mlm_weight == 0.0


# ---------------------------------------------------------------- --resume that cannot continue the run


def test_init_from_with_another_runs_tokenizer_is_refused(mlm_run, tmp_path, capsys):
    """Another vocabulary would read the model's embeddings with the wrong ids; its own tokenizer is fine."""
    other = tmp_path / "vocab"
    assert pretrain("--objective", "mlm", "--output", other, "--max-steps", "1", "--vocab-size", "300") == 0
    out = tmp_path / "continued"
    code = pretrain("--objective", "mlm", "--init-from", mlm_run, "--tokenizer", other / "model", "--output", out,
                    "--max-steps", "1")
    assert code == 2 and "is not the tokenizer of --init-from" in capsys.readouterr().err and not out.exists()
    assert pretrain("--objective", "mlm", "--init-from", mlm_run, "--tokenizer", mlm_run / "model", "--output", out,
                    "--max-steps", "1") == 0


def test_init_from_continues_with_longer_blocks_than_its_tokenizer_was_made_for(mlm_run, tmp_path):
    """The run's tokenizer records block 64 as its model_max_length; the RoPE model takes 128."""
    from transformers import AutoTokenizer

    out = tmp_path / "longer"
    assert pretrain("--objective", "mlm", "--init-from", mlm_run, "--output", out, "--max-steps", "1",
                    "--block-size", "128") == 0
    assert AutoTokenizer.from_pretrained(out / "model").model_max_length == 128


def test_a_block_longer_than_learned_positions_is_refused_before_training(tmp_path, capsys):
    out = tmp_path / "learned"
    code = pretrain("--objective", "mlm", "--output", out, "--max-steps", "1", "--config-overrides",
                    "position_embedding_type=learned,max_position_embeddings=32")
    assert code == 2 and "longer than the model's 32 learned positions" in capsys.readouterr().err
    assert not out.exists()


def refuse_resume(capsys, run: Path, *args, message: str, data: bool = True) -> None:
    before = sorted(p.relative_to(run) for p in run.rglob("*"))
    manifest = (run / "run.json").read_bytes()
    code = pretrain("--output", run, "--resume", *args, data=data)
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err, err
    assert sorted(p.relative_to(run) for p in run.rglob("*")) == before and (run / "run.json").read_bytes() == manifest


def test_resume_with_another_model_shape_names_the_differing_fields(mlm_run, tmp_path, capsys):
    run = copy_run(mlm_run, tmp_path / "run")
    refuse_resume(capsys, run, "--objective", "mlm", "--max-steps", "6",
                  "--config-overrides", "hidden_size=128,num_attention_heads=2,intermediate_size=128",
                  message="hidden_size: 64 in the checkpoint, 128 from these flags")


def test_resume_under_another_objective_names_the_checkpoints(mlm_run, tmp_path, capsys):
    run = copy_run(mlm_run, tmp_path / "run")
    refuse_resume(capsys, run, "--objective", "clm", "--max-steps", "6",
                  message="was trained with objective 'mlm', not 'clm'")


def test_resume_of_a_finished_run_is_refused(mlm_run, tmp_path, capsys):
    run = copy_run(mlm_run, tmp_path / "run")
    refuse_resume(capsys, run, "--objective", "mlm", "--max-steps", "4",
                  message="already finished at step 4 (--max-steps 4); raise --max-steps")


def test_resume_on_fewer_rows_than_the_run_started_on_is_refused(mlm_run, tmp_path, capsys):
    run = copy_run(mlm_run, tmp_path / "run")
    assert json.loads((run / "checkpoints" / "data.json").read_text())["train_rows"] == 380
    refuse_resume(capsys, run, "--objective", "mlm", "--max-steps", "6", "--max-train-examples", "200",
                  message="(train_rows: 380 then, 190 now; validation_rows: 20 then, 10 now)")


def test_resume_on_edited_text_files_is_refused(tmp_path, capsys):
    """Same file names and row count, other contents: only the contents' fingerprint tells them apart."""
    from hfssl.data.corpora import stdlib_docstrings

    texts = [" ".join(t.split()) for t in stdlib_docstrings()[:300]]
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(texts) + "\n", encoding="utf-8")
    run = tmp_path / "run"
    assert pretrain("--objective", "mlm", "--train-files", corpus, "--output", run, "--max-steps", "2",
                    "--save-steps", "2", data=False) == 0
    corpus.write_text("\n".join(reversed(texts)) + "\n", encoding="utf-8")
    refuse_resume(capsys, run, "--objective", "mlm", "--train-files", corpus, "--max-steps", "4",
                  message="fingerprint (the files' contents)", data=False)


def test_resume_with_the_same_flags_continues(mlm_run, tmp_path):
    run = copy_run(mlm_run, tmp_path / "run")
    assert pretrain("--objective", "mlm", "--output", run, "--resume", "--max-steps", "5", "--save-steps", "2") == 0
    stats = json.loads((run / "run.json").read_text())["pretrain"]
    assert stats["steps"] == 5 and stats["resumed_from"].endswith("checkpoint-4")


# ---------------------------------------------------------------- --config forms


@pytest.fixture
def config_file(tmp_path) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text("objective: clm\nmax_steps: 7\nblock_size: 32\n", encoding="utf-8")
    return path


def test_config_with_equals_sign_is_read(config_file):
    for argv in (["--config", str(config_file)], [f"--config={config_file}"]):
        model_args, data_args, _, training_args = parse_pretrain_args([*argv, "--block-size", "48"])
        assert model_args.objective == "clm" and training_args.max_steps == 7
        assert data_args.block_size == 48  # the command line wins


@pytest.mark.parametrize("argv, message", [
    (["--config={f}", "--config", "{f}"], "--config was given more than once"),
    (["--config="], "--config needs a file path"),
    (["--config", "--max-steps", "2"], "--config needs a file path"),
])
def test_bad_config_flags_are_refused(config_file, tmp_path, capsys, argv, message):
    out = tmp_path / "run"
    argv = [a.format(f=config_file) for a in argv]
    assert main(["pretrain", *argv, "--output", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


# ---------------------------------------------------------------- TensorBoard logs


def test_tensorboard_logs_go_under_the_runs_checkpoints_not_the_current_directory(tmp_path, monkeypatch):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.delenv("TENSORBOARD_LOGGING_DIR", raising=False)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    out = tmp_path / "run"
    assert pretrain("--objective", "mlm", "--output", out, "--max-steps", "2", "--report-to", "tensorboard") == 0
    assert not any(cwd.iterdir()), list(cwd.rglob("*"))
    tags = set()
    for event_file in (out / "checkpoints").rglob("events.out.tfevents.*"):
        tags |= set(EventAccumulator(str(event_file)).Reload().Tags()["scalars"])
    assert {"train/loss", "eval/loss"} <= tags, tags
    assert "TENSORBOARD_LOGGING_DIR" not in os.environ


# ---------------------------------------------------------------- run directory


def test_an_existing_run_suggests_resume_only_where_the_command_has_it(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "run.json").write_text("{}")
    with pytest.raises(FileExistsError, match="--resume to continue it"):
        check_can_start(tmp_path / "run", overwrite=False, resume=False)
    with pytest.raises(FileExistsError) as error, open_run(tmp_path / "run", can_resume=False):
        pass
    assert "--resume" not in str(error.value)
    assert "Pass --overwrite to replace it or choose another --output." in str(error.value)


def test_run_files_follow_the_umask(tmp_path):
    from hfssl.models import HfsslTextConfig, HfsslTextForMaskedLM

    old = os.umask(0o022)
    try:
        with open_run(tmp_path / "run") as run:
            run.update_manifest(stage="test")
            run.save_model(HfsslTextForMaskedLM(HfsslTextConfig.from_size(
                "tiny", vocab_size=100, hidden_size=32, num_attention_heads=2, intermediate_size=64)))
        def mode(path: Path) -> int:
            return stat.S_IMODE(path.stat().st_mode)

        assert mode(run.manifest_path) == 0o644
        assert mode(run.model_dir) == 0o755 and mode(run.model_dir / "config.json") == 0o644
        os.chmod(run.manifest_path, 0o600)  # a file replaced keeps the permissions it had, as with open()
        write_json_atomic(run.manifest_path, {"stage": "again"})
        assert mode(run.manifest_path) == 0o600
        assert isinstance(RunDirectory(run.path).read_manifest(), dict)
    finally:
        os.umask(old)


def test_tokenizer_may_name_a_run_directory(mlm_run, tmp_path):
    """As --init-from does: the run's model/ folder holds the tokenizer."""
    from transformers import AutoTokenizer

    out = tmp_path / "same-vocab"
    assert pretrain("--objective", "mlm", "--tokenizer", mlm_run, "--output", out, "--max-steps", "1") == 0
    assert AutoTokenizer.from_pretrained(out / "model").get_vocab() == AutoTokenizer.from_pretrained(
        mlm_run / "model").get_vocab()

"""Pretraining with several processes: torchrun and accelerate launch, 2 CPU processes over gloo, the HF Trainer.

What is checked, for every objective (mlm, clm, simcse, mlm+simcse, mae, simclr, moco, byol, simsiam, dino,
swav and the hybrid mae+byol):

- the run succeeds, rank 0 writes the run directory (run.json, model/, checkpoints with one RNG state per
  process) and the model loads with from_pretrained; counts in run.json are global (both processes);
- both processes end with identical parameters (EMA targets included) and identical buffers, except
  BatchNorm running statistics: the projection heads use plain BatchNorm, which normalizes each process's
  own batch (DDP only broadcasts rank 0's buffers before each forward pass);
- where the math says so, 2 processes with per-device batch B equal 1 process with batch 2B, step for step:
  clm with dropout 0 (deterministic; the distributed sampler gives rank 0 the first half and rank 1 the
  second half of each global batch), simcse with dropout 0 (negatives gathered across processes) and dino
  with identity views (center and EMA teacher over the global batch). The other objectives draw random
  masks, crops or dropout (each process its own, which one process drawing for the whole batch cannot
  reproduce) or normalize with per-process BatchNorm: agreement only.

Streaming: accelerate hands a streamed (iterable) dataset to the main process only, which reads it once,
collates one batch per process, concatenates them and sends each process its slice (`dispatch_batches`);
`split_dataset_by_node` is not used. A pass thus sees every example once, in single-process order.

Tiny models and 3 optimizer steps keep the whole module under two minutes on 2 cores. FSDP cannot run
through the Trainer on CPU processes (accelerate enables FSDP for GPU-like devices only): the FSDP2 save path
of the run directory is tested with torch's `fully_shard` directly; the accelerate FSDP and DeepSpeed
configs are checked by accelerate's own launch-time parsing.
"""

from __future__ import annotations

import collections
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

import hfssl  # noqa: F401  (registers the Auto classes)
from hfssl.models import HfsslTextConfig, HfsslTextForCausalLM
from hfssl.training import rundir
from hfssl.training.rundir import check_can_start, open_run
from hfssl.training.setup import use_cpu_processes_without_accelerator
from transformers import AutoModel

from . import distributed_launcher

pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                                reason="torch.distributed with the gloo backend is needed")

REPO = Path(__file__).resolve().parents[2]
LAUNCHER = Path(distributed_launcher.__file__)
FSDP2_SCRIPT = Path(__file__).with_name("fsdp2_save_script.py")
CONFIGS = REPO / "scripts" / "configs"
WORLD = 2
STEPS = 3

COMMON = ["--report-to", "none", "--disable-tqdm", "true", "--logging-steps", "1", "--eval-steps", "1000",
          "--save-steps", "2", "--max-steps", str(STEPS)]
TEXT_BATCH, IMAGE_BATCH, BLOCK = 4, 8, 32  # per device, with 2 processes
TEXT_MODEL = "hidden_size=32,num_attention_heads=2,intermediate_size=64,num_hidden_layers=1"
NO_DROPOUT = TEXT_MODEL + ",hidden_dropout_prob=0.0"
IMAGES = ["--dataset", "digits", "--image-size", "16", "--model-size", "tiny", "--config-overrides",
          "hidden_size=32,num_hidden_layers=1,num_attention_heads=2,intermediate_size=64,decoder_hidden_size=32,"
          "decoder_num_hidden_layers=1,decoder_num_attention_heads=2,decoder_intermediate_size=64"]
HEADS = {
    "simclr": "projection_hidden_dim=64,projection_dim=16",
    "moco": "projection_hidden_dim=64,projection_dim=16,prediction_hidden_dim=64",
    "byol": "projection_hidden_dim=64,projection_dim=16,prediction_hidden_dim=64",
    "simsiam": "projection_hidden_dim=64,projection_dim=16,prediction_hidden_dim=16",
    # Without BatchNorm in the head: on CPU (gloo) each process normalizes over its own half of the batch
    # (SyncBatchNorm needs an accelerator), so only the BN-free head makes 2 processes equal 1.
    "dino": "projection_hidden_dim=64,bottleneck_dim=16,out_dim=64,use_bn_in_head=false",
    "swav": "projection_hidden_dim=64,projection_dim=16,n_prototypes=20",
}
# Views that are the image itself: no crop, flip, jitter, blur or solarization; local crops are resizes.
IDENTITY_VIEWS = ("global_crop_scale=(1.0,1.0),local_crop_scale=(1.0,1.0),hflip_p=0.0,jitter_p=0.0,"
                  "grayscale_p=0.0,blur_p=0.0,local_blur_p=0.0,solarize_p=0.0,n_local_crops=2")
TEXT_OBJECTIVES = ("mlm", "clm", "simcse", "mlm+simcse")
IMAGE_OBJECTIVES = ("mae", "simclr", "moco", "byol", "simsiam", "dino", "swav", "mae+byol")
BATCH_NORM_STATISTICS = ("running_mean", "running_var")


# ---------------------------------------------------------------------------------------------- launching


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def environment() -> dict[str, str]:
    """The test's offline environment, one thread per process, and no CPU flag: hfssl must set it itself."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for name in ("ACCELERATE_USE_CPU", "WORLD_SIZE", "RANK", "LOCAL_RANK"):
        env.pop(name, None)
    return env


def check(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}"


def torchrun(*args, timeout: int = 600) -> None:
    """`torchrun --nproc_per_node 2 ARGS` on CPU; fails the test with the processes' output on error."""
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(WORLD),
               "--master_port", str(free_port()), *map(str, args)]
    check(subprocess.run(command, cwd=REPO, env=environment(), capture_output=True, text=True, timeout=timeout))


def launch_runs(tmp: Path, runs: dict[str, list], processes: int = WORLD) -> Path:
    """Run `runs` ({name: flags}) through the test launcher: one torchrun launch, or in this process for 1."""
    reports = tmp / "reports"
    spec = tmp / "runs.json"
    spec.write_text(json.dumps({name: list(map(str, flags)) for name, flags in runs.items()}), encoding="utf-8")
    if processes == 1:
        try:
            distributed_launcher.main([str(reports), str(spec)])
        finally:
            distributed_launcher.pretrain_module.build_trainer = distributed_launcher.BUILD_TRAINER
    else:
        torchrun(LAUNCHER, reports, spec)
    return reports


def rank_reports(reports: Path, name: str, processes: int = WORLD) -> list[dict]:
    return [torch.load(reports / f"{name}.rank{r}.pt", weights_only=False) for r in range(processes)]


def manifest(run: Path) -> dict:
    return json.loads((run / "run.json").read_text(encoding="utf-8"))


def logged_losses(run: Path) -> list[float]:
    return [entry["loss"] for entry in manifest(run)["pretrain"]["log_history"] if "loss" in entry]


# ---------------------------------------------------------------------------------------------- data


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """600 standard-library docstrings, one per line, in two files; plus a BPE and a WordPiece tokenizer
    trained on them once, so 1- and 2-process runs that are compared share one vocabulary."""
    from hfssl.data.corpora import stdlib_docstrings
    from hfssl.data.tokenizer import train_tokenizer

    folder = tmp_path_factory.mktemp("docstrings")
    texts = [" ".join(t.split()) for t in stdlib_docstrings(600)]
    for i in range(2):
        (folder / f"part{i}.txt").write_text("\n".join(texts[i::2]) + "\n", encoding="utf-8")
    for kind in ("bpe", "wordpiece"):
        train_tokenizer(iter(texts), kind=kind, vocab_size=300, model_max_length=BLOCK).save_pretrained(folder / kind)
    return folder


def text_flags(corpus: Path, objective: str, batch: int, out: Path, tokenizer: str | None = None,
               overrides: str = TEXT_MODEL) -> list:
    flags = ["--objective", objective, "--train-files", corpus / "part0.txt", corpus / "part1.txt",
             "--model-size", "tiny", "--config-overrides", overrides, "--vocab-size", "300",
             "--block-size", BLOCK, "--per-device-train-batch-size", batch, "--output", out, *COMMON]
    return flags + (["--tokenizer", corpus / tokenizer] if tokenizer else [])


def image_flags(objective: str, batch: int, out: Path) -> list:
    method = objective.removeprefix("mae+")
    flags = ["--objective", objective, *IMAGES, "--per-device-train-batch-size", batch, "--output", out, *COMMON]
    if method in HEADS:
        flags += ["--method-options", HEADS[method]]
    if method == "dino":
        flags += ["--view-overrides", IDENTITY_VIEWS]
    elif method == "swav":
        flags += ["--view-overrides", "n_local_crops=2"]
    return flags


# Text runs compared with one process use dropout 0 and a shared tokenizer; mlm and mlm+simcse train their
# own tokenizer (trained on rank 0 and sent to rank 1), with dropout.
TEXT_SETTINGS = {"mlm": {}, "clm": {"tokenizer": "bpe", "overrides": NO_DROPOUT},
                 "simcse": {"tokenizer": "wordpiece", "overrides": NO_DROPOUT}, "mlm+simcse": {}}


def run_name(objective: str) -> str:
    return objective.replace("+", "_")


@pytest.fixture(scope="module")
def text_runs(tmp_path_factory, corpus) -> Path:
    """Every text objective, 2 processes, one torchrun launch."""
    tmp = tmp_path_factory.mktemp("text2")
    runs = {run_name(o): text_flags(corpus, o, TEXT_BATCH, tmp / run_name(o), **TEXT_SETTINGS[o])
            for o in TEXT_OBJECTIVES}
    launch_runs(tmp, runs)
    return tmp


@pytest.fixture(scope="module")
def image_runs(tmp_path_factory) -> Path:
    """Every image objective, 2 processes, one torchrun launch."""
    tmp = tmp_path_factory.mktemp("image2")
    launch_runs(tmp, {run_name(o): image_flags(o, IMAGE_BATCH, tmp / run_name(o)) for o in IMAGE_OBJECTIVES})
    return tmp


@pytest.fixture(scope="module")
def single_process_runs(tmp_path_factory, corpus) -> Path:
    """The runs that must match 2 processes, in 1 process with twice the per-device batch."""
    tmp = tmp_path_factory.mktemp("one")
    launch_runs(tmp, {
        "clm": text_flags(corpus, "clm", 2 * TEXT_BATCH, tmp / "clm", **TEXT_SETTINGS["clm"]),
        "simcse": text_flags(corpus, "simcse", 2 * TEXT_BATCH, tmp / "simcse", **TEXT_SETTINGS["simcse"]),
        "dino": image_flags("dino", 2 * IMAGE_BATCH, tmp / "dino"),
    }, processes=1)
    return tmp


def runs_of(objective: str, text_runs_dir, image_runs_dir) -> Path:
    return text_runs_dir if objective in TEXT_OBJECTIVES else image_runs_dir


# ---------------------------------------------------------------------------------------------- every objective


@pytest.mark.parametrize("objective", TEXT_OBJECTIVES + IMAGE_OBJECTIVES)
def test_two_processes_train_every_objective_into_one_run_directory(objective, request):
    tmp = request.getfixturevalue("text_runs" if objective in TEXT_OBJECTIVES else "image_runs")
    run = tmp / run_name(objective)
    assert sorted(p.name for p in run.iterdir()) == ["checkpoints", "model", "run.json"]  # no stray staging
    m = manifest(run)
    assert m["objective"] == objective and m["pretrain"]["steps"] == STEPS
    if objective in TEXT_OBJECTIVES:
        assert m["pretrain"]["tokens_seen"] == STEPS * WORLD * TEXT_BATCH * BLOCK, m["pretrain"]
    else:
        assert m["pretrain"]["images_seen"] == STEPS * WORLD * IMAGE_BATCH, m["pretrain"]
    checkpoint = run / "checkpoints" / "checkpoint-2"
    assert {f"rng_state_{r}.pth" for r in range(WORLD)} <= {p.name for p in checkpoint.iterdir()}
    backbone = AutoModel.from_pretrained(run / "model")
    assert backbone.config.model_type == m["model"]["config"]["model_type"]


@pytest.mark.parametrize("objective", TEXT_OBJECTIVES + IMAGE_OBJECTIVES)
def test_both_processes_end_with_the_same_model(objective, request):
    tmp = request.getfixturevalue("text_runs" if objective in TEXT_OBJECTIVES else "image_runs")
    first, second = rank_reports(tmp / "reports", run_name(objective))
    assert (first["rank"], second["rank"]) == (0, 1) and first["world_size"] == second["world_size"] == WORLD
    assert first["parameters"].keys() == second["parameters"].keys()
    different = [n for n, p in first["parameters"].items() if not torch.equal(p, second["parameters"][n])]
    assert not different, f"parameters differ between the processes: {different[:5]}"
    buffers = [n for n in first["buffers"] if not n.endswith(BATCH_NORM_STATISTICS)]
    different = [n for n in buffers if not torch.equal(first["buffers"][n], second["buffers"][n])]
    assert not different, f"buffers differ between the processes: {different[:5]}"
    assert first["tokenizer"] == second["tokenizer"]  # one vocabulary (trained on rank 0 when trained)


def test_each_process_masks_its_own_positions(text_runs):
    """MLM masks come from a seeded generator: seeded alike, every process would mask the same positions of
    its i-th block (the labels, -100 where unmasked, show which)."""
    first, second = rank_reports(text_runs / "reports", "mlm")
    assert len(first["train_batches"]) == len(second["train_batches"]) == STEPS
    for mine, theirs in zip(first["train_batches"], second["train_batches"]):
        assert not torch.equal(torch.tensor(mine) != -100, torch.tensor(theirs) != -100)


# ---------------------------------------------------------------------------------------------- 2 processes == 1


def assert_same_parameters(one: dict, two: dict, atol: float = 1e-6) -> None:
    """Equal up to float summation order; a lost all-reduce or gather moves them by 1e-5 or (much) more."""
    assert one.keys() == two.keys()
    worst = max(one, key=lambda n: (one[n] - two[n]).abs().max().item())
    gap = (one[worst] - two[worst]).abs().max().item()
    assert gap <= atol, f"{worst} differs by {gap:.2e} between 1 and 2 processes"


@pytest.mark.parametrize("objective", ["clm", "simcse", "dino"])
def test_two_processes_equal_one_process_with_the_global_batch(objective, text_runs, image_runs,
                                                                single_process_runs):
    """clm (deterministic), simcse (in-batch negatives gathered across processes) and dino (center and EMA
    teacher over the global batch, identity views): per-device batch B on 2 processes is batch 2B on 1."""
    two_processes = runs_of(objective, text_runs, image_runs)
    (one,) = rank_reports(single_process_runs / "reports", objective, processes=1)
    first, second = rank_reports(two_processes / "reports", objective)
    assert one["world_size"] == 1
    assert_same_parameters(one["parameters"], first["parameters"])
    ones, twos = logged_losses(single_process_runs / objective), logged_losses(two_processes / objective)
    assert len(ones) == len(twos) == STEPS
    assert ones == pytest.approx(twos, rel=1e-5)  # the logged loss is the global-batch loss in both
    if objective == "clm":  # the same global batches, rank 0 holding the first half
        assert len(one["train_batches"]) == STEPS
        for step, batch in enumerate(one["train_batches"]):
            assert batch == first["train_batches"][step] + second["train_batches"][step]


# ---------------------------------------------------------------------------------------------- entry points


def test_torchrun_runs_the_pretraining_script(tmp_path, corpus):
    """The documented command, scripts/pretrain.py under torchrun, with no CPU flag given."""
    out = tmp_path / "mlm"
    torchrun(REPO / "scripts" / "pretrain.py", *text_flags(corpus, "mlm", TEXT_BATCH, out))
    m = manifest(out)
    assert m["pretrain"]["tokens_seen"] == STEPS * WORLD * TEXT_BATCH * BLOCK
    assert {"rng_state_0.pth", "rng_state_1.pth"} <= {p.name for p in (out / "checkpoints" / "checkpoint-2").iterdir()}
    assert AutoModel.from_pretrained(out / "model").config.model_type == "hfssl_text"


def test_time_budget_stops_every_process_at_the_same_step(tmp_path, corpus):
    """--max-time-s under torchrun: rank 0's clock decides, both processes stop, save and exit together."""
    out = tmp_path / "mlm"
    torchrun(REPO / "scripts" / "pretrain.py", *text_flags(corpus, "mlm", TEXT_BATCH, out), "--max-steps", "100000",
             "--max-time-s", "3", "--save-steps", "100000")
    stats = manifest(out)["pretrain"]
    assert stats["monitors"]["time_budget"]["stopped"] and 0 < stats["steps"] < 100000
    assert stats["tokens_seen"] == stats["steps"] * WORLD * TEXT_BATCH * BLOCK
    saved = {p.name for p in (out / "checkpoints" / f"checkpoint-{stats['steps']}").iterdir()}
    assert {"rng_state_0.pth", "rng_state_1.pth"} <= saved, "both processes saved the stop's checkpoint"


def test_accelerate_launch_with_the_cpu_config(tmp_path):
    """`accelerate launch --config_file scripts/configs/accelerate-cpu-2proc.yaml scripts/pretrain.py ...`."""
    out = tmp_path / "mae"
    command = [sys.executable, "-m", "accelerate.commands.launch", "--main_process_port", free_port(),
               "--config_file", CONFIGS / "accelerate-cpu-2proc.yaml", REPO / "scripts" / "pretrain.py",
               *image_flags("mae", IMAGE_BATCH, out)]
    check(subprocess.run(list(map(str, command)), cwd=REPO, env=environment(), capture_output=True, text=True,
                         timeout=600))
    assert manifest(out)["pretrain"]["images_seen"] == STEPS * WORLD * IMAGE_BATCH
    assert {"rng_state_0.pth", "rng_state_1.pth"} <= {p.name for p in (out / "checkpoints" / "checkpoint-2").iterdir()}
    assert AutoModel.from_pretrained(out / "model").config.model_type == "hfssl_vision"


# ---------------------------------------------------------------------------------------------- streaming

N_DOCS, VALIDATION_ROWS = 200, 8
TOKEN_OFFSET = 6  # ids below are special tokens; document k is token TOKEN_OFFSET + k


@pytest.fixture(scope="module")
def id_corpus(tmp_path_factory) -> Path:
    """Documents that name themselves: line k repeats the word `dk`, and a word-level tokenizer maps `dk` to
    one id, so any training row tells which document it came from.

    packed.txt: 200 documents of 7 words; with eos and --block-size 8 each packed block is one document.
    ragged.txt: 197 documents of 2 to 6 words (one example per document, padded batches: simcse).
    """
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("ids")
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "<eos>"]
    vocabulary = {token: i for i, token in enumerate(specials)} | {f"d{k}": TOKEN_OFFSET + k for k in range(N_DOCS)}
    backend = Tokenizer(models.WordLevel(vocabulary, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<eos>", bos_token="<eos>", pad_token="[PAD]",
                            unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]",
                            model_max_length=64).save_pretrained(folder / "tokenizer")
    (folder / "packed.txt").write_text("".join(" ".join([f"d{k}"] * 7) + "\n" for k in range(N_DOCS)))
    (folder / "ragged.txt").write_text("".join(" ".join([f"d{k}"] * (2 + k % 5)) + "\n" for k in range(197)))
    return folder


def documents_per_step(report: dict) -> list[list[int]]:
    """The document of every row of every training step of one process."""
    return [[row[0] - TOKEN_OFFSET for row in step] for step in report["train_batches"]]


def test_a_stream_is_read_once_per_pass_across_processes(tmp_path, id_corpus):
    """The first 8 rows of the stream validate; the other 192 (packed) train, 8 per step (4 per process):
    24 steps per pass. Two passes: each sees every document exactly once, in stream order, rank 0 taking the
    first half of each global batch. The ragged stream (189 training documents, variable lengths, padded
    batches) ends its pass with 5 documents for 2 processes: accelerate completes the last batch with the
    first document of the pass (as it does for map-style data), so that one appears twice and none is lost."""
    common = ["--tokenizer", id_corpus / "tokenizer", "--streaming", "--validation-examples", VALIDATION_ROWS,
              "--model-size", "tiny", "--config-overrides", "hidden_size=16,num_attention_heads=2,"
              "intermediate_size=32,num_hidden_layers=1", "--per-device-train-batch-size", 4,
              "--report-to", "none", "--disable-tqdm", "true", "--logging-steps", 100, "--eval-steps", 1000,
              "--save-steps", 1000]
    reports = launch_runs(tmp_path, {
        "packed": ["--objective", "clm", "--train-files", id_corpus / "packed.txt", "--block-size", 8,
                   "--max-steps", 48, "--output", tmp_path / "packed", *common],
        "ragged": ["--objective", "simcse", "--train-files", id_corpus / "ragged.txt", "--block-size", 16,
                   "--max-steps", 24, "--output", tmp_path / "ragged", *common],
    })
    first, second = (documents_per_step(r) for r in rank_reports(reports, "packed"))
    assert len(first) == len(second) == 48
    order = [doc for step in range(48) for doc in first[step] + second[step]]
    training_docs = list(range(VALIDATION_ROWS, N_DOCS))
    assert order == training_docs + training_docs

    first, second = (documents_per_step(r) for r in rank_reports(reports, "ragged"))
    order = [doc for step in range(24) for doc in first[step] + second[step]]
    training_docs = list(range(VALIDATION_ROWS, 197))
    assert order[: len(training_docs)] == training_docs  # no document skipped, in stream order
    assert order[len(training_docs):] == [VALIDATION_ROWS]  # the one repeat: the pass's first document
    assert collections.Counter(len(step) for step in first + second) == {4: 46, 3: 2}


# ---------------------------------------------------------------------------------------------- run directory


def test_fsdp2_sharded_model_is_gathered_and_saved_by_rank_zero(tmp_path):
    """FSDP2 (`fully_shard`) on 2 CPU processes: save_model gathers the shards, rank 0 writes whole weights
    with the hfssl model code (not torch's FSDP module) in config.auto_map; run.json is rank 0's."""
    run, expected = tmp_path / "run", tmp_path / "expected.pt"
    torchrun(FSDP2_SCRIPT, run, expected)
    saved = {p.name for p in (run / "model").iterdir()}
    assert {"model.safetensors", "modeling_hfssl_text.py", "blocks.py"} <= saved
    assert not any(name.startswith("_fsdp") for name in saved), saved
    config = json.loads((run / "model" / "config.json").read_text())
    assert config["auto_map"]["AutoModelForCausalLM"] == "modeling_hfssl_text.HfsslTextForCausalLM"
    loaded = dict(HfsslTextForCausalLM.from_pretrained(run / "model").named_parameters())
    for name, tensor in torch.load(expected).items():
        assert torch.equal(loaded[name].detach(), tensor), name
    assert manifest(run)["rank_that_wrote"] == 0
    assert sorted(p.name for p in run.iterdir()) == ["model", "run.json"]


def test_processes_other_than_rank_zero_write_nothing(tmp_path, monkeypatch):
    """What rank 1 does in a run directory (no process group here: RANK as a launcher exports it)."""
    run_path = tmp_path / "run"
    run_path.mkdir()
    (run_path / "keep.txt").write_text("the main process's")
    monkeypatch.setenv("RANK", "1")
    assert not rundir.is_main_process()
    check_can_start(run_path, overwrite=False, resume=False)  # rank 0 answers "already exists"
    with pytest.raises(RuntimeError):
        with open_run(run_path) as run:
            assert run.update_manifest(stage="x") == {"stage": "x"}
            model = HfsslTextForCausalLM(HfsslTextConfig.from_size("tiny", vocab_size=32))
            assert run.save_model(model) == run.model_dir
            raise RuntimeError("a failure in rank 1")
    assert sorted(p.name for p in run_path.iterdir()) == ["keep.txt"]  # nothing written, nothing removed
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(FileExistsError):
        check_can_start(run_path, overwrite=False, resume=False)


def test_cpu_processes_are_requested_only_when_launched_without_gpus(monkeypatch):
    monkeypatch.delenv("ACCELERATE_USE_CPU", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert use_cpu_processes_without_accelerator() is False and "ACCELERATE_USE_CPU" not in os.environ
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("ACCELERATE_USE_CPU", "False")  # what `accelerate launch` exports without --cpu
    has_gpu = torch.accelerator.is_available() if hasattr(torch, "accelerator") else torch.cuda.is_available()
    assert use_cpu_processes_without_accelerator() is (not has_gpu)
    assert os.environ["ACCELERATE_USE_CPU"] == ("False" if has_gpu else "true")


# ---------------------------------------------------------------------------------------------- accelerate configs


def launch_environment(config: Path) -> tuple[object, dict[str, str]]:
    """What `accelerate launch --config_file CONFIG scripts/pretrain.py` would hand to its processes:
    accelerate's own parsing and validation of the file, and the environment it exports."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env

    args = launch_command_parser().parse_args(["--config_file", str(config), "--main_process_port", "0",
                                               str(REPO / "scripts" / "pretrain.py")])
    args, defaults, _ = _validate_launch_command(args)
    if args.use_deepspeed:
        args.deepspeed_fields_from_accelerate_config = ",".join(defaults.deepspeed_config)
        return args, prepare_deepspeed_cmd_env(args)[1]
    return args, prepare_multi_gpu_env(args)


@pytest.mark.parametrize("name", ["cpu-2proc", "ddp", "fsdp", "deepspeed-zero2", "deepspeed-zero3"])
def test_accelerate_configs_are_valid_for_this_accelerate(name):
    from accelerate.commands.config.config_args import ClusterConfig

    path = CONFIGS / f"accelerate-{name}.yaml"
    config = ClusterConfig.from_yaml_file(str(path))  # unknown top-level keys raise
    args, env = launch_environment(path)
    launcher = {"cpu-2proc": "multi_gpu", "ddp": "multi_gpu", "fsdp": "use_fsdp"}.get(name, "use_deepspeed")
    assert getattr(args, launcher), f"{name} would not start several processes"
    assert args.num_processes == (2 if name == "cpu-2proc" else config.num_processes)
    if name in ("ddp", "fsdp"):
        assert env["ACCELERATE_MIXED_PRECISION"] == "bf16"


def test_fsdp_config_shards_every_hfssl_block_with_fsdp2(monkeypatch):
    """The plugin accelerate builds in each process from the exported environment: FSDP2, full shard,
    auto-wrap by class name `Block`, which names the transformer block of both hfssl backbones."""
    from accelerate.utils import FullyShardedDataParallelPlugin
    from accelerate.utils.dataclasses import get_module_class_from_name

    from hfssl.models import HfsslTextConfig, HfsslTextForMaskedLM, HfsslVisionConfig, HfsslVisionForMaskedImageModeling
    from hfssl.models.blocks import Block

    _, env = launch_environment(CONFIGS / "accelerate-fsdp.yaml")
    for key, value in env.items():
        if key.startswith(("FSDP_", "ACCELERATE_")):
            monkeypatch.setenv(key, value)
    plugin = FullyShardedDataParallelPlugin()
    assert plugin.fsdp_version == 2 and plugin.reshard_after_forward is True
    assert plugin.transformer_cls_names_to_wrap == ["Block"]
    for model in (HfsslTextForMaskedLM(HfsslTextConfig.from_size("tiny", vocab_size=64)),
                  HfsslVisionForMaskedImageModeling(HfsslVisionConfig.from_size("tiny", image_size=16, patch_size=4))):
        assert get_module_class_from_name(model, "Block") is Block


# DeepSpeed fields the HF Trainer fills from TrainingArguments (transformers.integrations.deepspeed).
TRAINER_FILLED = {"train_batch_size", "train_micro_batch_size_per_gpu", "gradient_accumulation_steps",
                  "gradient_clipping", "bf16.enabled", "fp16.enabled", "zero_optimization.reduce_bucket_size",
                  "zero_optimization.stage3_prefetch_bucket_size",
                  "zero_optimization.stage3_param_persistence_threshold"}


@pytest.mark.parametrize("stage", [2, 3])
def test_deepspeed_configs_leave_only_trainer_filled_values_open(stage):
    from accelerate.utils.deepspeed import HfDeepSpeedConfig

    _, env = launch_environment(CONFIGS / f"accelerate-deepspeed-zero{stage}.yaml")
    path = REPO / env["ACCELERATE_DEEPSPEED_CONFIG_FILE"]
    config = HfDeepSpeedConfig(str(path))
    assert config.get_value("zero_optimization.stage") == stage and config.is_zero3() == (stage == 3)

    def auto_keys(section: dict, prefix: str = ""):
        for key, value in section.items():
            if isinstance(value, dict):
                yield from auto_keys(value, f"{prefix}{key}.")
            elif value == "auto":
                yield prefix + key

    assert set(auto_keys(json.loads(path.read_text()))) <= TRAINER_FILLED
    if stage == 3:  # so that a saved model holds whole weights, not this process's partition
        assert config.get_value("zero_optimization.stage3_gather_16bit_weights_on_model_save") is True


@pytest.mark.parametrize("method", ["simclr", "byol"])
def test_batch_norm_is_synchronized_only_across_several_accelerator_processes(method):
    """SimCLR's and BYOL's projection heads hold batch norm: several GPU processes get SyncBatchNorm (global-batch
    statistics, as the papers train), one process or CPU processes (where torch has no SyncBatchNorm) keep it."""
    from types import SimpleNamespace

    from hfssl.models import HfsslVisionConfig, HfsslVisionForContrastiveLearning
    from hfssl.training.pretrain import sync_batch_norm

    def model():
        config = HfsslVisionConfig(image_size=8, patch_size=4, num_channels=1, hidden_size=32, num_hidden_layers=1,
                                   num_attention_heads=2, intermediate_size=64, ssl={"method": method})
        return HfsslVisionForContrastiveLearning(config)

    def kinds(m):
        return collections.Counter(type(layer).__name__ for layer in m.modules() if "BatchNorm" in type(layer).__name__)

    reference = model()
    keys = set(reference.state_dict())
    assert kinds(reference)["BatchNorm1d"] > 0
    for world_size, device in [(1, "cuda"), (2, "cpu")]:
        same = sync_batch_norm(reference, SimpleNamespace(world_size=world_size, device=torch.device(device)))
        assert same is reference and "SyncBatchNorm" not in kinds(same)
    converted = sync_batch_norm(model(), SimpleNamespace(world_size=2, device=torch.device("cuda")))
    assert set(kinds(converted)) == {"SyncBatchNorm"}
    assert set(converted.state_dict()) == keys  # checkpoints load into the plain model unchanged

"""The run directory: the contract between stages.

```
runs/<name>/
  model/        save_pretrained output (config with auto_map, weights, modeling code, tokenizer)
  run.json      manifest; each stage adds its own section
  checkpoints/  Trainer checkpoints (resumable) and TensorBoard logs
  eval/         result JSON and PNG plots
```
Every write is atomic (temporary file or folder, then rename), and a stage that fails leaves the
directory as it was. Under torchrun or accelerate launch only the main process (global rank 0) writes;
the other processes take part in collective steps (gathering sharded weights) and write nothing.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import stat
import struct
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from .distributed import group_world_size, is_main_process

logger = logging.getLogger(__name__)

MANIFEST = "run.json"
CHECKPOINT_NAME = re.compile(r"checkpoint-(\d+)")
# Written by the Trainer's JIT checkpoint (--enable-jit-checkpoint) while it saves, removed when it is done.
JIT_INCOMPLETE_MARKER = "checkpoint-is-incomplete.txt"


def _barrier() -> None:
    """Wait for every process of a running process group (no-op with one process)."""
    if group_world_size() > 1:
        dist.barrier()


def checkpoint_problem(folder: str | os.PathLike) -> str | None:
    """What keeps the Trainer checkpoint `folder` from being resumed, or None when it is complete.

    The Trainer writes a checkpoint's files one after another (weights, optimizer and scheduler, RNG states) and
    `trainer_state.json` last, so a process stopped while saving leaves a folder without it. The weights and the
    optimizer state are also checked for truncation (their size against their own header or directory), without
    reading the tensors. A checkpoint saved with --save-only-model (no optimizer) does not resume either: the
    Trainer would restart the optimizer and the learning-rate schedule."""
    folder = Path(folder)
    if (folder / JIT_INCOMPLETE_MARKER).exists():
        return f"it holds {JIT_INCOMPLETE_MARKER} (the process stopped while saving it)"
    if not (folder / "trainer_state.json").is_file():
        return "it has no trainer_state.json, which the Trainer writes last (the process stopped while saving it)"
    engine_state = any(folder.glob("global_step*")) or any(folder.glob("pytorch_model_fsdp*"))  # DeepSpeed, FSDP
    weights = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("pytorch_model*.bin"))
    if not weights and not engine_state:
        return "it holds no model weights (model.safetensors)"
    for path in weights:
        if path.suffix == ".safetensors" and (problem := safetensors_problem(path)):
            return f"{path.name} is truncated or damaged ({problem})"
    if not (folder / "optimizer.pt").is_file() and not any(folder.glob("optimizer*")) and not engine_state:
        return ("it has no optimizer.pt (saved with --save-only-model, or the process stopped while saving it); "
                "resuming would restart the optimizer and the learning-rate schedule")
    for name in ("optimizer.pt", "scheduler.pt"):
        path = folder / name
        if path.is_file() and not zipfile.is_zipfile(path):
            return f"{name} is truncated or damaged (not a complete torch.save file)"
    return None


def safetensors_problem(path: str | os.PathLike) -> str | None:
    """What is wrong with a .safetensors file's framing (8-byte header length, JSON header, tensor data: a save
    interrupted midway leaves it short), or None. Reads the header only."""
    path = Path(path)
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(8)
        if len(head) < 8:
            return f"{size} bytes, shorter than the header length"
        (length,) = struct.unpack("<Q", head)
        if length > size - 8:
            return f"its header needs {length} bytes, the file has {size - 8} after the length"
        try:
            header = json.loads(f.read(length))
            end = max((entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"), default=0)
        except (ValueError, KeyError, TypeError, IndexError, AttributeError):
            return "its header is not a safetensors header"
    if 8 + length + end > size:
        return f"its tensors need {8 + length + end} bytes, the file has {size}"
    return None


def checkpoint_folders(folder: str | os.PathLike) -> list[Path]:
    """The `checkpoint-N` folders directly inside `folder`, oldest (smallest N) first; [] when it is no folder."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_dir() and CHECKPOINT_NAME.fullmatch(p.name)]
    return sorted(found, key=lambda p: int(p.name.rsplit("-", 1)[1]))


def newest_checkpoint(folder: str | os.PathLike) -> str | None:
    """The newest complete `checkpoint-N` inside `folder` (see `checkpoint_problem`), else the newest at all, or
    None: what to point a user at who wants weights from a folder of checkpoints."""
    found = checkpoint_folders(folder)
    complete = [p for p in found if checkpoint_problem(p) is None]
    return str((complete or found)[-1]) if found else None


class RunDirectory:
    """Paths and atomic manifest updates for one run directory."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    @property
    def model_dir(self) -> Path:
        return self.path / "model"

    @property
    def adapter_dir(self) -> Path:
        return self.path / "adapter"

    def is_adapter_only(self) -> bool:
        """A fine-tuned run with adapter/ (on base/) and no model/: prompt learning, or a method whose merge failed."""
        return not (self.model_dir / "config.json").is_file() and (self.adapter_dir / "adapter_config.json").is_file()

    @property
    def card_dir(self) -> Path:
        """Where the card (README.md) and its plot copies go: model/, or adapter/ in an adapter-only run."""
        return self.adapter_dir if self.is_adapter_only() else self.model_dir

    def no_model_error(self, command: str) -> FileNotFoundError:
        """The error for a stage that needs model/ and finds none, naming what the run holds instead."""
        if self.is_adapter_only():
            finetune = self.read_manifest().get("finetune") or {}
            parent = (finetune.get("parent") or {}).get("path") or "its parent run"
            method = finetune.get("method") or "its method"
            # Prompt-learning adapters never merge; another method ends adapter-only when its merge failed.
            why = (f"{method} learns virtual tokens, which cannot merge into the weights"
                   if method in ("prompt_tuning", "p_tuning", "prefix_tuning")
                   else f"merging the {method} adapter into the weights failed when the run was made; see its log")
            load = ("peft's AutoPeftModelForSequenceClassification.from_pretrained"
                    f"('{self.adapter_dir}')" if finetune.get("task") != "image-classification" else
                    f"peft's PeftModel.from_pretrained(AutoModelForImageClassification.from_pretrained"
                    f"('{self.path / 'base'}'), '{self.adapter_dir}')")
            return FileNotFoundError(
                f"{self.path} is a fine-tuned run with an adapter only (adapter/ on base/, no model/: {why}), and "
                f"`hfssl {command}` loads a model/ folder. Run it on {parent}, or fine-tune with a method that merges "
                f"(e.g. --peft lora) to get model/; the adapter itself loads with {load}."
            )
        return FileNotFoundError(
            f"No model in run directory {self.path}: {self.model_dir / 'config.json'} does not exist. Pass a run "
            f"directory written by `hfssl pretrain` or `hfssl finetune` (one with a model/ folder)."
        )

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / "checkpoints"

    @property
    def eval_dir(self) -> Path:
        return self.path / "eval"

    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST

    def read_manifest(self) -> dict[str, Any]:
        """The manifest, or {} when the run has none yet."""
        if not self.manifest_path.exists():
            return {}
        return json.loads(self.manifest_path.read_text(encoding="utf-8"))

    def update_manifest(self, **sections: Any) -> dict[str, Any]:
        """Set top-level sections of run.json and write it back atomically; returns the new manifest.

        Only the main process writes; the others get the same manifest back without touching the file."""
        manifest = {**self.read_manifest(), **sections}
        if is_main_process():
            write_json_atomic(self.manifest_path, manifest)
        return manifest

    def checkpoints(self) -> list[Path]:
        """The `checkpoint-N` folders, oldest (smallest N) first."""
        return checkpoint_folders(self.checkpoints_dir)

    def resumable_checkpoint(self) -> str | None:
        """The newest complete `checkpoint-N` folder (see `checkpoint_problem`), or None.

        A folder the Trainer was still writing when the process stopped (Ctrl-C, a kill, a full disk) is skipped:
        resuming from it would fail, or would silently restart the optimizer and the learning-rate schedule."""
        return next((str(p) for p in reversed(self.checkpoints()) if checkpoint_problem(p) is None), None)

    def set_aside_incomplete_checkpoints(self) -> None:
        """Rename the checkpoints newer than the last complete one to `incomplete-checkpoint-N`, with a warning:
        a resumed run starts from the complete one, and the Trainer would otherwise save into (and count, for
        --save-total-limit) a half-written folder when it reaches that step again. Nothing is deleted."""
        incomplete = self.incomplete_checkpoints()
        resumed = self.resumable_checkpoint() if incomplete else None  # checked once, not once per folder
        for folder, problem in incomplete.items():
            target = folder.with_name(f"incomplete-{folder.name}")
            if target.exists():
                target = folder.with_name(f"incomplete-{folder.name}-{os.getpid()}")
            os.replace(folder, target)
            logger.warning("%s is not a complete checkpoint (%s); resuming from %s instead. It was renamed to %s; "
                           "delete it when you no longer need it.", folder, problem, resumed, target)

    def incomplete_checkpoints(self) -> dict[Path, str]:
        """The `checkpoint-N` folders newer than the last complete one, each with what is wrong with it."""
        problems = {}
        for folder in reversed(self.checkpoints()):
            problem = checkpoint_problem(folder)
            if problem is None:
                break
            problems[folder] = problem
        return problems

    def save_model(self, model, processor=None, state_dict: dict[str, torch.Tensor] | None = None) -> Path:
        """save_pretrained into model/ atomically: a failed save leaves the previous model folder intact.

        Call it on every process: FSDP2-sharded weights are gathered collectively, then the main process
        writes them; the others write nothing. `state_dict`: the full weights when the caller gathered them
        (e.g. `accelerator.get_state_dict(model_wrapped)`, which also covers DeepSpeed ZeRO-3)."""
        sharded_class = _fsdp2_class(model)
        if sharded_class is not None and state_dict is None:
            state_dict = _full_state_dict(model)
        if not is_main_process():
            return self.model_dir
        staging = make_temp_dir(".model-", self.path)
        try:
            with _as_class(model, sharded_class):
                model.save_pretrained(staging, state_dict=state_dict)
            if processor is not None:
                processor.save_pretrained(staging)
            replace_dir(staging, self.model_dir)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return self.model_dir


def _fsdp2_class(model) -> type | None:
    """For a model sharded by FSDP2 (`fully_shard` turns its class into FSDP<Class>), the class it had
    before; None for an unsharded model."""
    try:
        from torch.distributed.fsdp import FSDPModule
    except ImportError:  # torch < 2.6 has no public FSDP2
        return None
    if not isinstance(model, FSDPModule):
        return None
    return next(c for c in type(model).__mro__ if not issubclass(c, FSDPModule))


def _full_state_dict(model) -> dict[str, torch.Tensor]:
    """The unsharded CPU state dict of an FSDP2 model: a collective call (every process makes it), and
    only rank 0 gets the tensors."""
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_model_state_dict,
    )

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


@contextlib.contextmanager
def _as_class(model, cls: type | None) -> Iterator[None]:
    """Give `model` the class `cls` for a while (no-op for None).

    save_pretrained copies the source module of the model's class as the model code and names the class
    in config.auto_map; for FSDP<Class> that would be torch's FSDP module instead of the hfssl code."""
    if cls is None:
        yield
        return
    sharded, model.__class__ = model.__class__, cls
    try:
        yield
    finally:
        model.__class__ = sharded


def current_umask() -> int:
    """The process's umask (read from /proc where it can be, without changing it; else set and restored)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def make_temp_dir(prefix: str, parent: Path) -> Path:
    """tempfile.mkdtemp, with the permissions mkdir gives (mkdtemp's are owner-only)."""
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    os.chmod(folder, 0o777 & ~current_umask())
    return folder


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to a temporary file beside `path`, then rename it over `path`. The file gets the permissions
    open() would give it: those of the file it replaces, else 0o666 less the umask (mkstemp's are owner-only)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        mode = 0o666 & ~current_umask()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, sort_keys=False, default=str)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def replace_dir(source: Path, target: Path) -> None:
    """Move `source` to `target`, replacing an existing `target` only once the move can succeed."""
    backup = None
    if target.exists():
        backup = target.with_name(f".{target.name}.replaced-{os.getpid()}")
        os.replace(target, backup)
    try:
        os.replace(source, target)
    except BaseException:
        if backup is not None:
            os.replace(backup, target)
        raise
    if backup is not None:
        shutil.rmtree(backup, ignore_errors=True)


def check_can_start(path: str | os.PathLike, overwrite: bool, resume: bool, can_resume: bool = True) -> None:
    """Refuse, before any work is done, a run that would clobber or could not resume.

    `can_resume`: whether the command has --resume, which the message for an existing run then suggests.
    Whether the directory already exists is the main process's question: the others may look after the
    main process has created it."""
    run = RunDirectory(path)
    if overwrite and resume:
        raise ValueError("--overwrite and --resume contradict each other; pass one of them.")
    if run.path.exists() and not run.path.is_dir():
        raise FileExistsError(
            f"--output {run.path} is a file, not a run directory (--overwrite replaces run directories only). "
            "Choose another --output, or move the file away."
        )
    if resume:
        if run.resumable_checkpoint() is None:
            incomplete = run.incomplete_checkpoints()
            if not incomplete:
                raise FileNotFoundError(
                    f"--resume was given but {run.checkpoints_dir} holds no checkpoint-N folder; "
                    "start the run without --resume, or point --output at the run to continue."
                )
            raise FileNotFoundError(
                f"--resume was given but {run.checkpoints_dir} holds no complete checkpoint: "
                + "; ".join(f"{folder.name}: {problem}" for folder, problem in incomplete.items())
                + ". Nothing can be resumed: start the run again with --overwrite (or choose another --output)."
            )
        return
    if is_main_process() and run.path.exists() and any(run.path.iterdir()) and not overwrite:
        options = "--overwrite to replace it, --resume to continue it," if can_resume else "--overwrite to replace it"
        raise FileExistsError(
            f"The run directory {run.path} already exists. Pass {options} or choose another --output."
        )


def _warn_how_to_resume(run: RunDirectory) -> None:
    """Tell a run that stopped where it can go on from: its newest complete checkpoint."""
    last = run.resumable_checkpoint()
    if last is None:
        weights = newest_checkpoint(run.checkpoints_dir)
        logger.warning("The run stopped before it saved a checkpoint that can resume it; %s cannot be resumed: start "
                       "it again with --overwrite%s.", run.path,
                       f", or start a new run from the weights in {weights} with --init-from" if weights else "")
        return
    logger.warning("The run stopped; its last complete checkpoint is %s: continue it with the same command and "
                   "--resume.", last)


@contextlib.contextmanager
def open_run(path: str | os.PathLike, overwrite: bool = False, resume: bool = False,
             can_resume: bool = True) -> Iterator[RunDirectory]:
    """Create (or reopen, with `resume`) a run directory for a training stage (`can_resume`: as for
    `check_can_start`).

    On failure a new run is removed, an overwritten run is restored from its backup, and a resumed run
    keeps its checkpoints. Call `check_can_start` first to fail before loading any data.

    With several processes, every process enters (the Trainer needs them all); the main process creates
    the directory while the others wait for it, the others leave only once the main process has written
    everything, and only the main process cleans up after a failure.
    """
    check_can_start(path, overwrite, resume, can_resume=can_resume)
    run = RunDirectory(path)
    if resume or not is_main_process():
        if resume and is_main_process():
            run.set_aside_incomplete_checkpoints()
        _barrier()  # non-main processes start once the main process has (re)created the directory
        try:
            yield run
        except BaseException:
            if resume and is_main_process():
                _warn_how_to_resume(run)
            raise
        _barrier()
        return
    backup = None
    if run.path.exists():
        backup = run.path.with_name(f".{run.path.name}.previous-{os.getpid()}")
        os.replace(run.path, backup)
    run.path.mkdir(parents=True)
    _barrier()
    try:
        yield run
    except BaseException:
        # A checkpoint the Trainer finished writing (trainer_state.json) is kept even when it cannot resume the run
        # (--save-only-model has no optimizer state): its weights can still start a new run (--init-from).
        if backup is None and any((folder / "trainer_state.json").is_file() for folder in run.checkpoints()):
            # Hours of training are worth more than a clean slate: keep what can be resumed.
            _warn_how_to_resume(run)
            raise
        shutil.rmtree(run.path, ignore_errors=True)
        if backup is not None:
            os.replace(backup, run.path)
            logger.warning("The run failed; %s was restored to its previous contents.", run.path)
        raise
    if backup is not None:
        shutil.rmtree(backup, ignore_errors=True)
    _barrier()

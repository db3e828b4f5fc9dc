"""Test-only: save an FSDP2-sharded hfssl model into a run directory from every process.

    python -m torch.distributed.run --nproc_per_node 2 tests/training/fsdp2_save_script.py RUN_DIR EXPECTED.pt

Real FSDP2 (`torch.distributed.fsdp.fully_shard`) on CPU processes over gloo: a tiny causal LM is sharded per
`Block` and as a whole, takes one AdamW step (so the shards no longer hold their initial values), then every
process enters `open_run`, calls `RunDirectory.save_model` and `update_manifest`, as `pretrain` does. Rank 0
also writes EXPECTED.pt: the full trained parameters, gathered with `DTensor.full_tensor()`.

The HF Trainer cannot run FSDP on CPU processes (accelerate enables FSDP for GPU-like devices only), so this
exercises the run directory's FSDP2 path directly.
"""

from __future__ import annotations

import sys

import torch
import torch.distributed as dist
from torch.distributed.fsdp import fully_shard

from hfssl.models import HfsslTextConfig, HfsslTextForCausalLM
from hfssl.training.rundir import open_run


def main(run_path: str, expected_path: str) -> None:
    dist.init_process_group("gloo")
    torch.manual_seed(0)  # the same initial weights in every process
    config = HfsslTextConfig.from_size("tiny", vocab_size=64, hidden_size=32, num_attention_heads=2,
                                       intermediate_size=64, num_hidden_layers=2, is_causal=True)
    model = HfsslTextForCausalLM(config)
    for block in model.model.layers:
        fully_shard(block)
    fully_shard(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    torch.manual_seed(1 + dist.get_rank())  # each process its own batch
    ids = torch.randint(0, 64, (2, 8))
    model(input_ids=ids, labels=ids).loss.backward()
    optimizer.step()
    expected = {name: p.full_tensor().detach().clone() for name, p in model.named_parameters()}  # collective
    if dist.get_rank() == 0:
        torch.save(expected, expected_path)
    # open_run keeps rank 1 until rank 0 has written everything: tearing gloo down while rank 0 still
    # works can abort rank 1 ("terminate called without an active exception"), and torchrun then stops rank 0.
    with open_run(run_path) as run:
        run.save_model(model)
        run.update_manifest(stage="fsdp2-test", rank_that_wrote=dist.get_rank())
    dist.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:3])

"""Two gloo processes, each holding half the global batch, against the 1-process full batch.

Convention checked (W = 2 processes, each with B of the N = W * B rows):
  * each rank's loss is the mean over its own rows, so mean_r(loss_r) == full-batch loss;
  * each rank's gradient w.r.t. its own inputs == W * (gradient of the full-batch loss w.r.t.
    those rows), because the gathered copies send their gradients back summed over ranks;
    DDP's averaging over W ranks then gives exactly the 1-process parameter gradient.
"""

import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.testing import assert_close

from hfssl.models import losses

WORLD_SIZE = 2
BATCH = 4  # per rank
DIM = 6


def _inputs():
    """Full-batch inputs, identical in every process."""
    g = torch.Generator().manual_seed(0)

    def randn(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    return {
        "z1": randn(WORLD_SIZE * BATCH, DIM),
        "z2": randn(WORLD_SIZE * BATCH, DIM),
        "q": randn(WORLD_SIZE * BATCH, DIM),
        "k": randn(WORLD_SIZE * BATCH, DIM),
        "dino_student": [randn(WORLD_SIZE * BATCH, DIM) for _ in range(3)],
        "dino_teacher": [randn(WORLD_SIZE * BATCH, DIM) for _ in range(2)],
        "dino_student_2": [randn(WORLD_SIZE * BATCH, DIM) for _ in range(3)],
        "dino_teacher_2": [randn(WORLD_SIZE * BATCH, DIM) for _ in range(2)],
        "swav": [randn(WORLD_SIZE * BATCH, DIM) * 0.5 for _ in range(3)],
        "swav_queue": [randn(2, 5, DIM) * 0.5 for _ in range(WORLD_SIZE)],  # one queue per rank
    }


def _leaf(x):
    return x.detach().clone().requires_grad_()


def _run_losses(x, queue):
    """Every loss on the rows in ``x``; returns losses, input gradients and side results."""
    out = {}
    z1, z2 = _leaf(x["z1"]), _leaf(x["z2"])
    out["nt_xent"] = losses.nt_xent_loss(z1, z2, temperature=0.5)
    out["nt_xent"].backward()
    out["nt_xent_grads"] = [z1.grad, z2.grad]

    q, k = _leaf(x["q"]), _leaf(x["k"])  # k keeps its gradient here to test the gather's backward
    out["info_nce"] = losses.info_nce_loss(q, k, temperature=0.2)
    out["info_nce"].backward()
    out["info_nce_grads"] = [q.grad, k.grad]

    dino = losses.DINOLoss(DIM, warmup_teacher_temp=0.04, teacher_temp=0.07, warmup_teacher_temp_steps=4)
    dino = dino.double()
    student = [_leaf(s) for s in x["dino_student"]]
    out["dino"] = dino(student, x["dino_teacher"], step=1)
    student_2 = [_leaf(s) for s in x["dino_student_2"]]
    out["dino_2"] = dino(student_2, x["dino_teacher_2"], step=2)  # uses the synced center
    (out["dino"] + out["dino_2"]).backward()
    out["dino_grads"] = [s.grad for s in student + student_2]
    out["dino_center"] = dino.center.clone()

    out["sinkhorn"] = losses.sinkhorn_knopp(x["swav"][0], epsilon=0.05, n_iters=3)
    scores = [_leaf(s) for s in x["swav"]]
    out["swav"] = losses.swav_loss(scores, crops_for_assign=(0, 1), queue=queue)
    out["swav"].backward()
    out["swav_grads"] = [s.grad for s in scores]

    out["std"] = losses.std_of_l2_normalized(x["z1"])
    return out


def _worker(rank, port, tmp_dir):
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD_SIZE
    )
    try:
        full = _inputs()
        rows = slice(rank * BATCH, (rank + 1) * BATCH)
        local = {
            key: [v[rows] for v in value] if isinstance(value, list) else value[rows]
            for key, value in full.items()
            if key != "swav_queue"
        }
        result = _run_losses(local, queue=full["swav_queue"][rank])
        result["world_size"] = losses.world_size()
        torch.save(result, f"{tmp_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    tmp_dir = tmp_path_factory.mktemp("dist")
    mp.spawn(_worker, args=(_free_port(), str(tmp_dir)), nprocs=WORLD_SIZE, join=True)
    per_rank = [torch.load(tmp_dir / f"rank{r}.pt") for r in range(WORLD_SIZE)]
    full = _inputs()
    # Sinkhorn is equivariant to the order of rows, so one queue made of both ranks' queues is
    # the 1-process equivalent of each rank prepending its own queue.
    reference = _run_losses(full, queue=torch.cat(full["swav_queue"], dim=1))
    return per_rank, reference


def _rows(rank):
    return slice(rank * BATCH, (rank + 1) * BATCH)


def _assert_loss_and_grads(results, name):
    per_rank, reference = results
    assert_close(sum(r[name] for r in per_rank) / WORLD_SIZE, reference[name])
    for rank, r in enumerate(per_rank):
        for local_grad, full_grad in zip(r[f"{name}_grads"], reference[f"{name}_grads"]):
            assert_close(local_grad, WORLD_SIZE * full_grad[_rows(rank)])


def test_processes_see_each_other(results):
    assert all(r["world_size"] == WORLD_SIZE for r in results[0])


def test_nt_xent_matches_full_batch(results):
    _assert_loss_and_grads(results, "nt_xent")


def test_info_nce_matches_full_batch(results):
    _assert_loss_and_grads(results, "info_nce")


def test_dino_matches_full_batch(results):
    per_rank, reference = results
    assert_close(sum(r["dino_2"] for r in per_rank) / WORLD_SIZE, reference["dino_2"])
    _assert_loss_and_grads(results, "dino")
    for r in per_rank:
        assert_close(r["dino_center"], reference["dino_center"])


def test_sinkhorn_codes_match_full_batch(results):
    per_rank, reference = results
    for rank, r in enumerate(per_rank):
        assert_close(r["sinkhorn"], reference["sinkhorn"][_rows(rank)])


def test_swav_with_queue_matches_full_batch(results):
    _assert_loss_and_grads(results, "swav")


def test_std_of_l2_normalized_uses_global_batch(results):
    per_rank, reference = results
    for r in per_rank:
        assert_close(r["std"], reference["std"])

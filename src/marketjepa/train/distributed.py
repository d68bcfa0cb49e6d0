"""DDP through ``torchrun``: environment detection, batch sharding, SIGReg all-reduce.

The same command runs single-process or under ``torchrun --nproc_per_node N``; torchrun
sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``. The
process group uses NCCL on GPU and gloo on CPU.

Equivalence with one process on the concatenated batch: every rank draws the same
shuffled global batch (numpy Generator seeded by (seed, epoch)) and takes one equal,
contiguous shard of it. DDP averages gradients over ranks, which for the mean
prediction loss equals the gradient on the whole batch. SIGReg is a non-linear
function of the empirical characteristic function (ECF) of the whole batch, so its
sums are all-reduced inside the loss with :func:`all_reduce_sum`, whose backward is
the adjoint of a sum across ranks (an all-reduce of the incoming gradients, ``W`` ×
the local gradient since every rank computes the same loss). After DDP's ÷W the
SIGReg gradient is exactly that of the single-process loss.

**Clean exit.** A gloo worker thread that drops the last reference to a tensor created
in Python needs the GIL; if that happens while the interpreter is finalizing, the thread
is torn down mid C++ destructor and the process aborts ("terminate called without an
active exception", SIGABRT) after all its work was written. Constructing DDP keeps the
gloo group and its threads alive after ``destroy_process_group()`` (measured: without
DDP destroy joins them, with DDP they keep running), so a late release can happen. Hence: every collective
here waits until gloo has let go of its tensor (:func:`_release`), teardown is a barrier
then destroy (:func:`cleanup_distributed`), and a distributed rank ends with
:func:`exit_process` — flush, then ``os._exit`` — so it never finalizes with gloo threads
alive. ``tests/train/test_ddp.py`` forces the late release to show the abort and the fix.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from marketjepa.device import resolve_device


@dataclass(frozen=True)
class DistEnv:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup_distributed(device_pref: str = "auto") -> DistEnv:
    """Detect torchrun's environment and join the process group (no-op single-process)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_pref, local_rank)
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend, rank=rank, world_size=world)
    return DistEnv(rank, world, local_rank, device)


def cleanup_distributed(env: DistEnv, ok: bool = True) -> None:
    """Barrier (every rank finished its collectives), then destroy the process group.

    After a failure (``ok=False``) the other ranks may never reach the barrier, so the
    group is destroyed at once; their next collective fails instead of waiting forever.
    """
    if env.distributed and dist.is_initialized():
        if ok:
            dist.barrier()
        dist.destroy_process_group()


def exit_process(code: int = 0) -> None:
    """End a distributed rank now: flush stdio and ``os._exit`` without finalizing.

    Skipping interpreter finalization is what makes the exit safe: gloo threads that DDP
    keeps alive can no longer need the GIL of a finalizing interpreter. Call it only after
    every file is written and closed (``cleanup_distributed`` first).
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # closed or broken pipe: nothing left to save
            pass
    os._exit(code)


def _release(t: torch.Tensor, timeout_s: float = 1.0) -> None:
    """Wait until no gloo work holds ``t`` any more, so Python drops its last reference.

    After a synchronous collective the worker thread may still hold the work (and the
    tensor) for a moment; if Python let go first, that thread would do the final release.
    Gloo (CPU) only: NCCL work may hold tensors until its stream finishes, and waiting
    for that would stall the GPU path.
    """
    if t.device.type != "cpu":
        return
    deadline = time.monotonic() + timeout_s
    while t._use_count() > 1 and time.monotonic() < deadline:
        time.sleep(0.0005)


def shard(batch: np.ndarray, env: DistEnv) -> np.ndarray:
    """This rank's contiguous share of a global batch (equal sizes; see :func:`usable_batch`)."""
    if not env.distributed:
        return batch
    n = batch.size // env.world_size
    return batch[env.rank * n : (env.rank + 1) * n]


def usable_batch(batch_size: int, world_size: int) -> int:
    """Largest global batch ≤ ``batch_size`` that splits into equal per-rank shards."""
    return max(batch_size // world_size, 1) * world_size


class _AllReduceSum(torch.autograd.Function):
    """Sum across ranks; backward all-reduces the gradient (adjoint of the sum)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        y = x.clone()
        dist.all_reduce(y, op=dist.ReduceOp.SUM)
        _release(y)
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        g = grad.clone()
        dist.all_reduce(g, op=dist.ReduceOp.SUM)
        _release(g)
        return g


def all_reduce_sum(x: torch.Tensor) -> torch.Tensor:
    """Differentiable all-reduce (SUM); the ``reduce_fn`` handed to SIGReg under DDP."""
    return _AllReduceSum.apply(x)


def make_reduce_fn(env: DistEnv) -> Callable[[torch.Tensor], torch.Tensor] | None:
    return all_reduce_sum if env.distributed else None


def mean_across_ranks(values: torch.Tensor, env: DistEnv) -> torch.Tensor:
    """Average a tensor of metrics over ranks (no-op single-process)."""
    if not env.distributed:
        return values
    out = values.clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    _release(out)
    return out / env.world_size


def broadcast_flag(flag: bool, env: DistEnv) -> bool:
    """Rank 0's decision (e.g. stop early) on every rank."""
    if not env.distributed:
        return flag
    t = torch.tensor([1 if flag else 0], device=env.device)
    dist.broadcast(t, src=0)
    _release(t)
    return bool(t.item())

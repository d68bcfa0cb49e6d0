"""DDP with 2 gloo processes on CPU equals the single-process run on the whole batch,
and a rank exits cleanly even when a gloo thread releases a tensor at shutdown."""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from helpers.tiny import TINY_MODEL, ar1_features, read_metrics
from marketjepa.config import load_config
from marketjepa.data.windows import WindowDataset, WindowSpec, pretrain_starts
from marketjepa.model.jepa import LeJEPA
from marketjepa.train.distributed import (
    cleanup_distributed,
    exit_process,
    make_reduce_fn,
    mean_across_ranks,
    setup_distributed,
    shard,
    usable_batch,
)
from marketjepa.train.pretrain import train_lejepa

WORLD = 2
STEP = 3
OVERRIDES = [
    *TINY_MODEL,
    "loss.sigreg_on=both",  # pooled and per-token SIGReg both all-reduced
    "train.batch_size=32",
    "train.epochs=2",
    "train.max_steps_per_epoch=2",
    "train.max_val_windows=64",
    "train.device=cpu",
]


def market(n: int = 600, f: int = 3):
    rng = np.random.default_rng(5)
    x = ar1_features(rng, n, f)
    split = np.zeros(n, np.int8)
    split[450:] = 1
    return x, split


def one_step(cfg, x, split, env=None):
    """Loss and gradients of one training step on the first global batch."""
    spec = WindowSpec.from_config(cfg.windows)
    starts = pretrain_starts(split, 0, spec, cfg.windows.stride)[: cfg.train.batch_size]
    torch.manual_seed(0)
    model = LeJEPA(x.shape[1], spec, cfg.model, cfg.loss)
    net, reduce_fn, local = model, None, starts
    if env is not None:
        net = torch.nn.parallel.DistributedDataParallel(model)
        reduce_fn, local = make_reduce_fn(env), shard(starts, env)
    ctx, tgt = WindowDataset(x, spec).batch(local)
    out = net(ctx, tgt, step=STEP, seed=0, reduce_fn=reduce_fn)
    out["loss"].backward()
    values = torch.stack([out["loss"], out["pred"], out["sigreg"]]).detach()
    if env is not None:
        values = mean_across_ranks(values, env)
    grads = {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}
    return values, grads


def _rank_env(rank: int, port: int) -> None:
    """The torchrun environment of one rank of a local WORLD-process gloo group."""
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(WORLD),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    torch.set_num_threads(1)


def _worker(rank: int, port: int, out_dir: str, x, split) -> None:
    _rank_env(rank, port)
    cfg = load_config("tiny", overrides=OVERRIDES)
    env = setup_distributed("cpu")
    values, grads = one_step(cfg, x, split, env)
    if rank == 0:
        torch.save({"values": values, "grads": grads}, os.path.join(out_dir, "step.pt"))
    train_lejepa(cfg, x, split, os.path.join(out_dir, "ddp"))
    cleanup_distributed(env)
    exit_process(0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_usable_batch_and_shards_cover_the_global_batch():
    from marketjepa.train.distributed import DistEnv

    assert usable_batch(33, 2) == 32 and usable_batch(3, 4) == 4
    batch = np.arange(32)
    envs = [DistEnv(r, 4, r, torch.device("cpu")) for r in range(4)]
    np.testing.assert_array_equal(np.concatenate([shard(batch, e) for e in envs]), batch)


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed missing")
def test_two_gloo_ranks_match_single_process(tmp_path):
    x, split = market()
    cfg = load_config("tiny", overrides=OVERRIDES)
    mp.spawn(_worker, args=(_free_port(), str(tmp_path), x, split), nprocs=WORLD, join=True)

    values, grads = one_step(cfg, x, split)
    ddp = torch.load(tmp_path / "step.pt", weights_only=True)
    torch.testing.assert_close(ddp["values"], values, rtol=1e-5, atol=1e-5)
    assert ddp["grads"].keys() == grads.keys()
    for k in grads:
        torch.testing.assert_close(ddp["grads"][k], grads[k], rtol=1e-4, atol=1e-5, msg=k)

    train_lejepa(cfg, x, split, tmp_path / "single")
    single = read_metrics(tmp_path / "single" / "metrics.csv")
    multi = read_metrics(tmp_path / "ddp" / "metrics.csv")
    assert len(single) == len(multi) == 2
    for a, b in zip(single, multi, strict=True):
        for c in ("train_loss", "train_pred", "train_sigreg", "val_loss", "probe_rankme"):
            assert float(b[c]) == pytest.approx(float(a[c]), rel=1e-4, abs=1e-5), c


# ------------------------------------------------------------- exit under a late release
#
# The abort this guards against: DDP keeps the gloo group's worker threads alive after
# destroy_process_group(); a worker that drops the last reference to a Python-created
# tensor needs the GIL, and if the interpreter is finalizing by then the thread is torn
# down inside a C++ destructor → "terminate called without an active exception", SIGABRT.
# Normally the window is microseconds (1-4% of runs). The race is forced here: after
# teardown, each rank starts one more all-reduce on the still-alive group; on rank 1 its
# completion runs a Python callback on the gloo thread (needs the GIL, like that release),
# and rank 0 joins it only once rank 1 is finalizing (a sentinel collected during module
# teardown signals, then waits), has ended, or after 60 s. So rank 1's gloo thread wants
# the GIL while rank 1 finalizes — or never, if rank 1 ended without finalizing.
# MARKETJEPA_TEST_PLAIN_EXIT=1 makes the ranks return instead of calling exit_process (the
# old teardown): the test then fails, rank SIGABRT.


class _SignalWhenFinalizing:
    """Collected during interpreter finalization: signal rank 0, then give gloo time."""

    def __init__(self, flag: Path) -> None:
        self.flag = flag

    def __del__(self) -> None:
        self.flag.touch()
        time.sleep(10.0)  # the gloo thread's callback lands here (GIL free) and aborts


def _finished(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return True
    return state in ("Z", "X")


def _late_release_worker(rank: int, port: int, tmp: str, clean_exit: bool) -> None:
    _rank_env(rank, port)
    env = setup_distributed("cpu")
    net = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(3, 2))
    net(torch.ones(4, 3)).sum().backward()
    mean_across_ranks(torch.ones(2), env)
    group = torch.distributed.group.WORLD
    cleanup_distributed(env)  # barrier + destroy; DDP keeps `group` and its threads alive

    flag, pid_file = Path(tmp) / "finalizing", Path(tmp) / "rank1.pid"
    if rank == 1:
        pid_file.write_text(str(os.getpid()))
        sys.modules[__name__]._sentinel = _SignalWhenFinalizing(flag)
        # Completing this work makes its gloo thread take the GIL (the Python callback, as
        # a Python-made tensor's last release does), while rank 1 finalizes.
        group.allreduce([torch.ones(4)]).get_future().then(lambda fut: None)
    else:
        deadline = time.monotonic() + 60
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.001)
        pid = int(pid_file.read_text())
        while not flag.exists() and not _finished(pid) and time.monotonic() < deadline:
            time.sleep(0.0005)
        group.allreduce([torch.ones(4)])
        while not _finished(pid) and time.monotonic() < deadline:
            time.sleep(0.01)  # stay connected: rank 1's work completes, no peer error
    if clean_exit:
        exit_process(0)


def _spawn_late_release(tmp_path, clean_exit: bool) -> None:
    mp.spawn(
        _late_release_worker,
        args=(_free_port(), str(tmp_path), clean_exit),
        nprocs=WORLD,
        join=True,
    )


# /proc tells rank 0 that rank 1 ended.
needs_forced_race = pytest.mark.skipif(
    not torch.distributed.is_available() or sys.platform != "linux",
    reason="needs torch.distributed and Linux /proc",
)


@needs_forced_race
def test_rank_exit_survives_a_late_gloo_release(tmp_path):
    """With exit_process both ranks exit 0; with a plain return (the old teardown,
    MARKETJEPA_TEST_PLAIN_EXIT=1) a rank dies with SIGABRT."""
    plain = os.environ.get("MARKETJEPA_TEST_PLAIN_EXIT") == "1"
    _spawn_late_release(tmp_path, clean_exit=not plain)  # raises if a rank exits non-zero

"""DDP with 2 gloo processes on CPU equals the single-process run on the whole batch."""

from __future__ import annotations

import os
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from helpers.tiny import TINY_MODEL, ar1_features, read_metrics
from marketjepa.config import load_config
from marketjepa.data.windows import WindowDataset, WindowSpec, pretrain_starts
from marketjepa.model.jepa import LeJEPA
from marketjepa.train.distributed import (
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


def _worker(rank: int, port: int, out_dir: str, x, split) -> None:
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(WORLD),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    torch.set_num_threads(1)
    cfg = load_config("tiny", overrides=OVERRIDES)
    env = setup_distributed("cpu")
    values, grads = one_step(cfg, x, split, env)
    if rank == 0:
        torch.save({"values": values, "grads": grads}, os.path.join(out_dir, "step.pt"))
    train_lejepa(cfg, x, split, os.path.join(out_dir, "ddp"))
    torch.distributed.destroy_process_group()


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

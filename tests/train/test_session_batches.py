"""Session batch layout (``train.anchors_per_session``): same-day groups, k = 1 unchanged."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers.tiny import TINY_MODEL
from marketjepa.config import load_config
from marketjepa.data.windows import WindowDataset, WindowSpec
from marketjepa.errors import DataValidationError, MarketJepaError
from marketjepa.train.batches import BatchSampler, plan_windows
from marketjepa.train.distributed import DistEnv

CPU = torch.device("cpu")
ONE = DistEnv(0, 1, 0, CPU)


def _setup(k: int, batch: int = 16, n_days: int = 12, day_len: int = 50):
    cfg = load_config(
        "tiny",
        overrides=[
            *TINY_MODEL,
            f"train.batch_size={batch}",
            f"train.anchors_per_session={k}",
            "train.device=cpu",
        ],
    )
    spec = WindowSpec.from_config(cfg.windows)
    n = n_days * day_len
    session = np.repeat(np.arange(n_days), day_len)
    split = np.where(session < n_days - 3, 0, 1).astype(np.int8)
    x = np.arange(n * 2, dtype=np.float32).reshape(n, 2)  # row index = feature[0] / 2
    return cfg, spec, split, session, WindowDataset(x, spec, CPU)


def test_every_group_of_k_shares_its_anchor_session():
    k = 4
    cfg, spec, split, session, data = _setup(k)
    plan = plan_windows(cfg, split, spec, ONE, session)
    days = session[spec.anchor(plan.train_starts)]
    per_day = np.unique(days, return_counts=True)[1]
    assert plan.steps_per_epoch == int((per_day // k).sum()) * k // 16
    sampler = BatchSampler(data, plan, ONE, 7, gap=False, session=session)
    order = sampler.epoch_order(0)
    assert order.size == int((per_day // k).sum()) * k
    assert np.unique(order).size == order.size and np.isin(order, plan.train_starts).all()
    groups = session[spec.anchor(order)].reshape(-1, k)
    assert (groups == groups[:, :1]).all()
    # several days in a batch, drawn in a seeded order that changes with the epoch
    assert np.unique(groups[: 16 // k, 0]).size > 1
    np.testing.assert_array_equal(order, sampler.epoch_order(0))
    assert not np.array_equal(order, sampler.epoch_order(1))
    b = sampler.batch(order, 1)
    rows = b.context[:, -1, 0].numpy() / 2  # anchor rows of the batch
    np.testing.assert_array_equal(rows, spec.anchor(order[16:32]))
    np.testing.assert_array_equal(b.session.numpy(), session[rows.astype(np.int64)])


def test_one_anchor_per_session_is_todays_order_bit_for_bit():
    cfg, spec, split, session, data = _setup(1)
    plan = plan_windows(cfg, split, spec, ONE, session)
    before = plan_windows(cfg, split, spec, ONE)
    np.testing.assert_array_equal(plan.train_starts, before.train_starts)
    assert plan.steps_per_epoch == before.steps_per_epoch and plan.train_sessions is None
    sampler = BatchSampler(data, plan, ONE, 7, gap=False)
    rng = np.random.default_rng([7, 3])
    want = plan.train_starts[rng.permutation(plan.train_starts.size)]
    np.testing.assert_array_equal(sampler.epoch_order(3), want)
    assert sampler.batch(sampler.epoch_order(3), 0).session is None


def test_ranks_get_whole_groups():
    k = 4
    cfg, spec, split, session, data = _setup(k)
    env = [DistEnv(r, 2, r, CPU) for r in (0, 1)]
    plan = plan_windows(cfg, split, spec, env[0], session)
    ranks = [BatchSampler(data, plan, e, 7, gap=False, session=session) for e in env]
    order = ranks[0].epoch_order(0)
    for r in ranks:
        ids = r.batch(order, 2).session.numpy().reshape(-1, k)
        assert ids.shape == (2, k) and (ids == ids[:, :1]).all()


def test_layout_errors_name_the_problem():
    cfg, spec, split, session, _ = _setup(4)
    with pytest.raises(MarketJepaError, match="trading-day index"):
        plan_windows(cfg, split, spec, ONE)
    cfg8, *_ = _setup(8, batch=8)
    with pytest.raises(DataValidationError, match="multiple of 8"):
        plan_windows(cfg8, split, spec, DistEnv(0, 2, 0, CPU), session)
    # days too short for one whole batch of groups
    cfg_big, spec_big, split_s, session_s, _ = _setup(8, batch=64, n_days=5, day_len=40)
    with pytest.raises(DataValidationError, match="whole groups of 8"):
        plan_windows(cfg_big, split_s, spec_big, ONE, session_s)

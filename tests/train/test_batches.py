"""Pretraining window plan and batches: counts, errors, per-epoch order, rank shards."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers.tiny import TINY_MODEL
from marketjepa.config import load_config
from marketjepa.data.windows import WindowDataset, WindowSpec
from marketjepa.errors import DataValidationError
from marketjepa.train.batches import BatchSampler, plan_windows
from marketjepa.train.distributed import DistEnv

CPU = torch.device("cpu")


def _setup(n: int = 600, batch: int = 16, steps: int = 0):
    cfg = load_config(
        "tiny",
        overrides=[
            *TINY_MODEL,
            f"train.batch_size={batch}",
            f"train.max_steps_per_epoch={steps}",
            "train.device=cpu",
        ],
    )
    spec = WindowSpec.from_config(cfg.windows)
    split = np.zeros(n, np.int64)
    split[int(0.7 * n) :] = 1
    x = np.arange(n * 2, dtype=np.float32).reshape(n, 2)
    return cfg, spec, split, WindowDataset(x, spec, CPU)


def test_plan_counts_steps_and_caps_them():
    cfg, spec, split, _ = _setup()
    plan = plan_windows(cfg, split, spec, DistEnv(0, 1, 0, CPU))
    assert plan.global_batch == 16
    assert plan.steps_per_epoch == plan.train_starts.size // 16
    assert plan.total_steps == cfg.train.epochs * plan.steps_per_epoch
    assert plan.val_starts.size >= 2
    capped = plan_windows(_setup(steps=3)[0], split, spec, DistEnv(0, 1, 0, CPU))
    assert capped.steps_per_epoch == 3


def test_plan_without_validation_windows_names_the_window_length():
    cfg, spec, split, _ = _setup()
    with pytest.raises(DataValidationError, match=f"only 0 validation windows.*{spec.total_len}"):
        plan_windows(cfg, np.zeros_like(split), spec, DistEnv(0, 1, 0, CPU))


def test_batches_follow_the_seeded_epoch_order_and_ranks_split_them():
    cfg, spec, split, data = _setup()
    plan = plan_windows(cfg, split, spec, DistEnv(0, 2, 0, CPU))
    ranks = [BatchSampler(data, plan, DistEnv(r, 2, r, CPU), 7, gap=False) for r in (0, 1)]
    order = ranks[0].epoch_order(1)
    expected = plan.train_starts[np.random.default_rng([7, 1]).permutation(plan.train_starts.size)]
    np.testing.assert_array_equal(order, expected)
    assert not np.array_equal(order, ranks[0].epoch_order(2))
    # Rank shards of step i are the halves of global batch i (row index = feature[0] / 2).
    starts = [ranks[r].batch(order, 2).context[:, 0, 0].numpy() / 2 for r in (0, 1)]
    np.testing.assert_array_equal(np.concatenate(starts), order[2 * 16 : 3 * 16])
    b = ranks[0].batch(order, 0)
    assert b.gap is None and b.future is None
    assert b.target.shape == (8, spec.target_len, 2)

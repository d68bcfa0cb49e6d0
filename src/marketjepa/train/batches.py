"""Pretraining windows and batches: which windows train and validate, and the per-step batch.

:func:`plan_windows` picks the training and validation window starts and the step count;
:class:`BatchSampler` turns a step of an epoch into this rank's :class:`Batch` (context,
target, and the gap bars / future means the loss options need). The window order of
epoch ``e`` is a permutation from ``numpy.random.default_rng([seed, e])``, so a resumed
run sees the same batches as an uninterrupted one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from marketjepa.config import Config
from marketjepa.data.windows import WindowDataset, WindowSpec, even_subsample, pretrain_starts
from marketjepa.errors import DataValidationError, MarketJepaError
from marketjepa.model.future_summary import FutureMeans
from marketjepa.train.distributed import DistEnv, shard, usable_batch


@dataclass(frozen=True)
class Batch:
    """One step's inputs to :class:`~marketjepa.model.jepa.LeJEPA`."""

    context: torch.Tensor
    target: torch.Tensor
    gap: torch.Tensor | None = None
    future: tuple[torch.Tensor, torch.Tensor] | None = None


@dataclass(frozen=True)
class WindowPlan:
    """Training/validation window starts and the step schedule they allow."""

    train_starts: np.ndarray
    val_starts: np.ndarray
    global_batch: int
    steps_per_epoch: int
    total_steps: int


def needs_gap(cfg: Config) -> bool:
    """The full-sequence target path encodes the gap bars too."""
    return cfg.loss.target_path == "sequence" and cfg.windows.gap_patches > 0


def plan_windows(cfg: Config, split: np.ndarray, spec: WindowSpec, env: DistEnv) -> WindowPlan:
    """Window starts of the train (0) and val (1) rows and the steps per epoch."""
    tc = cfg.train
    train_starts = pretrain_starts(split, 0, spec, cfg.windows.stride)
    val_starts = even_subsample(
        pretrain_starts(split, 1, spec, cfg.windows.stride), tc.max_val_windows
    )
    for name, s in (("training", train_starts), ("validation", val_starts)):
        if s.size < 2:
            raise DataValidationError(
                f"only {s.size} {name} windows (at least 2 needed): each needs "
                f"{spec.total_len} consecutive {name} rows (context+gap+target = "
                f"{spec.context_patches}+{spec.gap_patches}+{spec.target_patches} patches of "
                f"{spec.patch_len})",
                hint="use more data or smaller windows; `marketjepa inspect-data` with the "
                "same --preset/--set says what fits",
            )
    global_batch = usable_batch(min(tc.batch_size, train_starts.size), env.world_size)
    steps_per_epoch = train_starts.size // global_batch
    if tc.max_steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, tc.max_steps_per_epoch)
    return WindowPlan(
        train_starts, val_starts, global_batch, steps_per_epoch, tc.epochs * steps_per_epoch
    )


def feature_columns(wanted: list[str], names: list[str] | None) -> list[int] | None:
    """Column indices of ``loss.future_mean_features`` (``None`` = all features)."""
    if not wanted:
        return None
    missing = [w for w in wanted if names is None or w not in names]
    if missing:
        raise MarketJepaError(
            f"loss.future_mean_features: unknown feature(s) {missing}; the features are "
            f"{names if names is not None else '(no feature names given)'}"
        )
    assert names is not None  # every name was found
    return [names.index(w) for w in wanted]


def build_future_means(
    cfg: Config,
    features: np.ndarray,
    split: np.ndarray,
    session: np.ndarray | None,
    feature_names: list[str] | None,
    device: torch.device,
) -> FutureMeans | None:
    """The auxiliary future-mean targets (``None`` unless ``loss.aux_future_mean`` > 0)."""
    if cfg.loss.aux_future_mean <= 0:
        return None
    if session is None or np.shape(session) != split.shape:
        raise MarketJepaError(
            "loss.aux_future_mean needs the trading-day index of every row (session [N]) "
            "to mask future spans that cross the close"
        )
    return FutureMeans(
        features,
        session,
        split,
        cfg.loss.future_mean_spans,
        device,
        feature_columns(cfg.loss.future_mean_features, feature_names),
        cfg.loss.future_mean_standardize,
    )


class BatchSampler:
    """This rank's batch of every step, gathered into reused buffers.

    Equal shards every step, and the buffers avoid page faults per batch on CPU.
    """

    def __init__(
        self,
        data: WindowDataset,
        plan: WindowPlan,
        env: DistEnv,
        seed: int,
        gap: bool,
        future_means: FutureMeans | None = None,
    ) -> None:
        self.data, self.plan, self.env, self.seed = data, plan, env, seed
        self.future_means = future_means
        spec, n_feat, device = data.spec, data.n_features, data.device
        local = plan.global_batch // env.world_size
        self.ctx_buf = torch.empty(local, spec.context_len, n_feat, device=device)
        self.tgt_buf = torch.empty(local, spec.target_len, n_feat, device=device)
        self.gap_buf = torch.empty(local, spec.gap_len, n_feat, device=device) if gap else None

    def epoch_order(self, epoch: int) -> np.ndarray:
        """The training window starts in epoch ``epoch``'s shuffled order."""
        starts = self.plan.train_starts
        return starts[np.random.default_rng([self.seed, epoch]).permutation(starts.size)]

    def batch(self, order: np.ndarray, i: int) -> Batch:
        """This rank's shard of the ``i``-th global batch of ``order``."""
        gb = self.plan.global_batch
        local = shard(order[i * gb : (i + 1) * gb], self.env)
        data = self.data
        return Batch(
            data.context(local, out=self.ctx_buf),
            data.target(local, out=self.tgt_buf),
            data.gap(local, out=self.gap_buf) if self.gap_buf is not None else None,
            self.future_means(data.spec.anchor(local)) if self.future_means is not None else None,
        )

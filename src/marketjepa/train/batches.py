"""Pretraining windows and batches: which windows train and validate, and the per-step batch.

:func:`plan_windows` picks the training and validation window starts and the step count;
:class:`BatchSampler` turns a step of an epoch into this rank's :class:`Batch` (context,
target, and the gap bars / future means / sessions the loss options need). The window
order of epoch ``e`` is a permutation from ``numpy.random.default_rng([seed, e])``, so a
resumed run sees the same batches as an uninterrupted one.

Session layout (``train.anchors_per_session`` = k > 1): the epoch order is built from
groups of k training windows whose anchors lie in the same trading day (each day's
windows shuffled and cut into groups, the remainder dropped, the groups shuffled), so
every batch of B windows is B/k days × k anchors and the same-session contrast
(``model/session_contrast.py``) has negatives from the anchor's own day.
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
    # Trading-day id of each window's anchor (when the sampler was given sessions).
    session: torch.Tensor | None = None


@dataclass(frozen=True)
class WindowPlan:
    """Training/validation window starts and the step schedule they allow."""

    train_starts: np.ndarray
    val_starts: np.ndarray
    global_batch: int
    steps_per_epoch: int
    total_steps: int
    # Windows per same-day group and the anchor day of every training window (k > 1 only).
    anchors_per_session: int = 1
    train_sessions: np.ndarray | None = None


def needs_gap(cfg: Config) -> bool:
    """The full-sequence target path encodes the gap bars too."""
    return cfg.loss.target_path == "sequence" and cfg.windows.gap_patches > 0


def session_groups(sessions: np.ndarray, k: int) -> int:
    """Number of whole groups of ``k`` windows that share a session."""
    return int((np.unique(sessions, return_counts=True)[1] // k).sum())


def plan_windows(
    cfg: Config,
    split: np.ndarray,
    spec: WindowSpec,
    env: DistEnv,
    session: np.ndarray | None = None,
) -> WindowPlan:
    """Window starts of the train (0) and val (1) rows and the steps per epoch.

    ``session [N]`` (trading-day index of every row) is needed by
    ``train.anchors_per_session`` > 1; an epoch then holds only whole same-day groups.
    """
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
    n_usable, train_sessions = train_starts.size, None
    if (k := tc.anchors_per_session) > 1:
        train_sessions = anchor_sessions(session, split, spec.anchor(train_starts))
        n_usable = k * session_groups(train_sessions, k)
        if (global_batch // env.world_size) % k or n_usable < global_batch:
            raise DataValidationError(
                f"train.anchors_per_session={k}: each rank's batch "
                f"({global_batch // env.world_size} windows) must be a multiple of {k}, and "
                f"the training days hold {n_usable} windows in whole groups of {k} (at "
                f"least one batch of {global_batch} needed)",
                hint="lower train.anchors_per_session or windows.stride, or choose a "
                "batch size that is a multiple of it on every rank",
            )
    steps_per_epoch = n_usable // global_batch
    if tc.max_steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, tc.max_steps_per_epoch)
    return WindowPlan(
        train_starts,
        val_starts,
        global_batch,
        steps_per_epoch,
        tc.epochs * steps_per_epoch,
        tc.anchors_per_session,
        train_sessions,
    )


def anchor_sessions(
    session: np.ndarray | None, split: np.ndarray, anchors: np.ndarray
) -> np.ndarray:
    """Trading-day id of each anchor row; a clear error without a row-aligned ``session``."""
    if session is None or np.shape(session) != np.shape(split):
        raise MarketJepaError(
            "train.anchors_per_session > 1 and loss.aux_session_contrast need the "
            f"trading-day index of every row (session [{np.shape(split)[0]}]), got "
            f"{'none' if session is None else np.shape(session)}"
        )
    return np.asarray(session)[anchors]


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
        session: np.ndarray | None = None,
    ) -> None:
        """``session [N]`` (trading-day index of every row): batches then carry their
        anchors' days (``Batch.session``), which the same-session contrast needs."""
        self.data, self.plan, self.env, self.seed = data, plan, env, seed
        self.future_means = future_means
        self.session = None if session is None else np.asarray(session)
        spec, n_feat, device = data.spec, data.n_features, data.device
        local = plan.global_batch // env.world_size
        self.ctx_buf = torch.empty(local, spec.context_len, n_feat, device=device)
        self.tgt_buf = torch.empty(local, spec.target_len, n_feat, device=device)
        self.gap_buf = torch.empty(local, spec.gap_len, n_feat, device=device) if gap else None

    def epoch_order(self, epoch: int) -> np.ndarray:
        """The training window starts in epoch ``epoch``'s shuffled order."""
        starts = self.plan.train_starts
        rng = np.random.default_rng([self.seed, epoch])
        perm = rng.permutation(starts.size)
        days, k = self.plan.train_sessions, self.plan.anchors_per_session
        if days is None or k == 1:
            return starts[perm]  # today's order, bit for bit
        # Each day's windows in random order (a stable sort of the permutation by day),
        # the first k·⌊n_day/k⌋ of them cut into groups of k, the groups shuffled.
        by_day = perm[np.argsort(days[perm], kind="stable")]
        day_sorted = days[by_day]
        first = np.searchsorted(day_sorted, day_sorted, side="left")
        rank = np.arange(by_day.size) - first
        n_day = np.searchsorted(day_sorted, day_sorted, side="right") - first
        groups = by_day[rank < n_day // k * k].reshape(-1, k)
        return starts[groups[rng.permutation(groups.shape[0])].ravel()]

    def batch(self, order: np.ndarray, i: int) -> Batch:
        """This rank's shard of the ``i``-th global batch of ``order``."""
        gb = self.plan.global_batch
        local = shard(order[i * gb : (i + 1) * gb], self.env)
        data = self.data
        anchors = data.spec.anchor(local)
        return Batch(
            data.context(local, out=self.ctx_buf),
            data.target(local, out=self.tgt_buf),
            data.gap(local, out=self.gap_buf) if self.gap_buf is not None else None,
            self.future_means(anchors) if self.future_means is not None else None,
            session_ids(self.session, anchors, data.device),
        )


def session_ids(
    session: np.ndarray | None, anchors: np.ndarray, device: torch.device
) -> torch.Tensor | None:
    """The anchors' trading-day ids as a tensor on ``device`` (``None`` without sessions)."""
    if session is None:
        return None
    return torch.as_tensor(session[anchors].astype(np.int64), device=device)

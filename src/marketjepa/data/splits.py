"""Chronological splits by trading day with whole-day embargoes (DESIGN §2.3).

Day ids: 0 train, 1 val, 2 test, −1 embargo (or, in a walk-forward fold, "not used").
With ``D`` days and ``e = split.embargo_days``, the ``D − e·(boundaries)`` usable days are
cut in order: ``round(train·U)`` train, ``round(val·U)`` val (all the rest when
``split.test == 0``), the rest test, with ``e`` embargo days at each boundary. Because an
embargo is whole days and labels never cross the close, no label spans two splits; windows
are kept inside one split by :mod:`marketjepa.data.windows`. The seed's 984 days at 80/20
with no embargo give 787 / 197.
"""

from __future__ import annotations

import numpy as np

from marketjepa.config import SplitConfig
from marketjepa.constants import EMBARGO, SPLIT_NAMES, TEST, TRAIN, VAL  # noqa: F401  (re-exported)
from marketjepa.errors import DataValidationError, MarketJepaError


def split_counts(n_days: int, cfg: SplitConfig) -> dict[str, int]:
    """Days per split (train, val, test, embargo) for ``n_days`` days; may hold zeros."""
    e = cfg.embargo_days
    has_test = cfg.test > 0
    usable = max(n_days - e * (2 if has_test else 1), 0)
    n_train = int(round(cfg.train * usable))
    n_val = int(round(cfg.val * usable)) if has_test else usable - n_train
    n_test = usable - n_train - n_val
    return {
        "train": n_train,
        "val": n_val,
        "test": n_test,
        "embargo": min(n_days, e * (2 if has_test else 1)),
    }


def short_splits(n_days: int, cfg: SplitConfig) -> list[str]:
    """Names of the splits that get no day with ``n_days`` days (empty when it fits)."""
    c = split_counts(n_days, cfg)
    need = ["train", "val", "test"] if cfg.test > 0 else ["train", "val"]
    usable = c["train"] + c["val"] + c["test"]
    if usable < 2:
        return need
    return [s for s in need if c[s] < 1]


def min_days(cfg: SplitConfig, limit: int = 100_000) -> int:
    """The fewest trading days that give every split at least one day."""
    for n in range(1, limit):
        if not short_splits(n, cfg):
            return n
    return limit


def day_splits(n_days: int, cfg: SplitConfig) -> np.ndarray:
    """int8 split id per trading day (chronological order)."""
    e = cfg.embargo_days
    has_test = cfg.test > 0
    short = short_splits(n_days, cfg)
    if short:
        c = split_counts(n_days, cfg)
        got = ", ".join(f"{k} {c[k]}" for k in ("train", "val", "test") if k != "test" or has_test)
        raise DataValidationError(
            f"{n_days} trading days are too few for split train={cfg.train} val={cfg.val} "
            f"test={cfg.test} with embargo_days={e}: {' and '.join(short)} would get no day "
            f"({got}, embargo {c['embargo']}); at least {min_days(cfg)} days are needed",
            hint="use a longer date range (data.start/data.end), a smaller split.embargo_days, "
            "or other split fractions; `marketjepa inspect-data` suggests overrides",
        )
    c = split_counts(n_days, cfg)
    n_train, n_val, n_test = c["train"], c["val"], c["test"]
    parts = [np.full(n_train, TRAIN), np.full(e, EMBARGO), np.full(n_val, VAL)]
    if has_test:
        parts += [np.full(e, EMBARGO), np.full(n_test, TEST)]
    return np.concatenate(parts).astype(np.int8)


def walk_forward_folds(
    n_days: int, cfg: SplitConfig, n_folds: int | None = None, *, include_test: bool = False
) -> list:
    """Expanding-window folds: fold ``i`` trains on blocks ``0..i`` and validates on block
    ``i+1`` (``n_folds + 1`` equal blocks), with the embargo before validation.

    By default the blocks cover the non-test days (test days stay test, everything else
    is −1). With ``include_test=True`` they cover all ``n_days`` days and nothing is marked
    test (walk-forward *evaluation* over the whole history: see
    :func:`walk_forward_eval_folds`)."""
    n_folds = cfg.walk_forward_folds if n_folds is None else n_folds
    if n_folds < 1:
        return []
    if include_test:
        test_days = np.zeros(n_days, dtype=bool)
        pool = n_days
    else:
        base = day_splits(n_days, cfg)
        test_days = base == TEST
        pool = int(np.flatnonzero(base == VAL)[-1]) + 1  # train + embargo + val region
    edges = np.linspace(0, pool, n_folds + 2).round().astype(int)
    folds = []
    for i in range(n_folds):
        d = np.full(n_days, EMBARGO, dtype=np.int8)
        d[test_days] = TEST
        train_end = edges[i + 1] - cfg.embargo_days
        if train_end < 1 or edges[i + 2] <= edges[i + 1]:
            raise MarketJepaError(
                f"split.walk_forward_folds={n_folds} leaves empty folds on {n_days} days"
            )
        d[:train_end] = TRAIN
        d[edges[i + 1] : edges[i + 2]] = VAL
        folds.append(d)
    return folds


def walk_forward_eval_folds(
    n_days: int, cfg: SplitConfig, n_folds: int | None = None, select_share: float = 0.15
) -> list[np.ndarray]:
    """Expanding-window evaluation folds over all ``n_days`` days, three-way per fold.

    Fold ``i`` of :func:`walk_forward_folds` (``include_test=True``) gives its training
    days ``[0, t)`` and its scored block. The training days are cut again like
    :func:`day_splits`: the last ``max(1, round(select_share·t))`` days choose
    hyper-parameters (VAL), the days before them minus ``embargo_days`` are fit on
    (TRAIN), and the scored block becomes TEST; every other day is −1. So a fold never
    fits or tunes on a day of (or within the embargo before) the block it scores.
    """
    n_folds = cfg.walk_forward_folds if n_folds is None else n_folds
    out = []
    e = cfg.embargo_days
    for fold in walk_forward_folds(n_days, cfg, n_folds, include_test=True):
        train_end = int(np.flatnonzero(fold == TRAIN)[-1]) + 1
        n_sel = max(1, int(round(select_share * train_end)))
        fit_end = train_end - n_sel - e
        if fit_end < 1:
            raise MarketJepaError(
                f"split.walk_forward_folds={n_folds}: fold {len(out) + 1} has no fit days "
                f"before its selection days on {n_days} days (embargo_days={e}); use fewer folds"
            )
        d = np.full(n_days, EMBARGO, dtype=np.int8)
        d[:fit_end] = TRAIN
        d[train_end - n_sel : train_end] = VAL
        d[fold == VAL] = TEST
        out.append(d)
    return out


def row_splits(day: np.ndarray, per_day: np.ndarray) -> np.ndarray:
    """Broadcast per-day split ids to rows (``day`` = session index per row)."""
    return per_day[day].astype(np.int8)


def days_per_split(per_day: np.ndarray) -> dict[str, int]:
    out = {name: int((per_day == s).sum()) for s, name in SPLIT_NAMES.items()}
    out["embargo"] = int((per_day == EMBARGO).sum())
    return out

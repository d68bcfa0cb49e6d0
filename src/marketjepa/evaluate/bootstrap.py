"""Block bootstrap over trading days: confidence intervals and paired tests (DESIGN §4).

Rows of one trading day (and of neighbouring days) are strongly dependent — windows
overlap, the volatility regime persists — so resampling single rows would give far too
narrow intervals. We resample **whole days in blocks of consecutive days** with the
circular moving-block bootstrap (Künsch 1989; Politis & Romano 1992):

    days d_1 < … < d_D (sorted unique day ids), block length b
    draw ⌈D/b⌉ start positions s_j ~ U{0, …, D−1}
    resampled day list = (d_{(s_j + i) mod D} for i < b, for each j), truncated to D days
    resampled rows    = all rows of every day in that list (with multiplicity)

Each bootstrap replicate evaluates the metric on the resampled rows; the CI is the
percentile interval ``[q_{α/2}, q_{1−α/2}]`` of the replicates (Efron & Tibshirani 1993,
§13.3). The paired test applies the *same* replicate rows to two predictions and reports
the distribution of their metric difference.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

MetricValue = float | np.ndarray | dict[str, float]
Metric = Callable[[np.ndarray, np.ndarray], MetricValue]

# Fewer blocks than this make the resampled day sets nearly identical (degenerate CI).
MIN_BLOCKS = 4


def resample_blocks(n_days: int, block_days: int) -> tuple[int, int]:
    """(block length, number of blocks) the day-block resampler uses for ``n_days`` days:
    the block shrinks so there are at least MIN_BLOCKS blocks to draw from."""
    b = int(max(1, min(block_days, n_days // MIN_BLOCKS)))
    return b, -(-n_days // b)


def day_block_draws(n_days: int, block_days: int, n_samples: int, seed: int = 0) -> np.ndarray:
    """``[n_samples, n_days]`` day positions of each replicate: the circular moving-block
    draw above (⌈D/b⌉ uniform block starts, blocks wrap around, truncated to D days).

    The one day-block resampler of the project: probe CIs, paired tests and the
    backtest's Sharpe CI (:mod:`marketjepa.trading.metrics`) all draw their days here.
    """
    b, n_blocks = resample_blocks(n_days, block_days)
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, n_days, size=(n_samples, n_blocks))
    pos = (starts[:, :, None] + np.arange(b)[None, None, :]) % n_days
    return pos.reshape(n_samples, -1)[:, :n_days]


@dataclass
class BootstrapResult:
    """Point estimate, percentile CI and the replicate values of one scalar metric."""

    estimate: float
    lo: float
    hi: float
    level: float
    samples: np.ndarray = field(repr=False)

    @property
    def ci(self) -> list[float]:
        return [self.lo, self.hi]

    def covers(self, value: float) -> bool:
        return bool(self.lo <= value <= self.hi)

    def resample_info(self) -> dict[str, float]:
        """What the evidence gate needs to judge the CI (report/evidence.py)."""
        return resample_info(self.samples)


def resample_info(samples: np.ndarray) -> dict[str, float]:
    """Bootstrap SE (SD of the finite replicates, ddof 1), share of finite replicates and
    number of distinct finite values: a CI with SE 0, few distinct values or many
    undefined replicates is degenerate (report/evidence.py)."""
    samples = np.asarray(samples, dtype=np.float64)
    s = samples[np.isfinite(samples)]
    return {
        "se": float(s.std(ddof=1)) if s.size > 1 else float("nan"),
        "valid_share": float(s.size / samples.size) if samples.size else 0.0,
        "distinct": int(np.unique(np.round(s, 12)).size),
    }


@dataclass
class PairedTestResult:
    """Metric(a) − metric(b) on the same rows, its percentile CI and two-sided p-value."""

    estimate: float
    lo: float
    hi: float
    p_value: float
    level: float
    estimate_a: float
    estimate_b: float
    samples: np.ndarray = field(repr=False)

    def to_dict(self) -> dict[str, float | list[float]]:
        return {
            "difference": self.estimate,
            "ci": [self.lo, self.hi],
            "p_value": self.p_value,
            "estimate_a": self.estimate_a,
            "estimate_b": self.estimate_b,
            "resamples": resample_info(self.samples),
        }


class DayBlockResampler:
    """Circular moving-block bootstrap over the distinct day ids of a set of rows.

    ``replicates()`` yields, for each of ``n_samples`` draws, the row indices of the
    resampled days (whole days only, with multiplicity). The draws are deterministic
    given ``seed``, so several metrics/representations evaluated with resamplers of the
    same ``(day_ids, block_days, n_samples, seed)`` see identical replicate rows.
    """

    def __init__(self, day_ids: np.ndarray, block_days: int, n_samples: int, seed: int = 0) -> None:
        day_ids = np.asarray(day_ids)
        if day_ids.ndim != 1 or day_ids.size == 0:
            raise ValueError("day_ids must be a non-empty 1-D array")
        if block_days < 1 or n_samples < 1:
            raise ValueError(f"block_days and n_samples must be >= 1 ({block_days}, {n_samples})")
        self.days, inverse = np.unique(day_ids, return_inverse=True)
        self.n_days = int(self.days.size)
        self.block_days = resample_blocks(self.n_days, block_days)[0]
        self.n_samples = int(n_samples)
        self.seed = int(seed)
        order = np.argsort(inverse, kind="stable")
        self._rows_by_day = order  # row indices grouped by day, days in sorted order
        self._counts = np.bincount(inverse, minlength=self.n_days)
        self._offsets = np.concatenate([[0], np.cumsum(self._counts)[:-1]])

    def day_draws(self) -> np.ndarray:
        """``[n_samples, n_days]`` positions (into sorted days) of each replicate's days."""
        return day_block_draws(self.n_days, self.block_days, self.n_samples, self.seed)

    def rows_of_days(self, day_positions: np.ndarray) -> np.ndarray:
        """Row indices of all rows of the given day positions (repeats kept), vectorized."""
        counts = self._counts[day_positions]
        total = int(counts.sum())
        first = np.repeat(self._offsets[day_positions], counts)
        within = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
        return self._rows_by_day[first + within]

    def replicates(self):
        for draw in self.day_draws():
            yield self.rows_of_days(draw)


def _as_vector(value: MetricValue) -> tuple[np.ndarray, list[str] | None]:
    if isinstance(value, dict):
        keys = list(value)
        return np.array([value[k] for k in keys], dtype=np.float64), keys
    return np.atleast_1d(np.asarray(value, dtype=np.float64)), None


def _percentile_ci(samples: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    alpha = 1.0 - level
    finite = np.where(np.isfinite(samples), samples, np.nan)
    # An undefined metric (e.g. direction accuracy of a predictor that never trades) has
    # all-NaN replicates and a NaN interval; that is the answer, not a warning.
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        lo = np.nanquantile(finite, alpha / 2, axis=0)
        hi = np.nanquantile(finite, 1 - alpha / 2, axis=0)
    return lo, hi


def block_bootstrap(
    metric: Metric,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    day_ids: np.ndarray,
    *,
    block_days: int = 5,
    n_samples: int = 500,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, BootstrapResult] | BootstrapResult:
    """CI of ``metric(y_true, y_pred)`` by circular block bootstrap over days.

    ``y_pred`` may be 1-D (labels, scores) or 2-D (rows × columns, e.g. several
    predictions that a metric combines); rows are resampled together. ``metric`` may
    return a float (→ one :class:`BootstrapResult`) or a dict of floats (→ a dict of
    results with the same keys), so all metrics derived from one confusion matrix share
    one pass. Replicates where a metric is undefined (NaN) are ignored in the quantiles.
    """
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if not (len(y_true) == len(y_pred) == len(day_ids)):
        raise ValueError(
            f"y_true, y_pred and day_ids must have the same length "
            f"({len(y_true)}, {len(y_pred)}, {len(day_ids)})"
        )
    point, keys = _as_vector(metric(y_true, y_pred))
    resampler = DayBlockResampler(day_ids, block_days, n_samples, seed)
    samples = np.empty((n_samples, point.size))
    for i, rows in enumerate(resampler.replicates()):
        samples[i] = _as_vector(metric(y_true[rows], y_pred[rows]))[0]
    lo, hi = _percentile_ci(samples, level)
    results = [
        BootstrapResult(float(point[j]), float(lo[j]), float(hi[j]), level, samples[:, j])
        for j in range(point.size)
    ]
    if keys is None:
        return results[0]
    return dict(zip(keys, results, strict=True))


def paired_bootstrap_test(
    metric: Callable[[np.ndarray, np.ndarray], float],
    y_true: np.ndarray,
    pred_a: np.ndarray,
    pred_b: np.ndarray,
    day_ids: np.ndarray,
    *,
    block_days: int = 5,
    n_samples: int = 500,
    level: float = 0.95,
    seed: int = 0,
) -> PairedTestResult:
    """Paired block-bootstrap test of ``Δ = metric(y, a) − metric(y, b)`` on the same rows.

    Both predictions are scored on identical replicate rows, so day-level noise common to
    both cancels. CI: percentile interval of the replicate differences Δ*. Two-sided
    p-value for H0: Δ = 0 from the bootstrap distribution shifted to the null
    (Hall & Wilson 1991): ``p = (1 + #{|Δ*_b − Δ̂| ≥ |Δ̂|}) / (B + 1)``.
    """
    pred_a = np.asarray(pred_a)
    pred_b = np.asarray(pred_b)
    if len(pred_a) != len(pred_b):
        raise ValueError(f"pred_a and pred_b differ in length ({len(pred_a)}, {len(pred_b)})")

    def diff(yt: np.ndarray, both: np.ndarray) -> dict[str, float]:
        a = float(metric(yt, both[:, 0]))
        b = float(metric(yt, both[:, 1]))
        return {"diff": a - b, "a": a, "b": b}

    res = block_bootstrap(
        diff,
        y_true,
        np.column_stack([pred_a, pred_b]),
        day_ids,
        block_days=block_days,
        n_samples=n_samples,
        level=level,
        seed=seed,
    )
    d = res["diff"]
    s = d.samples[np.isfinite(d.samples)]
    extreme = int(np.sum(np.abs(s - d.estimate) >= abs(d.estimate)))
    p = (1 + extreme) / (s.size + 1)
    return PairedTestResult(
        estimate=d.estimate,
        lo=d.lo,
        hi=d.hi,
        p_value=float(p),
        level=level,
        estimate_a=res["a"].estimate,
        estimate_b=res["b"].estimate,
        samples=d.samples,
    )

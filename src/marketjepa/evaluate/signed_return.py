"""Directional return of a CALL/HOLD/PUT predictor, tested over test days (issue #11).

The direction-accuracy lift (CALL-vs-PUT recall among predicted and true moves, minus ½)
is a good *description* of a probe, but not a valid *test* of "is the direction
predictable?": its labels are thresholds on ``fwd_ret / sigma_h`` with a trailing
``sigma_h``, so whenever the forward return's skew depends on the state (leverage:
falls raise volatility), the CALL share among moves moves with the past even though the
price is a martingale, and a predictor that only knows the state has a positive lift
(``tests/evaluate/test_signed_return.py`` builds such a martingale; on the tiny null
markets ``benchmarks/honesty.py`` prints the mean lift over markets).

The statistic tested instead has mean exactly 0 whenever the log price is a martingale.
With the prediction ``d_t = +1`` (BUY_CALL), ``−1`` (BUY_PUT), ``0`` (HOLD), the forward
log return ``fwd_ret_t`` over the label horizon and the trailing volatility ``sigma_h,t``
(both as in ``data/labels.py``)::

    s_t = d_t · fwd_ret_t / sigma_h,t                    (signed standardized return)
    m_d = mean of s_t over the scored rows of test day d
    θ̂  = mean_d m_d,   SE = sd_d(m_d) / √D,   t = θ̂ / SE   (Student-t, D − 1 df)
    CI  = θ̂ ± t_{D−1, (1+level)/2} · SE,   p = 2·(1 − F_{D−1}(|t|))

Why it is valid under "no edge" (``E[fwd_ret_t | past] = 0``): ``d_t`` and ``sigma_h,t``
use bars up to ``t`` only, so ``E[s_t | past] = 0``; a day's labels end inside the day,
so ``E[m_d | days before d] = 0``: the day means are a martingale-difference sequence,
uncorrelated across days whatever the volatility clustering, and the t-test over days
needs no block length. Rows within a day overlap and are left to the day mean.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import t as t_dist

CALL, PUT = 1, 2


def signed_returns(pred: np.ndarray, fwd_ret: np.ndarray, sigma_h: np.ndarray) -> np.ndarray:
    """``s_t = d_t · fwd_ret_t / sigma_h,t`` with ``d = +1`` for CALL, ``−1`` for PUT, else 0."""
    pred = np.asarray(pred)
    direction = (pred == CALL).astype(np.float64) - (pred == PUT)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.asarray(fwd_ret, dtype=np.float64) / np.asarray(sigma_h, dtype=np.float64)
    if not np.all(np.isfinite(z)):
        raise ValueError("fwd_ret / sigma_h must be finite on every scored row")
    return direction * z


def day_mean_test(values: np.ndarray, day_ids: np.ndarray, level: float = 0.95) -> dict:
    """t-test of the mean of per-day means of ``values`` (see the module docstring).

    Returns ``estimate``, ``se``, ``df``, ``t``, ``p_value``, ``ci``, ``n_days`` and
    ``active_days`` (days with a non-zero value, i.e. with a predicted move). ``se``,
    ``t``, ``p_value`` and ``ci`` are NaN with fewer than two days or no day-to-day
    variation.
    """
    values = np.asarray(values, dtype=np.float64)
    days, inverse = np.unique(np.asarray(day_ids), return_inverse=True)
    n = int(days.size)
    means = np.bincount(inverse, weights=values, minlength=n) / np.bincount(inverse, minlength=n)
    active = int(np.count_nonzero(np.bincount(inverse, weights=values != 0, minlength=n)))
    estimate = float(means.mean()) if n else float("nan")
    nan = float("nan")
    out = {"estimate": estimate, "se": nan, "df": max(n - 1, 0), "t": nan, "p_value": nan}
    out |= {"ci": [nan, nan], "n_days": n, "active_days": active}
    if n < 2:
        return out
    se = float(means.std(ddof=1) / math.sqrt(n))
    out["se"] = se
    if se <= 0:
        return out
    tstat = estimate / se
    half = float(t_dist.ppf((1.0 + level) / 2.0, n - 1)) * se
    out |= {
        "t": tstat,
        "p_value": float(2.0 * t_dist.sf(abs(tstat), n - 1)),
        "ci": [estimate - half, estimate + half],
    }
    return out

"""Entry labels and regression targets (DESIGN §2.2).

With ``H = labels.horizon`` and intraday 1-minute log returns ``r`` (features module):

* ``fwd_ret[t] = log(close[t+H] / close[t])`` — only when bar ``t+H`` is in the same
  session, ``H`` minutes later; the last ``H`` bars of a session get NaN.
* ``fwd_rv[t] = log sqrt(Σ_{j=t+1}^{t+H} r_j²)`` — log realized vol of ``(t, t+H]``
  (floored at 1e-8 so flat stretches stay finite).
* ``sigma_h[t] = sqrt(mean(r²) over the last vol_lookback bars ending at t) · sqrt(H)`` —
  trailing, so it only uses bars ``<= t``.
* threshold label: ``z = fwd_ret / sigma_h``; BUY_CALL (1) if ``z > k``, BUY_PUT (2) if
  ``z < −k``, else HOLD (0). ``k`` is the ``1 − 2·target_rate_each_side`` quantile of
  ``|z|`` over *train* rows, so train has ≈ the target rate on each side.
* triple barrier: walk the path ``log(close[t+j]/close[t])``, ``j = 1..H``; the first
  touch of ``+k·sigma_h`` → BUY_CALL, of ``−k·sigma_h`` → BUY_PUT, none → HOLD. ``k`` is
  the same quantile of the path's max ``|excursion| / sigma_h`` over train rows.

Filled (repaired) bars carry no real price, so a row gets no label and no targets
(``label = −1``, ``fwd_ret``/``fwd_rv`` NaN) when bar ``t`` is filled, when the target's end
bar ``t+H`` is filled, or when more than ``MAX_FILLED_SHARE`` (10%) of the bars in
``(t, t+H]`` are filled. A single filled minute inside the horizon is tolerated (it only
moves one minute's return into the next bar); a long flat fill, such as the missing
morning of a partial session kept with ``data.partial_sessions=keep``, never becomes a
label or a volatility target.

A label at ``t`` therefore depends on ``close[t]``, the trailing ``sigma_h[t]`` and bars
``(t, t+H]`` only (and the train-fitted scalar ``k``); never on bars past the close.
Rows without a full forward window or a positive ``sigma_h`` get label −1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from marketjepa.config import LabelConfig
from marketjepa.constants import BUY_CALL, BUY_PUT, CLASS_NAMES, HOLD, NO_LABEL  # noqa: F401
from marketjepa.data.features import rolling
from marketjepa.errors import DataValidationError

MAX_FILLED_SHARE = 0.1
_RV_FLOOR = 1e-8
_CHUNK = 1 << 16


@dataclass
class LabelResult:
    label: np.ndarray  # int8
    fwd_ret: np.ndarray  # float64, NaN where no forward window
    fwd_rv: np.ndarray
    sigma_h: np.ndarray
    k: float
    kind: str


def forward_valid(day: np.ndarray, minute: np.ndarray, horizon: int) -> np.ndarray:
    """True where bar ``t+H`` exists, is in the same session and ``H`` minutes later."""
    n = day.size
    ok = np.zeros(n, dtype=bool)
    if horizon < n:
        ok[: n - horizon] = (day[horizon:] == day[:-horizon]) & (
            minute[horizon:] - minute[:-horizon] == horizon
        )
    return ok


def unfilled_horizon(filled: np.ndarray, horizon: int) -> np.ndarray:
    """True where row ``t`` may carry a label/target under the filled-bar rule above."""
    f = np.asarray(filled, dtype=bool)
    n = f.size
    ok = ~f
    if horizon < n:
        ok[: n - horizon] &= ~f[horizon:]
        # count of filled bars in (t, t+H] = cum[t+H] - cum[t]
        cum = np.concatenate([[0], np.cumsum(f)])
        within = cum[1 + horizon : n + 1] - cum[1 : n - horizon + 1]
        ok[: n - horizon] &= within <= MAX_FILLED_SHARE * horizon
    return ok


def forward_targets(
    close: np.ndarray, r1: np.ndarray, valid: np.ndarray, horizon: int
) -> tuple[np.ndarray, np.ndarray]:
    """(fwd_ret, fwd_rv) over ``(t, t+H]``, NaN where ``valid`` is False."""
    n = close.size
    logc = np.log(close)
    fwd_ret = np.full(n, np.nan)
    fwd_rv = np.full(n, np.nan)
    if horizon < n:
        fwd_ret[: n - horizon] = logc[horizon:] - logc[:-horizon]
        ss = rolling(r1 * r1, horizon, "sum")  # ss[u] = Σ r²[u-H+1 .. u]
        fwd_rv[: n - horizon] = 0.5 * np.log(np.maximum(ss[horizon:], _RV_FLOOR**2))
    fwd_ret[~valid] = np.nan
    fwd_rv[~valid] = np.nan
    return fwd_ret, fwd_rv


def trailing_sigma(r1: np.ndarray, lookback: int, horizon: int) -> np.ndarray:
    """Trailing per-minute realized vol over ``lookback`` bars, scaled by sqrt(H)."""
    return np.sqrt(rolling(r1 * r1, lookback, "mean") * horizon)


def calibrate_k(score: np.ndarray, train_mask: np.ndarray, rate_each_side: float) -> float:
    """Quantile ``1 − 2·rate`` of ``score`` (≥ 0) over finite train rows."""
    s = score[train_mask & np.isfinite(score)]
    if s.size == 0:
        raise DataValidationError(
            "no labelled training bars to calibrate labels.k — too few training days "
            "(or too many filled bars) for labels.horizon / labels.vol_lookback",
            hint="use more data; `marketjepa inspect-data` says what fits",
        )
    return float(np.quantile(s, 1.0 - 2.0 * rate_each_side))


def threshold_labels(fwd_ret: np.ndarray, sigma_h: np.ndarray, k: float) -> np.ndarray:
    ok = np.isfinite(fwd_ret) & np.isfinite(sigma_h) & (sigma_h > 0)
    z = np.where(ok, fwd_ret / np.where(ok, sigma_h, 1.0), 0.0)
    lab = np.where(z > k, BUY_CALL, np.where(z < -k, BUY_PUT, HOLD)).astype(np.int8)
    lab[~ok] = NO_LABEL
    return lab


def _paths(logc: np.ndarray, rows: np.ndarray, horizon: int) -> np.ndarray:
    """``[len(rows), H]`` of ``log(close[t+j]/close[t])``, j = 1..H (rows must be valid)."""
    w = sliding_window_view(logc, horizon + 1)
    blk = w[rows]
    return blk[:, 1:] - blk[:, :1]


def max_excursion(close: np.ndarray, sigma_h: np.ndarray, ok: np.ndarray, horizon: int):
    """``max_j |log(close[t+j]/close[t])| / sigma_h[t]`` for rows ``ok`` (NaN elsewhere)."""
    logc = np.log(close)
    out = np.full(close.size, np.nan)
    rows = np.flatnonzero(ok)
    for i in range(0, rows.size, _CHUNK):  # chunks of rows, not a loop over bars
        r = rows[i : i + _CHUNK]
        out[r] = np.abs(_paths(logc, r, horizon)).max(axis=1) / sigma_h[r]
    return out


def triple_barrier_labels(
    close: np.ndarray, sigma_h: np.ndarray, ok: np.ndarray, horizon: int, k: float
) -> np.ndarray:
    logc = np.log(close)
    lab = np.full(close.size, NO_LABEL, dtype=np.int8)
    rows = np.flatnonzero(ok)
    for i in range(0, rows.size, _CHUNK):
        r = rows[i : i + _CHUNK]
        p = _paths(logc, r, horizon)
        bar = (k * sigma_h[r])[:, None]
        up, dn = p >= bar, p <= -bar
        first_up = np.where(up.any(axis=1), up.argmax(axis=1), horizon)
        first_dn = np.where(dn.any(axis=1), dn.argmax(axis=1), horizon)
        lab[r] = np.where(
            first_up < first_dn, BUY_CALL, np.where(first_dn < first_up, BUY_PUT, HOLD)
        )
    return lab


def make_labels(
    close: np.ndarray,
    r1: np.ndarray,
    day: np.ndarray,
    minute: np.ndarray,
    cfg: LabelConfig,
    train_mask: np.ndarray | None = None,
    k: float | None = None,
    filled: np.ndarray | None = None,
) -> LabelResult:
    """Labels and targets for every bar; ``k`` is calibrated on ``train_mask`` unless given.

    ``filled`` (bool per bar) masks rows by the filled-bar rule of the module docstring."""
    h = cfg.horizon
    valid = forward_valid(day, minute, h)
    if filled is not None:
        valid &= unfilled_horizon(filled, h)
    fwd_ret, fwd_rv = forward_targets(close, r1, valid, h)
    sigma_h = trailing_sigma(r1, cfg.vol_lookback, h)
    ok = valid & np.isfinite(sigma_h) & (sigma_h > 0)
    if cfg.kind == "threshold":
        if k is None:
            z = np.abs(fwd_ret) / np.where(ok, sigma_h, np.nan)
            k = calibrate_k(z, _mask(train_mask, close.size) & ok, cfg.target_rate_each_side)
        label = threshold_labels(fwd_ret, np.where(ok, sigma_h, np.nan), k)
    else:
        if k is None:
            ex = max_excursion(close, sigma_h, ok, h)
            k = calibrate_k(ex, _mask(train_mask, close.size) & ok, cfg.target_rate_each_side)
        label = triple_barrier_labels(close, sigma_h, ok, h, k)
    return LabelResult(label, fwd_ret, fwd_rv, sigma_h, float(k), cfg.kind)


def _mask(m: np.ndarray | None, n: int) -> np.ndarray:
    return np.ones(n, dtype=bool) if m is None else np.asarray(m, dtype=bool)


def class_rates(label: np.ndarray) -> dict[str, float]:
    """Share of HOLD / BUY_CALL / BUY_PUT among labelled rows."""
    lab = label[label >= 0]
    n = max(lab.size, 1)
    return {name: float((lab == c).sum() / n) for c, name in enumerate(CLASS_NAMES)}

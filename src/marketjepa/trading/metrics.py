"""Performance metrics of a backtest (DESIGN §5). Pure functions; formulas below.

Notation: ``r_d`` daily returns (daily net P&L / equity at the start of the day), ``n`` the
number of days, ``μ`` and ``s`` their mean and sample standard deviation (ddof 1).

- Sharpe (annualized):   SR_a = μ / s · √252.
- Sortino (annualized):  μ / DD · √252 with downside deviation DD = √(mean(min(r_d, 0)²)).
- Drawdown:              DD_t = 1 − E_t / max_{u≤t} E_u; max drawdown = max_t DD_t; its duration
                         is the longest run of consecutive periods with DD_t > 0.
- Probabilistic Sharpe ratio (Bailey & López de Prado 2012, eq. for PSR), with the
  *per-period* SR = μ/s, skewness γ3 and (non-excess) kurtosis γ4 of r_d:
      PSR(SR*) = Φ( (SR − SR*) · √(n − 1) / √(1 − γ3·SR + (γ4 − 1)/4 · SR²) ).
- Deflated Sharpe ratio (Bailey & López de Prado 2014): PSR with the benchmark SR0 = the
  expected maximum per-period Sharpe of N independent trials with no skill,
      SR0 = √V[SR_n] · ((1 − γ)·Φ⁻¹(1 − 1/N) + γ·Φ⁻¹(1 − 1/(N·e))),
  γ ≈ 0.5772 the Euler–Mascheroni constant, V[SR_n] the variance of the trials' per-period
  Sharpe ratios;  DSR = PSR(SR0). With N ≤ 1 there is no selection: SR0 = 0. N counts
  every configuration tried in the run (all representations × threshold pairs × heads);
  when V[SR_n] is unknown it is the no-skill estimation variance 1/(n − 1).
- Bootstrap CI of the annualized Sharpe: the circular day-block bootstrap of the probes
  (:func:`marketjepa.evaluate.bootstrap.day_block_draws`: blocks of ``block`` days, fewer
  when there are under 4 blocks' worth of days, wrapping around), percentile interval.
- Trade statistics: win rate = share of trades with net P&L > 0; average win/loss = mean net
  P&L of winners/losers; profit factor = Σ wins / |Σ losses|; CALL/PUT shares of trades.
- Exposure = bars with an open position / bars in the evaluation period.
- Turnover = premium notional bought and sold (Σ entry + exit fills × 100 × contracts) /
  initial capital.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import kurtosis, norm, skew

from marketjepa.evaluate.bootstrap import day_block_draws

TRADING_DAYS = 252
EULER_GAMMA = 0.5772156649015329


def _clean(x: float) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def daily_returns(daily_pnl: np.ndarray, initial_capital: float) -> np.ndarray:
    """r_d = P&L_d / E_{d−1} with E_0 = initial capital and E_d = E_{d−1} + P&L_d."""
    pnl = np.asarray(daily_pnl, dtype=np.float64)
    equity_before = initial_capital + np.concatenate([[0.0], np.cumsum(pnl)[:-1]])
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(equity_before > 0, pnl / equity_before, np.nan)


def sharpe_ratio(returns: np.ndarray, periods: int = TRADING_DAYS) -> float:
    """μ / s · √periods (``periods=1`` gives the per-period SR); NaN when s = 0."""
    r = np.asarray(returns, dtype=np.float64)
    if r.size < 2:
        return float("nan")
    s = r.std(ddof=1)
    return float(r.mean() / s * math.sqrt(periods)) if s > 0 else float("nan")


def sortino_ratio(returns: np.ndarray, periods: int = TRADING_DAYS) -> float:
    """μ / √(mean(min(r, 0)²)) · √periods; NaN when there is no downside."""
    r = np.asarray(returns, dtype=np.float64)
    if r.size < 2:
        return float("nan")
    dd = math.sqrt(float(np.mean(np.minimum(r, 0.0) ** 2)))
    return float(r.mean() / dd * math.sqrt(periods)) if dd > 0 else float("nan")


def drawdown(equity: np.ndarray) -> np.ndarray:
    """DD_t = 1 − E_t / running max of E."""
    e = np.asarray(equity, dtype=np.float64)
    return 1.0 - e / np.maximum.accumulate(e)


def max_drawdown(equity: np.ndarray) -> tuple[float, int]:
    """(max DD_t, longest run of consecutive periods under water)."""
    dd = drawdown(equity)
    if dd.size == 0:
        return 0.0, 0
    under = np.concatenate([[0], (dd > 1e-12).astype(np.int8), [0]])
    edges = np.flatnonzero(np.diff(under))
    longest = int((edges[1::2] - edges[0::2]).max()) if edges.size else 0
    return float(dd.max()), longest


def probabilistic_sharpe_ratio(
    sr: float, n: int, skewness: float, kurt: float, sr_benchmark: float = 0.0
) -> float:
    """PSR(SR*) = Φ((SR − SR*)·√(n−1) / √(1 − γ3·SR + (γ4−1)/4·SR²)), per-period SR, γ4 raw."""
    denom = 1.0 - skewness * sr + (kurt - 1.0) / 4.0 * sr * sr
    if n < 2 or not math.isfinite(sr) or denom <= 0:
        return float("nan")
    return float(norm.cdf((sr - sr_benchmark) * math.sqrt(n - 1) / math.sqrt(denom)))


def expected_max_sharpe(n_trials: int, var_trial_sharpes: float) -> float:
    """SR0 = √V · ((1−γ)Φ⁻¹(1−1/N) + γΦ⁻¹(1−1/(N e))); 0 for N ≤ 1."""
    if n_trials <= 1 or not var_trial_sharpes > 0:
        return 0.0
    z1 = norm.ppf(1.0 - 1.0 / n_trials)
    z2 = norm.ppf(1.0 - 1.0 / (n_trials * math.e))
    return float(math.sqrt(var_trial_sharpes) * ((1 - EULER_GAMMA) * z1 + EULER_GAMMA * z2))


def return_moments(returns: np.ndarray) -> tuple[float, float, float, int]:
    """(per-period SR, skewness γ3, raw kurtosis γ4, n) with population moments."""
    r = np.asarray(returns, dtype=np.float64)
    sr = sharpe_ratio(r, periods=1)
    if r.size < 3 or not r.std() > 0:
        return sr, 0.0, 3.0, int(r.size)
    return sr, float(skew(r)), float(kurtosis(r, fisher=False)), int(r.size)


def psr_from_returns(returns: np.ndarray, sr_benchmark: float = 0.0) -> float:
    sr, g3, g4, n = return_moments(returns)
    return probabilistic_sharpe_ratio(sr, n, g3, g4, sr_benchmark)


def deflated_sharpe_ratio(returns: np.ndarray, n_trials: int, var_trial_sharpes: float) -> float:
    """DSR = PSR(SR0) with SR0 = :func:`expected_max_sharpe` (per-period units)."""
    return psr_from_returns(returns, expected_max_sharpe(n_trials, var_trial_sharpes))


def bootstrap_sharpe_samples(
    returns: np.ndarray, n_boot: int = 500, block: int = 5, seed: int = 0
) -> np.ndarray:
    """Annualized Sharpe of each day-block bootstrap replicate of the daily returns
    (:func:`marketjepa.evaluate.bootstrap.day_block_draws`, the probes' circular draw).

    A replicate of all-zero returns (no trade on any drawn day) has Sharpe 0, not an
    undefined 0/0: dropping those replicates would keep only the draws that contain the
    traded days, and a 1-trade strategy would get a CI that excludes 0. A replicate with
    constant non-zero returns stays undefined (NaN).
    """
    r = np.asarray(returns, dtype=np.float64)
    n = r.size
    if n < 3:
        return np.full(n_boot, np.nan)
    samples = r[day_block_draws(n, max(1, block), n_boot, seed)]
    sd = samples.std(axis=1, ddof=1)
    mean = samples.mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        sharpes = np.where(sd > 0, mean / sd * math.sqrt(TRADING_DAYS), np.nan)
    return np.where((sd == 0) & (mean == 0), 0.0, sharpes)


def bootstrap_sharpe_ci(
    returns: np.ndarray,
    n_boot: int = 500,
    block: int = 5,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile CI of the annualized Sharpe under a moving-block bootstrap over days."""
    sharpes = bootstrap_sharpe_samples(returns, n_boot, block, seed)
    sharpes = sharpes[np.isfinite(sharpes)]
    if sharpes.size == 0:
        return float("nan"), float("nan")
    a = (1.0 - level) / 2.0
    lo, hi = np.quantile(sharpes, [a, 1.0 - a])
    return float(lo), float(hi)


def trade_stats(net_pnl: np.ndarray, is_call: np.ndarray) -> dict[str, float | int | None]:
    """Trade count, win rate, average win/loss, profit factor and CALL/PUT shares."""
    pnl = np.asarray(net_pnl, dtype=np.float64)
    calls = np.asarray(is_call, dtype=bool)
    n = int(pnl.size)
    wins, losses = pnl[pnl > 0], pnl[pnl <= 0]
    gross_loss = -losses.sum()
    return {
        "n_trades": n,
        "win_rate": _clean(wins.size / n) if n else None,
        "avg_win": _clean(wins.mean()) if wins.size else None,
        "avg_loss": _clean(losses.mean()) if losses.size else None,
        "profit_factor": _clean(wins.sum() / gross_loss) if gross_loss > 0 else None,
        "call_share": _clean(calls.mean()) if n else None,
        "put_share": _clean(1.0 - calls.mean()) if n else None,
    }


def strategy_metrics(
    *,
    net_pnl: np.ndarray,
    is_call: np.ndarray,
    daily_pnl: np.ndarray,
    initial_capital: float,
    bars_in_position: int,
    n_bars: int,
    premium_notional: float,
    n_trials: int = 1,
    var_trial_sharpes: float = 0.0,
    bootstrap_samples: int = 500,
    bootstrap_block_days: int = 5,
    ci_level: float = 0.95,
    seed: int = 0,
) -> dict[str, float | int | None]:
    """All metrics of one strategy; NaN-valued entries become ``None`` (JSON null)."""
    pnl_d = np.asarray(daily_pnl, dtype=np.float64)
    equity = initial_capital + np.cumsum(pnl_d)
    rets = daily_returns(pnl_d, initial_capital)
    rets = rets[np.isfinite(rets)]
    mdd, mdd_days = max_drawdown(np.concatenate([[initial_capital], equity]))
    sr_d, g3, g4, n_days = return_moments(rets)
    lo, hi = bootstrap_sharpe_ci(rets, bootstrap_samples, bootstrap_block_days, ci_level, seed)
    boot = bootstrap_sharpe_samples(rets, bootstrap_samples, bootstrap_block_days, seed)
    finite = boot[np.isfinite(boot)]
    if n_trials > 1 and not var_trial_sharpes > 0 and n_days > 1:
        # Trials were run but their Sharpe spread is unknown (or all equal): deflate with
        # the estimation variance of a per-period Sharpe under no skill, 1/(n − 1)
        # (Lo 2002), so DSR < PSR whenever more than one configuration was tried.
        var_trial_sharpes = 1.0 / (n_days - 1)
    sr0 = expected_max_sharpe(n_trials, var_trial_sharpes)
    out: dict[str, float | int | None] = {
        "total_return": _clean(equity[-1] / initial_capital - 1.0) if equity.size else 0.0,
        "net_pnl": _clean(float(np.sum(net_pnl))),
        **trade_stats(net_pnl, is_call),
        "exposure": _clean(bars_in_position / n_bars) if n_bars else None,
        "turnover": _clean(premium_notional / initial_capital),
        "n_days": n_days,
        "sharpe": _clean(sharpe_ratio(rets)),
        "sortino": _clean(sortino_ratio(rets)),
        "sharpe_ci_low": _clean(lo),
        "sharpe_ci_high": _clean(hi),
        # Evidence gate inputs: share of defined replicates and their distinct values.
        "sharpe_ci_valid_share": _clean(finite.size / boot.size) if boot.size else None,
        "sharpe_ci_distinct": int(np.unique(np.round(finite, 9)).size),
        "max_drawdown": _clean(mdd),
        "max_drawdown_days": mdd_days,
        "skewness": _clean(g3),
        "kurtosis": _clean(g4),
        "psr": _clean(probabilistic_sharpe_ratio(sr_d, n_days, g3, g4, 0.0)),
        "n_trials": int(n_trials),
        "var_trial_sharpes": _clean(var_trial_sharpes),
        "sr0_deflated": _clean(sr0),
        "dsr": _clean(probabilistic_sharpe_ratio(sr_d, n_days, g3, g4, sr0)),
    }
    return out

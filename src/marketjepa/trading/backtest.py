"""Event-driven options backtest, vectorized over signals (DESIGN §5).

Rules. A signal at bar t (1 CALL, 2 PUT) is acted on at the close of bar e = t + 1, which
must lie in the same session and the evaluated split and must not be the session's last
bar (no overnight holding, no look-ahead: everything about the entry — strike, expiry, price
— is read at bar e). The contract is the ATM one: strike = the underlying at e rounded to $1,
expiry ``dte`` days ahead (:mod:`marketjepa.trading.pricing`). The position is closed at the
first of: the close of bar e + ``hold_bars`` (``time``), the session's last bar (``close``),
the first bar after e whose mid is ≤ premium·(1 − stop_loss) (``stop``) or
≥ premium·(1 + take_profit) (``target``), premium = the entry fill. At most
``max_positions`` positions are open; a new entry needs e > exit bar of the open one(s).

Vectorization. The exit of a candidate entry depends on that entry only, so exits and P&L
of every candidate are computed at once in numpy (stop/target paths as a [candidates,
hold_bars] price matrix, in chunks); selecting the trades then walks over *signals*, jumping
with a binary search to the first candidate after each exit. Size is ``contracts`` per trade
or, with ``equity_fraction``, floor(fraction · equity / cost of one contract) using realized
equity at entry (a trade that cannot afford one contract is logged with 0 contracts).
"""

from __future__ import annotations

import heapq
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from marketjepa.artifacts import atomic_path, read_json, to_jsonable
from marketjepa.config import BacktestConfig, Config
from marketjepa.console import console, stage_line
from marketjepa.errors import DataValidationError, StageInputMissing
from marketjepa.results import BacktestMetrics, validate_result, write_result
from marketjepa.trading.attribution import ATTRIBUTION_COLUMNS, attribute, summarize
from marketjepa.trading.costs import MULTIPLIER, CostModel, itemize
from marketjepa.trading.metrics import strategy_metrics
from marketjepa.trading.pricing import (
    SRC_BARS,
    SRC_PROXY,
    SRC_SURFACE,
    MarketData,
    OptionPricer,
    load_option_book,
)

EXIT_REASONS = ("time", "close", "stop", "target")
TIME, CLOSE, STOP, TARGET = range(4)
HOLD, CALL, PUT = 0, 1, 2


@dataclass(frozen=True)
class Rules:
    dte: int = 0
    hold_bars: int = 30
    stop_loss: float | None = None
    take_profit: float | None = None
    max_positions: int = 1
    contracts: int = 1
    equity_fraction: float | None = None
    initial_capital: float = 10_000.0

    @classmethod
    def from_config(cls, cfg: BacktestConfig) -> Rules:
        return cls(
            dte=cfg.dte,
            hold_bars=cfg.hold_bars,
            stop_loss=cfg.stop_loss,
            take_profit=cfg.take_profit,
            max_positions=cfg.max_positions,
            contracts=cfg.contracts,
            equity_fraction=cfg.equity_fraction,
            initial_capital=cfg.initial_capital,
        )


def candidate_entries(
    market: MarketData, signal: np.ndarray, eval_mask: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(signal rows, entry rows, is_call, dropped) of signals that can become an entry.

    The entry is the next bar of the same session; a filled (repaired) bar is never the
    signal bar nor the entry bar: its price was not traded."""
    signal = np.asarray(signal)
    if signal.shape != (market.n,):
        raise DataValidationError(f"signal has shape {signal.shape}, dataset has {market.n} rows")
    t = np.flatnonzero(((signal == CALL) | (signal == PUT)) & eval_mask)
    e = t + 1
    ok = e < market.n
    ec = np.minimum(e, market.n - 1)
    last = market.session_last_row()
    ok &= (market.session[ec] == market.session[t]) & eval_mask[ec] & (ec < last[ec])
    if market.filled is not None:
        ok &= ~market.filled[t] & ~market.filled[ec]
    return t[ok], e[ok], signal[t[ok]] == CALL, int((~ok).sum())


def simulate(
    pricer: OptionPricer,
    entry_rows: np.ndarray,
    is_call: np.ndarray,
    rules: Rules,
    costs: CostModel,
    chunk_cells: int = 2_000_000,
) -> dict[str, np.ndarray]:
    """Contract, exit and per-contract prices of every candidate entry (independent)."""
    m = pricer.market
    e = np.asarray(entry_rows, np.int64)
    is_call = np.asarray(is_call, bool)
    S0 = m.close[e]
    strike = np.rint(S0)
    exp_day = pricer.expiry_day(e, rules.dte)
    q0 = pricer.quote(e, strike, exp_day, is_call)
    last = m.session_last_row()[e]
    exit_row = np.minimum(e + rules.hold_bars, last)
    reason = np.where(e + rules.hold_bars <= last, TIME, CLOSE).astype(np.int8)
    if (rules.stop_loss is not None or rules.take_profit is not None) and e.size:
        premium = costs.entry_fill(q0.mid, q0.half_spread)
        lo = premium * (1.0 - rules.stop_loss) if rules.stop_loss is not None else None
        hi = premium * (1.0 + rules.take_profit) if rules.take_profit is not None else None
        H = rules.hold_bars
        step = max(1, chunk_cells // H)
        k = np.arange(1, H + 1)
        for a in range(0, e.size, step):
            sl = slice(a, a + step)
            rows = e[sl, None] + k
            valid = rows <= exit_row[sl, None]
            rows = np.minimum(rows, exit_row[sl, None])
            mid = pricer.quote(rows, strike[sl, None], exp_day[sl, None], is_call[sl, None]).mid
            hit_stop = (mid <= lo[sl, None]) & valid if lo is not None else np.zeros_like(valid)
            hit_tgt = (mid >= hi[sl, None]) & valid if hi is not None else np.zeros_like(valid)
            hit = hit_stop | hit_tgt
            any_hit = hit.any(axis=1)
            first = hit.argmax(axis=1)
            idx = np.flatnonzero(any_hit)
            exit_row[a + idx] = e[a + idx] + first[idx] + 1
            reason[a + idx] = np.where(hit_stop[idx, first[idx]], STOP, TARGET)
    q1 = pricer.quote(exit_row, strike, exp_day, is_call)
    return {
        "entry_row": e,
        "exit_row": exit_row,
        "is_call": is_call,
        "strike": strike,
        "exp_day": exp_day,
        "entry_S": S0,
        "exit_S": m.close[exit_row],
        "entry_mid": q0.mid,
        "exit_mid": q1.mid,
        # Quoted half-spreads (bars mode with bid/ask), NaN where the cost model assumes one.
        "entry_half_spread": q0.half_spread,
        "exit_half_spread": q1.half_spread,
        "entry_iv": q0.iv,
        "exit_iv": q1.iv,
        "entry_tau_min": q0.tau_min,
        "exit_tau_min": q1.tau_min,
        "entry_source": q0.source,
        "exit_source": q1.source,
        "exit_reason": reason,
    }


def select_trades(
    entry_rows: np.ndarray, exit_rows: np.ndarray, max_positions: int = 1
) -> np.ndarray:
    """Indices of accepted candidates (entries sorted ascending): greedy in time order.

    A candidate is taken when fewer than ``max_positions`` accepted positions are still open
    at its entry bar (a position is open through its exit bar).
    """
    n = len(entry_rows)
    if n == 0:
        return np.zeros(0, np.int64)
    if max_positions == 1:
        out = []
        i = 0
        while i < n:
            out.append(i)
            i = int(np.searchsorted(entry_rows, exit_rows[i], side="right"))
        return np.asarray(out, np.int64)
    heap: list[int] = []
    out = []
    for i in range(n):
        while heap and heap[0] < entry_rows[i]:
            heapq.heappop(heap)
        if len(heap) < max_positions:
            heapq.heappush(heap, int(exit_rows[i]))
            out.append(i)
    return np.asarray(out, np.int64)


def _itemize(sim: dict[str, np.ndarray], contracts: np.ndarray, costs: CostModel):
    """:func:`itemize` with the quoted half-spreads of ``sim`` (a buy crosses to the ask,
    a sell to the bid) where there are quotes."""
    return itemize(
        sim["entry_mid"],
        sim["exit_mid"],
        contracts,
        costs,
        sim.get("entry_half_spread"),
        sim.get("exit_half_spread"),
    )


def size_positions(sim: dict[str, np.ndarray], rules: Rules, costs: CostModel) -> np.ndarray:
    """Contracts per accepted trade: fixed, or a fraction of realized equity at entry."""
    n = sim["entry_row"].size
    if rules.equity_fraction is None:
        return np.full(n, rules.contracts, np.int64)
    per_contract = _itemize(sim, np.ones(n), costs)
    unit_cost = (
        per_contract["entry_fill"] * MULTIPLIER
        + costs.commission_per_contract
        + costs.fees_per_contract
    )
    unit_net = per_contract["net_pnl"]
    order = np.argsort(sim["exit_row"], kind="stable")
    contracts = np.zeros(n, np.int64)
    realized, j = 0.0, 0
    for i in range(n):  # loop over trades, not bars
        while j < n and sim["exit_row"][order[j]] < sim["entry_row"][i]:
            realized += contracts[order[j]] * unit_net[order[j]]
            j += 1
        equity = rules.initial_capital + realized
        contracts[i] = max(0, int(np.floor(rules.equity_fraction * equity / unit_cost[i])))
    return contracts


def finalize(
    sim: dict[str, np.ndarray], contracts: np.ndarray, costs: CostModel, r: float, q: float
) -> dict[str, np.ndarray]:
    """Add costs, P&L and attribution columns for trades with given sizes."""
    out = dict(sim)
    out["contracts"] = np.asarray(contracts, np.int64)
    out.update(_itemize(sim, contracts, costs))
    out.update(
        attribute(
            sim["entry_S"],
            sim["exit_S"],
            sim["entry_iv"],
            sim["exit_iv"],
            sim["entry_tau_min"],
            sim["exit_tau_min"],
            sim["strike"],
            sim["is_call"],
            sim["entry_mid"],
            sim["exit_mid"],
            contracts,
            r,
            q,
        )
    )
    return out


def take(sim: dict[str, np.ndarray], idx: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[idx] for k, v in sim.items()}


@dataclass
class StrategyResult:
    name: str
    trades: dict[str, np.ndarray]
    signal_rows: np.ndarray
    n_signals: int
    n_dropped: int


def run_strategy(
    pricer: OptionPricer,
    signal: np.ndarray,
    eval_mask: np.ndarray,
    rules: Rules,
    costs: CostModel,
    name: str = "strategy",
) -> StrategyResult:
    """Backtest one signal vector (0/1/2 per dataset row) on the rows in ``eval_mask``."""
    m = pricer.market
    t, e, is_call, dropped = candidate_entries(m, signal, eval_mask)
    # Exits depend only on the entry, so every candidate is simulated at once and the
    # non-overlapping ones are picked afterwards.
    sim = simulate(pricer, e, is_call, rules, costs)
    acc = select_trades(sim["entry_row"], sim["exit_row"], rules.max_positions)
    chosen = take(sim, acc)
    contracts = size_positions(chosen, rules, costs)
    trades = finalize(chosen, contracts, costs, m.r, m.q)
    return StrategyResult(
        name,
        trades,
        t[acc],
        int(np.count_nonzero(np.isin(signal, (CALL, PUT)) & eval_mask)),
        dropped,
    )


def daily_pnl(
    market: MarketData, eval_mask: np.ndarray, trades: dict[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """(sessions of the evaluated period, net P&L booked on each at the trade's exit)."""
    sessions = np.unique(market.session[eval_mask])
    pnl = np.zeros(sessions.size)
    if trades["exit_row"].size:
        pos = np.searchsorted(sessions, market.session[trades["exit_row"]])
        np.add.at(pnl, pos, trades["net_pnl"])
    return sessions, pnl


def strategy_summary(
    market: MarketData,
    eval_mask: np.ndarray,
    result: StrategyResult,
    rules: Rules,
    n_trials: int = 1,
    var_trial_sharpes: float = 0.0,
    bootstrap_samples: int = 500,
    bootstrap_block_days: int = 5,
    seed: int = 0,
) -> dict[str, Any]:
    tr = result.trades
    _, pnl_d = daily_pnl(market, eval_mask, tr)
    notional = float(np.sum((tr["entry_fill"] + tr["exit_fill"]) * tr["contracts"] * MULTIPLIER))
    metrics = strategy_metrics(
        net_pnl=tr["net_pnl"],
        is_call=tr["is_call"],
        daily_pnl=pnl_d,
        initial_capital=rules.initial_capital,
        bars_in_position=int(np.sum(tr["exit_row"] - tr["entry_row"] + 1)),
        n_bars=int(eval_mask.sum()),
        premium_notional=notional,
        n_trials=n_trials,
        var_trial_sharpes=var_trial_sharpes,
        bootstrap_samples=bootstrap_samples,
        bootstrap_block_days=bootstrap_block_days,
        seed=seed,
    )
    metrics["n_signals"] = result.n_signals
    metrics["signals_dropped_at_session_end"] = result.n_dropped
    metrics["exit_reasons"] = {
        name: int(np.sum(tr["exit_reason"] == i)) for i, name in enumerate(EXIT_REASONS)
    }
    return metrics


# ---------------------------------------------------------------------------------- stage


def load_market(cfg: Config, prepared_dir: Path) -> tuple[MarketData, Any]:
    """MarketData from the prepared dataset (``PreparedData.load``) plus the loaded object."""
    from marketjepa.data.prepared import PreparedData

    data = PreparedData.load(Path(prepared_dir))
    df = getattr(data, "df", None)
    if df is None:
        df = data.frame
    market = MarketData.from_frame(
        df,
        np.asarray(data.session),
        np.asarray(data.split),
        cfg.data.risk_free_rate,
        cfg.data.dividend_yield,
    )
    return market, data


def make_pricer(cfg: Config, prepared_dir: Path, market: MarketData) -> OptionPricer:
    bt = cfg.backtest
    book = (
        load_option_book(prepared_dir, market, bt.max_staleness_minutes)
        if bt.pricing == "bars"
        else None
    )
    return OptionPricer(
        market,
        bt.pricing,
        book,
        iv_rv_ratio=bt.iv_rv_ratio,
        iv_skew_per_moneyness=bt.iv_skew_per_moneyness,
        vol_lookback=cfg.labels.vol_lookback,
        calendar=cfg.data.calendar,
    )


def evaluation_split(cfg: Config, split: np.ndarray) -> tuple[int, str]:
    """Test days (2); with no test split (seed preset) validation days, flagged."""
    if cfg.split.test > 0 and np.any(split == 2):
        return 2, "test"
    return 1, "val"


def valid_signal_rows(market: MarketData, eval_mask: np.ndarray) -> np.ndarray:
    probe = np.where(eval_mask, CALL, HOLD).astype(np.int8)
    t, _, _, _ = candidate_entries(market, probe, eval_mask)
    return t


def baseline_signals(
    rows: np.ndarray, n_trades: int, n: int, side: str, rng: np.random.Generator | None = None
) -> np.ndarray:
    """Signals at ``n_trades`` evenly spaced (or random, given ``rng``) valid rows."""
    sig = np.zeros(n, np.int8)
    k = min(max(n_trades, 0), rows.size)
    if k == 0:
        return sig
    if rng is None:
        pick = rows[np.linspace(0, rows.size - 1, k).round().astype(np.int64)]
    else:
        pick = np.sort(rng.choice(rows, size=k, replace=False))
    if side == "call":
        sig[pick] = CALL
    elif side == "put":
        sig[pick] = PUT
    else:
        sig[pick] = np.where(rng.random(k) < 0.5, CALL, PUT) if rng is not None else CALL
    return sig


def trades_frame(
    name: str, market: MarketData, tr: dict[str, np.ndarray], signal_rows: np.ndarray, ticker: str
) -> pl.DataFrame:
    n = tr["entry_row"].size
    exp_date = pl.Series("expiry", tr["exp_day"].astype(np.int32)).cast(pl.Date)
    right = np.where(tr["is_call"], "C", "P")
    src_names = np.array(["surface", "proxy", "bars"])
    df = pl.DataFrame(
        {
            "strategy": pl.Series("strategy", [name] * n, dtype=pl.String),
            "side": pl.Series("side", np.where(tr["is_call"], "CALL", "PUT"), dtype=pl.String),
            "signal_row": signal_rows.astype(np.int64),
            "entry_row": tr["entry_row"],
            "exit_row": tr["exit_row"],
            "entry_ts": market.ts[tr["entry_row"]],
            "exit_ts": market.ts[tr["exit_row"]],
            "right": pl.Series("right", right, dtype=pl.String),
            "strike": tr["strike"],
            "expiry": exp_date,
            "contracts": tr["contracts"],
            "entry_S": tr["entry_S"],
            "exit_S": tr["exit_S"],
            "entry_iv": tr["entry_iv"],
            "exit_iv": tr["exit_iv"],
            "entry_mid": tr["entry_mid"],
            "exit_mid": tr["exit_mid"],
            "entry_fill": tr["entry_fill"],
            "exit_fill": tr["exit_fill"],
            "entry_price_source": pl.Series(src_names[tr["entry_source"]], dtype=pl.String),
            "exit_price_source": pl.Series(src_names[tr["exit_source"]], dtype=pl.String),
            **{
                c: tr[c]
                for c in (
                    "cost_spread",
                    "cost_slippage",
                    "cost_commission",
                    "cost_fees",
                    "cost_total",
                )
            },
            "gross_pnl": tr["gross_pnl"],
            **{c: tr[c] for c in ATTRIBUTION_COLUMNS},
            "net_pnl": tr["net_pnl"],
            "exit_reason": pl.Series(
                np.array(EXIT_REASONS)[tr["exit_reason"]] if n else [], dtype=pl.String
            ),
        }
    )
    occ = (
        pl.lit(ticker)
        + pl.col("expiry").dt.strftime("%y%m%d")
        + pl.col("right")
        + (pl.col("strike") * 1000).round().cast(pl.Int64).cast(pl.Utf8).str.zfill(8)
    )
    return df.with_columns(occ.alias("contract"))


def _price_sources(trades: list[dict[str, np.ndarray]]) -> dict[str, int]:
    src = (
        np.concatenate([np.concatenate([t["entry_source"], t["exit_source"]]) for t in trades])
        if trades
        else np.zeros(0)
    )
    return {
        "surface_observed": int(np.sum(src == SRC_SURFACE)),
        "surface_proxy": int(np.sum(src == SRC_PROXY)),
        "bars": int(np.sum(src == SRC_BARS)),
    }


def run_backtest(cfg: Config, prepared_dir: Path, run_dir: Path) -> dict:
    """Backtest every policy's signals and the baselines; write ``run_dir/backtest/``."""
    t_start = time.perf_counter()
    run_dir = Path(run_dir)
    sig_path = run_dir / "policy" / "signals.parquet"
    pol_path = run_dir / "policy" / "policy.json"
    if not sig_path.exists() or not pol_path.exists():
        raise StageInputMissing(f"{sig_path} not found — run `marketjepa policy` first")
    policy = read_json(pol_path)
    signals = pl.read_parquet(sig_path)
    market, _ = load_market(cfg, prepared_dir)
    pricer = make_pricer(cfg, prepared_dir, market)
    report, trades, equity = evaluate_signals(cfg, pricer, signals, policy, source=str(sig_path))
    out_dir = run_dir / "backtest"
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / "trades.parquet") as tmp:
        trades.write_parquet(tmp)
    with atomic_path(out_dir / "equity.parquet") as tmp:
        equity.write_parquet(tmp)
    report["seconds"] = round(time.perf_counter() - t_start, 3)
    write_result(
        out_dir / "metrics.json",
        validate_result(report, BacktestMetrics, "backtest/metrics.json"),
    )
    print_table(report)
    return report


@dataclass(frozen=True)
class _Bench:
    """What every strategy of one backtest is run and summarized against."""

    pricer: OptionPricer
    eval_mask: np.ndarray
    rules: Rules
    costs: CostModel
    summary_kwargs: dict[str, Any]  # deflation (all trials of the run) and bootstrap

    def run(self, name: str, signal: np.ndarray) -> tuple[StrategyResult, dict[str, Any]]:
        res = run_strategy(self.pricer, signal, self.eval_mask, self.rules, self.costs, name)
        summary = strategy_summary(
            self.pricer.market, self.eval_mask, res, self.rules, **self.summary_kwargs
        )
        return res, summary


def _check_signals(signals: pl.DataFrame, source: str) -> None:
    need = {"row", "split", "representation", "signal"}
    if need - set(signals.columns):
        raise DataValidationError(
            f"signals lack columns {sorted(need - set(signals.columns))}", file=source
        )


def _signal_vector(sub: pl.DataFrame, n: int, rep: str, source: str) -> np.ndarray:
    """Dense 0/1/2 signal per dataset row from one representation's signal rows."""
    rows = sub["row"].to_numpy().astype(np.int64)
    if rows.size and (rows.min() < 0 or rows.max() >= n):
        raise DataValidationError(
            f"signal rows outside the dataset (0..{n - 1})",
            file=source,
            where=f"representation {rep}",
        )
    sig = np.zeros(n, np.int8)
    sig[rows] = sub["signal"].to_numpy().astype(np.int8)
    return sig


def _baseline_trade_count(
    results: dict[str, StrategyResult], reps: list[str], eval_mask: np.ndarray
) -> tuple[int, str]:
    """Trades per baseline: the primary policy's count, else a stated fallback."""
    primary = "lejepa" if "lejepa" in results else (reps[0] if reps else None)
    n_ref = results[primary].trades["entry_row"].size if primary else 0
    if n_ref:
        return n_ref, f"same trade count as {primary}"
    counts = [r.trades["entry_row"].size for r in results.values() if r.trades["entry_row"].size]
    n_ref = int(np.median(counts)) if counts else max(1, int(eval_mask.sum() * 0.001))
    return n_ref, f"{primary or 'no policy'} made no trades: median of the others or 0.1% of bars"


def equity_frame(
    market: MarketData,
    eval_mask: np.ndarray,
    results: dict[str, StrategyResult],
    initial_capital: float,
) -> pl.DataFrame:
    """Daily P&L, equity and drawdown of every strategy (``equity.csv``)."""
    eq = []
    for name, res in results.items():
        sessions, pnl = daily_pnl(market, eval_mask, res.trades)
        first_row = np.searchsorted(market.session, sessions)
        equity = initial_capital + np.cumsum(pnl)
        peak = np.maximum.accumulate(np.concatenate([[initial_capital], equity]))[1:]
        eq.append(
            pl.DataFrame(
                {
                    "strategy": [name] * sessions.size,
                    "session": sessions,
                    "date": pl.Series(market.day[first_row].astype(np.int32)).cast(pl.Date),
                    "pnl": pnl,
                    "equity": equity,
                    "drawdown": 1.0 - equity / peak,
                }
            )
        )
    return pl.concat(eq, how="vertical")


def evaluate_signals(
    cfg: Config,
    pricer: OptionPricer,
    signals: pl.DataFrame,
    policy: dict[str, Any],
    source: str = "signals.parquet",
) -> tuple[dict[str, Any], pl.DataFrame, pl.DataFrame]:
    """Backtest each representation's signals plus the baselines: (metrics, trades, equity)."""
    market = pricer.market
    split_id, evaluated_on = evaluation_split(cfg, market.split)
    eval_mask = market.split == split_id
    if not eval_mask.any():
        raise DataValidationError(f"no {evaluated_on} rows in the prepared dataset")
    _check_signals(signals, source)
    # Every row — each policy and each baseline — is deflated by every configuration
    # tried in the run, not only its own threshold grid (issue #11).
    n_trials, var_trials = run_trials(policy)
    bench = _Bench(
        pricer,
        eval_mask,
        Rules.from_config(cfg.backtest),
        CostModel.from_config(cfg.backtest),
        {
            "n_trials": n_trials,
            "var_trial_sharpes": var_trials,
            "bootstrap_samples": cfg.eval.bootstrap_samples,
            "bootstrap_block_days": cfg.eval.bootstrap_block_days,
            "seed": cfg.eval.seed,
        },
    )
    results: dict[str, StrategyResult] = {}
    strategies: dict[str, dict[str, Any]] = {}
    present = set(signals["representation"].unique().to_list())
    reps = [r for r in policy.get("order", sorted(present)) if r in present]
    for rep in reps:
        sub = signals.filter((pl.col("representation") == rep) & (pl.col("split") == split_id))
        results[rep], strategies[rep] = bench.run(rep, _signal_vector(sub, market.n, rep, source))

    n_ref, rate_note = _baseline_trade_count(results, reps, eval_mask)
    valid_rows = valid_signal_rows(market, eval_mask)
    for side in ("call", "put"):
        name = f"always_{side}"
        sig = baseline_signals(valid_rows, n_ref, market.n, side)
        results[name], strategies[name] = bench.run(name, sig)
    rand = []
    for s in range(cfg.backtest.random_baseline_seeds):
        rng = np.random.default_rng(cfg.policy.seed * 1000 + s)
        sig = baseline_signals(valid_rows, n_ref, market.n, "random", rng)
        results[f"random_s{s}"], summary = bench.run(f"random_s{s}", sig)
        rand.append(summary)
    strategies["random"] = random_entry_distribution(rand)

    ticker = cfg.data.ticker
    trades = pl.concat(
        [trades_frame(n, market, r.trades, r.signal_rows, ticker) for n, r in results.items()],
        how="vertical",
    )
    equity = equity_frame(market, eval_mask, results, bench.rules.initial_capital)
    report = _report(cfg, results, evaluated_on, (n_trials, var_trials))
    report.update(
        baseline_trade_count=n_ref,
        baseline_trade_count_rule=rate_note,
        rules=to_jsonable(cfg.backtest.model_dump()),
        days=int(np.unique(market.session[eval_mask]).size),
        strategies=strategies,
        attribution={
            n: summarize(r.trades) for n, r in results.items() if not n.startswith("random_s")
        },
    )
    return report, trades, equity


def _report(
    cfg: Config,
    results: dict[str, StrategyResult],
    evaluated_on: str,
    trials: tuple[int, float],
) -> dict[str, Any]:
    """The head of ``metrics.json``: evaluated split, pricing provenance, trial count."""
    sources = _price_sources([r.trades for r in results.values()])
    surface_used = sources["surface_observed"] + sources["surface_proxy"]
    bars_mode = cfg.backtest.pricing == "bars"
    return {
        "evaluated_on": evaluated_on,
        "evaluated_on_warning": None
        if evaluated_on == "test"
        else "NO TEST SPLIT: backtest on validation days, the days the thresholds were chosen on "
        "(optimistic, as in the seed)",
        "pricing_mode": cfg.backtest.pricing,
        "prices_modeled": bool(not bars_mode or surface_used > 0),
        "price_sources": sources,
        "iv_proxy_note": "surface_proxy prices use IV = trailing RV x backtest.iv_rv_ratio + skew "
        "(no observed IV on those bars)"
        if sources["surface_proxy"]
        else None,
        "bars_fallbacks": surface_used if bars_mode else None,
        "n_trials": trials[0],
        "var_trial_sharpes": trials[1],
    }


def run_trials(policy: dict[str, Any]) -> tuple[int, float]:
    """(N, V) for the deflated Sharpe ratio: N = every configuration tried in the run
    (threshold pairs of every representation's policy; one head per run), V = variance
    of all their validation per-period Sharpe ratios (0 when unknown: the metrics then
    use the no-skill estimation variance)."""
    reps = policy.get("representations") or {}
    n = int(policy.get("n_trials_total") or sum(int(r.get("n_trials", 1)) for r in reps.values()))
    srs = np.array(
        [
            t.get("val_sharpe_daily")
            for r in reps.values()
            for t in r.get("trials") or []
            if t.get("val_sharpe_daily") is not None
        ],
        dtype=float,
    )
    srs = srs[np.isfinite(srs)]
    if srs.size > 1:
        return max(n, 1), float(srs.var(ddof=1))
    # Older policy.json files keep only each representation's variance.
    vs = [float(r["trial_sharpe_var"]) for r in reps.values() if r.get("trial_sharpe_var")]
    return max(n, 1), float(np.mean(vs)) if vs else 0.0


def random_entry_distribution(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and 5–95% range of scalar metrics over random-entry seeds."""
    out: dict[str, Any] = {"n_seeds": len(runs)}
    for key in (
        "total_return",
        "net_pnl",
        "n_trades",
        "win_rate",
        "sharpe",
        "sortino",
        "max_drawdown",
        "psr",
        "dsr",
        "call_share",
        "exposure",
    ):
        vals = np.array([r.get(key) for r in runs if r.get(key) is not None], dtype=float)
        if vals.size:
            out[key] = float(vals.mean())
            out[f"{key}_p05"] = float(np.quantile(vals, 0.05))
            out[f"{key}_p95"] = float(np.quantile(vals, 0.95))
        else:
            out[key] = None
    return out


def _fmt(x: Any, pct: bool = False) -> str:
    if x is None:
        return "—"
    return f"{100 * x:.2f}%" if pct else (f"{x:.2f}" if isinstance(x, float) else str(x))


def print_table(report: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(
        title=f"backtest on {report['evaluated_on']} days ({report['pricing_mode']} pricing)"
    )
    for col in ("strategy", "return", "trades", "win", "call%", "sharpe", "PSR", "DSR", "maxDD"):
        table.add_column(col, justify="right" if col != "strategy" else "left")
    for name, s in report["strategies"].items():
        table.add_row(
            name,
            _fmt(s.get("total_return"), True),
            _fmt(s.get("n_trades")),
            _fmt(s.get("win_rate"), True),
            _fmt(s.get("call_share"), True),
            _fmt(s.get("sharpe")),
            _fmt(s.get("psr")),
            _fmt(s.get("dsr")),
            _fmt(s.get("max_drawdown"), True),
        )
    console.print(table)
    if report["evaluated_on"] != "test":
        console.print(f"[bold red]WARNING[/] {report['evaluated_on_warning']}")
    att = report["attribution"].get("lejepa")
    if att:
        stage_line(
            "backtest",
            "lejepa P&L: underlying {:+.0f}, theta {:+.0f}, vega {:+.0f}, costs −{:.0f} → net {:+.0f} $".format(
                att["pnl_underlying"],
                att["pnl_theta"],
                att["pnl_vega"],
                att["cost_total"],
                att["net_pnl"],
            ),
        )

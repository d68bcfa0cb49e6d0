"""``marketjepa replay``: one day of a run's data fed bar by bar, as a live feed would.

At each bar t of the day the features are recomputed from the bars delivered so far (rows
≤ t, with the warm-up history before the day) through the ``prepare`` code path, normalized
with the run's train-fitted normalizer, and the window ending at t is embedded and decided
(:class:`marketjepa.serve.signal.TrainedRun`). Each decision is compared with the batch
pipeline's for that bar — the features ``prepare`` stored for the whole history, the same
window, head and thresholds — and with the policy stage's own ``signals.parquet`` where it
holds that bar. Train/serve parity means: features equal to ``PARITY_TOL`` and the same
class at every bar. A feature that peeks at later bars breaks it, because live the later
bars do not exist yet.

The day's option P&L is the backtest engine run on the replayed signals of that day (the
same entry/exit rules, pricing and costs as ``backtest``; the backtest stage itself trades
only the subsampled anchors of the policy stage, so its P&L for the day differs).
"""

from __future__ import annotations

from datetime import date
from typing import Any

import numpy as np
import polars as pl

from marketjepa.data.features import OPTION_COLUMNS
from marketjepa.data.prepare import BAR_COLUMNS
from marketjepa.errors import DataValidationError
from marketjepa.serve.signal import (
    CLASSES,
    REPRESENTATION,
    TrainedRun,
    bar_time,
    complete_before,
    make_market,
    make_pricer,
    market_frame,
)
from marketjepa.trading.backtest import Rules, run_strategy
from marketjepa.trading.costs import CostModel

PARITY_TOL = 1e-6


def load_frame(run: TrainedRun) -> pl.DataFrame:
    """The run's prepared dataset (bars, option summary, stored features)."""
    return pl.read_parquet(run.prepared_dir / "dataset.parquet")


def feed_frames(run: TrainedRun, frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame | None]:
    """What a feed delivers: the ingested bars and (if the run has options) the summary."""
    bars = frame.select([pl.col(c).cast(t) for c, t in BAR_COLUMNS.items()])
    osum = frame.select("ts", *OPTION_COLUMNS) if run.options else None
    return bars, osum


def batch_features(run: TrainedRun, frame: pl.DataFrame) -> np.ndarray:
    """Normalized features of the whole history at once, as ``prepare`` computes them."""
    bars, osum = feed_frames(run, frame)
    return run.normalize(run.features(bars, osum).raw)


def stored_features(run: TrainedRun, frame: pl.DataFrame) -> np.ndarray:
    """The features ``prepare`` wrote to ``dataset.parquet``."""
    cols = [f"f_{n}" for n in run.feature_names]
    return np.ascontiguousarray(frame.select(cols).to_numpy(), dtype=np.float32)


def live_step(
    run: TrainedRun, bars: pl.DataFrame, osum: pl.DataFrame | None, k: int
) -> tuple[Any, np.ndarray, np.ndarray, int]:
    """Decide bar ``k`` seeing only ``bars[: k + 1]``: (features, z at k, proba, signal)."""
    cf = run.features(bars.slice(0, k + 1), None if osum is None else osum.slice(0, k + 1))
    z = run.normalize(cf.raw)
    p, s = run.decide(z, np.array([k]))
    return cf, z[k], p[0], int(s[0])


def replay_day(
    run: TrainedRun,
    day: str,
    frame: pl.DataFrame | None = None,
    batch: np.ndarray | None = None,
    max_bars: int | None = None,
) -> dict[str, Any]:
    """Replay session ``day`` (YYYY-MM-DD) of the run's data bar by bar.

    ``batch`` ([N, F] normalized features over the prepared rows) is the batch side of the
    parity check; by default the features ``prepare`` stored. ``max_bars`` stops after the
    day's first bars (tests)."""
    frame = load_frame(run) if frame is None else frame
    batch = stored_features(run, frame) if batch is None else batch
    sess = (frame["session"].rank("dense").cast(pl.Int64) - 1).to_numpy()
    rows, a = _day_rows(run, frame, sess, day, max_bars)
    hist = frame.slice(a, int(rows[-1]) + 1 - a)
    bars, osum = feed_frames(run, hist)
    local = rows - a

    # Live: each bar sees only the bars delivered up to and including it.
    n = local.size
    live_z = np.zeros((n, len(run.feature_names)), np.float32)
    live_p, live_s = np.zeros((n, 3)), np.zeros(n, np.int8)
    for i, k in enumerate(local.tolist()):
        cf, z_k, live_p[i], live_s[i] = live_step(run, bars, osum, k)
        live_z[i] = z_k

    # Batch: the stored (or given) features of the whole history, the same windows.
    zb = np.asarray(batch[a : int(rows[-1]) + 1], np.float32)
    batch_p, batch_s = run.decide(zb, local)
    diff = np.abs(live_z.astype(np.float64) - zb[local])
    feat_diff = diff.max(axis=1)
    live = (live_s, live_p, batch_s, batch_p)
    stored = _stored_signals(run, rows)
    split = np.zeros(hist.height, np.int8)
    market = make_market(
        run, market_frame(cf, bars, osum), sess[a : int(rows[-1]) + 1] - sess[a], split
    )
    res, pricer = _day_trades(run, market, local, live_s)
    ts = hist["ts"].to_numpy()
    bars_out = [
        {
            "time": bar_time(ts[k]),
            "close": float(hist["close"][k]),
            "decision": CLASSES[int(live_s[i])],
            "p_call": float(live_p[i, 1]),
            "p_put": float(live_p[i, 2]),
            "batch_decision": CLASSES[int(batch_s[i])],
            "max_feature_diff": float(feat_diff[i]),
        }
        for i, k in enumerate(local.tolist())
    ]
    tr = res.trades
    return {
        "run": str(run.run_dir),
        "day": day,
        "representation": REPRESENTATION,
        "thresholds": run.thresholds(),
        "warmup_sessions": run.warmup_sessions,
        "history_bars": int(hist.height - n),
        "bars": bars_out,
        "parity": _parity(run, live, diff, rows, stored),
        "signals": {c: int((live_s == i).sum()) for i, c in enumerate(CLASSES)},
        "trades": _trade_rows(market, tr),
        "net_pnl": float(tr["net_pnl"].sum()) if tr["net_pnl"].size else 0.0,
        "pricing": pricer.mode,
        "contracts_per_trade": run.cfg.backtest.contracts,
    }


def _day_rows(
    run: TrainedRun, frame: pl.DataFrame, sess: np.ndarray, day: str, max_bars: int | None
) -> tuple[np.ndarray, int]:
    """The day's rows (the first ``max_bars``) and the first row of its warm-up history;
    a clear error when ``day`` is no session of the data or is not warmed up."""
    try:
        target = date.fromisoformat(day)
    except ValueError:
        raise DataValidationError(f"--day {day!r}: expected YYYY-MM-DD") from None
    dates = frame["session"].unique().sort()
    hit = np.flatnonzero(dates.to_numpy() == np.datetime64(target))
    if hit.size == 0:
        raise DataValidationError(
            f"--day {day}: not a session of this run's data ({dates[0]} to {dates[-1]})",
            file=str(run.prepared_dir / "dataset.parquet"),
        )
    d = int(hit[0])
    rows = np.flatnonzero(sess == d)
    L, need = run.window, run.warmup_sessions
    done = complete_before(sess, frame["minute"].to_numpy())
    first_rows = np.searchsorted(sess, np.arange(dates.len()))
    w0s = first_rows - L + 1
    ok_days = np.flatnonzero((w0s >= 0) & (done[np.maximum(w0s, 0)] >= need))
    if d not in set(ok_days.tolist()):
        earliest = f"the earliest is {dates[int(ok_days[0])]}" if ok_days.size else "none is"
        raise DataValidationError(
            f"--day {day}: not warmed up — a decision needs {run.warmup_reason()}; "
            f"{earliest} in this run's data ({dates[0]} to {dates[-1]})",
        )
    w0 = int(rows[0]) - L + 1
    if max_bars is not None:
        rows = rows[:max_bars]
    # First bar of the warm-up history: ``need`` complete sessions before the window.
    return rows, int(np.flatnonzero(done == done[w0] - need)[0])


def _day_trades(run: TrainedRun, market, local: np.ndarray, live_s: np.ndarray):
    """The day's option trades of the live signals under the backtest rules."""
    option_bars = None
    ob = run.prepared_dir / "option_bars.parquet"
    if run.cfg.backtest.pricing == "bars" and ob.exists():
        option_bars = pl.read_parquet(ob)
    pricer = make_pricer(run, market, option_bars)
    eval_mask = np.zeros(market.n, bool)
    eval_mask[local] = True
    sig_full = np.zeros(market.n, np.int8)
    sig_full[local] = live_s
    bt = run.cfg.backtest
    res = run_strategy(
        pricer, sig_full, eval_mask, Rules.from_config(bt), CostModel.from_config(bt), "replay"
    )
    return res, pricer


def _trade_rows(market, tr: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    return [
        {
            "entry": bar_time(market.ts[tr["entry_row"][j]]),
            "exit": bar_time(market.ts[tr["exit_row"][j]]),
            "side": "CALL" if tr["is_call"][j] else "PUT",
            "strike": float(tr["strike"][j]),
            "expiry": str(np.datetime64(int(tr["exp_day"][j]), "D")),
            "entry_mid": float(tr["entry_mid"][j]),
            "exit_mid": float(tr["exit_mid"][j]),
            "exit_reason": ("time", "close", "stop", "target")[int(tr["exit_reason"][j])],
            "net_pnl": float(tr["net_pnl"][j]),
        }
        for j in range(tr["entry_row"].size)
    ]


def _parity(
    run: TrainedRun,
    live: tuple[np.ndarray, ...],
    diff: np.ndarray,
    rows: np.ndarray,
    stored: list[tuple[int, int]],
) -> dict[str, Any]:
    """Live vs batch: decisions, features (``diff`` = |live − batch| per bar and feature),
    probabilities, and the policy stage's stored signals."""
    live_s, live_p, batch_s, batch_p = live
    feat_diff, worst = diff.max(axis=1), diff.max(axis=0)
    matched = [
        (int(r), int(s)) for r, s in stored if int(live_s[np.searchsorted(rows, r)]) == int(s)
    ]
    return {
        "tolerance": PARITY_TOL,
        "bars": int(live_s.size),
        "same_decision": int((live_s == batch_s).sum()),
        "features_within_tol": int((feat_diff <= PARITY_TOL).sum()),
        "max_feature_diff": float(feat_diff.max()),
        "max_proba_diff": float(np.abs(live_p - batch_p).max()),
        "worst_features": {
            run.feature_names[j]: float(worst[j])
            for j in np.argsort(-worst)[:3]
            if worst[j] > PARITY_TOL
        },
        "stored_signals": len(stored),
        "stored_signals_matched": len(matched),
        "ok": bool(
            (live_s == batch_s).all()
            and (feat_diff <= PARITY_TOL).all()
            and len(matched) == len(stored)
        ),
    }


def _stored_signals(run: TrainedRun, rows: np.ndarray) -> list[tuple[int, int]]:
    """(row, signal) the policy stage wrote for the LeJEPA policy on these rows."""
    path = run.run_dir / "policy" / "signals.parquet"
    if not path.exists():
        return []
    s = pl.read_parquet(path).filter(
        (pl.col("representation") == REPRESENTATION) & pl.col("row").is_in(rows.tolist())
    )
    return list(zip(s["row"].to_list(), s["signal"].to_list(), strict=True))


def format_replay(out: dict[str, Any]) -> list[str]:
    """Bar-by-bar lines, the parity verdict and the day's trades."""
    th = {k: "off" if v is None else f"{v:.3f}" for k, v in out["thresholds"].items()}
    lines = [
        f"replay {out['day']} of {out['run']} · {out['representation']} policy · thresholds "
        f"CALL {th['BUY_CALL']} / PUT {th['BUY_PUT']} · warm-up "
        f"{out['history_bars']:,} bars ({out['warmup_sessions']}+ sessions)",
        "time                 close     live      p(CALL) p(PUT)  batch     max|Δfeature|",
    ]
    for b in out["bars"]:
        flag = "" if b["decision"] == b["batch_decision"] else "  MISMATCH"
        lines.append(
            f"{b['time']}  {b['close']:8.2f}  {b['decision']:<8}  {b['p_call']:.3f}   "
            f"{b['p_put']:.3f}   {b['batch_decision']:<8}  {b['max_feature_diff']:.1e}{flag}"
        )
    p = out["parity"]
    verdict = "OK" if p["ok"] else "FAILED"
    lines.append(
        f"parity {verdict}: {p['same_decision']}/{p['bars']} decisions equal the batch "
        f"pipeline's, {p['features_within_tol']}/{p['bars']} bars' features within "
        f"{p['tolerance']:g} (max {p['max_feature_diff']:.1e}, probabilities max "
        f"{p['max_proba_diff']:.1e}); policy-stage signals matched "
        f"{p['stored_signals_matched']}/{p['stored_signals']}"
    )
    if p["worst_features"]:
        worst = ", ".join(f"{k} {v:.1e}" for k, v in p["worst_features"].items())
        lines.append(f"features that differ: {worst}")
    s = out["signals"]
    lines.append(
        f"signals: {s['BUY_CALL']} BUY_CALL, {s['BUY_PUT']} BUY_PUT, {s['HOLD']} HOLD; "
        f"{len(out['trades'])} trades ({out['pricing']} pricing, "
        f"{out['contracts_per_trade']} contract(s) each)"
    )
    for t in out["trades"]:
        lines.append(
            f"  {t['side']:<4} {t['strike']:g} exp {t['expiry']}: {t['entry']} @ "
            f"{t['entry_mid']:.2f} → {t['exit'][11:]} @ {t['exit_mid']:.2f} ({t['exit_reason']}) "
            f"net {t['net_pnl']:+.2f} $"
        )
    lines.append(f"day's option P&L after costs: {out['net_pnl']:+.2f} $")
    return lines

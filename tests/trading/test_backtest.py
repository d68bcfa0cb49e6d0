import numpy as np
import polars as pl
import pytest

from marketjepa.black_scholes import bs_price
from marketjepa.config import load_config
from marketjepa.constants import CALENDAR_MINUTES_PER_YEAR
from marketjepa.errors import DataValidationError
from marketjepa.trading.backtest import (
    CALL,
    CLOSE,
    PUT,
    STOP,
    TARGET,
    TIME,
    Rules,
    candidate_entries,
    evaluate_signals,
    run_strategy,
    trades_frame,
)
from marketjepa.trading.costs import CostModel
from marketjepa.trading.pricing import MarketData, OptionPricer, random_market


def reference_backtest(pricer, signal, eval_mask, rules, costs):
    """Bar-by-bar loop: the obviously-correct version the vectorized engine must match."""
    m = pricer.market
    open_pos, trades, realized = [], [], 0.0

    def mid_at(t, pos):
        return pricer.quote(np.array([t]), pos["K"], pos["exp"], pos["call"]).mid[0]

    for t in range(m.n):
        is_last = t == m.n - 1 or m.session[t + 1] != m.session[t]
        s = signal[t - 1] if t >= 1 else 0
        if (
            s in (CALL, PUT)
            and eval_mask[t - 1]
            and eval_mask[t]
            and m.session[t] == m.session[t - 1]
            and not is_last
            and len(open_pos) < rules.max_positions
        ):
            call = s == CALL
            K = float(np.rint(m.close[t]))
            exp = int(pricer.expiry_day(np.array([t]), rules.dte)[0])
            pos = {"entry": t, "signal": t - 1, "K": K, "exp": exp, "call": call}
            pos["mid0"] = mid_at(t, pos)
            pos["premium"] = pos["mid0"] + costs.half_spread(pos["mid0"]) + costs.slippage_abs
            if rules.equity_fraction is None:
                pos["n"] = rules.contracts
            else:
                unit = (
                    pos["premium"] * 100 + costs.commission_per_contract + costs.fees_per_contract
                )
                pos["n"] = int(
                    np.floor(rules.equity_fraction * (rules.initial_capital + realized) / unit)
                )
            open_pos.append(pos)
        still = []
        for pos in open_pos:
            if pos["entry"] == t:
                still.append(pos)
                continue
            mid = mid_at(t, pos)
            reason = None
            if rules.stop_loss is not None and mid <= pos["premium"] * (1 - rules.stop_loss):
                reason = STOP
            elif rules.take_profit is not None and mid >= pos["premium"] * (1 + rules.take_profit):
                reason = TARGET
            elif t == pos["entry"] + rules.hold_bars:
                reason = TIME
            elif is_last:
                reason = CLOSE
            if reason is None:
                still.append(pos)
                continue
            exit_fill = max(mid - costs.half_spread(mid), 0.0)
            exit_fill = max(exit_fill - costs.slippage_abs, 0.0)
            fixed = 2 * (costs.commission_per_contract + costs.fees_per_contract) * pos["n"]
            net = (exit_fill - pos["premium"]) * 100 * pos["n"] - fixed
            realized += net
            trades.append((pos["signal"], pos["entry"], t, pos["call"], reason, pos["n"], net))
        open_pos = still
    trades.sort(key=lambda x: x[1])
    return trades


@pytest.mark.parametrize("seed", range(6))
def test_vectorized_equals_reference_loop(seed):
    rng = np.random.default_rng(seed)
    n_sess, M = 6, 60
    split = np.repeat(rng.choice([1, 2], n_sess), M).astype(np.int8)
    m = random_market(n_sess, seed, session_minutes=M, surface=bool(seed % 2), split=split)
    pricer = OptionPricer(m, "surface")
    signal = np.where(rng.random(m.n) < 0.2, rng.integers(1, 3, m.n), 0).astype(np.int8)
    eval_mask = m.split == 2
    rules = Rules(
        dte=int(rng.choice([0, 1, 7])),
        hold_bars=int(rng.integers(2, 15)),
        stop_loss=[None, 0.1][seed % 2],
        take_profit=[None, 0.15, 0.1][seed % 3],
        max_positions=[1, 1, 3][seed % 3],
        contracts=int(rng.integers(1, 4)),
        equity_fraction=[None, 0.3][seed // 4],
    )
    costs = CostModel(0.02, 0.01, 0.65, 0.02, 0.01)
    res = run_strategy(pricer, signal, eval_mask, rules, costs)
    ref = reference_backtest(pricer, signal, eval_mask, rules, costs)
    tr = res.trades
    got = list(
        zip(
            res.signal_rows.tolist(),
            tr["entry_row"].tolist(),
            tr["exit_row"].tolist(),
            tr["is_call"].tolist(),
            tr["exit_reason"].tolist(),
            tr["contracts"].tolist(),
            strict=True,
        )
    )
    assert len(ref) > 3
    assert got == [r[:6] for r in ref]
    np.testing.assert_allclose(tr["net_pnl"], [r[6] for r in ref], atol=1e-9)


def _flat_market(path, session_minutes=None, iv=0.3):
    """One session whose closes follow ``path`` with a flat IV surface."""
    n = len(path)
    M = session_minutes or n
    day = 19724
    ts = (day * 1440 + 870 + np.arange(n)) * 60 * 10**9
    full = np.full(n, iv)
    return MarketData(
        ts=ts,
        session=np.zeros(n),
        minute=np.arange(n),
        session_minutes=np.full(n, M),
        close=np.asarray(path, float),
        split=np.full(n, 2),
        iv_atm_near=full,
        iv_atm_far=full,
        iv_put_25d=full,
        iv_call_25d=full,
        near_dte=(M - np.arange(n) - 1) / 1440.0,
        far_dte=7.0 + (M - np.arange(n) - 1) / 1440.0,
        options_valid=np.ones(n, bool),
    )


def test_entry_price_and_costs_to_the_cent():
    path = np.full(40, 450.2)
    path[20:] = 452.0
    m = _flat_market(path, session_minutes=390)
    pricer = OptionPricer(m, "surface")
    sig = np.zeros(m.n, np.int8)
    sig[9] = CALL
    costs = CostModel(0.03, 0.0, 0.65, 0.05, 0.01)
    res = run_strategy(pricer, sig, np.ones(m.n, bool), Rules(hold_bars=15, contracts=3), costs)
    tr = res.trades
    assert tr["entry_row"].tolist() == [10] and tr["exit_row"].tolist() == [25]
    assert tr["strike"][0] == 450.0
    # by hand: bar 10 closes 390 − 10 − 1 = 379 minutes before the close, 0DTE
    mid0 = bs_price(450.2, 450.0, 379 / CALENDAR_MINUTES_PER_YEAR, 0.3, True)
    mid1 = bs_price(452.0, 450.0, 364 / CALENDAR_MINUTES_PER_YEAR, 0.3, True)
    assert tr["entry_mid"][0] == pytest.approx(mid0, abs=1e-12)
    assert tr["exit_mid"][0] == pytest.approx(mid1, abs=1e-12)
    fill0, fill1 = mid0 + 0.03 + 0.01, mid1 - 0.03 - 0.01
    net = (fill1 - fill0) * 300 - 2 * 3 * (0.65 + 0.05)
    assert round(tr["net_pnl"][0], 2) == round(net, 2)
    assert round(tr["cost_spread"][0], 2) == 18.00  # 0.06 × 300
    assert round(tr["cost_slippage"][0], 2) == 6.00
    assert round(tr["cost_commission"][0], 2) == 3.90
    assert round(tr["cost_fees"][0], 2) == 0.30
    assert tr["gross_pnl"][0] - tr["cost_total"][0] == pytest.approx(tr["net_pnl"][0], abs=1e-9)


def test_exit_reasons_time_stop_target_close():
    n = 60
    costs = CostModel(0.01, 0.0, 0.0, 0.0, 0.0)
    # stop: the underlying falls 0.1% a bar after the entry; a call loses half its premium
    down = 450.0 * np.exp(-0.001 * np.maximum(np.arange(n) - 5, 0))
    m = _flat_market(down, session_minutes=390)
    pr = OptionPricer(m, "surface")
    sig = np.zeros(n, np.int8)
    sig[4] = CALL
    rules = Rules(hold_bars=40, stop_loss=0.5, take_profit=1.0)
    tr = run_strategy(pr, sig, np.ones(n, bool), rules, costs).trades
    mids = pr.quote(np.arange(n), 450.0, m.day[0], True).mid
    first = 6 + int(np.argmax(mids[6:] <= tr["entry_fill"][0] * 0.5))
    assert tr["exit_row"][0] == first and tr["exit_reason"][0] == STOP
    assert mids[first - 1] > tr["entry_fill"][0] * 0.5
    # target: a rally doubles the call
    up = 450.0 * np.exp(0.001 * np.maximum(np.arange(n) - 5, 0))
    m2 = _flat_market(up, session_minutes=390)
    tr = run_strategy(OptionPricer(m2, "surface"), sig, np.ones(n, bool), rules, costs).trades
    assert tr["exit_reason"][0] == TARGET and tr["exit_row"][0] < 5 + 40
    # time: a flat market, nothing triggers
    m3 = _flat_market(np.full(n, 450.0), session_minutes=390)
    tr = run_strategy(OptionPricer(m3, "surface"), sig, np.ones(n, bool), rules, costs).trades
    assert tr["exit_reason"][0] == TIME and tr["exit_row"][0] == 45
    # close: the session ends before hold_bars; a 0DTE exit at the last bar is intrinsic
    m4 = _flat_market(np.linspace(450.0, 451.7, n))  # session of exactly n minutes
    sig4 = np.zeros(n, np.int8)
    sig4[n - 10] = CALL
    tr = run_strategy(
        OptionPricer(m4, "surface"), sig4, np.ones(n, bool), Rules(hold_bars=30), costs
    ).trades
    assert tr["exit_reason"][0] == CLOSE and tr["exit_row"][0] == n - 1
    assert tr["exit_mid"][0] == pytest.approx(max(451.7 - tr["strike"][0], 0.0), abs=1e-12)


def test_no_entry_from_session_end_signals():
    m = random_market(2, 0, session_minutes=30)
    sig = np.zeros(m.n, np.int8)
    sig[[28, 29, 30]] = CALL  # 28 → entry at last bar (no), 29 → next session (no), 30 ok
    t, e, _, dropped = candidate_entries(m, sig, np.ones(m.n, bool))
    assert t.tolist() == [30] and e.tolist() == [31] and dropped == 2


def test_no_look_ahead_future_bars_cannot_change_entries():
    m = random_market(4, 7, session_minutes=120, surface=False)
    rng = np.random.default_rng(1)
    sig = np.where(rng.random(m.n) < 0.05, rng.integers(1, 3, m.n), 0).astype(np.int8)
    rules = Rules(hold_bars=10, stop_loss=0.3)
    base = run_strategy(
        OptionPricer(m, "surface"), sig, np.ones(m.n, bool), rules, CostModel()
    ).trades
    k = 3  # check the third trade's entry under perturbations after its entry bar
    e = int(base["entry_row"][k])
    close = m.close.copy()
    close[e + 1 :] *= np.exp(rng.normal(0, 0.01, m.n - e - 1))
    m2 = MarketData(
        ts=m.ts,
        session=m.session,
        minute=m.minute,
        session_minutes=m.session_minutes,
        close=close,
        split=m.split,
        r=m.r,
        q=m.q,
    )
    pert = run_strategy(
        OptionPricer(m2, "surface"), sig, np.ones(m.n, bool), rules, CostModel()
    ).trades
    for col in ("entry_row", "strike", "entry_mid", "entry_iv", "is_call"):
        np.testing.assert_array_equal(pert[col][: k + 1], base[col][: k + 1])
    assert not np.allclose(pert["exit_mid"][k], base["exit_mid"][k])


def test_trades_frame_and_stage_on_val_without_test_split():
    cfg = load_config(
        "seed", overrides=["backtest.random_baseline_seeds=2", "eval.bootstrap_samples=20"]
    )
    split = np.repeat(np.array([0, 0, 1, 1, 1], np.int8), 60)
    m = random_market(5, 2, session_minutes=60, split=split)
    pricer = OptionPricer(m, "surface")
    rows = np.flatnonzero(split == 1)
    sig = np.zeros(rows.size, np.int8)
    sig[::7] = CALL
    signals = pl.DataFrame(
        {
            "row": rows,
            "ts": m.ts[rows],
            "split": np.ones(rows.size, np.int8),
            "representation": ["lejepa"] * rows.size,
            "signal": sig,
        }
    )
    policy = {
        "order": ["lejepa"],
        "representations": {"lejepa": {"n_trials": 5, "trial_sharpe_var": 0.01}},
        "n_trials_total": 5,
    }
    report, trades, equity = evaluate_signals(cfg, pricer, signals, policy)
    assert report["evaluated_on"] == "val" and "NO TEST SPLIT" in report["evaluated_on_warning"]
    assert report["prices_modeled"] is True and report["n_trials"] == 5
    lej = report["strategies"]["lejepa"]
    assert lej["n_trades"] > 0 and lej["n_trials"] == 5 and lej["call_share"] == 1.0
    assert report["strategies"]["always_put"]["put_share"] == 1.0
    assert report["strategies"]["always_call"]["n_trades"] == lej["n_trades"]
    # Baselines are deflated by every configuration tried in the run, like the policies.
    for name in ("always_call", "always_put"):
        b = report["strategies"][name]
        assert b["n_trials"] == 5 and b["sr0_deflated"] > 0
        assert b["dsr"] is None or b["psr"] is None or b["dsr"] <= b["psr"]
    assert set(equity["strategy"].unique()) >= {"lejepa", "always_call", "random_s0"}
    t = trades.filter(pl.col("strategy") == "lejepa")
    att = report["attribution"]["lejepa"]
    assert att["net_pnl"] == pytest.approx(t["net_pnl"].sum())
    assert att["pnl_underlying"] + att["pnl_theta"] + att["pnl_vega"] + att[
        "pnl_residual"
    ] == pytest.approx(att["gross_pnl"])
    c = t.row(0, named=True)
    assert (
        c["contract"] == f"SPY{c['expiry'].strftime('%y%m%d')}C{int(round(c['strike'] * 1000)):08d}"
    )
    bad = signals.with_columns(pl.lit(10**6).alias("row"))
    with pytest.raises(DataValidationError):
        evaluate_signals(cfg, pricer, bad, policy)


def test_trades_frame_empty():
    m = random_market(1, 0, session_minutes=30)
    res = run_strategy(
        OptionPricer(m, "surface"), np.zeros(m.n, np.int8), np.ones(m.n, bool), Rules(), CostModel()
    )
    df = trades_frame("x", m, res.trades, res.signal_rows, "SPY")
    assert df.height == 0 and "net_pnl" in df.columns


def test_run_trials_count_every_configuration_of_every_representation():
    from marketjepa.trading.backtest import run_trials

    policy = {
        "n_trials_total": 5,
        "representations": {
            "lejepa": {
                "n_trials": 3,
                "trials": [{"val_sharpe_daily": s} for s in (0.1, 0.2, None)],
            },
            "raw_window": {"n_trials": 2, "trials": [{"val_sharpe_daily": s} for s in (0.3, 0.4)]},
        },
    }
    n, var = run_trials(policy)
    assert n == 5 and var == pytest.approx(np.var([0.1, 0.2, 0.3, 0.4], ddof=1))
    # Old policy.json without trial lists: the representations' own variances.
    old = {"representations": {"a": {"n_trials": 4, "trial_sharpe_var": 0.02}}}
    assert run_trials(old) == (4, pytest.approx(0.02))

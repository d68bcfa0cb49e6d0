import itertools
import math

import numpy as np
import pytest

from marketjepa.black_scholes import bs_greeks, bs_price
from marketjepa.constants import CALENDAR_MINUTES_PER_YEAR
from marketjepa.trading.attribution import attribute, summarize


def V(S, iv, tau, K=450.0, call=True):
    return float(bs_price(S, K, tau / CALENDAR_MINUTES_PER_YEAR, iv, call, 0.04, 0.01))


def _one(S0, S1, v0, v1, t0, t1, call=True, mid0=None, mid1=None, n=1):
    mid0 = V(S0, v0, t0, call=call) if mid0 is None else mid0
    mid1 = V(S1, v1, t1, call=call) if mid1 is None else mid1
    out = attribute(
        *(np.array([x]) for x in (S0, S1, v0, v1, t0, t1, 450.0)),
        np.array([call]),
        np.array([mid0]),
        np.array([mid1]),
        np.array([n]),
        0.04,
        0.01,
    )
    return {k: float(v[0]) for k, v in out.items()}, mid1 - mid0


def test_components_sum_to_gross_and_equal_shapley_average_over_orders():
    S0, S1, v0, v1, t0, t1 = 450.3, 452.1, 0.25, 0.22, 240.0, 200.0
    a, gross = _one(S0, S1, v0, v1, t0, t1, n=2)
    parts = a["pnl_delta"] + a["pnl_gamma"] + a["pnl_theta"] + a["pnl_vega"]
    assert parts + a["pnl_residual"] == pytest.approx(gross * 200, abs=1e-9)
    assert abs(a["pnl_residual"]) < 1e-9
    # independent Shapley: average the marginal effect over the 6 switching orders
    start, end = (S0, v0, t0), (S1, v1, t1)
    phi = np.zeros(3)
    for order in itertools.permutations(range(3)):
        state = list(start)
        for i in order:
            before = V(*state)
            state[i] = end[i]
            phi[i] += V(*state) - before
    phi /= 6
    assert a["pnl_delta"] + a["pnl_gamma"] == pytest.approx(phi[0] * 200, abs=1e-9)
    assert a["pnl_vega"] == pytest.approx(phi[1] * 200, abs=1e-9)
    assert a["pnl_theta"] == pytest.approx(phi[2] * 200, abs=1e-9)


def test_pure_decay_is_all_theta_and_small_moves_match_greeks():
    a, gross = _one(450.0, 450.0, 0.2, 0.2, 120.0, 90.0, call=False)
    assert a["pnl_theta"] == pytest.approx(gross * 100) and a["pnl_theta"] < 0
    assert a["pnl_delta"] == 0 and a["pnl_gamma"] == pytest.approx(0, abs=1e-12)
    assert a["pnl_vega"] == pytest.approx(0, abs=1e-12)
    # a small spot move at fixed vol and time: delta = Δ·dS, gamma ≈ ½Γ·dS²
    dS = 0.3
    a, _ = _one(450.0, 450.0 + dS, 0.2, 0.2, 120.0, 120.0)
    g = bs_greeks(450.0, 450.0, 120 / CALENDAR_MINUTES_PER_YEAR, 0.2, True, 0.04, 0.01)
    assert a["pnl_delta"] == pytest.approx(float(g["delta"]) * dS * 100)
    assert a["pnl_gamma"] == pytest.approx(0.5 * float(g["gamma"]) * dS**2 * 100, rel=0.05)
    # an IV rise is vega ≈ vega·dσ
    a, _ = _one(450.0, 450.0, 0.2, 0.201, 120.0, 120.0)
    assert a["pnl_vega"] == pytest.approx(float(g["vega"]) * 0.001 * 100, rel=1e-3)


def test_residual_holds_market_minus_model_and_expiry_is_intrinsic():
    a, gross = _one(450.0, 451.0, 0.2, 0.2, 60.0, 30.0, mid0=1.00, mid1=1.50)
    model = V(451.0, 0.2, 30.0) - V(450.0, 0.2, 60.0)
    assert a["pnl_residual"] == pytest.approx((0.5 - model) * 100)
    # held to a 0DTE expiry: the value ends at intrinsic, theta takes the remaining time value
    a, gross = _one(450.0, 452.0, 0.2, 0.2, 30.0, 0.0)
    assert V(452.0, 0.2, 0.0) == pytest.approx(2.0)
    total = a["pnl_delta"] + a["pnl_gamma"] + a["pnl_theta"] + a["pnl_vega"]
    assert total == pytest.approx(gross * 100) and math.isfinite(a["pnl_theta"])


def test_summarize_totals():
    trades = {
        "gross_pnl": np.array([10.0, -4.0]),
        "pnl_delta": np.array([8.0, -1.0]),
        "pnl_gamma": np.array([1.0, 0.0]),
        "cost_total": np.array([1.5, 1.5]),
        "net_pnl": np.array([8.5, -5.5]),
    }
    s = summarize(trades)
    assert s["gross_pnl"] == 6.0 and s["pnl_underlying"] == 8.0 and s["net_pnl"] == 3.0

"""Per-trade attribution of option P&L to underlying, time, volatility and costs.

For a trade with mid prices P0 (entry) and P1 (exit), the Black–Scholes value
V(S, σ, τ) is re-evaluated at the 2³ corners of {S0→S1, σ0→σ1, τ0→τ1}. Each factor gets
its Shapley share (the average of its marginal effect over the 3! orders in which the
factors can be switched), so the three shares sum exactly to V(S1,σ1,τ1) − V(S0,σ0,τ0)
and no factor order is privileged::

    φ_i = Σ_{A ⊆ F∖{i}} |A|!(2 − |A|)!/3! · [V(A ∪ {i}) − V(A)]

- underlying (delta + gamma) = φ_S, split into delta = Δ0 · (S1 − S0) and gamma = φ_S − delta
  (gamma thus also holds the higher-order and cross terms of the spot move);
- theta = φ_τ (time decay),  vega = φ_σ (implied-vol change);
- residual = (P1 − P0) − ΔV: zero when both prices come from the surface, the model error
  when a price came from a real option bar whose IV could not be inverted;
- costs = spread + slippage + commission + fees (from :mod:`marketjepa.trading.costs`).

All amounts are in dollars per trade (× 100 × contracts), so
gross P&L = underlying + theta + vega + residual and net P&L = gross − costs.
"""

from __future__ import annotations

import itertools

import numpy as np

from marketjepa.black_scholes import bs_greeks, bs_price
from marketjepa.constants import CALENDAR_MINUTES_PER_YEAR
from marketjepa.trading.costs import MULTIPLIER

ATTRIBUTION_COLUMNS = ("pnl_delta", "pnl_gamma", "pnl_theta", "pnl_vega", "pnl_residual")


def attribute(
    S0: np.ndarray,
    S1: np.ndarray,
    iv0: np.ndarray,
    iv1: np.ndarray,
    tau0_min: np.ndarray,
    tau1_min: np.ndarray,
    strike: np.ndarray,
    is_call: np.ndarray,
    mid0: np.ndarray,
    mid1: np.ndarray,
    contracts: np.ndarray,
    r: float = 0.0,
    q: float = 0.0,
) -> dict[str, np.ndarray]:
    """Shapley split of each trade's mid-to-mid P&L (dollars); see the module docstring."""
    start = [np.asarray(S0, float), np.asarray(iv0, float), np.asarray(tau0_min, float)]
    end = [np.asarray(S1, float), np.asarray(iv1, float), np.asarray(tau1_min, float)]
    K = np.asarray(strike, float)
    call = np.asarray(is_call, bool)

    corners: dict[tuple[int, int, int], np.ndarray] = {}
    for mask in itertools.product((0, 1), repeat=3):
        s, v, t = (end[i] if mask[i] else start[i] for i in range(3))
        corners[mask] = bs_price(s, K, t / CALENDAR_MINUTES_PER_YEAR, v, call, r, q)

    weights = {0: 1.0 / 3.0, 1: 1.0 / 6.0, 2: 1.0 / 3.0}  # |A|!(2−|A|)!/3!
    phi = []
    for i in range(3):
        total = np.zeros_like(K)
        for mask in itertools.product((0, 1), repeat=3):
            if mask[i]:
                continue
            with_i = tuple(1 if j == i else mask[j] for j in range(3))
            total = total + weights[sum(mask)] * (corners[with_i] - corners[mask])
        phi.append(total)
    phi_s, phi_v, phi_t = phi
    size = np.asarray(contracts, float) * MULTIPLIER
    delta0 = bs_greeks(start[0], K, start[2] / CALENDAR_MINUTES_PER_YEAR, start[1], call, r, q)[
        "delta"
    ]
    itm = np.where(call, (start[0] > K).astype(float), -(start[0] < K).astype(float))
    delta0 = np.where(start[2] > 0, delta0, itm)
    d_pnl = delta0 * (end[0] - start[0])
    model = corners[(1, 1, 1)] - corners[(0, 0, 0)]
    actual = np.asarray(mid1, float) - np.asarray(mid0, float)
    return {
        "pnl_delta": d_pnl * size,
        "pnl_gamma": (phi_s - d_pnl) * size,
        "pnl_theta": phi_t * size,
        "pnl_vega": phi_v * size,
        "pnl_residual": (actual - model) * size,
    }


def summarize(trades: dict[str, np.ndarray]) -> dict[str, float]:
    """Run totals: gross, net, each attribution column and each cost item (dollars)."""
    keys = (
        "gross_pnl",
        *ATTRIBUTION_COLUMNS,
        "cost_spread",
        "cost_slippage",
        "cost_commission",
        "cost_fees",
        "cost_total",
        "net_pnl",
    )
    out = {k: float(np.sum(trades[k])) for k in keys if k in trades}
    if "pnl_delta" in out:
        out["pnl_underlying"] = out["pnl_delta"] + out["pnl_gamma"]
    return out

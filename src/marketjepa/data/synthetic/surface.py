"""Implied-volatility surface consistent with the volatility process, plus a risk premium.

ATM IV of an expiry at time ``t`` (calendar-time annualization, ``T`` in years)::

    IV_atm² · T = VRP_d² · E_t[variance from t to the expiry close]

The expected variance sums, in units of σ_b² (``level = exp(s_d − v_s)``,
``g = exp(2x_t − 2v_x)``):

* rest of today: ``level² · (R1_t + (g − 1) · R2_t)`` with ``R1_t = Σ_{j>t} u_j²`` and
  ``R2_t = Σ_{j>t} u_j² φ_x^{j−t}`` (the minute factor decays towards its mean);
* each later session ``k = 1..n``: ``(ON_{d+k} + U_{d+k}) · E[level²_{d+k} | s_d, w_d]`` where
  ``U`` is the session's ``Σ u²`` (events included), ``ON`` its overnight variance and, for
  independent Gaussian AR(1) components,
  ``E[exp(2 s_{d+k} − 2 v_s) | s_d] = exp(2 φ_s^k s_d − 2 v_s φ_s^{2k})`` (same for ``w``).
  A scheduled event inside the horizon raises the IV; once past, it drops (IV crush).

Smile in standardized moneyness ``x = ln(K/F) / (IV_atm √T)`` (clipped to ±4)::

    IV(x) = IV_atm − skew25 / (2 · 0.6745) · x + c · skew25 · x²

so the 25Δ put (``x ≈ −0.67``) minus 25Δ call (``x ≈ +0.67``) IV is ``skew25``, which rises
with maturity: ``skew25 = (b + t · sqrt(min(T, T_ref) / T_ref)) · sqrt(level) + e · z_skew``
(``z_skew`` is the per-minute skew evidence of the hidden regime).
"""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter

from marketjepa.constants import CALENDAR_MINUTES_PER_YEAR
from marketjepa.data.calendar import NS_PER_MINUTE
from marketjepa.data.synthetic.params import MarketParams

NS_PER_YEAR = CALENDAR_MINUTES_PER_YEAR * NS_PER_MINUTE
Z25 = 0.6744897501960817  # N⁻¹(0.75)


def remaining_variance_sums(shape: np.ndarray, fast_phi: float) -> tuple[np.ndarray, np.ndarray]:
    """``(R1, R2)`` ``[D, W]`` from the seasonal multipliers (0 on invalid minutes)."""
    s2 = shape**2
    r1 = np.cumsum(s2[:, ::-1], axis=1)[:, ::-1] - s2
    # Reversed in time: R2[m] = φ·(u²[m+1] + R2[m+1]).
    r2 = lfilter([0.0, fast_phi], [1.0, -fast_phi], s2[:, ::-1], axis=1)[:, ::-1]
    return r1, r2


def _decay(x: np.ndarray, k: np.ndarray, phi: float, sd: float) -> np.ndarray:
    phik = phi**k
    return np.exp(2.0 * phik[None, :] * x[:, None] - 2.0 * sd**2 * (phik**2)[None, :])


def future_variance_units(
    slow: np.ndarray,
    mid: np.ndarray,
    n_ahead: np.ndarray,
    session_units: np.ndarray,
    overnight_units: np.ndarray,
    p: MarketParams,
) -> np.ndarray:
    """Expected variance ``[D, E]`` (σ_b² units) of the sessions after today up to the expiry.

    ``n_ahead[d, e]`` is how many sessions after session ``d`` the expiry is;
    ``session_units[i]`` is ``Σ u²`` of session ``i`` of an extended calendar and
    ``overnight_units[i]`` the variance of the night before it (index-aligned).
    """
    n_days = slow.size
    kmax = max(int(n_ahead.max()), 1)
    k = np.arange(1, kmax + 1)
    idx = np.minimum(np.arange(n_days)[:, None] + k[None, :], session_units.size - 1)
    decay = _decay(slow, k, p.slow_phi, p.slow_sd) * _decay(mid, k, p.mid_phi, p.mid_sd)
    term = (overnight_units[idx] + session_units[idx]) * decay
    cum = np.concatenate([np.zeros((n_days, 1)), np.cumsum(term, axis=1)], axis=1)
    return np.take_along_axis(cum, n_ahead, axis=1)


def atm_iv(
    today_units: np.ndarray,
    future_units: np.ndarray,
    t_years: np.ndarray,
    vrp: np.ndarray,
    base_sigma: float,
    vrp_term: float = 0.0,
) -> np.ndarray:
    """ATM IV ``[D, E, W]``; ``today_units [D, W]``, ``future_units [D, E]``, ``T [D, E, W]``.

    The risk premium grows with maturity, ``VRP · (1 + vrp_term · sqrt(min(T, 1)))``, as
    index term structures slope upward on average."""
    w = base_sigma**2 * (today_units[:, None, :] + future_units[:, :, None])
    t = np.maximum(t_years, 1.0 / CALENDAR_MINUTES_PER_YEAR)
    term = 1.0 + vrp_term * np.sqrt(np.minimum(t, 1.0))
    iv = vrp[:, None, None] * term * np.sqrt(np.maximum(w, 0.0) / t)
    return np.maximum(iv, 0.03)


def skew_25d(t_years: np.ndarray, level: np.ndarray, z_skew: np.ndarray, p: MarketParams):
    """25Δ put − call IV ``[D, E, W]``: rises with maturity and vol level, plus evidence."""
    term = np.sqrt(np.minimum(np.maximum(t_years, 0.0), p.skew_term_years) / p.skew_term_years)
    base = (p.skew_base + p.skew_term * term) * np.sqrt(level)[:, None, None]
    return base + p.skew_evidence_scale * z_skew[:, None, :]


def smile_iv(strike, forward, t_years, atm, skew25, curvature: float) -> np.ndarray:
    """IV at ``strike`` from the ATM IV and 25Δ skew (broadcasting arrays)."""
    sqrt_t = np.sqrt(np.maximum(t_years, 1.0 / CALENDAR_MINUTES_PER_YEAR))
    x = np.clip(np.log(strike / forward) / (atm * sqrt_t), -4.0, 4.0)
    iv = atm - skew25 / (2.0 * Z25) * x + curvature * skew25 * x * x
    return np.maximum(iv, 0.3 * atm)

"""All numbers of the synthetic market, derived once from :class:`SynthConfig`.

Everything the generator uses lives here, so ``truth/params.json`` records the exact
model an oracle (or a reader) needs. Units: returns are log returns per bar; volatility
``σ`` is per bar; "annual" means 252 sessions of 390 regular minutes.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from marketjepa.config import DataConfig, SynthConfig
from marketjepa.data.synthetic.seasonality import VOL_SHAPE, VOLUME_SHAPE

FULL_SESSION = 390
SESSIONS_PER_YEAR = 252
# The minute grid of a session; half days use the first 210 columns.
MAX_MINUTES = FULL_SESSION


def _full_session_sq_sum() -> float:
    m = np.arange(FULL_SESSION)
    return float(np.sum(VOL_SHAPE(m, FULL_SESSION) ** 2))


@dataclass(frozen=True)
class MarketParams:
    # --- regime (hidden Markov chain, reset to its stationary law at each open) ---
    n_regimes: int
    regime_mean_minutes: float
    # Direction of each regime in [-1, 1] (0 = down ... K-1 = up).
    levels: tuple[float, ...]
    # Per-bar drift of the standardized return y = r/σ in regime k: drift_sigma · level_k.
    drift_sigma: float
    # Per-bar evidence mean shift a = signal · evidence_strength (noise sd 1).
    evidence: float
    # Lag-1 autoregression of y: autocorr_scale · a · (|level_k| − mean|level|).
    autocorr_scale: float = 0.4
    # --- volatility: σ_t = σ_b · u(m) · exp(slow_d − v_s + x_t − v_x) ---
    annual_vol: float = 0.16
    overnight_var_share: float = 0.2  # of total daily variance (gap + extended hours)
    t_dof: float = 5.0  # Student-t shocks, scaled to unit variance
    slow_phi: float = 0.985  # per session
    slow_sd: float = 0.30  # stationary sd of the daily log-vol component
    slow_leverage: float = -0.5  # corr(previous day's shock, today's log-vol innovation)
    fast_phi: float = 0.985  # per minute
    fast_sd: float = 0.30  # stationary sd of the intraday log-vol component
    fast_leverage: float = -0.4  # corr(shock_t, innovation of log-vol at t+1)
    ext_vol_ratio: float = 0.35  # pre/post-market per-bar σ relative to the midday base
    # --- volume ---
    midday_volume: float = 120_000.0  # shares per regular-session minute at midday
    volume_vol_elasticity: float = 0.8  # volume ∝ (vol level)^elasticity
    volume_evidence_scale: float = 0.45  # log-volume per unit of the volume evidence
    ext_volume_ratio: float = 0.03
    ext_bar_presence: float = 0.85  # chance a pre/post-market minute has a bar
    shares_per_trade: float = 130.0
    initial_price: float = 460.0
    # --- option surface ---
    risk_free_rate: float = 0.04
    dividend_yield: float = 0.013
    vrp: float = 1.2  # implied / expected realized vol
    vrp_phi: float = 0.9  # per session, AR(1) of log VRP
    vrp_sd: float = 0.08
    skew_base: float = 0.04  # 25Δ put − call IV at T → 0 (vol points / 100)
    skew_term: float = 0.05  # added at T = skew_term_years (sqrt growth, capped there)
    skew_term_years: float = 0.25
    smile_curvature: float = 0.15  # IV += curvature · skew25 · x², x standardized moneyness
    skew_evidence_scale: float = 0.005  # skew (vol points / 100) per unit of skew evidence
    # --- option trading ---
    # Chance an ATM contract trades in a midday minute: 0DTE, weekly, monthly.
    trade_prob: tuple[float, float, float] = (0.8, 0.4, 0.2)
    trade_width: float = 2.0  # dollars (× S/460): trade probability decay away from ATM
    option_volume: tuple[float, float, float] = (300.0, 80.0, 40.0)
    put_call_evidence_scale: float = 0.5  # log(put/call volume) per unit of evidence
    option_price_noise: float = 0.002  # relative quote noise before rounding to cents
    contracts_per_trade: float = 6.0

    # ---- derived quantities ----
    @property
    def base_sigma(self) -> float:
        """σ_b: per-minute vol at u(m)=1 so a 390-minute session carries its variance share."""
        day_var = (1.0 - self.overnight_var_share) * self.annual_vol**2 / SESSIONS_PER_YEAR
        return math.sqrt(day_var / _full_session_sq_sum())

    @property
    def overnight_var_units(self) -> float:
        """Overnight variance (gap + extended hours) in units of σ_b²."""
        share = self.overnight_var_share
        return share / (1.0 - share) * _full_session_sq_sum()

    @property
    def stay_prob(self) -> float:
        return 1.0 - 1.0 / self.regime_mean_minutes

    def transition(self) -> np.ndarray:
        """K×K transition matrix: stay with 1 − 1/mean, else move uniformly to another state."""
        k = self.n_regimes
        off = (1.0 - self.stay_prob) / (k - 1)
        return np.full((k, k), off) + np.eye(k) * (self.stay_prob - off)

    def autocorr(self) -> np.ndarray:
        lv = np.abs(np.asarray(self.levels))
        return self.autocorr_scale * self.evidence * (lv - lv.mean())

    def volume_evidence_mean(self) -> np.ndarray:
        lv = np.abs(np.asarray(self.levels))
        return self.evidence * (lv - lv.mean())

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(
            base_sigma=self.base_sigma,
            overnight_var_units=self.overnight_var_units,
            transition=self.transition().tolist(),
            autocorr=self.autocorr().tolist(),
            volume_evidence_mean=self.volume_evidence_mean().tolist(),
            vol_shape=asdict(VOL_SHAPE),
            volume_shape=asdict(VOLUME_SHAPE),
        )
        return out


def drift_sigma_per_bar(cfg: SynthConfig, p_no_drift: MarketParams) -> float:
    """Per-bar drift in units of the bar's own σ for a regime of level ±1.

    The drift scales with the prevailing volatility (constant signal-to-noise per bar),
    normalized so its session average equals ``signal · regime_drift_annual`` per year.
    """
    mean_sigma = _mean_sigma(p_no_drift)
    per_minute = cfg.signal * cfg.regime_drift_annual / (SESSIONS_PER_YEAR * FULL_SESSION)
    return per_minute / mean_sigma


def _mean_sigma(p: MarketParams) -> float:
    m = np.arange(FULL_SESSION)
    u_mean = float(np.mean(VOL_SHAPE(m, FULL_SESSION)))
    # E[exp(Z − v)] = exp(−v/2) for Z ~ N(0, v) (the log-vol components are centred so
    # that E[σ²] has no level bias).
    return p.base_sigma * u_mean * math.exp(-0.5 * (p.slow_sd**2 + p.fast_sd**2))


def market_params(cfg: SynthConfig) -> MarketParams:
    """The full parameter set for ``cfg`` (rates/dividends match the ingest defaults)."""
    k = cfg.n_regimes
    data = DataConfig()
    base = MarketParams(
        n_regimes=k,
        regime_mean_minutes=cfg.regime_mean_minutes,
        levels=tuple(float(x) for x in np.linspace(-1.0, 1.0, k)),
        drift_sigma=0.0,
        evidence=cfg.signal * cfg.evidence_strength,
        annual_vol=cfg.annual_vol,
        initial_price=cfg.initial_price,
        risk_free_rate=data.risk_free_rate,
        dividend_yield=data.dividend_yield,
    )
    return replace(base, drift_sigma=drift_sigma_per_bar(cfg, base))

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

# Bumped whenever the generated market changes for the same SynthConfig (it enters the
# synthetic-market cache hash). 2: issue 15 (three-scale vol, jumps, events, full chain).
SYNTH_MODEL_VERSION = 2
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
    # --- volatility: σ_t = σ_b · u(m) · e(d, m) · exp(slow_d − v_s + mid_d − v_m + x_t − v_x) ---
    annual_vol: float = 0.16
    overnight_var_share: float = 0.5  # of total daily variance (gap + extended hours)
    t_dof: float = 8.0  # Student-t shocks, scaled to unit variance
    shock_cap: float = 4.5  # |t shock| truncation; larger moves come from the capped jumps
    overnight_t_dof: float = 5.0  # fat-tailed overnight gaps (unit variance)
    slow_phi: float = 0.985  # per session (half-life ≈ 46 sessions: the "monthly" component)
    slow_sd: float = 0.22  # stationary sd of the monthly log-vol component
    slow_leverage: float = -0.5  # corr(previous day's shock, today's log-vol innovation)
    mid_phi: float = 0.87  # per session (half-life ≈ 5 sessions: the "weekly" component)
    mid_sd: float = 0.15
    mid_leverage: float = -0.6
    fast_phi: float = 0.985  # per minute (half-life ≈ 46 minutes: the "daily" component)
    fast_sd: float = 0.32  # stationary sd of the intraday log-vol component
    fast_leverage: float = -0.3  # corr(shock_t, innovation of log-vol at t+1)
    fast_cap: float = 2.0  # ceiling of the intraday multiplier exp(x_t − v_x)
    # Rare intraday jumps, in units of the bar's σ (added to the unit shock, capped).
    jump_rate: float = 1.0 / (390 * 8)  # per regular minute: about one every 8 sessions
    jump_sd: float = 4.0
    jump_cap: float = 8.0
    ext_vol_ratio: float = 0.35  # pre/post-market per-bar σ relative to the midday base
    ext_minutes: int = 60  # pre- plus post-market minutes per session
    # --- scheduled events (see events.py): σ multipliers on event sessions ---
    cpi_open_vol: float = 1.35  # first 30 minutes of a CPI session (8:30 ET release)
    cpi_gap_vol: float = 1.8  # overnight gap sd before a CPI session
    fomc_vol: float = 2.5  # at the 14:00 ET FOMC statement, decaying over ~30 minutes
    # --- volume ---
    midday_volume: float = 120_000.0  # shares per regular-session minute at midday
    volume_vol_elasticity: float = 0.8  # volume ∝ (vol level)^elasticity
    volume_evidence_scale: float = 0.45  # log-volume per unit of the volume evidence
    volume_noise_sd: float = 0.3  # per-bar lognormal volume noise
    burst_per_jump: float = 0.6  # extra volume per unit |shock| beyond 2σ, decaying 0.85/min
    ext_volume_ratio: float = 0.03
    ext_bar_presence: float = 0.85  # chance a pre/post-market minute has a bar
    shares_per_trade: float = 130.0
    initial_price: float = 460.0
    # --- option surface ---
    risk_free_rate: float = 0.04
    dividend_yield: float = 0.013
    vrp: float = 1.25  # implied / expected realized vol
    vrp_phi: float = 0.9  # per session, AR(1) of log VRP
    vrp_sd: float = 0.08
    vrp_term: float = 0.12  # VRP × (1 + vrp_term·sqrt(min(T, 1 year))): upward term premium
    skew_base: float = 0.04  # 25Δ put − call IV at T → 0 (vol points / 100)
    skew_term: float = 0.05  # added at T = skew_term_years (sqrt growth, capped there)
    skew_term_years: float = 0.5
    smile_curvature: float = 0.15  # IV += curvature · skew25 · x², x standardized moneyness
    skew_evidence_scale: float = 0.005  # skew (vol points / 100) per unit of skew evidence
    # --- option trading (per expiry slot: 0DTE, weekly ×2, monthly ×2, quarterly ×3) ---
    # Chance an ATM contract trades in a midday minute.
    trade_prob: tuple[float, ...] = (0.8, 0.4, 0.2, 0.2, 0.1, 0.06, 0.04, 0.03)
    trade_width: float = 0.5  # standardized moneyness: trade probability decay away from ATM
    option_volume: tuple[float, ...] = (300.0, 80.0, 50.0, 40.0, 25.0, 15.0, 10.0, 8.0)
    put_call_evidence_scale: float = 0.5  # log(put/call volume) per unit of evidence
    option_price_noise: float = 0.002  # relative trade-price noise before rounding to cents
    contracts_per_trade: float = 6.0
    strike_range: float = 0.12  # $5 strikes out to ±12% of the open
    zero_volume_share: float = 0.03  # option bars that are quote updates without a trade
    # Quoted half-spread in IV (vol points / 100) at the money, widening away from it
    # (per unit |standardized moneyness|) and at short maturity (1/sqrt(days)).
    spread_iv: float = 0.00045
    spread_moneyness: float = 0.6
    spread_short: float = 1.0
    spread_rel: float = 0.0015  # floor of the half-spread as a share of the mid (deep ITM)

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
    def ext_var_units(self) -> float:
        """Variance of the pre- plus post-market bars (σ_b² units)."""
        return self.ext_minutes * self.ext_vol_ratio**2

    @property
    def gap_var_units(self) -> float:
        """Variance of the overnight jump between sessions (σ_b² units)."""
        on = self.overnight_var_units
        return max(on - self.ext_var_units, 0.3 * on)

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
    return p.base_sigma * u_mean * math.exp(-0.5 * (p.slow_sd**2 + p.mid_sd**2 + p.fast_sd**2))


# What each synth.profile changes relative to 'default' (multipliers unless noted).
PROFILES: dict[str, dict[str, float]] = {
    "default": {},
    "calm": {
        "annual_vol": 0.75,
        "slow_sd": 0.8,
        "mid_sd": 0.8,
        "jump_rate": 0.5,
        "overnight_var_share": 0.85,
        "skew_base": 0.85,
        "skew_term": 0.85,
    },
    "stressed": {
        "annual_vol": 1.6,
        "slow_sd": 1.2,
        "mid_sd": 1.3,
        "jump_rate": 3.0,
        "overnight_var_share": 1.2,
        "skew_base": 1.3,
        "skew_term": 1.3,
        "spread_iv": 1.5,
        "vrp": 1.05,
    },
}
# Set, not scaled.
PROFILE_OVERNIGHT_DOF = {"default": 5.0, "calm": 6.0, "stressed": 3.5}


def apply_profile(p: MarketParams, profile: str) -> MarketParams:
    """``p`` with the multipliers of ``profile`` applied (see :data:`PROFILES`)."""
    changes = {k: getattr(p, k) * f for k, f in PROFILES[profile].items()}
    return replace(p, overnight_t_dof=PROFILE_OVERNIGHT_DOF[profile], **changes)


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
        ext_minutes=cfg.premarket_minutes + cfg.postmarket_minutes,
        initial_price=cfg.initial_price,
        risk_free_rate=data.risk_free_rate,
        dividend_yield=data.dividend_yield,
    )
    # The planted signal is a separate knob: its per-bar signal-to-noise is that of the
    # default profile whatever synth.profile is.
    drift = drift_sigma_per_bar(cfg, base)
    return replace(apply_profile(base, cfg.profile), drift_sigma=drift)

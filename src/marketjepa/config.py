"""Typed configuration: presets (YAML) + dotted command-line overrides.

A run is fully described by one :class:`Config`. Presets live in
``marketjepa/presets/<name>.yaml`` and only list what differs from the defaults
below; ``--set section.key=value`` overrides are parsed as YAML scalars, so
``--set model.d_model=128`` gives an int and ``--set synth.signal=0`` a float.
Unknown keys and wrong types raise :class:`ConfigError` naming the dotted key.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

PRESETS = ("tiny", "cpu", "seed", "gpu")

ALL_FEATURES = [
    "ret_1",
    "ret_5",
    "ret_15",
    "ret_30",
    "rv_10",
    "rv_30",
    "hl_range",
    "vwap_dev",
    "volume_z",
    "gap",
    "ret_open",
    "rsi_14",
    "bb_pos",
    "iv_atm",
    "iv_change_5",
    "skew_25d",
    "term_slope",
    "iv_rv_spread",
    "put_call_volume",
    "option_volume_z",
    "tod_sin",
    "tod_cos",
    "minutes_to_close",
]


class ConfigError(ValueError):
    """A configuration problem a user can fix; the message names the key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class SynthConfig(_Section):
    """The embedded synthetic SPY + options market (DESIGN §2.0)."""

    start: date = date(2021, 12, 1)
    end: date = date(2025, 11, 1)
    seed: int = 0
    ticker: str = "SPY"
    initial_price: float = Field(460.0, gt=0)
    # Strength of the planted regime signal; 0 gives a martingale null market.
    signal: float = Field(1.0, ge=0)
    n_regimes: int = Field(3, ge=2)
    # Mean regime duration in minutes (persistence of the hidden Markov chain).
    regime_mean_minutes: float = Field(90.0, gt=1)
    # Annualized drift shift per unit signal in the up/down regimes.
    regime_drift_annual: float = 2.5
    # How strongly each bar's observables reflect the regime (per unit signal).
    evidence_strength: float = 0.25
    annual_vol: float = Field(0.16, gt=0)
    # Market regime of the volatility/tail parameters (independent of the planted signal):
    # 'default' (calibrated to SPY 2018–2024 minute data), 'calm' (0.75× annual_vol, less
    # vol-of-vol, half the jump rate, thinner overnight gaps, flatter skew) or 'stressed'
    # (1.6× annual_vol, more vol-of-vol, 3× jumps, fatter and larger overnight gaps, steeper
    # skew, wider quotes). See docs/synthetic_market.md.
    profile: Literal["default", "calm", "stressed"] = "default"
    premarket_minutes: int = Field(30, ge=0)
    postmarket_minutes: int = Field(30, ge=0)
    options: bool = True
    # $1-apart strikes either side of ATM in the synthetic chain ($5 apart beyond, to ±12%).
    strikes_each_side: int = Field(6, ge=1)
    out_dir: str = "data/raw/synthetic"


class ColumnMapping(_Section):
    """Column names of a user's table (``format: table``)."""

    timestamp: str = "window_start"
    # 'ns', 'us', 'ms', 's' for integer epochs; 'datetime' for parsed timestamps/strings.
    timestamp_unit: Literal["ns", "us", "ms", "s", "datetime"] = "ns"
    # IANA timezone of naive timestamps (epochs are always UTC; values carrying an offset
    # are converted from that offset and this setting does not apply to them).
    timezone: str = "America/New_York"
    ticker: str | None = "ticker"
    open: str = "open"
    high: str = "high"
    low: str = "low"
    close: str = "close"
    volume: str = "volume"
    transactions: str | None = "transactions"

    @field_validator("timezone")
    @classmethod
    def _iana_zone(cls, v: str) -> str:
        if not valid_timezone(v):
            raise ValueError(
                f"unknown IANA timezone {v!r}; use a name like America/New_York, "
                "America/Chicago, Europe/London or UTC"
            )
        return v


def valid_timezone(name: str) -> bool:
    """Whether ``name`` is an IANA zone the system tz database knows."""
    if not name or name != name.strip() or name.startswith(("/", ".")):
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


def valid_calendar(name: str) -> bool:
    """Whether ``name`` is an exchange_calendars code (XNYS, CMES, XLON, ... or an alias)."""
    if name == "XNYS":
        return True
    import exchange_calendars as xcals  # lazy: a second of import time

    return name in xcals.get_calendar_names(include_aliases=True)


class DataConfig(_Section):
    """Where raw bars come from and where prepared data is cached."""

    source: Literal["synthetic", "files"] = "synthetic"
    ticker: str = "SPY"
    # Globs relative to the working directory (or absolute). With source=synthetic they
    # default to the synth output folder.
    stock_files: str | None = None
    option_files: str | None = None
    # Optional per-minute option summary (timestamp + iv_atm_near, iv_atm_far, iv_put_25d,
    # iv_call_25d, call_volume, put_volume) instead of option bars.
    option_summary_file: str | None = None
    format: Literal["polygon", "table"] = "polygon"
    columns: ColumnMapping = ColumnMapping()
    # Any exchange_calendars code: XNYS (NYSE), XNAS, CMES (CME futures; a session opens
    # the evening before its date), XLON, ... Session opens/closes and lengths come from it.
    calendar: str = "XNYS"
    # Keep only sessions dated within [start, end] (inclusive; None = no bound).
    start: date | None = None
    end: date | None = None
    # A session whose bars do not cover the calendar session (a missing run longer than
    # max_fill_gap_minutes, e.g. a file starting at 12:00): drop it (counted and reported)
    # or keep it with its missing minutes filled flat and flagged (never labelled, never a
    # target, never an entry).
    partial_sessions: Literal["drop", "keep"] = "drop"
    prepared_dir: str = "data/prepared"
    risk_free_rate: float = 0.04
    dividend_yield: float = 0.013
    # Forward-fill option features at most this many minutes, then mask (DESIGN §2.1).
    max_option_staleness_minutes: int = Field(5, ge=0)
    # Isolated missing regular-session minutes up to this run length are filled with a
    # flat zero-volume bar at the previous close; longer gaps are an error.
    max_fill_gap_minutes: int = Field(5, ge=0)

    @field_validator("calendar")
    @classmethod
    def _known_calendar(cls, v: str) -> str:
        if not valid_calendar(v):
            raise ValueError(
                f"unknown exchange calendar {v!r}; use an exchange_calendars code such as "
                "XNYS (NYSE), XNAS, CMES (CME futures) or XLON"
            )
        return v

    @model_validator(mode="after")
    def _date_range(self) -> DataConfig:
        if self.start is not None and self.end is not None and self.end < self.start:
            raise ValueError(f"data.end {self.end} is before data.start {self.start}")
        return self


class FeatureConfig(_Section):
    names: list[str] = Field(default_factory=lambda: list(ALL_FEATURES))
    normalizer: Literal["robust", "standard"] = "robust"
    clip_z: float = Field(5.0, gt=0)
    volume_z_sessions: int = Field(20, ge=2)


class LabelConfig(_Section):
    kind: Literal["threshold", "triple_barrier"] = "threshold"
    horizon: int = Field(30, ge=1)
    # Fraction of training bars labelled BUY_CALL and BUY_PUT each (seed: ~8% each).
    target_rate_each_side: float = Field(0.08, gt=0, lt=0.5)
    vol_lookback: int = Field(60, ge=2)


class SplitConfig(_Section):
    train: float = Field(0.70, gt=0, lt=1)
    val: float = Field(0.15, gt=0, lt=1)
    test: float = Field(0.15, ge=0, lt=1)
    embargo_days: int = Field(1, ge=0)
    walk_forward_folds: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _sums_to_one(self) -> SplitConfig:
        total = self.train + self.val + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"split.train + split.val + split.test must be 1.0, got {total:.4f}")
        return self


class WindowConfig(_Section):
    patch_len: int = Field(30, ge=1)
    context_patches: int = Field(30, ge=1)
    gap_patches: int = Field(0, ge=0)
    target_patches: int = Field(30, ge=1)
    # Take every `stride`-th valid window start (cheap presets).
    stride: int = Field(1, ge=1)


class ModelConfig(_Section):
    d_model: int = Field(256, ge=4)
    n_heads: int = Field(8, ge=1)
    n_layers: int = Field(6, ge=1)
    ff_dim: int = Field(2048, ge=4)
    dropout: float = Field(0.0, ge=0, lt=1)
    positions: Literal["learned", "rotary"] = "learned"
    pooling: Literal["last", "mean"] = "last"
    revin: bool = False
    # Causal attention in the encoder: token i sees patches <= i only, so the last token
    # is a filter of the whole window (issue #12).
    causal: bool = False
    # What the predictor sees: every context token, or only the pooled embedding (the
    # tensor the probes read), so whatever predicts the targets must be in it (issue #12).
    predictor_input: Literal["tokens", "pooled"] = "tokens"
    # Input channels the encoder never sees (zeroed before the patch embedding): feature
    # names or group names ('calendar', 'stock', 'options'). Time of day is perfectly
    # predictable, so it is a free target for the predictor (issue #12).
    input_exclude: list[str] = Field(default_factory=list)
    # Session-aware attention: a token attends only to patches of its own trading session
    # (read from the 'minutes_to_close' channel), and bars of an earlier session inside a
    # patch are zeroed, so the embedding of a window ignores everything before the last
    # open it contains, as the regime filter does (issue #12).
    session_mask: bool = False
    predictor_d_model: int = Field(128, ge=4)
    predictor_layers: int = Field(2, ge=1)
    predictor_heads: int = Field(4, ge=1)

    @model_validator(mode="after")
    def _heads_divide(self) -> ModelConfig:
        if self.d_model % self.n_heads:
            raise ValueError(
                f"model.d_model={self.d_model} not divisible by model.n_heads={self.n_heads}"
            )
        if self.predictor_d_model % self.predictor_heads:
            raise ValueError(
                f"model.predictor_d_model={self.predictor_d_model} not divisible by "
                f"model.predictor_heads={self.predictor_heads}"
            )
        if self.session_mask and self.pooling != "last":
            raise ValueError("model.session_mask confines the last token; use model.pooling=last")
        return self


class LossConfig(_Section):
    lambda_sigreg: float = Field(0.1, ge=0)
    # additive: pred + λ·SIGReg (seed); lejepa: (1-λ)·pred + λ·SIGReg (needs λ ≤ 1).
    convention: Literal["additive", "lejepa"] = "additive"
    num_slices: int = Field(256, ge=1)
    num_knots: int = Field(17, ge=3)
    t_max: float = Field(3.0, gt=0)
    sigreg_on: Literal["pooled", "tokens", "both"] = "pooled"
    # The pooling of the 'pooled' SIGReg term: 'same' = model.pooling (the probed
    # embedding); 'mean' regularizes the mean of tokens while the probes read the last
    # token (issue #12, third round: +0.01–0.03 regime share over random init).
    sigreg_pooling: Literal["same", "last", "mean"] = "same"
    ema: bool = True
    ema_momentum: float = Field(0.996, ge=0, lt=1)
    # Predict every target patch (each a horizon) vs only the pooled target embedding.
    multi_horizon: bool = True
    aux_reconstruction: float = Field(0.0, ge=0)
    # Contrastive auxiliary (seed option 2): InfoNCE between predicted and actual targets.
    aux_infonce: float = Field(0.0, ge=0)
    infonce_temperature: float = Field(0.1, gt=0)
    # Target path (issue #12): 'separate' encodes the target window on its own (positions
    # 0…T−1); 'sequence' runs one pass over context+gap+target and takes the target
    # positions' tokens, without gradient (or from the EMA copy), I-JEPA style.
    target_path: Literal["separate", "sequence"] = "separate"
    # Multi-scale pooled targets: for each s, predict the mean of the first s target
    # tokens (empty = per-patch horizons or one pooled target, see multi_horizon).
    target_scales: list[int] = Field(default_factory=list)
    # Block-masked targets inside the context (I-JEPA masking over time): each step, a
    # block of this many context patches is predicted from the tokens before it (their
    # tokens, stop-gradient, are the targets); needs model.causal. 0 = off.
    context_mask_patches: int = Field(0, ge=0)
    # Future-summary auxiliary (model/future_summary.py): weight of regressing the mean of
    # every feature over the next h bars (h in future_mean_spans, same session) from the
    # pooled embedding through a linear or MLP head; 0 = off.
    aux_future_mean: float = Field(0.0, ge=0)
    future_mean_spans: list[int] = Field(default_factory=lambda: [30, 60, 120])
    future_mean_head: Literal["linear", "mlp"] = "linear"
    # Feature names whose future means are targets (empty = every input feature).
    future_mean_features: list[str] = Field(default_factory=list)
    # Standardize each (span, feature) target with training-split moments, so features
    # without persistence (returns) weigh as much as persistent ones.
    future_mean_standardize: bool = True
    # Slowness auxiliary (model/slowness.py): weight of the mean squared change of the
    # context tokens over slowness_lag patches (temporal coherence; meant with
    # model.causal, where token i filters the window up to patch i); 0 = off.
    aux_slowness: float = Field(0.0, ge=0)
    slowness_lag: int = Field(1, ge=1)
    # Input channels zeroed on the target path only (names or groups, as
    # model.input_exclude): the context still sees them, the targets do not carry them.
    target_exclude: list[str] = Field(default_factory=list)
    # Same-session temporal contrast (model/session_contrast.py, TS2Vec/CPC-style): weight
    # of an InfoNCE whose negatives are only the targets of the other anchors of the same
    # trading day in the batch; needs train.anchors_per_session >= 2. 0 = off.
    aux_session_contrast: float = Field(0.0, ge=0)
    session_contrast_temperature: float = Field(0.1, gt=0)
    # The anchor scored against the targets: the predictor's output (CPC: a prediction of
    # the future) or the probed context embedding itself.
    session_contrast_anchor: Literal["predictor", "context"] = "predictor"
    # Cross-channel view invariance (model/view_invariance.py, LeJEPA's multi-view term):
    # weight of the mean squared distance between the probed embeddings of the full
    # window and of windows keeping only each view_channels entry (feature names or
    # groups; every other channel zeroed) and their mean; 0 = off.
    aux_view_invariance: float = Field(0.0, ge=0)
    view_channels: list[list[str]] = Field(default_factory=lambda: [["stock"], ["options"]])

    @model_validator(mode="after")
    def _lejepa_lambda(self) -> LossConfig:
        if self.aux_future_mean > 0 and (
            not self.future_mean_spans or any(h < 1 for h in self.future_mean_spans)
        ):
            raise ValueError(
                f"loss.future_mean_spans must be non-empty bar counts >= 1, got "
                f"{self.future_mean_spans}"
            )
        if self.convention == "lejepa" and self.lambda_sigreg > 1:
            raise ValueError("loss.lambda_sigreg must be <= 1 with loss.convention=lejepa")
        if self.aux_view_invariance > 0 and (
            not self.view_channels or any(not v for v in self.view_channels)
        ):
            raise ValueError(
                "loss.view_channels must list at least one non-empty channel view with "
                f"loss.aux_view_invariance > 0, got {self.view_channels}"
            )
        if any(s < 1 for s in self.target_scales):
            raise ValueError(f"loss.target_scales must be >= 1, got {self.target_scales}")
        return self


class WatchdogConfig(_Section):
    enabled: bool = True
    min_rankme_ratio: float = Field(0.05, ge=0, le=1)
    min_normalized_variance: float = Field(0.05, ge=0)
    patience_epochs: int = Field(2, ge=1)


class TrainConfig(_Section):
    epochs: int = Field(20, ge=1)
    batch_size: int = Field(2048, ge=2)
    lr: float = Field(1e-4, gt=0)
    weight_decay: float = Field(0.05, ge=0)
    warmup_frac: float = Field(0.05, ge=0, lt=1)
    min_lr_frac: float = Field(0.1, ge=0, le=1)
    grad_clip: float = Field(1.0, ge=0)
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    compile: bool = False
    bf16: bool = True
    # Cap steps per epoch (0 = a full pass over the training windows).
    max_steps_per_epoch: int = Field(0, ge=0)
    # Cap validation windows scored per epoch (0 = all).
    max_val_windows: int = Field(4096, ge=0)
    # Synthetic data: training-day windows the per-epoch latent-regime probe is fitted on
    # (scored on the validation windows); 0 = fit on half of the validation windows.
    latent_probe_fit_windows: int = Field(4096, ge=0)
    # Batch layout: a batch of B windows is B/k trading days × k anchors of the same day
    # (training windows only); 1 = windows shuffled across all days.
    anchors_per_session: int = Field(1, ge=1)
    # Pretraining configurations tried on validation days before choosing this one (set by
    # `marketjepa sweep`); multiplies the LeJEPA policies' trial count in the DSR.
    sweep_trials: int = Field(0, ge=0)
    watchdog: WatchdogConfig = WatchdogConfig()


class EvidenceConfig(_Section):
    """Evidence gate of every verdict (report/evidence.py, docs/evidence.md).

    Below any minimum a verdict reads INSUFFICIENT EVIDENCE and names what is missing.
    The test-day minimum scales with the day-block bootstrap: a CI needs at least
    ``min_ci_blocks`` independent blocks of ``eval.bootstrap_block_days`` days.
    """

    min_ci_blocks: int = Field(4, ge=1)
    # Overrides min_ci_blocks × bootstrap_block_days when set.
    min_test_days: int | None = Field(None, ge=1)
    min_eval_rows: int = Field(200, ge=1)
    # Rows of each class (HOLD, BUY_CALL, BUY_PUT) among the scored rows.
    min_class_rows: int = Field(20, ge=1)
    min_trades: int = Field(30, ge=1)
    # A CI whose bootstrap replicates are finite less often than this, or that takes
    # fewer distinct values, is degenerate and never significant.
    min_valid_resample_share: float = Field(0.95, gt=0, le=1)
    min_distinct_resamples: int = Field(10, ge=2)
    # Family-wise error control across representations / strategies (Holm 1979).
    family_alpha: float = Field(0.05, gt=0, lt=1)


class EvalConfig(_Section):
    # Verdict thresholds on scale-invariant measures (DESIGN §4).
    healthy_rankme_ratio: float = 0.25
    collapsed_rankme_ratio: float = 0.05
    healthy_normalized_variance: float = 0.5
    collapsed_normalized_variance: float = 0.05
    # Share of variance on the top eigenvector (rank collapse that norm_var cannot see).
    healthy_max_top1_share: float = Field(0.5, gt=0, le=1)
    collapsed_top1_share: float = Field(0.95, gt=0, le=1)
    dead_dim_share: float = 1e-3
    bootstrap_samples: int = Field(500, ge=10)
    bootstrap_block_days: int = Field(5, ge=1)
    ci_level: float = Field(0.95, gt=0, lt=1)
    probe_c_grid: list[float] = Field(default_factory=lambda: [0.001, 0.01, 0.1, 1.0, 10.0])
    ridge_alpha_grid: list[float] = Field(default_factory=lambda: [0.1, 1.0, 10.0, 100.0, 1000.0])
    # Subsample windows for probes (0 = all) to keep CPU presets fast.
    max_probe_windows: int = Field(20000, ge=0)
    supervised_epochs: int = Field(5, ge=1)
    # Also fine-tune the pretrained encoder end-to-end on the labels (same routine as the
    # supervised baseline, initialized from best.pt): representation `lejepa_finetuned`.
    finetune: bool = True
    seed: int = 0
    evidence: EvidenceConfig = EvidenceConfig()


class PolicyConfig(_Section):
    kind: Literal["classifier", "regression"] = "classifier"
    head: Literal["logistic", "mlp"] = "logistic"
    threshold_objective: Literal["pnl", "trade_rate"] = "pnl"
    target_trade_rate: float = Field(0.16, gt=0, lt=1)
    mlp_hidden: int = Field(64, ge=1)
    seed: int = 0


class BacktestConfig(_Section):
    pricing: Literal["surface", "bars"] = "surface"
    dte: Literal[0, 1, 7] = 0
    hold_bars: int = Field(30, ge=1)
    stop_loss: float | None = Field(None, gt=0, description="fraction of premium, e.g. 0.5")
    take_profit: float | None = Field(None, gt=0)
    max_staleness_minutes: int = Field(5, ge=0)
    half_spread_abs: float = Field(0.02, ge=0)
    half_spread_pct: float = Field(0.0, ge=0)
    commission_per_contract: float = Field(0.65, ge=0)
    fees_per_contract: float = Field(0.02, ge=0)
    slippage_abs: float = Field(0.0, ge=0)
    contracts: int = Field(1, ge=1)
    # If set, size each trade to this fraction of equity instead of a fixed contract count.
    equity_fraction: float | None = Field(None, gt=0, le=1)
    initial_capital: float = Field(10_000.0, gt=0)
    max_positions: int = Field(1, ge=1)
    # IV proxy for surface mode when no options data: trailing RV × ratio, plus skew.
    iv_rv_ratio: float = Field(1.2, gt=0)
    iv_skew_per_moneyness: float = Field(-1.5)
    random_baseline_seeds: int = Field(20, ge=1)


class Config(_Section):
    name: str = "run"
    preset: str = "default"
    runs_dir: str = "runs"
    synth: SynthConfig = SynthConfig()
    data: DataConfig = DataConfig()
    features: FeatureConfig = FeatureConfig()
    labels: LabelConfig = LabelConfig()
    split: SplitConfig = SplitConfig()
    windows: WindowConfig = WindowConfig()
    model: ModelConfig = ModelConfig()
    loss: LossConfig = LossConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    policy: PolicyConfig = PolicyConfig()
    backtest: BacktestConfig = BacktestConfig()

    @model_validator(mode="after")
    def _target_scales_fit(self) -> Config:
        m, c = self.loss.context_mask_patches, self.windows.context_patches
        if m and (not self.model.causal or m >= c):
            raise ValueError(
                f"loss.context_mask_patches={m} needs model.causal=true and fewer than "
                f"windows.context_patches={c} patches"
            )
        lag = self.loss.slowness_lag
        if self.loss.aux_slowness > 0 and lag >= c:
            raise ValueError(
                f"loss.slowness_lag={lag} must be below windows.context_patches={c} patches"
            )
        k = self.train.anchors_per_session
        if self.loss.aux_session_contrast > 0 and k < 2:
            raise ValueError(
                "loss.aux_session_contrast needs train.anchors_per_session >= 2 (its "
                "negatives are the other anchors of the same session in the batch)"
            )
        if self.train.batch_size % k:
            raise ValueError(
                f"train.batch_size={self.train.batch_size} is not a multiple of "
                f"train.anchors_per_session={k}"
            )
        t = self.windows.target_patches
        if any(s > t for s in self.loss.target_scales):
            raise ValueError(
                f"loss.target_scales {self.loss.target_scales} exceed windows.target_patches={t}"
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def section_hash(self, *sections: str) -> str:
        """Stable short hash of the given sections (cache key for stage outputs)."""
        payload = {s: self.to_dict()[s] for s in sections}
        blob = json.dumps(payload, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def _format_validation_error(err: ValidationError, origin: str) -> str:
    lines = [f"invalid configuration ({origin}):"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "<root>"
        if e["type"] == "extra_forbidden":
            lines.append(f"  unknown key '{key}'")
        elif e["type"] == "value_error":  # our validators: the message already says it all
            msg = str(e["msg"]).removeprefix("Value error, ")
            lines.append(f"  {key}: {msg}")
        else:
            lines.append(f"  {key}: {e['msg']} (got {e.get('input')!r})")
    if len(lines) == 2:  # one problem: one line
        return f"{lines[0]} {lines[1].strip()}"
    return "\n".join(lines)


def _deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in update.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def preset_dict(name: str) -> dict[str, Any]:
    if name == "default":
        return {}
    if name not in PRESETS:
        raise ConfigError(f"unknown preset '{name}'; choose one of {', '.join(PRESETS)}")
    text = resources.files("marketjepa.presets").joinpath(f"{name}.yaml").read_text()
    data = yaml.safe_load(text) or {}
    data["preset"] = name
    return data


def parse_override(item: str) -> tuple[list[str], Any]:
    """Parse ``section.key=value``; the value is read as a YAML scalar/list."""
    if "=" not in item:
        raise ConfigError(f"override '{item}' must look like section.key=value")
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override '{item}' has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"override '{key}': cannot parse value {raw!r}: {exc}") from None
    return key.split("."), value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    out = json.loads(json.dumps(data, default=str))
    for item in overrides:
        path, value = parse_override(item)
        node = out
        for part in path[:-1]:
            nxt = node.setdefault(part, {})
            if not isinstance(nxt, dict):
                raise ConfigError(f"override '{item}': '{part}' is not a section")
            node = nxt
        node[path[-1]] = value
    return out


def build_config(data: dict[str, Any], origin: str = "config") -> Config:
    try:
        return Config.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err, origin)) from None


def load_config(
    preset: str = "cpu",
    config_file: str | Path | None = None,
    overrides: list[str] | None = None,
) -> Config:
    """Preset ← YAML file ← dotted overrides, validated into a :class:`Config`."""
    data = preset_dict(preset)
    origin = f"preset {preset}"
    if config_file is not None:
        path = Path(config_file)
        if not path.exists():
            raise ConfigError(f"config file not found: {path}")
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: top level must be a mapping of sections")
        data = _deep_merge(data, loaded)
        origin += f" + {path}"
    if overrides:
        data = apply_overrides(data, overrides)
        origin += " + --set overrides"
    return build_config(data, origin)


def save_config(cfg: Config, path: str | Path) -> None:
    Path(path).write_text(cfg.to_yaml())


def read_config(path: str | Path) -> Config:
    """Load a resolved config.yaml written by :func:`save_config`."""
    p = Path(path)
    return build_config(yaml.safe_load(p.read_text()) or {}, str(p))

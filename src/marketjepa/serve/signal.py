"""``marketjepa signal``: the trained policy's decision on new bars.

A finished run is loaded as it was trained: its resolved config, the normalization fitted
on its training days, ``checkpoints/best.pt``, and the LeJEPA policy — the classifier head
refit exactly as the policy stage fits it (same train anchors, labels and seed; the fit is
deterministic) with the thresholds the policy stage chose on validation days.

New raw bars go through the same path as ``prepare``: :func:`marketjepa.data.ingest.ingest`
(validation, session filter, gap repair, option summary) and
:func:`marketjepa.data.prepare.causal_features`, then the run's normalizer. The decision at
bar t embeds the context window of the ``C·P`` bars ending at t.

Warm-up. ``volume_z`` / ``option_volume_z`` compare each minute with the same minute of the
previous ``features.volume_z_sessions`` sessions, RSI is an exponential average over all
history, so a decision at t is exactly the batch pipeline's only when every bar of its
window has that history: the window must start in a session preceded by
:attr:`TrainedRun.warmup_sessions` complete sessions in the bars given. Bars without it are
refused (the latest bar) or skipped and counted (``--all``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl

from marketjepa.artifacts import read_json
from marketjepa.config import Config, apply_overrides, build_config, read_config
from marketjepa.data.calendar import EXCHANGE_TZ
from marketjepa.data.features import OPTION_COLUMNS, resolve_features
from marketjepa.data.normalize import Normalizer
from marketjepa.data.prepare import CausalFeatures, causal_features
from marketjepa.data.windows import WindowSpec
from marketjepa.errors import DataValidationError, MarketJepaError, StageInputMissing
from marketjepa.paths import prepared_dir as configured_prepared_dir

if TYPE_CHECKING:
    from marketjepa.trading.pricing import MarketData, OptionPricer

REPRESENTATION = "lejepa"  # the policy row `signal` serves
CLASSES = ("HOLD", "BUY_CALL", "BUY_PUT")
_SOURCES = {
    0: "modeled: Black-Scholes on the observed IV surface",
    1: "modeled: IV proxy (trailing realized vol x backtest.iv_rv_ratio, no option data)",
    2: "quoted: the contract's last option bar",
}
_VOLUME_Z = ("volume_z", "option_volume_z")


def bar_time(ts_ns: int) -> str:
    """Bar start in exchange time, e.g. ``2022-06-30 15:59 ET``."""
    t = datetime.fromtimestamp(int(ts_ns) / 1e9, ZoneInfo(EXCHANGE_TZ))
    return t.strftime("%Y-%m-%d %H:%M ET")


@dataclass
class TrainedRun:
    """Everything a decision needs, loaded from a finished run directory."""

    run_dir: Path
    cfg: Config
    prepared_dir: Path
    feature_names: list[str]
    options: bool  # trained with an option summary (option features present)
    normalizer: Normalizer
    model: Any  # LeJEPA in eval mode
    spec: WindowSpec
    head: Any  # policy.ClassifierHead
    tau_call: float
    tau_put: float
    device: Any

    @classmethod
    def load(cls, run_dir: str | Path) -> TrainedRun:
        from marketjepa.device import resolve_device
        from marketjepa.trading.policy import fit_head
        from marketjepa.train.checkpoint import checkpoint_path, load_model

        run_dir = Path(run_dir)
        if not (run_dir / "config.yaml").exists():
            raise StageInputMissing(
                f"{run_dir}: not a run directory (no config.yaml); train one with `marketjepa run`"
            )
        cfg = read_config(run_dir / "config.yaml")
        prep = _prepared_dir(run_dir, cfg)
        manifest = read_json(prep / "manifest.json")
        names = list(manifest["feature_names"])
        norm = Normalizer.load(prep / "normalization.json")
        if norm.names != names:
            raise DataValidationError(
                "normalization features differ from the manifest's", file=str(prep)
            )
        if not checkpoint_path(run_dir, "best").exists():
            raise StageInputMissing(
                f"{checkpoint_path(run_dir, 'best')} not found — run `marketjepa pretrain` first"
            )
        device = resolve_device(cfg.train.device)
        model = load_model(run_dir, "best", device)
        if int(model.n_features) != len(names):
            raise DataValidationError(
                f"checkpoint expects {model.n_features} features, the run's dataset has "
                f"{len(names)}",
                file=str(checkpoint_path(run_dir, "best")),
            )
        pol_path = run_dir / "policy" / "policy.json"
        if not pol_path.exists():
            raise StageInputMissing(f"{pol_path} not found — run `marketjepa policy` first")
        policy = read_json(pol_path)
        info = policy.get("representations", {}).get(REPRESENTATION)
        if info is None:
            raise StageInputMissing(f"{pol_path} has no '{REPRESENTATION}' policy")
        if policy.get("kind", "classifier") != "classifier":
            raise MarketJepaError(
                f"signal serves classifier policies; this run has policy.kind={policy['kind']}"
            )
        rep_path = run_dir / "representations" / f"{REPRESENTATION}.npz"
        if not rep_path.exists():
            raise StageInputMissing(f"{rep_path} not found — run `marketjepa represent` first")
        with np.load(rep_path) as z:
            X, anchors = z["train"], z["anchors_train"].astype(np.int64)
        label = pl.read_parquet(prep / "dataset.parquet", columns=["label"])["label"].to_numpy()
        head = fit_head(cfg, X, label[anchors].astype(np.int64))
        return cls(
            run_dir=run_dir,
            cfg=cfg,
            prepared_dir=prep,
            feature_names=names,
            options=bool(manifest.get("options")),
            normalizer=norm,
            model=model,
            spec=model.spec,
            head=head,
            tau_call=float(info["tau_call"]),
            tau_put=float(info["tau_put"]),
            device=device,
        )

    def thresholds(self) -> dict[str, float | None]:
        """τ per side; None for a side the policy switched off (τ = +inf)."""
        return {
            c: (float(t) if np.isfinite(t) else None)
            for c, t in (("BUY_CALL", self.tau_call), ("BUY_PUT", self.tau_put))
        }

    @property
    def window(self) -> int:
        """Bars in one context window (the embedding's input)."""
        return self.spec.context_len

    @property
    def warmup_sessions(self) -> int:
        """Complete sessions needed before the first bar of a decision's window."""
        vz = any(n in self.feature_names for n in _VOLUME_Z)
        # 2 sessions (≥ 420 bars) also settle RSI's exponential average to < 1e-13.
        return max(2, self.cfg.features.volume_z_sessions) if vz else 2

    def warmup_reason(self) -> str:
        n = self.warmup_sessions
        if any(f in self.feature_names for f in _VOLUME_Z):
            return (
                f"{n} complete sessions before the first bar of the {self.window}-bar window "
                f"(volume_z compares each minute with the same minute of the previous {n} "
                "sessions)"
            )
        return f"{n} complete sessions before the first bar of the {self.window}-bar window"

    def features(self, bars: pl.DataFrame, option_summary: pl.DataFrame | None) -> CausalFeatures:
        """Raw causal features of ``bars`` by the prepare code path, checked against the run."""
        cfg = self.cfg
        names, _ = resolve_features(cfg.features.names, has_options=option_summary is not None)
        if names != self.feature_names:
            missing = [n for n in self.feature_names if n not in names]
            extra = [n for n in names if n not in self.feature_names]
            if missing and option_summary is None:
                hint = "the run was trained with option features: pass its option data (--options)"
            elif extra and not self.options:
                hint = "the run was trained on stock bars only: leave out the option data"
            else:
                hint = "use bars of the kind the run was trained on"
            raise DataValidationError(
                f"different feature set: these bars give {len(names)} features, the run uses "
                f"{len(self.feature_names)} (missing {missing or 'none'}, extra {extra or 'none'})",
                file="--bars",
                hint=hint,
            )
        return causal_features(cfg, bars, option_summary)

    def normalize(self, raw: np.ndarray) -> np.ndarray:
        """The run's train-fitted normalization, as ``prepare`` applies it."""
        return self.normalizer.apply(raw)

    def decide(self, z: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(proba [n, 3], signal [n])`` at ``rows`` from normalized features ``z``."""
        from marketjepa.data.windows import WindowDataset
        from marketjepa.model.embedding import embed_windows
        from marketjepa.trading.policy import signals_from_proba

        rows = np.asarray(rows, np.int64)
        if rows.size == 0:
            return np.zeros((0, 3)), np.zeros(0, np.int8)
        lo = int(rows.min()) - self.window + 1
        if lo < 0:
            raise MarketJepaError(f"row {int(rows.min())} has no full window")
        # Only the rows the windows touch (a live decision gathers one window).
        data = WindowDataset(z[lo : int(rows.max()) + 1], self.spec, self.device)
        starts = rows - self.window + 1 - lo
        pooled, _ = embed_windows(
            self.model,
            data,
            starts,
            np.zeros(starts.size, np.int64),
            max(256, self.cfg.train.batch_size),
            self.cfg.train.bf16,
        )
        proba = self.head.predict_proba(pooled.astype(np.float64))
        return proba, signals_from_proba(proba, self.tau_call, self.tau_put)


def _prepared_dir(run_dir: Path, cfg: Config) -> Path:
    """The run's prepared dataset: as recorded in its manifest, else by the config's hash."""
    manifest = run_dir / "manifest.json"
    recorded = (
        (read_json(manifest).get("inputs") or {}).get("prepared") if manifest.exists() else None
    )
    for cand in (recorded, configured_prepared_dir(cfg)):
        if cand and (Path(cand) / "normalization.json").exists():
            return Path(cand)
    raise StageInputMissing(
        f"the prepared dataset of {run_dir} ({recorded or configured_prepared_dir(cfg)}) is "
        "missing: its train-fitted normalization is needed — rerun `marketjepa prepare` with "
        "this run's config"
    )


def complete_before(day: np.ndarray, minute: np.ndarray) -> np.ndarray:
    """Complete sessions in the data before each row's session (the first session counts
    only when the data begins at its opening bar)."""
    return np.asarray(day) - (0 if int(minute[0]) == 0 else 1)


def warm_rows(day: np.ndarray, minute: np.ndarray, window: int, need: int) -> np.ndarray:
    """Rows whose whole window has ``need`` complete earlier sessions in the data
    (``day``: the 0-based session index of each row in the bars given)."""
    t = np.arange(window - 1, day.size)
    return t[complete_before(day, minute)[t - window + 1] >= need]


def warmup_error(
    run: TrainedRun, day: np.ndarray, minute: np.ndarray, ts: np.ndarray, row: int
) -> str:
    """Why ``row`` has no decision: too few bars, or too few sessions before its window."""
    L, need = run.window, run.warmup_sessions
    if row < L - 1:
        return (
            f"only {row + 1} regular-session bars up to {bar_time(ts[row])}: a decision needs "
            f"a window of {L} bars ({run.spec.context_patches} patches x "
            f"{run.spec.patch_len}) and {run.warmup_reason()}"
        )
    have = int(complete_before(day, minute)[row - L + 1])
    return (
        f"not warmed up: the decision at {bar_time(ts[row])} needs {run.warmup_reason()}; its "
        f"window starts at {bar_time(ts[row - L + 1])}, after {have} session(s) in the bars "
        f"given — add {need - have} earlier session(s)"
    )


def market_frame(cf: CausalFeatures, bars: pl.DataFrame, osum: pl.DataFrame | None) -> pl.DataFrame:
    """The columns the backtest's ``MarketData`` reads from a prepared dataset."""
    frame = bars.select("ts", "minute", "session_minutes", "close")
    if osum is not None:
        frame = frame.with_columns(*[osum[c].cast(pl.Float64) for c in OPTION_COLUMNS])
    frame = frame.with_columns(pl.Series("options_valid", cf.inputs.options_valid))
    return frame


def make_market(
    run: TrainedRun, frame: pl.DataFrame, session: np.ndarray, split: np.ndarray
) -> MarketData:
    """The backtest's per-row market arrays (rate and dividend yield of the run)."""
    from marketjepa.trading.pricing import MarketData

    d = run.cfg.data
    return MarketData.from_frame(frame, session, split, d.risk_free_rate, d.dividend_yield)


def make_pricer(
    run: TrainedRun, market: MarketData, option_bars: pl.DataFrame | None
) -> OptionPricer:
    """The backtest's pricer; ``bars`` pricing falls back to the surface without option bars."""
    from marketjepa.trading.pricing import OptionBook, OptionPricer

    bt = run.cfg.backtest
    book = None
    mode = bt.pricing
    if mode == "bars":
        if option_bars is None or option_bars.height == 0:
            mode = "surface"
        else:
            book = OptionBook(option_bars, market, bt.max_staleness_minutes)
    return OptionPricer(
        market,
        mode,
        book,
        iv_rv_ratio=bt.iv_rv_ratio,
        iv_skew_per_moneyness=bt.iv_skew_per_moneyness,
        vol_lookback=run.cfg.labels.vol_lookback,
    )


def breakeven_move(
    S: float,
    K: float,
    tau_after: float,
    sigma: float,
    is_call: bool,
    entry_fill: float,
    run: TrainedRun,
) -> float | None:
    """Log move of the underlying by the exit (IV unchanged) at which net P&L is 0."""
    from marketjepa.black_scholes import bs_price
    from marketjepa.constants import CALENDAR_MINUTES_PER_YEAR
    from marketjepa.trading.costs import MULTIPLIER, CostModel

    costs = CostModel.from_config(run.cfg.backtest)
    fixed = 2.0 * (costs.commission_per_contract + costs.fees_per_contract) / MULTIPLIER
    T1 = max(tau_after, 0.0) / CALENDAR_MINUTES_PER_YEAR
    d = run.cfg.data

    def net(x: float) -> float:
        mid = bs_price(S * np.exp(x), K, T1, sigma, is_call, d.risk_free_rate, d.dividend_yield)
        return float(costs.exit_parts(mid)[0]) - entry_fill - fixed

    lo, hi = (-0.5, 0.5) if is_call else (0.5, -0.5)  # net rises from lo to hi
    if net(hi) < 0 or net(lo) > 0:
        return None
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if net(mid) < 0 else (lo, mid)
    return 0.5 * (lo + hi)


def entry_contract(run: TrainedRun, pricer: OptionPricer, row: int, side: int) -> dict[str, Any]:
    """The contract the backtest would buy for a signal at ``row``, priced at its close.

    The backtest fills at the close of the next bar; live, that price is not known yet,
    so strike, expiry and price are those at the signal bar's close."""
    from marketjepa.trading.backtest import CALL
    from marketjepa.trading.costs import CostModel

    bt = run.cfg.backtest
    m = pricer.market
    is_call = side == CALL
    S = float(m.close[row])
    K = float(np.rint(S))
    exp_day = pricer.expiry_day(np.array([row]), bt.dte)
    q = pricer.quote(np.array([row]), K, exp_day, is_call)
    mid = float(q.mid[0])
    fill = float(CostModel.from_config(bt).entry_fill(mid))
    hold = int(min(bt.hold_bars, m.minutes_to_close(np.array([row]))[0]))
    tau = float(q.tau_min[0])
    x = breakeven_move(S, K, tau - hold, float(q.iv[0]), is_call, fill, run)
    expiry = str(np.datetime64(int(exp_day[0]), "D"))
    right = "C" if is_call else "P"
    ticker = run.cfg.data.ticker.upper()
    occ = f"{ticker}{expiry[2:4]}{expiry[5:7]}{expiry[8:10]}{right}{round(K * 1000):08d}"
    return {
        "contract": occ,
        "right": "CALL" if is_call else "PUT",
        "strike": K,
        "expiry": expiry,
        "underlying": S,
        "mid": mid,
        "entry_fill": fill,
        "iv": float(q.iv[0]),
        "price_source": _SOURCES[int(q.source[0])],
        "modeled": int(q.source[0]) != 2,
        "hold_bars": hold,
        "breakeven_move": None if x is None else float(np.expm1(x)),
    }


def expand_files(items: list[str]) -> list[Path]:
    """Files named on the command line: each a path or a glob (sorted, duplicates once)."""
    import glob

    out: list[Path] = []
    for item in items:
        if glob.has_magic(item):
            hits = sorted(Path(p) for p in glob.glob(item, recursive=True) if Path(p).is_file())
            if not hits:
                raise DataValidationError("no files matched", file=item)
            out += hits
        else:
            out.append(Path(item))
    return list(dict.fromkeys(out))


@dataclass
class NewBars:
    """Ingested new bars plus their raw causal features."""

    bars: pl.DataFrame
    option_summary: pl.DataFrame | None
    option_bars: pl.DataFrame | None
    features: CausalFeatures


def ingest_new_bars(
    run: TrainedRun,
    bars: list[Path],
    options: list[Path] | None = None,
    option_summary: Path | None = None,
    overrides: list[str] | None = None,
) -> NewBars:
    """Read new raw files with the run's data settings (``--set data.*`` may adjust)."""
    from marketjepa.data.ingest import ingest

    if not bars:
        raise DataValidationError("no bar files given", hint="pass --bars FILE [FILE ...]")
    for p in [*bars, *(options or []), *([option_summary] if option_summary else [])]:
        if not Path(p).is_file():
            raise DataValidationError("file not found", file=str(p))
    data = run.cfg.model_dump(mode="json")
    if overrides:
        bad = [o for o in overrides if not o.startswith("data.")]
        if bad:
            raise MarketJepaError(f"signal only takes data.* overrides, not {', '.join(bad)}")
        data = apply_overrides(data, overrides)
    data["data"].update(
        source="files",
        stock_files=None,
        option_files=None,
        option_summary_file=str(option_summary) if option_summary else None,
    )
    cfg = build_config(data, f"{run.run_dir}/config.yaml for new bars")
    ticker = cfg.data.ticker.upper()
    try:
        result = ingest(
            cfg, progress=False, stock_paths=list(bars), option_paths=options or [], live=True
        )
    except DataValidationError as exc:
        if exc.problem.startswith("no rows for ticker"):
            raise DataValidationError(
                f"different ticker: the run was trained on {ticker}; {exc.problem}",
                file=exc.file,
                hint="pass bars of the run's ticker",
            ) from None
        raise
    feats = run.features(result.bars, result.option_summary)
    return NewBars(result.bars, result.option_summary, result.option_bars, feats)


def decide_new_bars(run: TrainedRun, new: NewBars, all_bars: bool = False) -> dict[str, Any]:
    """Decisions for the latest bar (or every warmed-up bar) of ``new``."""
    from marketjepa.trading.backtest import HOLD

    x = new.features.inputs
    n = x.n
    day, ts, minute = np.asarray(x.day), np.asarray(x.ts), np.asarray(x.minute)
    warm = warm_rows(day, minute, run.window, run.warmup_sessions)
    if all_bars:
        rows = warm
        if rows.size == 0:
            raise DataValidationError(warmup_error(run, day, minute, ts, n - 1), file="--bars")
    else:
        if warm.size == 0 or warm[-1] != n - 1:
            raise DataValidationError(warmup_error(run, day, minute, ts, n - 1), file="--bars")
        rows = np.array([n - 1])
    z = run.normalize(new.features.raw)
    proba, sig = run.decide(z, rows)
    market = make_market(
        run, market_frame(new.features, new.bars, new.option_summary), day, np.zeros(n, np.int8)
    )
    pricer = make_pricer(run, market, new.option_bars)
    decisions = []
    for i, r in enumerate(rows.tolist()):
        d = {
            "ts": int(ts[r]),
            "time": bar_time(ts[r]),
            "close": float(x.close[r]),
            "decision": CLASSES[int(sig[i])],
            "proba": {c: float(p) for c, p in zip(CLASSES, proba[i], strict=True)},
            "contract": None,
        }
        if sig[i] != HOLD and x.minute[r] >= x.session_minutes[r] - 2:
            d["note"] = (
                "no entry: the backtest enters at the next bar's close and must exit by the "
                "session's last bar"
            )
        elif sig[i] != HOLD:
            d["contract"] = entry_contract(run, pricer, r, int(sig[i]))
        decisions.append(d)
    sessions = new.bars["session"]
    return {
        "run": str(run.run_dir),
        "ticker": run.cfg.data.ticker.upper(),
        "representation": REPRESENTATION,
        "thresholds": run.thresholds(),
        "features": len(run.feature_names),
        "options": (
            "option data given (IV surface / option bars)"
            if new.option_summary is not None
            else "no option data: option prices are modeled"
        ),
        "pricing": pricer.mode,
        "bars": n,
        "sessions": int(day.max()) + 1,
        "first_session": str(sessions[0]),
        "last_session": str(sessions[-1]),
        "window_bars": run.window,
        "warmup_sessions": run.warmup_sessions,
        "warmup": run.warmup_reason(),
        "skipped_for_warmup": int(n - warm.size) if all_bars else None,
        "entry_rule": (
            f"an entry is filled at the close of the next bar; hold {run.cfg.backtest.hold_bars} "
            "bars or to the session's last bar"
        ),
        "decisions": decisions,
    }


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:+.2f}%"


def _tau(t: float | None) -> str:
    return "off" if t is None else f"{t:.3f}"


def format_signal(out: dict[str, Any]) -> list[str]:
    """Human-readable lines of :func:`decide_new_bars`'s result."""
    th = out["thresholds"]
    lines = [
        f"run {out['run']} · {out['ticker']} · {out['representation']} policy · "
        f"thresholds CALL {_tau(th['BUY_CALL'])} / PUT {_tau(th['BUY_PUT'])}",
        f"bars: {out['bars']:,} in {out['sessions']} sessions ({out['first_session']} to "
        f"{out['last_session']}); {out['options']}",
        f"warm-up: needs {out['warmup']}",
    ]
    if out["skipped_for_warmup"]:
        lines.append(f"skipped {out['skipped_for_warmup']:,} bars still warming up")
    for d in out["decisions"]:
        p = d["proba"]
        lines.append(
            f"{d['time']}  close {d['close']:.2f}  {d['decision']:<8}  "
            f"p(HOLD) {p['HOLD']:.3f}  p(CALL) {p['BUY_CALL']:.3f}  p(PUT) {p['BUY_PUT']:.3f}"
        )
        c = d["contract"]
        if d.get("note"):
            lines.append(f"    {d['note']}")
        if c:
            lines.append(
                f"    buy 1 {c['contract']} ({c['right']} {c['strike']:g} exp {c['expiry']}): "
                f"mid {c['mid']:.2f}, fill {c['entry_fill']:.2f}, IV {100 * c['iv']:.1f}% "
                f"[{c['price_source']}]; breakeven move {_pct(c['breakeven_move'])} "
                f"within {c['hold_bars']} bars"
            )
    if any(d["contract"] for d in out["decisions"]):
        lines.append(f"({out['entry_rule']}; prices at the signal bar's close)")
    return lines

"""The embedded synthetic market: raw layout, stylized facts, determinism, planted signal."""

from __future__ import annotations

import itertools
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy.stats import kurtosis

from marketjepa.artifacts import read_json
from marketjepa.black_scholes import bs_greeks, bs_price, implied_vol
from marketjepa.config import SynthConfig
from marketjepa.constants import CALENDAR_MINUTES_PER_YEAR
from marketjepa.data.calendar import NS_PER_MINUTE, session_of, trading_sessions
from marketjepa.data.occ import parse_occ
from marketjepa.data.synthetic import generate as gen_module
from marketjepa.data.synthetic import generate_market
from marketjepa.data.synthetic.params import market_params
from marketjepa.data.synthetic.regime import forward_filter
from marketjepa.data.synthetic.surface import Z25, skew_25d, smile_iv
from marketjepa.errors import MarketJepaError

# Three months with a DST change (2022-11-06), Thanksgiving and its half day (11-25).
START, END = date(2022, 10, 3), date(2022, 12, 30)
SEED = 7
POLYGON = ["ticker", "volume", "open", "close", "high", "low", "window_start", "transactions"]
H = 30  # label horizon (minutes)


def _cfg(**kw) -> SynthConfig:
    base = dict(start=START, end=END, seed=SEED, signal=2.0, strikes_each_side=6)
    return SynthConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("planted") / "raw"
    summary = generate_market(_cfg(), out, progress=False)
    assert summary["out_dir"] == str(out) and summary["days"] > 0
    return out


@pytest.fixture(scope="module")
def null(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("null") / "raw"
    generate_market(_cfg(signal=0.0), out, progress=False)
    return out


@pytest.fixture(scope="module")
def sessions() -> pl.DataFrame:
    return trading_sessions(START, END)


def _read_dir(folder: Path) -> pl.DataFrame:
    frames = []
    for f in sorted(folder.glob("*.csv.gz")):
        frames.append(pl.read_csv(f).with_columns(pl.lit(f.name[:10]).alias("file")))
    return pl.concat(frames)


@pytest.fixture(scope="module")
def stocks(planted) -> pl.DataFrame:
    return _read_dir(planted / "stocks")


def _regular(df: pl.DataFrame, sessions: pl.DataFrame) -> dict[str, np.ndarray]:
    """Regular-session bars as [day, minute] grids (NaN where absent)."""
    ts = df["window_start"].to_numpy()
    day, minute = session_of(ts, sessions)
    ok = day >= 0
    grid = {}
    for col in ("open", "close", "volume"):
        g = np.full((sessions.height, 390), np.nan)
        g[day[ok], minute[ok]] = df[col].to_numpy()[ok].astype(float)
        grid[col] = g
    grid["full"] = ~sessions["early_close"].to_numpy()
    return grid


@pytest.fixture(scope="module")
def grid(stocks, sessions):
    return _regular(stocks, sessions)


def _returns(grid) -> np.ndarray:
    """Within-session 1-minute log returns [day, minute]; minute 0 is the first bar's own
    open→close move, so the overnight gap is excluded."""
    lc = np.log(grid["close"])
    r = np.empty_like(lc)
    r[:, 0] = lc[:, 0] - np.log(grid["open"][:, 0])
    r[:, 1:] = np.diff(lc, axis=1)
    return r


# ---------------------------------------------------------------- layout and formats


def test_one_file_per_session_incl_half_day(planted, sessions):
    days = {f"{d:%Y-%m-%d}.csv.gz" for d in sessions["session"].to_list()}
    assert {p.name for p in (planted / "stocks").iterdir()} == days
    assert {p.name for p in (planted / "options").iterdir()} == days
    assert "2022-11-24.csv.gz" not in days and "2022-11-25.csv.gz" in days
    manifest = read_json(planted / "manifest.json")
    assert manifest["counts"]["days"] == sessions.height
    assert manifest["counts"]["half_days"] == 1
    assert manifest["config"]["seed"] == SEED and manifest["seconds"] > 0


def test_polygon_columns_and_dtypes(planted):
    for sub in ("stocks", "options"):
        df = pl.read_csv(planted / sub / "2022-11-25.csv.gz")
        quotes = ["bid", "ask"] if sub == "options" else []
        assert df.columns == [*POLYGON, *quotes]
        assert df.dtypes == [
            pl.Utf8,
            pl.Int64,
            *[pl.Float64] * 4,
            pl.Int64,
            pl.Int64,
            *[pl.Float64] * len(quotes),
        ]
        assert (df["high"] >= df[["open", "close"]].max_horizontal()).all()
        assert (df["low"] <= df[["open", "close"]].min_horizontal()).all()
        assert (df["low"] > 0).all() and (df["transactions"] <= df["volume"]).all()
        traded = df["volume"] >= 1
        assert (df.filter(traded)["transactions"] >= 1).all()
        if sub == "stocks":
            assert traded.all()
        else:  # a few option bars are quote updates without a trade
            assert 0.0 < 1.0 - traded.mean() < 0.1
            assert (df.filter(~traded)["transactions"] == 0).all()


def test_option_bid_ask(planted):
    df = _read_dir(planted / "options")
    bid, ask, close = df["bid"].to_numpy(), df["ask"].to_numpy(), df["close"].to_numpy()
    assert (bid >= 0).all() and (ask - bid >= 0.01 - 1e-9).all()
    assert ((close >= np.maximum(bid, 0.01) - 1e-9) & (close <= ask + 1e-9)).all()
    # Spreads widen away from the money and at short maturity (relative to price).
    parsed = parse_occ(df["ticker"])
    day = pl.Series(df["file"]).str.to_date()
    dte = (parsed["expiry"] - day).dt.total_days().to_numpy()
    rel = (ask - bid) / np.maximum(0.5 * (ask + bid), 0.01)
    assert np.median(rel[dte == 0]) > np.median(rel[(dte > 20) & (dte < 60)])
    stock = pl.read_csv(planted / "stocks" / "2022-11-25.csv.gz")
    assert (stock["ticker"] == "SPY").all() and stock["window_start"].is_sorted()


def test_pre_post_market_bars_and_half_day(stocks, sessions):
    ts = stocks["window_start"].to_numpy()
    day, minute = session_of(ts, sessions)
    files = stocks["file"].to_numpy()
    opens = dict(zip(sessions["session"].cast(pl.Utf8), sessions["open_ns"], strict=True))
    closes = dict(zip(sessions["session"].cast(pl.Utf8), sessions["close_ns"], strict=True))
    o = np.array([opens[f] for f in files])
    c = np.array([closes[f] for f in files])
    pre, post = ts < o, ts >= c
    assert (pre | post | (day >= 0)).all()
    assert (ts >= o - 30 * NS_PER_MINUTE).all() and (ts < c + 30 * NS_PER_MINUTE).all()
    per_day = pl.DataFrame({"file": files, "pre": pre, "post": post}).group_by("file").sum()
    assert (per_day["pre"] > 10).all() and (per_day["post"] > 10).all()
    # Every regular minute has a bar; the half day stops at 13:00 ET (210 minutes).
    counts = np.bincount(day[day >= 0], minlength=sessions.height)
    assert counts.tolist() == sessions["session_minutes"].to_list()
    half = sessions["session"].to_list().index(date(2022, 11, 25))
    assert counts[half] == 210 and minute[day == half].max() == 209


def test_option_tickers_parse_and_chain(planted, sessions, grid):
    opt = _read_dir(planted / "options")
    parsed = parse_occ(opt["ticker"])
    assert parsed["valid"].all() and (parsed["root"] == "SPY").all()
    day = pl.Series(opt["file"]).str.to_date()
    dte = (parsed["expiry"] - day).dt.total_days()
    assert dte.min() == 0 and 190 <= dte.max() <= 350
    per_day = pl.DataFrame({"d": day, "e": parsed["expiry"], "dte": dte}).group_by("d")
    per_day = per_day.agg(pl.col("e").n_unique(), pl.col("dte").max())
    assert (per_day["e"] >= 6).all()  # 0DTE, weeklies, monthlies, quarterlies
    assert (per_day["dte"] >= 190).all()  # a quarterly ≥ 6 months out every day
    # Weekly/monthly expiries are Fridays (or the Thursday before a Friday holiday).
    later = parsed.filter(dte > 0)["expiry"].dt.weekday().unique().to_list()
    assert set(later) <= {4, 5}  # ISO weekdays: Thursday 4, Friday 5
    # Strikes $1 apart within ±6 of the day's first regular open, $5 apart out to ±12%.
    first_open = pl.DataFrame({"d": sessions["session"], "k0": np.round(grid["open"][:, 0])})
    k = pl.DataFrame({"d": day, "strike": parsed["strike"]}).join(first_open, on="d")
    off = (k["strike"] - k["k0"]).abs()
    assert (k["strike"] == k["strike"].round(0)).all()
    assert ((off <= 6) | (k["strike"] % 5 == 0)).all()
    assert (off <= 0.12 * k["k0"] + 1e-9).all() and (off >= 0.09 * k["k0"]).any()
    # Only minutes where a contract traded: far from "every minute", but busy near the money.
    n_contracts = opt["ticker"].n_unique()
    per_minute = opt.height / (sessions["session_minutes"].sum() * n_contracts)
    assert 0.002 < per_minute < 0.5
    assert opt.select(pl.struct("ticker", "window_start").is_unique().all()).item()


def test_truth_is_regular_session_only(planted, sessions):
    truth = pl.read_parquet(planted / "truth" / "latent.parquet")
    k = 3
    assert truth.columns == ["ts", "regime", *[f"filter_p{i}" for i in range(k)], "drift"]
    assert truth["ts"].dtype == pl.Int64 and truth["regime"].dtype == pl.Int8
    day, _ = session_of(truth["ts"].to_numpy(), sessions)
    assert (day >= 0).all() and truth.height == sessions["session_minutes"].sum()
    post = truth.select(pl.sum_horizontal(f"filter_p{i}" for i in range(k))).to_series()
    assert np.allclose(post.to_numpy(), 1.0)
    params = read_json(planted / "truth" / "params.json")
    assert params["regime_names"] == ["down", "neutral", "up"]
    assert len(params["transition"]) == k


# ---------------------------------------------------------------- stylized facts


def test_heavy_tails(grid):
    r = _returns(grid)[grid["full"]]
    assert 4.0 < kurtosis(r.ravel()) < 80.0  # raw 1-minute excess kurtosis
    # Even after removing the intraday pattern, 5σ moves are far more common than Gaussian.
    z = r / np.sqrt(np.mean(r**2, axis=0))
    gaussian_rate = 5.7e-7  # P(|N(0,1)| > 5)
    assert np.mean(np.abs(z) > 5.0) > 100 * gaussian_rate
    assert kurtosis(z.ravel()) > 1.5


def test_volatility_clustering(grid):
    a = np.abs(_returns(grid)[:, 1:])
    a = a - np.nanmean(a)

    def acf(lag: int) -> float:
        x, y = a[:, :-lag], a[:, lag:]
        ok = np.isfinite(x) & np.isfinite(y)
        return float(np.sum(x[ok] * y[ok]) / np.sqrt(np.sum(x[ok] ** 2) * np.sum(y[ok] ** 2)))

    rho = {lag: acf(lag) for lag in (1, 5, 15, 30, 60, 120)}
    assert 0.1 < rho[1] < 0.45
    assert all(rho[lag] > 0.02 for lag in (5, 15, 30, 60)) and rho[120] > 0
    assert rho[1] > rho[30] > rho[120]


def test_u_shaped_volume_and_volatility(grid):
    full = grid["full"]
    absr = np.nanmean(np.abs(_returns(grid)[full]), axis=0)
    vol = np.nanmean(grid["volume"][full], axis=0)
    mid = slice(150, 270)
    assert absr[:30].mean() / absr[mid].mean() > 1.8
    assert absr[-30:].mean() / absr[mid].mean() > 1.2
    assert vol[:30].mean() / vol[mid].mean() > 2.5
    assert vol[-30:].mean() / vol[mid].mean() > 2.0


def test_overnight_gaps(grid):
    last = np.array([row[np.isfinite(row)][-1] for row in grid["close"]])
    gap = np.log(grid["open"][1:, 0] / last[:-1])
    assert np.mean(gap == 0) < 0.05
    assert 0.001 < np.std(gap) < 0.02


def test_leverage_effect(grid):
    """Falling prices raise volatility: corr(z_t, mean |z| over the next 10 bars) < 0."""
    r = _returns(grid)[grid["full"]]
    z = r / np.sqrt(np.mean(r**2, axis=0))
    k = 10
    cs = np.concatenate([np.zeros((z.shape[0], 1)), np.cumsum(np.abs(z), axis=1)], axis=1)
    t = np.arange(0, z.shape[1] - k)
    future = (cs[:, t + 1 + k] - cs[:, t + 1]) / k
    rho = np.corrcoef(z[:, t].ravel(), future.ravel())[0, 1]
    assert rho < -3.0 / np.sqrt(future.size)


@pytest.fixture(scope="module")
def option_iv(planted, stocks):
    """Option closes with their Black–Scholes IV (calendar-time T, ingest defaults r, q)."""
    opt = _read_dir(planted / "options")
    p = market_params(_cfg())
    parsed = parse_occ(opt["ticker"])
    sess = trading_sessions(START, date(2023, 3, 31))
    closes = pl.DataFrame({"expiry": sess["session"], "exp_ns": sess["close_ns"]})
    df = (
        pl.concat([opt, parsed.drop("symbol")], how="horizontal")
        .join(closes, on="expiry")
        .join(stocks.select("window_start", pl.col("close").alias("S")), on="window_start")
        .with_columns(
            ((pl.col("exp_ns") - pl.col("window_start") - NS_PER_MINUTE) / NS_PER_MINUTE).alias(
                "t_min"
            ),
            (pl.col("expiry") - pl.col("file").str.to_date()).dt.total_days().alias("dte"),
        )
        .filter((pl.col("t_min") >= 30) & (pl.col("close") >= 0.05))
        .gather_every(2)
    )
    t = df["t_min"].to_numpy() / CALENDAR_MINUTES_PER_YEAR
    call = (df["right"] == "C").to_numpy()
    args = (df["S"].to_numpy(), df["strike"].to_numpy(), t)
    iv, status = implied_vol(
        df["close"].to_numpy(), *args, call, p.risk_free_rate, p.dividend_yield
    )
    delta = bs_greeks(*args, np.nan_to_num(iv, nan=0.2), call, p.risk_free_rate, p.dividend_yield)
    fwd = df["S"].to_numpy() * np.exp((p.risk_free_rate - p.dividend_yield) * t)
    x = np.log(df["strike"].to_numpy() / fwd) / (np.nan_to_num(iv, nan=0.2) * np.sqrt(t))
    return df.with_columns(
        pl.Series("iv", iv),
        pl.Series("status", status),
        pl.Series("delta", delta["delta"]),
        pl.Series("x", x),
        pl.Series("t", t),
    )


def test_option_prices_invert_and_iv_levels(option_iv):
    assert (option_iv["status"] == 0).mean() > 0.9
    ok = option_iv.filter(pl.col("status") == 0)
    # Monthly (≥ 5 sessions) ATM IV in an SPY-like range.
    atm = ok.filter((pl.col("dte") >= 7) & (pl.col("x").abs() < 0.3))["iv"]
    assert 0.1 < atm.median() < 0.4


def test_implied_above_realized(option_iv, grid, sessions):
    """Near-ATM 0DTE implied variance to the close vs the variance realized until the close."""
    atm = option_iv.filter(
        (pl.col("status") == 0) & (pl.col("dte") == 0) & (pl.col("x").abs() < 0.3)
    )
    day, minute = session_of(atm["window_start"].to_numpy(), sessions)
    r2 = _returns(grid) ** 2
    r2 = np.where(np.isfinite(r2), r2, 0.0)
    # Variance from the bar's close to the session close: sum of r_j^2 for j > m.
    remaining = np.cumsum(r2[:, ::-1], axis=1)[:, ::-1] - r2
    realized = remaining[day, minute]
    implied = atm["iv"].to_numpy() ** 2 * atm["t"].to_numpy()
    assert implied.size > 1000
    assert implied.mean() > 1.1 * realized.mean()
    # ... and it tracks it: more implied variance, more realized variance.
    assert np.corrcoef(np.log(implied), np.log(realized + 1e-12))[0, 1] > 0.3


def test_put_skew_positive_and_rising_with_maturity(option_iv):
    ok = option_iv.filter((pl.col("status") == 0) & (pl.col("x").abs() < 1.5))
    # Per (minute, expiry): demean IV and standardized moneyness, then slope of IV on x.
    dm = ok.with_columns(
        (pl.col(c) - pl.col(c).mean().over("window_start", "expiry")).alias(f"d_{c}")
        for c in ("iv", "x")
    ).with_columns(
        pl.when(pl.col("dte") == 0)
        .then(0)
        .when(pl.col("dte") <= 7)
        .then(1)
        .otherwise(2)
        .alias("bucket")
    )
    slopes = (
        dm.group_by("bucket")
        .agg(((pl.col("d_iv") * pl.col("d_x")).sum() / (pl.col("d_x") ** 2).sum()).alias("b"))
        .sort("bucket")
    )
    skew25 = -2.0 * Z25 * slopes["b"].to_numpy()  # 25Δ put − call IV implied by the slope
    assert (skew25 > 0.03).all() and (skew25 < 0.12).all()
    assert skew25[0] < skew25[1] < skew25[2]
    # Model-free: OTM puts carry more IV than OTM calls at the same |Δ|.
    puts = ok.filter((pl.col("right") == "P") & pl.col("delta").is_between(-0.4, -0.15))
    calls = ok.filter((pl.col("right") == "C") & pl.col("delta").is_between(0.15, 0.4))
    assert puts["iv"].mean() > calls["iv"].mean() + 0.01


def test_surface_skew_definition():
    p = market_params(_cfg())
    t = np.array([1 / 365, 7 / 365, 30 / 365, 90 / 365])[None, :, None]
    sk = skew_25d(t, np.ones(1), np.zeros((1, 1)), p)[0, :, 0]
    assert np.all(np.diff(sk) > 0) and 0.04 <= sk[0] and sk[-1] <= 0.09
    # At the 25Δ strikes the smile gives put IV − call IV ≈ skew25.
    atm, tt, s, r, q = 0.18, 30 / 365, 450.0, p.risk_free_rate, p.dividend_yield
    f = s * np.exp((r - q) * tt)
    k_put = f * np.exp((-Z25 + 0.5 * atm * np.sqrt(tt)) * atm * np.sqrt(tt))
    k_call = f * np.exp((Z25 + 0.5 * atm * np.sqrt(tt)) * atm * np.sqrt(tt))
    iv_p, iv_c = smile_iv(np.array([k_put, k_call]), f, tt, atm, sk[2], p.smile_curvature)
    assert abs((iv_p - iv_c) - sk[2]) < 0.005
    price = bs_price(s, k_put, tt, iv_p, False, r, q)
    assert price > 0


# ---------------------------------------------------------------- planted signal


def _forward_blocks(folder: Path, sessions: pl.DataFrame):
    """Non-overlapping 30-minute blocks: (true level, filter-expected level, fwd z-return)."""
    g = _regular(_read_dir(folder / "stocks"), sessions)
    truth = pl.read_parquet(folder / "truth" / "latent.parquet")
    day, minute = session_of(truth["ts"].to_numpy(), sessions)
    lv = np.full((sessions.height, 390), np.nan)
    ef = np.full((sessions.height, 390), np.nan)
    levels = np.array([-1.0, 0.0, 1.0])
    lv[day, minute] = levels[truth["regime"].to_numpy()]
    post = truth.select("filter_p0", "filter_p1", "filter_p2").to_numpy()
    ef[day, minute] = post @ levels
    lc = np.log(g["close"])
    r = _returns(g)
    sig = np.sqrt(np.nanmean(r[:, 1:] ** 2, axis=1))  # daily scale: vol-normalized returns
    t0 = np.arange(H - 1, 390 - H, H)
    fwd = (lc[:, t0 + H] - lc[:, t0]) / (sig[:, None] * np.sqrt(H))
    out = lv[:, t0].ravel(), ef[:, t0].ravel(), fwd.ravel()
    ok = np.isfinite(out[2])
    return tuple(a[ok] for a in out), truth


def test_planted_signal_predicts_forward_returns(planted, sessions):
    (lv, ef, fwd), truth = _forward_blocks(planted, sessions)
    noise = 1.0 / np.sqrt(fwd.size)
    assert np.corrcoef(lv, fwd)[0, 1] > 4 * noise
    assert np.corrcoef(ef, fwd)[0, 1] > 4 * noise
    # The filter tracks the hidden state well above chance (1/3).
    post = truth.select("filter_p0", "filter_p1", "filter_p2").to_numpy()
    assert np.mean(post.argmax(axis=1) == truth["regime"].to_numpy()) > 0.6
    # Drift column: up regime drifts up, down regime down, neutral none.
    by = truth.group_by("regime").agg(pl.col("drift").mean()).sort("regime")["drift"]
    assert by[0] < 0 and by[1] == 0 and by[2] > 0


def test_null_market_has_no_direction_signal(null, sessions, planted):
    (lv, ef, fwd), truth = _forward_blocks(null, sessions)
    noise = 1.0 / np.sqrt(fwd.size)
    assert abs(np.corrcoef(lv, fwd)[0, 1]) < 3.5 * noise
    post = truth.select("filter_p0", "filter_p1", "filter_p2").to_numpy()
    assert np.allclose(post, 1.0 / 3.0)  # observables carry nothing: the filter stays put
    assert (truth["drift"] == 0).all()
    # Same seed: the hidden regime path is identical, only its effects are switched off.
    planted_truth = pl.read_parquet(planted / "truth" / "latent.parquet")
    assert truth["regime"].equals(planted_truth["regime"])


def test_null_market_volatility_still_predictable(null, sessions):
    g = _regular(_read_dir(null / "stocks"), sessions)
    r2 = _returns(g)[g["full"], 1:] ** 2
    t0 = np.arange(60, 389 - H, H)
    past = np.stack([np.nanmean(r2[:, t - 60 : t], axis=1) for t in t0], axis=1)
    fut = np.stack([np.nanmean(r2[:, t : t + H], axis=1) for t in t0], axis=1)
    ok = np.isfinite(past) & np.isfinite(fut)
    assert np.corrcoef(np.log(past[ok]), np.log(fut[ok]))[0, 1] > 0.3


def test_forward_filter_is_exact_and_causal():
    rng = np.random.default_rng(0)
    trans = np.array([[0.9, 0.1], [0.2, 0.8]])
    ll = rng.normal(size=(3, 5, 2))
    post = forward_filter(ll, trans)
    # Brute force: sum over all state paths (uniform start) up to each t.
    lik = np.exp(ll)
    for d, t in itertools.product(range(3), range(5)):
        num = np.zeros(2)
        for path in itertools.product(range(2), repeat=t + 1):
            w = 0.5 * lik[d, 0, path[0]]
            for u in range(1, t + 1):
                w *= trans[path[u - 1], path[u]] * lik[d, u, path[u]]
            num[path[-1]] += w
        assert np.allclose(post[d, t], num / num.sum())
    # Perturbing the future never moves the past.
    ll2 = ll.copy()
    ll2[:, 3:] += rng.normal(size=(3, 2, 2)) * 5
    assert np.array_equal(forward_filter(ll2, trans)[:, :3], post[:, :3])


# ---------------------------------------------------------------- determinism and safety


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "manifest.json"
    }


def test_deterministic_given_seed(tmp_path):
    short = dict(start=date(2023, 3, 6), end=date(2023, 3, 10))
    a = _files(Path(generate_market(_cfg(**short), tmp_path / "a", progress=False)["out_dir"]))
    b = _files(Path(generate_market(_cfg(**short), tmp_path / "b", progress=False)["out_dir"]))
    c = _files(
        Path(
            generate_market(_cfg(seed=SEED + 1, **short), tmp_path / "c", progress=False)["out_dir"]
        )
    )
    assert len(a) == 5 + 5 + 2 and a == b
    assert a.keys() == c.keys()
    assert all(a[k] != c[k] for k in a if k.endswith(".csv.gz"))


def test_crash_leaves_no_partial_output(tmp_path, monkeypatch):
    calls = {"n": 0}
    real = gen_module.day_option_bars

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("disk full")
        return real(*args, **kwargs)

    monkeypatch.setattr(gen_module, "day_option_bars", flaky)
    out = tmp_path / "raw"
    with pytest.raises(RuntimeError, match="disk full"):
        generate_market(_cfg(start=date(2023, 3, 6), end=date(2023, 3, 10)), out, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_refuses_to_replace_unrelated_folder(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(MarketJepaError, match="not an earlier synthetic market"):
        generate_market(_cfg(start=date(2023, 3, 6), end=date(2023, 3, 7)), out, progress=False)
    assert (out / "notes.txt").read_text() == "keep me"


def test_regenerating_replaces_previous_output(tmp_path):
    out = tmp_path / "raw"
    generate_market(_cfg(start=date(2023, 3, 6), end=date(2023, 3, 10)), out, progress=False)
    generate_market(_cfg(start=date(2023, 3, 6), end=date(2023, 3, 7)), out, progress=False)
    assert len(list((out / "stocks").iterdir())) == 2
    assert [p.name for p in tmp_path.iterdir()] == ["raw"]


def test_options_can_be_switched_off(tmp_path):
    out = tmp_path / "raw"
    s = generate_market(
        _cfg(start=date(2023, 3, 6), end=date(2023, 3, 7), options=False), out, progress=False
    )
    assert s["option_rows"] == 0 and not (out / "options").exists()


def test_empty_range_is_a_clear_error(tmp_path):
    with pytest.raises(MarketJepaError, match="no NYSE trading sessions"):
        generate_market(_cfg(start=date(2022, 12, 24), end=date(2022, 12, 26)), tmp_path / "x")


def test_other_regime_counts(tmp_path):
    out = tmp_path / "raw"
    generate_market(
        _cfg(start=date(2023, 3, 6), end=date(2023, 3, 8), n_regimes=4), out, progress=False
    )
    truth = pl.read_parquet(out / "truth" / "latent.parquet")
    assert [c for c in truth.columns if c.startswith("filter_p")] == [
        f"filter_p{k}" for k in range(4)
    ]
    assert set(truth["regime"].unique().to_list()) <= {0, 1, 2, 3}

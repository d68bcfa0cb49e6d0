"""`inspect_raw` summary on small Polygon-layout fixtures (synthetic-style folders)."""

from __future__ import annotations

import gzip
import io
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
from rich.console import Console

from marketjepa.black_scholes import bs_price
from marketjepa.config import build_config
from marketjepa.constants import CALENDAR_MINUTES_PER_YEAR
from marketjepa.data.calendar import NS_PER_MINUTE, trading_sessions
from marketjepa.data.inspect import inspect_raw
from marketjepa.data.occ import occ_symbol
from marketjepa.paths import synthetic_dir

COLS = ["ticker", "volume", "open", "close", "high", "low", "window_start", "transactions"]


def stock_day(day: date, skip=()) -> pl.DataFrame:
    s = trading_sessions(day, day).row(0, named=True)
    m = np.array([k for k in range(-3, s["session_minutes"] + 2) if k not in skip])
    c = 400.0 + 0.01 * m
    return pl.DataFrame(
        {
            "ticker": "SPY",
            "volume": 50.0,
            "open": c,
            "close": c,
            "high": c + 0.1,
            "low": c - 0.1,
            "window_start": s["open_ns"] + m * NS_PER_MINUTE,
            "transactions": 2,
        }
    ).select(COLS)


def option_day(day: date) -> pl.DataFrame:
    s = trading_sessions(day, day).row(0, named=True)
    exp = date(2024, 3, 22)
    T = (
        (trading_sessions(exp, exp)["close_ns"][0] - s["open_ns"] - NS_PER_MINUTE)
        / NS_PER_MINUTE
        / CALENDAR_MINUTES_PER_YEAR
    )
    rows = []
    for k in (399.0, 400.0, 401.0):
        for right in "CP":
            px = float(bs_price(400.0, k, T, 0.2, right == "C", 0.04, 0.013))
            rows.append(
                {
                    "ticker": occ_symbol("SPY", exp, right, k),
                    "volume": 1.0,
                    "open": px,
                    "close": px,
                    "high": px,
                    "low": px,
                    "window_start": s["open_ns"],
                    "transactions": 1,
                }
            )
    rows[0]["close"] = rows[0]["low"] = 0.01  # deep below intrinsic: one failed inversion
    return pl.DataFrame(rows).select(COLS)


def write(df: pl.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(df.write_csv().encode()))


def render(cfg) -> str:
    buf = io.StringIO()
    Console(file=buf, width=200).print(inspect_raw(cfg))
    return buf.getvalue()


def test_inspect_synthetic_layout_with_options(tmp_path):
    cfg = build_config({"synth": {"out_dir": str(tmp_path / "synth")}})
    root = synthetic_dir(cfg)
    d1, d2 = date(2024, 3, 11), date(2024, 3, 12)
    write(stock_day(d1, skip={100, 101}), root / "stocks" / f"{d1}.csv.gz")
    write(stock_day(d2), root / "stocks" / f"{d2}.csv.gz")
    write(option_day(d1), root / "options" / f"{d1}.csv.gz")
    out = render(cfg)
    assert "2 XNYS sessions 2024-03-11 → 2024-03-12" in out
    assert "788 raw → regular 778 / pre 6 / post 4" in out
    assert f"{100 * 778 / 780:.2f}% of 780 minutes" in out
    assert "1 runs, 2 minutes; longest 2 min at 2024-03-11 11:10 ET" in out
    assert "399.90 – 403.99" in out  # low of minute 0, high of the last regular minute
    assert "6 contracts, 1 expiries" in out
    assert "median 0.200" in out
    assert "failed inversions │ 1 of 6" in out and "below_intrinsic 1" in out


def test_inspect_reports_missing_days_and_long_gaps_instead_of_failing(tmp_path):
    d1, d3 = date(2024, 3, 11), date(2024, 3, 13)
    write(stock_day(d1, skip=set(range(200, 230))), tmp_path / "stocks" / f"{d1}.csv.gz")
    write(stock_day(d3), tmp_path / "stocks" / f"{d3}.csv.gz")
    cfg = build_config(
        {"data": {"source": "files", "stock_files": str(tmp_path / "stocks" / "*.gz")}}
    )
    out = render(cfg)
    assert "3 XNYS sessions" in out and "2 with regular-session bars" in out
    assert "days without bars │ 1: 2024-03-12" in out
    assert "longest 30 min" in out and "1 too long" in out
    assert "options           │ none configured" in out

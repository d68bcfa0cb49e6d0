"""Ingest on small hand-built Polygon / column-mapped / Parquet files."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from helpers.polygon import POLY_COLS, files_cfg, session_frame, write_csv_gz
from marketjepa.black_scholes import bs_price
from marketjepa.config import build_config
from marketjepa.constants import CALENDAR_MINUTES_PER_YEAR
from marketjepa.data.calendar import NS_PER_MINUTE, trading_sessions
from marketjepa.data.ingest import ingest
from marketjepa.data.occ import occ_symbol
from marketjepa.errors import DataValidationError
from marketjepa.paths import synthetic_dir


def day_frame(
    day: date, pre: int = 2, post: int = 2, price: float = 100.0, skip=()
) -> pl.DataFrame:
    """Polygon-style bars of one session: ``pre`` bars before the open, ``post`` after."""
    s = trading_sessions(day, day).row(0, named=True)
    n = s["session_minutes"]
    m = np.array([k for k in range(-pre, n + post) if k not in skip])
    close = price + 0.01 * m
    return session_frame(s["open_ns"], m, close, np.where(m == 5, 0.0, 1000.0 + m))


def write_days(tmp_path: Path, days: list[date], **kw) -> None:
    for d in days:
        write_csv_gz(day_frame(d, **kw), tmp_path / "stocks" / f"{d}.csv.gz")


def test_polygon_csv_gz_dst_counts_and_contract(tmp_path):
    # Friday before the 2024 DST change (EST) and the Monday after (EDT).
    days = [date(2024, 3, 8), date(2024, 3, 11)]
    write_days(tmp_path, days)
    res = ingest(files_cfg(tmp_path), progress=False)
    b = res.bars
    assert b.height == 780 and res.option_bars is None and res.option_summary is None
    assert b.schema == pl.Schema(
        {
            "ts": pl.Int64,
            "session": pl.Date,
            "minute": pl.Int16,
            "session_minutes": pl.Int16,
            "open": pl.Float64,
            "high": pl.Float64,
            "low": pl.Float64,
            "close": pl.Float64,
            "volume": pl.Float64,
            "transactions": pl.Int64,
            "filled": pl.Boolean,
        }
    )
    assert np.all(np.diff(b["ts"].to_numpy()) > 0)
    first = b.filter(pl.col("minute") == 0)["ts"].to_numpy()
    assert ((first // NS_PER_MINUTE // 60) % 24).tolist() == [14, 13]  # 09:30 ET, EST then EDT
    log = res.log
    assert log["raw_stock_bars"] == 788 and log["regular_bars"] == 780
    assert log["premarket_bars"] == 4 and log["postmarket_bars"] == 4
    assert log["dropped_outside_session"] == 8 and log["sessions"] == 2
    assert log["zero_volume_bars"] == 2 and log["filled_minutes"] == 0
    assert res.inputs["stock_files"] == 2 and len(res.inputs["stock_fingerprint"]) == 16


def test_holiday_needs_no_file_and_half_day_has_210_bars(tmp_path):
    # 2024-07-03 closes at 13:00 ET, 07-04 is a holiday (no file), 07-05 is a full day.
    write_days(tmp_path, [date(2024, 7, 3), date(2024, 7, 5)])
    res = ingest(files_cfg(tmp_path), progress=False)
    per = (
        res.bars.group_by("session")
        .agg(pl.len(), pl.col("session_minutes").first())
        .sort("session")
    )
    assert per["session"].to_list() == [date(2024, 7, 3), date(2024, 7, 5)]
    assert per["len"].to_list() == [210, 390]
    assert per["session_minutes"].to_list() == [210, 390]
    assert res.log["half_day_sessions"] == 1


def test_holiday_file_bars_are_dropped_and_counted(tmp_path):
    write_days(tmp_path, [date(2024, 7, 3), date(2024, 7, 5)])
    hol = (
        day_frame(date(2024, 7, 5), pre=0, post=0)
        .head(10)
        .with_columns(pl.col("window_start") - 24 * 60 * NS_PER_MINUTE)
    )
    write_csv_gz(hol, tmp_path / "stocks" / "2024-07-04.csv.gz")
    res = ingest(files_cfg(tmp_path), progress=False)
    assert res.bars.height == 600 and res.log["other_outside_bars"] == 10


def test_gap_repair_fills_flat_bars_at_previous_close(tmp_path):
    d1, d2 = date(2024, 3, 11), date(2024, 3, 12)
    write_csv_gz(day_frame(d1, skip={10, 11}), tmp_path / "stocks" / f"{d1}.csv.gz")
    write_csv_gz(day_frame(d2, price=101.0, skip={0}), tmp_path / "stocks" / f"{d2}.csv.gz")
    res = ingest(files_cfg(tmp_path), progress=False)
    b = res.bars
    assert b.height == 780 and res.log["filled_minutes"] == 3
    f = b.filter("filled")
    prev9 = b.filter((pl.col("session") == d1) & (pl.col("minute") == 9))["close"][0]
    day1 = f.filter(pl.col("session") == d1)
    assert day1["minute"].to_list() == [10, 11]
    for c in ("open", "high", "low", "close"):
        assert day1[c].to_list() == [prev9, prev9]
    assert day1["volume"].to_list() == [0.0, 0.0]
    # A missing first minute takes the previous session's last close (causal).
    last1 = b.filter(pl.col("session") == d1)["close"][-1]
    assert f.filter(pl.col("session") == d2)["close"].to_list() == [last1]


def test_gap_longer_than_limit_is_an_error_naming_session_and_range(tmp_path):
    d = date(2024, 3, 11)
    write_csv_gz(day_frame(d, skip=set(range(60, 66))), tmp_path / "stocks" / f"{d}.csv.gz")
    with pytest.raises(DataValidationError) as e:
        ingest(files_cfg(tmp_path), progress=False)
    msg = str(e.value)
    assert "6 consecutive" in msg and "2024-03-11" in msg
    assert "10:30 ET" in msg and "10:36" in msg and "max_fill_gap_minutes" in msg
    cfg = files_cfg(tmp_path, max_fill_gap_minutes=6)
    assert ingest(cfg, progress=False).log["filled_minutes"] == 6


def test_column_mapped_csv_with_new_york_datetime_strings(tmp_path):
    days = [date(2024, 3, 8), date(2024, 3, 11)]
    ref = pl.concat([day_frame(d) for d in days])
    et = (
        pl.from_epoch(ref["window_start"], "ns")
        .dt.replace_time_zone("UTC")
        .dt.convert_time_zone("America/New_York")
        .dt.strftime("%Y-%m-%d %H:%M:%S")
    )
    table = pl.DataFrame(
        {
            "Date": et,
            "o": ref["open"],
            "h": ref["high"],
            "l": ref["low"],
            "c": ref["close"],
            "v": ref["volume"],
        }
    )
    path = tmp_path / "spy.csv"
    table.write_csv(path)
    cols = {
        "timestamp": "Date",
        "timestamp_unit": "datetime",
        "timezone": "America/New_York",
        "ticker": None,
        "open": "o",
        "high": "h",
        "low": "l",
        "close": "c",
        "volume": "v",
        "transactions": None,
    }
    cfg = build_config(
        {"data": {"source": "files", "format": "table", "stock_files": str(path), "columns": cols}}
    )
    res = ingest(cfg, progress=False)
    write_days(tmp_path, days)
    poly = ingest(files_cfg(tmp_path), progress=False)
    assert res.bars.height == 780
    assert res.bars.drop("transactions").equals(poly.bars.drop("transactions"))
    assert res.bars["transactions"].null_count() == 780


def test_parquet_with_epoch_milliseconds(tmp_path):
    ref = day_frame(date(2024, 3, 11))
    path = tmp_path / "bars.parquet"
    ref.rename({"window_start": "t"}).with_columns(pl.col("t") // 1_000_000).write_parquet(path)
    cfg = build_config(
        {
            "data": {
                "source": "files",
                "format": "table",
                "stock_files": str(path),
                "columns": {"timestamp": "t", "timestamp_unit": "ms"},
            }
        }
    )
    res = ingest(cfg, progress=False)
    assert res.bars.height == 390 and res.log["premarket_bars"] == 2
    assert res.bars["transactions"].to_list() == [7] * 390


def _option_day(day: date, S: float, sigma: float, r: float, q: float) -> pl.DataFrame:
    """Every minute of a session: calls/puts at strikes S±2 on two expiries, BS-priced."""
    s = trading_sessions(day, day).row(0, named=True)
    expiries = [date(2024, 3, 15), date(2024, 3, 22)]
    rows = []
    for exp in expiries:
        close_ns = trading_sessions(exp, exp)["close_ns"][0]
        for right in "CP":
            for k in (S - 2, S - 1, S, S + 1, S + 2):
                m = np.arange(0, s["session_minutes"], 3)
                ts = s["open_ns"] + m * NS_PER_MINUTE
                T = (close_ns - ts - NS_PER_MINUTE) / NS_PER_MINUTE / CALENDAR_MINUTES_PER_YEAR
                px = bs_price(S, k, T, sigma, right == "C", r, q)
                rows.append(
                    pl.DataFrame(
                        {
                            "ticker": occ_symbol("SPY", exp, right, k),
                            "volume": 3.0 if right == "C" else 5.0,
                            "open": px,
                            "close": px,
                            "high": px,
                            "low": px,
                            "window_start": ts,
                            "transactions": 1,
                        }
                    )
                )
    return pl.concat(rows).select(POLY_COLS)


def test_options_end_to_end_recovers_flat_iv(tmp_path):
    d = date(2024, 3, 11)
    # Flat underlying so the chain's spot is known exactly.
    flat = day_frame(d).with_columns(
        pl.lit(500.0).alias(c) for c in ("open", "close", "high", "low")
    )
    write_csv_gz(flat, tmp_path / "stocks" / f"{d}.csv.gz")
    write_csv_gz(_option_day(d, 500.0, 0.2, 0.04, 0.013), tmp_path / "options" / f"{d}.csv.gz")
    cfg = files_cfg(tmp_path, option_files=str(tmp_path / "options" / "*.csv.gz"))
    res = ingest(cfg, progress=False)
    osum, ob = res.option_summary, res.option_bars
    assert osum.height == res.bars.height and osum["ts"].equals(res.bars["ts"])
    assert ob.columns == [
        "ts",
        "ticker",
        "expiry",
        "right",
        "strike",
        "open",
        "high",
        "low",
        "close",
        "volume",
    ]
    assert res.log["option_contracts"] == 20 and res.log["option_expiries"] == 2
    assert res.log["iv_failed"] == 0 and res.log["iv_inverted"] == res.log["option_rows"]
    obs = osum.filter(pl.col("iv_atm_near").is_not_null())
    assert obs.height == 130  # every third minute
    assert np.abs(obs["iv_atm_near"].to_numpy() - 0.2).max() < 1e-6
    assert np.abs(obs["iv_atm_far"].to_numpy() - 0.2).max() < 1e-6
    # No trades this minute → IV null (not forward-filled), volume 0.
    gap = osum.filter(pl.col("iv_atm_near").is_null())
    assert gap["call_volume"].to_list() == [0.0] * gap.height
    assert obs["call_volume"].to_list() == [30.0] * 130 and obs["put_volume"][0] == 50.0
    assert res.inputs["option_files"] == 1 and res.inputs["option_fingerprint"]


def test_user_option_summary_file_is_joined_on_ts(tmp_path):
    d = date(2024, 3, 11)
    write_days(tmp_path, [d])
    s = trading_sessions(d, d).row(0, named=True)
    ts = s["open_ns"] + np.arange(0, 390, 2) * NS_PER_MINUTE
    summ = pl.DataFrame(
        {
            "ts": ts,
            "iv_atm_near": 0.15,
            "iv_atm_far": 0.17,
            "iv_put_25d": 0.2,
            "iv_call_25d": 0.13,
            "call_volume": 10.0,
            "put_volume": 12.0,
        }
    )
    path = tmp_path / "summary.parquet"
    summ.write_parquet(path)
    res = ingest(files_cfg(tmp_path, option_summary_file=str(path)), progress=False)
    o = res.option_summary
    assert o.height == 390 and o["iv_atm_near"].null_count() == 195
    assert o["iv_atm_near"][0] == 0.15 and o["near_dte"].null_count() == 390
    assert res.log["option_summary_source"] == "file"


def test_synthetic_layout_defaults(tmp_path):
    d = date(2024, 3, 11)
    cfg = build_config({"synth": {"out_dir": str(tmp_path / "synth")}})
    write_csv_gz(day_frame(d), synthetic_dir(cfg) / "stocks" / f"{d}.csv.gz")
    res = ingest(cfg, progress=False)  # no options folder → stock only
    assert res.bars.height == 390 and res.option_summary is None
    assert res.inputs["option_files"] == 0


def _quoted_setup(tmp_path: Path, bid_ask) -> Path:
    """One flat session with an option chain; ``bid_ask(close) -> (bid, ask)`` or None."""
    d = date(2024, 3, 11)
    flat = day_frame(d).with_columns(
        pl.lit(500.0).alias(c) for c in ("open", "close", "high", "low")
    )
    write_csv_gz(flat, tmp_path / "stocks" / f"{d}.csv.gz")
    opt = _option_day(d, 500.0, 0.2, 0.04, 0.013)
    if bid_ask is not None:
        bid, ask = bid_ask(opt["close"])
        opt = opt.with_columns(bid=bid, ask=ask)
    write_csv_gz(opt, tmp_path / "options" / f"{d}.csv.gz")
    return tmp_path


def test_option_quotes_are_kept_when_present(tmp_path):
    _quoted_setup(tmp_path, lambda c: ((c - 0.02).clip(0.0), c + 0.02))
    res = ingest(files_cfg(tmp_path, option_files=str(tmp_path / "options" / "*")), False)
    ob = res.option_bars
    assert ob.columns[-2:] == ["bid", "ask"]
    assert ((ob["ask"] - ob["bid"]) > 0).all() and ob["bid"].null_count() == 0
    assert res.log["option_rows_with_quotes"] == ob.height
    # IVs still come from the trade closes, as without quotes.
    assert res.log["iv_failed"] == 0


def test_option_files_without_quotes_still_work(tmp_path):
    _quoted_setup(tmp_path, None)
    res = ingest(files_cfg(tmp_path, option_files=str(tmp_path / "options" / "*")), False)
    assert "bid" not in res.option_bars.columns
    assert res.log["option_rows_with_quotes"] == 0


def test_crossed_option_quote_is_an_error_naming_the_row(tmp_path):
    _quoted_setup(tmp_path, lambda c: (c + 0.05, c + 0.01))
    with pytest.raises(DataValidationError) as err:
        ingest(files_cfg(tmp_path, option_files=str(tmp_path / "options" / "*")), False)
    msg = str(err.value)
    assert "ask below bid" in msg and "2024-03-11.csv.gz" in msg and "row 1" in msg

"""Every validation error names the problem, the file and the row or time."""

from __future__ import annotations

import gzip
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from marketjepa.config import build_config
from marketjepa.data.calendar import NS_PER_MINUTE, trading_sessions
from marketjepa.data.ingest import ingest
from marketjepa.errors import DataValidationError

D1, D2, D3 = date(2024, 3, 11), date(2024, 3, 12), date(2024, 3, 13)
COLS = ["ticker", "volume", "open", "close", "high", "low", "window_start", "transactions"]


def bars(day: date, pre: int = 1) -> pl.DataFrame:
    s = trading_sessions(day, day).row(0, named=True)
    m = np.arange(-pre, s["session_minutes"])
    c = 100.0 + 0.01 * m
    return pl.DataFrame(
        {
            "ticker": "SPY",
            "volume": 100.0,
            "open": c,
            "close": c,
            "high": c + 0.05,
            "low": c - 0.05,
            "window_start": s["open_ns"] + m * NS_PER_MINUTE,
            "transactions": 3,
        }
    ).select(COLS)


def write(tmp_path: Path, day: date, df: pl.DataFrame | str | bytes, sub: str = "stocks") -> Path:
    p = tmp_path / sub / f"{day}.csv.gz"
    p.parent.mkdir(parents=True, exist_ok=True)
    text = df if isinstance(df, str | bytes) else df.write_csv()
    p.write_bytes(gzip.compress(text.encode() if isinstance(text, str) else text))
    return p


def cfg_for(tmp_path: Path, options: bool = False, **data):
    d = {"source": "files", "stock_files": str(tmp_path / "stocks" / "*.csv.gz"), **data}
    if options:
        d["option_files"] = str(tmp_path / "options" / "*.csv.gz")
    return build_config({"data": d})


def fails(tmp_path: Path, *needles: str, **kw) -> DataValidationError:
    with pytest.raises(DataValidationError) as e:
        ingest(cfg_for(tmp_path, **kw), progress=False)
    msg = str(e.value)
    for n in needles:
        assert n in msg, f"{n!r} not in {msg!r}"
    assert e.value.exit_code == 2
    return e.value


def set_cell(df: pl.DataFrame, row: int, col: str, value) -> pl.DataFrame:
    return df.with_columns(
        pl.when(pl.int_range(pl.len()) == row).then(pl.lit(value)).otherwise(pl.col(col)).alias(col)
    )


def test_no_files_matched(tmp_path):
    fails(tmp_path, "no stock files matched", "stocks/*.csv.gz")


def test_no_option_files_matched_when_glob_given(tmp_path):
    write(tmp_path, D1, bars(D1))
    fails(tmp_path, "no option files matched", "options/*.csv.gz", options=True)


@pytest.mark.parametrize("content", ["", ",".join(COLS) + "\n"])
def test_empty_file(tmp_path, content):
    write(tmp_path, D1, bars(D1))
    write(tmp_path, D2, content)
    fails(tmp_path, "empty file", "2024-03-12.csv.gz")


def test_missing_columns(tmp_path):
    write(tmp_path, D1, bars(D1).drop("high"))
    fails(tmp_path, "missing column", "'high'", "2024-03-11.csv.gz", "data.columns")


def test_non_numeric_price(tmp_path):
    df = bars(D1).with_columns(pl.col("close").cast(pl.Utf8))
    write(tmp_path, D1, set_cell(df, 40, "close", "12,5"))
    fails(tmp_path, "non-numeric value '12,5'", "'close'", "row 41", "2024-03-11.csv.gz")


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_nan_and_inf_prices(tmp_path, value):
    write(tmp_path, D1, set_cell(bars(D1), 12, "low", value))
    fails(tmp_path, "low is NaN or infinite", "row 13", "2024-03-11 09:41 ET", "2024-03-11.csv.gz")


def test_missing_value(tmp_path):
    write(tmp_path, D1, set_cell(bars(D1), 3, "volume", None))
    fails(tmp_path, "missing value in column 'volume'", "row 4")


def test_non_positive_price(tmp_path):
    df = set_cell(set_cell(bars(D1), 7, "low", 0.0), 7, "open", 0.0)
    write(tmp_path, D1, df)
    fails(tmp_path, "non-positive price", "'open'", "row 8", "2024-03-11.csv.gz")


def test_negative_volume(tmp_path):
    write(tmp_path, D1, set_cell(bars(D1), 2, "volume", -5.0))
    fails(tmp_path, "volume is negative", "row 3")


def test_high_below_low(tmp_path):
    write(tmp_path, D1, set_cell(bars(D1), 100, "high", 50.0))
    fails(tmp_path, "high < low", "row 101", "2024-03-11 11:09 ET", "2024-03-11.csv.gz")


@pytest.mark.parametrize("col", ["open", "close"])
def test_open_close_outside_range(tmp_path, col):
    write(tmp_path, D1, set_cell(bars(D1), 20, col, 200.0))
    fails(tmp_path, f"{col} outside [low, high]", "row 21", "2024-03-11.csv.gz")


def test_duplicate_timestamp(tmp_path):
    df = bars(D1)
    write(tmp_path, D1, pl.concat([df.head(31), df.slice(30)]))
    fails(tmp_path, "duplicate stock timestamp", "row 32", "09:59 ET", "2024-03-11.csv.gz")


def test_unsorted_timestamps(tmp_path):
    df = bars(D1)
    swapped = pl.concat([df.head(50), df.slice(51, 1), df.slice(50, 1), df.slice(52)])
    write(tmp_path, D1, swapped)
    fails(tmp_path, "unsorted stock timestamps: this bar is earlier", "row 52", "2024-03-11.csv.gz")


def test_duplicate_across_files(tmp_path):
    write(tmp_path, D1, bars(D1))
    p = tmp_path / "stocks" / "copy-2024-03-11.csv.gz"
    p.write_bytes((tmp_path / "stocks" / "2024-03-11.csv.gz").read_bytes())
    fails(tmp_path, "duplicate stock timestamp across files", "2024-03-11.csv.gz", "row 1")


def test_unit_mismatch_is_caught(tmp_path):
    write(tmp_path, D1, bars(D1).with_columns(pl.col("window_start") // 1_000_000))
    fails(tmp_path, "outside the years 1990-2100", "timestamp_unit", "row 1")


def test_off_minute_timestamp(tmp_path):
    write(tmp_path, D1, set_cell(bars(D1), 9, "window_start", bars(D1)["window_start"][9] + 1))
    fails(tmp_path, "not on a minute boundary", "row 10")


def test_unparseable_datetime_string(tmp_path):
    df = bars(D1).with_columns(
        pl.from_epoch("window_start", "ns")
        .dt.replace_time_zone("UTC")
        .dt.convert_time_zone("America/New_York")
        .dt.strftime("%Y-%m-%d %H:%M:%S")
    )
    write(tmp_path, D1, set_cell(df, 17, "window_start", "yesterday"))
    fails(
        tmp_path,
        "unparseable timestamp 'yesterday'",
        "row 18",
        format="table",
        columns={"timestamp_unit": "datetime"},
    )


def test_day_with_only_premarket_bars(tmp_path):
    write(tmp_path, D1, bars(D1))
    write(tmp_path, D2, bars(D2, pre=5).head(5))
    write(tmp_path, D3, bars(D3))
    fails(tmp_path, "trading day 2024-03-12 has 5 bars but none inside", "2024-03-12.csv.gz")


def test_missing_day_inside_range(tmp_path):
    write(tmp_path, D1, bars(D1))
    write(tmp_path, D3, bars(D3))
    fails(tmp_path, "no bars for trading day 2024-03-12", "no input file", "stocks/*.csv.gz")


def test_wrong_ticker(tmp_path):
    write(tmp_path, D1, bars(D1))
    fails(tmp_path, "no rows for ticker QQQ", "'SPY'", ticker="QQQ")


def _opt(symbols: list[str], day: date = D1) -> pl.DataFrame:
    o = trading_sessions(day, day)["open_ns"][0]
    n = len(symbols)
    return pl.DataFrame(
        {
            "ticker": symbols,
            "volume": 1.0,
            "open": 2.0,
            "close": 2.0,
            "high": 2.0,
            "low": 2.0,
            "window_start": o + np.arange(n) * NS_PER_MINUTE,
            "transactions": 1,
        }
    )


def test_unparseable_option_symbol(tmp_path):
    write(tmp_path, D1, bars(D1))
    opts = _opt(["O:SPY240315C00100000", "O:SPY240315X00100000", "O:SPY240315C00101000"])
    write(tmp_path, D1, opts, sub="options")
    fails(tmp_path, "unparseable option symbol 'O:SPY240315X00100000'", "row 2", options=True)


def test_option_price_checks_name_the_contract_row(tmp_path):
    write(tmp_path, D1, bars(D1))
    opts = set_cell(_opt(["O:SPY240315C00100000"] * 3), 2, "close", -1.0)
    write(tmp_path, D1, opts, sub="options")
    fails(
        tmp_path,
        "option bar O:SPY240315C00100000",
        "non-positive price",
        "row 3",
        "options",
        options=True,
    )


def test_option_duplicate_per_contract(tmp_path):
    write(tmp_path, D1, bars(D1))
    opts = set_cell(_opt(["O:SPY240315C00100000"] * 3), 2, "window_start", None)
    opts = opts.with_columns(pl.col("window_start").forward_fill())
    write(tmp_path, D1, opts, sub="options")
    fails(
        tmp_path,
        "duplicate option timestamp for ticker O:SPY240315C00100000",
        "row 3",
        options=True,
    )


def test_option_summary_file_rejects_zero_iv(tmp_path):
    write(tmp_path, D1, bars(D1))
    ts = bars(D1, pre=0)["window_start"].head(3)
    p = tmp_path / "summ.csv"
    pl.DataFrame(
        {
            "ts": ts,
            "iv_atm_near": [0.2, 0.0, 0.2],
            "iv_atm_far": 0.2,
            "iv_put_25d": 0.2,
            "iv_call_25d": 0.2,
            "call_volume": 1.0,
            "put_volume": 1.0,
        }
    ).write_csv(p)
    fails(
        tmp_path,
        "implied volatility must be positive",
        "summ.csv",
        "row 2",
        option_summary_file=str(p),
    )

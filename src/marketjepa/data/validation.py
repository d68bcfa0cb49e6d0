"""Validation and repair rules for raw minute bars (ingest).

Every problem is reported as a :class:`~marketjepa.errors.DataValidationError` (exit code 2)
naming the file, the row (1-based data row, header excluded) or timestamp (ET), what is
wrong and what to do. Ingest returns data and writes nothing, so a failed ingest leaves no
partial output.

Errors (the input must be fixed):

- no files matched a configured glob;
- an empty file (no rows, or only a header);
- missing columns (the message lists the columns found and the expected mapping);
- wrong dtypes: a non-numeric price/volume, an unparseable timestamp;
- a missing (empty) value in a timestamp, price or volume column;
- NaN/inf prices, non-positive prices, NaN/inf/negative volume;
- ``high < low``, or ``open``/``close`` outside ``[low, high]``;
- timestamps not on a minute boundary or outside the years 1990–2100 (usually a wrong
  ``data.columns.timestamp_unit``);
- duplicate timestamps (within a file, per option contract, or across two files) and
  timestamps that go backwards within a file (per contract for options);
- unparseable option (OCC) symbols;
- a trading day with no regular-session bars: a NYSE session between the first and the
  last day of the data that has no bars from 09:30 to the close, whether its file holds
  only pre/post-market bars or there is no file for it;
- a run of more than ``data.max_fill_gap_minutes`` consecutive missing minutes inside a
  session when ``data.partial_sessions=drop`` would drop every session (the message names
  the session and the ET time range).

Repairs (counted in the ingest log, never silent):

- a *partial session*, whose bars do not cover the calendar session (a missing run longer
  than ``data.max_fill_gap_minutes``, e.g. a file starting at 12:00 or ending early), is
  dropped whole with ``data.partial_sessions=drop`` (the default; ``dropped_sessions``,
  ``dropped_minutes``), or kept with ``keep``: its missing minutes are then filled like
  short gaps below and flagged, so they are never labelled, never a target, never traded;
- bars outside ``data.start``/``data.end`` are removed (``outside_date_range_bars``);

- bars outside the regular session (pre-market, post-market, non-trading days) are
  dropped and counted (``premarket_bars``, ``postmarket_bars``, ``other_outside_bars``);
- a run of at most ``data.max_fill_gap_minutes`` missing regular-session minutes is filled
  with flat bars (open = high = low = close = the previous bar's close, volume 0,
  transactions 0, ``filled = True``). The previous close may be the prior session's last
  close (causal); only missing minutes at the very start of the data, which have no
  previous bar, take the first observed open (``filled_minutes``);
- zero-volume bars are kept as they are and counted (``zero_volume_bars``);
- stock rows of other tickers in a multi-ticker file and option rows of other roots are
  skipped and counted (``other_ticker_rows``, ``option_rows_other_root``); option bars
  outside the regular session are counted (``option_rows_outside_session``).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl

from marketjepa.data.calendar import EXCHANGE_TZ, NS_PER_MINUTE
from marketjepa.errors import DataValidationError

PRICE_COLUMNS = ("open", "high", "low", "close")
NUMERIC_COLUMNS = (*PRICE_COLUMNS, "volume")
# Optional option-file quote columns (the bid and ask at the bar's close).
QUOTE_COLUMNS = ("bid", "ask")
_ET = ZoneInfo(EXCHANGE_TZ)
_MIN_TS = int(datetime(1990, 1, 1, tzinfo=UTC).timestamp()) * 1_000_000_000
_MAX_TS = int(datetime(2100, 1, 1, tzinfo=UTC).timestamp()) * 1_000_000_000


def fmt_ts(ns: int | None) -> str:
    """UTC nanoseconds as an ET wall-clock string for messages."""
    if ns is None:
        return "?"
    try:
        t = datetime.fromtimestamp(ns / 1e9, tz=UTC).astimezone(_ET)
    except (OverflowError, OSError, ValueError):
        return f"{ns} ns"
    return t.strftime("%Y-%m-%d %H:%M ET")


def where(row: int | None, ts: int | None = None) -> str:
    """'row N (YYYY-MM-DD HH:MM ET)' from a 0-based data row and an optional timestamp."""
    parts = []
    if row is not None:
        parts.append(f"row {row + 1}")
    if ts is not None and _MIN_TS <= ts < _MAX_TS:
        parts.append(f"({fmt_ts(ts)})" if parts else fmt_ts(ts))
    return " ".join(parts)


def _n_rows(n: int) -> str:
    return f"{n} such row{'s' if n != 1 else ''}"


def check_not_empty(df: pl.DataFrame, file: str | Path) -> None:
    if df.height == 0:
        raise DataValidationError(
            "empty file (no data rows)",
            file=str(file),
            hint="remove the file or re-download it",
        )


def check_columns(columns: list[str], required: dict[str, str], file: str | Path, fmt: str) -> None:
    """``required`` maps the role (open, close, timestamp, ...) to the expected column name."""
    missing = [
        f"'{name}'" + (f" ({role})" if role != name else "")
        for role, name in required.items()
        if name not in columns
    ]
    if missing:
        hint = (
            "Polygon flat files need ticker, volume, open, close, high, low, window_start; "
            "for other layouts set data.format=table and data.columns.*"
            if fmt == "polygon"
            else "set data.columns.<role> to the column names of your file"
        )
        raise DataValidationError(
            f"missing column(s) {', '.join(missing)}; found {columns}", file=str(file), hint=hint
        )


def to_float(df: pl.DataFrame, col: str, file: str | Path) -> pl.Series:
    """Column as Float64; a non-numeric value is an error naming the row and the value."""
    s = df[col]
    if s.dtype.is_numeric():
        return s.cast(pl.Float64)
    if s.dtype not in (pl.Utf8, pl.Categorical, pl.Null):
        raise DataValidationError(
            f"column '{col}' has dtype {s.dtype}, expected a number", file=str(file)
        )
    out = s.cast(pl.Utf8).str.strip_chars().cast(pl.Float64, strict=False)
    bad = np.flatnonzero((out.is_null() & s.is_not_null() & (s.cast(pl.Utf8) != "")).to_numpy())
    if bad.size:
        i = int(bad[0])
        raise DataValidationError(
            f"non-numeric value {s[i]!r} in column '{col}' ({_n_rows(bad.size)})",
            file=str(file),
            where=where(i),
            hint="prices and volumes must be plain numbers",
        )
    return out


def check_quotes(df: pl.DataFrame, files: list[str]) -> None:
    """Optional option quotes (``bid``, ``ask``; null = no quote): both or neither on a row,
    finite, ``bid >= 0`` and ``ask >= bid``. Raises on the first offending row."""
    if "bid" not in df.columns or df["bid"].null_count() == df.height == df["ask"].null_count():
        return
    c = pl.col
    checks = [
        (c("bid").is_null() != c("ask").is_null(), "bid without ask (or ask without bid)"),
        (~c("bid").is_finite() | ~c("ask").is_finite(), "bid or ask is NaN or infinite"),
        (c("bid") < 0, "negative bid"),
        (c("ask") < c("bid"), "ask below bid (crossed quote)"),
    ]
    for cond, problem in checks:
        bad = df.filter(cond.fill_null(False))
        if bad.height:
            r = bad.row(0, named=True)
            who = f" {r['ticker']}" if r.get("ticker") else ""
            raise DataValidationError(
                f"option bar{who}: {problem} (bid={r['bid']}, ask={r['ask']}; "
                f"{_n_rows(bad.height)})",
                file=files[r["_file"]],
                where=where(r["_row"], r["ts"]),
                hint="repair the quote or drop the bid/ask columns",
            )


def check_values(df: pl.DataFrame, files: list[str], kind: str) -> None:
    """Vectorized value checks on the concatenated frame (``_file``, ``_row``, ``ts``, OHLCV).

    Raises on the first offending row (file order, then row order).
    """
    c = pl.col
    checks: list[tuple[pl.Expr, str, str]] = []
    for col in ("ts", *NUMERIC_COLUMNS):
        checks.append(
            (c(col).is_null(), f"missing value in column '{col}'", "fill or remove the row")
        )
    for col in PRICE_COLUMNS:
        checks.append(
            (
                ~c(col).is_finite(),
                f"{col} is NaN or infinite",
                "remove the row or repair the price",
            )
        )
        checks.append(
            (
                c(col) <= 0,
                f"non-positive price in column '{col}'",
                "prices must be > 0; remove the row or repair the price",
            )
        )
    checks += [
        (
            ~c("volume").is_finite() | (c("volume") < 0),
            "volume is negative, NaN or infinite",
            "volumes must be finite and >= 0",
        ),
        (c("high") < c("low"), "high < low", "swap or repair high/low"),
        (
            (c("open") < c("low")) | (c("open") > c("high")),
            "open outside [low, high]",
            "repair the bar so low <= open <= high",
        ),
        (
            (c("close") < c("low")) | (c("close") > c("high")),
            "close outside [low, high]",
            "repair the bar so low <= close <= high",
        ),
        (
            (c("ts") < _MIN_TS) | (c("ts") >= _MAX_TS),
            "timestamp outside the years 1990-2100",
            "check data.columns.timestamp_unit (ns, us, ms, s or datetime)",
        ),
        (
            c("ts") % NS_PER_MINUTE != 0,
            "timestamp is not on a minute boundary (bars must start at :00 seconds)",
            "use 1-minute bars keyed by their start time",
        ),
    ]
    flags = df.select(
        [e.fill_null(False).any().alias(str(i)) for i, (e, _, _) in enumerate(checks)]
    )
    for i, (expr, problem, hint) in enumerate(checks):
        if not flags[str(i)][0]:
            continue
        bad = df.filter(expr.fill_null(False))
        r = bad.row(0, named=True)
        vals = ", ".join(
            f"{k}={r[k]:.10g}" if isinstance(r[k], float) else f"{k}={r[k]}"
            for k in NUMERIC_COLUMNS
        )
        who = f" {r['ticker']}" if kind == "option" and r.get("ticker") else ""
        raise DataValidationError(
            f"{kind} bar{who}: {problem} ({vals}; {_n_rows(bad.height)})",
            file=files[r["_file"]],
            where=where(r["_row"], r["ts"]),
            hint=hint,
        )


def check_order(df: pl.DataFrame, files: list[str], key: list[str], kind: str) -> None:
    """Duplicate or backwards timestamps within a file (per ``key``, e.g. the contract) and
    duplicates across files."""
    grp = ["_file", *key]
    # slim frame: sorting every OHLCV column of millions of option rows costs GBs
    slim = df.select(*grp, "_row", "ts")
    s = slim.sort([*grp, "_row"]).with_columns(_d=pl.col("ts").diff().over(grp))
    dup = s.filter(pl.col("_d") == 0)
    if dup.height:
        r = dup.row(0, named=True)
        label = f" for {key[0]} {r[key[0]]}" if key else ""
        raise DataValidationError(
            f"duplicate {kind} timestamp{label} ({dup.height} duplicates in this file)",
            file=files[r["_file"]],
            where=where(r["_row"], r["ts"]),
            hint="keep one bar per minute",
        )
    back = s.filter(pl.col("_d") < 0)
    if back.height:
        r = back.row(0, named=True)
        label = f" for {key[0]} {r[key[0]]}" if key else ""
        raise DataValidationError(
            f"unsorted {kind} timestamps{label}: this bar is earlier than the row before it",
            file=files[r["_file"]],
            where=where(r["_row"], r["ts"]),
            hint="sort the file by time (per contract for options)",
        )
    del s
    if slim["_file"].n_unique() < 2:
        return
    g = slim.sort([*key, "ts", "_file"]).with_columns(
        _same=(pl.col("ts").diff() == 0).over(key) if key else pl.col("ts").diff() == 0,
        _pf=pl.col("_file").shift(1).over(key) if key else pl.col("_file").shift(1),
        _pr=pl.col("_row").shift(1).over(key) if key else pl.col("_row").shift(1),
    )
    cross = g.filter(pl.col("_same").fill_null(False))
    if cross.height:
        r = cross.row(0, named=True)
        raise DataValidationError(
            f"duplicate {kind} timestamp across files: the same minute is also in "
            f"{files[r['_pf']]} {where(r['_pr'])}",
            file=files[r["_file"]],
            where=where(r["_row"], r["ts"]),
            hint="each minute must come from one file; remove the overlapping file",
        )


def check_occ(bad: pl.DataFrame, files: list[str]) -> None:
    """``bad`` = the option rows (``_file``, ``_row``, ``ticker``) whose symbol did not parse."""
    if bad.height:
        bad = bad.sort("_file", "_row")
        r = bad.row(0, named=True)
        raise DataValidationError(
            f"unparseable option symbol {r['ticker']!r} ({_n_rows(bad.height)})",
            file=files[r["_file"]],
            where=where(r["_row"]),
            hint="option tickers must be OCC symbols like O:SPY240119C00470000 "
            "(root, YYMMDD, C/P, strike x 1000 as 8 digits)",
        )


def check_trading_days(
    sessions: pl.DataFrame,
    present: pl.Series,
    raw_days: pl.DataFrame,
    file_days: dict[date, str],
    pattern: str,
) -> None:
    """Every NYSE session in the data range needs regular-session bars.

    ``present``: sessions (dates) with at least one regular bar; ``raw_days``: ``day``
    (ET date), ``_file`` name, ``n`` bars of the ticker per file and day.
    """
    missing = sessions.filter(~pl.col("session").is_in(present.implode()))["session"].to_list()
    if not missing:
        return
    d = missing[0]
    more = f" ({len(missing) - 1} more such days, e.g. {missing[1:4]})" if len(missing) > 1 else ""
    hit = raw_days.filter(pl.col("day") == d)
    if hit.height:
        r = hit.row(0, named=True)
        raise DataValidationError(
            f"trading day {d} has {r['n']} bars but none inside the regular session{more}",
            file=r["_file"],
            where=str(d),
            hint="check data.columns.timezone / timestamp_unit, or remove the file",
        )
    if d in file_days:
        raise DataValidationError(
            f"trading day {d} has no bars for the ticker{more}",
            file=file_days[d],
            where=str(d),
            hint="check data.ticker or replace the file",
        )
    raise DataValidationError(
        f"no bars for trading day {d} (the NYSE was open) between the first and last day "
        f"of the data; no input file covers it{more}",
        file=pattern,
        where=str(d),
        hint="add that day's file (e.g. YYYY-MM-DD.csv.gz)",
    )


def _grid(sessions: pl.DataFrame, until_ts: int | None = None) -> pl.DataFrame:
    """Every regular-session minute of ``sessions``: ``ts, session, minute, session_minutes``
    (only those starting at or before ``until_ts`` when given: a live feed's last session
    has not finished)."""
    n = sessions["session_minutes"].to_numpy().astype(np.int64)
    opens = sessions["open_ns"].to_numpy()
    sidx = np.repeat(np.arange(len(n)), n)
    starts = np.repeat(np.cumsum(n) - n, n)
    minute = np.arange(int(n.sum()), dtype=np.int64) - starts
    grid = pl.DataFrame(
        {
            "ts": opens[sidx] + minute * NS_PER_MINUTE,
            "session": sessions["session"].gather(sidx),
            "minute": minute.astype(np.int16),
            "session_minutes": n[sidx].astype(np.int16),
        }
    )
    return grid if until_ts is None else grid.filter(pl.col("ts") <= until_ts)


def missing_runs(
    bars: pl.DataFrame, sessions: pl.DataFrame, until_ts: int | None = None
) -> pl.DataFrame:
    """Runs of consecutive missing regular-session minutes:
    ``session, start_ts, end_ts, first_minute, length`` (end_ts = last missing bar start)."""
    grid = _grid(sessions, until_ts)
    miss = grid.join(bars.select("ts"), on="ts", how="anti").sort("ts")
    if miss.height == 0:
        return pl.DataFrame(
            schema={
                "session": pl.Date,
                "start_ts": pl.Int64,
                "end_ts": pl.Int64,
                "first_minute": pl.Int16,
                "length": pl.UInt32,
            }
        )
    new_run = (pl.col("minute").cast(pl.Int32).diff() != 1) | (
        pl.col("session") != pl.col("session").shift(1)
    )
    return (
        miss.with_columns(_run=new_run.fill_null(True).cum_sum())
        .group_by("_run", maintain_order=True)
        .agg(
            pl.col("session").first(),
            pl.col("ts").first().alias("start_ts"),
            pl.col("ts").last().alias("end_ts"),
            pl.col("minute").first().alias("first_minute"),
            pl.len().alias("length"),
        )
        .drop("_run")
    )


def long_gap_error(
    runs: pl.DataFrame, max_gap: int, source: str, prefix: str = ""
) -> DataValidationError | None:
    """The error for the first missing run longer than ``max_gap`` (None if there is none)."""
    long = runs.filter(pl.col("length") > max_gap)
    if not long.height:
        return None
    r = long.row(0, named=True)
    end = fmt_ts(r["end_ts"] + NS_PER_MINUTE)[-8:]
    return DataValidationError(
        f"{prefix}{r['length']} consecutive regular-session minutes missing in session "
        f"{r['session']} from {fmt_ts(r['start_ts'])} to {end} "
        f"(at most data.max_fill_gap_minutes={max_gap} are filled; "
        f"{long.height} such gaps in all)",
        file=source,
        where=str(r["session"]),
        hint="supply the missing bars, raise data.max_fill_gap_minutes if flat filled bars "
        "are acceptable, or set data.partial_sessions=keep (filled, never traded); check "
        "data.columns.timezone if every session looks shifted",
    )


def fill_gaps(
    bars: pl.DataFrame,
    sessions: pl.DataFrame,
    max_gap: int,
    source: str = "stock files",
    until_ts: int | None = None,
) -> tuple[pl.DataFrame, int]:
    """Put ``bars`` (``ts`` + OHLCV + ``transactions``) on the full minute grid of
    ``sessions``, filling short gaps by the rule in the module docstring. ``until_ts``
    ends the grid there (a live feed's unfinished last session).

    Returns the bars with ``session, minute, session_minutes, filled`` and the number of
    filled minutes. A run longer than ``max_gap`` raises, naming the session and time range.
    """
    runs = missing_runs(bars, sessions, until_ts)
    err = long_gap_error(runs, max_gap, source)
    if err is not None:
        raise err
    grid = _grid(sessions, until_ts)
    out = grid.join(bars, on="ts", how="left", coalesce=True).sort("ts")
    filled = out["close"].is_null()
    n_filled = int(filled.sum())
    if n_filled:
        # previous close (causal); the first observed open only before the first bar
        prev = pl.col("close").forward_fill().fill_null(pl.col("open").drop_nulls().first())
        flat = pl.when(pl.col("filled")).then(prev)
        out = out.with_columns(filled=filled).with_columns(
            [flat.otherwise(pl.col(c)).alias(c) for c in ("close",)]
        )
        out = out.with_columns(
            [
                pl.when(pl.col("filled")).then(pl.col("close")).otherwise(pl.col(c)).alias(c)
                for c in ("open", "high", "low")
            ]
            + [
                pl.when(pl.col("filled")).then(0.0).otherwise(pl.col("volume")).alias("volume"),
                pl.when(pl.col("filled"))
                .then(0)
                .otherwise(pl.col("transactions"))
                .cast(pl.Int64)
                .alias("transactions"),
            ]
        )
    else:
        out = out.with_columns(filled=filled)
    return out, n_filled

"""Read raw stock and option minute bars, validate, keep the regular session of
``data.calendar`` (XNYS by default) within ``data.start``/``data.end``, drop or keep partial
sessions (``data.partial_sessions``), repair short gaps and summarize the option chain per
minute.

Inputs (DESIGN §2, docs/architecture.md "Raw files"):

- ``data.format: polygon`` — Polygon flat files (CSV or CSV.gz): ``ticker, volume, open,
  close, high, low, window_start, transactions``; ``window_start`` = bar start in Unix ns
  UTC; ``transactions`` optional. Multi-ticker files are fine (rows of other tickers are
  skipped and counted). Option tickers are OCC symbols (``O:SPY240119C00470000``).
  Option files may add ``bid, ask`` columns (the quote at the bar's close, as the
  embedded synthetic market writes); both or neither, the same names in either format.
- ``data.format: table`` — any CSV/CSV.gz/Parquet with ``data.columns`` naming the
  columns; the timestamp is an integer epoch (``timestamp_unit`` ns/us/ms/s, UTC) or a
  datetime (``timestamp_unit: datetime``; parsed strings or a datetime column; naive values
  are in ``data.columns.timezone``, values with an offset are converted).
- ``data.option_summary_file`` (optional) — a per-minute summary with a ``ts`` column (or
  ``data.columns.timestamp``) and ``iv_atm_near, iv_atm_far, iv_put_25d, iv_call_25d,
  call_volume, put_volume`` (``near_dte, far_dte`` optional) used instead of computing it.

With ``data.source: synthetic`` the globs default to ``<synthetic dir>/stocks/*.csv.gz``
and ``<synthetic dir>/options/*.csv.gz`` (``marketjepa.paths.synthetic_dir``). Validation and repair rules:
:mod:`marketjepa.data.validation`; option summary: :mod:`marketjepa.data.option_summary`.
"""

from __future__ import annotations

import glob as globlib
import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from marketjepa.artifacts import files_fingerprint
from marketjepa.config import ColumnMapping, Config
from marketjepa.console import stage_line, track
from marketjepa.data.calendar import (
    calendar_tz,
    full_session_minutes,
    session_of,
    trading_sessions,
)
from marketjepa.data.occ import parse_occ
from marketjepa.data.option_summary import SUMMARY_COLUMNS, option_summary
from marketjepa.data.validation import (
    NUMERIC_COLUMNS,
    QUOTE_COLUMNS,
    check_columns,
    check_not_empty,
    check_occ,
    check_order,
    check_quotes,
    check_trading_days,
    check_values,
    fill_gaps,
    long_gap_error,
    missing_runs,
    to_float,
    where,
)
from marketjepa.errors import DataValidationError
from marketjepa.paths import synthetic_dir

POLYGON = ColumnMapping()  # the Polygon flat-file names are ColumnMapping's defaults
_UNIT_NS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000}
_DATE_IN_NAME = re.compile(r"(\d{4})-?(\d{2})-?(\d{2})")
_RAW_SCHEMA = {
    "ts": pl.Int64,
    "ticker": pl.Utf8,
    "open": pl.Float64,
    "high": pl.Float64,
    "low": pl.Float64,
    "close": pl.Float64,
    "volume": pl.Float64,
    "transactions": pl.Int64,
    "_row": pl.UInt32,
}


@dataclass
class IngestResult:
    """Regular-session bars of ``data.ticker`` plus the option data aligned to them.

    ``bars``: ts Int64 (UTC ns bar start), session Date, minute Int16, session_minutes
    Int16, open/high/low/close/volume Float64, transactions Int64 (nullable), filled Bool.
    ``option_summary``: same rows/order as ``bars``: ts + ``SUMMARY_COLUMNS`` (nullable).
    ``option_bars``: ts, ticker, expiry, right, strike, open, high, low, close, volume, and
    bid, ask (nullable) when the option files carry quotes.
    """

    bars: pl.DataFrame
    option_summary: pl.DataFrame | None
    option_bars: pl.DataFrame | None
    log: dict = field(default_factory=dict)
    inputs: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------- files


def resolve_globs(cfg: Config) -> tuple[str, str | None, bool]:
    """(stock glob, option glob or None, whether the option glob was set explicitly)."""
    d = cfg.data
    if d.source == "synthetic":
        root = synthetic_dir(cfg)
        stock = d.stock_files or str(root / "stocks" / "*.csv.gz")
        return stock, d.option_files or str(root / "options" / "*.csv.gz"), bool(d.option_files)
    if not d.stock_files:
        raise DataValidationError(
            "data.source=files but data.stock_files is not set",
            hint="set data.stock_files to a glob such as 'data/raw/spy/*.csv.gz'",
        )
    return d.stock_files, d.option_files, bool(d.option_files)


def match_files(pattern: str, what: str, required: bool = True) -> list[Path]:
    paths = sorted(Path(p) for p in globlib.glob(pattern, recursive=True) if Path(p).is_file())
    if not paths and required:
        raise DataValidationError(
            f"no {what} files matched",
            file=pattern,
            hint="check the glob (data.stock_files / data.option_files) or run "
            "`marketjepa synth` for the synthetic market",
        )
    return paths


def _date_in_name(path: Path) -> date | None:
    m = _DATE_IN_NAME.search(path.name)
    if not m:
        return None
    try:
        return date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        return None


def _read_file(path: Path, numeric: list[str], ts_col: str, ts_int: bool) -> pl.DataFrame:
    """CSV(.gz) or Parquet as read; typed fast path, all-string re-read to locate a bad value."""
    try:
        if path.suffix == ".parquet":
            return pl.read_parquet(path)
        overrides = {c: pl.Float64 for c in numeric}
        if ts_int:
            overrides[ts_col] = pl.Int64
        try:
            return pl.read_csv(path, schema_overrides=overrides, infer_schema_length=10_000)
        except pl.exceptions.NoDataError:
            raise
        except (pl.exceptions.ComputeError, pl.exceptions.SchemaError):
            return pl.read_csv(path, infer_schema=False)
    except pl.exceptions.NoDataError:
        raise DataValidationError(
            "empty file (no header, no rows)", file=str(path), hint="remove or re-download it"
        ) from None
    except (OSError, pl.exceptions.PolarsError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataValidationError(
            f"cannot read file: {first}",
            file=str(path),
            hint="expected CSV, CSV.gz or Parquet",
        ) from None


def _timestamps(
    df: pl.DataFrame, col: str, m: ColumnMapping, file: Path, info: dict | None = None
) -> pl.Series:
    """Timestamp column → UTC ns (Int64), with errors naming the row and value.

    Naive datetimes are read in ``m.timezone``; values that carry their own offset or zone
    are converted from it, ``m.timezone`` does not apply, and ``info["offset_aware"]`` is
    set so ingest can say so."""
    s = df[col]
    if isinstance(s.dtype, pl.Datetime) or s.dtype == pl.Date:
        dt = s.cast(pl.Datetime("ns"))
        if getattr(s.dtype, "time_zone", None) is None:
            dt = dt.dt.replace_time_zone(m.timezone, ambiguous="earliest", non_existent="null")
        elif info is not None:
            info["offset_aware"] = True
    elif m.timestamp_unit != "datetime":
        if s.dtype.is_integer():
            return s.cast(pl.Int64) * _UNIT_NS[m.timestamp_unit]
        val = to_float(df, col, file)
        return (val * _UNIT_NS[m.timestamp_unit]).round().cast(pl.Int64, strict=False)
    elif s.dtype.is_integer():
        raise DataValidationError(
            f"timestamp column '{col}' holds integers but data.columns.timestamp_unit=datetime",
            file=str(file),
            hint="set data.columns.timestamp_unit to ns, us, ms or s",
        )
    else:
        txt = s.cast(pl.Utf8).str.strip_chars()
        try:
            dt = txt.str.to_datetime(strict=False, time_unit="ns")
        except pl.exceptions.PolarsError:
            bad = txt.drop_nulls()
            raise DataValidationError(
                f"cannot parse timestamps in column '{col}' (first value {bad[0]!r})",
                file=str(file),
                where=where(0),
                hint="use ISO strings like 2024-03-08 09:30:00, or an epoch with "
                "data.columns.timestamp_unit",
            ) from None
        if dt.dtype.time_zone is None:  # type: ignore[union-attr]
            dt = dt.dt.replace_time_zone(m.timezone, ambiguous="earliest", non_existent="null")
        elif info is not None:
            info["offset_aware"] = True
        bad = np.flatnonzero((dt.is_null() & txt.is_not_null()).to_numpy())
        if bad.size:
            i = int(bad[0])
            raise DataValidationError(
                f"unparseable timestamp {txt[i]!r} in column '{col}' ({bad.size} such row(s))",
                file=str(file),
                where=where(i),
                hint="use one ISO format throughout (e.g. 2024-03-08 09:30:00)",
            )
    return dt.dt.convert_time_zone("UTC").dt.epoch("ns")


def read_bars_file(
    path: Path, fmt: str, m: ColumnMapping, kind: str, info: dict | None = None
) -> pl.DataFrame:
    """One raw file → ``ts, ticker, open, high, low, close, volume, transactions, _row``."""
    if fmt == "polygon":
        m = POLYGON
    names = {c: getattr(m, c) for c in NUMERIC_COLUMNS}
    ticker_col = m.ticker if (fmt == "polygon" or m.ticker) else None
    if kind == "option" and ticker_col is None:
        raise DataValidationError(
            "option files need a ticker column with OCC symbols",
            file=str(path),
            hint="set data.columns.ticker",
        )
    ts_int = fmt == "polygon" or m.timestamp_unit != "datetime"
    df = _read_file(path, list(names.values()), m.timestamp, ts_int)
    required = {"timestamp": m.timestamp, **names}
    if ticker_col:
        required["ticker"] = ticker_col
    check_columns(df.columns, required, path, fmt)
    check_not_empty(df, path)
    cols = {role: to_float(df, name, path) for role, name in names.items()}
    tx_col = m.transactions
    if tx_col and tx_col in df.columns:
        tx = to_float(df, tx_col, path)
        tx = pl.when(tx.is_finite()).then(tx).otherwise(None)
        cols["transactions"] = pl.select(tx.round().cast(pl.Int64)).to_series()
    else:
        cols["transactions"] = pl.Series([None] * df.height, dtype=pl.Int64)
    ticker = (
        df[ticker_col].cast(pl.Utf8).str.strip_chars()
        if ticker_col
        else pl.Series([None] * df.height, dtype=pl.Utf8)
    )
    out = pl.DataFrame(
        {
            "ts": _timestamps(df, m.timestamp, m, path, info),
            "ticker": ticker,
            **{k: cols[k] for k in NUMERIC_COLUMNS},
            "transactions": cols["transactions"],
        }
    )
    out = out.with_row_index("_row").select(list(_RAW_SCHEMA))
    if kind == "option":  # optional quotes: null where the file has none
        quoted = all(c in df.columns for c in QUOTE_COLUMNS)
        out = out.with_columns(
            (
                to_float(df, c, path) if quoted else pl.Series([None] * df.height, dtype=pl.Float64)
            ).alias(c)
            for c in QUOTE_COLUMNS
        )
    return out


def read_many(
    paths: list[Path],
    fmt: str,
    m: ColumnMapping,
    kind: str,
    progress: bool,
    info: dict | None = None,
):
    """All files concatenated with ``_file`` (index into the returned names)."""
    it = track(paths, f"reading {kind} files") if progress else paths
    frames = [
        read_bars_file(p, fmt, m, kind, info).with_columns(_file=pl.lit(i, dtype=pl.UInt32))
        for i, p in enumerate(it)
    ]
    return pl.concat(frames, how="vertical", rechunk=False), [str(p) for p in paths]


# ----------------------------------------------------------------------------- stocks


def _local_date(ts: pl.Expr, tz: str) -> pl.Expr:
    return pl.from_epoch(ts, "ns").dt.replace_time_zone("UTC").dt.convert_time_zone(tz)


def _named(paths: list[Path]) -> str:
    """How a list of explicitly given files is named in messages."""
    return str(paths[0]) if len(paths) == 1 else f"{paths[0]} (+{len(paths) - 1} more)"


def load_stock_raw(
    cfg: Config, progress: bool = False, paths: list[Path] | None = None
) -> tuple[pl.DataFrame, list[str], dict]:
    """Read + validate every stock file; rows of ``data.ticker`` only (others counted).

    ``paths`` replaces the ``data.stock_files`` glob (``marketjepa signal --bars``)."""
    if paths is None:
        pattern, _, _ = resolve_globs(cfg)
        paths = match_files(pattern, "stock")
    else:
        paths, pattern = [Path(p) for p in paths], _named([Path(p) for p in paths])
    info: dict = {}
    raw, files = read_many(paths, cfg.data.format, cfg.data.columns, "stock", progress, info)
    n_all = raw.height
    tick = cfg.data.ticker.upper()
    found = raw["ticker"].drop_nulls().unique().head(5).to_list()
    if raw["ticker"].null_count() < raw.height:
        raw = raw.filter(pl.col("ticker").str.to_uppercase() == tick)
    if raw.height == 0:
        raise DataValidationError(
            f"no rows for ticker {tick} in {len(paths)} stock files (tickers seen: {found})",
            file=pattern,
            hint="set data.ticker to the ticker in your files",
        )
    check_values(raw, files, "stock")
    check_order(raw, files, [], "stock")
    log = {
        "files": len(paths),
        "raw_rows_all_tickers": n_all,
        "other_ticker_rows": n_all - raw.height,
        "timestamps_offset_aware": bool(info.get("offset_aware")),
    }
    return raw, files, log


def _in_range(d: date, start: date | None, end: date | None) -> bool:
    return (start is None or d >= start) and (end is None or d <= end)


def _sessions_for(
    raw: pl.DataFrame,
    files: list[str],
    calendar: str,
    per_day_files: bool,
    start: date | None = None,
    end: date | None = None,
):
    """Calendar sessions from the first to the last session holding a bar (or named by a
    per-day file), within ``[start, end]``; plus each bar's local date."""
    days = raw.select(_local_date(pl.col("ts"), calendar_tz(calendar)).dt.date().alias("day"))[
        "day"
    ]
    named = {}
    if per_day_files:  # Polygon layout: one file per day, the date in its name
        named = {d: f for f in files if (d := _date_in_name(Path(f))) is not None}
        named = {d: f for d, f in named.items() if _in_range(d, start, end)}
    # one day of padding each side: a CMES session opens the evening before its date
    lo = min([days.min(), *named]) - timedelta(days=1)
    hi = max([days.max(), *named]) + timedelta(days=1)
    if start is not None:
        lo = max(lo, start)
    if end is not None:
        hi = min(hi, end)
    if hi < lo:
        raise DataValidationError(
            f"no data between data.start={start or '(none)'} and data.end={end or '(none)'} "
            f"(the data covers "
            f"{days.min()} to {days.max()})",
            file=files[0] if len(files) == 1 else None,
            hint="check data.start / data.end",
        )
    sessions = trading_sessions(lo, hi, calendar)
    idx, _ = session_of(raw["ts"].to_numpy(), sessions)
    used = np.unique(idx[idx >= 0])
    sdates = sessions["session"].to_list()
    used_named = [i for i, d in enumerate(sdates) if d in named]
    keep = np.concatenate([used, np.asarray(used_named, dtype=np.int64)])
    if sessions.height == 0 or keep.size == 0:
        raise DataValidationError(
            f"the data ({days.min()} to {days.max()}"
            + (f", limited to {start or '…'} to {end or '…'}" if start or end else "")
            + f") contains no bar inside a trading session of calendar {calendar}",
            file=files[0] if len(files) == 1 else None,
            hint="check the dates, data.calendar, data.columns.timezone and data.start/end",
        )
    sessions = sessions.slice(int(keep.min()), int(keep.max() - keep.min() + 1))
    return sessions, days, named


def classify_sessions(
    raw: pl.DataFrame,
    files: list[str],
    calendar: str,
    per_day_files: bool = True,
    start: date | None = None,
    end: date | None = None,
):
    """Session index/minute of each raw bar plus the counts of pre/post/other bars.

    Bars outside ``[start, end]`` are removed first and counted (``outside_date_range_bars``).
    """
    sessions, days, named = _sessions_for(raw, files, calendar, per_day_files, start, end)
    idx, minute = session_of(raw["ts"].to_numpy(), sessions)
    raw = raw.with_columns(
        _sidx=pl.Series(idx, dtype=pl.Int64), _min=pl.Series(minute, dtype=pl.Int64), day=days
    )
    n_all = raw.height
    if start is not None or end is not None:
        in_range = (pl.col("_sidx") >= 0) | (
            (pl.col("day") >= (start or date.min)) & (pl.col("day") <= (end or date.max))
        )
        raw = raw.filter(in_range)
    outside = raw.filter(pl.col("_sidx") < 0).join(
        sessions.select(pl.col("session").alias("day"), "open_ns"), on="day", how="left"
    )
    pre = int((outside["ts"] < outside["open_ns"]).sum())
    other = int(outside["open_ns"].is_null().sum())
    counts = {
        "premarket_bars": pre,
        "postmarket_bars": outside.height - pre - other,
        "other_outside_bars": other,
        "outside_date_range_bars": n_all - raw.height,
    }
    return raw, sessions, named, counts


def session_coverage(
    reg: pl.DataFrame, sessions: pl.DataFrame, max_gap: int, until_ts: int | None = None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(missing runs of every session, sessions whose bars do not cover the calendar
    session: a missing run longer than ``max_gap`` minutes, e.g. data starting at noon).

    Sessions without any bar are not partial here: :func:`check_trading_days` reports them.
    """
    runs = missing_runs(reg.select("ts"), sessions, until_ts)
    present = sessions["session"].gather(reg["_sidx"].unique().to_numpy())
    partial = (
        runs.filter((pl.col("length") > max_gap) & pl.col("session").is_in(present.implode()))
        .group_by("session", maintain_order=True)
        .agg(pl.col("length").sum().alias("missing"), pl.col("length").max().alias("longest"))
    )
    return runs, partial


def regularize(cfg: Config, raw: pl.DataFrame, files: list[str], pattern: str, live: bool = False):
    """Session filter, trading-day check, partial sessions and gap repair → (bars, sessions, log).

    ``live``: the last session may be unfinished (bars up to its latest one are required)."""
    d = cfg.data
    raw, sessions, named, counts = classify_sessions(
        raw, files, d.calendar, d.format == "polygon", d.start, d.end
    )
    reg = raw.filter(pl.col("_sidx") >= 0)
    present = sessions["session"].gather(reg["_sidx"].unique().to_numpy())
    names = pl.DataFrame({"_file": np.arange(len(files), dtype=np.uint32), "_name": files})
    raw_days = (
        raw.group_by("day", "_file")
        .agg(pl.len().alias("n"))
        .sort("day", "_file")
        .join(names, on="_file", how="left")
        .select("day", pl.col("_name").alias("_file"), "n")
    )
    check_trading_days(sessions, present, raw_days, named, pattern)
    # a live feed's unfinished last session is not partial: its grid ends at the latest bar
    until = int(reg["ts"].max()) if live and reg.height else None
    runs, partial = session_coverage(reg, sessions, d.max_fill_gap_minutes, until)
    dropped = partial["session"] if d.partial_sessions == "drop" else partial["session"].clear()
    n_before_drop = reg.height
    if dropped.len():
        gone = sessions.with_row_index("_sidx").filter(pl.col("session").is_in(dropped.implode()))
        reg = reg.filter(~pl.col("_sidx").is_in(gone["_sidx"].cast(pl.Int64).implode()))
        sessions = sessions.filter(~pl.col("session").is_in(dropped.implode()))
        if sessions.height == 0:
            err = long_gap_error(
                runs,
                d.max_fill_gap_minutes,
                pattern,
                prefix=f"every session is partial ({len(dropped)} would be dropped); first: ",
            )
            raise err or DataValidationError("every session is partial", file=pattern)
    # partial sessions kept: their long runs are filled (flagged, never tradeable)
    max_gap = d.max_fill_gap_minutes if d.partial_sessions == "drop" else 10**9
    cols = ["ts", "open", "high", "low", "close", "volume", "transactions"]
    bars, n_filled = fill_gaps(reg.select(cols), sessions, max_gap, source=pattern, until_ts=until)
    bars = bars.select(
        "ts",
        "session",
        "minute",
        "session_minutes",
        "open",
        "high",
        "low",
        "close",
        "volume",
        "transactions",
        "filled",
    )
    full = full_session_minutes(d.calendar)
    log = {
        "raw_stock_bars": raw.height + counts["outside_date_range_bars"],
        "bars_before_session_filter": raw.height,
        "bars_after_session_filter": reg.height,
        **counts,
        "dropped_outside_session": raw.height - n_before_drop,
        "regular_bars_raw": reg.height,
        "regular_bars": bars.height,
        "raw_minutes": reg.height,
        "sessions": sessions.height,
        "half_day_sessions": int((sessions["session_minutes"] < full).sum()),
        "calendar": d.calendar,
        "full_session_minutes": full,
        "first_session": str(sessions["session"][0]),
        "last_session": str(sessions["session"][-1]),
        "filled_minutes": n_filled,
        "partial_sessions": d.partial_sessions,
        "partial_sessions_found": partial.height,
        "dropped_sessions": len(dropped),
        "dropped_session_dates": [str(x) for x in dropped.to_list()],
        "dropped_minutes": n_before_drop - reg.height,
        "zero_volume_bars": int(((bars["volume"] == 0) & ~bars["filled"]).sum()),
    }
    return bars, sessions, log


# ----------------------------------------------------------------------------- options


def load_options(
    cfg: Config, bars: pl.DataFrame, progress: bool = False, paths: list[Path] | None = None
) -> tuple[pl.DataFrame | None, list[Path], dict]:
    """Read, validate and session-filter option bars; None when there are no option files.

    ``paths`` replaces the ``data.option_files`` glob (``marketjepa signal --options``)."""
    if paths is None:
        _, pattern, explicit = resolve_globs(cfg)
        if pattern is None:
            return None, [], {"option_files": 0}
        paths = match_files(pattern, "option", required=explicit)
    else:
        paths = [Path(p) for p in paths]
        pattern = _named(paths) if paths else ""
    if not paths:
        return None, [], {"option_files": 0}
    raw, files = read_many(paths, cfg.data.format, cfg.data.columns, "option", progress)
    # Categorical contract ids: millions of repeated OCC strings would dominate memory.
    raw = raw.drop("transactions").with_columns(pl.col("ticker").cast(pl.Categorical))
    parsed = parse_occ(raw["ticker"].unique().cast(pl.Utf8))
    bad = parsed.filter(~pl.col("valid"))["symbol"]
    if bad.len():  # rare path: locate the rows of the bad symbols
        check_occ(raw.filter(pl.col("ticker").cast(pl.Utf8).is_in(bad.implode())), files)
    tick = cfg.data.ticker.upper()
    roots = parsed["root"].unique().head(5).to_list()
    parsed = parsed.filter(pl.col("root").is_in([tick, tick + "W"]))
    n_raw = raw.height
    ours = raw.join(
        parsed.select(
            pl.col("symbol").cast(pl.Categorical).alias("ticker"), "expiry", "right", "strike"
        ),
        on="ticker",
        how="inner",
    )
    del raw
    if ours.height == 0:
        raise DataValidationError(
            f"option files hold no contracts on {tick} (roots seen: {roots})",
            file=pattern,
            hint="set data.ticker, or point data.option_files at this ticker's options",
        )
    check_values(ours, files, "option")
    check_quotes(ours, files)
    check_order(ours, files, ["ticker"], "option")
    n_ours = ours.height
    has_quotes = ours["bid"].null_count() < ours.height
    quote_cols = list(QUOTE_COLUMNS) if has_quotes else []
    opt = (
        ours.join(bars.select("ts"), on="ts", how="semi")
        .select(
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
            *quote_cols,
        )
        .sort("ts", "strike", "expiry", "right")
        .with_columns(pl.col("ticker").cast(pl.Utf8))
    )
    del ours
    log = {
        "option_files": len(paths),
        "option_rows_raw": n_raw,
        "option_rows_other_root": n_raw - n_ours,
        "option_rows_outside_session": n_ours - opt.height,
        "option_rows": opt.height,
        "option_contracts": opt["ticker"].n_unique(),
        "option_expiries": opt["expiry"].n_unique(),
        "option_rows_with_quotes": opt.height - opt["bid"].null_count() if has_quotes else 0,
    }
    return opt, paths, log


def load_summary_file(cfg: Config, bars: pl.DataFrame) -> tuple[pl.DataFrame, dict]:
    """A user's per-minute option summary, validated and left-joined onto ``bars``."""
    path = Path(cfg.data.option_summary_file or "")
    if not path.is_file():
        raise DataValidationError(
            "option summary file not found", file=str(path), hint="fix data.option_summary_file"
        )
    m = cfg.data.columns
    need = SUMMARY_COLUMNS[:6]
    df = _read_file(path, [*SUMMARY_COLUMNS], "ts", False)
    ts_col = "ts" if "ts" in df.columns else m.timestamp
    check_columns(df.columns, {"timestamp": ts_col, **{c: c for c in need}}, path, "table")
    check_not_empty(df, path)
    unit = m
    if df[ts_col].dtype.is_integer() and m.timestamp_unit == "datetime":
        unit = m.model_copy(update={"timestamp_unit": "ns"})
    out = {"ts": _timestamps(df, ts_col, unit, path)}
    for c in SUMMARY_COLUMNS:
        v = to_float(df, c, path) if c in df.columns else pl.Series([None] * df.height)
        out[c] = v.cast(pl.Float64).fill_nan(None)
    s = pl.DataFrame(out).with_row_index("_row")
    iv = [c for c in SUMMARY_COLUMNS if c.startswith("iv_")]
    bad = s.filter(pl.any_horizontal([(pl.col(c) <= 0) | ~pl.col(c).is_finite() for c in iv]))
    if bad.height:
        r = bad.row(0, named=True)
        raise DataValidationError(
            "implied volatility must be positive and finite (leave missing values empty)",
            file=str(path),
            where=where(r["_row"], r["ts"]),
            hint="use decimals (0.18 for 18%) and empty cells for failed inversions",
        )
    dup = s.filter(pl.col("ts").is_duplicated())
    if dup.height:
        r = dup.row(0, named=True)
        raise DataValidationError(
            "duplicate timestamp in option summary", file=str(path), where=where(r["_row"], r["ts"])
        )
    joined = bars.select("ts").join(s.drop("_row"), on="ts", how="left")
    matched = int(s.join(bars.select("ts"), on="ts", how="semi").height)
    return joined, {
        "option_summary_rows": s.height,
        "option_summary_rows_outside": s.height - matched,
    }


# ----------------------------------------------------------------------------- main


def ingest(
    cfg: Config,
    progress: bool = True,
    stock_paths: list[Path] | None = None,
    option_paths: list[Path] | None = None,
    live: bool = False,
) -> IngestResult:
    """Read, validate and regularize the raw inputs of ``cfg.data`` (writes nothing).

    ``stock_paths`` / ``option_paths`` are explicit file lists used instead of the
    configured globs (new bars for a trained run); ``option_paths=[]`` means none.
    ``live``: the last session may still be in progress (``marketjepa signal``)."""
    if stock_paths is None:
        pattern, _, _ = resolve_globs(cfg)
    else:
        pattern = _named([Path(p) for p in stock_paths]) if stock_paths else ""
    raw, files, log = load_stock_raw(cfg, progress, stock_paths)
    bars, _, reg_log = regularize(cfg, raw, files, pattern, live)
    log.update(reg_log)
    inputs: dict = {
        "stock_files": len(files),
        "stock_fingerprint": files_fingerprint(files),
        "option_files": 0,
        "option_fingerprint": None,
        "option_summary_file": None,
        "option_summary_fingerprint": None,
    }
    opt, opt_paths, opt_log = load_options(cfg, bars, progress, option_paths)
    log.update(opt_log)
    summary = None
    if opt is not None:
        inputs["option_files"] = len(opt_paths)
        inputs["option_fingerprint"] = files_fingerprint(opt_paths)
    if cfg.data.option_summary_file:
        summary, s_log = load_summary_file(cfg, bars)
        log.update(s_log, option_summary_source="file")
        inputs["option_summary_file"] = cfg.data.option_summary_file
        inputs["option_summary_fingerprint"] = files_fingerprint([cfg.data.option_summary_file])
    elif opt is not None:
        summary, s_log = option_summary(
            opt, bars, cfg.data.risk_free_rate, cfg.data.dividend_yield, cfg.data.calendar
        )
        log.update(s_log, option_summary_source="computed")
    else:
        log["option_summary_source"] = None
    msg = (
        f"{log['files']} files, {log['raw_stock_bars']:,} bars → {log['regular_bars_raw']:,} "
        f"regular-session bars in {log['sessions']} sessions (pre {log['premarket_bars']:,}, "
        f"post {log['postmarket_bars']:,}, other {log['other_outside_bars']:,}); "
        f"filled {log['filled_minutes']} minutes, {log['zero_volume_bars']} zero-volume bars"
    )
    if log.get("timestamps_offset_aware"):
        msg += (
            "; timestamps carry their own UTC offset, converted from it "
            f"(data.columns.timezone={cfg.data.columns.timezone} applies to naive times only)"
        )
    if log["dropped_sessions"]:
        dates = log["dropped_session_dates"]
        msg += (
            f"; dropped {log['dropped_sessions']} partial session(s) "
            f"({log['dropped_minutes']:,} minutes: {', '.join(dates[:3])}"
            f"{', …' if len(dates) > 3 else ''}; data.partial_sessions=keep keeps them)"
        )
    elif log["partial_sessions_found"]:
        msg += f"; kept {log['partial_sessions_found']} partial session(s) (filled, not traded)"
    if log.get("outside_date_range_bars"):
        msg += f"; {log['outside_date_range_bars']:,} bars outside data.start/end"
    if opt is not None:
        msg += f"; options: {log['option_rows']:,} bars, {log['option_contracts']} contracts"
        if "iv_inverted" in log:
            msg += f", IV ok {log['iv_inverted']:,} / failed {log['iv_failed']:,}"
    if progress:
        stage_line("ingest", msg)
    log["summary_line"] = msg
    return IngestResult(bars=bars, option_summary=summary, option_bars=opt, log=log, inputs=inputs)

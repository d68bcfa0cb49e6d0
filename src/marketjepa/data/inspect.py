"""``marketjepa inspect-data``: a sanity-check summary of the raw inputs.

Reads and validates the files like ingest (file-level problems such as bad prices still
raise a clear error), but reports session-level problems — days without regular-session
bars, long gaps — as numbers instead of stopping, so a user can see what to fix.
"""

from __future__ import annotations

import polars as pl
from rich.markup import escape
from rich.table import Table

from marketjepa.config import Config
from marketjepa.data.ingest import classify_sessions, load_options, load_stock_raw, resolve_globs
from marketjepa.data.option_summary import FAILURE_REASONS, invert_rows
from marketjepa.data.validation import fmt_ts, missing_runs


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


class _Summary(Table):
    """A two-column table whose values are plain text (globs like ``[0-9]`` stay literal)."""

    def add_row(self, item: str, value: str) -> None:  # type: ignore[override]
        super().add_row(escape(item), escape(value))


def inspect_raw(cfg: Config) -> Table:
    """Summary table of the configured raw data (stocks and, if present, options)."""
    stock_glob, opt_glob, _ = resolve_globs(cfg)
    raw, files, log = load_stock_raw(cfg, progress=False)
    raw, sessions, _, counts = classify_sessions(
        raw, files, cfg.data.calendar, cfg.data.format == "polygon"
    )
    reg = raw.filter(pl.col("_sidx") >= 0)
    present = reg["_sidx"].n_unique()
    expected = int(sessions["session_minutes"].cast(pl.Int64).sum())
    runs = missing_runs(reg.select("ts"), sessions)
    full_day = runs.join(
        sessions.select("session", pl.col("session_minutes").cast(pl.UInt32).alias("length")),
        on=["session", "length"],
        how="semi",
    )
    gaps = runs.join(full_day, on=["session", "first_minute"], how="anti")
    small = gaps.filter(pl.col("length") <= cfg.data.max_fill_gap_minutes)

    t = _Summary(title=f"raw data: {cfg.data.ticker} ({cfg.data.source}, format {cfg.data.format})")
    t.add_column("item", style="bold")
    t.add_column("value")
    t.add_row("stock files", f"{len(files)}  ({stock_glob})")
    t.add_row(
        "days",
        f"{sessions.height} NYSE sessions {sessions['session'][0]} → {sessions['session'][-1]} "
        f"({int((sessions['session_minutes'] < 390).sum())} half days); "
        f"{present} with regular-session bars",
    )
    if present < sessions.height:
        t.add_row(
            "days without bars",
            f"{sessions.height - present}: " + ", ".join(str(d) for d in full_day["session"][:5]),
        )
    t.add_row(
        "bars",
        f"{raw.height:,} raw → regular {reg.height:,} / pre {counts['premarket_bars']:,} / "
        f"post {counts['postmarket_bars']:,} / non-trading days {counts['other_outside_bars']:,}",
    )
    if log["other_ticker_rows"]:
        t.add_row("other tickers", f"{log['other_ticker_rows']:,} rows skipped")
    t.add_row("session coverage", f"{_pct(reg.height / max(expected, 1))} of {expected:,} minutes")
    longest = gaps.sort("length", descending=True).head(1)
    gap_txt = f"{gaps.height} runs, {int(gaps['length'].sum())} minutes"
    if longest.height:
        r = longest.row(0, named=True)
        gap_txt += f"; longest {r['length']} min at {fmt_ts(r['start_ts'])}"
    gap_txt += (
        f"; {small.height} fillable (≤ {cfg.data.max_fill_gap_minutes} min), "
        f"{gaps.height - small.height} too long"
    )
    t.add_row("gaps", gap_txt)
    t.add_row(
        "price range",
        f"{reg['low'].min():.2f} – {reg['high'].max():.2f} "
        f"(first close {reg['close'][0]:.2f}, last {reg['close'][-1]:.2f})",
    )
    t.add_row("zero-volume bars", f"{int((reg['volume'] == 0).sum()):,}")

    if opt_glob is None:
        t.add_row("options", "none configured")
        return t
    bars = reg.select("ts", "close").with_columns(
        session=sessions["session"].gather(reg["_sidx"].to_numpy())
    )
    opt, paths, olog = load_options(cfg, bars, progress=False)
    if opt is None:
        t.add_row("options", f"no files matched {opt_glob}")
        return t
    t.add_row(
        "options",
        f"{len(paths)} files, {olog['option_rows']:,} regular-session bars "
        f"({olog['option_rows_outside_session']:,} outside), {olog['option_contracts']} "
        f"contracts, {olog['option_expiries']} expiries",
    )
    rows = opt.select("ts", "expiry", "right", "strike", "close").join(
        bars.select("ts", pl.col("close").alias("S")), on="ts", how="inner"
    )
    rows = invert_rows(rows, cfg.data.risk_free_rate, cfg.data.dividend_yield, cfg.data.calendar)
    iv = rows["iv"].drop_nulls()
    if iv.len():
        t.add_row(
            "implied vol",
            f"median {iv.median():.3f}, 5–95% {iv.quantile(0.05):.3f} – {iv.quantile(0.95):.3f}",
        )
    st = rows["iv_status"]
    failed = int((st != 0).sum())
    reasons = ", ".join(
        f"{name} {int((st == code).sum()):,}" for code, name in FAILURE_REASONS.items()
    )
    t.add_row(
        "failed inversions",
        f"{failed:,} of {rows.height:,} ({_pct(failed / max(rows.height, 1))}): {reasons}",
    )
    return t

"""``marketjepa inspect-data``: a sanity-check summary of the raw inputs.

Reads and validates the files like ingest (file-level problems such as bad prices still
raise a clear error), but reports session-level problems — days without regular-session
bars, long gaps, partial sessions — as numbers instead of stopping, so a user can see what
to fix. A second table says whether the sessions ingest would keep fit the preset (days,
rows and windows per split, the minimum needed) and suggests the smallest ``--set``
overrides when they do not (:mod:`marketjepa.data.fit`).
"""

from __future__ import annotations

import polars as pl
from rich.console import Group
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from marketjepa.config import Config
from marketjepa.data.calendar import full_session_minutes
from marketjepa.data.fit import check_fit
from marketjepa.data.ingest import (
    classify_sessions,
    load_options,
    load_stock_raw,
    resolve_globs,
    session_coverage,
)
from marketjepa.data.option_summary import FAILURE_REASONS, invert_rows
from marketjepa.data.validation import fmt_ts, missing_runs


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


class _Summary(Table):
    """A two-column table whose values are plain text (globs like ``[0-9]`` stay literal)."""

    def add_row(self, item: str, value: str) -> None:  # type: ignore[override]
        super().add_row(escape(item), escape(value))


def fit_table(
    cfg: Config,
    session_minutes: list[int],
    problems: list[str] = (),  # type: ignore[assignment]
    fixes: list[str] = (),  # type: ignore[assignment]
) -> Group:
    """Whether sessions of these lengths fit the preset, per split, with suggestions.

    ``problems``/``fixes``: data problems found before the fit (days without bars) and the
    overrides that avoid them (they come first in the suggestion)."""
    fit = check_fit(session_minutes, cfg)
    problems = [*problems, *fit.problems]
    fits = not problems
    t = Table(
        title=f"fit for preset {cfg.preset}: {'FITS' if fits else 'DOES NOT FIT'}",
        title_justify="left",
    )
    for col in ("split", "days", "rows", "windows", "rows needed"):
        t.add_column(col, justify="right")
    for s in ("train", "val", "test"):
        if s not in fit.rows:
            continue
        t.add_row(
            s,
            str(fit.days[s]),
            f"{fit.rows[s]:,}",
            f"{fit.windows.get(s, 0):,}",
            f"{fit.needed_rows.get(s, 0):,}",
        )
    t.add_row("embargo", str(fit.days["embargo"]), "", "", "")
    notes = [
        "windows: context+gap+target (pretraining) for train/val, context only (probes, "
        "backtest) for the evaluation split",
        f"minimum days for these splits: {fit.needed_days}",
    ]
    notes += [f"problem: {p}" for p in problems]
    if not fits:
        sets = [*fixes, *fit.suggestions]
        fix = " ".join(f"--set {o}" for o in sets)
        notes.append(
            f"suggest: {fix}" if sets else "suggest: no override fits; more sessions are needed"
        )
    return Group(t, Text("\n".join(notes)))


def _longest_run(flags: list[bool]) -> tuple[int, int]:
    """[a, b) of the longest run of True."""
    best, start = (0, 0), None
    for i, f in enumerate([*flags, False]):
        if f and start is None:
            start = i
        elif not f and start is not None:
            if i - start > best[1] - best[0]:
                best = (start, i)
            start = None
    return best


def inspect_raw(cfg: Config) -> Group:
    """Summary table of the configured raw data (stocks and, if present, options) and
    whether it fits the preset."""
    return Group(*_raw_table(cfg))


def _raw_table(cfg: Config) -> tuple[Table, Group]:
    stock_glob, opt_glob, _ = resolve_globs(cfg)
    d = cfg.data
    raw, files, log = load_stock_raw(cfg, progress=False)
    raw, sessions, _, counts = classify_sessions(
        raw, files, d.calendar, d.format == "polygon", d.start, d.end
    )
    reg = raw.filter(pl.col("_sidx") >= 0)
    present = reg["_sidx"].n_unique()
    full = full_session_minutes(d.calendar)
    expected = int(sessions["session_minutes"].cast(pl.Int64).sum())
    full_day, gaps = _missing_minutes(reg, sessions)

    _, partial = session_coverage(reg, sessions, d.max_fill_gap_minutes)
    with_bars = sessions["session"].gather(reg["_sidx"].unique().sort().to_numpy())
    kept = sessions.filter(pl.col("session").is_in(with_bars.implode()))
    if d.partial_sessions == "drop":
        kept = kept.filter(~pl.col("session").is_in(partial["session"].implode()))

    t = _Summary(title=f"raw data: {cfg.data.ticker} ({cfg.data.source}, format {cfg.data.format})")
    t.add_column("item", style="bold")
    t.add_column("value")
    t.add_row("stock files", f"{len(files)}  ({stock_glob})")
    t.add_row(
        "days",
        f"{sessions.height} {d.calendar} sessions {sessions['session'][0]} → "
        f"{sessions['session'][-1]} ({int((sessions['session_minutes'] < full).sum())} "
        f"short days); {present} with regular-session bars",
    )
    if partial.height:
        dates = ", ".join(str(x) for x in partial["session"][:3])
        action = "dropped" if d.partial_sessions == "drop" else "kept, missing minutes filled"
        t.add_row(
            "partial sessions",
            f"{partial.height} ({dates}{', …' if partial.height > 3 else ''}): bars do not "
            f"cover the session; {action} (data.partial_sessions={d.partial_sessions})",
        )
    if counts.get("outside_date_range_bars"):
        t.add_row(
            "outside start/end", f"{counts['outside_date_range_bars']:,} bars (data.start/end)"
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
    t.add_row("gaps", _gap_text(gaps, d.max_fill_gap_minutes))
    t.add_row(
        "price range",
        f"{reg['low'].min():.2f} – {reg['high'].max():.2f} "
        f"(first close {reg['close'][0]:.2f}, last {reg['close'][-1]:.2f})",
    )
    t.add_row("zero-volume bars", f"{int((reg['volume'] == 0).sum()):,}")

    fit_t = _fit_of_usable_sessions(cfg, sessions, kept, present)
    if opt_glob is None:
        t.add_row("options", "none configured")
    else:
        _option_rows(cfg, t, opt_glob, reg, sessions)
    return t, fit_t


def _missing_minutes(
    reg: pl.DataFrame, sessions: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``(whole sessions without bars, gaps inside sessions)`` as runs of missing minutes."""
    runs = missing_runs(reg.select("ts"), sessions)
    full_day = runs.join(
        sessions.select("session", pl.col("session_minutes").cast(pl.UInt32).alias("length")),
        on=["session", "length"],
        how="semi",
    )
    return full_day, runs.join(full_day, on=["session", "first_minute"], how="anti")


def _gap_text(gaps: pl.DataFrame, max_fill: int) -> str:
    small = gaps.filter(pl.col("length") <= max_fill)
    longest = gaps.sort("length", descending=True).head(1)
    gap_txt = f"{gaps.height} runs, {int(gaps['length'].sum())} minutes"
    if longest.height:
        r = longest.row(0, named=True)
        gap_txt += f"; longest {r['length']} min at {fmt_ts(r['start_ts'])}"
    return gap_txt + (
        f"; {small.height} fillable (≤ {max_fill} min), {gaps.height - small.height} too long"
    )


def _fit_of_usable_sessions(
    cfg: Config, sessions: pl.DataFrame, kept: pl.DataFrame, present: int
) -> Group:
    """What fits in the sessions ingest will use (it stops at a session without bars)."""
    problems, fixes = [], []
    if present < sessions.height:
        # ingest stops at a session without bars: fit the longest run of usable sessions
        ok = sessions["session"].is_in(kept["session"].implode()).to_list()
        a, b = _longest_run(ok)
        kept = sessions.slice(a, b - a)
        problems.append(
            f"{sessions.height - present} session(s) without bars inside the range (ingest "
            f"stops there); the longest run of usable sessions is {b - a}"
        )
        if b > a:
            fixes = [f"data.start={kept['session'][0]}", f"data.end={kept['session'][-1]}"]
    return fit_table(cfg, [int(x) for x in kept["session_minutes"]], problems, fixes)


def _option_rows(
    cfg: Config, t: Table, opt_glob: str, reg: pl.DataFrame, sessions: pl.DataFrame
) -> None:
    """The options rows of the raw-data table: files, bars, implied-vol inversion."""
    bars = reg.select("ts", "close").with_columns(
        session=sessions["session"].gather(reg["_sidx"].to_numpy())
    )
    opt, paths, olog = load_options(cfg, bars, progress=False)
    if opt is None:
        t.add_row("options", f"no files matched {opt_glob}")
        return
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

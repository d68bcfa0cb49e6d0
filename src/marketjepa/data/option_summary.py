"""Per-minute option summary by vectorized Black–Scholes IV inversion.

For every regular-session option bar (one contract, one minute):

- ``S`` = the underlying's close in the same minute, ``K`` = strike, price = the option
  bar's close; ``T`` (years) = calendar minutes from the bar's end (``ts`` + 1 min) to the
  expiry's close, divided by ``CALENDAR_MINUTES_PER_YEAR`` (365·24·60). The expiry closes at the
  NYSE close of the expiry date (16:00 ET, 13:00 ET on half days; 16:00 ET if the date is
  not a session), so a 0DTE option has the minutes left in the day.
- σ from :func:`marketjepa.black_scholes.implied_vol` with ``data.risk_free_rate`` and
  ``data.dividend_yield``, all rows at once. Failures are NaN (never 0) and counted by
  reason: ``below_intrinsic``, ``above_upper_bound``, ``no_convergence``, ``expired``.
  Δ from :func:`bs_greeks` at each contract's own σ.

Expiry choice per minute (the set of listed expiries of a session = the expiries that
appear in that session's option bars; listings are public before the open):

- **near** = the nearest listed expiry with at least ``NEAR_MIN_MINUTES`` (30) minutes
  left, so same-day 0DTE is near until 15:30 ET and the next expiry after that;
- **far** = the nearest listed expiry later than near with at least
  ``FAR_MIN_TRADING_DAYS`` (5) NYSE sessions to go.

Per minute, from the contracts of that expiry that traded in that minute with a valid σ:

- **ATM IV** = σ at log-moneyness ``k = ln(K/F) = 0`` (``F = S·e^{(r−q)T}``): per strike the
  mean σ of the call and put, then linear interpolation in ``k`` between the nearest
  strike at or below F and the nearest above. With strikes on one side only, the nearest
  strike's σ is used if ``|k| ≤ ATM_MAX_ONE_SIDED_K`` (0.5%), else null.
- **25Δ put / call IV** (near expiry) = σ linearly interpolated in Δ at −0.25 (puts) /
  +0.25 (calls) between the nearest contracts on each side; one-sided, the nearest
  contract's σ if ``|Δ ∓ 0.25| ≤ DELTA_MAX_ONE_SIDED`` (0.10), else null.
- **call_volume / put_volume** = summed volume of all option bars of the minute (all
  expiries, failed inversions included); 0 in a minute without trades of a session
  that has option data, null in sessions without option data.
- **near_dte / far_dte** = calendar days (fractional) from the bar's end to the chosen
  expiry's close; null when no such expiry is listed.

IV columns are null where the minute had no usable observation; nothing is forward
filled (the feature stage applies the staleness policy).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from marketjepa.black_scholes import bs_greeks, implied_vol
from marketjepa.constants import CALENDAR_MINUTES_PER_YEAR
from marketjepa.data.calendar import EXCHANGE_TZ, NS_PER_MINUTE, trading_sessions

SUMMARY_COLUMNS = [
    "iv_atm_near",
    "iv_atm_far",
    "iv_put_25d",
    "iv_call_25d",
    "call_volume",
    "put_volume",
    "near_dte",
    "far_dte",
]
FAILURE_REASONS = {1: "below_intrinsic", 2: "above_upper_bound", 3: "no_convergence", 4: "expired"}
NEAR_MIN_MINUTES = 30
FAR_MIN_TRADING_DAYS = 5
ATM_MAX_ONE_SIDED_K = 0.005
DELTA_MAX_ONE_SIDED = 0.10
_CHUNK = 500_000
_BATCH_ROWS = 1_000_000
_ITER_BUDGETS = (8, 24, 100)  # 100 = implied_vol's default
_MIN_PER_DAY = 24 * 60


def expiry_close_ns(expiries: pl.Series, calendar: str = "XNYS") -> pl.DataFrame:
    """``expiry`` (Date) → ``expiry_ns``: the NYSE close of that date (UTC ns); 16:00 ET
    when the date is not a session."""
    ex = pl.DataFrame({"expiry": expiries.unique().sort()}).with_columns(
        _default=(pl.col("expiry").cast(pl.Datetime("ns")) + pl.duration(hours=16))
        .dt.replace_time_zone(EXCHANGE_TZ, non_existent="null", ambiguous="earliest")
        .dt.epoch("ns")
    )
    sess = trading_sessions(ex["expiry"].min(), ex["expiry"].max(), calendar)
    return (
        ex.join(sess.select(pl.col("session").alias("expiry"), "close_ns"), on="expiry", how="left")
        .select("expiry", pl.coalesce("close_ns", "_default").alias("expiry_ns"))
        .sort("expiry")
    )


def _staged_iv(price, S, K, T, call, r: float, q: float) -> tuple[np.ndarray, np.ndarray]:
    """implied_vol in stages of growing iteration budgets. implied_vol iterates over the
    whole array until every row is done, so a few slow rows (deep OTM, tiny vega) would
    keep all rows iterating; here only the rows that did not converge are re-run with the
    next budget (same acceptance test, several times faster on real chains)."""
    todo = np.arange(len(price))
    iv = np.full(len(price), np.nan)
    status = np.full(len(price), 3, dtype=np.int8)
    for budget in _ITER_BUDGETS:
        sl = (price[todo], S[todo], K[todo], T[todo], call[todo])
        iv[todo], status[todo] = implied_vol(*sl, r, q, max_iter=budget)
        todo = todo[status[todo] == 3]
        if todo.size == 0:
            break
    return iv, status


def invert_rows(rows: pl.DataFrame, r: float, q: float, calendar: str = "XNYS") -> pl.DataFrame:
    """Add ``T`` (years), ``iv``, ``iv_status`` (0 ok, see ``FAILURE_REASONS``) and
    ``delta`` to option rows carrying ``ts, expiry, right, strike, close, S``."""
    rows = rows.join(expiry_close_ns(rows["expiry"], calendar), on="expiry", how="left")
    rows = rows.with_columns(
        minutes_left=(pl.col("expiry_ns") - pl.col("ts") - NS_PER_MINUTE) / NS_PER_MINUTE
    ).with_columns(T=pl.col("minutes_left") / CALENDAR_MINUTES_PER_YEAR)
    price = rows["close"].to_numpy()
    S = rows["S"].to_numpy()
    K = rows["strike"].to_numpy()
    T = rows["T"].to_numpy()
    call = (rows["right"] == "C").to_numpy()
    iv = np.empty(rows.height)
    status = np.empty(rows.height, dtype=np.int8)
    delta = np.full(rows.height, np.nan)
    for a in range(0, rows.height, _CHUNK):  # bounded memory for large chains
        sl = slice(a, a + _CHUNK)
        iv[sl], status[sl] = _staged_iv(price[sl], S[sl], K[sl], T[sl], call[sl], r, q)
    ok = status == 0
    if ok.any():
        delta[ok] = bs_greeks(S[ok], K[ok], T[ok], iv[ok], call[ok], r, q)["delta"]
    return rows.with_columns(
        pl.Series("iv", iv).fill_nan(None),
        pl.Series("iv_status", status),
        pl.Series("delta", delta).fill_nan(None),
    )


def _choose_expiries(rows: pl.DataFrame, bars: pl.DataFrame, calendar: str) -> pl.DataFrame:
    """Per bar minute of a session with options: ``ts, near, far, near_dte, far_dte``."""
    listed = rows.select("session", "expiry", "expiry_ns").unique()
    listed = listed.filter(pl.col("expiry") >= pl.col("session"))
    if listed.height == 0:
        return pl.DataFrame(
            schema={
                "ts": pl.Int64,
                "near": pl.Date,
                "far": pl.Date,
                "near_dte": pl.Float64,
                "far_dte": pl.Float64,
            }
        )
    days = trading_sessions(listed["session"].min(), listed["expiry"].max(), calendar)["session"]
    day_num = days.cast(pl.Int32).to_numpy()
    td = np.searchsorted(day_num, listed["expiry"].cast(pl.Int32).to_numpy(), "right")
    td -= np.searchsorted(day_num, listed["session"].cast(pl.Int32).to_numpy(), "right")
    listed = listed.with_columns(td_left=pl.Series(td)).sort("session", "expiry")
    # Only the expiries that can be chosen: all within 5 sessions plus the next two beyond.
    far_rank = (pl.col("td_left") >= FAR_MIN_TRADING_DAYS).cast(pl.Int32).cum_sum().over("session")
    listed = listed.filter(far_rank <= 2)
    cand = bars.select("ts", "session").join(listed, on="session", how="inner")
    cand = cand.with_columns(
        minutes_left=(pl.col("expiry_ns") - pl.col("ts") - NS_PER_MINUTE) / NS_PER_MINUTE
    )
    near = (
        cand.filter(pl.col("minutes_left") >= NEAR_MIN_MINUTES)
        .group_by("ts")
        .agg(
            pl.col("expiry").min().alias("near"),
            pl.col("minutes_left").sort_by("expiry").first().alias("_nm"),
        )
    )
    far = (
        cand.join(near.select("ts", "near"), on="ts", how="left")
        .filter(
            (pl.col("td_left") >= FAR_MIN_TRADING_DAYS)
            & ((pl.col("expiry") > pl.col("near")) | pl.col("near").is_null())
        )
        .group_by("ts")
        .agg(
            pl.col("expiry").min().alias("far"),
            pl.col("minutes_left").sort_by("expiry").first().alias("_fm"),
        )
    )
    return (
        cand.select("ts")
        .unique()
        .join(near, on="ts", how="left")
        .join(far, on="ts", how="left")
        .select(
            "ts",
            "near",
            "far",
            (pl.col("_nm") / _MIN_PER_DAY).alias("near_dte"),
            (pl.col("_fm") / _MIN_PER_DAY).alias("far_dte"),
        )
    )


def _interp(x: str, target: float, tol: float, name: str) -> list[pl.Expr]:
    """Aggregations (on a group sorted by ``x``) giving σ linearly interpolated at
    ``x = target``, or the nearest point's σ within ``tol`` when only one side exists."""
    below = pl.col(x) <= target
    xb = pl.col(x).filter(below).last()
    xa = pl.col(x).filter(~below).first()
    vb = pl.col("iv").filter(below).last()
    va = pl.col("iv").filter(~below).first()
    both = vb + (va - vb) * (target - xb) / (xa - xb)
    return [
        pl.when(xb.is_not_null() & xa.is_not_null())
        .then(both)
        .when(xb.is_not_null() & ((target - xb) <= tol))
        .then(vb)
        .when(xa.is_not_null() & ((xa - target) <= tol))
        .then(va)
        .otherwise(None)
        .alias(name)
    ]


def _atm(rows: pl.DataFrame, name: str, r: float, q: float) -> pl.DataFrame:
    per_strike = (
        rows.group_by("ts", "strike")
        .agg(
            pl.col("iv").mean(),
            (pl.col("strike") / (pl.col("S") * ((r - q) * pl.col("T")).exp()))
            .log()
            .first()
            .alias("k"),
        )
        .sort("ts", "k")
    )
    return per_strike.group_by("ts").agg(_interp("k", 0.0, ATM_MAX_ONE_SIDED_K, name))


def _delta_iv(rows: pl.DataFrame, right: str, target: float, name: str) -> pl.DataFrame:
    sub = rows.filter(pl.col("right") == right).sort("ts", "delta")
    return sub.group_by("ts").agg(_interp("delta", target, DELTA_MAX_ONE_SIDED, name))


def summarize(rows: pl.DataFrame, bars: pl.DataFrame, r: float, q: float, calendar: str = "XNYS"):
    """Per-minute summary aligned to ``bars`` (same rows, same order) from inverted rows
    (output of :func:`invert_rows` plus ``session``)."""
    chosen = _choose_expiries(rows, bars, calendar)
    good = (
        rows.filter(pl.col("iv_status") == 0)
        .select("ts", "expiry", "right", "strike", "S", "T", "iv", "delta")
        .join(chosen.select("ts", "near", "far"), on="ts", how="inner")
    )
    near_rows = good.filter(pl.col("expiry") == pl.col("near"))
    far_rows = good.filter(pl.col("expiry") == pl.col("far"))
    vol = rows.group_by("ts").agg(
        pl.col("volume").filter(pl.col("right") == "C").sum().alias("call_volume"),
        pl.col("volume").filter(pl.col("right") == "P").sum().alias("put_volume"),
    )
    has_opts = rows.select("session").unique().with_columns(_has=pl.lit(True))
    out = (
        bars.select("ts", "session")
        .join(_atm(near_rows, "iv_atm_near", r, q), on="ts", how="left")
        .join(_atm(far_rows, "iv_atm_far", r, q), on="ts", how="left")
        .join(_delta_iv(near_rows, "P", -0.25, "iv_put_25d"), on="ts", how="left")
        .join(_delta_iv(near_rows, "C", 0.25, "iv_call_25d"), on="ts", how="left")
        .join(vol, on="ts", how="left")
        .join(chosen.select("ts", "near_dte", "far_dte"), on="ts", how="left")
        .join(has_opts, on="session", how="left")
        .with_columns(
            [
                pl.when(pl.col("_has")).then(pl.col(c).fill_null(0.0)).alias(c)
                for c in ("call_volume", "put_volume")
            ]
        )
    )
    return out.select("ts", *[pl.col(c).cast(pl.Float64) for c in SUMMARY_COLUMNS])


def _summarize_batch(opts: pl.DataFrame, bars: pl.DataFrame, r: float, q: float, calendar: str):
    rows = opts.join(bars.select("ts", "session", pl.col("close").alias("S")), on="ts", how="inner")
    rows = invert_rows(rows, r, q, calendar).select(
        "ts",
        "session",
        "expiry",
        "expiry_ns",
        "right",
        "strike",
        "volume",
        "S",
        "T",
        "iv",
        "iv_status",
        "delta",
    )
    return summarize(rows, bars, r, q, calendar), rows["iv_status"].to_numpy(), rows["iv"]


def option_summary(
    option_bars: pl.DataFrame,
    bars: pl.DataFrame,
    r: float,
    q: float,
    calendar: str = "XNYS",
) -> tuple[pl.DataFrame, dict]:
    """Invert every option bar and summarize per minute.

    ``option_bars``: ``ts, expiry, right, strike, close, volume`` (regular session);
    ``bars``: the underlying's time-sorted ``ts, session, close``. Returns the summary
    (one row per bar, in bar order) and counts for the ingest log. Sessions are processed
    in batches of about ``_BATCH_ROWS`` option rows (each session's summary depends only
    on that session), which bounds memory on multi-year chains.
    """
    opts = option_bars.select("ts", "expiry", "right", "strike", "close", "volume")
    per_session = (
        opts.select("ts")
        .join(bars.select("ts", "session"), on="ts", how="inner")
        .group_by("session")
        .agg(pl.len().alias("n"))
    )
    sess = (
        bars.group_by("session", maintain_order=True)
        .agg(pl.col("ts").first().alias("lo"), pl.col("ts").last().alias("hi"))
        .join(per_session, on="session", how="left")
        .with_columns(pl.col("n").fill_null(0))
        .with_columns(batch=(pl.col("n").cum_sum() - pl.col("n")) // _BATCH_ROWS)
        .group_by("batch", maintain_order=True)
        .agg(pl.col("lo").min(), pl.col("hi").max())
    )
    parts, statuses, ivs = [], [], []
    for lo, hi in sess.select("lo", "hi").iter_rows():  # a few batches, not rows
        in_b = pl.col("ts").is_between(lo, hi)
        summ, st, iv = _summarize_batch(opts.filter(in_b), bars.filter(in_b), r, q, calendar)
        parts.append(summ)
        statuses.append(st)
        ivs.append(iv.drop_nulls())
    summary = pl.concat(parts)
    status = np.concatenate(statuses)
    iv_ok = pl.concat(ivs)
    log = {
        "iv_inverted": int((status == 0).sum()),
        "iv_failed": int((status != 0).sum()),
        "iv_failed_by_reason": {
            name: int((status == code).sum()) for code, name in FAILURE_REASONS.items()
        },
        "iv_median": float(iv_ok.median()) if iv_ok.len() else None,
        "iv_p05": float(iv_ok.quantile(0.05)) if iv_ok.len() else None,
        "iv_p95": float(iv_ok.quantile(0.95)) if iv_ok.len() else None,
        "minutes_with_iv_atm_near": int(summary["iv_atm_near"].is_not_null().sum()),
        "minutes_with_iv_atm_far": int(summary["iv_atm_far"].is_not_null().sum()),
        "minutes_with_iv_25d": int(
            (summary["iv_put_25d"].is_not_null() & summary["iv_call_25d"].is_not_null()).sum()
        ),
    }
    return summary, log

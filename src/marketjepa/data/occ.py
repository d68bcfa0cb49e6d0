"""OCC option symbols, parsed vectorized over a polars column.

An OCC symbol is ``ROOT YYMMDD C|P STRIKE×1000`` with the strike as 8 digits, e.g.
``SPY240119C00470000`` = SPY call, expiry 2024-01-19, strike 470.0. Polygon prefixes
option tickers with ``O:`` (``O:SPY240119C00470000``); the prefix is optional here. The
root is 1–6 characters (letters, digits, ``.``), e.g. ``SPY``, ``SPXW``.
"""

from __future__ import annotations

from datetime import date

import polars as pl

OCC_PATTERN = r"^(?:O:)?([A-Z][A-Z0-9.]{0,5})(\d{6})([CP])(\d{8})$"


def parse_occ(symbols: pl.Series) -> pl.DataFrame:
    """Parse OCC symbols into ``symbol, root, expiry (Date), right ('C'|'P'), strike, valid``.

    Invalid symbols (wrong shape, impossible date) get nulls and ``valid = False``; the
    caller decides how to report them (ingest raises, naming file and row).
    """
    sym = symbols.cast(pl.Utf8).alias("symbol")
    parts = sym.str.strip_chars().str.to_uppercase().str.extract_groups(OCC_PATTERN)
    df = pl.DataFrame({"symbol": sym, "_p": parts}).unnest("_p")
    df = df.select(
        "symbol",
        pl.col("1").alias("root"),
        pl.col("2").str.strptime(pl.Date, "%y%m%d", strict=False).alias("expiry"),
        pl.col("3").alias("right"),
        (pl.col("4").cast(pl.Int64, strict=False) / 1000.0).alias("strike"),
    )
    valid = (
        pl.col("root").is_not_null()
        & pl.col("expiry").is_not_null()
        & pl.col("right").is_not_null()
        & (pl.col("strike") > 0).fill_null(False)
    )
    return df.with_columns(valid.alias("valid"))


def occ_symbol(root: str, expiry: date, right: str, strike: float, prefix: bool = True) -> str:
    """Format one OCC symbol (``O:`` prefix by default), the inverse of :func:`parse_occ`."""
    if right not in ("C", "P"):
        raise ValueError(f"right must be 'C' or 'P', got {right!r}")
    body = f"{root}{expiry:%y%m%d}{right}{round(strike * 1000):08d}"
    return f"O:{body}" if prefix else body

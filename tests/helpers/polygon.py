"""Polygon-style flat files for ingest tests: the column order, gzip writer, file config."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import polars as pl

from marketjepa.config import Config, build_config
from marketjepa.data.calendar import NS_PER_MINUTE

POLY_COLS = ["ticker", "volume", "open", "close", "high", "low", "window_start", "transactions"]


def write_csv_gz(df: pl.DataFrame, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(df.write_csv().encode()))
    return path


def files_cfg(tmp_path: Path, **data) -> Config:
    """A config reading ``tmp_path/stocks/*.csv.gz`` (plus any ``data`` overrides)."""
    d = {"source": "files", "stock_files": str(tmp_path / "stocks" / "*.csv.gz"), **data}
    return build_config({"data": d})


def session_frame(
    open_ns: int, m: np.ndarray, close: np.ndarray, volume: np.ndarray
) -> pl.DataFrame:
    """Polygon-style bars at minutes ``m`` from the session open (negative = pre-market)."""
    return pl.DataFrame(
        {
            "ticker": "SPY",
            "volume": volume,
            "open": close - 0.005,
            "close": close,
            "high": close + 0.02,
            "low": close - 0.02,
            "window_start": open_ns + m * NS_PER_MINUTE,
            "transactions": np.full(len(m), 7),
        }
    ).select(POLY_COLS)

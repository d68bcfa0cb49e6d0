"""Polygon-style flat files for ingest tests: the column order, gzip writer, file config."""

from __future__ import annotations

import gzip
from pathlib import Path

import polars as pl

from marketjepa.config import Config, build_config

POLY_COLS = ["ticker", "volume", "open", "close", "high", "low", "window_start", "transactions"]


def write_csv_gz(df: pl.DataFrame, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(df.write_csv().encode()))
    return path


def files_cfg(tmp_path: Path, **data) -> Config:
    """A config reading ``tmp_path/stocks/*.csv.gz`` (plus any ``data`` overrides)."""
    d = {"source": "files", "stock_files": str(tmp_path / "stocks" / "*.csv.gz"), **data}
    return build_config({"data": d})

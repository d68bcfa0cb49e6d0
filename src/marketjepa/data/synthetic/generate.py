"""Write the synthetic market as raw files — the same layout a user brings.

``<out_dir>/``: ``stocks/YYYY-MM-DD.csv.gz`` and ``options/YYYY-MM-DD.csv.gz`` (Polygon
flat-file columns), ``truth/latent.parquet`` and ``truth/params.json`` (hidden state,
never read by the feature pipeline) and ``manifest.json``. Everything is written into a
hidden sibling folder and renamed onto ``out_dir`` at the end, so a crash leaves no
partial output. gzip members carry no timestamp, so equal seeds give identical bytes.
"""

from __future__ import annotations

import gzip
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from marketjepa import __version__
from marketjepa.artifacts import read_json, write_json
from marketjepa.config import SynthConfig
from marketjepa.console import make_progress, stage_line
from marketjepa.data.synthetic.market import (
    STREAM_OPTIONS,
    SyntheticMarket,
    rng_for,
    simulate_market,
)
from marketjepa.data.synthetic.options import STOCK_COLUMNS, day_option_bars
from marketjepa.data.synthetic.params import SYNTH_MODEL_VERSION
from marketjepa.data.synthetic.stock import POST, PRE
from marketjepa.errors import MarketJepaError
from marketjepa.rundir_lock import clean_data_temps

GENERATOR = "marketjepa.data.synthetic"
WRITE_THREADS = 2
GZIP_LEVEL = 1  # speed over size: level 6 is ~3× slower for ~25% smaller files


def _write_csv_gz(df: pl.DataFrame, path: Path) -> None:
    data = df.write_csv(float_precision=2).encode()
    path.write_bytes(gzip.compress(data, compresslevel=GZIP_LEVEL, mtime=0))


def _stock_frame(market: SyntheticMarket, d: int) -> pl.DataFrame:
    b = market.bars
    sl = slice(b.day_offsets[d], b.day_offsets[d + 1])
    n = int(sl.stop - sl.start)
    return pl.DataFrame(
        {
            "ticker": pl.repeat(market.cfg.ticker, n, eager=True, dtype=pl.Utf8),
            "volume": b.volume[sl],
            "open": b.open[sl],
            "close": b.close[sl],
            "high": b.high[sl],
            "low": b.low[sl],
            "window_start": b.ts[sl],
            "transactions": b.transactions[sl],
        }
    ).select(STOCK_COLUMNS)


def _check_target(out_dir: Path) -> None:
    """Refuse to replace a folder that is not an earlier synthetic output."""
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise MarketJepaError(f"synth: output path {out_dir} exists and is not a folder")
    if not any(out_dir.iterdir()):
        return
    manifest = out_dir / "manifest.json"
    try:
        ok = manifest.exists() and read_json(manifest).get("generator") == GENERATOR
    except ValueError:
        ok = False
    if not ok:
        raise MarketJepaError(
            f"synth: {out_dir} is not empty and is not an earlier synthetic market; "
            "choose another synth.out_dir (or --out) or remove it"
        )


def _swap_in(tmp: Path, out_dir: Path) -> None:
    if out_dir.exists():
        old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
        os.replace(out_dir, old)
        os.replace(tmp, out_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out_dir)


def _write_day(market: SyntheticMarket, root: Path, d: int) -> tuple[int, list[str]]:
    cfg = market.cfg
    name = f"{market.days[d]:%Y-%m-%d}.csv.gz"
    _write_csv_gz(_stock_frame(market, d), root / "stocks" / name)
    if not cfg.options:
        return 0, []
    opt = day_option_bars(
        rng_for(cfg.seed, STREAM_OPTIONS, d),
        cfg.ticker,
        market.day_chain(d),
        cfg.strikes_each_side,
        market.params,
    )
    _write_csv_gz(opt, root / "options" / name)
    return opt.height, opt["ticker"].unique().to_list()


def _write_all(market: SyntheticMarket, root: Path, progress: bool) -> dict[str, int]:
    (root / "stocks").mkdir(parents=True)
    if market.cfg.options:
        (root / "options").mkdir()
    option_rows = 0
    contracts: set[str] = set()
    n_days = len(market.days)
    # Two threads: CSV encoding and gzip release the GIL; each day has its own random
    # stream, so the output does not depend on scheduling.
    with make_progress() as bar, ThreadPoolExecutor(max_workers=WRITE_THREADS) as pool:
        task = bar.add_task("synth", total=n_days, info="", visible=progress)
        done = pool.map(lambda d: _write_day(market, root, d), range(n_days))
        for day, (rows, names) in zip(market.days, done, strict=True):
            option_rows += rows
            contracts.update(names)
            bar.update(task, advance=1, info=f"{day}")
    kind = market.bars.kind
    return {
        "days": n_days,
        "half_days": int(market.early_close.sum()),
        "stock_bars": int(kind.size),
        "regular_bars": int(market.valid.sum()),
        "premarket_bars": int((kind == PRE).sum()),
        "postmarket_bars": int((kind == POST).sum()),
        "option_rows": option_rows,
        "option_contracts": len(contracts),
    }


def _params_json(market: SyntheticMarket) -> dict[str, Any]:
    p = market.params
    return {
        "description": (
            "Hidden regime k has direction level_k; per regular-session bar the log return is "
            "r = σ·y with y = drift_sigma·level_k + autocorr_k·y_prev + ε (ε unit-variance "
            "Student-t, dof t_dof). truth/latent.parquet 'drift' = drift_sigma·level_k·σ (log "
            "return per minute); ε also carries the rare jumps (jump_*) and is truncated "
            "at ±shock_cap, which the filter's t likelihood ignores. filter_p* = forward "
            "filter with the true parameters from the per-bar evidence (z_skew, z_pc, z_vol) and standardized returns y; the chain "
            "restarts from the uniform law at each open."
        ),
        "regime_names": _regime_names(p.n_regimes),
        "signal": market.cfg.signal,
        "regime_drift_annual": market.cfg.regime_drift_annual,
        "evidence_strength": market.cfg.evidence_strength,
        **p.to_json(),
    }


def _regime_names(k: int) -> list[str]:
    if k == 3:
        return ["down", "neutral", "up"]
    return [f"level_{x:+.2f}" for x in np.linspace(-1.0, 1.0, k)]


def generate_market(cfg: SynthConfig, out_dir: Path, progress: bool = True) -> dict[str, Any]:
    """Generate the synthetic market into ``out_dir``; returns a summary
    (``days, stock_bars, option_rows, seconds, out_dir``)."""
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    _check_target(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)  # an unwritable place fails first
    clean_data_temps(out_dir.parent)  # partial markets of killed runs
    market = simulate_market(cfg)
    tmp = out_dir.parent / f".{out_dir.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        counts = _write_all(market, tmp, progress)
        (tmp / "truth").mkdir()
        market.truth_frame().write_parquet(tmp / "truth" / "latent.parquet")
        write_json(tmp / "truth" / "params.json", _params_json(market))
        seconds = time.perf_counter() - t0
        write_json(
            tmp / "manifest.json",
            {
                "generator": GENERATOR,
                "version": __version__,
                "model_version": SYNTH_MODEL_VERSION,
                "config": cfg.model_dump(mode="json"),
                "first_session": market.days[0],
                "last_session": market.days[-1],
                "counts": counts,
                "seconds": round(seconds, 2),
            },
        )
        _swap_in(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    summary = {
        "days": counts["days"],
        "stock_bars": counts["stock_bars"],
        "option_rows": counts["option_rows"],
        "seconds": round(time.perf_counter() - t0, 2),
        "out_dir": str(out_dir),
    }
    stage_line(
        "synth",
        f"{summary['days']} sessions ({counts['half_days']} half days), "
        f"{summary['stock_bars']:,} stock bars, {summary['option_rows']:,} option rows "
        f"→ {out_dir} in {summary['seconds']:.1f}s",
    )
    return summary

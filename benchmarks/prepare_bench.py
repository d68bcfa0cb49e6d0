"""Benchmark the prepare stage and window sampling (issue #4 performance goals).

Reports, for four years of synthetic minute bars (984 NYSE sessions, 2021-12-01 to
2025-11-01, half days included):

* stock-feature time (13 stock + 3 calendar features; goal ≤ 5 s after ingest),
* all 23 features, and the whole prepare (features, splits, labels, normalization,
  Parquet write; goal ≤ 60 s; with ``--ingest`` and a synthetic generator present it
  also generates raw files and times ingest, i.e. the full ``marketjepa prepare``),
* peak RSS of the process,
* window index generation throughput (goal ≥ 1M windows/s),
* a batch gather of 2048 seed-size windows (30 × 30 context; goal ≤ 20 ms on CPU).

Usage: ``python benchmarks/prepare_bench.py [--ingest] [--threads N]``. Timings are medians
of ``--repeat`` runs where cheap; they depend on how busy the cores are.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import torch

from marketjepa.config import ALL_FEATURES, DataConfig, SynthConfig, load_config
from marketjepa.data.calendar import NS_PER_MINUTE, trading_sessions
from marketjepa.data.features import FEATURES, FeatureInputs, compute_features
from marketjepa.data.ingest import IngestResult
from marketjepa.data.prepare import prepare_from_ingest
from marketjepa.data.windows import WindowDataset, WindowSpec, pretrain_starts


def synthetic_ingest(start: date, end: date, seed: int = 0) -> IngestResult:
    """An in-memory ingest result: GARCH-free random walk bars + a noisy option summary."""
    rng = np.random.default_rng(seed)
    s = trading_sessions(start, end)
    sm = s["session_minutes"].to_numpy().astype(np.int64)
    day = np.repeat(np.arange(sm.size), sm)
    starts = np.r_[0, np.cumsum(sm)[:-1]]
    minute = np.arange(day.size) - starts[day]
    ts = s["open_ns"].to_numpy()[day] + minute * NS_PER_MINUTE
    n = day.size
    first = minute == 0
    r = rng.standard_t(5, n) * 4e-4 + np.where(first, rng.normal(0, 3e-3, n), 0.0)
    close = 460.0 * np.exp(np.cumsum(r))
    open_ = np.r_[460.0, close[:-1]] * np.exp(np.where(first, rng.normal(0, 2e-4, n), 0.0))
    wig = np.exp(np.abs(rng.normal(0, 2e-4, n)))
    bars = pl.DataFrame(
        {
            "ts": ts,
            "session": s["session"].gather(day),
            "minute": pl.Series(minute, dtype=pl.Int16),
            "session_minutes": pl.Series(sm[day], dtype=pl.Int16),
            "open": open_,
            "high": np.maximum(open_, close) * wig,
            "low": np.minimum(open_, close) / wig,
            "close": close,
            "volume": rng.lognormal(9, 1, n),
            "transactions": pl.Series(rng.integers(1, 500, n), dtype=pl.Int64),
            "filled": np.zeros(n, dtype=bool),
        }
    )
    obs = rng.random(n) < 0.8
    iv = 0.18 + 0.04 * np.sin(np.arange(n) / 5000) + rng.normal(0, 0.003, n)

    def col(x: np.ndarray) -> pl.Series:
        return pl.Series(np.where(obs, x, np.nan)).fill_nan(None)

    osum = pl.DataFrame(
        {
            "ts": ts,
            "iv_atm_near": col(iv),
            "iv_atm_far": col(iv + 0.01),
            "iv_put_25d": col(iv + 0.05),
            "iv_call_25d": col(iv - 0.01),
            "call_volume": col(rng.poisson(80, n).astype(float)),
            "put_volume": col(rng.poisson(100, n).astype(float)),
            "near_dte": col(np.full(n, 1.0)),
            "far_dte": col(np.full(n, 30.0)),
        }
    )
    return IngestResult(bars=bars, option_summary=osum, option_bars=None, log={}, inputs={})


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _timed(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of one call."""
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


def _median_time(fn, repeat: int) -> float:
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ingest", action="store_true", help="generate raw files and time ingest")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    start, end = date(2021, 12, 1), date(2025, 11, 1)
    cfg = load_config("seed")  # 80/20 split, no embargo, 30 × 30 context → 30 target
    res = {}

    with tempfile.TemporaryDirectory() as tmp:
        cfg.data = DataConfig(prepared_dir=str(Path(tmp) / "prepared"))
        t0 = time.perf_counter()
        ing = synthetic_ingest(start, end)
        res["build synthetic ingest result (s)"] = time.perf_counter() - t0
        n = ing.bars.height
        res["rows"] = n
        stock = [f for f in ALL_FEATURES if FEATURES[f].group != "options"]

        def feats(names):
            x = FeatureInputs.from_frames(ing.bars, ing.option_summary)
            return compute_features(x, names)

        feats(stock)  # warm-up (first-call allocations)
        res["stock+calendar features, 16 (s) [goal ≤ 5]"] = _median_time(
            lambda: feats(stock), max(1, args.repeat // 2)
        )
        res["all 23 features (s)"] = _median_time(
            lambda: feats(list(ALL_FEATURES)), max(1, args.repeat // 2)
        )
        box = {}
        w, c = _timed(lambda: box.setdefault("out", prepare_from_ingest(cfg, ing, progress=False)))
        out = box["out"]
        res["prepare from in-memory ingest result (s wall / cpu)"] = f"{w:.1f} / {c:.1f}"
        res["peak RSS so far: bars + prepare (MB)"] = _rss_mb()

        gen = None
        if args.ingest:
            try:
                from marketjepa.data.synthetic import generate_market as gen
            except ImportError:
                res["full prepare incl. ingest"] = "skipped: no synthetic.generate_market"
        if gen is not None:
            from marketjepa.data.ingest import ingest
            from marketjepa.data.prepare import load_truth

            c2 = cfg.model_copy(deep=True)
            c2.synth = SynthConfig(out_dir=str(Path(tmp) / "raw"))
            w, c = _timed(lambda: gen(c2.synth, Path(c2.synth.out_dir), progress=False))
            res["synthetic market generation (s wall / cpu)"] = f"{w:.1f} / {c:.1f}"
            box = {}
            w1, c1 = _timed(lambda: box.setdefault("r", ingest(c2, progress=False)))
            res["ingest incl. IV inversion (s wall / cpu)"] = f"{w1:.1f} / {c1:.1f}"
            w2, c2_ = _timed(
                lambda: prepare_from_ingest(
                    c2, box["r"], force=True, progress=False, truth=load_truth(c2)
                )
            )
            res["prepare after ingest (s wall / cpu)"] = f"{w2:.1f} / {c2_:.1f}"
            res["full prepare = ingest + prepare (s wall / cpu) [goal ≤ 60]"] = (
                f"{w1 + w2:.1f} / {c1 + c2_:.1f}"
            )
            del box

        from marketjepa.data.prepared import PreparedData

        data = PreparedData.load(out)
        spec = WindowSpec.from_config(cfg.windows)  # seed: 30 × 30 context, 30 target
        reps = max(args.repeat, 3)
        t = _median_time(lambda: pretrain_starts(data.split, 0, spec), reps)
        n_win = pretrain_starts(data.split, 0, spec).size
        res["train windows (seed spec)"] = n_win
        res["window index generation (M windows/s) [goal ≥ 1]"] = n_win / t / 1e6
        ds = WindowDataset(data.features, spec)
        rng = np.random.default_rng(0)
        starts = pretrain_starts(data.split, 0, spec)
        batch = starts[rng.integers(0, starts.size, 2048)]
        ds.context(batch)  # warm-up
        res["gather 2048 × [900, F] context (ms) [goal ≤ 20]"] = 1e3 * _median_time(
            lambda: ds.context(batch), reps
        )
        buf = torch.empty(2048, spec.context_len, ds.n_features)
        res["same, into a reused buffer (ms)"] = 1e3 * _median_time(
            lambda: ds.context(batch, out=buf), reps
        )
        res["gather context + target (ms)"] = 1e3 * _median_time(lambda: ds.batch(batch), reps)
        res["feature array (MB)"] = data.features.nbytes / 2**20
        res["peak RSS, whole benchmark (MB)"] = _rss_mb()

    res["torch threads"] = torch.get_num_threads()
    res["cpus"] = os.cpu_count()
    width = max(len(k) for k in res)
    for k, v in res.items():
        print(f"{k:<{width}}  {v:,.3f}" if isinstance(v, float) else f"{k:<{width}}  {v}")


if __name__ == "__main__":
    main()

"""Benchmark: `marketjepa signal` latency for one new bar, after the run is loaded.

A live feed delivers one bar; the decision recomputes the causal features over the bars
held (the warm-up sessions plus the day so far, through ``prepare``'s code path), applies
the run's normalization, embeds the window ending at the bar and applies the policy head
and thresholds (:func:`marketjepa.serve.replay.live_step`, what ``signal`` and ``replay``
run). Timed for the last ``--bars`` bars of the run's last session, single-threaded as the
CLI runs it; the median and 95th percentile are reported with the load average, since the
cores may be shared. Target (issue #16): ≤ 50 ms per bar on the ``cpu`` model.

    python benchmarks/signal_bench.py RUN_DIR [--bars 100]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import polars as pl
import torch

from marketjepa.serve.replay import feed_frames, live_step, load_frame
from marketjepa.serve.signal import TrainedRun, complete_before


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir")
    ap.add_argument("--bars", type=int, default=100)
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    run = TrainedRun.load(args.run_dir)
    load_s = time.perf_counter() - t0
    frame = load_frame(run)
    sess = (frame["session"].rank("dense").cast(pl.Int64) - 1).to_numpy()
    done = complete_before(sess, frame["minute"].to_numpy())
    last = frame.height - 1
    # the history a live process holds: `warmup_sessions` complete sessions before the
    # window of the first timed bar
    w0 = last - args.bars + 1 - run.window + 1
    a = int(np.flatnonzero(done == done[w0] - run.warmup_sessions)[0])
    bars, osum = feed_frames(run, frame.slice(a))
    times = []
    for k in range(bars.height - args.bars, bars.height):
        t = time.perf_counter()
        live_step(run, bars, osum, k)
        times.append(time.perf_counter() - t)
    ms = 1000 * np.array(times)
    print(
        f"run {args.run_dir}: d_model {run.model.d_model}, window {run.window} bars x "
        f"{len(run.feature_names)} features, history {bars.height:,} bars; load "
        f"{load_s:.1f} s; load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"signal latency per bar over {ms.size} bars: median {np.median(ms):.1f} ms, "
        f"p95 {np.quantile(ms, 0.95):.1f} ms, max {ms.max():.1f} ms (target <= 50 ms)"
    )


if __name__ == "__main__":
    main()

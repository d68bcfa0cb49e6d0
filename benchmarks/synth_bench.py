"""Time the full 4-year synthetic market (2021-12-01..2025-11-01, 984 sessions).

Usage: ``python benchmarks/synth_bench.py [--keep DIR]``. Prints wall seconds, peak
resident memory (``resource.getrusage``) and the output size. Target: ≤ 60 s and ≤ 2 GB
on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

from marketjepa.config import SynthConfig
from marketjepa.data.synthetic import generate_market


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--keep", type=Path, default=None, help="write here and keep the output")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="synth_bench_"))
    out = args.keep or root / "raw"
    try:
        t0 = time.perf_counter()
        summary = generate_market(SynthConfig(), out, progress=False)
        seconds = time.perf_counter() - t0
        size_mb = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 2**20
        cpu = resource.getrusage(resource.RUSAGE_SELF)
        print(
            f"synth 4y: {summary['days']} sessions, {summary['stock_bars']:,} stock bars, "
            f"{summary['option_rows']:,} option rows, {size_mb:.0f} MiB on disk"
        )
        print(
            f"seconds={seconds:.1f} cpu_seconds={cpu.ru_utime + cpu.ru_stime:.1f} "
            f"peak_rss_mb={_peak_rss_mb():.0f}"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

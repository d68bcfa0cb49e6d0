"""Benchmark: backtest one year of test days (252 sessions × 390 minutes ≈ 98k bars).

Times ``run_strategy`` on a random-walk market with a per-minute IV surface, for a few
thousand signals, with and without stop/target (the path-dependent case prices a
[signals, hold_bars] matrix). Target (issue #7): ≤ 1 s on CPU. Cores may be shared with
other jobs: the best of ``--repeat`` runs is reported, plus the load average.

    python benchmarks/backtest_bench.py [--signals 5000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from marketjepa.trading.backtest import Rules, run_strategy, strategy_summary
from marketjepa.trading.costs import CostModel
from marketjepa.trading.pricing import OptionPricer, random_market


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--signals", type=int, default=5000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    market = random_market(252, seed=0)
    rng = np.random.default_rng(1)
    signal = np.zeros(market.n, np.int8)
    idx = rng.choice(market.n, args.signals, replace=False)
    signal[idx] = rng.integers(1, 3, args.signals)
    mask = np.ones(market.n, bool)
    costs = CostModel()
    print(f"bars {market.n}, signals {args.signals}, load average {os.getloadavg()[0]:.1f}")
    for label, rules in (
        ("time/close exits", Rules(hold_bars=30)),
        ("with stop 50% / target 100%", Rules(hold_bars=30, stop_loss=0.5, take_profit=1.0)),
    ):
        best, res = float("inf"), None
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            pricer = OptionPricer(market, "surface")
            res = run_strategy(pricer, signal, mask, rules, costs)
            summary = strategy_summary(market, mask, res, rules, bootstrap_samples=500)
            best = min(best, time.perf_counter() - t0)
        print(
            f"{label:<28} {best:.3f} s  ({summary['n_trades']} trades, "
            f"net {summary['net_pnl']:+.0f} $, incl. metrics + 500-sample bootstrap)"
        )


if __name__ == "__main__":
    main()

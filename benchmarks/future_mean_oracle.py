"""How much of the future span means does the Bayes filter explain beyond the current bar?

Diagnostic for the future-summary auxiliary (``loss.aux_future_mean``, docs/levers.md):
on training-split anchors of the prepared synthetic market, the in-sample R² of a linear
regression of each feature's mean over the next h bars (same session) on (a) the current
bar's features and (b) those plus the Bayes filter posterior. Their difference is what an
encoder gains on that target by carrying the filter state — the pull the auxiliary exerts.

    python benchmarks/future_mean_oracle.py --preset cpu --spans 30 60 120
"""

from __future__ import annotations

import argparse

import numpy as np

from marketjepa.config import load_config
from marketjepa.data.prepared import PreparedData
from marketjepa.model.future_summary import FutureMeans
from marketjepa.pipeline import ensure_prepared, ensure_synthetic


def r2(x: np.ndarray, t: np.ndarray) -> np.ndarray:
    """In-sample R² per column of ``t`` of an OLS fit on ``x`` plus an intercept."""
    x1 = np.c_[np.ones(len(x)), x]
    b = np.linalg.lstsq(x1, t, rcond=None)[0]
    return 1 - ((t - x1 @ b) ** 2).mean(0) / t.var(0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--spans", type=int, nargs="+", default=[30, 60, 120])
    ap.add_argument("--every", type=int, default=7, help="use every k-th training row")
    ap.add_argument("--top", type=int, default=6)
    args = ap.parse_args()
    cfg = load_config(args.preset)
    if cfg.data.source == "synthetic":
        ensure_synthetic(cfg)
    d = PreparedData.load(ensure_prepared(cfg))
    if not d.truth:
        raise SystemExit("needs a synthetic market (no Bayes filter truth in this dataset)")
    x, names = np.asarray(d.features, np.float32), d.feature_names
    keys = sorted((k for k in d.truth if k.startswith("filter_p")), key=lambda k: int(k[8:]))
    post = np.stack([np.asarray(d.truth[k]) for k in keys], 1)
    rows = np.arange(0, x.shape[0], args.every)
    rows = rows[np.asarray(d.split)[rows] == 0]
    y, valid = (t.numpy() for t in FutureMeans(x, d.session, d.split, args.spans)(rows))
    for k, h in enumerate(args.spans):
        m = valid[:, k]
        t = y[m, k]
        base = r2(x[rows][m], t)
        filt = r2(post[rows][m], t)
        gain = r2(np.c_[x[rows][m], post[rows][m]], t) - base
        print(
            f"span {h} bars ({int(m.sum())} anchors): mean R² over {len(names)} features — "
            f"current bar {base.mean():.3f}, filter alone {filt.mean():.3f}, "
            f"filter's gain over the current bar {gain.mean():.3f}"
        )
        for i in np.argsort(-gain)[: args.top]:
            print(
                f"    {names[i]:<16} gain {gain[i]:+.3f}  (current bar {base[i]:.3f}, "
                f"filter alone {filt[i]:.3f})"
            )


if __name__ == "__main__":
    main()

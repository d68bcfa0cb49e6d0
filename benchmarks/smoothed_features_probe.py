"""How far does a *linear* probe get on causal smoothings of the input features?

Issue #12, fourth round. The hidden regime of the planted market is a slow state whose
Bayes filter (the reference, share 1.0) integrates weak per-bar evidence since the open.
If exponentially weighted moving averages (EWMAs) of the features, restarted at every
open, were enough for a linear probe to approach the filter, an encoder would only have
to learn such averages. This prints the validation-day regime share (probe fitted on
train days, ``C`` chosen on validation days, scored on validation days — exactly the rows
and probe of ``marketjepa.tune.levers.validation_score``; test days never read) of:

* raw window statistics (the probes' baseline: last patch + 30/120/240-bar means/stds),
* the anchor bar's own features (many are already rolling: ret_30, rsi_14, vwap_dev …),
* the anchor bar + session-reset EWMAs of every feature (time constants in bars),
* the same without the reset at the open,
* the anchor bar + one EWMA of a single evidence-bearing feature.

    python benchmarks/smoothed_features_probe.py --preset cpu [--set synth.seed=1]
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy.signal import lfilter

from marketjepa.config import load_config
from marketjepa.data.prepared import PreparedData
from marketjepa.data.windows import WindowSpec
from marketjepa.evaluate.baselines import raw_window_features
from marketjepa.pipeline import ensure_prepared, ensure_synthetic
from marketjepa.tune.levers import RegimeRows, train_val_rows

TAUS = (15, 45, 90, 180)
SINGLE = ("put_call_volume", "skew_25d", "volume_z", "ret_1")


def ewma(x: np.ndarray, session: np.ndarray | None, tau: float) -> np.ndarray:
    """Causal EWMA ``[N, F]`` with time constant ``tau`` bars, normalized by its weight
    sum (a weighted mean of the bars seen so far); restarted at every new ``session``."""
    a = float(np.exp(-1.0 / tau))
    bounds = [0, x.shape[0]]
    if session is not None:
        bounds = [0, *np.flatnonzero(np.diff(session) != 0) + 1, x.shape[0]]
    out = np.empty_like(x, dtype=np.float64)
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        num = lfilter([1 - a], [1, -a], x[lo:hi], axis=0)
        den = lfilter([1 - a], [1, -a], np.ones(hi - lo))
        out[lo:hi] = num / den[:, None]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--set", action="append", default=[], dest="sets")
    ap.add_argument("--windows", type=int, default=6000, help="probe anchors per split")
    args = ap.parse_args()
    cfg = load_config(args.preset, overrides=args.sets)
    if cfg.data.source == "synthetic":
        ensure_synthetic(cfg)
    data = PreparedData.load(ensure_prepared(cfg))
    x = np.asarray(data.features, np.float64)
    split, label, session = np.asarray(data.split), np.asarray(data.label), data.session
    spec = WindowSpec.from_config(cfg.windows)
    starts, sp = train_val_rows(split, label, spec.context_len, args.windows)
    a = spec.anchor(starts)
    rows = RegimeRows.at(a, sp, data.truth)
    if rows is None:
        raise SystemExit("needs a synthetic market (the true regime and its Bayes filter)")

    def share(cols: list[np.ndarray]) -> float:
        return rows.share(np.concatenate(cols, axis=1).astype(np.float32), cfg)

    last = x[a]
    reset = {t: ewma(x, session, t)[a] for t in TAUS}
    rows = {
        "raw window statistics": [
            raw_window_features(x.astype(np.float32), a, spec.patch_len, spec.context_len)
        ],
        "anchor bar features": [last],
        f"anchor bar + session-reset EWMAs {TAUS}": [last, *reset.values()],
        **{f"anchor bar + session-reset EWMA {t}": [last, reset[t]] for t in TAUS},
        "anchor bar + EWMAs 45, 90 without reset": [
            last, ewma(x, None, 45)[a], ewma(x, None, 90)[a]
        ],
    }  # fmt: skip
    names = list(data.feature_names)
    for f in SINGLE:
        if f in names:
            rows[f"anchor bar + EWMA 45 of {f} only"] = [last, reset[45][:, [names.index(f)]]]
    print(
        f"Bayes filter accuracy {rows.filter_acc:.3f}, chance {rows.chance:.3f} (validation days)"
    )
    print("| readout (linear probe) | validation regime share |\n|---|---|")
    for name, cols in rows.items():
        print(f"| {name} | {share(cols):.3f} |", flush=True)


if __name__ == "__main__":
    main()

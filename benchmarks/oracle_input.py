"""Does the pretraining objective keep the hidden regime when it is handed to the encoder?

Issue #12 asks pretraining to *learn* the planted market's slow state from weak per-bar
evidence. This benchmark separates two reasons it might not: (a) the objective does not
value the regime (it would discard it even if it were free), or (b) it values it but
cannot learn to compute it from the features in the budget. It appends the exact Bayes
filter's posterior (``filter_p0 … filter_p{K-1}`` of the synthetic market's truth, which
uses bars ≤ t only, standardized with training-row moments) to the input as channels
``oracle_p*``, removes them from the target path (``loss.target_exclude``, so the targets
are the same features as without them), pretrains the preset with the given ``--set``
overrides and prints, after every epoch, the validation latent share of the encoder
(:func:`marketjepa.tune.levers.validation_score`: probe fitted on train days, scored on
validation days; test days never read) — starting from its random-init encoder, which
reads the oracle channels through a random projection.

If the share stays near its random-init value, the objective keeps a regime it is given
(reason b); if it falls towards the share without the oracle, the objective discards it
(reason a). ``--no-oracle`` runs the same script without the channels (the control).

    python benchmarks/oracle_input.py --preset cpu --epochs 2 --set model.causal=true \\
        --set loss.sigreg_pooling=mean --out runs/screen/oracle

A measurement tool for the lab notebook (docs/levers.md), not a product feature: real
data has no filter posterior.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from marketjepa.data.prepared import truth_arrays
from marketjepa.tune.levers import screen_market, screen_pretraining


def oracle_channels(truth: dict[str, np.ndarray] | None, split: np.ndarray) -> np.ndarray:
    """``[N, K]`` float32 filter posterior, standardized with training-row (split 0)
    moments; rows without a posterior (none on a regular session) are 0."""
    _, filt = truth_arrays(truth)
    if filt is None:
        raise SystemExit("oracle_input needs a synthetic market with the filter posterior")
    p = np.asarray(filt, np.float64)
    train = (np.asarray(split) == 0) & np.isfinite(p).all(axis=1)
    mu, sd = p[train].mean(axis=0), p[train].std(axis=0)
    z = (p - mu) / np.where(sd > 0, sd, 1.0)
    return np.nan_to_num(z, nan=0.0).astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--set", action="append", default=[], dest="sets")
    ap.add_argument("--epochs", type=int, default=None, help="override train.epochs")
    ap.add_argument("--out", type=Path, default=Path("runs/screen/oracle"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-oracle", action="store_true", help="the control: no oracle channels")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg, data = screen_market(args.preset, args.sets, args.epochs)
    x = np.asarray(data.features, np.float32)
    split = np.asarray(data.split)
    names = list(data.feature_names)
    if not args.no_oracle:
        oracle = oracle_channels(data.truth, split)
        extra = [f"oracle_p{k}" for k in range(oracle.shape[1])]
        x, names = np.concatenate([x, oracle], axis=1), names + extra
        # The targets stay the features alone; what the encoder does with the oracle is
        # decided by how much it helps predict them.
        excluded = list(cfg.loss.target_exclude) + extra
        cfg = cfg.model_copy(
            update={"loss": cfg.loss.model_copy(update={"target_exclude": excluded})}
        )
    screen_pretraining(cfg, data, args.out, features=x, feature_names=names)


if __name__ == "__main__":
    main()

"""Screen one pretraining-lever variant: the validation latent share after every epoch.

The inner loop of issue #12's lab notebook (docs/levers.md). Pretrains the preset with the
given ``--set`` overrides on the prepared synthetic market and, after every epoch, scores
the encoder with :func:`marketjepa.tune.levers.validation_score` (probe fitted on train
days, scored on validation days only; test days are never read). Also prints the same
score for the variant's random-init encoder and the validation per-epoch latent probe.

    python benchmarks/lever_screen.py --preset cpu --set model.causal=true \\
        --set loss.target_path=sequence --epochs 2 --out runs/screen/causal_seq

Prepares the market first if needed (like every stage command).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from marketjepa.config import load_config
from marketjepa.data.prepared import PreparedData
from marketjepa.data.windows import WindowSpec
from marketjepa.evaluate.baselines import build_encoder
from marketjepa.pipeline import ensure_prepared, ensure_synthetic
from marketjepa.train.pretrain import train_lejepa
from marketjepa.tune.levers import validation_score


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--set", action="append", default=[], dest="sets")
    ap.add_argument("--epochs", type=int, default=None, help="override train.epochs")
    ap.add_argument("--out", type=Path, default=Path("runs/screen/variant"))
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    sets = ["train.watchdog.enabled=false", "train.device=cpu", *args.sets]
    if args.epochs:
        sets.append(f"train.epochs={args.epochs}")
    cfg = load_config(args.preset, overrides=sets)
    if cfg.data.source == "synthetic":
        ensure_synthetic(cfg)
    data = PreparedData.load(ensure_prepared(cfg))
    x = np.asarray(data.features, np.float32)
    split, label = np.asarray(data.split), np.asarray(data.label)
    name = args.out.name
    spec = WindowSpec.from_config(cfg.windows)
    enc = build_encoder(x.shape[1], spec, cfg.model, cfg.train.seed, data.feature_names)
    r = validation_score(enc, cfg, x, split, label, data.truth)
    print(f"{name} epoch 0 (random init): latent share {r['latent_share']:.3f}", flush=True)
    t0 = time.time()

    def on_epoch(epoch: int, row: dict, model: torch.nn.Module) -> None:
        s = validation_score(model.encoder, cfg, x, split, label, data.truth)
        print(
            f"{name} epoch {epoch}: latent share {s['latent_share']:.3f}, direction lift "
            f"{s['direction_lift']:+.3f}, per-epoch probe {row['latent_share']:.3f}, "
            f"val pred {row['val_pred']:.4f}, RankMe {row['probe_rankme']:.1f}, "
            f"{time.time() - t0:.0f}s",
            flush=True,
        )

    train_lejepa(
        cfg,
        x,
        split,
        args.out,
        truth=data.truth,
        on_epoch_end=on_epoch,
        session=data.session,
        feature_names=data.feature_names,
    )


if __name__ == "__main__":
    main()

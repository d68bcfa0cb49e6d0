"""Screen one pretraining-lever variant: the validation latent share after every epoch.

The inner loop of issue #12's lab notebook (docs/levers.md). Pretrains the preset with the
given ``--set`` overrides on the prepared synthetic market and, after every epoch, scores
the encoder with :func:`marketjepa.tune.levers.validation_score` (probe fitted on train
days, scored on validation days only; test days are never read). Also prints the same
score for the variant's random-init encoder and the validation per-epoch latent probe.

    python benchmarks/lever_screen.py --preset cpu --set model.causal=true \\
        --set loss.target_path=sequence --epochs 2 --out runs/screen/causal_seq

``--readouts last,mean,cat`` also scores other linear readouts of the same tokens (the
last token, the mean of tokens, their concatenation; ``raw+last`` = raw window statistics
next to the last token) with the same train-fit / validation-score probe, and prints raw
window statistics once on the same rows as the reference (issue #12, third round).

Prepares the market first if needed (like every stage command).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from marketjepa.data.windows import WindowDataset, WindowSpec
from marketjepa.evaluate.baselines import raw_window_features
from marketjepa.tune.levers import (
    RegimeRows,
    screen_market,
    screen_pretraining,
    train_val_rows,
)

READOUTS = ("last", "mean", "cat", "raw+last")


class Readouts:
    """Validation latent shares of several linear readouts of one encoder's tokens.

    Same rows, probe and score as :func:`validation_score` (train-fit, C on validation,
    scored on validation days; test days never read); only the embedding differs.
    """

    def __init__(self, cfg, x: np.ndarray, split: np.ndarray, label, truth, names) -> None:
        self.cfg, self.x, self.names = cfg, x, names
        self.spec = WindowSpec.from_config(cfg.windows)
        self.starts, sp = train_val_rows(split, label, self.spec.context_len, 6000)
        anchors = self.spec.anchor(self.starts)
        rows = RegimeRows.at(anchors, sp, truth)
        if rows is None:
            raise SystemExit("--readouts needs a synthetic market (the true regime)")
        self.rows = rows
        self.raw = raw_window_features(x, anchors, self.spec.patch_len, self.spec.context_len)

    def share(self, X: np.ndarray) -> float:
        return self.rows.share(X, self.cfg)

    @torch.no_grad()
    def __call__(self, encoder: torch.nn.Module) -> dict[str, float]:
        was = encoder.training
        encoder.eval()
        ds = WindowDataset(self.x, self.spec, next(encoder.parameters()).device)
        last, mean = [], []
        for i in range(0, self.starts.size, 1024):
            tok = encoder(ds.context(self.starts[i : i + 1024]))
            last.append(tok[:, -1].float().cpu().numpy())
            mean.append(tok.mean(dim=1).float().cpu().numpy())
        encoder.train(was)
        emb = {"last": np.concatenate(last), "mean": np.concatenate(mean)}
        emb["cat"] = np.concatenate([emb["last"], emb["mean"]], axis=1)
        emb["raw+last"] = np.concatenate([self.raw, emb["last"]], axis=1)
        return {n: self.share(emb[n]) for n in self.names}


def _fmt(shares: dict[str, float]) -> str:
    return ", ".join(f"{n} {v:.3f}" for n, v in shares.items())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--set", action="append", default=[], dest="sets")
    ap.add_argument("--epochs", type=int, default=None, help="override train.epochs")
    ap.add_argument("--out", type=Path, default=Path("runs/screen/variant"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--readouts", default="", help=f"comma-separated extra readouts from {READOUTS}"
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg, data = screen_market(args.preset, args.sets, args.epochs)
    names = [n for n in args.readouts.split(",") if n]
    if unknown := sorted(set(names) - set(READOUTS)):
        raise SystemExit(f"unknown --readouts {unknown}; choose from {READOUTS}")
    readouts = None
    if names:
        x = np.asarray(data.features, np.float32)
        split, label = np.asarray(data.split), np.asarray(data.label)
        readouts = Readouts(cfg, x, split, label, data.truth, names)
    name = args.out.name

    def after_init(enc: torch.nn.Module) -> None:
        if readouts is not None:
            print(f"{name} raw window statistics: latent share {readouts.share(readouts.raw):.3f}")
            print(f"{name} epoch 0 (random init) readouts: {_fmt(readouts(enc))}", flush=True)

    def after_epoch(epoch: int, encoder: torch.nn.Module) -> None:
        if readouts is not None:
            print(f"{name} epoch {epoch} readouts: {_fmt(readouts(encoder))}", flush=True)

    screen_pretraining(cfg, data, args.out, after_init=after_init, after_epoch=after_epoch)


if __name__ == "__main__":
    main()

"""Per-epoch validation of pretraining: losses, collapse diagnostics, latent probe.

Validation losses use up to ``train.max_val_windows`` evenly spaced validation windows
and fixed SIGReg directions, so epochs are comparable. Collapse diagnostics
(:func:`marketjepa.model.collapse.embedding_stats`) are computed for the tensor SIGReg
regularizes (``sig_*``) and the tensor the probes use (``probe_*``); on synthetic data
the latent-regime probe (fitted on training-day windows, scored on the validation
windows; :mod:`marketjepa.train.latent_probe`) measures how much of the hidden state the
embeddings carry.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from marketjepa.artifacts import EMBEDDING_STAT_KEYS
from marketjepa.config import Config
from marketjepa.data.prepared import truth_arrays
from marketjepa.data.windows import WindowDataset, even_subsample
from marketjepa.device import autocast_ctx
from marketjepa.model.collapse import embedding_stats, row_verdict
from marketjepa.model.embedding import encoder_embeddings
from marketjepa.model.future_summary import FutureMeans
from marketjepa.model.sigreg import sigreg_view, token_positions
from marketjepa.train.batches import needs_gap, session_ids
from marketjepa.train.latent_probe import latent_probe

# Validation SIGReg uses fixed directions (step 0 of a separate seed stream).
VAL_SEED_OFFSET = 7919


@torch.no_grad()
def evaluate_validation(
    model: nn.Module,
    data: WindowDataset,
    starts: np.ndarray,
    token_pos: np.ndarray,
    cfg: Config,
    future_means: FutureMeans | None = None,
    session: np.ndarray | None = None,
) -> tuple[dict[str, float], np.ndarray, np.ndarray]:
    """Validation losses and embeddings ``(losses, z_probe [n, d], z_sig [n, d])``.

    ``session [N]`` (row trading days) is passed on for ``loss.aux_session_contrast``:
    the windows of a chunk from the same day are each other's negatives.

    Windows are scored in ⌈n/B⌉ near-equal chunks (B = train batch size) so the SIGReg
    statistic (which scales with the batch for non-Gaussian embeddings) is on the
    training scale; losses are chunk-size-weighted means.
    """
    was_training = model.training
    model.eval()
    n_chunks = max(1, math.ceil(starts.size / cfg.train.batch_size))
    sums = np.zeros(3)
    probe, sig = [], []
    seed = cfg.train.seed + VAL_SEED_OFFSET
    for idx in np.array_split(np.arange(starts.size), n_chunks):
        ctx, tgt = data.batch(starts[idx])
        gap = data.gap(starts[idx]) if needs_gap(cfg) else None
        anchors = data.spec.anchor(starts[idx])
        fut = future_means(anchors) if future_means is not None else None
        days = session_ids(session, anchors, data.device)
        with autocast_ctx(data.device, cfg.train.bf16):
            out = model(ctx, tgt, step=0, seed=seed, gap=gap, future=fut, session=days)
        vals = torch.stack([out["loss"], out["pred"], out["sigreg"]]).float().cpu().numpy()
        sums += vals * idx.size
        probe.append(out["z_probe"].float().cpu())
        pos = torch.as_tensor(token_pos[idx])
        sig.append(sigreg_view(out["z_sigreg"].float(), idx.size, pos).cpu())
    model.train(was_training)
    means = sums / starts.size
    losses = {"val_loss": means[0], "val_pred": means[1], "val_sigreg": means[2]}
    return (
        {k: float(v) for k, v in losses.items()},
        torch.cat(probe).numpy(),
        torch.cat(sig).numpy(),
    )


def diagnostics_columns(z: np.ndarray, prefix: str, dead_share: float) -> dict[str, float]:
    """The ``metrics.csv`` collapse columns of embeddings ``z`` under ``prefix``."""
    stats = embedding_stats(z, dead_share)
    out = {f"{prefix}{k}": float(stats[k]) for k in EMBEDDING_STAT_KEYS}
    out[f"{prefix}top1_share"] = float(stats["top1_share"])
    return out


class Validator:
    """Scores the model on the fixed validation windows once per epoch (rank 0 only)."""

    def __init__(
        self,
        data: WindowDataset,
        starts: np.ndarray,
        cfg: Config,
        truth: dict[str, np.ndarray] | None = None,
        future_means: FutureMeans | None = None,
        session: np.ndarray | None = None,
        fit_starts: np.ndarray | None = None,
    ) -> None:
        """``fit_starts``: training-day windows; ``train.latent_probe_fit_windows`` evenly
        spaced ones fit the latent probe (None or a cap of 0: halves of the validation
        windows, see :mod:`.latent_probe`)."""
        self.data, self.starts, self.cfg, self.future_means = data, starts, cfg, future_means
        self.session = None if session is None else np.asarray(session)
        self.token_pos = token_positions(starts.size, data.spec.context_patches, cfg.train.seed)
        regime, filt = truth_arrays(truth)
        rows = data.spec.anchor(starts)
        self.regime = None if regime is None else regime[rows]
        self.filt = None if filt is None else filt[rows]  # None whenever regime is
        cap = cfg.train.latent_probe_fit_windows
        self.fit_starts = self.regime_fit = None
        if regime is not None and fit_starts is not None and cap:
            fit_starts = even_subsample(fit_starts, cap)
            if fit_starts.size >= 2:
                self.fit_starts = fit_starts
                self.regime_fit = regime[data.spec.anchor(fit_starts)]

    def latent_row(self, model: nn.Module) -> dict[str, float] | None:
        """The latent probe of ``model``'s probed embedding alone (``None`` without a known
        regime): read before step 1, it is the random-init baseline of the per-epoch curve."""
        if self.regime is None:
            return None
        lp = self._latent(model, self._embed(model, self.starts))
        return {"latent_acc": lp["latent_acc"], "latent_share": lp["latent_share"]}

    def _embed(self, model: nn.Module, starts: np.ndarray) -> np.ndarray:
        """The probed embedding of windows ``starts`` (what ``z_probe`` holds)."""
        tc = self.cfg.train
        return encoder_embeddings(model.encoder, self.data, starts, tc.batch_size, bf16=tc.bf16)

    def _latent(self, model: nn.Module, z: np.ndarray) -> dict[str, float]:
        """The latent probe of validation embeddings ``z``, fitted on the training windows'
        (or on half of ``z`` without them, see :mod:`.latent_probe`)."""
        z_fit = None if self.fit_starts is None else self._embed(model, self.fit_starts)
        return latent_probe(z, self.regime, self.filt, self.cfg.train.seed, z_fit, self.regime_fit)

    def epoch_row(self, model: nn.Module, epoch: int, step: int, lr: float) -> dict[str, Any]:
        """One ``metrics.csv`` row (without the train losses and timing) after ``epoch``."""
        cfg = self.cfg
        losses, z_probe, z_sig = evaluate_validation(
            model, self.data, self.starts, self.token_pos, cfg, self.future_means, self.session
        )
        row: dict[str, Any] = {"epoch": epoch + 1, "step": step, "lr": lr, **losses}
        if np.isfinite(z_probe).all() and np.isfinite(z_sig).all():
            row.update(diagnostics_columns(z_sig, "sig_", cfg.eval.dead_dim_share))
            row.update(diagnostics_columns(z_probe, "probe_", cfg.eval.dead_dim_share))
            row["collapsed"] = row_verdict(row, cfg.eval) == "COLLAPSED"
        else:  # non-finite embeddings: the loss check reports divergence right after
            row["val_loss"] = math.nan
        row["latent_acc"] = row["latent_share"] = math.nan
        if self.regime is not None:
            lp = self._latent(model, z_probe)
            row["latent_acc"], row["latent_share"] = lp["latent_acc"], lp["latent_share"]
        return row

"""LeJEPA for market windows: encoder, predictor, target path and the loss (DESIGN §3).

Given a context window ``x_c [B, C·P, F]`` and its target window ``x_t [B, T·P, F]``
(after a gap of G patches)::

    tokens  = f_θ(x_c)                  [B, C, d]     z = pool(tokens)   [B, d]
    targets = f_ξ(x_t)                  [B, T, d]     ξ = θ (LeJEPA) or EMA of θ
    preds   = g_ψ(tokens | z)           [B, T, d]     one query per target patch
                                                      (z alone: ``predictor_input=pooled``)
    pred    = (1/T) Σ_h MSE(preds_h, targets_h)        multi-horizon (each patch a horizon)
            | MSE(pool(preds), pool(targets))          otherwise (pooled target embedding)
    sigreg  = SIGReg(z) | SIGReg(tokens as [B·C, d]) | their mean       (``sigreg_on``)
              (z pooled as ``loss.sigreg_pooling`` says: the probed pooling, or mean/last)
    loss    = pred + λ·sigreg                 ('additive', the seed: 1.55 + 0.1·53.63 = 6.91)
            | (1 − λ)·pred + λ·sigreg         ('lejepa': the LeJEPA objective,
                                               Balestriero & LeCun 2025)
            (+ a·aux_recon if ``aux_reconstruction`` = a > 0)
            (+ c·InfoNCE(pred, target) if ``aux_infonce`` = c > 0, see ``infonce.py``)
            (+ c·slowness(tokens) if ``aux_slowness`` = c > 0, see ``slowness.py``)
            (+ e·FutureMean(head(z), future means) if ``aux_future_mean`` = e > 0,
               see ``future_summary.py``; the means come from the caller)
            (+ s·SessionContrast(pred | z, target, session) if ``aux_session_contrast``
               = s > 0: InfoNCE with negatives from the same trading day only, see
               ``session_contrast.py``; the anchors' days come from the caller)
            (+ v·ViewInvariance(z, z_view_1, …) if ``aux_view_invariance`` = v > 0: the
               probed embeddings of the window and of its channel-group views agree with
               their mean, LeJEPA's multi-view term, see ``view_invariance.py``)

Without EMA (the LeJEPA default) the target path is the encoder itself, with gradients
and no stop-gradient: SIGReg alone prevents collapse. With EMA (the seed: 0.996) the
target encoder is a frozen copy updated by :meth:`LeJEPA.update_ema` as
``ξ ← m·ξ + (1 − m)·θ``.

Target path (``loss.target_path``, issue #12):

* ``separate`` — targets are encoded as windows of their own (positions ``0 … T−1``):
  what the encoder says about the future window alone.
* ``sequence`` — one pass of the target encoder over context ‖ gap ‖ target (positions
  ``0 … C+G+T−1``); the targets are the tokens at the target positions, which (with
  ``model.causal``) have seen everything before them, as in I-JEPA / V-JEPA. Without EMA
  the pass runs under ``no_grad`` (stop-gradient); with EMA it is the EMA copy. A slow
  state accumulated over the context is thus part of the target, so predicting it
  rewards encoding it.

Block-masked targets inside the context (``loss.context_mask_patches`` = M, causal
encoder): each step a block ``[i, i+M)`` of context patches is predicted by the predictor
from the context tokens before it, against the block's own tokens (stop-gradient); the
MSE is added to ``pred`` (I-JEPA's masking, over time).

Target-only channel exclusion (``loss.target_exclude``, e.g. ``[calendar]``): the
target path reads its windows with those columns zeroed (every window of the
``sequence`` pass), the context encoder still reads them; the targets then carry no
time of day for the predictor to match (issue #12).

Multi-scale targets (``loss.target_scales`` = ``[s_1, …]``)::

    pred = (1/|S|) Σ_s MSE(mean(preds[:, :s]), mean(targets[:, :s]))

i.e. the predictor must match summaries of the future over several spans (s patches);
long spans average away per-bar noise and keep the slow state.

The auxiliary reconstruction predicts the raw features of the first target patch (the
next patch after the context when G = 0) from the last context token with a linear head.

The SIGReg directions are redrawn every step from ``(seed, step)``
(:func:`marketjepa.model.sigreg.sample_directions`), identical on all DDP ranks; pass a
SUM all-reduce as ``reduce_fn`` to make the statistic the global-batch one.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from marketjepa.config import LossConfig, ModelConfig
from marketjepa.data.windows import WindowSpec
from marketjepa.model.encoder import PatchEncoder, pool_tokens
from marketjepa.model.future_summary import FutureMeanHead, future_mean_loss
from marketjepa.model.infonce import info_nce
from marketjepa.model.inputs import keep_mask, only_mask
from marketjepa.model.predictor import Predictor
from marketjepa.model.session_contrast import session_contrast
from marketjepa.model.sigreg import ReduceFn, sample_directions, sigreg
from marketjepa.model.slowness import slowness_loss
from marketjepa.model.view_invariance import view_invariance_loss

# Separate random stream for the masked block's position (seed, step, MASK_STREAM).
MASK_STREAM = 4099


def combine_losses(pred: Tensor, sig: Tensor, lam: float, convention: str) -> Tensor:
    """``pred + λ·sig`` ('additive') or ``(1 − λ)·pred + λ·sig`` ('lejepa')."""
    if convention == "additive":
        return pred + lam * sig
    if convention == "lejepa":
        return (1.0 - lam) * pred + lam * sig
    raise ValueError(f"unknown loss convention {convention!r}; use 'additive' or 'lejepa'")


class LeJEPA(nn.Module):
    def __init__(
        self,
        n_features: int,
        spec: WindowSpec,
        model_cfg: ModelConfig,
        loss_cfg: LossConfig,
        feature_names: Sequence[str] | None = None,
    ) -> None:
        """``feature_names`` (the input columns) is needed only by the options that select
        columns: ``model.input_exclude``, ``model.session_mask``, ``loss.target_exclude``."""
        super().__init__()
        self.n_features = n_features
        self.spec = spec
        self.model_cfg = model_cfg
        self.loss_cfg = loss_cfg
        # The same encoder embeds T-patch targets (or the whole sequence) without EMA.
        self.sequence_targets = loss_cfg.target_path == "sequence"
        if self.sequence_targets:
            n_patches = spec.context_patches + spec.gap_patches + spec.target_patches
        else:
            n_patches = max(spec.context_patches, spec.target_patches)
        self.encoder = PatchEncoder(
            n_features, spec, model_cfg, n_patches=n_patches, feature_names=feature_names
        )
        keep = keep_mask(loss_cfg.target_exclude, feature_names, n_features, "loss.target_exclude")
        self.register_buffer("target_keep", keep, persistent=False)
        # [V, F] masks of the channel views (1 = kept), only with aux_view_invariance > 0.
        views = None
        if loss_cfg.aux_view_invariance > 0:
            views = torch.stack(
                [
                    only_mask(sel, feature_names, n_features, "loss.view_channels")
                    for sel in loss_cfg.view_channels
                ]
            )
        self.register_buffer("view_keep", views, persistent=False)
        self.predictor = Predictor(spec, model_cfg)
        self.target_encoder: PatchEncoder | None = None
        if loss_cfg.ema:
            self.target_encoder = copy.deepcopy(self.encoder)
            self.target_encoder.requires_grad_(False)
        self.aux_head: nn.Linear | None = None
        if loss_cfg.aux_reconstruction > 0:
            self.aux_head = nn.Linear(model_cfg.d_model, spec.patch_len * n_features)
        self.future_head: FutureMeanHead | None = None
        if loss_cfg.aux_future_mean > 0:
            n_spans = len(loss_cfg.future_mean_spans)
            n_out = len(loss_cfg.future_mean_features) or n_features
            self.future_head = FutureMeanHead(
                model_cfg.d_model, n_spans, n_out, loss_cfg.future_mean_head
            )

    @property
    def d_model(self) -> int:
        return self.encoder.d_model

    def embed(self, context: Tensor) -> tuple[Tensor, Tensor]:
        """``(pooled [B, d], tokens [B, C, d])``; ``pooled`` is the tensor the probes use."""
        tokens = self.encoder(context)
        return self.encoder.pool(tokens), tokens

    def sigreg_pooled(self, pooled: Tensor, tokens: Tensor) -> Tensor:
        """The pooled tensor SIGReg regularizes, per ``loss.sigreg_pooling``: the probed
        embedding (``same``) or another pooling of the tokens (e.g. their mean while the
        probes read the last token). One definition for the loss and the diagnosis."""
        mode = self.loss_cfg.sigreg_pooling
        return pooled if mode == "same" else pool_tokens(tokens, mode)

    def encode_target(
        self, target: Tensor, context: Tensor | None = None, gap: Tensor | None = None
    ) -> Tensor:
        """Target-patch embeddings ``[B, T, d]``.

        ``separate``: the target window alone (EMA copy without grad, else the encoder with
        grad). ``sequence``: the target positions of one pass over context ‖ gap ‖ target,
        always without gradient (EMA copy, else the encoder itself). ``loss.target_exclude``
        columns are zeroed in every window this path reads.
        """
        if self.target_keep is not None:
            keep = self.target_keep.to(target.dtype)
            target = target * keep
            context = context * keep if context is not None else None
            gap = gap * keep if gap is not None else None
        if not self.sequence_targets:
            if self.target_encoder is None:
                return self.encoder(target)
            with torch.no_grad():
                return self.target_encoder(target)
        if context is None:
            raise ValueError("the sequence target path needs the context window")
        if self.spec.gap_patches and (gap is None or gap.shape[1] != self.spec.gap_len):
            raise ValueError(f"the sequence target path needs the {self.spec.gap_len}-bar gap")
        parts = [context, gap, target] if self.spec.gap_patches else [context, target]
        enc = self.target_encoder if self.target_encoder is not None else self.encoder
        with torch.no_grad():
            tokens = enc(torch.cat(parts, dim=1))
        return tokens[:, -self.spec.target_patches :].detach()

    def forward(
        self,
        context: Tensor,
        target: Tensor,
        step: int,
        seed: int = 0,
        reduce_fn: ReduceFn | None = None,
        gap: Tensor | None = None,
        future: tuple[Tensor, Tensor] | None = None,
        session: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """Losses of one batch; ``future`` = ``(means [B, S, F], valid [B, S])`` from
        :class:`~marketjepa.model.future_summary.FutureMeans` (needed iff
        ``aux_future_mean`` > 0); ``session [B]`` = each window's anchor trading day
        (needed iff ``aux_session_contrast`` > 0)."""
        cfg = self.loss_cfg
        pooled, tokens = self.embed(context)
        targets = self.encode_target(target, context, gap)
        pred_in = pooled[:, None] if self.predictor.pooled_input else tokens
        preds = self.predictor(pred_in)
        out: dict[str, Tensor] = {}
        pred = self.prediction_loss(preds, targets, out)
        if cfg.context_mask_patches:
            mask = self.masked_block_loss(tokens, step, seed)
            pred = pred + mask
            out["pred_mask"] = mask.detach()
        sig, z_sig = self.sigreg_loss(pooled, tokens, step, seed, reduce_fn, out)
        loss = combine_losses(pred, sig, cfg.lambda_sigreg, cfg.convention)
        loss = self.add_auxiliary_losses(loss, pooled, tokens, preds, targets, target, future, out)
        loss = self.add_session_contrast(loss, pooled, preds, targets, session, out)
        loss = self.add_view_invariance(loss, pooled, context, out)
        out.update(
            loss=loss,
            pred=pred,
            sigreg=sig,
            z_sigreg=z_sig.detach(),
            z_probe=pooled.detach(),
        )
        return out

    def prediction_loss(self, preds: Tensor, targets: Tensor, out: dict[str, Tensor]) -> Tensor:
        """Predicted vs target embeddings: per scale, per horizon, or of the pooled tokens
        (per-scale/horizon parts go to ``out``)."""
        cfg = self.loss_cfg
        if cfg.target_scales:
            per_scale = torch.stack(
                [
                    F.mse_loss(preds[:, :s].float().mean(1), targets[:, :s].float().mean(1))
                    for s in cfg.target_scales
                ]
            )
            out["pred_per_scale"] = per_scale.detach()
            return per_scale.mean()
        if cfg.multi_horizon:
            per_horizon = (preds.float() - targets.float()).square().mean(dim=(0, 2))
            out["pred_per_horizon"] = per_horizon.detach()
            return per_horizon.mean()
        mode = self.model_cfg.pooling
        return F.mse_loss(pool_tokens(preds, mode).float(), pool_tokens(targets, mode).float())

    def sigreg_loss(
        self,
        pooled: Tensor,
        tokens: Tensor,
        step: int,
        seed: int,
        reduce_fn: ReduceFn | None,
        out: dict[str, Tensor],
    ) -> tuple[Tensor, Tensor]:
        """``(SIGReg term, the tensor it regularizes)`` per ``loss.sigreg_on``."""
        cfg = self.loss_cfg
        directions = sample_directions(self.d_model, cfg.num_slices, seed, step, pooled.device)
        flat_tokens = tokens.reshape(-1, tokens.shape[-1])

        def _sig(z: Tensor) -> Tensor:
            return sigreg(z, directions, cfg.num_knots, cfg.t_max, reduce_fn)

        # ``loss.sigreg_pooling``: regularize the probed pooling (same) or another one
        # (e.g. the mean of tokens while the probes read the last token).
        z_pool = self.sigreg_pooled(pooled, tokens)
        if cfg.sigreg_on == "pooled":
            return _sig(z_pool), z_pool
        if cfg.sigreg_on == "tokens":
            return _sig(flat_tokens), flat_tokens
        sig_p, sig_t = _sig(z_pool), _sig(flat_tokens)
        out["sigreg_pooled"], out["sigreg_tokens"] = sig_p.detach(), sig_t.detach()
        return 0.5 * (sig_p + sig_t), flat_tokens

    def add_auxiliary_losses(
        self,
        loss: Tensor,
        pooled: Tensor,
        tokens: Tensor,
        preds: Tensor,
        targets: Tensor,
        target_bars: Tensor,
        future: tuple[Tensor, Tensor] | None,
        out: dict[str, Tensor],
    ) -> Tensor:
        """``loss`` plus the enabled auxiliary losses, weighted (each also goes to ``out``)."""
        cfg = self.loss_cfg
        if self.aux_head is not None:
            p, f = self.spec.patch_len, self.n_features
            recon = self.aux_head(tokens[:, -1]).float()
            aux = F.mse_loss(recon, target_bars[:, :p].reshape(-1, p * f).float())
            loss = loss + cfg.aux_reconstruction * aux
            out["aux_recon"] = aux
        if cfg.aux_infonce > 0:
            nce = info_nce(preds.mean(dim=1), targets.mean(dim=1), cfg.infonce_temperature)
            loss = loss + cfg.aux_infonce * nce
            out["aux_infonce"] = nce
        if cfg.aux_slowness > 0:
            slow = slowness_loss(tokens, cfg.slowness_lag)
            loss = loss + cfg.aux_slowness * slow
            out["aux_slowness"] = slow
        if self.future_head is not None:
            if future is None:
                raise ValueError("loss.aux_future_mean > 0 needs the future span means")
            fut = future_mean_loss(self.future_head(pooled).float(), *future)
            loss = loss + cfg.aux_future_mean * fut
            out["aux_future_mean"] = fut
        return loss

    def add_session_contrast(
        self,
        loss: Tensor,
        pooled: Tensor,
        preds: Tensor,
        targets: Tensor,
        session: Tensor | None,
        out: dict[str, Tensor],
    ) -> Tensor:
        """``loss`` + s·same-session InfoNCE (``loss.aux_session_contrast`` = s > 0).

        Anchor: the predictor's output pooled over target patches (CPC: the prediction
        must pick its own future among the day's other futures) or the probed embedding
        ``z`` itself (``session_contrast_anchor=context``); positive and negatives: the
        target embeddings pooled over target patches.
        """
        cfg = self.loss_cfg
        if cfg.aux_session_contrast <= 0:
            return loss
        if session is None:
            raise ValueError("loss.aux_session_contrast > 0 needs each window's session id")
        anchor = preds.mean(dim=1) if cfg.session_contrast_anchor == "predictor" else pooled
        sc = session_contrast(
            anchor, targets.mean(dim=1), session, cfg.session_contrast_temperature
        )
        out["aux_session_contrast"] = sc
        return loss + cfg.aux_session_contrast * sc

    def add_view_invariance(
        self, loss: Tensor, pooled: Tensor, context: Tensor, out: dict[str, Tensor]
    ) -> Tensor:
        """``loss`` + v·view invariance (``loss.aux_view_invariance`` = v > 0): the probed
        embedding of the full window and of each channel view (``loss.view_channels``,
        other channels zeroed, with gradient) against their mean."""
        if self.view_keep is None:
            return loss
        views = [pooled]
        for keep in self.view_keep:
            views.append(self.embed(context * keep.to(context.dtype))[0])
        inv = view_invariance_loss(torch.stack(views, dim=1))
        out["aux_view_invariance"] = inv
        return loss + self.loss_cfg.aux_view_invariance * inv

    def mask_start(self, step: int, seed: int) -> int:
        """First patch of the masked block at ``step``: uniform on ``1 … C−M`` from
        ``(seed, step)``, so it is reproducible and the same on every DDP rank."""
        c, m = self.spec.context_patches, self.loss_cfg.context_mask_patches
        return int(np.random.default_rng([seed, step, MASK_STREAM]).integers(1, c - m + 1))

    def masked_block_loss(self, tokens: Tensor, step: int, seed: int) -> Tensor:
        """MSE of predicting context tokens ``[i, i+M)`` from tokens ``[0, i)``.

        With causal attention the tokens before ``i`` never saw the block; the block's own
        tokens (stop-gradient) are the targets, as the full-sequence target path's are.
        """
        m = self.loss_cfg.context_mask_patches
        i = self.mask_start(step, seed)
        dev = tokens.device
        known = torch.arange(i, device=dev)
        queries = torch.arange(i, i + m, device=dev)
        preds = self.predictor.predict_at(tokens[:, :i], known, queries)
        return F.mse_loss(preds.float(), tokens[:, i : i + m].detach().float())

    @torch.no_grad()
    def update_ema(self, momentum: float | None = None) -> None:
        """``ξ ← m·ξ + (1 − m)·θ`` for every target-encoder parameter; no-op without EMA."""
        if self.target_encoder is None:
            return
        m = self.loss_cfg.ema_momentum if momentum is None else momentum
        for p_t, p in zip(self.target_encoder.parameters(), self.encoder.parameters(), strict=True):
            p_t.lerp_(p.detach(), 1.0 - m)
        for b_t, b in zip(self.target_encoder.buffers(), self.encoder.buffers(), strict=True):
            b_t.copy_(b)

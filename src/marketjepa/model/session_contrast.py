"""Temporal contrast within a trading session (optional auxiliary loss, issue #12).

``loss.aux_infonce`` (``infonce.py``) draws its negatives from the whole batch, i.e.
mostly from other days, which slow volatility level and the day alone can tell apart.
Here the negatives of an anchor are only the targets of the *other anchors of the same
session* in the batch (``train.anchors_per_session`` lays batches out as sessions × k
anchors), so what separates the positive from the negatives is intraday state: the
hidden regime and the fast volatility component (with ``loss.target_exclude=[calendar]``
time of day does not).

For anchors ``a_i`` (L2-normalized), targets ``t_i`` (L2-normalized), sessions ``s_i``
and the same-session sets ``N(i) = {j : s_j = s_i}`` (``i`` included)::

    ℓ_i = −log [ exp(a_i·t_i / τ) / Σ_{j ∈ N(i)} exp(a_i·t_j / τ) ]
    L   = mean of ℓ_i over the anchors with |N(i)| ≥ 2      (0 when there is none)

This is CPC's InfoNCE (van den Oord et al. 2018, Eq. 4: a prediction scored against its
own future among negatives) with the negatives restricted as in TS2Vec's temporal
contrastive loss (Yue et al. 2022, Eq. 1: the negatives of timestamp t are the other
timestamps of the *same* series). Pairs from different sessions never enter the
denominator: their logits are masked to −∞, so they get no gradient either.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def session_contrast(
    anchor: Tensor, target: Tensor, session: Tensor, temperature: float = 0.1
) -> Tensor:
    """Same-session InfoNCE of ``anchor [B, d]`` against ``target [B, d]``.

    ``session [B]`` holds each row's trading-day id; row ``i``'s positive is ``target[i]``
    and its negatives are the targets of the other rows with the same id.
    """
    if anchor.shape != target.shape or anchor.ndim != 2:
        raise ValueError(
            f"anchor and target must both be [B, d], got {tuple(anchor.shape)}, "
            f"{tuple(target.shape)}"
        )
    if session.shape != anchor.shape[:1]:
        raise ValueError(f"session must be [B] = [{anchor.shape[0]}], got {tuple(session.shape)}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    a = F.normalize(anchor.float(), dim=-1)
    t = F.normalize(target.float(), dim=-1)
    same = session[:, None] == session[None, :]
    logits = (a @ t.T / temperature).masked_fill(~same, float("-inf"))
    has_negative = same.sum(dim=1) > 1
    if not bool(has_negative.any()):
        return (a.sum() + t.sum()) * 0.0  # keeps the graph; no anchor has a negative
    per_anchor = torch.logsumexp(logits, dim=1) - logits.diagonal()
    return per_anchor[has_negative].mean()

"""InfoNCE between predicted and actual target embeddings (optional auxiliary loss).

The seed report's option 2 ("add a contrastive loss component"). For a batch of B
windows with predicted target embeddings ``p_i`` and actual target embeddings ``t_i``
(both pooled over target patches and L2-normalized), InfoNCE (van den Oord et al. 2018,
"Representation Learning with Contrastive Predictive Coding", Eq. 4) is::

    L = −(1/B) Σ_i log [ exp(p_i·t_i / τ) / Σ_j exp(p_i·t_j / τ) ]

i.e. cross-entropy of the similarity matrix ``P Tᵀ / τ`` against the diagonal: every other
window of the batch is a negative. Under DDP the negatives are the rank's local batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def info_nce(pred: Tensor, target: Tensor, temperature: float = 0.1) -> Tensor:
    """InfoNCE of ``pred`` [B, d] against ``target`` [B, d] (positives on the diagonal)."""
    if pred.shape != target.shape or pred.ndim != 2:
        raise ValueError(f"pred and target must both be [B, d], got {pred.shape}, {target.shape}")
    p = F.normalize(pred.float(), dim=-1)
    t = F.normalize(target.float(), dim=-1)
    logits = p @ t.T / temperature
    labels = torch.arange(p.shape[0], device=p.device)
    return F.cross_entropy(logits, labels)

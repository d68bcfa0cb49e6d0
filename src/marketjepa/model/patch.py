"""Patch embedding: P consecutive bars × F features → one d-dim token (DESIGN §3).

``x [B, n·P, F]`` is reshaped (a view, no copy) to ``[B, n, P·F]`` and mapped by one
``Linear(P·F → d)``, as in PatchTST (Nie et al., 2023) but with all channels in one token.

Optional RevIN-style normalization (Kim et al., 2022, "Reversible Instance
Normalization"): each window is standardized per feature with its *own* mean and std
over its bars, then a learned per-feature affine is applied. It is off by default since
features are already z-scored with train-day statistics; it only uses the bars of the
window itself, so it is causal with respect to the window's anchor.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class PatchEmbedding(nn.Module):
    def __init__(
        self, n_features: int, patch_len: int, d_model: int, revin: bool = False, eps: float = 1e-5
    ) -> None:
        super().__init__()
        self.n_features = n_features
        self.patch_len = patch_len
        self.revin = revin
        self.eps = eps
        if revin:
            self.revin_weight = nn.Parameter(torch.ones(n_features))
            self.revin_bias = nn.Parameter(torch.zeros(n_features))
        self.proj = nn.Linear(patch_len * n_features, d_model)

    def forward(self, x: Tensor) -> Tensor:
        """``[B, n·P, F]`` → ``[B, n, d]``."""
        if x.ndim != 3 or x.shape[-1] != self.n_features or x.shape[1] % self.patch_len:
            raise ValueError(
                f"expected input [B, n·{self.patch_len}, {self.n_features}], got {tuple(x.shape)}"
            )
        if self.revin:
            mean = x.mean(dim=1, keepdim=True)
            std = (x.var(dim=1, keepdim=True, unbiased=False) + self.eps).sqrt()
            x = (x - mean) / std * self.revin_weight + self.revin_bias
        b, length, f = x.shape
        return self.proj(x.reshape(b, length // self.patch_len, self.patch_len * f))

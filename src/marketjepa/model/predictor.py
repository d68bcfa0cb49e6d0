"""JEPA predictor: context tokens + target-position queries → target-patch embeddings.

A narrower pre-LN transformer (``predictor_d_model``, ``predictor_layers``,
``predictor_heads``, MLP 4×) as in I-JEPA (Assran et al., 2023): context tokens are
projected to the predictor width and tagged with their positions ``0 … C−1``; one learned
query token per target patch is tagged with its absolute position ``C+G … C+G+T−1`` (so
the context–target gap is visible to the predictor); after the blocks, the query
outputs are projected back to ``d``. Every target patch is one horizon.
With ``model.predictor_input = pooled`` the predictor sees only the pooled context
embedding (one token at position ``C−1``) instead of all context tokens: a bottleneck
that makes the probed embedding itself carry whatever predicts the targets.
Positions follow ``model.positions`` (a learned table over ``C+G+T`` positions, or rotary
with the same absolute ids).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from marketjepa.config import ModelConfig
from marketjepa.data.windows import WindowSpec
from marketjepa.model.encoder import Block, Rotary


class Predictor(nn.Module):
    def __init__(self, spec: WindowSpec, cfg: ModelConfig) -> None:
        super().__init__()
        self.spec = spec
        c, g, t = spec.context_patches, spec.gap_patches, spec.target_patches
        pd = cfg.predictor_d_model
        self.in_proj = nn.Linear(cfg.d_model, pd)
        self.query = nn.Parameter(torch.randn(pd) * 0.02)
        self.pooled_input = cfg.predictor_input == "pooled"
        ctx_pos = torch.tensor([c - 1]) if self.pooled_input else torch.arange(c)
        positions = torch.cat([ctx_pos, torch.arange(c + g, c + g + t)])
        self.register_buffer("positions", positions, persistent=False)
        if cfg.positions == "learned":
            self.pos = nn.Parameter(torch.randn(c + g + t, pd) * 0.02)
            self.rotary = None
        else:
            self.pos = None
            self.rotary = Rotary(pd // cfg.predictor_heads)
        self.blocks = nn.ModuleList(
            Block(pd, cfg.predictor_heads, 4 * pd, cfg.dropout) for _ in range(cfg.predictor_layers)
        )
        self.ln_f = nn.LayerNorm(pd)
        self.out_proj = nn.Linear(pd, cfg.d_model)

    def forward(self, context_tokens: Tensor) -> Tensor:
        """``[B, C, d]`` (``[B, 1, d]``: the pooled embedding with ``predictor_input =
        pooled``) → predicted target-patch embeddings ``[B, T, d]``."""
        b, c, _ = context_tokens.shape
        expect = 1 if self.pooled_input else self.spec.context_patches
        if c != expect:
            raise ValueError(f"predictor expects {expect} context tokens, got {c}")
        return self._run(context_tokens, self.positions)

    def predict_at(self, tokens: Tensor, known: Tensor, queries: Tensor) -> Tensor:
        """Embeddings at positions ``queries [m]`` from ``tokens [B, n, d]`` at positions
        ``known [n]`` (block-masked targets inside the context, ``loss.context_mask_patches``)."""
        if tokens.shape[1] != known.numel():
            raise ValueError(f"{tokens.shape[1]} tokens for {known.numel()} positions")
        return self._run(tokens, torch.cat([known, queries]).to(self.positions.device))

    def _run(self, tokens: Tensor, positions: Tensor) -> Tensor:
        b, n, _ = tokens.shape
        m = positions.numel() - n
        h = torch.cat([self.in_proj(tokens), self.query.expand(b, m, -1)], dim=1)
        rope = None
        if self.pos is not None:
            h = h + self.pos[positions]
        else:
            rope = self.rotary(positions)
        for block in self.blocks:
            h = block(h, rope)
        return self.out_proj(self.ln_f(h[:, n:]))

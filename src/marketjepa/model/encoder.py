"""Patch transformer encoder (DESIGN §3).

Patches (:mod:`marketjepa.model.patch`) → positions (learned table or rotary) → pre-LN
transformer blocks (Xiong et al., 2020: ``x + Attn(LN(x))``, ``x + MLP(LN(x))``, GELU
MLP) → final LayerNorm → tokens ``[B, n, d]``. A window's embedding pools the tokens:
the last token (the patch ending at the anchor bar) or their mean.

Attention is bidirectional within a window by default: the whole context is past data
as of its anchor, so no token sees anything after the anchor. With ``model.causal`` token
``i`` attends to patches ``≤ i`` only, so every token (the last one in particular) is a
filter of the window up to its own patch, and a pass over context+gap+target gives the
context tokens exactly as a pass over the context alone would (the full-sequence target
path relies on this, issue #12).

Input options (issue #12, :mod:`marketjepa.model.inputs`): ``model.input_exclude`` zeroes
given feature columns before the patch embedding; ``model.session_mask`` confines
attention to a token's own trading session — bars of an earlier session than a patch's
last bar are zeroed, and token ``i`` attends to token ``j`` only when both patches end in
the same session (and ``j ≤ i`` when causal). The last token, the probed embedding, thus
ignores everything before the last open in the window, as the Bayes filter of the
planted regime (which restarts at every open) does.

Rotary positions (Su et al., 2021, RoFormer) rotate query/key pairs by ``pos·θ_i``,
``θ_i = 10000^{−2i/h}``; they take arbitrary integer position ids, which the predictor
uses for target positions after the context–target gap.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from marketjepa.config import ModelConfig
from marketjepa.data.windows import WindowSpec
from marketjepa.model.inputs import bar_sessions, keep_mask, session_clock_column
from marketjepa.model.patch import PatchEmbedding


class Rotary(nn.Module):
    """cos/sin tables of rotary position embeddings for a head dimension ``h`` (even)."""

    def __init__(self, head_dim: int, base: float = 10000.0) -> None:
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"rotary positions need an even head dimension, got {head_dim}")
        inv_freq = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, positions: Tensor) -> tuple[Tensor, Tensor]:
        """``positions [L]`` → ``(cos, sin)`` each ``[L, h/2]``."""
        angles = positions.to(self.inv_freq.dtype)[:, None] * self.inv_freq[None, :]
        return angles.cos(), angles.sin()


def apply_rotary(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate consecutive halves ``(x1, x2)`` of the last dim of ``x [B, H, L, h]``."""
    x1, x2 = x.chunk(2, dim=-1)
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


class SelfAttention(nn.Module):
    def __init__(self, d_model: int, n_heads: int, dropout: float, causal: bool = False) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.causal = causal
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.dropout = dropout

    def forward(
        self,
        x: Tensor,
        rope: tuple[Tensor, Tensor] | None = None,
        mask: Tensor | None = None,
    ) -> Tensor:
        """``mask [B, 1, L, L]`` (True = may attend) replaces the causal flag when given
        (the caller folds causality into it)."""
        b, length, d = x.shape
        q, k, v = self.qkv(x).view(b, length, 3, self.n_heads, d // self.n_heads).unbind(2)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # [B, H, L, h]
        if rope is not None:
            q, k = apply_rotary(q, *rope), apply_rotary(k, *rope)
        y = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=mask,
            dropout_p=self.dropout if self.training else 0.0,
            is_causal=self.causal and mask is None,
        )
        return self.out(y.transpose(1, 2).reshape(b, length, d))


class Block(nn.Module):
    """Pre-LN transformer block."""

    def __init__(
        self, d_model: int, n_heads: int, ff_dim: int, dropout: float, causal: bool = False
    ) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model)
        self.attn = SelfAttention(d_model, n_heads, dropout, causal)
        self.ln2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, ff_dim), nn.GELU(), nn.Linear(ff_dim, d_model))
        self.drop = nn.Dropout(dropout)

    def forward(
        self,
        x: Tensor,
        rope: tuple[Tensor, Tensor] | None = None,
        mask: Tensor | None = None,
    ) -> Tensor:
        x = x + self.drop(self.attn(self.ln1(x), rope, mask))
        return x + self.drop(self.mlp(self.ln2(x)))


def pool_tokens(tokens: Tensor, mode: str) -> Tensor:
    """``[B, n, d]`` → ``[B, d]``: ``'last'`` token or ``'mean'`` over tokens."""
    if mode == "last":
        return tokens[:, -1]
    if mode == "mean":
        return tokens.mean(dim=1)
    raise ValueError(f"unknown pooling {mode!r}; use 'last' or 'mean'")


class PatchEncoder(nn.Module):
    """Window ``[B, n·P, F]`` → tokens ``[B, n, d]``; :meth:`pool` → ``[B, d]``.

    ``n_patches`` (default ``spec.context_patches``) is the longest window the learned
    position table covers; shorter windows (e.g. a target of T < C patches) use its
    first rows. Rotary positions have no such limit. ``feature_names`` (the run's input
    columns) is needed only by ``model.input_exclude`` and ``model.session_mask``.
    """

    def __init__(
        self,
        n_features: int,
        spec: WindowSpec,
        cfg: ModelConfig,
        n_patches: int | None = None,
        feature_names: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        keep = keep_mask(cfg.input_exclude, feature_names, n_features, "model.input_exclude")
        # Derived from the config and the feature names, so not part of the state dict.
        self.register_buffer("input_keep", keep, persistent=False)
        self.session_column = session_clock_column(feature_names) if cfg.session_mask else None
        self.n_features = n_features
        self.spec = spec
        self.cfg = cfg
        self.d_model = cfg.d_model
        self.n_patches = spec.context_patches if n_patches is None else n_patches
        self.pooling = cfg.pooling
        self.patch = PatchEmbedding(n_features, spec.patch_len, cfg.d_model, revin=cfg.revin)
        if cfg.positions == "learned":
            self.pos = nn.Parameter(torch.randn(self.n_patches, cfg.d_model) * 0.02)
            self.rotary = None
        else:
            self.pos = None
            self.rotary = Rotary(cfg.d_model // cfg.n_heads)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(
            Block(cfg.d_model, cfg.n_heads, cfg.ff_dim, cfg.dropout, cfg.causal)
            for _ in range(cfg.n_layers)
        )
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self._init_weights()

    def _init_weights(self) -> None:
        # GPT-2 style: small normal weights, residual projections scaled by depth.
        for name, p in self.named_parameters():
            if p.ndim == 2 and name != "pos":
                nn.init.normal_(p, std=0.02)
                if name.endswith(("attn.out.weight", "mlp.2.weight")):
                    p.data.mul_(1.0 / math.sqrt(2 * self.cfg.n_layers))
            elif name.endswith(".bias") and "ln" not in name:
                nn.init.zeros_(p)

    def forward(self, x: Tensor) -> Tensor:
        mask = None
        if self.session_column is not None:
            x, mask = self._session_confine(x)
        if self.input_keep is not None:
            x = x * self.input_keep.to(x.dtype)
        h = self.patch(x)
        n = h.shape[1]
        rope = None
        if self.pos is not None:
            if n > self.n_patches:
                raise ValueError(
                    f"window has {n} patches but the learned position table covers {self.n_patches}"
                )
            h = h + self.pos[:n]
        else:
            rope = self.rotary(torch.arange(n, device=h.device))
        h = self.drop(h)
        for block in self.blocks:
            h = block(h, rope, mask)
        return self.ln_f(h)

    def _session_confine(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Zero the bars of an earlier session than their patch's last bar; the attention
        mask ``[B, 1, n, n]``: same session as the query's patch (and not later, if causal)."""
        b, length, f = x.shape
        p = self.spec.patch_len
        if length % p:
            raise ValueError(f"expected input [B, n·{p}, {self.n_features}], got {tuple(x.shape)}")
        bars = bar_sessions(x[:, :, self.session_column]).view(b, length // p, p)
        patch = bars[:, :, -1]  # [B, n]: the session a patch ends in
        x = x * (bars == patch[:, :, None]).reshape(b, length, 1).to(x.dtype)
        mask = patch[:, :, None] == patch[:, None, :]
        if self.cfg.causal:
            n = patch.shape[1]
            mask = mask & torch.ones(n, n, dtype=torch.bool, device=x.device).tril()
        return x, mask[:, None]

    def pool(self, tokens: Tensor, mode: str | None = None) -> Tensor:
        """Window embedding ``[B, d]`` (``mode`` overrides ``cfg.pooling``)."""
        return pool_tokens(tokens, mode or self.pooling)

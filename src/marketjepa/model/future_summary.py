"""Long-horizon "future summary" auxiliary: regress future feature means from the embedding.

For a window whose last context bar (the anchor) is row ``a`` and a span of ``h`` bars,
the target is the mean of every input feature over the *next* ``h`` bars::

    y[a, h] = (1/h) Σ_{i=a+1}^{a+h} x_i                                  [F]
    valid[a, h] = rows a+1 … a+h lie in the session (trading day) and split of row a

Spans that cross the session close (or the end of the data / split) are masked, never
truncated: the planted market's hidden regime resets at each open, and a mean over the
overnight jump would mix two days. With the embedding ``z`` (the pooled/probed one) and a
head ``ŷ = head(z)`` (linear, or a one-hidden-layer MLP) emitting ``S`` spans × ``F``
features, the loss over a batch of ``B`` windows is::

    L = Σ_{b,s} m_{b,s} · (1/F) ‖ŷ_{b,s} − y_{b,s}‖²  /  max(1, Σ_{b,s} m_{b,s})

with ``m`` the validity mask (masked MSE; 0 when nothing is valid). Why: when the
per-bar evidence channels have regime-dependent means, ``E[y | past]`` is (close to) a
linear function of the filtered regime posterior, so the best predictor of long-span
means must carry the Bayes filter's state — which latent targets of short patches do not
demand. The targets are the future: only the context window enters the encoder, the
targets are read from rows after the anchor.

:class:`FutureMeans` computes ``y`` and ``valid`` for any anchors from one float64
prefix sum over the feature array (no ``[N, S, F]`` table is stored), optionally
standardized per span and feature with training-split moments.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn


def future_mean_loss(pred: Tensor, target: Tensor, valid: Tensor) -> Tensor:
    """Masked MSE ``Σ m·mean_F((ŷ − y)²) / max(1, Σ m)`` of ``pred``/``target`` [B, S, F]
    under ``valid`` [B, S] (bool); see the module docstring."""
    if pred.shape != target.shape or pred.ndim != 3 or valid.shape != pred.shape[:2]:
        raise ValueError(
            f"pred/target must be [B, S, F] and valid [B, S]; got {tuple(pred.shape)}, "
            f"{tuple(target.shape)}, {tuple(valid.shape)}"
        )
    m = valid.to(torch.float32)
    # where(): a masked target may be anything (NaN included) without poisoning the sum.
    err = torch.where(valid[..., None], pred.float() - target.float(), 0.0)
    per = err.square().mean(dim=-1)
    return (per * m).sum() / m.sum().clamp_min(1.0)


class FutureMeanHead(nn.Module):
    """``[B, d] → [B, S, F]``: linear, or Linear–GELU–Linear (``hidden`` units)."""

    def __init__(
        self, d_model: int, n_spans: int, n_features: int, kind: str = "linear", hidden: int = 128
    ) -> None:
        super().__init__()
        self.n_spans, self.n_features = n_spans, n_features
        out = n_spans * n_features
        if kind == "linear":
            self.net: nn.Module = nn.Linear(d_model, out)
        elif kind == "mlp":
            self.net = nn.Sequential(nn.Linear(d_model, hidden), nn.GELU(), nn.Linear(hidden, out))
        else:
            raise ValueError(f"unknown future-mean head {kind!r}; use 'linear' or 'mlp'")

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z).reshape(z.shape[0], self.n_spans, self.n_features)


class FutureMeans:
    """Future span means and their validity at given anchor rows (module docstring).

    ``features [N, F]``, ``session [N]`` (trading-day index, contiguous runs in row
    order), ``split [N]``; ``spans`` in bars; ``columns`` the feature columns whose means
    are targets (``None`` = all). Both ``session`` and ``split`` are compared
    at the anchor and at the span's last row: rows are in time order and a day lies in
    one split, so equal endpoints mean the whole span is inside the anchor's day.

    ``standardize``: return ``(y − μ_{s,f}) / σ_{s,f}`` with the mean and standard
    deviation of each span's target over every valid anchor of the *training* split
    (``split == 0``; no validation or test row is read). Without it, the span mean of a
    feature without persistence (a per-bar return) has ~1/h of a persistent feature's
    variance, and the MSE is ruled by the persistent features the current bar already
    predicts.
    """

    def __init__(
        self,
        features: np.ndarray,
        session: np.ndarray,
        split: np.ndarray,
        spans: Sequence[int],
        device: str | torch.device = "cpu",
        columns: Sequence[int] | None = None,
        standardize: bool = False,
    ) -> None:
        x = np.asarray(features, dtype=np.float64)
        if columns is not None and x.ndim == 2:
            x = x[:, list(columns)]
        session, split = np.asarray(session), np.asarray(split)
        if x.ndim != 2 or session.shape != (x.shape[0],) or split.shape != (x.shape[0],):
            raise ValueError(
                f"features must be [N, F] with session and split [N]; got {x.shape}, "
                f"{session.shape}, {split.shape}"
            )
        if not spans or any(int(h) < 1 for h in spans):
            raise ValueError(f"future-mean spans must be a non-empty list of ints >= 1: {spans}")
        self.spans = [int(h) for h in spans]
        self.n_rows = x.shape[0]
        cs = np.zeros((x.shape[0] + 1, x.shape[1]), dtype=np.float64)
        np.cumsum(x, axis=0, out=cs[1:])
        self.device = torch.device(device)
        self._cs = torch.as_tensor(cs, device=self.device)
        self._session = torch.as_tensor(session.astype(np.int64), device=self.device)
        self._split = torch.as_tensor(split.astype(np.int64), device=self.device)
        self._mu: Tensor | None = None
        self._sd: Tensor | None = None
        if standardize:
            self._mu, self._sd = self._train_moments(np.flatnonzero(split == 0))

    def _train_moments(self, rows: np.ndarray) -> tuple[Tensor, Tensor]:
        """Per-(span, feature) mean and std ``[S, F]`` of the valid targets at ``rows``."""
        n_feat = self._cs.shape[1]
        s1 = torch.zeros(len(self.spans), n_feat, dtype=torch.float64, device=self.device)
        s2 = s1.clone()
        cnt = torch.zeros(len(self.spans), 1, dtype=torch.float64, device=self.device)
        for i in range(0, rows.size, 65536):
            y, v = self._raw(rows[i : i + 65536])
            m = v[..., None].to(torch.float64)
            s1 += (y * m).sum(0)
            s2 += (y.square() * m).sum(0)
            cnt += m.sum(0)
        if bool((cnt == 0).any()):
            raise ValueError("a future-mean span has no valid training anchor (span > a session?)")
        mu = s1 / cnt
        sd = (s2 / cnt - mu.square()).clamp_min(0).sqrt()
        return mu, torch.where(sd > 1e-8, sd, torch.ones_like(sd))

    def __call__(self, anchors: np.ndarray | Tensor) -> tuple[Tensor, Tensor]:
        """``(targets [B, S, F] float32, valid [B, S] bool)`` for anchor rows ``[B]``."""
        y, valid = self._raw(anchors)
        if self._mu is not None and self._sd is not None:
            y = (y - self._mu) / self._sd
        return y.float(), valid

    def _raw(self, anchors: np.ndarray | Tensor) -> tuple[Tensor, Tensor]:
        a = torch.as_tensor(anchors, dtype=torch.long, device=self.device)
        ys, ms = [], []
        for h in self.spans:
            end = (a + h).clamp_max(self.n_rows - 1)  # last row of the span (clamped)
            valid = (
                (a + h < self.n_rows)
                & (self._session[end] == self._session[a])
                & (self._split[end] == self._split[a])
            )
            ys.append((self._cs[end + 1] - self._cs[a + 1]) / h)
            ms.append(valid)
        return torch.stack(ys, dim=1), torch.stack(ms, dim=1)

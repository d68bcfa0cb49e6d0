"""Collapse watchdog: stop pretraining early when embeddings collapse (DESIGN §4).

Only scale-invariant measures are used, so a healthy encoder whose embeddings merely
shrink or grow is never flagged (the seed's absolute per-dim variance 0.0033 could not
tell collapse from unit-norm embeddings in 256 dims):

- RankMe / d — effective rank ``exp(H(σ/‖σ‖₁))`` of the embedding matrix (Garrido et al.
  2023, eq. 1) over the dimension; ~1 for an isotropic spread, 1/d for rank one.
- normalized variance — ``Σ_k Var(z_k) / E‖z‖²``; 1 when the embeddings are centered,
  → 0 when all windows map to (almost) the same point, at any scale.

An epoch is *collapsing* when, on the tensor SIGReg regularizes (``sig_``) or the tensor
the probes use (``probe_``), either measure is below its threshold. ``patience_epochs``
consecutive collapsing epochs stop the run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from marketjepa.config import WatchdogConfig

TENSORS = {"sig_": "SIGReg tensor", "probe_": "probe tensor"}


def collapse_reasons(row: dict[str, Any], cfg: WatchdogConfig) -> list[str]:
    """Threshold crossings of one epoch's diagnostics row (empty list = healthy)."""
    reasons = []
    for prefix, name in TENSORS.items():
        rr = row.get(f"{prefix}rankme_ratio")
        nv = row.get(f"{prefix}norm_var")
        if rr is not None and not math.isnan(rr) and rr < cfg.min_rankme_ratio:
            reasons.append(f"{name} RankMe/d {rr:.3f} < {cfg.min_rankme_ratio}")
        if nv is not None and not math.isnan(nv) and nv < cfg.min_normalized_variance:
            reasons.append(f"{name} normalized variance {nv:.3f} < {cfg.min_normalized_variance}")
    return reasons


@dataclass
class CollapseWatchdog:
    """Counts consecutive collapsing epochs; ``update`` says when to stop."""

    cfg: WatchdogConfig
    streak: int = 0
    reasons: list[str] = field(default_factory=list)

    def update(self, row: dict[str, Any]) -> bool:
        """Feed one epoch's metrics row; True when the run should stop as collapsed."""
        self.reasons = collapse_reasons(row, self.cfg)
        self.streak = self.streak + 1 if self.reasons else 0
        return self.stopped

    @property
    def stopped(self) -> bool:
        """True when the last update already asked to stop (e.g. restored on resume)."""
        return self.cfg.enabled and self.streak >= self.cfg.patience_epochs

    @property
    def message(self) -> str:
        return (
            f"embeddings collapsed for {self.streak} consecutive epoch(s): "
            + "; ".join(self.reasons)
            + " — try a larger loss.lambda_sigreg, loss.ema=false, or a context-target gap"
        )

    def state_dict(self) -> dict[str, Any]:
        return {"streak": self.streak, "reasons": list(self.reasons)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.streak = int(state["streak"])
        self.reasons = list(state["reasons"])

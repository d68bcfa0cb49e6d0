"""Learning-rate schedule: linear warmup, then cosine decay to a floor.

A pure function of the step, so resuming a run needs only the step counter (no
scheduler object to checkpoint)::

    lr(s) = base · (s + 1) / W                                        s < W
    lr(s) = base · (m + (1 − m) · ½ (1 + cos(π · (s − W) / (S − W))))    W ≤ s < S

with ``W = round(warmup_frac · S)`` warmup steps, ``S`` total steps and ``m`` the
floor as a fraction of ``base`` (``min_lr_frac``).
"""

from __future__ import annotations

import math


def lr_at(
    step: int, total_steps: int, base_lr: float, warmup_frac: float, min_lr_frac: float
) -> float:
    """Learning rate for optimizer step ``step`` (0-based) of ``total_steps``."""
    total = max(int(total_steps), 1)
    warmup = min(int(round(warmup_frac * total)), total - 1)
    if step < warmup:
        return base_lr * (step + 1) / warmup
    progress = min((step - warmup) / max(total - warmup, 1), 1.0)
    cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
    return base_lr * (min_lr_frac + (1.0 - min_lr_frac) * cosine)

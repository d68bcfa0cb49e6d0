"""Intraday seasonality: U-shaped multipliers of volatility and volume over the session.

For a bar ``m`` minutes after the open of a session of ``M`` minutes::

    u(m) = 1 + A_open · exp(−m / τ_open) + A_close · exp(−(M − 1 − m) / τ_close)

Midday ``u ≈ 1``. With the defaults below the mean of ``u`` over the first 30 minutes is
≈ 2.5× midday for volatility (≈ 4× for volume) and over the last 30 minutes ≈ 1.5× (≈ 3×
for volume), the stylized facts of 1-minute US equity data. Half days (``M = 210``) get
the same shape anchored at their own close.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class UShape:
    open_amp: float
    open_tau: float
    close_amp: float
    close_tau: float

    def __call__(self, minute: np.ndarray, session_minutes: np.ndarray) -> np.ndarray:
        m = np.asarray(minute, dtype=np.float64)
        to_close = np.maximum(np.asarray(session_minutes, dtype=np.float64) - 1.0 - m, 0.0)
        return (
            1.0
            + self.open_amp * np.exp(-m / self.open_tau)
            + self.close_amp * np.exp(-to_close / self.close_tau)
        )


# Mean over 30 min of exp(−m/τ) is (τ/30)(1 − e^{−30/τ}); amplitudes solve for the targets.
VOL_SHAPE = UShape(open_amp=2.6, open_tau=20.0, close_amp=1.6, close_tau=10.0)
VOLUME_SHAPE = UShape(open_amp=5.8, open_tau=20.0, close_amp=4.6, close_tau=15.0)

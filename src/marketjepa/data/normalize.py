"""Per-feature normalization fitted on training rows only (DESIGN §2.1).

``z = clip((x − center) / scale, −clip_z, clip_z)``, NaN (masked/undefined) → 0.

* ``robust``: center = median, scale = IQR / 1.349 (the IQR of a normal is 1.349 σ, so
  the result is in σ units for Gaussian data).
* ``standard``: center = mean, scale = standard deviation.

Statistics ignore NaN and use rows of the train split only, so they are identical whether
or not validation/test days exist. A degenerate scale (IQR 0, e.g. a mostly-constant
feature) falls back to the standard deviation, then to 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from marketjepa.artifacts import read_json, write_json

IQR_TO_SIGMA = 1.3489795003921634


@dataclass
class Normalizer:
    method: str
    clip_z: float
    names: list[str]
    center: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(
        cls,
        x: np.ndarray,
        names: list[str],
        train_mask: np.ndarray,
        method: str = "robust",
        clip_z: float = 5.0,
    ) -> Normalizer:
        """Fit on ``x[train_mask]`` (NaN ignored)."""
        if method not in ("robust", "standard"):
            raise ValueError(f"unknown normalizer {method!r}")
        xt = x[np.asarray(train_mask, dtype=bool)]
        f = x.shape[1]
        center, scale = np.zeros(f), np.ones(f)
        for j in range(f):  # loop over features, not bars
            col = xt[:, j]
            col = col[np.isfinite(col)]
            if col.size == 0:
                continue
            sd = float(col.std())
            if method == "robust":
                q25, q50, q75 = np.quantile(col, [0.25, 0.5, 0.75])
                center[j], s = q50, (q75 - q25) / IQR_TO_SIGMA
            else:
                center[j], s = float(col.mean()), sd
            scale[j] = s if s > 1e-12 else (sd if sd > 1e-12 else 1.0)
        return cls(method, float(clip_z), list(names), center, scale)

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Normalized, clipped float32 copy; NaN → 0."""
        z = (x - self.center) / self.scale
        np.clip(z, -self.clip_z, self.clip_z, out=z)
        z[np.isnan(z)] = 0.0
        return z.astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "clip_z": self.clip_z,
            "fitted_on": "train",
            "features": {
                n: {"center": float(c), "scale": float(s)}
                for n, c, s in zip(self.names, self.center, self.scale, strict=True)
            },
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Normalizer:
        names = list(d["features"])
        return cls(
            d["method"],
            float(d["clip_z"]),
            names,
            np.array([d["features"][n]["center"] for n in names], dtype=np.float64),
            np.array([d["features"][n]["scale"] for n in names], dtype=np.float64),
        )

    def save(self, path: str | Path) -> None:
        write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> Normalizer:
        return cls.from_dict(read_json(path))

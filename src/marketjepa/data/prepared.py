"""Read a prepared dataset folder (``docs/architecture.md`` § "Prepared dataset")."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from marketjepa.artifacts import read_json
from marketjepa.errors import StageInputMissing


@dataclass
class PreparedData:
    """numpy views of ``dataset.parquet`` plus the manifest and normalization.

    ``features`` is one C-contiguous ``[N, F]`` float32 array (the array windows gather
    from); ``session`` is the 0-based trading-day index of each row; ``truth`` maps
    ``regime`` / ``filter_p*`` to arrays aligned with the rows (synthetic data only).
    """

    path: Path
    frame: pl.DataFrame
    features: np.ndarray
    feature_names: list[str]
    ts: np.ndarray
    session: np.ndarray
    split: np.ndarray
    label: np.ndarray
    fwd_ret: np.ndarray
    fwd_rv: np.ndarray
    sigma_h: np.ndarray
    close: np.ndarray
    options_valid: np.ndarray
    truth: dict[str, np.ndarray] | None
    manifest: dict[str, Any]
    normalization: dict[str, Any]

    @classmethod
    def load(cls, path: str | Path) -> PreparedData:
        path = Path(path)
        if not (path / "manifest.json").exists():
            raise StageInputMissing(
                f"no prepared dataset at {path} (manifest.json missing) — run "
                "`marketjepa prepare` first"
            )
        manifest = read_json(path / "manifest.json")
        frame = pl.read_parquet(path / "dataset.parquet")
        names = list(manifest["feature_names"])
        feats = np.ascontiguousarray(
            frame.select([f"f_{n}" for n in names]).to_numpy(), dtype=np.float32
        )
        truth = None
        if (path / "truth.parquet").exists():
            t = pl.read_parquet(path / "truth.parquet")
            truth = {c: t[c].to_numpy() for c in t.columns if c != "ts"}
        return cls(
            path=path,
            frame=frame,
            features=feats,
            feature_names=names,
            ts=frame["ts"].to_numpy(),
            session=(frame["session"].rank("dense").cast(pl.Int32) - 1).to_numpy(),
            split=frame["split"].to_numpy(),
            label=frame["label"].to_numpy(),
            fwd_ret=frame["fwd_ret"].to_numpy(),
            fwd_rv=frame["fwd_rv"].to_numpy(),
            sigma_h=frame["sigma_h"].to_numpy(),
            close=frame["close"].to_numpy(),
            options_valid=frame["options_valid"].to_numpy(),
            truth=truth,
            manifest=manifest,
            normalization=read_json(path / "normalization.json"),
        )

    @property
    def n_rows(self) -> int:
        return int(self.features.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.features.shape[1])

    def option_bars(self) -> pl.DataFrame | None:
        p = self.path / "option_bars.parquet"
        return pl.read_parquet(p) if p.exists() else None


def truth_arrays(truth: dict | None) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``(regime [n], Bayes-filter posterior [n, K])`` of a synthetic market's truth columns
    (``None`` where absent: real data has no truth, an old truth file no posterior)."""
    if not truth or "regime" not in truth:
        return None, None
    cols = sorted((k for k in truth if k.startswith("filter_p")), key=lambda k: int(k[8:]))
    filt = np.column_stack([np.asarray(truth[c]) for c in cols]) if cols else None
    return np.asarray(truth["regime"]), filt

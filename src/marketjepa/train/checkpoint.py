"""Checkpoints: atomic writes, ``weights_only`` loads, config stored as YAML text.

A checkpoint is a plain dict of tensors and Python scalars, so it loads with
``torch.load(weights_only=True)`` (no pickled classes)::

    format_version  int
    config_yaml     str     resolved Config (rebuilt with build_config)
    n_features      int
    feature_names   list of str or None (the input columns; options that select columns
                    need them to rebuild the model)
    model           state dict of LeJEPA (encoder, predictor, target encoder if EMA)
    optimizer       AdamW state dict            (last.pt only)
    epoch, step     int     completed epochs / optimizer steps
    rng             {"torch": ByteTensor, "cuda": [ByteTensor, ...]}
    history         list of per-epoch metric rows (metrics.csv)
    trainer         best-epoch and watchdog state

Writes go to a temp file in the same folder and are renamed over the target, so a
run killed mid-write never leaves a truncated ``last.pt``.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch
import yaml

from marketjepa.artifacts import atomic_path
from marketjepa.config import Config, build_config
from marketjepa.errors import MarketJepaError, StageInputMissing, StorageError

FORMAT_VERSION = 1


def checkpoint_path(run_dir: str | Path, which: str = "last") -> Path:
    return Path(run_dir) / "checkpoints" / f"{which}.pt"


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically (temp file + rename)."""
    payload = {"format_version": FORMAT_VERSION, **state}
    with atomic_path(path) as tmp:
        try:
            torch.save(payload, tmp)
        except RuntimeError as exc:  # torch's C++ writer reports a failed write this way
            if "write" not in str(exc).lower():
                raise
            raise StorageError(
                f"cannot write {path}: the write failed — check free disk space and permissions"
            ) from None


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``; clear errors for missing/corrupt files."""
    path = Path(path)
    if not path.exists():
        raise StageInputMissing(f"{path}: checkpoint not found — run `marketjepa pretrain` first")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, ValueError) as exc:
        raise MarketJepaError(f"{path}: not a readable checkpoint ({_reason(exc)})") from None
    if not isinstance(state, dict) or state.get("format_version") != FORMAT_VERSION:
        raise MarketJepaError(
            f"{path}: unsupported checkpoint format (expected format_version {FORMAT_VERSION})"
        )
    return state


def _reason(exc: Exception) -> str:
    """Why a load failed, without torch's advice to retry with ``weights_only=False``
    (that would unpickle arbitrary code from a file that is corrupt or not ours)."""
    text = str(exc)
    if "weights_only" in text or isinstance(exc, pickle.UnpicklingError):
        return (
            "it holds objects other than tensors and plain values, so it was not written by "
            "marketjepa or is corrupt; delete it and rerun the stage that writes it"
        )
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return f"corrupt or truncated: {first[:200]}; delete it and rerun the stage that writes it"


def config_from_checkpoint(state: dict[str, Any]) -> Config:
    return build_config(yaml.safe_load(state["config_yaml"]), origin="checkpoint config")


def load_model(
    run_dir: str | Path, which: str = "best", device: str | torch.device = "cpu"
) -> torch.nn.Module:
    """The LeJEPA model of ``run_dir/checkpoints/<which>.pt`` in eval mode on ``device``."""
    from marketjepa.data.windows import WindowSpec
    from marketjepa.model.jepa import LeJEPA

    state = load_checkpoint(checkpoint_path(run_dir, which), map_location="cpu")
    cfg = config_from_checkpoint(state)
    model = LeJEPA(
        int(state["n_features"]),
        WindowSpec.from_config(cfg.windows),
        cfg.model,
        cfg.loss,
        state.get("feature_names"),
    )
    model.load_state_dict(state["model"])
    return model.to(device).eval()

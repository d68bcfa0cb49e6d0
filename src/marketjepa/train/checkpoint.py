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

:class:`Checkpoints` is what the training loop uses: ``save_best`` / ``save_last`` write
those contents from a :class:`TrainState`, ``resume`` restores model, optimizer, RNG and
state from ``last.pt`` (refusing a checkpoint written for a different configuration).
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from marketjepa.artifacts import atomic_path, read_json
from marketjepa.config import Config, build_config
from marketjepa.data.windows import WindowSpec
from marketjepa.errors import MarketJepaError, StageInputMissing, StorageError
from marketjepa.model.jepa import LeJEPA
from marketjepa.train.watchdog import CollapseWatchdog

FORMAT_VERSION = 1
# Config keys that may change between a run and its resume.
RESUMABLE_CHANGES = {"device", "compile", "watchdog", "sweep_trials"}


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


def _comparable(cfg_dict: dict[str, Any]) -> dict[str, Any]:
    train = {k: v for k, v in cfg_dict["train"].items() if k not in RESUMABLE_CHANGES}
    return {
        "windows": cfg_dict["windows"],
        "model": cfg_dict["model"],
        "loss": cfg_dict["loss"],
    } | {"train": train}


def same_pretrain_config(cfg: Config, last: Path) -> bool:
    """Whether checkpoint ``last`` was written for ``cfg``'s pretraining configuration
    (the windows/model/loss/train sections, up to the keys a resume may change)."""
    old = config_from_checkpoint(load_checkpoint(last))
    return _comparable(old.to_dict()) == _comparable(cfg.to_dict())


@dataclass
class TrainState:
    """What the training loop carries between epochs (and ``last.pt`` restores)."""

    watchdog: CollapseWatchdog
    epoch: int = 0  # completed epochs
    step: int = 0  # completed optimizer steps
    history: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] | None = None  # {"epoch": int, "key": [int, float]}
    # The latent probe of the encoder before step 1 (synthetic data): the curve's baseline.
    latent_init: dict[str, float] | None = None
    status: str = "completed"
    message: str = ""


@dataclass
class Checkpoints:
    """``best.pt`` and ``last.pt`` of one run, and resuming from ``last.pt``."""

    run_dir: Path
    cfg: Config
    n_features: int
    feature_names: list[str] | None

    @property
    def last(self) -> Path:
        return checkpoint_path(self.run_dir, "last")

    @property
    def best(self) -> Path:
        return checkpoint_path(self.run_dir, "best")

    def _header(self, model: nn.Module, state: TrainState) -> dict[str, Any]:
        return {
            "config_yaml": yaml.safe_dump(self.cfg.to_dict(), sort_keys=False),
            "n_features": self.n_features,
            "feature_names": self.feature_names,
            "model": model.state_dict(),
            "epoch": state.epoch,
            "step": state.step,
        }

    def save_best(self, model: nn.Module, state: TrainState) -> None:
        """The model after ``state.epoch`` with that epoch's metrics row."""
        save_checkpoint(self.best, {**self._header(model, state), "metrics": state.history[-1]})

    def save_last(
        self, model: nn.Module, optimizer: torch.optim.Optimizer, state: TrainState
    ) -> None:
        """Everything a resume needs: model, optimizer, RNG states, history, trainer state."""
        cuda = next(model.parameters()).device.type == "cuda"
        save_checkpoint(
            self.last,
            {
                **self._header(model, state),
                "optimizer": optimizer.state_dict(),
                "rng": {
                    "torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state_all() if cuda else [],
                },
                "history": state.history,
                "trainer": {
                    "best": state.best,
                    "watchdog": state.watchdog.state_dict(),
                    "latent_init": state.latent_init,
                },
            },
        )

    def resume(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        state: TrainState,
        device: torch.device,
    ) -> dict[str, Any] | None:
        """Restore model, optimizer, RNG and ``state`` from ``last.pt``.

        Returns the run's ``pretrain.json`` instead (restoring nothing) when it already
        finished. After a watchdog stop was saved (killed before ``pretrain.json``) the
        state says all epochs are done, so the loop only writes the summary.
        """
        saved = load_checkpoint(self.last, map_location=device)
        old = config_from_checkpoint(saved)
        if (
            _comparable(old.to_dict()) != _comparable(self.cfg.to_dict())
            or saved["n_features"] != self.n_features
        ):
            raise MarketJepaError(
                f"{self.last}: cannot resume — the run was started with a different "
                "windows/model/loss/train configuration or feature set; start a new run"
            )
        summary = self.run_dir / "pretrain.json"
        if summary.exists():
            done = read_json(summary)
            if done.get("status") in ("completed", "collapsed"):
                return done
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        state.epoch, state.step = int(saved["epoch"]), int(saved["step"])
        state.history = list(saved["history"])
        state.best = saved["trainer"]["best"]
        state.latent_init = saved["trainer"].get("latent_init")
        state.watchdog.load_state_dict(saved["trainer"]["watchdog"])
        torch.set_rng_state(saved["rng"]["torch"].cpu())
        if device.type == "cuda" and saved["rng"]["cuda"]:
            torch.cuda.set_rng_state_all([s.cpu() for s in saved["rng"]["cuda"]])
        if state.watchdog.stopped:
            state.epoch = self.cfg.train.epochs
            state.status, state.message = "collapsed", state.watchdog.message
        return None

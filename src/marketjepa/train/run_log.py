"""What pretraining logs: ``metrics.csv``, TensorBoard scalars and the progress bar.

Only rank 0 logs; a :class:`RunLog` made with ``enabled=False`` does nothing, so the
loop calls it unconditionally. ``metrics.csv`` is rewritten from the full history each
epoch (atomic), so it is consistent after a resume.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

from torch.utils.tensorboard import SummaryWriter

from marketjepa.artifacts import EMBEDDING_STAT_KEYS, atomic_path
from marketjepa.console import make_progress

METRIC_COLUMNS = [
    "epoch",
    "step",
    "train_loss",
    "train_pred",
    "train_sigreg",
    "val_loss",
    "val_pred",
    "val_sigreg",
    "lr",
    *(f"sig_{k}" for k in EMBEDDING_STAT_KEYS),
    *(f"probe_{k}" for k in EMBEDDING_STAT_KEYS),
    "latent_acc",
    "latent_share",
    "seconds",
]
# Per-step scalars are written every this many steps (and at each epoch's last step).
STEP_LOG_EVERY = 10


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return repr(float(v)) if isinstance(v, float) else str(v)


def write_metrics_csv(path: Path, history: list[dict[str, Any]]) -> None:
    """Rewrite ``metrics.csv`` from the full history (atomic; consistent after resume)."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(METRIC_COLUMNS)
        for row in history:
            w.writerow([_fmt(row.get(c)) for c in METRIC_COLUMNS])


def log_tensorboard(writer: SummaryWriter | None, row: dict[str, Any]) -> None:
    """One epoch's metrics row as TensorBoard scalars (``epoch/*`` and ``diag/*``)."""
    if writer is None:
        return
    for k in METRIC_COLUMNS[2:]:
        v = row.get(k)
        if v is not None and not (isinstance(v, float) and math.isnan(v)):
            group = "diag" if k.startswith(("sig_", "probe_", "latent")) else "epoch"
            writer.add_scalar(f"{group}/{k}", float(v), row["step"])
    writer.flush()


class RunLog:
    """``metrics.csv``, ``tb/`` and the progress bar of one pretraining run."""

    def __init__(
        self, run_dir: Path, total_steps: int, epochs: int, step: int, enabled: bool
    ) -> None:
        self.metrics_path = run_dir / "metrics.csv"
        self.epochs = epochs
        self.writer = None
        self.progress = None
        if enabled:
            self.writer = SummaryWriter(str(run_dir / "tb"), purge_step=step if step else None)
            self.progress = make_progress()
            self.progress.start()
            self.task = self.progress.add_task(
                "pretrain", total=total_steps, completed=step, info=""
            )

    def step(self, step: int, epoch: int, last_in_epoch: bool, values: dict[str, float]) -> None:
        """After optimizer step ``step``: scalars to TensorBoard, the progress bar moved."""
        if self.writer is not None and (step % STEP_LOG_EVERY == 0 or last_in_epoch):
            self.writer.add_scalar("step/loss", values["loss"], step)
            self.writer.add_scalar("step/grad_norm", values["gradient norm"], step)
            self.writer.add_scalar("step/lr", values["lr"], step)
        if self.progress is not None:
            info = f"epoch {epoch + 1}/{self.epochs} loss {values['loss']:.4f}"
            self.progress.update(self.task, advance=1, info=info)

    def epoch(self, history: list[dict[str, Any]]) -> None:
        """After an epoch: ``metrics.csv`` from ``history``, its last row to TensorBoard."""
        write_metrics_csv(self.metrics_path, history)
        log_tensorboard(self.writer, history[-1])

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
        if self.writer is not None:
            self.writer.close()

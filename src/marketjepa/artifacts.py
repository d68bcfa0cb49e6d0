"""Run and data directory conventions (DESIGN §1): run dirs, manifests, atomic writes.

Layout of a run directory ``runs/<YYYYmmdd-HHMMSS>-<name>/``::

    config.yaml  manifest.json  stages.json  metrics.csv  tb/
    checkpoints/{last,best}.pt  embeddings/{train,val,test}.npz
    diagnostics.json  probes.json  policy/  backtest/  plots/  report.md  report.html
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import tempfile
from collections.abc import Iterable
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from marketjepa import __version__
from marketjepa.config import Config, save_config
from marketjepa.errors import StorageError, is_storage_error

# Scalar embedding statistics (a subset of model.collapse.embedding_stats) that
# pretraining logs per tensor as metrics.csv columns ``sig_<k>`` / ``probe_<k>`` and that
# the report reads back from metrics.csv and diagnostics.json.
EMBEDDING_STAT_KEYS = (
    "dim_var_mean",
    "dim_var_std",
    "dim_var_min",
    "mean_sq_norm",
    "norm_var",
    "rankme",
    "rankme_ratio",
    "dead_dims",
)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "isoformat"):
        return obj.isoformat()
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def to_jsonable(obj: Any) -> Any:
    """Round-trip through JSON so numpy scalars/arrays become plain Python."""
    return json.loads(json.dumps(obj, default=_json_default, allow_nan=True))


@contextmanager
def atomic_path(path: str | Path):
    """Yield a temp path in the same folder; rename it onto ``path`` on success only.

    An unwritable folder or a full disk becomes a one-line :class:`StorageError` naming
    ``path`` (the OS error of a failed ``write`` carries no file name).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        if is_storage_error(exc):
            raise StorageError.from_os_error(exc, path) from None
        raise
    os.close(fd)
    try:
        yield Path(tmp)
        # mkstemp creates 0600 files; give artifacts the usual umask-based mode.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except OSError as exc:
        if is_storage_error(exc):
            exc.filename = None  # the temp name means nothing to a user; name the target
            raise StorageError.from_os_error(exc, path) from None
        raise
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json(path: str | Path, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, default=_json_default, allow_nan=True) + "\n")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def files_fingerprint(paths: Iterable[str | Path]) -> str:
    """Cheap fingerprint of many input files: name, size and mtime (not content)."""
    h = hashlib.sha256()
    for p in sorted(Path(x) for x in paths):
        st = p.stat()
        h.update(f"{p.name}:{st.st_size}:{int(st.st_mtime_ns)}".encode())
    return h.hexdigest()[:16]


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def environment_info() -> dict[str, Any]:
    import torch

    device = "cpu"
    if torch.cuda.is_available():
        device = f"cuda ({torch.cuda.get_device_name(0)}) x{torch.cuda.device_count()}"
    return {
        "marketjepa_version": __version__,
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "platform": platform.platform(),
        "device": device,
        "created": datetime.now().isoformat(timespec="seconds"),
    }


def new_run_dir(cfg: Config, runs_dir: str | Path | None = None) -> Path:
    root = Path(runs_dir or cfg.runs_dir)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = root / f"{stamp}-{cfg.name}"
    run_dir, n = base, 1
    while True:
        try:
            run_dir.mkdir(parents=True)  # atomic claim: two runs started together differ
            break
        except FileExistsError:
            n += 1
            run_dir = Path(f"{base}-{n}")
        except OSError as exc:
            if is_storage_error(exc):
                raise StorageError.from_os_error(exc, run_dir) from None
            raise
    init_run_dir(run_dir, cfg)
    return run_dir


def init_run_dir(run_dir: Path, cfg: Config, inputs: dict[str, Any] | None = None) -> None:
    """Write the resolved config and the manifest (package, git, torch, device, seeds)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir / "config.yaml")
    manifest = {
        **environment_info(),
        "run_name": cfg.name,
        "preset": cfg.preset,
        "seeds": {
            "synth": cfg.synth.seed,
            "train": cfg.train.seed,
            "eval": cfg.eval.seed,
            "policy": cfg.policy.seed,
        },
        "inputs": inputs or {},
    }
    write_json(run_dir / "manifest.json", manifest)


def update_manifest(run_dir: Path, **fields: Any) -> None:
    path = run_dir / "manifest.json"
    manifest = read_json(path) if path.exists() else {}
    manifest.update(to_jsonable(fields))
    write_json(path, manifest)


def latest_run(runs_dir: str | Path = "runs") -> Path | None:
    root = Path(runs_dir)
    if not root.exists():
        return None
    runs = sorted(p for p in root.iterdir() if (p / "config.yaml").exists())
    return runs[-1] if runs else None

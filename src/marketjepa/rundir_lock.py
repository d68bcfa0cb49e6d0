"""One writer per run directory, and no temp files left over from killed processes.

``run`` and every stage command hold an exclusive lock on ``<run_dir>/.lock`` (an OS file
lock via ``filelock``: released by the kernel when the process dies, so a kill never leaves
a stale lock). A second process gets a one-line :class:`RunDirBusy` (exit 2) naming the
PID of the holder, read from ``<run_dir>/.lock.pid``.

Temp files: writes go to hidden temp names renamed into place (``artifacts.atomic_path``,
``data.prepare.write_prepared``, the synthetic generator). A process killed mid-write leaves
them behind. Whoever holds a run directory's lock is its only writer, so temp files in it
older than the running process are garbage; in the shared data folders a temp name carries
its writer's PID and is removed only when that process is gone.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from marketjepa.errors import RunDirBusy, StorageError

LOCK_NAME = ".lock"
PID_NAME = ".lock.pid"


def _process_start() -> float:
    """Wall-clock start of this process (Linux /proc), else this module's import time."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(
            float(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime")
        )
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return time.time()


# btime has one-second resolution: keep a second of margin before calling a file stale.
PROCESS_START = _process_start() - 1.0

# Hidden temp names written by this package: ``.<name>.<random>.tmp`` (atomic_path) and
# ``.<name>.{tmp,old,partial}-<pid>[-<ns>]`` (prepared datasets, synthetic markets).
_RUN_TEMP = re.compile(r"^\..+\.tmp$")
_DATA_TEMP = re.compile(r"^\..+\.(?:tmp|old|partial)-(?P<pid>\d+)(?:-\d+)?$")


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _older_than_process(path: Path) -> bool:
    try:
        return path.lstat().st_mtime < PROCESS_START
    except FileNotFoundError:
        return False


def clean_run_temps(run_dir: Path) -> list[Path]:
    """Remove temp files in ``run_dir`` (any depth) older than this process; call it
    only while holding the run directory's lock. Returns what was removed."""
    removed = []
    for path in Path(run_dir).rglob(".*"):
        if _RUN_TEMP.match(path.name) and path.is_file() and _older_than_process(path):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def clean_data_temps(folder: Path) -> list[Path]:
    """Remove temp folders/files in ``folder`` whose writer process is gone and that are
    older than this process (others may belong to a concurrent writer)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for path in folder.iterdir():
        m = _DATA_TEMP.match(path.name)
        if m and not _pid_alive(int(m["pid"])) and _older_than_process(path):
            _remove(path)
            removed.append(path)
    return removed


def _holder(run_dir: Path) -> str:
    try:
        pid = (run_dir / PID_NAME).read_text().strip()
    except OSError:
        pid = ""
    return f"PID {pid}" if pid.isdigit() else "another process"


def make_dir(path: str | Path) -> Path:
    """``mkdir -p`` with a one-line :class:`StorageError` when ``path`` cannot be created."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError.from_os_error(exc, path) from None
    return path


def check_creatable(path: str | Path) -> None:
    """Fail early (one-line :class:`StorageError`) when ``path`` could not be created,
    without creating anything: its nearest existing ancestor must be a writable folder."""
    path = Path(path)
    base = path.absolute()
    while not base.exists() and base != base.parent:
        base = base.parent
    if not base.is_dir():
        raise StorageError(
            f"cannot write {path}: Not a directory ({base} is a file) — choose another location"
        )
    if not os.access(base, os.W_OK | os.X_OK):
        raise StorageError(
            f"cannot write {path}: Permission denied on {base} — fix its permissions or "
            "choose another location"
        )


@contextmanager
def run_dir_lock(run_dir: str | Path) -> Iterator[Path]:
    """Hold ``run_dir`` exclusively for the ``with`` block; clean its stale temp files."""
    run_dir = make_dir(run_dir)
    lock = FileLock(run_dir / LOCK_NAME, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise RunDirBusy(
            f"run dir {run_dir} is in use by {_holder(run_dir)} (another marketjepa command "
            "writes there); wait for it to finish or use another --run-dir"
        ) from None
    except OSError as exc:
        raise StorageError.from_os_error(exc, run_dir / LOCK_NAME) from None
    try:
        (run_dir / PID_NAME).write_text(f"{os.getpid()}\n")
        clean_run_temps(run_dir)
        yield run_dir
    finally:
        lock.release()

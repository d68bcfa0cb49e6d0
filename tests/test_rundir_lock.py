"""One writer per run directory, stale temp cleanup, one-line storage errors (exit 2)."""

from __future__ import annotations

import errno
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from marketjepa.artifacts import init_run_dir, write_json
from marketjepa.cli import app
from marketjepa.config import load_config
from marketjepa.errors import RunDirBusy, StorageError
from marketjepa.rundir_lock import clean_data_temps, clean_run_temps, run_dir_lock

HOLD = (
    "import sys\n"
    "from marketjepa.rundir_lock import run_dir_lock\n"
    "with run_dir_lock(sys.argv[1]):\n"
    "    print('locked', flush=True)\n"
    "    sys.stdin.read()\n"
)


def _tiny(root: Path):
    return load_config(
        "tiny",
        overrides=[
            f"runs_dir={root / 'runs'}",
            f"data.prepared_dir={root / 'prepared'}",
            f"synth.out_dir={root / 'raw'}",
        ],
    )


def _hold_lock(run_dir: Path) -> subprocess.Popen:
    """A second process holding ``run_dir``'s lock until its stdin closes."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(run_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "locked"
    return proc


def _one_line(output: str) -> str:
    lines = [line for line in output.strip().splitlines() if line.strip()]
    assert len(lines) == 1, output
    return lines[0]


def test_second_writer_gets_one_line_error_naming_the_pid(tmp_path):
    cfg = _tiny(tmp_path)
    run_dir = tmp_path / "runs" / "shared"
    init_run_dir(run_dir, cfg)
    holder = _hold_lock(run_dir)
    try:
        runner = CliRunner()
        args = ["--preset", "tiny", "--run-dir", str(run_dir)]
        for command in (["run", *args], ["diagnose", str(run_dir)], ["report", str(run_dir)]):
            result = runner.invoke(app, command)
            assert result.exit_code == 2, (command, result.output)
            line = _one_line(result.output)
            assert f"run dir {run_dir} is in use by PID {holder.pid}" in line, line
        with pytest.raises(RunDirBusy):  # in-process callers get the same error
            with run_dir_lock(run_dir):
                pass
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    with run_dir_lock(run_dir):  # free again once the holder is gone
        pass


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    holder = _hold_lock(tmp_path / "run")
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=30)
    with run_dir_lock(tmp_path / "run"):
        pass


def _age(path: Path, seconds: float) -> None:
    t = time.time() - seconds
    os.utime(path, (t, t))


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(timeout=30)
    return proc.pid


def test_stale_temp_files_in_a_run_dir_are_removed_at_lock(tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    stale = run_dir / "checkpoints" / ".last.pt.k3j2.tmp"
    stale_json = run_dir / ".stages.json.x1.tmp"
    fresh = run_dir / ".metrics.csv.a9.tmp"  # younger than this process: not ours to judge
    keep = run_dir / "checkpoints" / "last.pt"
    for p in (stale, stale_json, fresh, keep):
        p.write_text("x")
    for p in (stale, stale_json, keep):
        _age(p, 3600)
    with run_dir_lock(run_dir):
        assert not stale.exists() and not stale_json.exists()
        assert fresh.exists() and keep.exists()
    assert clean_run_temps(run_dir) == []


def test_stale_data_temp_folders_are_removed_only_when_their_writer_is_gone(tmp_path):
    dead = _dead_pid()
    folders = {
        "dead_old": tmp_path / f".abc-123.tmp-{dead}-17",
        "dead_old_partial": tmp_path / f".d41d8cd98f00.partial-{dead}",
        "dead_old_swap": tmp_path / f".abc-123.old-{dead}-18",
        "alive_old": tmp_path / f".abc-123.tmp-{os.getpid()}-19",
        "dead_young": tmp_path / f".abc-456.tmp-{dead}-20",
        "dataset": tmp_path / "abc-123",
    }
    for name, folder in folders.items():
        folder.mkdir()
        (folder / "dataset.parquet").write_text("x")
        if name != "dead_young":
            _age(folder, 3600)
    removed = clean_data_temps(tmp_path)
    assert sorted(removed) == sorted(
        folders[k] for k in ("dead_old", "dead_old_partial", "dead_old_swap")
    )
    for k in ("alive_old", "dead_young", "dataset"):
        assert folders[k].exists(), k


def test_unwritable_run_and_data_dirs_are_one_line_exit_2(tmp_path):
    # A path under a regular file cannot be created, even by root (chmod would not stop root).
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    runner = CliRunner()
    data = ["--set", f"data.prepared_dir={tmp_path / 'prep'}", "--set", f"synth.out_dir={tmp_path}"]
    cases = [
        (["run", "--preset", "tiny", "--run-dir", str(blocker / "run"), *data], blocker / "run"),
        (["run", "--preset", "tiny", "--set", f"runs_dir={blocker / 'r'}", *data], blocker / "r"),
        (["synth", "--preset", "tiny", "--out", str(blocker / "raw" / "m")], blocker / "raw"),
        (
            [
                "run",
                "--preset",
                "tiny",
                "--until",
                "prepare",
                "--set",
                f"synth.out_dir={blocker / 'raw'}",
            ],
            blocker / "raw",
        ),
    ]
    for args, path in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        line = _one_line(result.output)
        assert re.search(f"cannot (write|use) {re.escape(str(path))}\\S*: Not a directory", line), (
            line
        )


def test_disk_full_at_the_write_layer_names_the_target(tmp_path, monkeypatch):
    def no_space(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Path, "write_text", no_space)
    target = tmp_path / "run" / "probes.json"
    with pytest.raises(StorageError) as info:
        write_json(target, {"a": 1})
    assert str(info.value).startswith(f"cannot write {target}: No space left on device")
    assert StorageError.exit_code == 2
    assert list((tmp_path / "run").iterdir()) == []  # the temp file is gone too


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through chmod")
def test_read_only_run_dir_is_one_line_exit_2(tmp_path):
    cfg = _tiny(tmp_path)
    run_dir = tmp_path / "runs" / "ro"
    init_run_dir(run_dir, cfg)
    run_dir.chmod(0o500)
    try:
        result = CliRunner().invoke(app, ["diagnose", str(run_dir)])
    finally:
        run_dir.chmod(0o700)
    assert result.exit_code == 2
    assert "Permission denied" in _one_line(result.output)

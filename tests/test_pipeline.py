"""`marketjepa run` resumes a killed pretrain of the same config, and says so."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from helpers.tiny import read_metrics
from marketjepa.config import load_config
from marketjepa.pipeline import run_pipeline
from marketjepa.train import run_log as pretrain_module

SMALL = [
    "synth.end=2022-03-31",
    "train.epochs=3",
    "train.max_steps_per_epoch=4",
    "train.max_val_windows=128",
]


def _cfg(root, runs: str):
    return load_config(
        "tiny",
        overrides=[
            f"runs_dir={root / runs}",
            f"data.prepared_dir={root / 'prepared'}",
            f"synth.out_dir={root / 'raw'}",
            *SMALL,
        ],
    )


def _without_time(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def test_run_resumes_an_interrupted_pretrain_with_identical_metrics(tmp_path, monkeypatch, capsys):
    cfg = _cfg(tmp_path, "runs")
    log = pretrain_module.log_tensorboard

    def interrupt_after_epoch_1(writer, row):  # Ctrl-C once epoch 1's last.pt is on disk
        log(writer, row)
        if row["epoch"] == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(pretrain_module, "log_tensorboard", interrupt_after_epoch_1)
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(cfg, until="pretrain")
    monkeypatch.undo()
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert len(read_metrics(run_dir / "metrics.csv")) == 1
    assert not (run_dir / "pretrain.json").exists()

    # What a SIGKILL mid-write leaves behind; the next start removes it.
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait(timeout=30)  # a writer PID that no longer runs
    stale = [
        run_dir / "checkpoints" / ".last.pt.q1w2.tmp",
        tmp_path / "prepared" / f".x.tmp-{gone.pid}-2",
    ]
    stale[1].mkdir()
    stale[0].write_text("partial")
    old = time.time() - 3600
    for path in stale:
        os.utime(path, (old, old))

    capsys.readouterr()
    assert run_pipeline(cfg, until="pretrain") == run_dir
    assert not any(path.exists() for path in stale)
    assert f"resuming {run_dir} after epoch 1" in capsys.readouterr().out
    resumed = read_metrics(run_dir / "metrics.csv")

    fresh_dir = run_pipeline(_cfg(tmp_path, "fresh"), until="pretrain")
    fresh = read_metrics(fresh_dir / "metrics.csv")
    assert len(resumed) == len(fresh) == 3
    assert _without_time(resumed) == _without_time(fresh)

    run_pipeline(cfg, until="pretrain", from_stage="pretrain")  # --from: start over
    assert "restarting from scratch" in capsys.readouterr().out
    assert _without_time(read_metrics(run_dir / "metrics.csv")) == _without_time(fresh)

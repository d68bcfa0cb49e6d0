"""`marketjepa run`: chain the stages, skipping those whose outputs exist for the same config.

Each stage of a run records in ``stages.json`` the hash of every config section it
depends on (cumulatively: a stage's hash covers all upstream sections too). A stage is
skipped when its recorded hash equals the current one and its main output exists;
``force`` recomputes everything, ``from_stage`` recomputes that stage and all after it.
Raw synthetic data and prepared datasets are cached outside the run, by their own hash.

The run directory is locked for the whole run (:mod:`marketjepa.rundir_lock`). A
pretrain that was killed resumes from ``checkpoints/last.pt`` when that checkpoint was
written for the same pretraining configuration, and says so; ``force`` (or ``--from``
pretrain or earlier) restarts it from scratch.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path

from marketjepa.artifacts import (
    init_run_dir,
    new_run_dir,
    read_json,
    update_manifest,
    write_json,
)
from marketjepa.config import Config, read_config
from marketjepa.console import console, stage_line
from marketjepa.errors import MarketJepaError
from marketjepa.paths import prepared_dir, prepared_hash, synthetic_dir
from marketjepa.rundir_lock import check_creatable, clean_data_temps, run_dir_lock

STAGES = [
    "synth",
    "prepare",
    "pretrain",
    "diagnose",
    "represent",
    "probe",
    "policy",
    "backtest",
    "report",
]
RUN_STAGES = STAGES[2:]

# Config sections each run stage adds to its upstream dependencies.
STAGE_SECTIONS: dict[str, list[str]] = {
    "pretrain": ["windows", "model", "loss", "train"],
    "diagnose": ["eval"],
    "represent": [],
    "probe": [],
    "policy": ["policy", "backtest"],
    "backtest": [],
    "report": [],
}

# The file whose presence means a stage finished.
STAGE_OUTPUT: dict[str, str] = {
    "pretrain": "pretrain.json",
    "diagnose": "diagnostics.json",
    "represent": "represent.json",
    "probe": "probes.json",
    "policy": "policy/policy.json",
    "backtest": "backtest/metrics.json",
    "report": "report.md",
}


def stage_hash(cfg: Config, stage: str) -> str:
    """Cumulative hash: prepared-data hash + every section up to and including ``stage``."""
    sections: list[str] = []
    for s in RUN_STAGES[: RUN_STAGES.index(stage) + 1]:
        sections += STAGE_SECTIONS[s]
    return f"{prepared_hash(cfg)}:{cfg.section_hash(*sections)}" if sections else prepared_hash(cfg)


def _stages_file(run_dir: Path) -> Path:
    return run_dir / "stages.json"


def stage_done(cfg: Config, run_dir: Path, stage: str) -> bool:
    path = _stages_file(run_dir)
    if not path.exists():
        return False
    record = read_json(path).get(stage)
    return (
        record is not None
        and record.get("hash") == stage_hash(cfg, stage)
        and (run_dir / STAGE_OUTPUT[stage]).exists()
    )


def mark_stage(cfg: Config, run_dir: Path, stage: str, seconds: float) -> None:
    path = _stages_file(run_dir)
    records = read_json(path) if path.exists() else {}
    records[stage] = {
        "hash": stage_hash(cfg, stage),
        "finished": datetime.now().isoformat(timespec="seconds"),
        "seconds": round(seconds, 2),
    }
    write_json(path, records)


def find_run(cfg: Config) -> Path | None:
    """Latest run directory in ``cfg.runs_dir`` whose resolved config equals ``cfg``."""
    root = Path(cfg.runs_dir)
    if not root.exists():
        return None
    for run in sorted(root.iterdir(), reverse=True):
        path = run / "config.yaml"
        if not path.exists():
            continue
        try:
            if read_config(path) == cfg:
                return run
        except MarketJepaError:
            continue
    return None


def ensure_synthetic(cfg: Config, force: bool = False) -> Path:
    from marketjepa.data.synthetic import generate_market

    out = synthetic_dir(cfg)
    if (out / "manifest.json").exists() and not force:
        stage_line("synth", f"skipped: synthetic market exists at {out}")
        return out
    generate_market(cfg.synth, out)
    return out


def ensure_prepared(cfg: Config, force: bool = False) -> Path:
    from marketjepa.data.prepare import prepare

    return prepare(cfg, force=force)


def run_stage(
    cfg: Config,
    prep: Path,
    run_dir: Path,
    stage: str,
    fn: Callable[[Config, Path, Path], object] | None = None,
) -> None:
    """Run one stage and record its config hash and duration in ``stages.json``."""
    fn = fn or _stage_functions()[stage]
    t0 = time.perf_counter()
    fn(cfg, prep, run_dir)
    mark_stage(cfg, run_dir, stage, time.perf_counter() - t0)


def resumable_pretrain(cfg: Config, run_dir: Path) -> bool:
    """Whether ``run_dir`` holds an unfinished pretrain's ``last.pt`` for this config."""
    from marketjepa.train.checkpoint import checkpoint_path, same_pretrain_config

    last = checkpoint_path(run_dir, "last")
    if not last.exists():
        return False
    try:
        if same_pretrain_config(cfg, last):
            return True
        why = "was written for another configuration"
    except MarketJepaError as exc:
        why = f"is unusable ({exc})"
    stage_line("pretrain", f"{last} {why}; starting over")
    return False


def pretrain_stage(cfg: Config, prep: Path, run_dir: Path, restart: bool = False) -> None:
    """Pretrain, resuming a killed run's ``last.pt`` of the same config unless ``restart``."""
    from marketjepa.train.checkpoint import checkpoint_path
    from marketjepa.train.pretrain import pretrain

    resume = not restart and resumable_pretrain(cfg, run_dir)
    if restart and checkpoint_path(run_dir, "last").exists():
        stage_line("pretrain", "restarting from scratch (--force / --from): last.pt not used")
    pretrain(cfg, prep, run_dir, resume=resume)


def record_inputs(run_dir: Path, prep: Path) -> None:
    """Put the prepared dataset and the raw-input fingerprints into the run's manifest."""
    prepared_manifest = prep / "manifest.json"
    raw_inputs = (
        read_json(prepared_manifest).get("inputs", {}) if prepared_manifest.exists() else {}
    )
    update_manifest(
        run_dir,
        inputs={"prepared": str(prep), "prepared_hash": prep.name, "raw": raw_inputs},
    )


def _stage_functions() -> dict[str, Callable[[Config, Path, Path], object]]:
    # Imported lazily: `marketjepa --help` must not pay for torch/sklearn imports.
    from marketjepa.evaluate.diagnose import run_diagnose
    from marketjepa.evaluate.probes import run_probes
    from marketjepa.evaluate.represent import run_represent
    from marketjepa.report.build import build_report
    from marketjepa.trading.backtest import run_backtest
    from marketjepa.trading.policy import run_policy

    return {
        "pretrain": pretrain_stage,
        "diagnose": run_diagnose,
        "represent": run_represent,
        "probe": run_probes,
        "policy": run_policy,
        "backtest": run_backtest,
        "report": lambda cfg, prep, run: build_report(run),
    }


def require_fit_prepared(cfg: Config, prep: Path) -> None:
    """Stop before training (exit 2, with suggested overrides) when the prepared days hold
    too few windows for the preset (:mod:`marketjepa.data.fit`)."""
    import polars as pl

    from marketjepa.data.fit import require_fit

    path = prep / "dataset.parquet"
    if not path.exists():
        return
    per = (
        pl.scan_parquet(path)
        .select("session", "session_minutes")
        .unique("session", maintain_order=True)
        .collect()
    )
    require_fit([int(m) for m in per["session_minutes"]], cfg)


def run_pipeline(
    cfg: Config,
    run_dir: Path | None = None,
    force: bool = False,
    from_stage: str | None = None,
    until: str | None = None,
) -> Path:
    """Run every stage (or ``from_stage`` … ``until``) and return the run directory."""
    for name, value in (("--from", from_stage), ("--until", until)):
        if value is not None and value not in STAGES:
            raise MarketJepaError(f"{name} {value!r}: choose one of {', '.join(STAGES)}")
    start = STAGES.index(from_stage) if from_stage else 0
    stop = STAGES.index(until) if until else len(STAGES) - 1
    redo = lambda stage: force or (from_stage is not None and STAGES.index(stage) >= start)  # noqa: E731

    t0 = time.perf_counter()
    if stop <= STAGES.index("prepare"):
        return _prepare_data(cfg, redo)

    with ExitStack() as locked:
        if run_dir is None and not force:
            run_dir = find_run(cfg)
        if run_dir is not None:  # given or found: a second writer stops before the data stages
            locked.enter_context(run_dir_lock(run_dir))
        else:  # an unwritable runs_dir fails before the data stages too
            check_creatable(cfg.runs_dir)
        prep = _prepare_data(cfg, redo)
        require_fit_prepared(cfg, prep)
        if run_dir is None:
            run_dir = new_run_dir(cfg)
            locked.enter_context(run_dir_lock(run_dir))
        if not (run_dir / "config.yaml").exists() or force:
            init_run_dir(run_dir, cfg)
        record_inputs(run_dir, prep)
        console.print(f"run directory: [bold]{run_dir}[/]")

        functions = _stage_functions()
        for stage in RUN_STAGES[: stop - 1]:
            if not redo(stage) and stage_done(cfg, run_dir, stage):
                stage_line(stage, f"skipped: outputs exist for this config ({STAGE_OUTPUT[stage]})")
                continue
            fn = functions[stage]
            if stage == "pretrain":
                fn = functools.partial(pretrain_stage, restart=redo(stage))
            run_stage(cfg, prep, run_dir, stage, fn)
    console.print(f"[bold]done[/] in {time.perf_counter() - t0:.0f} s — {run_dir}")
    return run_dir


def _prepare_data(cfg: Config, redo: Callable[[str], bool]) -> Path:
    # Leftovers of killed runs go at start, also when the cached data is reused.
    clean_data_temps(prepared_dir(cfg).parent)
    if cfg.data.source == "synthetic":
        clean_data_temps(synthetic_dir(cfg).parent)
        ensure_synthetic(cfg, force=redo("synth"))
    return ensure_prepared(cfg, force=redo("prepare"))

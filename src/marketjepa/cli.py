"""`marketjepa` command line: one subcommand per pipeline stage, plus `run` to chain them.

Every command takes ``--preset`` (tiny | cpu | seed | gpu), an optional ``--config``
YAML file and any number of ``--set section.key=value`` overrides.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Annotated

import typer

from marketjepa.config import PRESETS, Config, ConfigError, load_config
from marketjepa.console import console
from marketjepa.errors import MarketJepaError, StorageError, is_storage_error

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help=(
        "Pretrain LeJEPA encoders on intraday market data, check honestly whether the "
        "embeddings carry tradable information, and backtest an options entry policy."
    ),
)

PresetOpt = Annotated[
    str, typer.Option("--preset", "-p", help=f"Configuration preset: {', '.join(PRESETS)}.")
]
ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="YAML file merged over the preset.")
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="Dotted override, e.g. --set model.d_model=128 (repeatable)."),
]
RunDirArg = Annotated[Path, typer.Argument(help="Run directory (runs/<id>).")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Recompute even if outputs exist.")]


def _config(preset: str, config: Path | None, overrides: list[str] | None) -> Config:
    return load_config(preset, config, overrides or [])


def _fail(exc: Exception) -> None:
    code = getattr(exc, "exit_code", 2)
    console.print(f"[bold red]error:[/] {exc}", soft_wrap=True)  # one line, never wrapped
    raise typer.Exit(code)


def _guard(fn):
    """Turn user-facing errors into a clear message and exit code, not a stack trace."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (ConfigError, MarketJepaError) as exc:
            _fail(exc)
        except OSError as exc:  # unwritable path or disk full: one line, not a traceback
            if not is_storage_error(exc):
                raise
            _fail(StorageError.from_os_error(exc, verb="use"))  # read or write: unknown here

    return wrapper


@app.command()
@_guard
def synth(
    preset: PresetOpt = "cpu",
    config: ConfigOpt = None,
    set_: SetOpt = None,
    out: Annotated[
        Path | None, typer.Option(help="Output folder (default <synth.out_dir>/<synth hash>).")
    ] = None,
    facts: Annotated[
        bool,
        typer.Option(
            "--facts", help="Print the market's stylized facts against real-data bands; no files."
        ),
    ] = False,
) -> None:
    """Generate the embedded synthetic SPY + options market (raw Polygon-style files).

    Writes one stock and one option file per NYSE trading day, plus the hidden regime
    and its Bayes-filter posterior under truth/ (used only for oracles). With --facts,
    simulates the same market in memory and prints its stylized-facts table instead.
    """
    if facts:
        from marketjepa.data.synthetic.facts import facts_table
        from marketjepa.data.synthetic.market import simulate_market

        cfg = _config(preset, config, set_)
        console.print(facts_table(simulate_market(cfg.synth)))
        return
    from marketjepa.data.synthetic import generate_market
    from marketjepa.paths import synthetic_dir

    cfg = _config(preset, config, set_)
    generate_market(cfg.synth, Path(out) if out else synthetic_dir(cfg))


@app.command()
@_guard
def prepare(
    preset: PresetOpt = "cpu",
    config: ConfigOpt = None,
    set_: SetOpt = None,
    force: ForceOpt = False,
) -> None:
    """Ingest raw bars, keep the data.calendar session, build causal features, labels, splits.

    Output is cached under data/prepared/<config hash>/ and reused unless --force.
    """
    from marketjepa.data.prepare import prepare as run_prepare

    cfg = _config(preset, config, set_)
    run_prepare(cfg, force=force)


@app.command("inspect-data")
@_guard
def inspect_data(
    preset: PresetOpt = "cpu",
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Summarize the raw input data (days, bars, gaps, partial sessions, prices, IV) and say
    whether it fits the preset: days, rows and windows per split, suggested overrides."""
    from marketjepa.data.inspect import inspect_raw

    cfg = _config(preset, config, set_)
    console.print(inspect_raw(cfg))


def _load_run(run_dir: Path, overrides: list[str] | None) -> Config:
    from marketjepa.config import apply_overrides, build_config, read_config, save_config

    path = run_dir / "config.yaml"
    if not path.exists():
        raise MarketJepaError(
            f"{run_dir}: not a run directory (no config.yaml); run `marketjepa run` first"
        )
    cfg = read_config(path)
    if overrides:
        cfg = build_config(apply_overrides(cfg.to_dict(), overrides), f"{path} + --set overrides")
        save_config(cfg, path)
    return cfg


def _stage(stage: str, run_dir: Path, overrides: list[str] | None) -> None:
    from marketjepa.pipeline import ensure_prepared, run_stage
    from marketjepa.rundir_lock import run_dir_lock

    _load_run(run_dir, None)  # "not a run directory" before creating a lock file there
    with run_dir_lock(run_dir):
        cfg = _load_run(run_dir, overrides)
        run_stage(cfg, ensure_prepared(cfg), run_dir, stage)


@app.command()
@_guard
def pretrain(
    preset: PresetOpt = "cpu",
    config: ConfigOpt = None,
    set_: SetOpt = None,
    run_dir: Annotated[
        Path | None,
        typer.Option("--run-dir", help="Existing or new run directory (default: a new one)."),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue a killed run from last.pt.")
    ] = False,
) -> None:
    """Pretrain the LeJEPA encoder (prepares data first if needed).

    Writes metrics.csv, tb/, checkpoints/{last,best}.pt and pretrain.json. The collapse
    watchdog stops training early when scale-invariant diagnostics say collapsed. Works
    single-process and under `torchrun --nproc_per_node N` (DDP).
    """
    import os

    if int(os.environ.get("WORLD_SIZE", 1)) == 1:
        _pretrain(preset, config, set_, run_dir, resume)
        return
    # Under torchrun a rank ends with exit_process (flush + os._exit) on success and on a
    # user-facing error, so it never finalizes with DDP's gloo threads alive.
    from marketjepa.train.distributed import exit_process

    try:
        _pretrain(preset, config, set_, run_dir, resume)
    except typer.Exit as exc:
        exit_process(exc.exit_code)
    exit_process(0)


@_guard
def _pretrain(
    preset: str, config: Path | None, set_: list[str] | None, run_dir: Path | None, resume: bool
) -> None:
    import os
    import time
    from contextlib import nullcontext

    from marketjepa.artifacts import init_run_dir, new_run_dir
    from marketjepa.paths import prepared_dir
    from marketjepa.pipeline import ensure_prepared, ensure_synthetic, mark_stage, record_inputs
    from marketjepa.rundir_lock import run_dir_lock
    from marketjepa.train.pretrain import pretrain as run_pretrain

    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    if world > 1 and run_dir is None:
        raise MarketJepaError(
            "under torchrun, pass --run-dir so that every rank writes to the same run"
        )
    if resume and run_dir is not None and (run_dir / "config.yaml").exists():
        cfg = _load_run(run_dir, None if rank else set_)
    else:
        cfg = _config(preset, config, set_)
    if rank == 0:
        # Only rank 0 builds data and the run directory; the others wait for them.
        if cfg.data.source == "synthetic":
            ensure_synthetic(cfg)
        prep = ensure_prepared(cfg)
        if run_dir is None:
            run_dir = new_run_dir(cfg)
    else:
        prep = prepared_dir(cfg)
        _wait_for([prep / "manifest.json", run_dir / "config.yaml"])
    # Rank 0 is the run directory's one writer; the other ranks write nothing there.
    with run_dir_lock(run_dir) if rank == 0 else nullcontext():
        if rank == 0:
            if not (run_dir / "config.yaml").exists():
                init_run_dir(run_dir, cfg)
            record_inputs(run_dir, prep)
        t0 = time.perf_counter()
        run_pretrain(cfg, prep, run_dir, resume=resume)
        if rank == 0:
            mark_stage(cfg, run_dir, "pretrain", time.perf_counter() - t0)


def _wait_for(paths: list[Path], timeout_s: float = 3600.0) -> None:
    import time

    deadline = time.monotonic() + timeout_s
    while not all(p.exists() for p in paths):
        if time.monotonic() > deadline:
            missing = ", ".join(str(p) for p in paths if not p.exists())
            raise MarketJepaError(f"timed out waiting for rank 0 to write {missing}")
        time.sleep(1.0)


@app.command()
@_guard
def diagnose(run_dir: RunDirArg, set_: SetOpt = None) -> None:
    """Embed train/val/test windows with the best checkpoint and diagnose collapse.

    Writes embeddings/*.npz and diagnostics.json with a HEALTHY / PARTIAL / COLLAPSED
    verdict from scale-invariant measures (RankMe / d, normalized variance).
    """
    _stage("diagnose", run_dir, set_)


@app.command()
@_guard
def represent(run_dir: RunDirArg, set_: SetOpt = None) -> None:
    """Build every frozen representation of the probe rows: LeJEPA (both poolings), raw
    window, HAR-RV, random-init, supervised and fine-tuned encoders, oracles. Writes
    representations/*.npz, probe_rows.npz and represent.json."""
    _stage("represent", run_dir, set_)


@app.command()
@_guard
def probe(run_dir: RunDirArg, set_: SetOpt = None) -> None:
    """Linear probes for LeJEPA vs baselines (majority, raw window, random-init,
    supervised, HAR-RV, oracle) with block-bootstrap 95% CIs. Reads the represent
    stage's files; writes probes.json."""
    _stage("probe", run_dir, set_)


@app.command()
@_guard
def policy(run_dir: RunDirArg, set_: SetOpt = None) -> None:
    """Train the entry policy on frozen representations; thresholds chosen on validation days."""
    _stage("policy", run_dir, set_)


@app.command()
@_guard
def backtest(run_dir: RunDirArg, set_: SetOpt = None) -> None:
    """Backtest the policies' option trades on test days with costs; PSR, DSR, attribution."""
    _stage("backtest", run_dir, set_)


@app.command()
@_guard
def report(run_dir: RunDirArg) -> None:
    """Write report.md and report.html (with plots) for a run."""
    from contextlib import nullcontext

    from marketjepa.report.build import build_report
    from marketjepa.rundir_lock import run_dir_lock

    with run_dir_lock(run_dir) if run_dir.is_dir() else nullcontext():
        path = build_report(run_dir)
    console.print(f"report: {path}")


@app.command()
@_guard
def run(
    preset: PresetOpt = "cpu",
    config: ConfigOpt = None,
    set_: SetOpt = None,
    force: ForceOpt = False,
    from_stage: Annotated[
        str | None, typer.Option("--from", help="Redo this stage and everything after it.")
    ] = None,
    until: Annotated[str | None, typer.Option("--until", help="Stop after this stage.")] = None,
    run_dir: Annotated[Path | None, typer.Option("--run-dir", help="Run directory to use.")] = None,
) -> None:
    """Run the whole pipeline: synth/ingest → prepare → pretrain → diagnose → represent
    → probe → policy → backtest → report. Stages whose outputs exist for the same config are skipped."""
    from marketjepa.pipeline import run_pipeline

    cfg = _config(preset, config, set_)
    out = run_pipeline(cfg, run_dir=run_dir, force=force, from_stage=from_stage, until=until)
    if (out / "report.md").exists():
        from marketjepa.report.build import headline
        from marketjepa.report.collect import collect_run

        for line in headline(collect_run(out)):
            console.print(line)
        console.print(f"report: [bold]{out / 'report.md'}[/] and [bold]{out / 'report.html'}[/]")


@app.command()
@_guard
def walkforward(
    preset: PresetOpt = "cpu",
    config: ConfigOpt = None,
    set_: SetOpt = None,
    folds: Annotated[
        int | None,
        typer.Option(help="Number of folds (default split.walk_forward_folds, or 4 if 0)."),
    ] = None,
    run_dir: Annotated[
        Path | None,
        typer.Option("--run-dir", help="Run directory (default: the run of this config, or new)."),
    ] = None,
    reuse_encoder: Annotated[
        bool,
        typer.Option(
            "--reuse-encoder",
            help="Use the run's checkpoints/best.pt in every fold instead of pretraining "
            "(faster; a leak when that encoder saw days a fold trades — stated in the output).",
        ),
    ] = False,
    force: ForceOpt = False,
) -> None:
    """Walk-forward backtest: N expanding-window folds over all days; each fold prepares,
    pretrains, fits the policy and its thresholds on earlier days only and trades the next
    block. Writes <run>/walkforward/ (walkforward.json, folds.csv, equity.csv, trades.csv);
    folds finished for the same config, data and encoder are reused unless --force."""
    from marketjepa.artifacts import init_run_dir, new_run_dir
    from marketjepa.pipeline import ensure_synthetic, find_run
    from marketjepa.trading.walkforward import run_walkforward

    if run_dir is not None and (run_dir / "config.yaml").exists():
        cfg = _load_run(run_dir, set_)
    else:
        cfg = _config(preset, config, set_)
        run_dir = run_dir or find_run(cfg) or new_run_dir(cfg)
        if not (run_dir / "config.yaml").exists():
            init_run_dir(run_dir, cfg)
    n = folds if folds is not None else (cfg.split.walk_forward_folds or 4)
    console.print(f"run directory: [bold]{run_dir}[/]")
    if cfg.data.source == "synthetic":
        ensure_synthetic(cfg)
    run_walkforward(cfg, run_dir, n, reuse_encoder=reuse_encoder, force=force)
    from marketjepa.report.build import build_report

    # The run's report (stages not run are stated as such) gains the walk-forward section.
    console.print(f"report: [bold]{build_report(run_dir)}[/]")


@app.command()
@_guard
def compare(
    run_dirs: Annotated[list[Path], typer.Argument(help="Two or more run directories.")],
) -> None:
    """Print key numbers of several runs side by side (config differences first)."""
    from marketjepa.compare import compare_runs

    console.print(compare_runs(run_dirs))


@app.command()
@_guard
def experiment(
    name: Annotated[
        str, typer.Argument(help="Experiment: 'collapse' (seed-like vs recommended settings).")
    ],
    preset: PresetOpt = "cpu",
    config: ConfigOpt = None,
    set_: SetOpt = None,
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("runs/experiments"),
    seeds: Annotated[
        str, typer.Option(help="levers: comma-separated synthetic market seeds ('' for none).")
    ] = "0,1",
    null: Annotated[
        bool, typer.Option("--null/--no-null", help="levers: also the null market.")
    ] = True,
) -> None:
    """Rerunnable experiments. 'collapse' trains seed-like settings (λ=0.1, EMA 0.996, no gap)
    against the recommended ones on the same data and tabulates variance, RankMe and SIGReg.
    'levers' pretrains this configuration and the pre-issue-12 one on two synthetic seeds
    and the null market and compares latent share and direction lift with paired CIs."""
    if name not in ("collapse", "levers"):
        raise MarketJepaError(f"unknown experiment {name!r}; available: collapse, levers")
    from marketjepa.pipeline import ensure_prepared, ensure_synthetic
    from marketjepa.train.experiment import run_collapse_experiment

    cfg = _config(preset, config, set_)
    if name == "levers":
        from marketjepa.tune.levers import run_levers_experiment

        try:
            seed_list = tuple(int(s) for s in seeds.split(",") if s.strip())
        except ValueError:
            raise ConfigError(f"--seeds must be comma-separated integers, got {seeds!r}") from None
        if not seed_list and not null:
            raise ConfigError("levers: nothing to run (no --seeds and --no-null)")
        console.print(run_levers_experiment(cfg, out / "levers", seed_list, null_market=null))
        return
    if cfg.data.source == "synthetic":
        ensure_synthetic(cfg)
    prep = ensure_prepared(cfg)
    console.print(run_collapse_experiment(cfg, prep, out))


def _serving_threads() -> None:
    """One window per decision: a single thread beats thread start-up and contention."""
    import torch

    torch.set_num_threads(1)


def _print_json(obj: object) -> None:
    import json

    from marketjepa.artifacts import to_jsonable

    print(json.dumps(to_jsonable(obj), indent=2))


@app.command()
@_guard
def signal(
    run_dir: RunDirArg,
    bars: Annotated[
        list[str],
        typer.Option(
            "--bars",
            help="New stock bar file or quoted glob, in the run's data format; repeatable.",
        ),
    ],
    options: Annotated[
        list[str] | None,
        typer.Option("--options", help="Option bar file or quoted glob (optional); repeatable."),
    ] = None,
    option_summary: Annotated[
        Path | None,
        typer.Option("--option-summary", help="A per-minute option summary file instead."),
    ] = None,
    all_bars: Annotated[
        bool, typer.Option("--all", help="Decide every warmed-up bar, not only the latest.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for machines.")] = False,
    set_: SetOpt = None,
) -> None:
    """The trained LeJEPA policy's decision on new bars: HOLD / BUY_CALL / BUY_PUT.

    Loads the run (config, train-fitted normalization, best.pt, policy head and
    thresholds), builds features with prepare's code path, embeds the latest window and
    prints the decision, class probabilities, thresholds and, for an entry, the contract
    the backtest would buy. Only data.* overrides are accepted (e.g. column names).
    """
    from marketjepa.serve.signal import (
        TrainedRun,
        decide_new_bars,
        expand_files,
        format_signal,
        ingest_new_bars,
    )

    _serving_threads()
    run_ = TrainedRun.load(run_dir)
    new = ingest_new_bars(
        run_, expand_files(bars), expand_files(options or []), option_summary, set_
    )
    out = decide_new_bars(run_, new, all_bars=all_bars)
    if as_json:
        _print_json(out)
        return
    for line in format_signal(out):
        console.print(line, highlight=False, markup=False, soft_wrap=True)


@app.command()
@_guard
def replay(
    run_dir: RunDirArg,
    day: Annotated[str, typer.Option("--day", help="Session of the run's data, YYYY-MM-DD.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for machines.")] = False,
) -> None:
    """Feed one day of the run's data bar by bar, as a live feed would.

    Prints each bar's decision next to the batch pipeline's (train/serve parity: features
    to 1e-6, same class), and the day's option trades and P&L under the backtest rules.
    Exits 1 when parity fails.
    """
    from marketjepa.serve.replay import format_replay, replay_day
    from marketjepa.serve.signal import TrainedRun

    _serving_threads()
    out = replay_day(TrainedRun.load(run_dir), day)
    if as_json:
        _print_json(out)
    else:
        for line in format_replay(out):
            console.print(line, highlight=False, markup=False, soft_wrap=True)
    if not out["parity"]["ok"]:
        raise typer.Exit(1)


@app.command()
@_guard
def sweep(
    preset: PresetOpt = "cpu",
    config: ConfigOpt = None,
    set_: SetOpt = None,
    out: Annotated[Path, typer.Option(help="Sweep folder (SQLite study, trials).")] = Path(
        "runs/sweep"
    ),
    trials: Annotated[int, typer.Option(help="Total finished trials to reach.")] = 30,
    epochs: Annotated[int, typer.Option(help="Pretraining epochs per trial.")] = 2,
    steps: Annotated[int, typer.Option(help="Steps per epoch per trial.")] = 10,
    val_windows: Annotated[
        int, typer.Option(help="Per-epoch validation windows of a trial's pretraining.")
    ] = 1024,
    probe_windows: Annotated[
        int,
        typer.Option(help="Probe anchors per split (train, validation) scoring a trial; 0 = all."),
    ] = 6000,
    prune: Annotated[
        bool,
        typer.Option(help="Median-prune trials on the per-epoch validation latent share."),
    ] = True,
    trial_seconds: Annotated[
        float,
        typer.Option(help="Prune a trial still pretraining after this many seconds; 0 = off."),
    ] = 90.0,
    objective: Annotated[
        str,
        typer.Option(
            help="What a trial maximizes on validation days: 'share' (latent share, else "
            "direction lift) or 'gain' (that minus the same architecture at random init)."
        ),
    ] = "share",
) -> None:
    """Optuna study over the pretraining levers, scored on validation days only.

    Resumable with the same budget options (SQLite storage in the sweep folder); writes
    trials.csv, sweep.json and best_config.yaml (with train.sweep_trials set for the
    deflated Sharpe ratio).
    """
    from marketjepa.pipeline import ensure_prepared, ensure_synthetic
    from marketjepa.tune.sweep import run_sweep

    if trials < 1 or epochs < 1 or steps < 1:
        raise ConfigError("--trials, --epochs and --steps must be >= 1")
    if probe_windows < 0 or trial_seconds < 0 or val_windows < 0:
        raise ConfigError("--probe-windows, --val-windows and --trial-seconds must be >= 0")
    if objective not in ("share", "gain"):
        raise ConfigError(f"--objective must be 'share' or 'gain', got {objective!r}")
    cfg = _config(preset, config, set_)
    if cfg.data.source == "synthetic":
        ensure_synthetic(cfg)
    prep = ensure_prepared(cfg)
    run_sweep(
        cfg,
        prep,
        out,
        n_trials=trials,
        epochs=epochs,
        steps=steps,
        seed=cfg.train.seed,
        probe_windows=probe_windows,
        prune=prune,
        trial_seconds=trial_seconds,
        val_windows=val_windows,
        objective=objective,
    )


def main() -> None:  # pragma: no cover - console entry point
    try:
        app()
    except KeyboardInterrupt:
        console.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    main()

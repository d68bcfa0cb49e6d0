"""`marketjepa` command line: one subcommand per pipeline stage, plus `run` to chain them.

Every command takes ``--preset`` (tiny | cpu | seed | gpu), an optional ``--config``
YAML file and any number of ``--set section.key=value`` overrides.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from marketjepa.config import PRESETS, Config, ConfigError, load_config
from marketjepa.console import console
from marketjepa.errors import MarketJepaError

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
    console.print(f"[bold red]error:[/] {exc}")
    raise typer.Exit(code)


def _guard(fn):
    """Turn user-facing errors into a clear message and exit code, not a stack trace."""

    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (ConfigError, MarketJepaError) as exc:
            _fail(exc)

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    wrapper.__signature__ = __import__("inspect").signature(fn)  # keep typer's view
    return wrapper


@app.command()
@_guard
def synth(
    preset: PresetOpt = "cpu",
    config: ConfigOpt = None,
    set_: SetOpt = None,
    out: Annotated[Path | None, typer.Option(help="Output folder (default synth.out_dir).")] = None,
) -> None:
    """Generate the embedded synthetic SPY + options market (raw Polygon-style files).

    Writes one stock and one option file per NYSE trading day, plus the hidden regime
    and its Bayes-filter posterior under truth/ (used only for oracles).
    """
    from marketjepa.data.synthetic import generate_market

    cfg = _config(preset, config, set_)
    out_dir = Path(out or cfg.synth.out_dir)
    generate_market(cfg.synth, out_dir)


@app.command()
@_guard
def prepare(
    preset: PresetOpt = "cpu",
    config: ConfigOpt = None,
    set_: SetOpt = None,
    force: ForceOpt = False,
) -> None:
    """Ingest raw bars, filter to the NYSE session, build causal features, labels, splits.

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
    """Print a sanity-check summary of the raw input data (days, bars, gaps, prices, IV)."""
    from marketjepa.data.inspect import inspect_raw

    cfg = _config(preset, config, set_)
    console.print(inspect_raw(cfg))


def main() -> None:  # pragma: no cover - console entry point
    try:
        app()
    except KeyboardInterrupt:
        console.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    main()

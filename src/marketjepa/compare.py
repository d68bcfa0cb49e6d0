"""`marketjepa compare`: runs side by side — configuration differences first, then key numbers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.table import Table

from marketjepa.config import read_config
from marketjepa.errors import MarketJepaError
from marketjepa.report.collect import collect_run, key_numbers


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}} -> {"a.b": 1}`` (lists kept as values)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def config_differences(run_dirs: list[Path]) -> dict[str, list[Any]]:
    """Dotted keys whose values differ between the runs (run name/dir excluded)."""
    flats = [flatten(read_config(r / "config.yaml").to_dict()) for r in run_dirs]
    keys = sorted(set().union(*flats))
    return {
        k: [f.get(k) for f in flats]
        for k in keys
        if k not in ("name",) and len({repr(f.get(k)) for f in flats}) > 1
    }


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "—" if v is None else str(v)


def compare_runs(run_dirs: list[Path]) -> Table:
    if len(run_dirs) < 2:
        raise MarketJepaError("compare needs at least two run directories")
    for r in run_dirs:
        if not (r / "config.yaml").exists():
            raise MarketJepaError(f"{r}: not a run directory (no config.yaml)")
    table = Table(title="marketjepa compare", show_lines=False)
    table.add_column("")
    for r in run_dirs:
        table.add_column(r.name, overflow="fold")
    diffs = config_differences(run_dirs)
    table.add_row("[bold]config differences[/]", *["" for _ in run_dirs])
    if not diffs:
        table.add_row("  (identical configs)", *["" for _ in run_dirs])
    for key, values in diffs.items():
        table.add_row(f"  {key}", *[_fmt(v) for v in values])
    numbers = [key_numbers(collect_run(r)) for r in run_dirs]
    table.add_row("[bold]results[/]", *["" for _ in run_dirs])
    for key in numbers[0]:
        table.add_row(f"  {key}", *[_fmt(n.get(key)) for n in numbers])
    return table

"""Terminal tables for ``probes.json`` (rich Tables, or plain text via :func:`to_text`)."""

from __future__ import annotations

import io
import math
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table


def fmt(x: float | None, digits: int = 3, signed: bool = False) -> str:
    """A number, or '—' when missing/NaN."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"


def fmt_ci(value: float | None, ci: list[float] | None, digits: int = 3, signed=False) -> str:
    """``value [lo, hi]``."""
    if ci is None:
        return fmt(value, digits, signed)
    return (
        f"{fmt(value, digits, signed)} [{fmt(ci[0], digits, signed)}, {fmt(ci[1], digits, signed)}]"
    )


def _mark(ci: list[float] | None) -> str:
    """'*' when a lift's CI excludes 0 on the positive side."""
    return "*" if ci and ci[0] is not None and math.isfinite(ci[0]) and ci[0] > 0 else ""


def classification_table(probes: dict[str, Any]) -> Table:
    """One row per representation; the balanced-accuracy CI is the lift CI shifted by 1/3."""
    level = int(round(100 * probes.get("ci_level", 0.95)))
    ev = probes["evaluated_on"]
    t = Table(
        title=f"Entry-label probes on {ev} rows ({probes['n_rows'].get(ev, '?')}), "
        f"{level}% day-block CIs; * = lift CI above 0 (uncorrected: the report's verdicts "
        "add the evidence gate and the Holm correction)",
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    t.add_column("representation", no_wrap=True)
    cols = ("dim", "bal.acc", "lift vs 1/3", "acc", "lift vs majority", "direction lift vs ½")
    for col in (*cols, "macro-F1", "C"):
        t.add_column(col, justify="right", no_wrap=True)
    for r in probes["classification"]:
        ci = r.get("ci", {})
        t.add_row(
            r["representation"],
            str(r.get("dim", "")),
            fmt(r["balanced_accuracy"]),
            fmt_ci(r["lift_balanced"], ci.get("lift_balanced"), signed=True)
            + _mark(ci.get("lift_balanced")),
            fmt(r["accuracy"]),
            fmt_ci(r["lift_accuracy"], ci.get("lift_accuracy"), signed=True),
            fmt_ci(r.get("lift_direction"), ci.get("lift_direction"), signed=True)
            + _mark(ci.get("lift_direction")),
            fmt(r["macro_f1"]),
            "—" if r.get("C") is None else f"{r['C']:g}",
        )
    return t


def regression_table(probes: dict[str, Any]) -> Table:
    t = Table(title="Regression probes (ridge)", title_justify="left", box=box.SIMPLE_HEAD)
    t.add_column("representation", no_wrap=True)
    t.add_column("fwd_rv R²", justify="right")
    t.add_column("fwd_ret IC (Spearman)", justify="right")
    by_rep: dict[str, dict[str, dict]] = {}
    for r in probes["regression"]:
        by_rep.setdefault(r["representation"], {})[r["target"]] = r
    for name, d in by_rep.items():
        cells = []
        for target in ("fwd_rv", "fwd_ret"):
            r = d.get(target)
            cells.append(
                "—" if r is None else fmt_ci(r["value"], r["ci"].get(r["metric"]), signed=True)
            )
        t.add_row(name, *cells)
    return t


def latent_table(probes: dict[str, Any]) -> Table:
    t = Table(
        title="Latent-regime decodability (synthetic truth)",
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    t.add_column("representation", no_wrap=True)
    t.add_column("accuracy", justify="right")
    t.add_column("share of Bayes filter over chance", justify="right")
    for r in probes["latent"]:
        ci = r.get("ci", {})
        t.add_row(
            r["representation"],
            fmt_ci(r["accuracy"], ci.get("accuracy")),
            fmt_ci(r["share_of_filter"], ci.get("share_of_filter"), digits=2),
        )
    if probes["latent"]:
        t.caption = f"chance (train-majority regime) = {fmt(probes['latent'][0]['chance'])}"
    return t


def paired_table(probes: dict[str, Any]) -> Table:
    t = Table(
        title="Paired day-block bootstrap tests (balanced accuracy)",
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    t.add_column("comparison", no_wrap=True)
    t.add_column("Δ (a − b)", justify="right")
    t.add_column("p", justify="right")
    for r in probes["paired_tests"]:
        t.add_row(
            f"{r['a']} − {r['b']}", fmt_ci(r["difference"], r["ci"], signed=True), fmt(r["p_value"])
        )
    return t


def _mean_sd(d: dict[str, Any], key: str, digits: int = 3, signed: bool = False) -> str:
    mean, sd = d["mean"].get(key), d["std"].get(key)
    return f"{fmt(mean, digits, signed)} ± {fmt(sd, digits)}"


def walk_forward_table(probes: dict[str, Any]) -> Table:
    """Mean ± std over the walk-forward folds, and the per-fold direction lifts."""
    wf = probes["walk_forward"]
    blocks = ", ".join(
        f"{f['fold']}: "
        + ("–".join(f["dates"]) if "dates" in f else "–".join(map(str, f["days"])))
        + f" ({f['n_rows']} rows)"
        for f in wf["folds"]
    )
    t = Table(
        title=f"Walk-forward probes ({wf['n_folds']} expanding folds, embargo "
        f"{wf['embargo_days']} d, C chosen on the last {wf['select_share']:.0%} of each fold's "
        "training days); mean ± std over folds",
        title_justify="left",
        caption=f"scored blocks {blocks}",
        box=box.SIMPLE_HEAD,
    )
    t.add_column("representation", no_wrap=True)
    cols = ("bal.acc", "direction acc", "direction lift vs ½", "per-fold direction lift")
    for col in (*cols, "pooled direction lift"):
        t.add_column(col, justify="right", no_wrap=True)
    for name, r in wf["representations"].items():
        pooled = r.get("pooled", {})
        t.add_row(
            name,
            _mean_sd(r, "balanced_accuracy"),
            _mean_sd(r, "direction_accuracy"),
            _mean_sd(r, "lift_direction", signed=True),
            " ".join(fmt(f["lift_direction"], signed=True) for f in r["folds"]),
            fmt_ci(
                pooled.get("lift_direction"),
                pooled.get("ci", {}).get("lift_direction"),
                signed=True,
            )
            + _mark(pooled.get("ci", {}).get("lift_direction")),
        )
    return t


def render_probe_tables(probes: dict[str, Any]) -> list[Table]:
    """All probe tables present in a ``probes.json`` body, in reading order."""
    tables = [classification_table(probes), regression_table(probes)]
    if probes.get("latent"):
        tables.append(latent_table(probes))
    if probes.get("paired_tests"):
        tables.append(paired_table(probes))
    if probes.get("walk_forward"):
        tables.append(walk_forward_table(probes))
    return tables


def print_tables(tables: list[Table], console: Console, min_width: int = 120) -> None:
    """Print to ``console``; when it is not a terminal (logs, CI, pipes) write plain text
    at least ``min_width`` columns wide so CI cells are not squeezed."""
    if console.is_terminal:
        for t in tables:
            console.print(t)
    else:
        console.out(to_text(tables, max(console.width, min_width)), highlight=False, end="")


def to_text(tables: list[Table], width: int = 140) -> str:
    """Plain text (no colour codes) of rich tables, for logs, README and reports."""
    buf = io.StringIO()
    con = Console(file=buf, width=width, no_color=True, highlight=False, force_terminal=False)
    for t in tables:
        con.print(t)
    return buf.getvalue()

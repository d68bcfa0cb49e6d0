"""Build the report of a run: ``plots/*.png``, ``report.md`` and ``report.html``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from marketjepa.artifacts import atomic_path
from marketjepa.report.collect import collect_run
from marketjepa.report.evidence import INSUFFICIENT
from marketjepa.report.html import render_html
from marketjepa.report.markdown import build_sections, render_markdown
from marketjepa.report.plots import render_all
from marketjepa.report.rules import (
    SIGNIFICANCE,
    evaluate,
    fmt,
    fmt_ci,
    lejepa_name,
    money,
    ok,
    pct,
    recommendations,
)


def _collapse_line(f: dict[str, dict]) -> str:
    col = f["collapse"]
    nums = ", ".join(f"{k} = {fmt(v)}" for k, v in col["numbers"].items() if ok(v))
    line = f"Collapse: {col['status']}" + (f" ({nums})" if nums else "")
    for k in ("watchdog", "diverged"):
        if k in f:
            line += f"; {f[k]['text']}"
    return line


def _baselines_line(summary: dict, findings: list[dict]) -> str:
    if not summary.get("probes", {}).get("available"):
        return "LeJEPA vs baselines: probe stage not run"
    vs = [x for x in findings if x["id"].startswith("vs_")]
    if not vs:
        return "LeJEPA vs baselines: no comparison with confidence intervals available"
    parts = [
        (
            f"cannot be compared with {x['id'][3:]} (insufficient evidence"
            if x["status"] == INSUFFICIENT
            else f"{x['status'].lower()} {x['id'][3:]} (Δ {fmt(x['numbers']['diff'])}"
        )
        + (f", CI {fmt_ci(x['numbers']['ci'])})" if x["numbers"].get("ci") else ")")
        for x in vs
    ]
    return f"LeJEPA vs baselines: {lejepa_name(summary)} " + "; ".join(parts)


def _edge_line(summary: dict, f: dict[str, dict]) -> str:
    if not summary.get("probes", {}).get("available"):
        return "Directional edge: probe stage not run"
    own = f.get(f"lift_{lejepa_name(summary)}")
    if own is None:
        return "Directional edge: no LeJEPA probe row"
    # "yes" only for a LIFT that passed the evidence gate and the Holm correction.
    yes = {"LIFT": "yes", INSUFFICIENT: INSUFFICIENT}.get(own["status"], "no")
    line = f"Directional edge: {yes} — {own['text']}"
    ref = f.get("signal_present") or f.get("signal_absent") or f.get("signal_unknown")
    if ref:
        line += f"; reference: {ref['status'].lower()}"
    return line


def _count(n) -> str:
    """Trade counts are integers except for averages over seeds."""
    return str(int(n)) if ok(n) and float(n).is_integer() else fmt(n)


def _money_line(summary: dict, f: dict[str, dict]) -> str:
    bt = summary.get("backtest") or {}
    if not bt.get("available"):
        return "Strategy after costs: backtest stage not run"
    m, a = bt.get("metrics") or {}, bt.get("attribution") or {}
    ret, net, dsr = m.get("total_return"), a.get("net"), m.get("dsr")
    gained = ret if ok(ret) else net
    where = (
        "" if bt.get("evaluated_on") == "test" else f" [evaluated on {bt.get('evaluated_on')} days]"
    )
    sig = f"DSR {fmt(dsr)} over {fmt(m.get('n_trials'))} trials" if ok(dsr) else "no DSR recorded"
    costs = f", costs {money(a['costs'])}" if ok(a.get("costs")) else ""
    if not ok(gained):
        return f"Strategy after costs: no return recorded{where}"
    if ok(m.get("n_trades")) and m["n_trades"] == 0:
        return (
            "Strategy after costs: no trades — the thresholds chosen on validation days "
            f"gave no signal{where}; nothing to claim"
        )
    if gained <= 0:
        return (
            f"Strategy after costs: loses money — total return {pct(ret, 2)}"
            f"{costs}, {_count(m.get('n_trades'))} trades{where}"
        )
    # Profit claims need the evidence gate and a significant deflated Sharpe ratio after
    # the Holm correction over all policies; PSR alone is not enough.
    verdict = f.get("significant") or f.get("not_significant")
    if verdict and verdict["status"] == INSUFFICIENT:
        return (
            f"Strategy after costs: {INSUFFICIENT} — total return {pct(ret, 2)}, "
            f"{_count(m.get('n_trades'))} trades; {verdict['text']}{where}"
        )
    if ok(dsr) and dsr >= SIGNIFICANCE and "significant" in f:
        return (
            f"Strategy after costs: makes money — total return {pct(ret, 2)}, "
            f"{sig} ≥ {SIGNIFICANCE}{where}"
        )
    return (
        f"Strategy after costs: total return {pct(ret, 2)} but not significant ({sig}, "
        f"needs ≥ {SIGNIFICANCE}) — no evidence of a profitable strategy{where}"
    )


def headline(summary: dict[str, Any], findings: list[dict] | None = None) -> list[str]:
    """3–5 lines for the end of ``marketjepa run``: collapse, LeJEPA vs baselines,
    directional edge, money after costs, and where the report is."""
    findings = evaluate(summary) if findings is None else findings
    f = {x["id"]: x for x in findings}
    return [
        _collapse_line(f),
        _baselines_line(summary, findings),
        _edge_line(summary, f),
        _money_line(summary, f),
        f"Report: {Path(summary['run_dir']) / 'report.html'}",
    ]


def _write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def build_report(run_dir: Path) -> Path:
    """Collect the run's artifacts, apply the rules, write plots, report.md and report.html;
    return the path of report.md."""
    run_dir = Path(run_dir)
    summary = collect_run(run_dir)
    findings = evaluate(summary)
    recs = recommendations(summary, findings)
    images = render_all(summary)
    lines = headline(summary, findings)
    sections = build_sections(summary, findings, recs, lines, set(images))
    plot_dir = run_dir / "plots"
    for name, png in images.items():
        _write_bytes(plot_dir / f"{name}.png", png)
    md_path = run_dir / "report.md"
    _write_bytes(md_path, render_markdown(summary, sections).encode())
    _write_bytes(run_dir / "report.html", render_html(summary, sections, images).encode())
    return md_path

"""The report's walk-forward backtest: read ``walkforward/``, a section and an equity plot.

``collect_walkforward`` is the reader (``None`` when ``marketjepa walkforward`` has not run):
the ``walkforward.json`` summary plus each strategy's concatenated out-of-sample equity
(``equity.csv``) and the first traded date of every fold (the plot's fold boundaries).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from marketjepa.artifacts import read_json
from marketjepa.errors import DataValidationError
from marketjepa.report.rules import fmt, pct

PLOT_NAME = "walkforward_equity"
PLOT_CAPTION = "Walk-forward out-of-sample equity, fold boundaries dashed"
STRATEGIES = ("lejepa", "raw_window", "always_call", "always_put", "random")


def collect_walkforward(run_dir: Path) -> dict[str, Any] | None:
    folder = Path(run_dir) / "walkforward"
    path = folder / "walkforward.json"
    if not path.exists():
        return None
    try:
        wf = read_json(path)
        eq = pl.read_csv(folder / "equity.csv") if (folder / "equity.csv").exists() else None
    except (ValueError, OSError, pl.exceptions.PolarsError) as exc:
        raise DataValidationError(
            f"cannot read the walk-forward output: {exc}", file=str(path)
        ) from None
    curves = {}
    if eq is not None and eq.height:
        for name in eq["strategy"].unique(maintain_order=True).to_list():
            sub = eq.filter(pl.col("strategy") == name)
            curves[name] = {
                "t": sub["date"].cast(pl.Utf8).to_list(),
                "equity": sub["equity"].to_list(),
            }
    wf["curves"] = curves
    wf["boundaries"] = [f["traded"]["first"] for f in wf.get("folds", [])]
    return wf


def walkforward_equity(summary: dict) -> bytes | None:
    """Concatenated OOS equity of the policies and the always-CALL/PUT baselines."""
    wf = summary.get("walkforward") or {}
    curves = wf.get("curves") or {}
    if not curves:
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.8))
    ax = fig.add_subplot(1, 1, 1)
    for name, c in curves.items():
        x = np.array(c["t"], dtype="datetime64[D]")
        ax.plot(x, c["equity"], lw=1.6 if name == "lejepa" else 1.0, label=name)
    for b in wf.get("boundaries") or []:
        ax.axvline(np.datetime64(b, "D"), color="grey", ls="--", lw=0.8)
    ax.set_ylabel("equity ($)")
    ax.set_title(f"walk-forward: {wf.get('n_folds')} folds ({wf.get('encoder')})")
    ax.legend(fontsize=8)
    fig.autofmt_xdate()
    fig.tight_layout()
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return buf.getvalue()


def _concatenated_rows(conc: dict) -> list[list[str]]:
    """One row per strategy of the concatenated out-of-sample trades."""
    rows = []
    for name in STRATEGIES:
        m = conc.get(name)
        if not m:
            continue
        ci = (
            f" [{fmt(m.get('sharpe_ci_low'), 2)}, {fmt(m.get('sharpe_ci_high'), 2)}]"
            if "sharpe_ci_low" in m
            else ""
        )
        rows.append(
            [
                name + (" (mean of seeds)" if name == "random" else ""),
                pct(m.get("total_return"), 2),
                fmt(m.get("n_trades")),
                pct(m.get("win_rate")),
                f"{fmt(m.get('sharpe'), 2)}{ci}",
                fmt(m.get("psr")),
                fmt(m.get("dsr")),
                pct(m.get("max_drawdown"), 2),
            ]
        )
    return rows


def _fold_rows(folds: list[dict]) -> list[list[str]]:
    """Per fold, the LeJEPA and raw-window policies: days, thresholds, results."""
    fold_rows = []
    for f in folds:
        for name in ("lejepa", "raw_window"):
            m = (f.get("metrics") or {}).get(name) or {}
            th = (f.get("thresholds") or {}).get(name) or {}
            fold_rows.append(
                [
                    str(f["fold"]),
                    f"{f['fit']['first']} – {f['fit']['last']}",
                    f"{f['traded']['first']} – {f['traded']['last']} ({f['traded']['days']})",
                    name,
                    f"{fmt(th.get('tau_call'), 3)} / {fmt(th.get('tau_put'), 3)}",
                    fmt(m.get("n_trades")),
                    pct(m.get("total_return"), 2),
                    fmt(m.get("sharpe"), 2),
                    fmt(m.get("psr")),
                    str(f.get("collapse")),
                ]
            )
    return fold_rows


def walkforward_section(summary: dict, images: set[str]) -> Any:
    """``Section`` "WALK-FORWARD BACKTEST", or ``None`` when it has not run."""
    from marketjepa.report.markdown import Bullets, Image, Para, Section, Table

    wf = summary.get("walkforward")
    if not wf:
        return None
    folds = wf.get("folds") or []
    conc = wf.get("concatenated") or {}
    blocks: list[Any] = [
        Para(
            f"{wf.get('n_folds')} expanding-window folds over all {wf.get('n_days')} days: fold k "
            f"fits on the days before its traded block (embargo {wf.get('embargo_days')} "
            f"day(s)), chooses the checkpoint and thresholds on the last "
            f"{pct(wf.get('select_share'), 0)} of them and trades the next block; the first "
            f"{wf.get('untraded_first_days')} days are never traded. Encoder: "
            f"{wf.get('encoder')}. Deflated Sharpe ratios count {wf.get('n_trials')} trials "
            "(every threshold pair of every representation in every fold).",
        ),
        Para(wf.get("encoder_note") or "", "warning" if wf.get("encoder") == "reused" else ""),
        Para(wf.get("verdict") or "", "ok" if not wf.get("significant_edge") else ""),
    ]
    rows = _concatenated_rows(conc)
    blocks.append(
        Table(
            ["Strategy", "Return", "Trades", "Win rate", "Sharpe [95% CI]", "PSR", "DSR", "Max DD"],
            rows,
            "Concatenated out-of-sample trades of all folds",
        )
    )
    fold_rows = _fold_rows(folds)
    blocks.append(
        Table(
            [
                "Fold",
                "Fit days",
                "Traded days",
                "Policy",
                "τ call / put",
                "Trades",
                "Return",
                "Sharpe",
                "PSR",
                "Encoder verdict",
            ],
            fold_rows,
            "Per fold (thresholds chosen on the fold's own selection days)",
        )
    )
    if PLOT_NAME in images:
        blocks.append(Image(PLOT_NAME, PLOT_CAPTION))
    blocks.append(
        Bullets(
            [
                f"Outputs: walkforward/walkforward.json, folds.csv, equity.csv, trades.csv; "
                f"fold artifacts under walkforward/fold_k/ ({fmt(wf.get('seconds'))} s in all)."
            ]
        )
    )
    return Section("WALK-FORWARD BACKTEST", blocks)

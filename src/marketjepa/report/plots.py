"""Report figures: each function maps the run summary to PNG bytes, or ``None`` when the
data it needs is absent. Uses matplotlib's object API on the Agg canvas (no pyplot global
state, no display needed)."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from marketjepa.report.rules import lejepa_name, ok
from marketjepa.report.walkforward import PLOT_CAPTION, PLOT_NAME, walkforward_equity

DPI = 90


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    return buf.getvalue()


def _series(epochs: list[dict], key: str) -> tuple[np.ndarray, np.ndarray] | None:
    x = np.array([e.get("epoch") for e in epochs if ok(e.get(key)) and ok(e.get("epoch"))], float)
    y = np.array([e[key] for e in epochs if ok(e.get(key)) and ok(e.get("epoch"))], float)
    return (x, y) if len(y) else None


def loss_curves(summary: dict) -> bytes | None:
    """Train/val total loss, prediction loss and SIGReg per epoch."""
    epochs = summary.get("epochs") or []
    panels = [("total loss", "loss"), ("prediction loss", "pred"), ("SIGReg", "sigreg")]
    if not any(_series(epochs, f"{s}_{k}") for _, k in panels for s in ("train", "val")):
        return None
    fig = Figure(figsize=(11, 3.2))
    for i, (title, key) in enumerate(panels):
        ax = fig.add_subplot(1, 3, i + 1)
        for split, style in (("train", "-o"), ("val", "--s")):
            s = _series(epochs, f"{split}_{key}")
            if s:
                ax.plot(*s, style, ms=3, label=split)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=8)
        if key == "sigreg":
            ax.set_yscale("log")
    fig.tight_layout()
    return _png(fig)


def variance_rankme(summary: dict) -> bytes | None:
    """Per-dim variance, normalized variance and RankMe/d per epoch for both tensors."""
    epochs = summary.get("epochs") or []
    panels = [
        ("per-dim variance (mean)", "dim_var_mean"),
        ("normalized variance", "norm_var"),
        ("RankMe / d", "rankme_ratio"),
    ]
    if not any(_series(epochs, f"{t}_{k}") for _, k in panels for t in ("sig", "probe")):
        return None
    fig = Figure(figsize=(11, 3.2))
    for i, (title, key) in enumerate(panels):
        ax = fig.add_subplot(1, 3, i + 1)
        for tensor, label, style in (
            ("sig", "SIGReg tensor", "-o"),
            ("probe", "probe tensor", "--s"),
        ):
            s = _series(epochs, f"{tensor}_{key}")
            if s:
                ax.plot(*s, style, ms=3, label=label)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=8)
    fig.tight_layout()
    return _png(fig)


def eigen_spectrum(summary: dict) -> bytes | None:
    """Covariance eigenvalues (descending, normalized to sum 1) for both tensors."""
    tensors = (summary.get("diagnostics") or {}).get("tensors") or {}
    specs = {k: t["spectrum"] for k, t in tensors.items() if t.get("spectrum")}
    if not specs:
        return None
    fig = Figure(figsize=(6, 3.5))
    ax = fig.add_subplot(1, 1, 1)
    for name, spec in specs.items():
        ev = np.sort(np.clip(np.asarray(spec, float), 1e-12, None))[::-1]
        ax.semilogy(np.arange(1, len(ev) + 1), ev / ev.sum(), "-o", ms=2, label=f"{name} tensor")
    ax.set_xlabel("eigenvalue rank")
    ax.set_ylabel("share of variance")
    ax.set_title("eigenvalue spectrum")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _png(fig)


def probe_lifts(summary: dict) -> bytes | None:
    """Per representation, with 95% CIs: balanced-accuracy lift over the majority predictor
    (left) and direction-accuracy lift over ½ (right, the directional edge)."""
    rows = [
        r
        for r in (summary.get("probes") or {}).get("classification") or []
        if ok(r.get("lift_balanced"))
    ]
    if not rows:
        return None
    colors = [
        "tab:red"
        if r.get("kind") == "encoder"
        else "tab:green"
        if r.get("kind") == "oracle"
        else "tab:gray"
        for r in rows
    ]
    panels = [("lift_balanced", "balanced-accuracy lift over majority (95% CI)")]
    if any(ok(r.get("lift_direction")) for r in rows):
        panels.append(("lift_direction", "direction-accuracy lift over ½ (95% CI)"))
    fig = Figure(figsize=(5.5 * len(panels), 0.45 * len(rows) + 1.2))
    y = np.arange(len(rows))
    for i, (key, label) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        lift = np.array([r[key] if ok(r.get(key)) else np.nan for r in rows])
        cis = [r.get(f"{key}_ci") for r in rows]
        lo = np.array(
            [v - c[0] if c and ok(c[0]) and ok(v) else 0 for v, c in zip(lift, cis, strict=True)]
        )
        hi = np.array(
            [c[1] - v if c and ok(c[1]) and ok(v) else 0 for v, c in zip(lift, cis, strict=True)]
        )
        ax.barh(y, np.nan_to_num(lift), color=colors, alpha=0.6)
        ax.errorbar(np.nan_to_num(lift), y, xerr=[lo, hi], fmt="none", ecolor="black", capsize=3)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_yticks(y, [r["name"] for r in rows] if i == 0 else [""] * len(rows))
        ax.invert_yaxis()
        ax.set_xlabel(label)
    fig.tight_layout()
    return _png(fig)


def confusion_matrix(summary: dict) -> bytes | None:
    """Confusion matrix of the LeJEPA probe (rows true, columns predicted), row-normalized."""
    rows = (summary.get("probes") or {}).get("classification") or []
    name = lejepa_name(summary)
    row = next((r for r in rows if r["name"] == name and r.get("confusion")), None)
    if row is None:
        return None
    cm = np.asarray(row["confusion"], float)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        return None
    norm = cm / np.clip(cm.sum(axis=1, keepdims=True), 1, None)
    labels = (
        ["HOLD", "CALL", "PUT"][: cm.shape[0]] if cm.shape[0] <= 3 else list(range(cm.shape[0]))
    )
    fig = Figure(figsize=(4, 3.6))
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for (i, j), v in np.ndenumerate(cm):
        ax.text(
            j,
            i,
            f"{int(v)}\n{norm[i, j]:.0%}",
            ha="center",
            va="center",
            fontsize=8,
            color="white" if norm[i, j] > 0.6 else "black",
        )
    ax.set_xticks(range(cm.shape[0]), labels)
    ax.set_yticks(range(cm.shape[0]), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{name} probe")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return _png(fig)


def equity_drawdown(summary: dict) -> bytes | None:
    eq = (summary.get("backtest") or {}).get("equity") or {}
    if not eq.get("equity"):
        return None
    e, dd = np.asarray(eq["equity"], float), np.asarray(eq["drawdown"], float)
    t = [str(v) for v in eq.get("t") or []]
    x = np.array([])
    if t and all("-" in v for v in t):  # ISO timestamps; plain step counters stay indices
        try:
            x = np.array(t, dtype="datetime64[ns]")
        except ValueError:
            pass
    if len(x) != len(e):
        x = np.arange(len(e))
    fig = Figure(figsize=(9, 4))
    ax1 = fig.add_subplot(2, 1, 1)
    ax1.plot(x, e, color="tab:blue")
    ax1.set_ylabel("equity ($)")
    ax1.set_title("equity and drawdown")
    ax2 = fig.add_subplot(2, 1, 2, sharex=ax1)
    ax2.fill_between(x, 100 * dd, 0, color="tab:red", alpha=0.5)
    ax2.set_ylabel("drawdown (%)")
    fig.autofmt_xdate()
    fig.tight_layout()
    return _png(fig)


def trade_pnl_hist(summary: dict) -> bytes | None:
    pnl = np.asarray((summary.get("backtest") or {}).get("trade_pnl") or [], float)
    pnl = pnl[np.isfinite(pnl)]
    if not len(pnl):
        return None
    fig = Figure(figsize=(6, 3.2))
    ax = fig.add_subplot(1, 1, 1)
    ax.hist(pnl, bins=min(50, max(5, len(pnl) // 5)), color="tab:purple", alpha=0.7)
    ax.axvline(0, color="black", lw=0.8)
    ax.axvline(pnl.mean(), color="tab:orange", ls="--", label=f"mean ${pnl.mean():.2f}")
    ax.set_xlabel("net P&L per trade ($)")
    ax.set_ylabel("trades")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _png(fig)


def latent_probe(summary: dict) -> bytes | None:
    """Synthetic data only: linear decodability of the true regime per epoch."""
    epochs = summary.get("epochs") or []
    acc, share = _series(epochs, "latent_acc"), _series(epochs, "latent_share")
    if not acc and not share:
        return None
    fig = Figure(figsize=(6, 3.2))
    ax = fig.add_subplot(1, 1, 1)
    if acc:
        ax.plot(*acc, "-o", ms=3, label="latent-probe accuracy")
    if share:
        ax.plot(*share, "--s", ms=3, label="share of Bayes filter's")
    # The same probe on the encoder before step 1: what training has to beat.
    init = (summary.get("training") or {}).get("latent_init") or {}
    for key, color, name in (("latent_acc", "C0", "accuracy"), ("latent_share", "C1", "share")):
        v = init.get(key)
        if isinstance(v, int | float) and np.isfinite(v):
            ax.axhline(v, color=color, ls=":", lw=1, label=f"random init ({name})")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title("latent-state probe per epoch")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _png(fig)


PLOTS: dict[str, tuple[Callable[[dict], bytes | None], str]] = {
    "loss_curves": (loss_curves, "Loss curves (train/val): total, prediction, SIGReg"),
    "variance_rankme": (
        variance_rankme,
        "Per-dim variance, normalized variance and RankMe/d per epoch",
    ),
    "eigen_spectrum": (eigen_spectrum, "Eigenvalue spectrum of the embeddings"),
    "probe_lifts": (probe_lifts, "Probe balanced-accuracy lift with 95% CIs"),
    "confusion_matrix": (confusion_matrix, "Confusion matrix of the LeJEPA probe"),
    "latent_probe": (latent_probe, "Latent-state probe accuracy per epoch (synthetic data)"),
    "equity_drawdown": (equity_drawdown, "Equity and drawdown"),
    "trade_pnl_hist": (trade_pnl_hist, "Trade P&L histogram"),
    PLOT_NAME: (walkforward_equity, PLOT_CAPTION),
}


def render_all(summary: dict[str, Any]) -> dict[str, bytes]:
    """Every plot whose data is present, keyed by name (file stem)."""
    out = {}
    for name, (fn, _) in PLOTS.items():
        png = fn(summary)
        if png is not None:
            out[name] = png
    return out

"""The report's content in the seed document's section order and field names, as a small
document model (sections of paragraphs, tables, bullet lists and images) that
``render_markdown`` and ``html.render_html`` both render. All wording that states a
status is taken from computed findings (``rules.py``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from marketjepa.report.evidence import METHOD, probe_verdicts
from marketjepa.report.plots import PLOTS
from marketjepa.report.rules import (
    fmt,
    fmt_ci,
    lejepa_name,
    metric_statuses,
    money,
    ok,
    pct,
)
from marketjepa.report.walkforward import walkforward_section

SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2, "ok": 3}


@dataclass
class Para:
    text: str
    cls: str = ""  # html class hint: "warning", "critical", "ok"


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]
    caption: str = ""


@dataclass
class Bullets:
    items: list[str]
    ordered: bool = False


@dataclass
class Image:
    name: str  # plot name (file stem under plots/)
    caption: str


@dataclass
class Section:
    title: str
    blocks: list[Any] = field(default_factory=list)
    id: str = ""


def _v(x: Any, digits: int = 4) -> str:
    if isinstance(x, bool):
        return "on" if x else "off"
    if x is None:
        return "—"
    return fmt(x, digits) if isinstance(x, int | float) else str(x)


def _pct_ci(v: Any, ci: Any) -> str:
    s = pct(v)
    return f"{s} [{pct(ci[0])}, {pct(ci[1])}]" if ci and ok(v) else s


def _num_ci(v: Any, ci: Any) -> str:
    return f"{fmt(v)} {fmt_ci(ci)}" if ci and ok(v) else fmt(v)


def _images(names: list[str], available: set[str]) -> list[Image]:
    return [Image(n, PLOTS[n][1]) for n in names if n in available]


def _missing(section: dict) -> Para | None:
    return (
        None
        if section.get("available")
        else Para(section.get("note") or "stage not run", "warning")
    )


# ---------------------------------------------------------------------------- sections


def _architecture(s: dict) -> Section:
    m = s.get("model") or {}
    desc = {
        "feature_dim": "Input features per timestep",
        "embedding_dim": "Latent embedding dimension",
        "num_heads": "Transformer attention heads",
        "num_layers": "Transformer encoder layers",
        "ff_dim": "Feed-forward hidden dimension",
        "patch_length": "Timesteps per patch",
        "context_horizon": "Number of context patches",
        "gap": "Patches skipped between context and target",
        "target_horizon": "Number of target patches",
        "pooling": "Window embedding = last token or mean of tokens",
        "attention": "Causal: a token sees its own and earlier patches only",
    }
    rows = [[k, _v(m.get(k)), d] for k, d in desc.items()]
    return Section(
        "MODEL ARCHITECTURE PARAMETERS", [Table(["Parameter", "Value", "Description"], rows)]
    )


def _hyper(s: dict) -> Section:
    t = s.get("training") or {}
    conv = {"additive": "pred + λ·SIGReg", "lejepa": "(1−λ)·pred + λ·SIGReg"}.get(
        t.get("loss_convention"), "—"
    )
    rows = [
        [
            "lambda_sigreg",
            _v(t.get("lambda_sigreg")),
            f"SIGReg weight; loss convention: {t.get('loss_convention')} ({conv})",
        ],
        [
            "sigreg_on",
            f"{_v(t.get('sigreg_on'))} (pooling: {_v(t.get('sigreg_pooling'))})",
            "What SIGReg regularizes; the pooled term's pooling (same = the probed embedding)",
        ],
        [
            "target_exclude",
            _v(t.get("target_exclude")),
            "Input channels zeroed on the target path only",
        ],
        ["ema", _v(t.get("ema")), "EMA target encoder (off = shared weights, LeJEPA default)"],
        [
            "ema_momentum",
            _v(t.get("ema_momentum")) if t.get("ema") else "— (EMA off)",
            "Target encoder EMA decay rate",
        ],
        ["batch_size", _v(t.get("batch_size")), "Training batch size"],
        ["learning_rate", _v(t.get("learning_rate"), 6), "Peak learning rate"],
        [
            "epochs",
            f"{_v(t.get('epochs_run'))} of {_v(t.get('epochs'))}",
            "Epochs run of epochs planned",
        ],
        ["global_step", _v(t.get("global_step")), "Total optimization steps"],
    ]
    blocks: list[Any] = [Table(["Parameter", "Value", "Description"], rows)]
    if t.get("status"):
        msg = f": {t['message']}" if t.get("message") else ""
        blocks.append(
            Para(
                f"Pretraining status: {t['status']}{msg}",
                "ok" if t["status"] == "completed" else "critical",
            )
        )
    return Section("TRAINING HYPERPARAMETERS", blocks)


def _data(s: dict) -> Section:
    d = s.get("data") or {}
    src = d.get("source") or "—"
    if src == "synthetic":
        src = f"synthetic {d.get('ticker', '')} stocks + options (embedded market)"
    total = d.get("days_total")

    def days(k: str) -> str:
        v = d.get(f"days_{k}")
        share = f" ({pct(v / total, 0)})" if ok(v) and ok(total) and total else ""
        return f"{_v(v)}{share}"

    rows = [
        ["Data source", src],
        [
            "Synthetic signal strength",
            _v(d.get("signal")) if d.get("source") == "synthetic" else "n/a (real data)",
        ],
        ["Date range", f"{d.get('date_start', '—')} to {d.get('date_end', '—')}"],
        ["Total bars", _v(d.get("bars_total"))],
        ["After market filter", f"{_v(d.get('bars_after_filter'))} bars"],
    ]
    if d.get("raw_minutes") is not None:  # manifests before issue 11 lack these
        dates = d.get("dropped_session_dates") or []
        shown = ", ".join(dates[:3]) + (", …" if len(dates) > 3 else "")
        rows += [
            [
                "Session minutes: raw / filled",
                f"{_v(d.get('raw_minutes'))} / "
                f"{_v(d.get('filled_minutes'))} (filled bars are never labelled or traded)",
            ],
            [
                "Dropped partial sessions",
                f"{_v(d.get('dropped_sessions'))} ({_v(d.get('dropped_minutes'))} minutes"
                + (f": {shown}" if shown else "")
                + f"; data.partial_sessions={d.get('partial_sessions') or 'drop'})",
            ],
            ["Test rows that are filled bars", pct(d.get("filled_share_test"))],
        ]
    rows += [
        ["Total days", _v(total)],
        ["Training days", days("train")],
        ["Validation days", days("val")],
        ["Test days", days("test")],
        ["Embargo days", days("embargo")],
    ]
    blocks: list[Any] = [Table(["Metric", "Value"], rows)]
    rates = {k: v for k, v in (d.get("class_rates") or {}).items() if v}
    if rates:
        blocks.append(
            Table(
                ["Split", "HOLD rate", "BUY_CALL rate", "BUY_PUT rate"],
                [
                    [sp, pct(r.get("HOLD")), pct(r.get("BUY_CALL")), pct(r.get("BUY_PUT"))]
                    for sp, r in rates.items()
                ],
                "Label class rates per split",
            )
        )
    if not d.get("prepared_dir"):
        blocks.append(
            Para(
                "Prepared-data manifest not referenced by this run: bar and day counts unavailable."
            )
        )
    return Section("TRAINING DATA", blocks)


def _final(s: dict) -> Section:
    ep = (s.get("final") or {}).get("epoch")
    rows = [
        [r["metric"], _v(r["value"]), r["expected"], r["status"], r["rule"]]
        for r in metric_statuses(s)
    ]
    title = f"FINAL TRAINING METRICS (Epoch {_v(ep)})"
    blocks: list[Any] = [Table(["Metric", "Value", "Target/Expected", "Status", "Rule"], rows)]
    if not s.get("epochs"):
        blocks.insert(0, Para("stage not run (metrics.csv not found)", "warning"))
    return Section(title, blocks, id="final-metrics")


def _progression(s: dict, imgs: set[str]) -> Section:
    epochs = s.get("epochs") or []
    if not epochs:
        return Section(
            "TRAINING PROGRESSION", [Para("stage not run (metrics.csv not found)", "warning")]
        )
    # Keep the table readable: at most ~12 rows, always the first and the last epoch.
    step = max(1, len(epochs) // 10)
    shown = [e for i, e in enumerate(epochs) if i % step == 0 or i == len(epochs) - 1]
    cols = [
        ("Epoch", "epoch"),
        ("Train Loss", "train_loss"),
        ("Val Loss", "val_loss"),
        ("Pred Loss", "train_pred"),
        ("SIGReg Loss", "train_sigreg"),
        ("RankMe/d", "probe_rankme_ratio"),
        ("Norm. var", "probe_norm_var"),
        ("Dim var", "probe_dim_var_mean"),
        ("Latent acc", "latent_acc"),
    ]
    cols = [c for c in cols if any(ok(e.get(c[1])) for e in epochs)]
    rows = [[_v(e.get(k)) for _, k in cols] for e in shown]
    blocks: list[Any] = [Table([c for c, _ in cols], rows)]
    blocks += _images(["loss_curves", "variance_rankme", "latent_probe"], imgs)
    return Section("TRAINING PROGRESSION", blocks)


def _collapse_blocks(s: dict, findings: list[dict], imgs: set[str]) -> list[Any]:
    """Collapse measures per tensor, the held-out SIGReg statistic and the verdict."""
    blocks: list[Any] = [Para("COLLAPSE DIAGNOSTICS:")]
    f = {x["id"]: x for x in findings}
    diag = s.get("diagnostics") or {}
    if diag.get("available") and diag.get("tensors"):
        t = diag["tensors"]
        keys = [
            ("dim_var_mean", "per-dim variance (mean)"),
            ("dim_var_std", "per-dim variance (std)"),
            ("dim_var_min", "per-dim variance (min)"),
            ("mean_sq_norm", "mean squared norm"),
            ("norm_var", "normalized variance"),
            ("rankme", "RankMe"),
            ("rankme_ratio", "RankMe / d"),
            ("dead_dims", "dead dims"),
        ]
        names = [n for n in ("probe", "sigreg") if n in t]
        rows = [[label] + [_v(t[n].get(k)) for n in names] for k, label in keys]
        blocks.append(Table(["Measure"] + [f"{n} tensor" for n in names], rows))
        if ok(diag.get("heldout_sigreg")):
            blocks.append(
                Para(f"SIGReg statistic on held-out embeddings: {fmt(diag['heldout_sigreg'])}")
            )
    elif not diag.get("available"):
        blocks.append(Para(diag.get("note", "stage not run"), "warning"))
    col = f.get("collapse")
    if col:
        blocks.append(
            Para(
                f"Verdict: {col['status']} — {col['text']}",
                {"ok": "ok", "critical": "critical"}.get(col["severity"], "warning"),
            )
        )
    blocks += _images(["eigen_spectrum"], imgs)

    return blocks


def _classification_blocks(s: dict, probes: dict) -> list[Any]:
    """The probe-results table with its method paragraph."""
    blocks: list[Any] = []
    cls = probes.get("classification") or []
    if cls:
        blocks.append(
            Para(
                f"Class-balanced logistic regression on the {probes.get('n_classes')}-class entry label, "
                f"scored on {probes.get('split')} days; 95% block-bootstrap CIs. Lift = balanced accuracy "
                f"− 1/{probes.get('n_classes')} (the majority predictor's balanced accuracy). "
                "Direction = CALL-vs-PUT accuracy among rows where truth and prediction are both "
                "moves (chance ½); Status judges the direction lift, because balanced accuracy "
                "also rewards timing large moves (volatility), which is predictable even in a "
                "market with no directional edge. A LIFT needs the evidence gate (enough test "
                f"days, rows and rows per class; a non-degenerate CI) and a {METHOD}-adjusted "
                "p-value below the family α over all representations."
            )
        )
        rows = []
        verdicts = probe_verdicts(s)
        for r in cls:
            v = verdicts.get(r["name"])
            status = v.status if v is not None else "—"
            rows.append(
                [
                    r["name"],
                    pct(r.get("majority_accuracy")),
                    _pct_ci(r.get("accuracy"), r.get("accuracy_ci")),
                    _pct_ci(r.get("balanced_accuracy"), r.get("balanced_accuracy_ci")),
                    _num_ci(r.get("lift_balanced"), r.get("lift_balanced_ci")),
                    _pct_ci(r.get("direction_accuracy"), r.get("direction_accuracy_ci")),
                    fmt(r.get("macro_f1")),
                    status,
                ]
            )
        blocks.append(
            Table(
                [
                    "Representation",
                    "Majority (always HOLD)",
                    "Accuracy [95% CI]",
                    "Balanced acc. [95% CI]",
                    "Lift [95% CI]",
                    "Direction acc. [95% CI]",
                    "Macro-F1",
                    "Status",
                ],
                rows,
                "Probe results",
            )
        )
    return blocks


def _regression_latent_blocks(probes: dict, findings: list[dict]) -> list[Any]:
    """Regression probes (vol, return IC) and the latent-state probe."""
    blocks: list[Any] = []
    reg = probes.get("regression") or []
    if reg:
        blocks.append(
            Table(
                ["Representation", "Target", "R² [95% CI]", "IC [95% CI]"],
                [
                    [
                        r["name"],
                        r["target"],
                        _num_ci(r.get("r2"), r.get("r2_ci")),
                        _num_ci(r.get("ic"), r.get("ic_ci")),
                    ]
                    for r in reg
                ],
                "Regression probes (forward realized vol vs HAR-RV; forward return IC)",
            )
        )
        blocks += [Para(x["text"]) for x in findings if x["id"].startswith("vol_")]
    lat = probes.get("latent") or []
    if lat:
        blocks.append(
            Table(
                ["Representation", "Regime accuracy [95% CI]", "Share of Bayes filter's"],
                [
                    [
                        r["name"],
                        _pct_ci(r.get("accuracy"), r.get("accuracy_ci")),
                        pct(r.get("share_of_filter")),
                    ]
                    for r in lat
                ],
                "Latent-state probe (synthetic data)",
            )
        )
    return blocks


def _embedding(s: dict, findings: list[dict], imgs: set[str]) -> Section:
    blocks = _collapse_blocks(s, findings, imgs)
    blocks.append(Para("PREDICTIVE POWER TEST:"))
    probes = s.get("probes") or {}
    if not probes.get("available"):
        blocks.append(Para(probes.get("note", "stage not run"), "warning"))
        return Section("EMBEDDING QUALITY ANALYSIS", blocks)
    blocks += _classification_blocks(s, probes)
    blocks += _walk_forward(probes.get("walk_forward"))
    blocks += _images(["probe_lifts", "confusion_matrix"], imgs)
    vs = [x for x in findings if x["id"].startswith("vs_") or x["id"] == "init_supervised"]
    if vs:
        blocks.append(Bullets([f"{x['status']}: {x['text']}" for x in vs]))
    blocks += _regression_latent_blocks(probes, findings)
    f = {x["id"]: x for x in findings}
    col = f.get("collapse")
    name = lejepa_name(s)
    own = f.get(f"lift_{name}")
    if col and own:
        blocks.append(
            Para(
                f"CONCLUSION: embeddings are {col['status']} (collapse diagnostics) and "
                f"{name} shows {own['status']} ({own['text'].split(' — ', 1)[-1]}).",
                "ok" if own["status"] == "LIFT" else "warning",
            )
        )
    return Section("EMBEDDING QUALITY ANALYSIS", blocks)


def _walk_forward(wf: dict | None) -> list[Any]:
    """The walk-forward probe table (mean ± SD over folds, per-fold direction lift)."""
    if not wf or not wf.get("rows"):
        return []
    folds = wf.get("folds") or []

    def block(f: dict) -> str:
        where = f.get("dates") or f.get("days") or ["?", "?"]
        n = f.get("n_rows")
        return f"{f['fold']}: {where[0]} – {where[1]}" + (f" ({fmt(n)} rows)" if ok(n) else "")

    def sd(r: dict, key: str, as_pct: bool) -> str:
        show = pct if as_pct else fmt
        return f"{show(r.get(key))} ± {show(r.get(key + '_std'))}"

    fold_ids = [f["fold"] for f in folds]
    rows = []
    for r in wf["rows"]:
        per = {f["fold"]: f.get("lift_direction") for f in r.get("folds") or []}
        rows.append(
            [
                r["name"],
                sd(r, "balanced_accuracy", True),
                sd(r, "direction_accuracy", True),
                sd(r, "lift_direction", False),
                *(fmt(per.get(k)) for k in fold_ids),
                _num_ci(r.get("lift_direction_pooled"), r.get("lift_direction_pooled_ci")),
            ]
        )
    share, e = wf.get("select_share"), wf.get("embargo_days")
    embargo = f"{fmt(e)} day{'' if e == 1 else 's'}"
    text = (
        f"Walk-forward evaluation over all probed days: {wf.get('n_folds')} expanding folds; "
        f"fold k fits on the days before block k (embargo {embargo}), "
        + (f"chooses C on the last {pct(share, 0)} of those days, " if ok(share) else "")
        + "and scores block k. Scored blocks: "
        + "; ".join(block(f) for f in folds)
        + "."
    )
    if wf.get("note"):
        text += f" Note: {wf['note']}."
    return [
        Para(text),
        Table(
            [
                "Representation",
                "Balanced acc. (mean ± SD)",
                "Direction acc. (mean ± SD)",
                "Direction lift (mean ± SD)",
                *(f"Fold {k} direction lift" for k in fold_ids),
                "Pooled direction lift [95% CI]",
            ],
            rows,
            "Walk-forward probes",
        ),
    ]


def _root_causes(findings: list[dict]) -> Section:
    ordered = sorted(findings, key=lambda x: SEVERITY_ORDER.get(x["severity"], 9))
    items = [
        f"**{x['status']}** ({x['severity']}) — {x['text']}"
        for x in ordered
        if x["severity"] != "ok"
    ]
    passed = [f"{x['status']}: {x['text']}" for x in ordered if x["severity"] == "ok"]
    blocks: list[Any] = [
        Bullets(items, ordered=True) if items else Para("No rule flagged a problem in this run.")
    ]
    if passed:
        blocks += [
            Para(
                f"Checks passed (each claim above the evidence gate; lifts, comparisons and "
                f"strategy significance {METHOD}-corrected across all representations and "
                "policies tested):"
            ),
            Bullets(passed),
        ]
    return Section("ROOT CAUSE ANALYSIS", blocks)


def _recommendations(recs: list[dict]) -> Section:
    items = [f"{r['text']} _(because: {', '.join(r['because'])})_" for r in recs]
    return Section(
        "RECOMMENDATIONS",
        [Bullets(items, ordered=True) if items else Para("No rule triggered a recommendation.")],
    )


def _policy(s: dict, findings: list[dict]) -> Section:
    pol = s.get("policy") or {}
    miss = _missing(pol)
    if miss:
        return Section("ENTRY POLICY", [miss])
    splits = pol.get("splits") or {}
    names = [n for n in ("train", "val", "test") if n in splits] + [
        n for n in splits if n not in ("train", "val", "test")
    ]
    label = {"train": "Train", "val": "Validation", "test": "Test"}
    rows = [
        ["Accuracy"] + [pct(splits[n].get("accuracy")) for n in names],
        ["Balanced accuracy"] + [pct(splits[n].get("balanced_accuracy")) for n in names],
    ]
    for kind, title in (
        ("label_rates", "label"),
        ("pred_rates", "predicted"),
        ("signal_rates", "traded, after thresholds"),
    ):
        for c in ("HOLD", "BUY_CALL", "BUY_PUT"):
            vals = [pct((splits[n].get(kind) or {}).get(c)) for n in names]
            if any(v != "—" for v in vals):
                rows.append([f"{c} rate ({title})"] + vals)
    blocks: list[Any] = [
        Para(
            f"Policy head '{_v(pol.get('head'))}' on representation '{_v(pol.get('representation'))}'."
        ),
        Table(["Metric"] + [label.get(n, n) for n in names], rows),
    ]
    for w in pol.get("warnings") or []:
        blocks.append(Para(f"Policy stage warning: {w}", "warning"))
    one = next((x for x in findings if x["id"] == "one_side"), None)
    if one:
        blocks.append(Para(f"WARNING: {one['text']}", "warning"))
    return Section("ENTRY POLICY", blocks)


def _backtest(s: dict, findings: list[dict], imgs: set[str]) -> Section:
    bt = s.get("backtest") or {}
    miss = _missing(bt)
    if miss:
        return Section("BACKTEST RESULTS", [miss])
    m = bt.get("metrics") or {}
    f = {x["id"]: x for x in findings}
    items = [
        f"Evaluated on: {bt.get('evaluated_on')} days; representation: {_v(bt.get('representation'))}",
        f"Option prices: {'modeled' if bt.get('prices_modeled') else 'observed' if bt.get('prices_modeled') is False else '—'} (pricing mode {_v(bt.get('pricing'))})",
        f"Total Return: {pct(m.get('total_return'), 2)}",
        f"Total Trades: {_v(m.get('n_trades'))}",
        f"Win Rate: {pct(m.get('win_rate'))}",
        f"Trade Distribution: {pct(m.get('call_share'), 0)} CALL, {pct(m.get('put_share'), 0)} PUT",
        f"Sharpe Ratio: {fmt(m.get('sharpe'), 2)} (bootstrap 95% CI {fmt_ci(m.get('sharpe_ci'), 2)})",
        f"Sortino Ratio: {fmt(m.get('sortino'), 2)}",
        f"Max Drawdown: {pct(m.get('max_drawdown'), 2)}",
        f"PSR: {fmt(m.get('psr'))}; DSR: {fmt(m.get('dsr'))} (number of trials: {_v(m.get('n_trials'))})",
    ]
    blocks: list[Any] = [Bullets(items)]
    a = bt.get("attribution") or {}
    if a:
        rows = [
            [k, money(a.get(k))]
            for k in ("underlying", "theta", "vega", "other", "gross", "costs", "net")
        ]
        blocks.append(
            Table(
                ["P&L component", "Sum over trades"],
                rows,
                "P&L attribution: underlying move (delta+gamma), time decay, vol change, costs (paid)",
            )
        )
    base = bt.get("baselines") or []
    if base:
        me = {"name": f"{bt.get('representation') or 'policy'} (this report)", **m}
        rows = [
            [
                b["name"],
                pct(b.get("total_return"), 2),
                _v(b.get("n_trades")),
                pct(b.get("win_rate")),
                _num_ci(b.get("sharpe"), b.get("sharpe_ci")),
                fmt(b.get("psr")),
                fmt(b.get("dsr")),
            ]
            for b in [me, *base]
        ]
        blocks.append(
            Table(
                ["Policy", "Total return", "Trades", "Win rate", "Sharpe [95% CI]", "PSR", "DSR"],
                rows,
                "Baselines (same costs and rules; random entries: mean and 5–95% range over seeds)",
            )
        )
    for k in (
        "one_side",
        "costs_exceed_edge",
        "edge_survives_costs",
        "edge_not_shown",
        "theta_spread",
        "loss_driver",
        "not_significant",
        "significant",
        "not_test_days",
        "prices_modeled",
    ):
        if k in f:
            blocks.append(
                Para(
                    f"{f[k]['status']}: {f[k]['text']}",
                    {"ok": "ok", "info": ""}.get(f[k]["severity"], "warning"),
                )
            )
    blocks += _images(["equity_drawdown", "trade_pnl_hist"], imgs)
    return Section("BACKTEST RESULTS", blocks)


def build_sections(
    summary: dict,
    findings: list[dict],
    recs: list[dict],
    headline: list[str],
    images: set[str],
) -> list[Section]:
    """The report in the seed's section order (plus a headline up front)."""
    return [
        Section("HEADLINE", [Bullets(headline)]),
        _architecture(summary),
        _hyper(summary),
        _data(summary),
        _final(summary),
        _progression(summary, images),
        _embedding(summary, findings, images),
        _root_causes(findings),
        _recommendations(recs),
        _policy(summary, findings),
        _backtest(summary, findings, images),
        *([wf] if (wf := walkforward_section(summary, images)) else []),
    ]


def header_lines(summary: dict) -> list[str]:
    t = summary.get("training") or {}
    man = summary.get("manifest") or {}
    best = f" (epoch {t['best_epoch']})" if t.get("best_epoch") is not None else ""
    return [
        f"Generated: {summary.get('generated')}",
        f"Run: {summary.get('run_name')} — preset {(summary.get('config') or {}).get('preset', '—')}, "
        f"marketjepa {man.get('marketjepa_version', '—')}, commit {man.get('git_commit') or '—'}, "
        f"device {man.get('device', '—')}",
        f"Checkpoint: checkpoints/best.pt{best}",
    ]


# ---------------------------------------------------------------------------- markdown


def _cell(x: str) -> str:
    return str(x).replace("|", "\\|").replace("\n", " ")


def render_markdown(summary: dict, sections: list[Section], plot_dir: str = "plots") -> str:
    out = ["# LeJEPA Training Summary Report", ""]
    out += [f"{line}  " for line in header_lines(summary)] + [""]
    for sec in sections:
        out += [f"## {sec.title}", ""]
        for b in sec.blocks:
            if isinstance(b, Para):
                out += [b.text, ""]
            elif isinstance(b, Table):
                if b.caption:
                    out += [f"*{b.caption}*", ""]
                out.append("| " + " | ".join(_cell(h) for h in b.headers) + " |")
                out.append("|" + "|".join("---" for _ in b.headers) + "|")
                out += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in b.rows]
                out.append("")
            elif isinstance(b, Bullets):
                out += [f"{i + 1}. {x}" if b.ordered else f"- {x}" for i, x in enumerate(b.items)]
                out.append("")
            elif isinstance(b, Image):
                out += [f"![{b.caption}]({plot_dir}/{b.name}.png)", ""]
    out += ["---", "END OF REPORT", ""]
    return "\n".join(out)

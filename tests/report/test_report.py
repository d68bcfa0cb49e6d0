"""Report end to end on hand-built run directories (stage formats of docs/architecture.md)."""

from __future__ import annotations

import base64
import io
import json
import re
from datetime import date
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from matplotlib import image as mpimg

from marketjepa.config import load_config
from marketjepa.errors import DataValidationError, MarketJepaError
from marketjepa.report.build import build_report, headline
from marketjepa.report.collect import collect_run

SEED_SECTIONS = [
    "MODEL ARCHITECTURE PARAMETERS",
    "TRAINING HYPERPARAMETERS",
    "TRAINING DATA",
    "FINAL TRAINING METRICS",
    "TRAINING PROGRESSION",
    "EMBEDDING QUALITY ANALYSIS",
    "ROOT CAUSE ANALYSIS",
    "RECOMMENDATIONS",
    "ENTRY POLICY",
    "BACKTEST RESULTS",
]


def _write(path: Path, obj: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def make_run(
    root: Path,
    *,
    signal: float = 2.0,
    stages: tuple[str, ...] = ("pretrain", "diagnose", "probe", "policy", "backtest"),
    dsr: float = 0.42,
    total_return: float = 0.031,
) -> Path:
    """A small run directory with every artifact the report reads."""
    cfg = load_config("tiny", overrides=[f"synth.signal={signal}", "train.epochs=4"])
    run = root / "runs" / "20240101-000000-tiny"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(cfg.to_yaml())
    prep = root / "data" / "prepared" / "abc123"
    _write(
        prep / "manifest.json",
        {
            "config_hash": "abc123",
            "date_start": "2022-01-03",
            "date_end": "2022-03-15",
            "bars_total": 22000,
            "bars_after_filter": 19110,
            "days": {"train": 34, "val": 7, "test": 7, "embargo": 2},
            "class_rates": {
                "train": {"HOLD": 0.84, "BUY_CALL": 0.08, "BUY_PUT": 0.08},
                "test": {"HOLD": 0.83, "BUY_CALL": 0.09, "BUY_PUT": 0.08},
            },
            "feature_names": [f"f{i}" for i in range(23)],
        },
    )
    _write(run / "manifest.json", {"marketjepa_version": "0.1.0", "prepared_dir": str(prep)})
    rng = np.random.default_rng(0)
    if "pretrain" in stages:
        n = 4
        ep = np.arange(1, n + 1)
        cols = {
            "epoch": ep,
            "step": ep * 20,
            "train_loss": 3.0 / ep,
            "train_pred": 1.0 / ep,
            "train_sigreg": 2.0 / ep,
            "val_loss": 3.2 / ep,
            "val_pred": 1.1 / ep,
            "val_sigreg": 2.1 / ep,
            "lr": np.full(n, 1e-3),
            "latent_acc": np.array([0.50, 0.55, 0.58, 0.60]),
            "latent_share": np.array([0.6, 0.65, 0.7, 0.72]),
            "seconds": np.full(n, 1.5),
        }
        for t in ("sig", "probe"):
            cols |= {
                f"{t}_dim_var_mean": np.full(n, 0.9),
                f"{t}_dim_var_std": np.full(n, 0.3),
                f"{t}_dim_var_min": np.full(n, 0.2),
                f"{t}_mean_sq_norm": np.full(n, 28.8),
                f"{t}_norm_var": np.array([0.7, 0.8, 0.9, 0.95]),
                f"{t}_rankme": np.array([10.0, 14.0, 18.0, 20.0]),
                f"{t}_rankme_ratio": np.array([10.0, 14.0, 18.0, 20.0]) / 32,
                f"{t}_dead_dims": np.zeros(n),
            }
        pl.DataFrame(cols).write_csv(run / "metrics.csv")
        _write(run / "pretrain.json", {"status": "completed", "epochs_run": 4, "best_epoch": 3})
    if "diagnose" in stages:
        # Layout of evaluate/diagnose.py: per-split reports per tensor, verdict on held-out.
        spec = np.sort(rng.exponential(1.0, 32))[::-1]
        t = {
            "n": 500,
            "d": 32,
            "dim_var_mean": 0.9,
            "dim_var_std": 0.3,
            "dim_var_min": 0.2,
            "mean_sq_norm": 28.8,
            "norm_var": 0.95,
            "rankme": 20.0,
            "rankme_ratio": 0.625,
            "dead_dims": 0,
            "spectrum": (spec / spec.sum()).tolist(),
            "sigreg_heldout": 1.7,
        }
        verdict = {
            "status": "HEALTHY",
            "reasons": ["probe tensor: rankme_ratio 0.625 >= 0.25"],
            "thresholds": {"healthy_rankme_ratio": 0.25, "collapsed_rankme_ratio": 0.05},
        }
        _write(
            run / "diagnostics.json",
            {
                "checkpoint": "best",
                "heldout_split": "test",
                "splits": {"val": {"probe": t, "sigreg": t}, "test": {"probe": t, "sigreg": t}},
                "verdict": verdict,
            },
        )
    if "probe" in stages:
        # Layout of evaluate/probes.py: "representation", point values, "ci": {metric: [lo, hi]}.
        def row(name, bacc, half=0.02, acc=0.6):
            return {
                "representation": name,
                "accuracy": acc,
                "balanced_accuracy": bacc,
                "macro_f1": bacc - 0.05,
                "majority_accuracy": 0.83,
                "lift_accuracy": acc - 0.83,
                "lift_balanced": bacc - 1 / 3,
                "confusion": [[500, 40, 45], [30, 20, 5], [28, 4, 22]],
                "ci": {
                    "accuracy": [acc - 0.03, acc + 0.03],
                    "balanced_accuracy": [bacc - half, bacc + half],
                    "lift_balanced": [bacc - half - 1 / 3, bacc + half - 1 / 3],
                },
            }

        strong = signal > 0
        _write(
            run / "probes.json",
            {
                "evaluated_on": "test",
                "classification": [
                    row("majority", 1 / 3, 0.0, 0.83),
                    row("lejepa", 0.40 if strong else 0.335),
                    row("raw_window", 0.45 if strong else 0.333),
                    row("random_init", 0.36 if strong else 0.33),
                    row("supervised", 0.41 if strong else 0.334),
                    row("lejepa_finetuned", 0.43 if strong else 0.335),
                    row("oracle_latent", 0.60 if strong else 0.334),
                ],
                "regression": [
                    {
                        "representation": "lejepa",
                        "target": "fwd_rv",
                        "metric": "r2",
                        "value": 0.3,
                        "ci": {"r2": [0.25, 0.35]},
                    },
                    {
                        "representation": "har_rv",
                        "target": "fwd_rv",
                        "metric": "r2",
                        "value": 0.32,
                        "ci": {"r2": [0.28, 0.36]},
                    },
                    {
                        "representation": "lejepa",
                        "target": "fwd_ret",
                        "metric": "ic",
                        "value": 0.01,
                        "ci": {"ic": [-0.02, 0.04]},
                    },
                ],
                "latent": [
                    {
                        "representation": "lejepa",
                        "accuracy": 0.6,
                        "share_of_filter": 0.72,
                        "ci": {"accuracy": [0.55, 0.65], "share_of_filter": [0.6, 0.8]},
                    }
                ],
                "paired_tests": [
                    {
                        "a": "lejepa",
                        "b": "raw_window",
                        "metric": "balanced_accuracy",
                        "difference": -0.05 if strong else 0.002,
                        "ci": [-0.07, -0.03] if strong else [-0.02, 0.02],
                    },
                    {
                        "a": "lejepa_finetuned",
                        "b": "supervised",
                        "metric": "balanced_accuracy",
                        "difference": 0.02,
                        "ci": [-0.01, 0.05],
                    },
                ],
                "walk_forward": {
                    "n_folds": 2,
                    "embargo_days": 1,
                    "select_share": 0.15,
                    "folds": [
                        {
                            "fold": 1,
                            "days": [17, 32],
                            "dates": ["2024-01-25", "2024-02-15"],
                            "n_rows": 300,
                        },
                        {
                            "fold": 2,
                            "days": [33, 49],
                            "dates": ["2024-02-16", "2024-03-11"],
                            "n_rows": 320,
                        },
                    ],
                    "representations": {
                        name: {
                            "folds": [
                                {
                                    "fold": k,
                                    "days": d,
                                    "n_rows": n,
                                    "balanced_accuracy": b,
                                    "lift_balanced": b - 1 / 3,
                                    "direction_accuracy": 0.5 + lift,
                                    "lift_direction": lift,
                                }
                                for k, d, n, b, lift in (
                                    (1, [17, 32], 300, 0.40, 0.061),
                                    (2, [33, 49], 320, 0.42, 0.043),
                                )
                            ],
                            "mean": {
                                "balanced_accuracy": 0.41,
                                "lift_balanced": 0.41 - 1 / 3,
                                "direction_accuracy": 0.552,
                                "lift_direction": 0.052,
                            },
                            "pooled": {
                                "lift_direction": 0.051,
                                "ci": {"lift_direction": [-0.012, 0.118]},
                            },
                            "std": {
                                "balanced_accuracy": 0.014,
                                "lift_balanced": 0.014,
                                "direction_accuracy": 0.0127,
                                "lift_direction": 0.0127,
                            },
                        }
                        for name in ("lejepa", "raw_window")
                    },
                    "note": "all probed rows",
                },
            },
        )
    if "policy" in stages:
        # Layout of trading/policy.py: one fitted policy per representation.
        rates = {"hold": 0.84, "call": 0.08, "put": 0.08}
        cls = {
            s: {
                "n": 100,
                "accuracy": 0.8,
                "balanced_accuracy": 0.38,
                "true_rates": rates,
                "pred_rates": {"hold": 0.9, "call": 0.06, "put": 0.04},
            }
            for s in ("train", "val", "test")
        }
        info = {
            "kind": "classifier",
            "classification": cls,
            "n_trials": 12,
            "signal_rates": {
                "train": {"call": 0.05, "put": 0.03},
                "val": {"call": 0.05, "put": 0.03},
                "test": {"call": 0.05, "put": 0.03},
            },
            "warnings": [],
        }
        _write(
            run / "policy" / "policy.json",
            {
                "kind": "classifier",
                "head": "logistic",
                "thresholds_chosen_on": "val",
                "evaluated_on": "test",
                "order": ["lejepa", "raw_window"],
                "representations": {"lejepa": info, "raw_window": info},
                "warnings": [],
                "n_trials_total": 24,
            },
        )
    if "backtest" in stages:
        # Layout of trading/backtest.py: every strategy in one trades/equity file.
        n = 40
        under = rng.normal(1.0, 5.0, n)
        theta, vega, cost = np.full(n, -1.5), rng.normal(0, 0.5, n), np.full(n, 3.4)
        gross = under + theta + vega
        pnl = gross - cost
        frames = []
        for strat, scale in (("lejepa", 1.0), ("always_call", 2.0)):
            frames.append(
                pl.DataFrame(
                    {
                        "strategy": [strat] * n,
                        "side": np.where(np.arange(n) % 3 == 0, "PUT", "CALL"),
                        "entry_ts": np.arange(n, dtype=np.int64) * 60_000_000_000,
                        "gross_pnl": scale * gross,
                        "pnl_delta": scale * under,
                        "pnl_theta": theta,
                        "pnl_vega": vega,
                        "cost_total": cost,
                        "net_pnl": scale * gross - cost,
                    }
                )
            )
        (run / "backtest").mkdir()
        pl.concat(frames).write_parquet(run / "backtest" / "trades.parquet")
        eq = 10_000 + np.cumsum(pnl)
        days = pl.date_range(date(2022, 1, 3), date(2022, 2, 11), eager=True)[:n]
        pl.DataFrame(
            {
                "strategy": ["lejepa"] * n,
                "date": days,
                "equity": eq,
                "drawdown": 1 - eq / np.maximum.accumulate(eq),
            }
        ).write_parquet(run / "backtest" / "equity.parquet")
        lejepa = {
            "total_return": total_return,
            "net_pnl": float(pnl.sum()),
            "n_trades": n,
            "win_rate": 0.45,
            "call_share": 26 / 40,
            "put_share": 14 / 40,
            "sharpe": 0.8,
            "sharpe_ci_low": -1.2,
            "sharpe_ci_high": 2.6,
            "sortino": 1.1,
            "max_drawdown": 0.02,
            "psr": 0.7,
            "n_trials": 12,
            "dsr": dsr,
        }
        _write(
            run / "backtest" / "metrics.json",
            {
                "evaluated_on": "test",
                "pricing_mode": "surface",
                "prices_modeled": True,
                "n_trials": 24,
                "strategies": {
                    "lejepa": lejepa,
                    "always_call": {
                        "total_return": -0.05,
                        "n_trades": n,
                        "sharpe": -1.0,
                        "sharpe_ci_low": -2.0,
                        "sharpe_ci_high": 0.1,
                        "dsr": 0.01,
                    },
                    "random": {
                        "n_seeds": 5,
                        "total_return": -0.04,
                        "n_trades": n,
                        "sharpe": -0.9,
                        "sharpe_p05": -2.5,
                        "sharpe_p95": 0.6,
                    },
                },
                "attribution": {
                    "lejepa": {
                        "gross_pnl": float(gross.sum()),
                        "pnl_delta": float(under.sum()),
                        "pnl_gamma": 0.0,
                        "pnl_underlying": float(under.sum()),
                        "pnl_theta": float(theta.sum()),
                        "pnl_vega": float(vega.sum()),
                        "cost_total": float(cost.sum()),
                        "net_pnl": float(pnl.sum()),
                    },
                },
            },
        )
    return run


class _Checker(HTMLParser):
    VOID = {"br", "img", "meta", "hr", "link", "input"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.imgs: list[str] = []
        self.tables = 0

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.imgs.append(dict(attrs).get("src", ""))
        if tag == "table":
            self.tables += 1
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unbalanced </{tag}> with open {self.stack[-3:]}")
        else:
            self.stack.pop()


def test_full_report_md_html_plots(tmp_path):
    run = make_run(tmp_path)
    md_path = build_report(run)
    md = md_path.read_text()
    # Seed sections, in the seed's order.
    positions = [md.index(f"## {s}") for s in SEED_SECTIONS]
    assert positions == sorted(positions)
    # Seed field names and this run's numbers.
    for field in (
        "feature_dim",
        "embedding_dim",
        "num_heads",
        "lambda_sigreg",
        "ema_momentum",
        "global_step",
        "Total train loss",
        "SIGReg loss",
        "dim_variance_mean",
        "Total Return",
        "Win Rate",
        "Trade Distribution",
        "Sharpe Ratio",
    ):
        assert field in md, field
    assert "| feature_dim | 23 |" in md and "| embedding_dim | 32 |" in md
    assert "| After market filter | 19,110 bars |" in md
    assert "HEALTHY" in md and "loses to raw_window" in md
    # walk-forward table right under the probe results; the pretraining-as-init test
    assert md.index("Probe results") < md.index("Walk-forward probes") < md.index("Regression")
    row = "| lejepa | 41.0% ± 1.4% | 55.2% ± 1.3% | 0.052 ± 0.0127 | 0.061 | 0.043 |"
    assert row + " 0.051 [-0.012, 0.118] |" in md
    assert "2: 2024-02-16 – 2024-03-11 (320 rows)" in md
    assert "NO CLEAR EFFECT: pretraining as initialization: lejepa_finetuned" in md
    assert "DSR: 0.42 (number of trials: 12)" in md
    assert "Trade Distribution: 65% CALL, 35% PUT" in md
    plots = {p.stem for p in (run / "plots").glob("*.png")}
    assert plots == {
        "loss_curves",
        "variance_rankme",
        "eigen_spectrum",
        "probe_lifts",
        "confusion_matrix",
        "latent_probe",
        "equity_drawdown",
        "trade_pnl_hist",
    }

    html = (run / "report.html").read_text()
    chk = _Checker()
    chk.feed(html)
    chk.close()
    assert chk.errors == [] and chk.stack == []
    assert len(chk.imgs) == len(plots)
    for src in chk.imgs:
        assert src.startswith("data:image/png;base64,")
        img = mpimg.imread(io.BytesIO(base64.b64decode(src.split(",", 1)[1])), format="png")
        assert img.ndim == 3 and img.shape[0] > 50 and img.shape[1] > 50
    assert 'src="http' not in html and 'href="http' not in html  # self-contained
    assert chk.tables >= 8
    for s in SEED_SECTIONS:
        assert s in html
    for needle in (
        "Probe results",
        "Baselines (same costs and rules",
        "lejepa (this report)",
        "P&amp;L attribution",
        "raw_window",
        "always_call",
    ):
        assert needle in html, needle


def test_missing_stages_say_not_run(tmp_path):
    run = make_run(tmp_path, stages=())
    s = collect_run(run)
    for stage in ("diagnostics", "probes", "policy", "backtest"):
        assert s[stage]["available"] is False
        assert s[stage]["note"].startswith("stage not run")
    assert not any(v["ran"] for v in s["stages"].values())
    md = build_report(run).read_text()
    assert md.count("stage not run") >= 5
    assert "INCONCLUSIVE" in md
    lines = headline(s)
    assert 3 <= len(lines) <= 5
    assert "probe stage not run" in lines[1] and "backtest stage not run" in lines[3]
    assert not list((run / "plots").glob("*.png")) if (run / "plots").exists() else True


def test_collect_normalizes_and_is_json_serializable(tmp_path):
    run = make_run(tmp_path)
    s = collect_run(run)
    json.dumps(s)  # the summary is plain data (used by `compare`)
    assert s["model"]["feature_dim"] == 23 and s["model"]["gap"] == 1
    assert s["training"]["global_step"] == 80 and s["training"]["epochs_run"] == 4
    assert s["data"]["days_total"] == 50 and s["data"]["days_test"] == 7
    assert s["data"]["bars_after_filter"] == 19110
    assert s["data"]["class_rates"]["test"]["BUY_CALL"] == 0.09
    rows = {r["name"]: r for r in s["probes"]["classification"]}
    assert rows["lejepa"]["accuracy_ci"] == pytest.approx([0.57, 0.63])
    assert rows["lejepa"]["bacc_lift"] == pytest.approx(0.40 - 1 / 3)
    assert rows["lejepa"]["bacc_lift_ci"] == pytest.approx([0.38 - 1 / 3, 0.42 - 1 / 3])
    assert rows["oracle_latent"]["kind"] == "oracle" and rows["lejepa"]["kind"] == "encoder"
    assert rows["lejepa"]["majority_rate"] == 0.83
    reg = {(r["name"], r["target"]): r for r in s["probes"]["regression"]}
    assert reg[("lejepa", "fwd_rv")]["r2_ci"] == [0.25, 0.35]
    assert reg[("lejepa", "fwd_ret")]["ic"] == 0.01
    assert s["probes"]["paired"][0]["ci"] == [-0.07, -0.03]
    assert s["probes"]["latent"][0]["accuracy_ci"] == [0.55, 0.65]
    assert (
        rows["lejepa_finetuned"]["kind"] == "encoder" and rows["supervised"]["kind"] == "baseline"
    )
    wf = s["probes"]["walk_forward"]
    assert wf["n_folds"] == 2 and wf["folds"][1]["dates"] == ["2024-02-16", "2024-03-11"]
    wf_rows = {r["name"]: r for r in wf["rows"]}
    assert wf_rows["lejepa"]["dir_lift"] == 0.052 and wf_rows["lejepa"]["dir_lift_std"] == 0.0127
    assert [f["dir_lift"] for f in wf_rows["raw_window"]["folds"]] == [0.061, 0.043]
    assert wf_rows["raw_window"]["kind"] == "baseline"
    assert wf_rows["lejepa"]["dir_lift_pooled_ci"] == [-0.012, 0.118]
    d = s["diagnostics"]
    assert d["verdict"] == "HEALTHY" and d["heldout_sigreg"] == 1.7 and d["heldout_split"] == "test"
    assert d["tensors"]["probe"]["rankme_ratio"] == 0.625
    pol = s["policy"]
    assert (
        pol["representation"] == "lejepa"
        and pol["splits"]["test"]["label_rates"]["BUY_PUT"] == 0.08
    )
    assert pol["splits"]["test"]["signal_rates"]["HOLD"] == pytest.approx(0.92)
    bt = s["backtest"]
    assert bt["representation"] == "lejepa" and bt["metrics"]["n_trials"] == 12
    assert (bt["metrics"]["n_call"], bt["metrics"]["n_put"]) == (26, 14)  # lejepa rows only
    assert bt["metrics"]["sharpe_ci"] == [-1.2, 2.6]
    a = bt["attribution"]
    assert a["net"] == pytest.approx(sum(bt["trade_pnl"]))
    assert a["gross"] - a["costs"] == pytest.approx(a["net"]) and a["costs"] == pytest.approx(136.0)
    assert bt["prices_modeled"] is True and bt["pricing"] == "surface"
    base = {b["name"]: b for b in bt["baselines"]}
    assert set(base) == {"always_call", "random"} and base["random"]["sharpe_ci"] == [-2.5, 0.6]
    assert max(bt["equity"]["drawdown"]) <= 0 and bt["equity"]["t"][0] == "2022-01-03"


def test_collect_accepts_flat_layouts(tmp_path):
    """Alternative layouts (dict-keyed rows, _lo/_hi, {value, ci}) normalize the same way."""
    run = make_run(tmp_path, stages=())
    _write(
        run / "probes.json",
        {
            "classification": {
                "lejepa": {
                    "accuracy": {"value": 0.6, "ci": [0.57, 0.63]},
                    "balanced_accuracy": 0.4,
                    "balanced_accuracy_lo": 0.38,
                    "balanced_accuracy_hi": 0.42,
                },
            },
            "paired": [{"a": "lejepa", "b": "raw_window", "diff": 0.01, "lo": -0.01, "hi": 0.03}],
        },
    )
    (run / "backtest").mkdir()
    _write(
        run / "backtest" / "metrics.json",
        {
            "evaluated_on": "val",
            "pricing": "bars",
            "strategy": {"total_return": 0.1, "dsr": 0.5},
            "attribution": {"underlying": 10.0, "theta": -4.0, "vega": 1.0, "costs": -3.0},
        },
    )
    s = collect_run(run)
    r = s["probes"]["classification"][0]
    assert r["name"] == "lejepa" and r["accuracy_ci"] == [0.57, 0.63]
    assert r["bacc_lift_ci"] == pytest.approx([0.38 - 1 / 3, 0.42 - 1 / 3])
    assert s["probes"]["paired"][0]["ci"] == [-0.01, 0.03]
    bt = s["backtest"]
    assert bt["evaluated_on"] == "val" and bt["prices_modeled"] is False
    assert bt["attribution"] == pytest.approx(
        {
            "underlying": 10.0,
            "theta": -4.0,
            "vega": 1.0,
            "other": None,
            "costs": 3.0,
            "gross": 7.0,
            "net": 4.0,
        }
    )


def test_corrupt_artifact_names_file(tmp_path):
    run = make_run(tmp_path, stages=("probe",))
    (run / "probes.json").write_text("{not json")
    with pytest.raises(DataValidationError, match="probes.json"):
        collect_run(run)
    with pytest.raises(MarketJepaError, match="not found"):
        collect_run(tmp_path / "nope")


def test_headline_never_claims_profit_without_significant_dsr(tmp_path):
    s = collect_run(make_run(tmp_path / "a", signal=0.0, dsr=0.42, total_return=0.031))
    lines = headline(s)
    money = lines[3]
    assert "not significant" in money and "0.42" in money and "makes money" not in money
    assert lines[2].startswith("Directional edge: no")
    assert lines[0].startswith("Collapse: HEALTHY")
    assert lines[-1].endswith("report.html")

    s2 = collect_run(make_run(tmp_path / "b", dsr=0.99, total_return=0.12))
    assert "makes money" in headline(s2)[3] and "0.99" in headline(s2)[3]
    assert headline(s2)[2].startswith("Directional edge: yes")
    assert "loses to raw_window" in headline(s2)[1]

    s3 = collect_run(make_run(tmp_path / "c", dsr=0.99, total_return=-0.1))
    assert "loses money" in headline(s3)[3] and "-10.00%" in headline(s3)[3]


def test_null_market_report_says_nothing_to_trade(tmp_path):
    run = make_run(tmp_path, signal=0.0, stages=("diagnose", "probe", "policy"))
    md = build_report(run).read_text()
    rec = md[md.index("## RECOMMENDATIONS") : md.index("## ENTRY POLICY")]
    assert "nothing to trade" in rec
    assert re.search(r"NO SIGNAL", md)
    assert "makes money" not in md

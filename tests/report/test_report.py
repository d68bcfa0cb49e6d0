"""Report end to end on hand-built run directories (stage formats of docs/architecture.md)."""

from __future__ import annotations

import base64
import io
import json
import math
import re
from datetime import date
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from matplotlib import image as mpimg

import helpers.results as R
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
    """A small run directory with every result file the report reads (built by
    tests/helpers/results.py, so each file matches its model in marketjepa.results)."""
    cfg = load_config("tiny", overrides=[f"synth.signal={signal}", "train.epochs=4"])
    run = root / "runs" / "20240101-000000-tiny"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(cfg.to_yaml())
    prep = root / "data" / "prepared" / "abc123"
    _write(prep / "manifest.json", R.prepared_manifest_dict())
    _write(
        run / "manifest.json", {"marketjepa_version": "0.1.0", "inputs": {"prepared": str(prep)}}
    )
    rng = np.random.default_rng(0)
    if "pretrain" in stages:
        _write_metrics_csv(run)
        _write(run / "pretrain.json", R.pretrain_dict())
    if "diagnose" in stages:
        spec = np.sort(rng.exponential(1.0, 32))[::-1]
        reasons = ["probe tensor: rankme_ratio 0.625 >= 0.25"]
        _write(
            run / "diagnostics.json",
            R.diagnostics_dict((spec / spec.sum()).tolist(), reasons=reasons),
        )
    if "probe" in stages:
        _write(run / "probes.json", _probe_table(signal > 0))
    if "policy" in stages:
        _write(run / "policy" / "policy.json", _policy())
    if "backtest" in stages:
        _write_backtest(run, rng, dsr, total_return)
    return run


def _write_metrics_csv(run: Path) -> None:
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


def _walk_forward() -> dict:
    """Two folds; lejepa and raw_window with the same per-fold scores."""
    spans = (
        (1, [17, 32], 300, ["2024-01-25", "2024-02-15"]),
        (2, [33, 49], 320, ["2024-02-16", "2024-03-11"]),
    )
    folds = [
        {"fold": k, "fit_days": [0, d[0] - 3], "select_days": [d[0] - 2, d[0] - 2], "days": d}
        | {"n_fit": 1000, "n_select": 100, "n_rows": n, "dates": dates}
        for k, d, n, dates in spans
    ]
    per_fold = [
        {"fold": k, "days": d, "n_rows": n, "C": 1.0, "balanced_accuracy": b}
        | {"lift_balanced": b - 1 / 3, "direction_accuracy": 0.5 + lift, "lift_direction": lift}
        for (k, d, n, _), b, lift in zip(spans, (0.40, 0.42), (0.061, 0.043), strict=True)
    ]
    rep = {
        "folds": per_fold,
        "mean": {"balanced_accuracy": 0.41, "lift_balanced": 0.41 - 1 / 3}
        | {"direction_accuracy": 0.552, "lift_direction": 0.052},
        "pooled": {"lift_direction": 0.051, "ci": {"lift_direction": [-0.012, 0.118]}},
        "std": {"balanced_accuracy": 0.014, "lift_balanced": 0.014}
        | {"direction_accuracy": 0.0127, "lift_direction": 0.0127},
    }
    return {
        "n_folds": 2,
        "embargo_days": 1,
        "select_share": 0.15,
        "selected_by": "balanced_accuracy",
        "folds": folds,
        "representations": {"lejepa": rep, "raw_window": rep},
        "note": "all probed rows",
    }


def _probe_table(strong: bool) -> dict:
    """probes.json: direction not measured (nan), as for a majority row."""

    def row(name, bacc, half=0.02, acc=0.6):
        return R.classification_row(name, bacc, half, acc, dir_acc=math.nan, dir_half=math.nan)

    return R.probe_table_dict(
        classification=[
            row("majority", 1 / 3, 0.0, 0.83),
            row("lejepa", 0.40 if strong else 0.335),
            row("raw_window", 0.45 if strong else 0.333),
            row("random_init", 0.36 if strong else 0.33),
            row("supervised", 0.41 if strong else 0.334),
            row("lejepa_finetuned", 0.43 if strong else 0.335),
            row("oracle_latent", 0.60 if strong else 0.334),
        ],
        regression=[
            R.regression_row("lejepa", "fwd_rv", "r2", 0.3),
            R.regression_row("har_rv", "fwd_rv", "r2", 0.32, 0.04),
            R.regression_row("lejepa", "fwd_ret", "ic", 0.01, 0.03),
        ],
        latent=[
            R.latent_row("lejepa", 0.6, 0.72)
            | {"ci": {"accuracy": [0.55, 0.65], "share_of_filter": [0.6, 0.8]}}
        ],
        paired_tests=[
            R.paired_test("lejepa", "raw_window", -0.05 if strong else 0.002)
            | {"ci": [-0.07, -0.03] if strong else [-0.02, 0.02]},
            R.paired_test("lejepa_finetuned", "supervised", 0.02, 0.03),
        ],
        walk_forward=_walk_forward(),
        # enough test days and rows for the evidence gates (report/evidence.py)
        n_rows={"train": 4000, "val": 900, "test": 1800},
        n_days={"train": 34, "val": 7, "test": 30},
    )


def _policy() -> dict:
    """policy.json: the same classifier policy on lejepa and raw_window."""
    rates = {"hold": 0.84, "call": 0.08, "put": 0.08}
    split = {"n": 100, "accuracy": 0.8, "balanced_accuracy": 0.38, "true_rates": rates}
    split |= {"pred_rates": {"hold": 0.9, "call": 0.06, "put": 0.04}}
    info = R.representation_policy(
        classification={s: split for s in ("train", "val", "test")},
        n_trials=12,
        signal_rates={s: {"call": 0.05, "put": 0.03} for s in ("train", "val", "test")},
    )
    return R.policy_dict(
        ("lejepa", "raw_window"),
        representations={"lejepa": info, "raw_window": info},
        n_trials_total=24,
    )


def _write_backtest(run: Path, rng: np.random.Generator, dsr: float, total_return: float) -> None:
    """Every strategy in one trades file, lejepa's equity, and metrics.json."""
    n = 40
    under = rng.normal(1.0, 5.0, n)
    theta, vega, cost = np.full(n, -1.5), rng.normal(0, 0.5, n), np.full(n, 3.4)
    gross = under + theta + vega
    pnl = gross - cost
    side = np.where(np.arange(n) % 3 == 0, "PUT", "CALL")
    frames = [
        pl.DataFrame(
            {
                "strategy": [strat] * n,
                "side": side,
                "right": np.where(side == "PUT", "P", "C"),
                "entry_ts": np.arange(n, dtype=np.int64) * 60_000_000_000,
                "gross_pnl": scale * gross,
                "pnl_delta": scale * under,
                "pnl_theta": theta,
                "pnl_vega": vega,
                "cost_total": cost,
                "net_pnl": scale * gross - cost,
            }
        )
        for strat, scale in (("lejepa", 1.0), ("always_call", 2.0))
    ]
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
    lejepa = R.strategy_metrics(total_return, n, 0.8, dsr, net_pnl=float(pnl.sum()))
    lejepa |= {"win_rate": 0.45, "call_share": 26 / 40, "put_share": 14 / 40, "sortino": 1.1}
    lejepa |= {"sharpe_ci_low": -1.2, "sharpe_ci_high": 2.6, "psr": 0.7, "n_trials": 12}
    always_call = R.strategy_metrics(-0.05, n, -1.0, 0.01, sharpe_ci_low=-2.0, sharpe_ci_high=0.1)
    random = R.random_baseline_metrics(-0.04, n, -0.9, sharpe_p05=-2.5, sharpe_p95=0.6)
    attribution = R.attribution(float(pnl.sum()), float(cost.sum()))
    attribution |= {"gross_pnl": float(gross.sum()), "pnl_delta": float(under.sum())}
    attribution |= {"pnl_underlying": float(under.sum()), "pnl_gamma": 0.0}
    attribution |= {"pnl_theta": float(theta.sum()), "pnl_vega": float(vega.sum())}
    body = R.backtest_dict(
        {"lejepa": lejepa, "always_call": always_call, "random": random}, n_trials=24, days=30
    )
    body["attribution"] = {"lejepa": attribution}
    _write(run / "backtest" / "metrics.json", body)


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
    # the pretraining levers that decide what the embedding carries (tiny preset: defaults)
    assert "| attention | bidirectional |" in md
    assert "| sigreg_on | pooled (pooling: same) |" in md and "| target_exclude | none |" in md
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
    assert rows["lejepa"]["lift_balanced"] == pytest.approx(0.40 - 1 / 3)
    assert rows["lejepa"]["lift_balanced_ci"] == pytest.approx([0.38 - 1 / 3, 0.42 - 1 / 3])
    assert rows["oracle_latent"]["kind"] == "oracle" and rows["lejepa"]["kind"] == "encoder"
    assert rows["lejepa"]["majority_accuracy"] == 0.83
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
    assert (
        wf_rows["lejepa"]["lift_direction"] == 0.052
        and wf_rows["lejepa"]["lift_direction_std"] == 0.0127
    )
    assert [f["lift_direction"] for f in wf_rows["raw_window"]["folds"]] == [0.061, 0.043]
    assert wf_rows["raw_window"]["kind"] == "baseline"
    assert wf_rows["lejepa"]["lift_direction_pooled_ci"] == [-0.012, 0.118]
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


def test_a_renamed_field_fails_loudly_naming_file_and_field(tmp_path):
    """The report reads typed results: a stage that renames a metric is an error, not a
    silent "—" in the report."""
    run = make_run(tmp_path, stages=("probe",))
    body = json.loads((run / "probes.json").read_text())
    body["classification"][1]["bacc_lift"] = body["classification"][1].pop("lift_balanced")
    _write(run / "probes.json", body)
    with pytest.raises(DataValidationError, match=r"probes.json.*classification\.1\.lift_balanced"):
        collect_run(run)


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

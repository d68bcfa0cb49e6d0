"""Walk-forward backtest: causal fold boundaries and the tiny preset end to end.

1. ``fold_splits``: every fold fits, then selects, then trades, in that order, with the
   embargo between its training days and its traded block; the traded blocks tile the
   days after the first block.
2. Causality: perturbing every day after a fold's training days (its embargo, its traded
   block and everything later) leaves that fold's normalizer, label threshold, pretrained
   encoder, policy head and thresholds unchanged, while its traded P&L does change.
3. ``marketjepa walkforward`` on the tiny preset (2 folds): outputs, concatenation
   arithmetic, DSR trial count, the report section and plot, ``--reuse-encoder``'s leak
   statement, and a clear error without a checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from marketjepa.cli import app
from marketjepa.config import SplitConfig, load_config
from marketjepa.data.ingest import ingest
from marketjepa.data.splits import EMBARGO, TEST, TRAIN, VAL
from marketjepa.data.synthetic import generate_market
from marketjepa.paths import synthetic_dir
from marketjepa.trading.walkforward import fold_config, fold_splits, run_fold


def _dirs(root: Path) -> list[str]:
    return [
        f"runs_dir={root / 'runs'}",
        f"data.prepared_dir={root / 'prepared'}",
        f"synth.out_dir={root / 'raw'}",
    ]


@pytest.mark.parametrize("n_days,n_folds,embargo", [(60, 3, 1), (124, 4, 2), (40, 1, 0)])
def test_fold_splits_are_causal_and_tile_the_days(n_days, n_folds, embargo):
    cfg = SplitConfig(embargo_days=embargo)
    folds = fold_splits(n_days, cfg, n_folds)
    assert len(folds) == n_folds
    traded = []
    for f in folds:
        fit, sel, test = (np.flatnonzero(f == s) for s in (TRAIN, VAL, TEST))
        assert fit.size and sel.size and test.size
        assert fit.max() + embargo < sel.min()  # embargo between fit and selection days
        assert sel.max() + embargo < test.min()  # and before the traded block
        assert np.all(np.diff(test) == 1)
        assert np.all(f[test.max() + 1 :] == EMBARGO)  # later days unused
        traded.append(test)
    all_traded = np.concatenate(traded)
    assert np.array_equal(all_traded, np.arange(all_traded[0], n_days))  # disjoint, in order


def _perturb_after(result, first_day) -> object:
    """Same ingest result with prices, volume and IVs changed on days ≥ ``first_day``."""
    bars = result.bars
    late = (bars["session"] >= first_day).to_numpy()
    rng = np.random.default_rng(7)
    factor = np.where(late, np.exp(np.cumsum(rng.normal(0, 2e-3, bars.height) * late)), 1.0)
    vol = np.where(late, rng.uniform(0.3, 3.0, bars.height), 1.0)
    bars = bars.with_columns(
        *(pl.col(c) * factor for c in ("open", "high", "low", "close")),
        pl.col("volume") * vol,
    )
    summary = result.option_summary
    if summary is not None:
        iv = [c for c in summary.columns if c.startswith("iv_")]
        summary = summary.with_columns(
            *(pl.when(pl.Series(late)).then(pl.col(c) * 1.3).otherwise(pl.col(c)) for c in iv)
        )
    return type(result)(bars, summary, result.option_bars, dict(result.log))


def _fitted(fold_dir: Path) -> str:
    policy = json.loads((fold_dir / "policy" / "policy.json").read_text())
    pre = json.loads((fold_dir / "pretrain.json").read_text())
    pre["final"].pop("seconds", None)
    fitted = {
        "normalization": json.loads((fold_dir / "normalization.json").read_text()),
        "label_k": json.loads((fold_dir / "prepared_manifest.json").read_text())["label_k"],
        "pretrain": {
            k: pre[k] for k in ("final", "best_epoch", "n_train_windows", "n_val_windows")
        },
        "policy": {
            name: {
                "thresholds": [rep["tau_call"], rep["tau_put"]],
                "trials": rep["trials"],  # val P&L of every threshold pair: head + thresholds
                "fit": {s: rep["classification"][s] for s in ("train", "val")},
                "val_signal_rates": rep["signal_rates"]["val"],
            }
            for name, rep in policy["representations"].items()
        },
    }
    return json.dumps(fitted, sort_keys=True)  # text: NaN == NaN


def test_fold_fit_ignores_every_day_after_its_training_days(tmp_path):
    cfg = load_config(
        "tiny",
        overrides=[*_dirs(tmp_path), "train.epochs=1", "backtest.random_baseline_seeds=1"],
    )
    generate_market(cfg.synth, synthetic_dir(cfg), progress=False)
    result = ingest(cfg, progress=False)
    dates = result.bars["session"].unique(maintain_order=True).to_list()
    per_day = fold_splits(len(dates), cfg.split, 2)[0]
    first_late = int(np.flatnonzero(per_day == VAL)[-1]) + 1  # the embargo, then the block
    fcfg = fold_config(cfg)
    a = run_fold(fcfg, result, None, per_day, tmp_path / "a")
    b = run_fold(fcfg, _perturb_after(result, dates[first_late]), None, per_day, tmp_path / "b")
    assert _fitted(tmp_path / "a") == _fitted(tmp_path / "b")
    # The perturbation reached the traded block: its P&L differs.
    pnl = [r["backtest"]["strategies"]["always_call"]["net_pnl"] for r in (a, b)]
    assert pnl[0] != pnl[1]


@pytest.mark.slow
def test_walkforward_command_tiny_end_to_end(tmp_path):
    runner = CliRunner()
    sets = [x for s in _dirs(tmp_path) for x in ("--set", s)]
    run_dir = tmp_path / "runs" / "wf"
    args = ["walkforward", "--preset", "tiny", *sets, "--folds", "2", "--run-dir", str(run_dir)]

    missing = runner.invoke(app, [*args, "--reuse-encoder"])
    assert missing.exit_code == 2, missing.output
    assert "--reuse-encoder" in missing.output and "best.pt not found" in missing.output

    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    wf_dir = run_dir / "walkforward"
    wf = json.loads((wf_dir / "walkforward.json").read_text())
    for name in ("folds.csv", "equity.csv", "trades.csv", "fold_1/policy/policy.json"):
        assert (wf_dir / name).exists(), name
    assert not (wf_dir / "fold_1" / "prepared").exists()  # per-fold datasets are removed
    assert wf["n_folds"] == 2 and wf["encoder"] == "pretrained per fold"

    # One OOS curve per strategy over exactly the traded days, P&L = sum of the folds'.
    equity = pl.read_csv(wf_dir / "equity.csv")
    lej = equity.filter(pl.col("strategy") == "lejepa")
    assert lej.height == wf["traded_days"] == sum(f["traded"]["days"] for f in wf["folds"])
    assert lej["date"].is_sorted() and lej["date"].n_unique() == lej.height
    fold_pnl = sum(f["metrics"]["lejepa"]["net_pnl"] for f in wf["folds"])
    conc = wf["concatenated"]["lejepa"]
    assert conc["net_pnl"] == pytest.approx(fold_pnl)
    assert lej["equity"][-1] == pytest.approx(10_000 + fold_pnl)
    assert conc["n_trades"] == sum(f["metrics"]["lejepa"]["n_trades"] for f in wf["folds"])
    # DSR counts every threshold pair of both representations in both folds.
    assert (
        conc["n_trials"] == wf["n_trials"] == sum(sum(f["n_trials"].values()) for f in wf["folds"])
    )
    # baselines are deflated by the same run-wide count (issue #11)
    ac = wf["concatenated"]["always_call"]
    assert wf["n_trials"] > 2 and ac["n_trials"] == wf["n_trials"] and ac["dsr"] <= ac["psr"]
    assert conc["sharpe_ci_low"] is not None and conc["psr"] is not None

    report = (run_dir / "report.md").read_text()
    assert "## WALK-FORWARD BACKTEST" in report and wf["verdict"] in report
    assert (run_dir / "plots" / "walkforward_equity.png").exists()

    # An unchanged rerun reuses the finished folds (an interrupted walk-forward resumes).
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and again.output.count("reusing") == 2, again.output
    assert (
        json.loads((wf_dir / "walkforward.json").read_text())["concatenated"] == wf["concatenated"]
    )

    # Reusing the run's encoder: stated as a leak for the folds whose traded days it saw.
    (run_dir / "checkpoints").mkdir()
    ckpt = wf_dir / "fold_1" / "checkpoints" / "best.pt"
    (run_dir / "checkpoints" / "best.pt").write_bytes(ckpt.read_bytes())
    res = runner.invoke(app, [*args, "--reuse-encoder"])
    assert res.exit_code == 0, res.output
    wf = json.loads((wf_dir / "walkforward.json").read_text())
    assert wf["encoder"] == "reused" and wf["encoder_note"].startswith("LEAK RISK")
    leak = wf["encoder_leak"]
    assert leak["folds_with_leak"] and all(n > 0 for n in leak["traded_days_seen_per_fold"][:1])


def test_fold_config_trades_the_test_block_even_without_a_test_split():
    """The seed preset has no test split; a fold still trades its TEST block, not val."""
    from marketjepa.trading.backtest import evaluation_split

    cfg = load_config("seed")
    fcfg = fold_config(cfg)
    per_day = fold_splits(100, cfg.split, 3)[0]
    assert evaluation_split(fcfg, per_day) == (TEST, "test")
    assert fcfg.split.embargo_days == cfg.split.embargo_days
    assert fcfg.model_dump(exclude={"split"}) == cfg.model_dump(exclude={"split"})

"""Evidence gate and Holm correction (report/evidence.py, issue #11): short test sets,
degenerate CIs, one-sided predictors and chance lifts never read as an edge."""

from __future__ import annotations

import numpy as np
import pytest
from test_rules import bt, probes, prow, summary

from marketjepa.config import EvalConfig
from marketjepa.evaluate import probes as pr
from marketjepa.report import evidence as E
from marketjepa.report import rules as R
from marketjepa.report.build import headline
from marketjepa.report.collect import _probes_section
from marketjepa.results import ProbeTable
from marketjepa.trading import metrics as M

EV = EvalConfig(bootstrap_samples=100, bootstrap_block_days=5)


def test_holm_matches_a_hand_computed_example():
    # Sorted: 0.005, 0.01, 0.03, 0.04 → ×4, ×3, ×2, ×1 = 0.02, 0.03, 0.06, 0.04, then the
    # running maximum: 0.02, 0.03, 0.06, 0.06 (returned in the input order).
    adj = E.holm([0.01, 0.04, 0.03, 0.005])
    assert adj == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert [a < 0.05 for a in adj] == [True, False, False, True]
    assert E.holm([float("nan"), 0.01]) == pytest.approx([1.0, 0.02])
    assert E.holm([]) == []
    # Weighted (Holm 1979 §4), weights ½, ¼, ¼: order by p/w = 0.06, 0.004, 0.008 and
    # multiply by the weight still untested: 0.004·1, 0.008·¾ = 0.006, 0.06·½ = 0.03.
    assert E.holm([0.03, 0.001, 0.002], [0.5, 0.25, 0.25]) == pytest.approx([0.03, 0.004, 0.006])
    assert E.holm([0.01, 0.04], [1.0, 1.0]) == pytest.approx(E.holm([0.01, 0.04]))
    with pytest.raises(ValueError, match="positive weight"):
        E.holm([0.01], [0.0])


def test_headline_row_gets_half_the_family_alpha():
    names = ["lejepa", "raw_window", "hybrid", "oracle_latent", "supervised"]
    w = E.headline_weights(names, "lejepa")
    assert w == pytest.approx([0.5, 0.125, 0.125, 0.125, 0.125]) and sum(w) == pytest.approx(1)
    assert E.headline_weights(names, None) == [1.0] * 5
    assert E.headline_weights(["lejepa"], "lejepa") == [1.0]
    # p = 0.02 for LeJEPA alone is a claim at α = 0.05 with weight ½ (0.02 < 0.025), not
    # with equal weights over 5 rows (0.02·5 = 0.1); the family-wise bound is the same.
    p = [0.02, 0.5, 0.6, 0.7, 0.8]
    assert E.holm(p, w)[0] == pytest.approx(0.04) and E.holm(p)[0] == pytest.approx(0.1)


def test_p_value_from_bootstrap_se_and_from_ci():
    assert E.p_two_sided(1.96, 1.0) == pytest.approx(0.05, abs=1e-3)
    assert np.isnan(E.p_two_sided(0.1, 0.0))
    # Few test days: Student-t (t_18 two-sided 5% point is 2.101) with day blocks − 1 df:
    # 19 days in 3-day blocks are 7 resampling units; 5-day blocks shrink to 4 days so the
    # resampler keeps 4 blocks (5 units); 148 days in 5-day blocks are 30 units.
    assert E.p_two_sided(2.101, 1.0, df=18) == pytest.approx(0.05, abs=1e-3)
    assert E.cluster_df(summary(probes={"eval_days": 19, "block_days": 3})) == 6
    assert E.cluster_df(summary(probes={"eval_days": 19, "block_days": 5})) == 4
    assert E.cluster_df(summary(probes={"eval_days": 148, "block_days": 5})) == 29
    assert E.cluster_df(summary(probes={})) is None
    assert E.se_from_ci([-1.96, 1.96], 0.95) == pytest.approx(1.0, rel=1e-3)


def _run_probes(test_days: int, seed: int = 3) -> dict:
    """probes.json of a planted market with ``test_days`` test days (real probe fits)."""
    rng = np.random.default_rng(seed)
    per_day, n_days = 60, (30, 8, test_days)
    split = np.concatenate([np.full(n * per_day, s, np.int8) for s, n in enumerate(n_days)])
    day = np.repeat(np.arange(sum(n_days)), per_day)
    n = day.size
    label = rng.choice(3, size=n, p=[0.6, 0.2, 0.2])
    # Forward returns that carry the label's sign, as in a planted market.
    move = np.select([label == 1, label == 2], [1.0, -1.0], 0.0)
    rows = pr.ProbeRows(
        anchors=np.arange(n),
        split=split,
        label=label,
        day=day,
        fwd_ret=0.003 * (move + rng.normal(size=n)),
        fwd_rv=rng.normal(size=n),
        sigma_h=np.full(n, 0.003),
    )
    centers = rng.normal(size=(3, 4))
    reps = {
        "lejepa": (2.0 * centers[label] + rng.normal(size=(n, 4))).astype(np.float32),
        "raw_window": rng.normal(size=(n, 4)).astype(np.float32),
    }
    table = pr.probe_table(reps, rows, EV, paired=(("lejepa", "raw_window"),))
    return {
        "evaluated_on": "test",
        "n_rows": rows.counts(),
        "n_days": {pr.SPLIT_NAMES[i]: int(np.unique(day[split == i]).size) for i in range(3)},
        "ci_level": EV.ci_level,
        "bootstrap": {"block_days": EV.bootstrap_block_days, "samples": EV.bootstrap_samples},
        **table,
        "supervised_history": [],
        "notes": [],
        "seconds": 0.0,
    }


@pytest.mark.parametrize("test_days", [1, 2, 5])
def test_short_test_sets_say_insufficient_evidence_never_yes(test_days):
    s = summary(
        probes=_probes_section(ProbeTable.model_validate(_run_probes(test_days))), run_dir="run"
    )
    findings = R.evaluate(s)
    edge = next(x for x in headline(s, findings) if x.startswith("Directional edge"))
    assert edge.startswith("Directional edge: INSUFFICIENT EVIDENCE"), edge
    assert f"{test_days} test day" in edge and "need ≥ 20 for a day-block CI" in edge
    assert "yes" not in edge
    statuses = {f["id"]: f["status"] for f in findings}
    assert "LIFT" not in statuses.values() and "BEATS" not in statuses.values()
    assert statuses["insufficient_evidence"] == "INSUFFICIENT EVIDENCE"
    assert statuses["vs_raw_window"] == "INSUFFICIENT EVIDENCE"


def test_enough_test_days_find_the_planted_edge():
    # The control that makes the test above meaningful: same market, 30 test days.
    s = summary(probes=_probes_section(ProbeTable.model_validate(_run_probes(30))), run_dir="run")
    edge = next(x for x in headline(s) if x.startswith("Directional edge"))
    assert edge.startswith("Directional edge: yes") and "Holm-adjusted" in edge
    assert "directional return (t-test over 30 test days)" in edge, edge


def _gated(**probe_fields) -> dict:
    p = probes(*probe_fields.pop("rows"), paired=probe_fields.pop("paired", ()))
    return summary(probes={**p, "eval_days": 40, "eval_rows": 5000, **probe_fields})


def test_single_class_test_set_is_insufficient_not_balanced_accuracy_one():
    maj = prow("majority", 1.0, 0.0)
    s = _gated(
        rows=[maj, prow("lejepa", 0.9, 0.02)],
        class_counts={"HOLD": 900.0, "BUY_CALL": 0.0, "BUY_PUT": 0.0},
    )
    f = {x["id"]: x for x in R.probe_lifts(s)}
    assert f["lift_lejepa"]["status"] == "INSUFFICIENT EVIDENCE"
    assert "0 BUY_CALL rows among the scored rows; need ≥ 20" in f["lift_lejepa"]["text"]


def test_zero_width_ci_never_beats():
    pair = {"a": "lejepa", "b": "raw_window", "metric": "balanced_accuracy"}
    s = _gated(
        rows=[prow("lejepa", 0.619, 0.0), prow("raw_window", 0.5, 0.0)],
        paired=[{**pair, "diff": 0.119, "ci": [0.119, 0.119]}],
    )
    f = {x["id"]: x for x in R.lejepa_vs_baselines(s)}
    assert f["vs_raw_window"]["status"] == "INSUFFICIENT EVIDENCE"
    assert "zero width" in f["vs_raw_window"]["text"]
    lifts = {x["id"]: x["status"] for x in R.probe_lifts(s)}
    assert lifts["lift_lejepa"] == "INSUFFICIENT EVIDENCE"


def test_one_sided_predictor_has_no_measured_direction_lift():
    row = prow("lejepa", 0.40) | {
        "lift_direction": 0.0,
        "lift_direction_ci": [0.0, 0.0],
        "confusion": [[500, 80, 0], [40, 60, 0], [50, 70, 0]],
    }
    s = _gated(rows=[row])
    f = {x["id"]: x for x in R.probe_lifts(s)}
    assert f["lift_lejepa"]["status"] == "NO LIFT"
    assert "predicts BUY_CALL only" in f["lift_lejepa"]["text"]
    assert "by construction" in f["lift_lejepa"]["text"]


def test_one_chance_reference_lift_is_not_a_signal_after_holm():
    # raw_window's CI just excludes 0 (p ≈ 0.03 alone); with 5 rows tested, Holm needs
    # p < 0.01 for the smallest: no LIFT, no "signal present".
    def drow(name, lift, half):
        return prow(name, 0.34, 0.02) | {
            "lift_direction": lift,
            "lift_direction_ci": [lift - half, lift + half],
        }

    rows = [
        drow("lejepa", 0.0, 0.05),
        drow("raw_window", 0.055, 0.05),
        drow("random_init", -0.01, 0.05),
        drow("oracle_latent", 0.01, 0.05),
        drow("oracle_filter", -0.02, 0.05),
    ]
    s = _gated(rows=rows)
    f = {x["id"]: x for x in R.evaluate(s)}
    assert f["lift_raw_window"]["status"] == "NO LIFT"
    assert "not after the Holm correction" in f["lift_raw_window"]["text"]
    assert "signal_present" not in f and f["signal_absent"]["status"] == "NO SIGNAL"
    # A lift far from chance survives the correction.
    rows[1] = drow("raw_window", 0.2, 0.05)
    f = {x["id"]: x for x in R.evaluate(_gated(rows=rows))}
    assert f["lift_raw_window"]["status"] == "LIFT" and "signal_present" in f


def test_one_trade_sharpe_ci_covers_zero_and_is_insufficient():
    pnl = np.zeros(20)
    pnl[7] = 40.0
    out = M.strategy_metrics(
        net_pnl=np.array([40.0]),
        is_call=np.array([True]),
        daily_pnl=pnl,
        initial_capital=10_000.0,
        bars_in_position=15,
        n_bars=7800,
        premium_notional=100.0,
        n_trials=48,
        bootstrap_samples=200,
    )
    # No-trade replicates count as Sharpe 0 instead of being dropped.
    assert out["sharpe_ci_low"] <= 0 < out["sharpe_ci_high"]
    assert out["sharpe_ci_valid_share"] == 1.0
    # 48 trials with unknown spread still deflate: DSR < PSR.
    assert out["dsr"] < out["psr"]
    s = summary(backtest=bt({**out, "sharpe_ci": [out["sharpe_ci_low"], out["sharpe_ci_high"]]}))
    f = R.significance(s)
    assert f["status"] == "INSUFFICIENT EVIDENCE" and "1 trade; need ≥ 30" in f["text"]


def test_strategy_significance_is_holm_corrected_over_policies():
    main = {"dsr": 0.97, "n_trades": 100}
    others = [{"name": f"rep{i}", "dsr": 0.5, "n_trades": 100} for i in range(3)]
    s = summary(backtest=bt(main, baselines=others, representation="lejepa", days=60))
    # Alone 1 − 0.97 = 0.03 < 0.05; Holm over 4 policies needs 0.03·4 = 0.12 < 0.05.
    f = R.significance(s)
    assert f["status"] == "NOT SIGNIFICANT" and "over 4 policies" in f["text"]
    s = summary(backtest=bt({"dsr": 0.999, "n_trades": 100}, baselines=others, days=60))
    assert R.significance(s)["status"] == "SIGNIFICANT"


def test_gate_minimums_come_from_config():
    s = summary(config={"eval": {"bootstrap_block_days": 3, "evidence": {"min_ci_blocks": 5}}})
    assert E.min_test_days(s) == 15
    s = summary(config={"eval": {"evidence": {"min_test_days": 7}}})
    assert E.min_test_days(s) == 7
    assert E.min_test_days(summary()) == 20


def test_direction_accuracy_ci_above_0_is_no_lift_when_the_directional_return_is_null():
    # Null seed 7108 of the tiny honesty check (19 test days): the fine-tuned encoder's
    # direction-accuracy lift 0.137 had a bootstrap CI [0.112, 0.177]; the test is the
    # directional return, and a null one is NO LIFT whatever the lift's CI says.
    def row(name, dir_return):
        r = prow(name, 0.40)
        ret = {"n_days": 19, "df": 18, "active_days": 19, **dir_return}
        return r | {"lift_direction": 0.137, "lift_direction_ci": [0.112, 0.177], "dir_return": ret}

    null = {"estimate": 0.01, "se": 0.02, "p_value": 0.62, "ci": [-0.032, 0.052]}
    edge = {"estimate": 0.12, "se": 0.02, "p_value": 1e-5, "ci": [0.078, 0.162]}
    s = _gated(rows=[prow("majority", 1 / 3), row("lejepa", null), row("lejepa_finetuned", null)])
    v = E.probe_verdicts(s)
    assert v["lejepa_finetuned"].status == "NO LIFT" and v["lejepa"].status == "NO LIFT"
    assert "directional return (t-test over 19 test days) 0.01" in v["lejepa"].text
    assert "direction-accuracy lift 0.137 CI [0.112, 0.177]" in v["lejepa"].text
    # the same rows with a real directional return are a LIFT (weighted Holm: LeJEPA ½)
    rows = [row("lejepa", edge), row("lejepa_finetuned", null), row("raw_window", null)]
    v = E.probe_verdicts(_gated(rows=[prow("majority", 1 / 3), *rows]))
    assert v["lejepa"].status == "LIFT" and "lejepa weighted 0.5" in v["lejepa"].text
    assert v["lejepa"].p_adj == pytest.approx(2e-5)

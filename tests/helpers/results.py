"""Valid result bodies for tests, one builder per model in marketjepa.results.

Each builder returns the dict a stage would write (validated by its model, so a test
fixture cannot drift from the real format); keyword arguments change what a test needs.
"""

from __future__ import annotations

from typing import Any

from marketjepa.constants import CLASS_NAMES
from marketjepa.results import (
    BacktestMetrics,
    Diagnostics,
    Policy,
    PreparedManifest,
    PretrainSummary,
    ProbeTable,
)

SPLITS = ("train", "val", "test")


def prepared_manifest_dict(**over: Any) -> dict[str, Any]:
    """prepare's manifest.json for a small synthetic dataset."""
    body: dict[str, Any] = {
        "config_hash": "abc123",
        "created": "2024-01-01T00:00:00",
        "source": "synthetic",
        "inputs": {"stock_files": 50},
        "ingest_log": {},
        "bars_before_session_filter": 22000,
        "bars_after_session_filter": 19110,
        "bars_outside_session": 2890,
        "filled_minutes": 0,
        "rows": 19110,
        "n_days": 50,
        "repairs": {"filled_minutes": 0, "zero_volume_bars": 0},
        "calendar": "XNYS",
        "raw_minutes": 19110,
        "partial_sessions": "drop",
        "partial_sessions_found": 0,
        "dropped_sessions": 0,
        "dropped_session_dates": [],
        "dropped_minutes": 0,
        "outside_date_range_bars": 0,
        "filled_share_per_split": {s: 0.0 for s in SPLITS},
        "first_session": "2022-01-03",
        "last_session": "2022-03-15",
        "days_per_split": {"train": 34, "val": 7, "test": 7, "embargo": 2},
        "rows_per_split": {"train": 13260, "val": 2730, "test": 2730},
        "windows_per_split": {"train": 4400, "val": 900, "test": 900},
        "window_spec": {
            "patch_len": 5,
            "context_patches": 8,
            "gap_patches": 1,
            "target_patches": 2,
            "stride": 3,
        },
        "class_rates_per_split": {
            "train": {"HOLD": 0.84, "BUY_CALL": 0.08, "BUY_PUT": 0.08},
            "val": {"HOLD": 0.83, "BUY_CALL": 0.09, "BUY_PUT": 0.08},
            "test": {"HOLD": 0.83, "BUY_CALL": 0.09, "BUY_PUT": 0.08},
        },
        "labelled_rows_per_split": {"train": 12700, "val": 2600, "test": 2600},
        "label_kind": "threshold",
        "label_k": 1.5,
        "horizon": 15,
        "feature_names": [f"f{i}" for i in range(23)],
        "feature_dim": 23,
        "dropped_features": [],
        "options": True,
        "options_valid_frac": 0.7,
        "feature_stats": {},
        "seconds": {"features": 0.1, "total": 0.2},
    }
    return _valid(PreparedManifest, body | over)


def pretrain_dict(**over: Any) -> dict[str, Any]:
    """pretrain.json of a completed 4-epoch run."""
    body: dict[str, Any] = {
        "status": "completed",
        "epochs_run": 4,
        "best_epoch": 3,
        "best_criterion": "lowest val_loss",
        "message": "",
        "seconds": 6.0,
        "final": {"epoch": 4, "step": 80, "val_loss": 0.8},
        "collapsed_epochs": [],
        "steps": 80,
        "steps_per_epoch": 20,
        "global_batch": 128,
        "world_size": 1,
        "device": "cpu",
        "n_train_windows": 4400,
        "n_val_windows": 900,
    }
    return _valid(PretrainSummary, body | over)


def tensor_stats(spectrum: list[float], **over: Any) -> dict[str, Any]:
    """One tensor's collapse measures on one split (d = len(spectrum))."""
    d = len(spectrum)
    body: dict[str, Any] = {
        "n": 500,
        "d": d,
        "dim_var_mean": 0.9,
        "dim_var_std": 0.3,
        "dim_var_min": 0.2,
        "mean_sq_norm": 28.8,
        "norm_var": 0.95,
        "rankme": 0.625 * d,
        "rankme_ratio": 0.625,
        "dead_dims": 0,
        "top1_share": max(spectrum),
        "spectrum": spectrum,
        "sigreg_heldout": 1.7,
        "sigreg_batch": 128,
        "sigreg_gaussian": 1.05,
        "sigreg_gaussian_same_scale": 1.06,
        "verdict": {"status": "HEALTHY", "reasons": []},
    }
    return body | over


def diagnostics_dict(
    spectrum: list[float], status: str = "HEALTHY", reasons: list[str] | None = None, **over: Any
) -> dict[str, Any]:
    """diagnostics.json with the same tensor on both splits, the verdict on test."""
    t = tensor_stats(spectrum)
    body: dict[str, Any] = {
        "checkpoint": "best",
        "checkpoint_epoch": 3,
        "pretrain_status": "completed",
        "pretrain_message": "",
        "sigreg_on": "pooled",
        "sigreg_tensor": "pooled embedding",
        "pooling": "last",
        "d_model": len(spectrum),
        "windows": {"train": 4000, "val": 900, "test": 900},
        "heldout_split": "test",
        "splits": {"val": {"probe": t, "sigreg": t}, "test": {"probe": t, "sigreg": t}},
        "verdict": {
            "status": status,
            "split": "test",
            "decided_by": "probe",
            "reasons": reasons if reasons is not None else ["probe tensor: rankme_ratio ok"],
            "thresholds": {"healthy_rankme_ratio": 0.25, "collapsed_rankme_ratio": 0.05},
            "per_tensor": {"probe": status, "sigreg": status},
        },
    }
    return _valid(Diagnostics, body | over)


def classification_row(
    name: str,
    bacc: float,
    half: float = 0.02,
    acc: float = 0.6,
    dir_acc: float = 0.5,
    dir_half: float = 0.03,
    dir_return: dict[str, Any] | None = None,
    **over: Any,
) -> dict[str, Any]:
    """One probe-table row; CIs are the point value ± ``half`` (``dir_half``)."""
    lift, dlift = bacc - 1 / 3, dir_acc - 0.5
    return {
        "representation": name,
        "dim": 32,
        "accuracy": acc,
        "balanced_accuracy": bacc,
        "macro_f1": bacc - 0.05,
        "majority_accuracy": 0.83,
        "lift_accuracy": acc - 0.83,
        "lift_balanced": lift,
        "direction_accuracy": dir_acc,
        "lift_direction": dlift,
        "per_class": {c: {"precision": 0.5, "recall": 0.5, "support": 100} for c in CLASS_NAMES},
        "confusion": [[500, 40, 45], [30, 20, 5], [28, 4, 22]],
        "ci": {
            "accuracy": [acc - 0.03, acc + 0.03],
            "balanced_accuracy": [bacc - half, bacc + half],
            "lift_balanced": [lift - half, lift + half],
            "direction_accuracy": [dir_acc - dir_half, dir_acc + dir_half],
            "lift_direction": [dlift - dir_half, dlift + dir_half],
        },
        "resamples": {"balanced_accuracy": {"se": half / 2, "valid_share": 1.0, "distinct": 100}},
        "dir_return": dir_return,
        "val": {"accuracy": acc, "balanced_accuracy": bacc},
        "C": 1.0,
    } | over


def signed_return(estimate: float, half: float, p_value: float, n_days: int = 7) -> dict:
    """A directional-return t-test result with CI estimate ± half."""
    return {
        "estimate": estimate,
        "se": half / 2,
        "df": n_days - 1,
        "t": estimate / (half / 2),
        "p_value": p_value,
        "ci": [estimate - half, estimate + half],
        "n_days": n_days,
        "active_days": n_days,
    }


def regression_row(name: str, target: str, metric: str, value: float, half: float = 0.05):
    return {
        "representation": name,
        "target": target,
        "metric": metric,
        "value": value,
        "ci": {metric: [value - half, value + half]},
        "alpha": 1.0,
    }


def latent_row(name: str, accuracy: float, share: float) -> dict[str, Any]:
    return {
        "representation": name,
        "dim": 32,
        "accuracy": accuracy,
        "share_of_filter": share,
        "chance": 0.45,
        "filter_accuracy": 0.88,
        "ci": {"accuracy": [accuracy - 0.05, accuracy + 0.05], "share_of_filter": [0.0, 1.0]},
        "C": 1.0,
    }


def paired_test(a: str, b: str, difference: float, half: float = 0.02) -> dict[str, Any]:
    return {
        "a": a,
        "b": b,
        "metric": "balanced_accuracy",
        "difference": difference,
        "ci": [difference - half, difference + half],
        "p_value": 0.05,
        "estimate_a": 0.4,
        "estimate_b": 0.4 - difference,
        "resamples": {"se": half / 2, "valid_share": 1.0, "distinct": 100},
    }


def probe_table_dict(
    classification: list[dict] | None = None,
    regression: list[dict] | None = None,
    latent: list[dict] | None = None,
    paired_tests: list[dict] | None = None,
    **over: Any,
) -> dict[str, Any]:
    """probes.json; by default a majority row and a LeJEPA row with a small lift."""
    body: dict[str, Any] = {
        "evaluated_on": "test",
        "n_rows": {"train": 4000, "val": 900, "test": 900},
        "n_days": {"train": 34, "val": 7, "test": 7},
        "ci_level": 0.95,
        "bootstrap": {"block_days": 3, "samples": 100},
        "classification": classification
        or [classification_row("majority", 1 / 3, 0.0, 0.83), classification_row("lejepa", 0.4)],
        "regression": regression or [],
        "latent": latent or [],
        "paired_tests": paired_tests or [],
        "majority_class": {"class": "HOLD", "train_rate": 0.84, "eval_accuracy": 0.83},
        "supervised_history": [],
        "notes": [],
        "seconds": 1.0,
    }
    return _valid(ProbeTable, body | over)


def representation_policy(**over: Any) -> dict[str, Any]:
    """One representation's fitted classifier policy (48 threshold trials on val)."""
    split = {
        "n": 900,
        "accuracy": 0.5,
        "balanced_accuracy": 0.45,
        "pred_rates": {"hold": 0.6, "call": 0.2, "put": 0.2},
        "true_rates": {"hold": 0.83, "call": 0.09, "put": 0.08},
    }
    trial = {"tau_call": 0.6, "tau_put": 0.6, "val_net_pnl": 10.0, "val_trades": 12}
    return {
        "kind": "classifier",
        "classification": {s: split for s in SPLITS},
        "tau_call": 0.6,
        "tau_put": 0.6,
        "signal_rates": {s: {"call": 0.05, "put": 0.04} for s in SPLITS},
        "n_trials": 48,
        "trials": [trial | {"val_sharpe_daily": 0.1}],
        "trial_sharpe_var": 0.03,
        "warnings": [],
    } | over


def policy_dict(names: tuple[str, ...] = ("lejepa",), **over: Any) -> dict[str, Any]:
    """policy/policy.json with one classifier policy per name."""
    body: dict[str, Any] = {
        "kind": "classifier",
        "head": "logistic",
        "threshold_objective": "pnl",
        "thresholds_chosen_on": "val",
        "evaluated_on": "test",
        "order": list(names),
        "representations": {n: representation_policy() for n in names},
        "warnings": [],
        "n_trials_total": 48 * len(names),
    }
    return _valid(Policy, body | over)


def strategy_metrics(
    total_return: float, n_trades: int, sharpe: float, dsr: float, **over: Any
) -> dict[str, Any]:
    """One strategy's backtest metrics, Sharpe CI sharpe ± 1."""
    return {
        "total_return": total_return,
        "net_pnl": total_return * 10_000,
        "n_trades": n_trades,
        "win_rate": 0.5,
        "avg_win": 30.0,
        "avg_loss": -28.0,
        "profit_factor": 1.1,
        "call_share": 0.5,
        "put_share": 0.5,
        "exposure": 0.2,
        "turnover": 2.0,
        "n_days": 7,
        "sharpe": sharpe,
        "sortino": sharpe,
        "sharpe_ci_low": sharpe - 1.0,
        "sharpe_ci_high": sharpe + 1.0,
        "sharpe_ci_valid_share": 1.0,
        "sharpe_ci_distinct": 100,
        "max_drawdown": 0.02,
        "max_drawdown_days": 2,
        "skewness": 0.0,
        "kurtosis": 3.0,
        "psr": 0.6,
        "n_trials": 48,
        "var_trial_sharpes": 0.03,
        "sr0_deflated": 0.5,
        "dsr": dsr,
        "n_signals": n_trades,
        "signals_dropped_at_session_end": 0,
        "exit_reasons": {"time": n_trades, "close": 0, "stop": 0, "target": 0},
    } | over


def random_baseline_metrics(
    total_return: float, n_trades: float, sharpe: float, **over: Any
) -> dict[str, Any]:
    """Random entries' metrics: each a mean over seeds, p05/p95 equal to it unless given."""
    means = {
        "total_return": total_return,
        "net_pnl": total_return * 10_000,
        "n_trades": n_trades,
        "win_rate": 0.4,
        "sharpe": sharpe,
        "sortino": sharpe,
        "max_drawdown": 0.05,
        "psr": 0.3,
        "dsr": 0.01,
        "call_share": 0.5,
        "exposure": 0.15,
    }
    body: dict[str, Any] = {"n_seeds": 5}
    for k, v in means.items():
        body |= {k: v, f"{k}_p05": v, f"{k}_p95": v}
    return body | over


def attribution(net: float, costs: float = 40.0) -> dict[str, float]:
    gross = net + costs
    return {
        "gross_pnl": gross,
        "pnl_delta": gross / 2,
        "pnl_gamma": 0.0,
        "pnl_theta": -gross / 4,
        "pnl_vega": gross / 4,
        "pnl_residual": gross / 2,
        "cost_spread": costs / 2,
        "cost_slippage": 0.0,
        "cost_commission": costs / 2,
        "cost_fees": 0.0,
        "cost_total": costs,
        "net_pnl": net,
        "pnl_underlying": gross / 2,
    }


def backtest_dict(strategies: dict[str, dict] | None = None, **over: Any) -> dict[str, Any]:
    """backtest/metrics.json; by default LeJEPA and always-CALL."""
    strategies = strategies or {
        "lejepa": strategy_metrics(0.031, 20, 1.2, 0.42),
        "always_call": strategy_metrics(-0.01, 20, -0.5, 0.01),
    }
    body: dict[str, Any] = {
        "evaluated_on": "test",
        "evaluated_on_warning": None,
        "pricing_mode": "surface",
        "prices_modeled": True,
        "price_sources": {"surface_observed": 30, "surface_proxy": 10, "bars": 0},
        "iv_proxy_note": None,
        "bars_fallbacks": None,
        "n_trials": 48,
        "var_trial_sharpes": 0.03,
        "baseline_trade_count": 20,
        "baseline_trade_count_rule": "same trade count as lejepa",
        "rules": {"pricing": "surface", "dte": 0, "hold_bars": 15},
        "days": 7,
        "strategies": strategies,
        "attribution": {k: attribution(v["net_pnl"]) for k, v in strategies.items()},
        "seconds": 0.1,
    }
    return _valid(BacktestMetrics, body | over)


def _valid(model: type, body: dict[str, Any]) -> dict[str, Any]:
    model.model_validate(body)  # a builder that drifted from the format fails here
    return body

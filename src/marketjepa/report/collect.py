"""Read a run directory's result files into the report's view: one summary dict.

The stage outputs are typed models (:mod:`marketjepa.results`): a renamed or missing
field is a :class:`DataValidationError` naming the file and the field, never a silent
"—" in the report. This module builds the report's view from those models; metric names
are the stages' own (``lift_balanced``, ``direction_accuracy``, ...). A stage that was
not run yields a section ``{"available": False, "note": "stage not run (<file> not
found)"}``. Everything downstream (rules, plots, markdown, html, the CLI headline,
``compare``) works on the summary returned by :func:`collect_run`.

Summary schema (all values JSON-serializable; absent numbers are ``None``)::

    run_dir, run_name, generated (ISO date)
    config        full resolved config dict or None
    manifest      run manifest dict (artifacts.py) or None
    stages        {stage: {"ran": bool, "file": str, "note": str}}
    model         feature_dim, embedding_dim, num_heads, num_layers, ff_dim, patch_length,
                  context_horizon, gap, target_horizon, pooling, attention
    training      lambda_sigreg, loss_convention, ema, ema_momentum, batch_size, learning_rate,
                  epochs, epochs_run, global_step, best_epoch, status, message, sigreg_on,
                  sigreg_pooling, target_exclude, multi_horizon, latent_init
    data          source, ticker, signal, date_start, date_end, bars_total, bars_after_filter,
                  days_total, days_train, days_val, days_test, days_embargo,
                  class_rates {split: {HOLD, BUY_CALL, BUY_PUT}}, label_k, prepared_dir
    epochs        [metrics.csv row dicts, numeric]
    final         last epoch of metrics.csv (probe tensor): train_loss, train_pred,
                  train_sigreg, val_loss, val_pred, val_sigreg, dim_var_mean, dim_var_std,
                  norm_var, rankme, rankme_ratio, dead_dims, latent_acc, latent_share, epoch
    diagnostics   available, note, verdict, reasons [str], thresholds {..}, heldout_sigreg,
                  tensors {"probe"|"sigreg": {dim_var_mean, ..., d, spectrum [..]}}
    probes        available, note, n_classes, split, eval_days, eval_rows,
                  class_counts {HOLD, BUY_CALL, BUY_PUT}, ci_level, block_days,
                  classification [{name, kind, accuracy(_ci), balanced_accuracy(_ci),
                    macro_f1, majority_accuracy, lift_accuracy, lift_balanced(_ci),
                    direction_accuracy(_ci), lift_direction(_ci), confusion,
                    resamples {metric: {se, valid_share, distinct}},
                    dir_return None | {estimate, se, df, t, p_value, ci, n_days, active_days}}],
                  regression [{name, target, r2, r2_ci, ic, ic_ci}],
                  latent [{name, accuracy, accuracy_ci, share_of_filter}],
                  paired [{a, b, metric, diff, ci, resamples}],
                  walk_forward None | {n_folds, embargo_days, select_share, note,
                    folds [{fold, days, dates, n_rows}],
                    rows [{name, kind, <metric>, <metric>_std (over folds), <metric>_pooled,
                      <metric>_pooled_ci, folds [{fold, days, n_rows, <metric>...}]}]}
                    (<metric>: balanced_accuracy, lift_balanced, direction_accuracy,
                    lift_direction)
    policy        available, note, representation, head, thresholds_chosen_on, warnings,
                  splits {split: {accuracy, balanced_accuracy, label_rates, pred_rates,
                    signal_rates}} (rates as {HOLD, BUY_CALL, BUY_PUT})
    backtest      available, note, evaluated_on, days, pricing, prices_modeled,
                  price_sources, representation,
                  metrics {total_return, n_trades, win_rate, n_call, n_put, call_share,
                    put_share, sharpe, sortino, max_drawdown, psr, dsr, n_trials, sharpe_ci,
                    sharpe_ci_valid_share, sharpe_ci_distinct, avg_win, avg_loss,
                    profit_factor, net_pnl},
                  attribution {underlying, theta, vega, other, costs, gross, net} (costs >= 0),
                  baselines [{name, total_return, n_trades, win_rate, sharpe, psr, dsr,
                    sharpe_ci, n_trials, sharpe_ci_valid_share, sharpe_ci_distinct}],
                  trade_pnl [..], equity {"t": [..], "equity": [..], "drawdown": [..]}
    walkforward   None | walkforward/walkforward.json + curves {strategy: {t, equity}} and
                  boundaries [first traded date of each fold] (report/walkforward.py)
"""

from __future__ import annotations

import json
import math
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import yaml

from marketjepa.artifacts import EMBEDDING_STAT_KEYS
from marketjepa.config import Config, ConfigError, read_config
from marketjepa.constants import CLASS_NAMES, N_CLASSES
from marketjepa.errors import DataValidationError, MarketJepaError
from marketjepa.paths import prepared_dir
from marketjepa.report.walkforward import collect_walkforward
from marketjepa.results import (
    RESULT_FILES,
    BacktestMetrics,
    ClassificationRow,
    Diagnostics,
    Policy,
    PreparedManifest,
    PretrainSummary,
    ProbeTable,
    RandomBaselineMetrics,
    StrategyMetrics,
    TensorStats,
    WalkForward,
    read_result,
)

# policy.json's rate keys -> the report's class names
_POLICY_RATES = {"hold": "HOLD", "call": "BUY_CALL", "put": "BUY_PUT"}
# metrics scored per walk-forward fold (probes.json walk_forward)
_WF_METRICS = ("balanced_accuracy", "lift_balanced", "direction_accuracy", "lift_direction")

# ---------------------------------------------------------------------------- helpers


def _not_run(file: str) -> dict[str, Any]:
    return {"available": False, "note": f"stage not run ({file} not found)"}


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataValidationError(
            f"not valid JSON ({exc})", file=str(path), hint="re-run the stage that wrote it"
        ) from None


def _read_parquet(path: Path) -> pl.DataFrame:
    try:
        return pl.read_parquet(path)
    except Exception as exc:  # polars raises several exception types for corrupt files
        raise DataValidationError(
            f"cannot read Parquet ({type(exc).__name__}: {exc})",
            file=str(path),
            hint="re-run the stage that wrote it",
        ) from None


def _num(x: Any) -> float | None:
    """A finite-or-nan float, or None for anything non-numeric."""
    if isinstance(x, bool) or x is None:
        return None
    if isinstance(x, int | float | np.integer | np.floating):
        return float(x)
    return None


def _int(x: Any) -> int | None:
    return None if x is None else int(x)


def _kind(name: str) -> str:
    if name.startswith("oracle"):
        return "oracle"
    if name.startswith("lejepa"):
        return "encoder"
    return "baseline"


def _primary(names: list[str], preferred: Any = None) -> str | None:
    """The strategy/representation the report headlines: LeJEPA unless told otherwise."""
    for cand in (preferred, "lejepa"):
        if cand in names:
            return cand
    return next((n for n in names if n.startswith("lejepa")), names[0] if names else None)


# ---------------------------------------------------------------------------- config, data, training


def _model_section(cfg: dict | None, prep: PreparedManifest | None) -> dict[str, Any]:
    if cfg is None:
        return {}
    m, w = cfg["model"], cfg["windows"]
    return {
        "feature_dim": len(prep.feature_names) if prep else len(cfg["features"]["names"]),
        "embedding_dim": m["d_model"],
        "num_heads": m["n_heads"],
        "num_layers": m["n_layers"],
        "ff_dim": m["ff_dim"],
        "patch_length": w["patch_len"],
        "context_horizon": w["context_patches"],
        "gap": w["gap_patches"],
        "target_horizon": w["target_patches"],
        "pooling": m["pooling"],
        "attention": "causal" if m.get("causal") else "bidirectional",
    }


def _training_section(
    cfg: dict | None, pretrain: PretrainSummary | None, epochs: list[dict]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if cfg is not None:
        loss, tr = cfg["loss"], cfg["train"]
        out.update(
            lambda_sigreg=loss["lambda_sigreg"],
            loss_convention=loss["convention"],
            ema=loss["ema"],
            ema_momentum=loss["ema_momentum"],
            sigreg_on=loss["sigreg_on"],
            # Runs written before these options existed read as their defaults.
            sigreg_pooling=loss.get("sigreg_pooling", "same"),
            target_exclude=", ".join(loss.get("target_exclude") or []) or "none",
            multi_horizon=loss["multi_horizon"],
            batch_size=tr["batch_size"],
            learning_rate=tr["lr"],
            epochs=tr["epochs"],
        )
    last = epochs[-1] if epochs else {}
    pt = pretrain
    out["global_step"] = _int(pt.steps if pt and pt.steps is not None else last.get("step"))
    out["epochs_run"] = _int(pt.epochs_run if pt else last.get("epoch"))
    out["best_epoch"] = pt.best_epoch if pt else None
    out["status"] = pt.status if pt else None
    out["message"] = pt.message if pt else None
    out["latent_init"] = pt.latent_init if pt else None
    return out


def _resolve_prepared(run_dir: Path, manifest: dict | None, cfg_obj: Config | None) -> Path | None:
    """The prepared dataset: the run manifest's ``inputs.prepared``, else the config's."""
    ref = ((manifest or {}).get("inputs") or {}).get("prepared")
    refs = ([Path(str(ref))] if ref else []) + ([prepared_dir(cfg_obj)] if cfg_obj else [])
    for r in refs:
        # Relative paths are relative to the project root: cwd, or the folder above runs/.
        for cand in (r, run_dir / r, run_dir.parent.parent / r):
            if (cand / "manifest.json").exists():
                return cand
    return None


def _data_section(
    cfg: dict | None, prep: PreparedManifest | None, prep_dir: Path | None
) -> dict[str, Any]:
    out: dict[str, Any] = {"prepared_dir": str(prep_dir) if prep_dir else None}
    if cfg is not None:
        src = cfg["data"]["source"]
        out["source"] = src
        out["ticker"] = cfg["data"]["ticker"]
        out["signal"] = cfg["synth"]["signal"] if src == "synthetic" else None
        if src == "synthetic":
            out["date_start"], out["date_end"] = cfg["synth"]["start"], cfg["synth"]["end"]
    if prep is None:
        return out | {f"days_{s}": None for s in ("train", "val", "test", "embargo")}
    out.update(
        date_start=prep.first_session,
        date_end=prep.last_session,
        bars_total=prep.bars_before_session_filter,
        bars_after_filter=prep.bars_after_session_filter,
        days_total=prep.n_days,
        class_rates=prep.class_rates_per_split,
        label_k=prep.label_k,
        # session repairs (issue 11): raw / filled / dropped minutes, dropped sessions
        raw_minutes=prep.raw_minutes,
        filled_minutes=prep.filled_minutes,
        dropped_minutes=prep.dropped_minutes,
        dropped_sessions=prep.dropped_sessions,
        dropped_session_dates=list(prep.dropped_session_dates),
        partial_sessions=prep.partial_sessions,
        calendar=prep.calendar,
        filled_share_test=prep.filled_share_per_split.get("test"),
    )
    for split in ("train", "val", "test", "embargo"):
        out[f"days_{split}"] = prep.days_per_split.get(split)
    return out


def _read_metrics_csv(path: Path) -> list[dict[str, Any]]:
    try:
        df = pl.read_csv(path, infer_schema_length=None)
    except pl.exceptions.NoDataError:
        return []
    except Exception as exc:
        raise DataValidationError(f"cannot read CSV ({exc})", file=str(path)) from None
    if "epoch" not in df.columns:
        raise DataValidationError("missing column 'epoch'", file=str(path))
    rows = df.sort("epoch").to_dicts()
    return [{k: (_num(v) if _num(v) is not None else v) for k, v in r.items()} for r in rows]


def _final_section(epochs: list[dict]) -> dict[str, Any]:
    """The last epoch's losses and the probe tensor's collapse measures (metrics.csv)."""
    if not epochs:
        return {}
    last = epochs[-1]
    keys = ("epoch", "train_loss", "train_pred", "train_sigreg", "val_loss", "val_pred")
    out = {k: _num(last.get(k)) for k in (*keys, "val_sigreg")}
    for k in EMBEDDING_STAT_KEYS:
        out[k] = _num(last.get(f"probe_{k}"))
    out["latent_acc"] = _num(last.get("latent_acc"))
    out["latent_share"] = _num(last.get("latent_share"))
    return out


# ---------------------------------------------------------------------------- diagnose


def _tensor_stats(t: TensorStats) -> dict[str, Any]:
    out: dict[str, Any] = {k: _num(getattr(t, k)) for k in EMBEDDING_STAT_KEYS}
    out.update(d=float(t.d), sigreg_heldout=t.sigreg_heldout, spectrum=list(t.spectrum))
    return out


def _diagnostics_section(diag: Diagnostics | None) -> dict[str, Any]:
    if diag is None:
        return _not_run(RESULT_FILES["diagnose"][0])
    held = diag.heldout_split
    tensors = {t: _tensor_stats(v) for t, v in diag.splits.get(held or "", {}).items()}
    v = diag.verdict
    return {
        "available": True,
        "note": "",
        "verdict": v.status.upper(),
        "reasons": list(v.reasons),
        "thresholds": dict(v.thresholds),
        "heldout_sigreg": (tensors.get("sigreg") or {}).get("sigreg_heldout"),
        "heldout_split": held,
        "tensors": tensors,
    }


# ---------------------------------------------------------------------------- probe


def _classification_row(r: ClassificationRow) -> dict[str, Any]:
    out: dict[str, Any] = {"name": r.representation, "kind": _kind(r.representation)}
    for k in ("accuracy", "balanced_accuracy", "lift_balanced", "direction_accuracy"):
        out[k], out[f"{k}_ci"] = getattr(r, k), r.ci.get(k)
    out.update(
        macro_f1=r.macro_f1,
        majority_accuracy=r.majority_accuracy,
        lift_accuracy=r.lift_accuracy,
        lift_direction=r.lift_direction,
        lift_direction_ci=r.ci.get("lift_direction"),
        confusion=r.confusion,
        resamples=r.resamples,
        dir_return=r.dir_return.model_dump() if r.dir_return else None,
    )
    return out


def _regression_rows(probes: ProbeTable) -> list[dict[str, Any]]:
    """One row per (representation, target): its R² or IC with CI."""
    out = []
    for r in probes.regression:
        row = {"name": r.representation, "target": r.target}
        row |= {"r2": None, "r2_ci": None, "ic": None, "ic_ci": None}
        row[r.metric], row[f"{r.metric}_ci"] = r.value, r.ci.get(r.metric)
        out.append(row)
    return out


def _walk_forward_section(wf: WalkForward | None) -> dict[str, Any] | None:
    """Fold blocks, and per representation its per-fold scores, mean/std over folds and
    all folds pooled (with CI). ``None`` when the run has none."""
    if wf is None:
        return None
    folds = [
        {"fold": f.fold, "days": f.days, "dates": f.dates, "n_rows": float(f.n_rows)}
        for f in wf.folds
    ]
    rows = []
    for name, r in wf.representations.items():
        row: dict[str, Any] = {"name": name, "kind": _kind(name)}
        pooled_ci = r.pooled.get("ci") or {}
        for k in _WF_METRICS:
            row[k], row[f"{k}_std"] = r.mean.get(k), r.std.get(k)
            row[f"{k}_pooled"], row[f"{k}_pooled_ci"] = _num(r.pooled.get(k)), pooled_ci.get(k)
        row["folds"] = [
            {"fold": f["fold"], "days": f["days"], "n_rows": _num(f["n_rows"])}
            | {k: _num(f.get(k)) for k in _WF_METRICS}
            for f in r.folds
        ]
        rows.append(row)
    return {
        "n_folds": wf.n_folds,
        "embargo_days": float(wf.embargo_days),
        "select_share": wf.select_share,
        "note": wf.note,
        "folds": folds,
        "rows": rows,
    }


def _probes_section(probes: ProbeTable | None) -> dict[str, Any]:
    if probes is None:
        return _not_run(RESULT_FILES["probe"][0])
    classification = [_classification_row(r) for r in probes.classification]
    latent = [
        {
            "name": r.representation,
            "accuracy": r.accuracy,
            "accuracy_ci": r.ci.get("accuracy"),
            "share_of_filter": r.share_of_filter,
        }
        for r in probes.latent
    ]
    paired = [
        {"a": t.a, "b": t.b, "metric": t.metric, "diff": t.difference, "ci": t.ci}
        | {"resamples": t.resamples}
        for t in probes.paired_tests
    ]
    # Evidence-gate inputs (report/evidence.py): days, rows and per-class rows scored.
    split = probes.evaluated_on
    conf0 = classification[0]["confusion"] if classification else None
    counts = None
    if conf0 is not None and len(conf0) == N_CLASSES:
        counts = {c: float(sum(row)) for c, row in zip(CLASS_NAMES, conf0, strict=True)}
    return {
        "available": True,
        "note": "",
        "n_classes": N_CLASSES,
        "split": split,
        "eval_days": _num(probes.n_days.get(split)),
        "eval_rows": _num(probes.n_rows.get(split)),
        "class_counts": counts,
        "ci_level": probes.ci_level,
        "block_days": _num(probes.bootstrap.get("block_days")),
        "classification": classification,
        "regression": _regression_rows(probes),
        "latent": latent,
        "paired": paired,
        "walk_forward": _walk_forward_section(probes.walk_forward),
    }


# ---------------------------------------------------------------------------- policy


def _class_rates(rates: dict[str, float] | None) -> dict[str, float] | None:
    return {_POLICY_RATES[k]: v for k, v in rates.items()} if rates else None


def _policy_section(pol: Policy | None) -> dict[str, Any]:
    if pol is None:
        return _not_run(RESULT_FILES["policy"][0])
    rep_name = _primary(list(pol.order or pol.representations))
    body = pol.representations[rep_name] if rep_name else None
    splits = {}
    for s, m in ((body.classification or {}) if body else {}).items():
        sig = body.signal_rates.get(s)
        splits[s] = {
            "accuracy": m.accuracy,
            "balanced_accuracy": m.balanced_accuracy,
            "label_rates": _class_rates(m.true_rates),
            "pred_rates": _class_rates(m.pred_rates),
            # After the decision thresholds: what the backtest actually trades.
            "signal_rates": {"HOLD": 1.0 - sig["call"] - sig["put"]}
            | {"BUY_CALL": sig["call"], "BUY_PUT": sig["put"]}
            if sig
            else None,
        }
    return {
        "available": True,
        "note": "",
        "representation": rep_name,
        "head": pol.head,
        "thresholds_chosen_on": pol.thresholds_chosen_on,
        "splits": splits,
        "warnings": list(pol.warnings or (body.warnings if body else [])),
    }


# ---------------------------------------------------------------------------- backtest


def _attribution(bt: BacktestMetrics, primary: str | None) -> dict[str, float | None]:
    """The headline strategy's P&L parts; costs as a positive drag."""
    a = bt.attribution.get(primary or "")
    if a is None:
        return {}
    return {
        "underlying": a["pnl_underlying"],
        "theta": a["pnl_theta"],
        "vega": a["pnl_vega"],
        "other": a["pnl_residual"],
        "costs": abs(a["cost_total"]),
        "gross": a["gross_pnl"],
        "net": a["net_pnl"],
    }


def _side_counts(trades: pl.DataFrame | None) -> tuple[int | None, int | None]:
    if trades is None:
        return None, None
    s = trades["right"].cast(pl.Utf8).str.to_uppercase()
    return int((s == "C").sum()), int((s == "P").sum())


_BT_KEYS = (
    "total_return",
    "n_trades",
    "win_rate",
    "call_share",
    "put_share",
    "sharpe",
    "sortino",
    "max_drawdown",
    "psr",
    "dsr",
    "n_trials",
    "avg_win",
    "avg_loss",
    "profit_factor",
    "net_pnl",
    "sharpe_ci_valid_share",
    "sharpe_ci_distinct",
)

_BASELINE_KEYS = (
    "total_return",
    "n_trades",
    "win_rate",
    "sharpe",
    "sharpe_ci",
    "psr",
    "dsr",
    "n_trials",
    "sharpe_ci_valid_share",
    "sharpe_ci_distinct",
)


def _bt_metrics(m: StrategyMetrics | RandomBaselineMetrics) -> dict[str, Any]:
    """One strategy's numbers; random entries give the 5-95% range over seeds as its CI."""
    out: dict[str, Any] = {k: _num(getattr(m, k, None)) for k in _BT_KEYS}
    if isinstance(m, RandomBaselineMetrics):
        lo, hi = m.sharpe_p05, m.sharpe_p95
    else:
        lo, hi = m.sharpe_ci_low, m.sharpe_ci_high
    out["sharpe_ci"] = [lo, hi] if lo is not None and hi is not None else None
    return out


def _only_strategy(df: pl.DataFrame | None, name: str | None) -> pl.DataFrame | None:
    """Trades/equity files hold every strategy in a ``strategy`` column; keep one."""
    if df is None or name is None:
        return df
    return df.filter(pl.col("strategy") == name)


def _equity(eq: pl.DataFrame | None) -> dict[str, list]:
    if eq is None or not eq.height:
        return {}
    e = eq["equity"].cast(pl.Float64).to_numpy()
    # One drawdown convention: e / running peak − 1 (≤ 0).
    dd = e / np.maximum.accumulate(e) - 1.0
    t = eq["date"]  # one row per session (trading/backtest.py)
    return {"t": [str(x) for x in t.to_list()], "equity": e.tolist(), "drawdown": dd.tolist()}


def _backtest_section(bt: BacktestMetrics | None, bt_dir: Path, policy_rep: Any) -> dict[str, Any]:
    if bt is None:
        return _not_run(RESULT_FILES["backtest"][0])
    tpath, epath = bt_dir / "trades.parquet", bt_dir / "equity.parquet"
    trades = _read_parquet(tpath) if tpath.exists() else None
    eq = _read_parquet(epath) if epath.exists() else None
    primary = _primary(list(bt.strategies), policy_rep)
    trades, eq = _only_strategy(trades, primary), _only_strategy(eq, primary)
    main = bt.strategies.get(primary or "")
    metrics = _bt_metrics(main) if main is not None else dict.fromkeys(_BT_KEYS)
    metrics["n_call"], metrics["n_put"] = _side_counts(trades)
    baselines = [
        {"name": name, **{k: _bt_metrics(m).get(k) for k in _BASELINE_KEYS}}
        for name, m in bt.strategies.items()
        if name != primary
    ]
    return {
        "available": True,
        "note": "",
        "evaluated_on": bt.evaluated_on,
        "days": float(bt.days),
        "pricing": bt.pricing_mode,
        "prices_modeled": bt.prices_modeled,
        "price_sources": bt.price_sources,
        "representation": primary,
        "metrics": metrics,
        "attribution": _attribution(bt, primary),
        "baselines": baselines,
        "trade_pnl": trades["net_pnl"].cast(pl.Float64).to_list() if trades is not None else [],
        "equity": _equity(eq),
    }


# ---------------------------------------------------------------------------- entry point


def _read_config(run_dir: Path) -> Config | None:
    path = run_dir / "config.yaml"
    if not path.exists():
        return None
    try:
        return read_config(path)
    except (ConfigError, yaml.YAMLError) as exc:
        raise DataValidationError(str(exc), file=str(path)) from None


def _stages(run_dir: Path, has_pretrain: bool) -> dict[str, dict[str, Any]]:
    out = {}
    for stage in ("pretrain", "diagnose", "probe", "policy", "backtest"):
        rel = RESULT_FILES[stage][0]
        ran = has_pretrain if stage == "pretrain" else (run_dir / rel).exists()
        out[stage] = {
            "ran": ran,
            "file": rel,
            "note": "" if ran else f"stage not run ({rel} not found)",
        }
    return out


def collect_run(run_dir: Path) -> dict[str, Any]:
    """Read a run directory's result files into the summary (schema in module doc)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise MarketJepaError(f"run directory not found: {run_dir}")
    cfg_obj = _read_config(run_dir)
    cfg = cfg_obj.to_dict() if cfg_obj else None
    manifest = (
        _read_json(run_dir / "manifest.json") if (run_dir / "manifest.json").exists() else None
    )

    def result(stage: str, model: type) -> Any:
        return read_result(run_dir / RESULT_FILES[stage][0], model, optional=True)

    pretrain = result("pretrain", PretrainSummary)
    mpath = run_dir / "metrics.csv"
    epochs = _read_metrics_csv(mpath) if mpath.exists() else []
    prep_dir = _resolve_prepared(run_dir, manifest, cfg_obj)
    prep = read_result(prep_dir / "manifest.json", PreparedManifest) if prep_dir else None
    policy = _policy_section(result("policy", Policy))
    bt = result("backtest", BacktestMetrics)
    return {
        "run_dir": str(run_dir),
        "run_name": (cfg or {}).get("name") or run_dir.name,
        "generated": date.today().isoformat(),
        "config": cfg,
        "manifest": manifest,
        "stages": _stages(run_dir, pretrain is not None or bool(epochs)),
        "model": _model_section(cfg, prep),
        "training": _training_section(cfg, pretrain, epochs),
        "data": _data_section(cfg, prep, prep_dir),
        "epochs": epochs,
        "final": _final_section(epochs),
        "diagnostics": _diagnostics_section(result("diagnose", Diagnostics)),
        "probes": _probes_section(result("probe", ProbeTable)),
        "policy": policy,
        "backtest": _backtest_section(bt, run_dir / "backtest", policy.get("representation")),
        "walkforward": collect_walkforward(run_dir),
    }


def is_finite(x: Any) -> bool:
    """True for a real, finite number (helper shared by rules and renderers)."""
    return _num(x) is not None and math.isfinite(float(x))


def key_numbers(summary: dict[str, Any]) -> dict[str, Any]:
    """The handful of numbers `marketjepa compare` puts side by side."""
    final = summary.get("final") or {}
    diag = summary.get("diagnostics") or {}
    probes = summary.get("probes") or {}
    bt = summary.get("backtest") or {}
    btm = bt.get("metrics") or {}
    rows = {r.get("name"): r for r in probes.get("classification") or []}
    lejepa = rows.get("lejepa") or {}
    raw = rows.get("raw_window") or {}
    return {
        "training status": (summary.get("training") or {}).get("status"),
        "epochs run": (summary.get("training") or {}).get("epochs_run"),
        "val loss": final.get("val_loss"),
        "collapse verdict": diag.get("verdict"),
        "RankMe / d": final.get("rankme_ratio"),
        "normalized variance": final.get("norm_var"),
        "dim variance mean": final.get("dim_var_mean"),
        "LeJEPA balanced acc": lejepa.get("balanced_accuracy"),
        "LeJEPA bal-acc lift": lejepa.get("lift_balanced"),
        "raw window bal-acc lift": raw.get("lift_balanced"),
        "LeJEPA direction lift": lejepa.get("lift_direction"),
        "raw window direction lift": raw.get("lift_direction"),
        "latent acc (last epoch)": final.get("latent_acc"),
        "backtest total return": btm.get("total_return"),
        "backtest trades": btm.get("n_trades"),
        "backtest Sharpe": btm.get("sharpe"),
        "backtest DSR": btm.get("dsr"),
    }

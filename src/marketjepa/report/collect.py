"""Read every artifact of a run directory into one normalized summary dict.

This is the ONLY module that knows the on-disk formats of the stages
(docs/architecture.md "Run directory"). Everything downstream (rules, plots,
markdown, html, the CLI headline, ``compare``) works on the summary returned by
:func:`collect_run`, so a format change is absorbed here.

Readers are tolerant: a missing artifact yields a section ``{"available": False,
"note": "stage not run (<file> not found)"}``; a metric may be stored as a plain
number with ``<key>_ci`` / ``<key>_lo``/``<key>_hi`` siblings, or as a dict
``{"value"|"mean"|"point": x, "ci": [lo, hi]}``. A file that exists but cannot be
parsed is a :class:`DataValidationError` naming the file.

Summary schema (all values JSON-serializable; absent numbers are ``None``)::

    run_dir, run_name, generated (ISO date)
    config        full resolved config dict or None
    manifest      run manifest dict or None
    stages        {stage: {"ran": bool, "file": str, "note": str}}
    model         feature_dim, embedding_dim, num_heads, num_layers, ff_dim, patch_length,
                  context_horizon, gap, target_horizon, pooling
    training      lambda_sigreg, loss_convention, ema, ema_momentum, batch_size, learning_rate,
                  epochs, epochs_run, global_step, best_epoch, status, message, sigreg_on,
                  multi_horizon
    data          source, ticker, signal, date_start, date_end, bars_total, bars_after_filter,
                  days_total, days_train, days_val, days_test, days_embargo,
                  class_rates {split: {HOLD, BUY_CALL, BUY_PUT}}, label_k, prepared_dir
    epochs        [metrics.csv row dicts, numeric]
    final         last epoch of metrics.csv: train_loss, train_pred, train_sigreg, val_loss,
                  val_pred, val_sigreg, dim_var_mean, dim_var_std, norm_var, rankme,
                  rankme_ratio, dead_dims, latent_acc, latent_share, epoch (probe tensor)
    diagnostics   available, note, verdict, reasons [str], thresholds {..}, heldout_sigreg,
                  tensors {"probe"|"sigreg": {dim_var_mean, dim_var_std, dim_var_min,
                  mean_sq_norm, norm_var, rankme, rankme_ratio, dead_dims, d, spectrum [..]}}
    probes        available, note, n_classes, split, eval_days, eval_rows,
                  class_counts {HOLD, BUY_CALL, BUY_PUT}, ci_level, block_days,
                  classification [{name, kind, accuracy, accuracy_ci, balanced_accuracy,
                    balanced_accuracy_ci, macro_f1, majority_rate, acc_lift, bacc_lift,
                    bacc_lift_ci, dir_acc(_ci), dir_lift(_ci), confusion,
                    resamples {metric: {se, valid_share, distinct}},
                    dir_return None | {estimate, se, df, t, p_value, ci, n_days,
                      active_days} (evaluate/signed_return.py)}],
                  regression [{name, target, r2, r2_ci, ic, ic_ci}],
                  latent [{name, accuracy, accuracy_ci, share_of_filter}],
                  paired [{a, b, metric, diff, ci, resamples}],
                  walk_forward None | {n_folds, embargo_days, select_share, note,
                    folds [{fold, days [first, last], dates [first, last] | None, n_rows}],
                    rows [{name, kind, balanced_accuracy(_std), bacc_lift(_std), dir_acc(_std),
                      dir_lift(_std) (mean and std over folds), <same>_pooled(_ci) (all
                      scored blocks together, CI), folds [{fold, days, n_rows,
                      balanced_accuracy, bacc_lift, dir_acc, dir_lift}]}]}
    policy        available, note, representation, head,
                  splits {split: {accuracy, balanced_accuracy, label_rates{..}, pred_rates{..}}}
    backtest      available, note, evaluated_on, days, pricing, prices_modeled, representation,
                  metrics {total_return, n_trades, win_rate, n_call, n_put, call_share,
                    put_share, sharpe, sortino, max_drawdown, psr, dsr, n_trials, sharpe_ci,
                    sharpe_ci_valid_share, sharpe_ci_distinct, avg_win, avg_loss,
                    profit_factor},
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
from marketjepa.config import ConfigError, read_config
from marketjepa.constants import CLASS_NAMES
from marketjepa.errors import DataValidationError, MarketJepaError
from marketjepa.report.walkforward import collect_walkforward

_VALUE_KEYS = ("value", "mean", "point", "estimate")


# ---------------------------------------------------------------------------- low-level readers


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


def _dig(d: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(d, dict) or part not in d:
            return None
        d = d[part]
    return d


def _first(d: Any, *paths: str) -> Any:
    for p in paths:
        v = _dig(d, p)
        if v is not None:
            return v
    return None


def _ci(x: Any) -> list[float] | None:
    if isinstance(x, list | tuple) and len(x) == 2:
        lo, hi = _num(x[0]), _num(x[1])
        if lo is not None and hi is not None:
            return [lo, hi]
    if isinstance(x, dict):
        lo, hi = _num(_first(x, "lo", "low", "lower")), _num(_first(x, "hi", "high", "upper"))
        if lo is not None and hi is not None:
            return [lo, hi]
    return None


def _metric(row: dict[str, Any], *keys: str) -> tuple[float | None, list[float] | None]:
    """Value and CI of the first present key, in any of the tolerated layouts."""
    for key in keys:
        if key not in row:
            continue
        raw = row[key]
        if isinstance(raw, dict):
            value = _num(_first(raw, *_VALUE_KEYS))
            ci = _ci(raw.get("ci")) or _ci(raw)
        else:
            value = _num(raw)
            ci = _ci(row.get(f"{key}_ci"))
            if ci is None and isinstance(row.get("ci"), dict):
                ci = _ci(row["ci"].get(key))  # probes.json: "ci": {metric: [lo, hi]}
            for lo, hi in (("_lo", "_hi"), ("_ci_low", "_ci_high"), ("_p05", "_p95")):
                if ci is None and f"{key}{lo}" in row and f"{key}{hi}" in row:
                    ci = _ci([row[f"{key}{lo}"], row[f"{key}{hi}"]])
        if value is not None:
            return value, ci
    return None, None


def _rows(obj: Any, name_keys: tuple[str, ...] = ("name", "representation")) -> list[dict]:
    """Accept a list of row dicts or a dict keyed by name; return rows with ``name``."""
    if isinstance(obj, dict):
        return [{"name": k, **v} for k, v in obj.items() if isinstance(v, dict)]
    out = []
    for r in obj or []:
        if isinstance(r, dict):
            name = _first(r, *name_keys)
            out.append({**r, "name": str(name) if name is not None else "?"})
    return out


def _rates(obj: Any) -> dict[str, float] | None:
    """Class rates as {HOLD, BUY_CALL, BUY_PUT}; accepts names, ints or a 3-list."""
    if isinstance(obj, list | tuple) and len(obj) == len(CLASS_NAMES):
        return {c: float(v) for c, v in zip(CLASS_NAMES, obj, strict=True)}
    if isinstance(obj, dict):
        out = {}
        for i, c in enumerate(CLASS_NAMES):
            short = c.replace("BUY_", "")
            v = _num(_first(obj, c, c.lower(), str(i), short, short.lower()))
            if v is not None:
                out[c] = v
        return out or None
    return None


# ---------------------------------------------------------------------------- sections


def _model_section(cfg: dict | None, prep: dict | None) -> dict[str, Any]:
    if cfg is None:
        return {}
    names = _first(prep, "feature_names") if prep else None
    m, w = cfg["model"], cfg["windows"]
    return {
        "feature_dim": len(names) if names else len(cfg["features"]["names"]),
        "embedding_dim": m["d_model"],
        "num_heads": m["n_heads"],
        "num_layers": m["n_layers"],
        "ff_dim": m["ff_dim"],
        "patch_length": w["patch_len"],
        "context_horizon": w["context_patches"],
        "gap": w["gap_patches"],
        "target_horizon": w["target_patches"],
        "pooling": m["pooling"],
    }


def _training_section(
    cfg: dict | None, pretrain: dict | None, epochs: list[dict]
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
            multi_horizon=loss["multi_horizon"],
            batch_size=tr["batch_size"],
            learning_rate=tr["lr"],
            epochs=tr["epochs"],
        )
    last = epochs[-1] if epochs else {}
    pt = pretrain or {}
    out["global_step"] = _num(_first(pt, "global_step", "step")) or _num(last.get("step"))
    out["epochs_run"] = _num(_first(pt, "epochs_run")) or _num(last.get("epoch"))
    out["best_epoch"] = _num(pt.get("best_epoch"))
    out["status"] = pt.get("status") if pretrain is not None else None
    out["message"] = pt.get("message")
    for k in ("global_step", "epochs_run", "best_epoch"):
        if out[k] is not None:
            out[k] = int(out[k])
    return out


def _prepared_refs(cfg_obj: Any) -> list[Path]:
    """Where the prepared dataset of this config lives, by the cache-key contract."""
    out = []
    try:
        from marketjepa.paths import prepared_dir

        out.append(Path(prepared_dir(cfg_obj)))
    except Exception:  # the helper is optional; the manifest reference is preferred anyway
        pass
    return out


def _resolve_prepared(
    run_dir: Path, manifest: dict | None, pretrain: dict | None, cfg_obj: Any
) -> Path | None:
    ref = _first(manifest, "prepared_dir", "inputs.prepared_dir", "inputs.prepared") or _first(
        pretrain, "prepared_dir"
    )
    refs = ([Path(str(ref))] if ref else []) + (_prepared_refs(cfg_obj) if cfg_obj else [])
    for r in refs:
        # Relative paths are relative to the project root: cwd, or the folder above runs/.
        for cand in (r, run_dir / r, run_dir.parent.parent / r):
            if (cand / "manifest.json").exists():
                return cand
    return None


def _data_section(cfg: dict | None, prep: dict | None, prep_dir: Path | None) -> dict[str, Any]:
    out: dict[str, Any] = {"prepared_dir": str(prep_dir) if prep_dir else None}
    if cfg is not None:
        src = cfg["data"]["source"]
        out["source"] = src
        out["ticker"] = cfg["data"]["ticker"]
        out["signal"] = cfg["synth"]["signal"] if src == "synthetic" else None
        if src == "synthetic":
            out["date_start"], out["date_end"] = cfg["synth"]["start"], cfg["synth"]["end"]
    p = prep or {}
    start = _first(p, "date_start", "start", "first_session", "sessions.first")
    end = _first(p, "date_end", "end", "last_session", "sessions.last")
    if start:
        out["date_start"] = str(start)
    if end:
        out["date_end"] = str(end)
    out["bars_total"] = _num(
        _first(p, "bars_before_session_filter", "bars_total", "bars_before_filter", "bars_raw")
    )
    out["bars_after_filter"] = _num(
        _first(p, "bars_after_session_filter", "bars_after_filter", "bars_session", "rows")
    )
    days = _first(p, "days_per_split", "days", "split_days") or {}
    for split in ("train", "val", "test", "embargo"):
        out[f"days_{split}"] = _num(days.get(split)) if isinstance(days, dict) else None
    total = _num(_first(p, "days_total", "n_days", "sessions.count"))
    if total is None and isinstance(days, dict) and days:
        total = float(sum(_num(v) or 0 for v in days.values()))
    out["days_total"] = total
    rates = _first(p, "class_rates_per_split", "class_rates", "label_rates") or {}
    out["class_rates"] = {s: _rates(r) for s, r in rates.items()} if isinstance(rates, dict) else {}
    out["label_k"] = _num(_first(p, "label_k", "labels.k", "k"))
    # session repairs (issue 11): raw / filled / dropped minutes, dropped partial sessions
    for k in ("raw_minutes", "filled_minutes", "dropped_minutes", "dropped_sessions"):
        out[k] = _num(p.get(k))
    out["dropped_session_dates"] = list(p.get("dropped_session_dates") or [])
    out["partial_sessions"] = p.get("partial_sessions")
    out["calendar"] = p.get("calendar")
    fs = p.get("filled_share_per_split") or {}
    out["filled_share_test"] = _num(fs.get("test")) if isinstance(fs, dict) else None
    for k in (
        "bars_total",
        "bars_after_filter",
        "days_total",
        "raw_minutes",
        "filled_minutes",
        "dropped_minutes",
        "dropped_sessions",
    ) + tuple(f"days_{s}" for s in ("train", "val", "test", "embargo")):
        if out.get(k) is not None:
            out[k] = int(out[k])
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
    if not epochs:
        return {}
    last = epochs[-1]
    out = {k: _num(last.get(k)) for k in ("epoch", "train_loss", "train_pred", "train_sigreg")}
    out.update({k: _num(last.get(k)) for k in ("val_loss", "val_pred", "val_sigreg")})
    # The probe tensor is the one a reader of the seed's "dim_variance_mean" cares about;
    # fall back to the SIGReg tensor, then to unprefixed columns.
    for k in EMBEDDING_STAT_KEYS:
        out[k] = _num(_first(last, f"probe_{k}", f"sig_{k}", k))
    out["latent_acc"] = _num(last.get("latent_acc"))
    out["latent_share"] = _num(last.get("latent_share"))
    return out


def _tensor_stats(t: dict) -> dict[str, Any]:
    out = {k: _num(t.get(k)) for k in EMBEDDING_STAT_KEYS}
    out["d"] = _num(_first(t, "d", "dim", "embedding_dim"))
    out["sigreg_heldout"] = _num(t.get("sigreg_heldout"))
    spec = _first(t, "spectrum", "eigenvalues")
    out["spectrum"] = [float(v) for v in spec] if isinstance(spec, list) else None
    if out["rankme_ratio"] is None and out["rankme"] is not None and out["d"]:
        out["rankme_ratio"] = out["rankme"] / out["d"]
    return out


def _diagnostics_section(diag: dict | None) -> dict[str, Any]:
    if diag is None:
        return _not_run("diagnostics.json")
    tensors: dict[str, Any] = {}
    src = diag.get("tensors") if isinstance(diag.get("tensors"), dict) else diag
    held = diag.get("heldout_split")
    if isinstance(diag.get("splits"), dict) and diag["splits"].get(held):
        src = diag["splits"][held]  # diagnose: per-split reports, verdict on the held-out split
    for alias, keys in {"probe": ("probe", "pooled"), "sigreg": ("sigreg", "sig")}.items():
        t = _first(src, *keys)
        if isinstance(t, dict):
            tensors[alias] = _tensor_stats(t)
    verdict = diag.get("verdict")
    raw_reasons = diag.get("reasons")
    thresholds = diag.get("thresholds") or {}
    if isinstance(verdict, dict):
        raw_reasons = _first(verdict, "reasons", "reason") or raw_reasons
        thresholds = verdict.get("thresholds") or thresholds
        verdict = _first(verdict, "status", "verdict", "label")
    reasons = [raw_reasons] if isinstance(raw_reasons, str) else list(raw_reasons or [])
    return {
        "available": True,
        "note": "",
        "verdict": str(verdict).upper() if verdict else None,
        "reasons": [str(r) for r in reasons],
        "thresholds": {k: _num(v) for k, v in thresholds.items()},
        "heldout_sigreg": _num(_first(diag, "heldout_sigreg", "sigreg_heldout"))
        or (tensors.get("sigreg") or {}).get("sigreg_heldout"),
        "heldout_split": held,
        "tensors": tensors,
    }


def _kind(name: str) -> str:
    if name.startswith("oracle"):
        return "oracle"
    if name.startswith("lejepa"):
        return "encoder"
    return "baseline"


# probes.json walk-forward metric name -> summary name (as in the classification rows)
_WF_KEYS = {
    "balanced_accuracy": "balanced_accuracy",
    "lift_balanced": "bacc_lift",
    "direction_accuracy": "dir_acc",
    "lift_direction": "dir_lift",
}


def _walk_forward_section(wf: Any) -> dict[str, Any] | None:
    """probes.json ``walk_forward``: fold blocks, and per representation the per-fold
    scores with their mean and std over folds. ``None`` when the run has none."""
    if not isinstance(wf, dict):
        return None

    def span(x: Any) -> list[Any] | None:
        return list(x) if isinstance(x, list | tuple) and len(x) == 2 else None

    folds = [
        {
            "fold": int(_num(f.get("fold")) or i + 1),
            "days": span(f.get("days")),
            "dates": span(f.get("dates")),
            "n_rows": _num(f.get("n_rows")),
        }
        for i, f in enumerate(wf.get("folds") or [])
        if isinstance(f, dict)
    ]
    rows = []
    for name, r in (wf.get("representations") or {}).items():
        if not isinstance(r, dict):
            continue
        mean, std = r.get("mean") or {}, r.get("std") or {}
        pooled = r.get("pooled") or {}
        row: dict[str, Any] = {"name": str(name), "kind": _kind(str(name))}
        for src, dst in _WF_KEYS.items():
            row[dst] = _num(mean.get(src))
            row[f"{dst}_std"] = _num(std.get(src))
            row[f"{dst}_pooled"] = _num(pooled.get(src))
            row[f"{dst}_pooled_ci"] = _ci((pooled.get("ci") or {}).get(src))
        row["folds"] = [
            {
                "fold": int(_num(f.get("fold")) or i + 1),
                "days": span(f.get("days")),
                "n_rows": _num(f.get("n_rows")),
                **{dst: _num(f.get(src)) for src, dst in _WF_KEYS.items()},
            }
            for i, f in enumerate(r.get("folds") or [])
            if isinstance(f, dict)
        ]
        rows.append(row)
    return {
        "n_folds": int(_num(wf.get("n_folds")) or len(folds)),
        "embargo_days": _num(wf.get("embargo_days")),
        "select_share": _num(wf.get("select_share")),
        "note": str(wf.get("note") or ""),
        "folds": folds,
        "rows": rows,
    }


def _probes_section(probes: dict | None) -> dict[str, Any]:
    if probes is None:
        return _not_run("probes.json")
    n_classes = int(_num(probes.get("n_classes")) or len(CLASS_NAMES))
    chance = 1.0 / n_classes
    cls_src = _first(probes, "classification", "direction", "rows") or []
    classification = []
    for r in _rows(cls_src):
        acc, acc_ci = _metric(r, "accuracy", "acc")
        bacc, bacc_ci = _metric(r, "balanced_accuracy", "bacc")
        maj = _num(_first(r, "majority_rate", "majority_accuracy", "baseline_accuracy"))
        if maj is None:
            maj = _num(_first(probes, "majority_rate", "majority"))
        lift, lift_ci = _metric(r, "bacc_lift", "lift_balanced", "balanced_accuracy_lift")
        dir_acc, dir_acc_ci = _metric(r, "dir_acc", "direction_accuracy")
        dir_lift, dir_lift_ci = _metric(r, "dir_lift", "lift_direction")
        if lift is None and bacc is not None:
            # The majority predictor's balanced accuracy is 1/K: lift is measured against it.
            lift = bacc - chance
            lift_ci = [bacc_ci[0] - chance, bacc_ci[1] - chance] if bacc_ci else None
        f1, _ = _metric(r, "macro_f1", "f1")
        conf = r.get("confusion") or r.get("confusion_matrix")
        classification.append(
            {
                "name": r["name"],
                "kind": _kind(r["name"]),
                "accuracy": acc,
                "accuracy_ci": acc_ci,
                "balanced_accuracy": bacc,
                "balanced_accuracy_ci": bacc_ci,
                "macro_f1": f1,
                "majority_rate": maj,
                "acc_lift": acc - maj if acc is not None and maj is not None else None,
                "bacc_lift": lift,
                "bacc_lift_ci": lift_ci,
                "dir_acc": dir_acc,
                "dir_acc_ci": dir_acc_ci,
                "dir_lift": dir_lift,
                "dir_lift_ci": dir_lift_ci,
                "confusion": conf if isinstance(conf, list) else None,
                "resamples": r.get("resamples") if isinstance(r.get("resamples"), dict) else {},
                "dir_return": r.get("dir_return")
                if isinstance(r.get("dir_return"), dict)
                else None,
            }
        )
    regression = []
    for r in _rows(_first(probes, "regression") or []):
        r2, r2_ci = _metric(r, "r2", "R2")
        ic, ic_ci = _metric(r, "ic", "spearman_ic")
        kind = r.get("metric")  # probes.json: one row per target, {"metric", "value", "ci"}
        if kind in ("r2", "ic") and _num(r.get("value")) is not None:
            v = _num(r["value"])
            c = _ci((r.get("ci") or {}).get(kind)) if isinstance(r.get("ci"), dict) else None
            r2, r2_ci, ic, ic_ci = (v, c, ic, ic_ci) if kind == "r2" else (r2, r2_ci, v, c)
        target = str(_first(r, "target") or "fwd_rv")
        regression.append(
            {
                "name": r["name"],
                "target": target,
                "r2": r2,
                "r2_ci": r2_ci,
                "ic": ic,
                "ic_ci": ic_ci,
            }
        )
    latent = []
    for r in _rows(_first(probes, "latent", "latent_state") or []):
        acc, acc_ci = _metric(r, "accuracy", "acc")
        share = _num(_first(r, "share_of_filter", "share", "filter_share"))
        latent.append(
            {"name": r["name"], "accuracy": acc, "accuracy_ci": acc_ci, "share_of_filter": share}
        )
    paired = []
    for r in _first(probes, "paired", "paired_tests") or []:
        diff, ci = _metric(r, "diff", "difference", "delta")
        ci = (
            ci or _ci(r.get("ci")) or (_ci([r["lo"], r["hi"]]) if "lo" in r and "hi" in r else None)
        )
        a = _first(r, "a", "left", "representation")
        b = _first(r, "b", "right", "baseline", "vs")
        if isinstance(a, str) and isinstance(b, str):  # names, not the estimates
            metric = str(_first(r, "metric") or "balanced_accuracy")
            res = r.get("resamples") if isinstance(r.get("resamples"), dict) else {}
            paired.append(
                {
                    "a": str(a),
                    "b": str(b),
                    "metric": metric,
                    "diff": diff,
                    "ci": ci,
                    "resamples": res,
                }
            )
    # Evidence-gate inputs (report/evidence.py): days, rows and per-class rows scored.
    split = str(_first(probes, "split", "evaluated_on") or "test")
    counts = None
    conf0 = classification[0]["confusion"] if classification else None
    if isinstance(conf0, list) and len(conf0) == len(CLASS_NAMES):
        counts = {c: float(sum(row)) for c, row in zip(CLASS_NAMES, conf0, strict=True)}
    boot = probes.get("bootstrap") if isinstance(probes.get("bootstrap"), dict) else {}
    return {
        "available": True,
        "note": "",
        "n_classes": n_classes,
        "split": split,
        "eval_days": _num(_dig(probes, f"n_days.{split}")),
        "eval_rows": _num(_dig(probes, f"n_rows.{split}")),
        "class_counts": counts,
        "ci_level": _num(probes.get("ci_level")),
        "block_days": _num(boot.get("block_days")),
        "classification": classification,
        "regression": regression,
        "latent": latent,
        "paired": paired,
        "walk_forward": _walk_forward_section(probes.get("walk_forward")),
    }


def _primary(names: list[str], preferred: Any = None) -> str | None:
    """The strategy/representation the report headlines: LeJEPA unless told otherwise."""
    for cand in (preferred, "lejepa"):
        if cand in names:
            return cand
    return next((n for n in names if n.startswith("lejepa")), names[0] if names else None)


def _policy_split(m: dict, signal_rates: Any) -> dict[str, Any]:
    acc, _ = _metric(m, "accuracy", "acc")
    bacc, _ = _metric(m, "balanced_accuracy", "bacc")
    sig = None
    if isinstance(signal_rates, dict):
        c, p = (
            _num(_first(signal_rates, "call", "BUY_CALL")),
            _num(_first(signal_rates, "put", "BUY_PUT")),
        )
        if c is not None and p is not None:
            sig = {"HOLD": 1.0 - c - p, "BUY_CALL": c, "BUY_PUT": p}
    return {
        "accuracy": acc,
        "balanced_accuracy": bacc,
        "label_rates": _rates(_first(m, "label_rates", "true_rates", "class_rates")),
        "pred_rates": _rates(_first(m, "pred_rates", "predicted_rates")),
        # After the decision thresholds: what the backtest actually trades.
        "signal_rates": sig,
    }


def _policy_section(pol: dict | None) -> dict[str, Any]:
    if pol is None:
        return _not_run("policy/policy.json")
    reps = pol.get("representations") if isinstance(pol.get("representations"), dict) else None
    rep_name = None
    body = pol
    if reps:  # policy.json: one fitted policy per representation
        rep_name = _primary(list(pol.get("order") or reps), pol.get("primary"))
        body = reps.get(rep_name) or {}
    src = _first(body, "classification", "splits", "metrics") or {
        s: body[s] for s in ("train", "val", "test") if isinstance(body.get(s), dict)
    }
    sig_rates = body.get("signal_rates") or {}
    splits = {
        s: _policy_split(m, sig_rates.get(s) if isinstance(sig_rates, dict) else None)
        for s, m in (src or {}).items()
        if isinstance(m, dict)
    }
    warnings = [str(w) for w in (pol.get("warnings") or body.get("warnings") or [])]
    return {
        "available": True,
        "note": "",
        "representation": rep_name or _first(pol, "representation", "rep"),
        "head": _first(pol, "head") or _first(body, "head"),
        "thresholds_chosen_on": _first(pol, "thresholds_chosen_on"),
        "splits": splits,
        "warnings": warnings,
    }


def _attribution(
    trades: pl.DataFrame | None, metrics: dict, primary: str | None
) -> dict[str, float | None]:
    src = _first(metrics, "attribution", "pnl_attribution")
    if isinstance(src, dict) and primary in src and isinstance(src[primary], dict):
        src = src[primary]  # backtest: attribution per strategy
    vals: dict[str, float | None] = {}
    aliases = {
        "underlying": ("underlying", "pnl_underlying", "delta_gamma", "pnl_delta", "delta"),
        "theta": ("theta", "pnl_theta"),
        "vega": ("vega", "pnl_vega"),
        "other": ("other", "residual", "pnl_residual"),
        "costs": ("cost_total", "costs", "cost", "pnl_costs", "total_costs"),
    }
    if isinstance(src, dict):
        for k, keys in aliases.items():
            vals[k] = _num(_first(src, *keys))
    elif trades is not None and trades.height:
        for k, keys in aliases.items():
            col = next((c for c in keys if c in trades.columns), None)
            vals[k] = float(trades[col].sum()) if col else None
    else:
        return {}
    if vals.get("costs") is not None:
        vals["costs"] = abs(vals["costs"])  # always a drag, whatever sign the writer used
    parts = [vals.get(k) for k in ("underlying", "theta", "vega", "other")]
    gross = _num(_first(src, "gross", "gross_pnl")) if isinstance(src, dict) else None
    if gross is None and trades is not None and "gross_pnl" in trades.columns:
        gross = float(trades["gross_pnl"].sum())
    if gross is None and any(p is not None for p in parts):
        gross = float(sum(p or 0.0 for p in parts))
    vals["gross"] = gross
    net = _num(_first(src, "net", "net_pnl")) if isinstance(src, dict) else None
    pnl_col = next(
        (c for c in ("net_pnl", "pnl") if trades is not None and c in trades.columns), None
    )
    if net is None and pnl_col:
        net = float(trades[pnl_col].sum())
    if net is None and gross is not None and vals.get("costs") is not None:
        net = gross - vals["costs"]
    vals["net"] = net
    return vals


def _side_counts(trades: pl.DataFrame | None) -> tuple[int | None, int | None]:
    if trades is None:
        return None, None
    for col in ("right", "side", "signal", "direction"):
        if col in trades.columns:
            s = trades[col].cast(pl.Utf8).str.to_uppercase()
            calls = int(s.is_in(["C", "CALL", "BUY_CALL", "1"]).sum())
            puts = int(s.is_in(["P", "PUT", "BUY_PUT", "2"]).sum())
            return calls, puts
    return None, None


def _bt_metrics(m: dict) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, aliases in {
        "total_return": ("total_return",),
        "n_trades": ("n_trades", "trades", "num_trades"),
        "win_rate": ("win_rate",),
        "n_call": ("n_call", "calls"),
        "n_put": ("n_put", "puts"),
        "call_share": ("call_share",),
        "put_share": ("put_share",),
        "sharpe": ("sharpe", "sharpe_ratio"),
        "sortino": ("sortino",),
        "max_drawdown": ("max_drawdown", "mdd"),
        "psr": ("psr", "probabilistic_sharpe"),
        "dsr": ("dsr", "deflated_sharpe"),
        "n_trials": ("n_trials", "trials"),
        "avg_win": ("avg_win",),
        "avg_loss": ("avg_loss",),
        "profit_factor": ("profit_factor",),
        "net_pnl": ("net_pnl", "pnl"),
        "sharpe_ci_valid_share": ("sharpe_ci_valid_share",),
        "sharpe_ci_distinct": ("sharpe_ci_distinct",),
    }.items():
        v, ci = _metric(m, *aliases)
        out[key] = v
        if key == "sharpe":
            out["sharpe_ci"] = ci or _ci(m.get("sharpe_bootstrap_ci"))
    return out


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


def _only_strategy(df: pl.DataFrame | None, name: str | None) -> pl.DataFrame | None:
    """Trades/equity files hold every strategy in a ``strategy`` column; keep one."""
    if df is None or "strategy" not in df.columns or name is None:
        return df
    return df.filter(pl.col("strategy") == name)


def _equity(eq: pl.DataFrame | None) -> dict[str, list]:
    if eq is None or not eq.height:
        return {}
    ecol = next((c for c in ("equity", "value", "capital") if c in eq.columns), None)
    if ecol is None:
        return {}
    tcol = next((c for c in ("ts", "date", "time", "session") if c in eq.columns), None)
    e = eq[ecol].cast(pl.Float64).to_numpy()
    # One drawdown convention whatever the writer used: e / running peak − 1 (≤ 0).
    dd = e / np.maximum.accumulate(e) - 1.0
    t = eq[tcol] if tcol else None
    if t is not None and t.dtype.is_integer() and t.len() and int(t.max()) > 10**15:
        t = t.cast(pl.Datetime("ns"))  # int64 UTC ns, the contract's timestamp unit
    return {
        "t": [str(x) for x in t.to_list()] if t is not None else list(range(len(e))),
        "equity": e.tolist(),
        "drawdown": dd.tolist(),
    }


def _backtest_section(bt_dir: Path, cfg: dict | None, policy_rep: Any) -> dict[str, Any]:
    mpath = bt_dir / "metrics.json"
    if not mpath.exists():
        return _not_run("backtest/metrics.json")
    raw = _read_json(mpath)
    tpath, epath = bt_dir / "trades.parquet", bt_dir / "equity.parquet"
    trades = _read_parquet(tpath) if tpath.exists() else None
    eq = _read_parquet(epath) if epath.exists() else None

    strategies = raw.get("strategies") if isinstance(raw.get("strategies"), dict) else None
    if strategies:  # backtest: {"strategies": {name: metrics}} incl. the baselines
        primary = _primary(list(strategies), _first(raw, "primary", "representation") or policy_rep)
        main = strategies.get(primary) or {}
        others = {k: v for k, v in strategies.items() if k != primary and isinstance(v, dict)}
    else:
        primary = _first(raw, "representation", "strategy.representation") or policy_rep
        main = _first(raw, "strategy", "policy", "lejepa") or raw
        others = _first(raw, "baselines", "table") or []
    trades, eq = _only_strategy(trades, primary), _only_strategy(eq, primary)

    metrics = _bt_metrics(main)
    calls, puts = _side_counts(trades)
    if metrics["n_call"] is None:
        metrics["n_call"], metrics["n_put"] = calls, puts
    if metrics["n_trades"] is None and trades is not None:
        metrics["n_trades"] = trades.height
    nc, np_ = metrics["n_call"], metrics["n_put"]
    if metrics["call_share"] is None and nc is not None and np_ is not None and nc + np_ > 0:
        metrics["call_share"], metrics["put_share"] = nc / (nc + np_), np_ / (nc + np_)
    if metrics["n_trials"] is None:
        metrics["n_trials"] = _num(_first(raw, "n_trials", "trials"))
    pricing = _first(raw, "pricing", "pricing_mode") or (
        cfg["backtest"]["pricing"] if cfg else None
    )
    modeled = raw.get("prices_modeled")
    if modeled is None and pricing is not None:
        modeled = pricing == "surface"
    baselines = []
    for r in _rows(others):
        b = _bt_metrics(r)
        baselines.append({"name": r["name"], **{k: b.get(k) for k in _BASELINE_KEYS}})
    pnl_col = next(
        (c for c in ("net_pnl", "pnl") if trades is not None and c in trades.columns), None
    )
    return {
        "available": True,
        "note": "",
        "evaluated_on": str(_first(raw, "evaluated_on", "split") or "unknown"),
        "days": _num(raw.get("days")),
        "pricing": pricing,
        "prices_modeled": bool(modeled) if modeled is not None else None,
        "price_sources": raw.get("price_sources") or {},
        "representation": primary,
        "metrics": metrics,
        "attribution": _attribution(trades, raw, primary),
        "baselines": baselines,
        "trade_pnl": trades[pnl_col].cast(pl.Float64).to_list() if pnl_col else [],
        "equity": _equity(eq),
    }


# ---------------------------------------------------------------------------- entry point


def collect_run(run_dir: Path) -> dict[str, Any]:
    """Read a run directory's artifacts into the normalized summary (schema in module doc)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise MarketJepaError(f"run directory not found: {run_dir}")

    cfg, cfg_obj = None, None
    if (run_dir / "config.yaml").exists():
        try:
            cfg_obj = read_config(run_dir / "config.yaml")
            cfg = cfg_obj.to_dict()
        except (ConfigError, yaml.YAMLError) as exc:
            raise DataValidationError(str(exc), file=str(run_dir / "config.yaml")) from None
    manifest = (
        _read_json(run_dir / "manifest.json") if (run_dir / "manifest.json").exists() else None
    )
    pretrain = (
        _read_json(run_dir / "pretrain.json") if (run_dir / "pretrain.json").exists() else None
    )
    mpath = run_dir / "metrics.csv"
    epochs = _read_metrics_csv(mpath) if mpath.exists() else []
    prep_dir = _resolve_prepared(run_dir, manifest, pretrain, cfg_obj)
    prep = _read_json(prep_dir / "manifest.json") if prep_dir else None

    def opt_json(rel: str) -> Any:
        p = run_dir / rel
        return _read_json(p) if p.exists() else None

    policy = _policy_section(opt_json("policy/policy.json"))
    stages = {
        "pretrain": ("pretrain.json", pretrain is not None or bool(epochs)),
        "diagnose": ("diagnostics.json", (run_dir / "diagnostics.json").exists()),
        "probe": ("probes.json", (run_dir / "probes.json").exists()),
        "policy": ("policy/policy.json", (run_dir / "policy/policy.json").exists()),
        "backtest": ("backtest/metrics.json", (run_dir / "backtest/metrics.json").exists()),
    }
    return {
        "run_dir": str(run_dir),
        "run_name": (cfg or {}).get("name") or run_dir.name,
        "generated": date.today().isoformat(),
        "config": cfg,
        "manifest": manifest,
        "stages": {
            s: {"ran": ran, "file": f, "note": "" if ran else f"stage not run ({f} not found)"}
            for s, (f, ran) in stages.items()
        },
        "model": _model_section(cfg, prep),
        "training": _training_section(cfg, pretrain, epochs),
        "data": _data_section(cfg, prep, prep_dir),
        "epochs": epochs,
        "final": _final_section(epochs),
        "diagnostics": _diagnostics_section(opt_json("diagnostics.json")),
        "probes": _probes_section(opt_json("probes.json")),
        "policy": policy,
        "backtest": _backtest_section(run_dir / "backtest", cfg, policy.get("representation")),
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
        "LeJEPA bal-acc lift": lejepa.get("bacc_lift"),
        "raw window bal-acc lift": raw.get("bacc_lift"),
        "LeJEPA direction lift": lejepa.get("dir_lift"),
        "raw window direction lift": raw.get("dir_lift"),
        "latent acc (last epoch)": final.get("latent_acc"),
        "backtest total return": btm.get("total_return"),
        "backtest trades": btm.get("n_trades"),
        "backtest Sharpe": btm.get("sharpe"),
        "backtest DSR": btm.get("dsr"),
    }

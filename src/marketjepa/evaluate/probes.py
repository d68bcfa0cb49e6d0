"""Linear probes of every representation, with block-bootstrap CIs (DESIGN §4, issue #6).

The honest answer to "did pretraining learn anything useful?": the same linear probes,
on the same rows and splits, for the pretrained LeJEPA encoder and for baselines that
need no pretraining (majority class, raw window statistics, HAR-RV, a random-init and a
supervised encoder of the same architecture, and on synthetic data the true regime and
the Bayes filter). Accuracy alone is never the headline: lifts over the majority class
and over chance are reported, each with a 95% CI by block bootstrap over days.

Protocol (no validation/test row is ever used to fit a probe):

1. Inputs are standardized with train-row statistics.
2. For each hyper-parameter in the grid a probe is fit on **train rows only**; the one
   with the best validation score is kept (it is the train-only fit — nothing is refit
   on validation rows).
3. It is scored on test rows (on validation rows when there is no test split — then the
   output says ``"evaluated_on": "val"`` and notes the optimism).

The rows and every representation come from the ``represent`` stage
(:mod:`marketjepa.evaluate.represent`); this module only fits and scores.

With ``split.walk_forward_folds > 0`` the same probe is also scored walk-forward over all
probed rows (:func:`walk_forward_probe`): each fold fits and chooses C on earlier days only.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from marketjepa.config import Config, EvalConfig, SplitConfig
from marketjepa.console import console, stage_line
from marketjepa.constants import CLASS_NAMES, N_CLASSES, SPLIT_NAMES, TEST, TRAIN, VAL
from marketjepa.data.splits import walk_forward_eval_folds
from marketjepa.errors import DataValidationError, MarketJepaError
from marketjepa.evaluate.bootstrap import block_bootstrap, paired_bootstrap_test
from marketjepa.evaluate.linear_probe import (  # noqa: F401  (re-exported)
    ProbeFit,
    default_logistic,
    fit_classification_probe,
    fit_ridge_probe,
)
from marketjepa.evaluate.represent import (  # noqa: F401  (re-exported)
    ProbeRows,
    load_probe_inputs,
    load_representations,
    read_summary,
)
from marketjepa.evaluate.scoring import (  # noqa: F401  (re-exported)
    MIN_REFERENCE_GAIN,
    balanced_accuracy,
    classification_metrics,
    confusion_matrix,
    direction_accuracy,
    per_class_scores,
    r2_score,
    share_over_chance,
    spearman_ic,
)
from marketjepa.evaluate.signed_return import day_mean_test, signed_returns
from marketjepa.evaluate.tables import print_tables, render_probe_tables
from marketjepa.results import ProbeTable, validate_result, write_result

# ---------------------------------------------------------------------------------------
# the probe table
# ---------------------------------------------------------------------------------------


def _ci(res) -> list[float]:
    return [res.lo, res.hi]


def _boot_kwargs(ev: EvalConfig) -> dict[str, Any]:
    return {
        "block_days": ev.bootstrap_block_days,
        "n_samples": ev.bootstrap_samples,
        "level": ev.ci_level,
        "seed": ev.seed,
    }


def _classification_row(
    name: str, dim: int, pred: np.ndarray, rows: ProbeRows, eval_split: int, majority: int, ev
) -> dict[str, Any]:
    e = rows.split == eval_split
    v = rows.split == VAL

    def metric(yt, yp):
        return classification_metrics(yt, yp, N_CLASSES, majority)

    boot = block_bootstrap(metric, rows.label[e], pred[e], rows.day[e], **_boot_kwargs(ev))
    signed = signed_returns(pred[e], rows.fwd_ret[e], rows.sigma_h[e])
    cm = confusion_matrix(rows.label[e], pred[e], N_CLASSES)
    precision, recall, _ = per_class_scores(cm)
    val_m = metric(rows.label[v], pred[v])
    return {
        "representation": name,
        "dim": dim,
        **{k: r.estimate for k, r in boot.items()},
        "per_class": {
            c: {
                "precision": float(precision[k]),
                "recall": float(recall[k]),
                "support": int(cm[k].sum()),
            }
            for k, c in enumerate(CLASS_NAMES)
        },
        "confusion": cm.tolist(),
        "ci": {k: _ci(r) for k, r in boot.items()},
        # Bootstrap SE, share of defined replicates and distinct values per metric: the
        # report's evidence gate and family-wise test read them (report/evidence.py).
        "resamples": {k: r.resample_info() for k, r in boot.items()},
        # The test of a directional edge: mean signed standardized forward return, t-test
        # over test days (valid whenever the log price is a martingale).
        "dir_return": day_mean_test(signed, rows.day[e], ev.ci_level),
        "val": {"accuracy": val_m["accuracy"], "balanced_accuracy": val_m["balanced_accuracy"]},
    }


def probe_table(
    reps: dict[str, np.ndarray],
    rows: ProbeRows,
    ev: EvalConfig,
    *,
    eval_split: int = TEST,
    regression_only: tuple[str, ...] = ("har_rv", "har_rv_intraday"),
    paired: tuple[tuple[str, str], ...] = (
        ("lejepa", "raw_window"),
        ("lejepa", "random_init"),
        ("lejepa", "supervised"),
        ("lejepa_finetuned", "supervised"),
        ("hybrid", "raw_window"),
    ),
) -> dict[str, Any]:
    """Classification, regression and latent-state probes of every representation.

    ``reps`` maps a name to a ``[n_rows, d]`` matrix aligned with ``rows``. Returns the
    ``probes.json`` body (without file-level fields). Representations in
    ``regression_only`` get only the forward-vol regression row.
    """
    # Many small lbfgs fits: multi-threaded BLAS only adds contention (20-40x slower on a
    # loaded 2-core machine), so every probe fit runs single-threaded.
    with threadpool_limits(limits=1, user_api="blas"):
        return _probe_table(reps, rows, ev, eval_split, regression_only, paired)


def _probe_table(
    reps: dict[str, np.ndarray],
    rows: ProbeRows,
    ev: EvalConfig,
    eval_split: int,
    regression_only: tuple[str, ...],
    paired: tuple[tuple[str, str], ...],
) -> dict[str, Any]:
    _check_inputs(reps, rows, eval_split)
    out: dict[str, Any] = {"classification": [], "regression": [], "latent": [], "paired_tests": []}
    classify = {k: X for k, X in reps.items() if k not in regression_only}
    out["classification"], preds, out["majority_class"] = _classification_rows(
        classify, rows, ev, eval_split
    )
    out["regression"] = _regression_rows(reps, rows, ev, eval_split, regression_only)
    if rows.regime is not None and rows.filter_probs is not None:
        out["latent"] = _latent_rows(reps, rows, ev, eval_split, regression_only)
    e = rows.split == eval_split
    for a, b in paired:
        if a in preds and b in preds:
            t = paired_bootstrap_test(
                balanced_accuracy,
                rows.label[e],
                preds[a][e],
                preds[b][e],
                rows.day[e],
                **_boot_kwargs(ev),
            )
            out["paired_tests"].append(
                {"a": a, "b": b, "metric": "balanced_accuracy"} | t.to_dict()
            )
    return out


def _check_inputs(reps: dict[str, np.ndarray], rows: ProbeRows, eval_split: int) -> None:
    for name, X in reps.items():
        if X.shape[0] != rows.anchors.size:
            raise ValueError(
                f"representation {name}: {X.shape[0]} rows, expected {rows.anchors.size}"
            )
        if not np.all(np.isfinite(X)):
            raise MarketJepaError(
                f"representation {name} has non-finite values; check the stage that made it"
            )
    e = rows.split == eval_split
    if not e.any() or not np.any(rows.split == TRAIN) or not np.any(rows.split == VAL):
        raise DataValidationError(
            f"probes need train, validation and {SPLIT_NAMES[eval_split]} rows; got "
            f"{rows.counts()}",
            hint="use more data or shorter windows; `marketjepa inspect-data` says what fits",
        )


def _classification_rows(
    reps: dict[str, np.ndarray], rows: ProbeRows, ev: EvalConfig, eval_split: int
) -> tuple[list[dict[str, Any]], dict[str, np.ndarray], dict[str, Any]]:
    """The majority-class row, then one entry-label probe per representation.

    Returns the rows, each representation's predictions and the majority-class summary.
    """
    train_labels = rows.label[rows.split == TRAIN]
    majority = int(np.bincount(train_labels, minlength=N_CLASSES).argmax())
    const = np.full(rows.anchors.size, majority)
    out = [_classification_row("majority", 0, const, rows, eval_split, majority, ev) | {"C": None}]
    preds: dict[str, np.ndarray] = {}
    for name, X in reps.items():
        fit = fit_classification_probe(X, rows.label, rows.split, ev.probe_c_grid, seed=ev.seed)
        preds[name] = fit.predictions
        row = _classification_row(name, X.shape[1], fit.predictions, rows, eval_split, majority, ev)
        out.append(row | {"C": fit.param})
    summary = {
        "class": CLASS_NAMES[majority],
        "train_rate": float(np.mean(train_labels == majority)),
        "eval_accuracy": out[0]["accuracy"],
    }
    return out, preds, summary


def _regression_rows(
    reps: dict[str, np.ndarray],
    rows: ProbeRows,
    ev: EvalConfig,
    eval_split: int,
    regression_only: tuple[str, ...],
) -> list[dict[str, Any]]:
    """Forward log realized vol (R², with the train-mean constant) and forward return (IC)."""
    e = rows.split == eval_split
    bk = _boot_kwargs(ev)
    finite = np.isfinite(rows.fwd_rv) & np.isfinite(rows.fwd_ret)
    out = []
    for target, metric_name, metric in (("fwd_rv", "r2", r2_score), ("fwd_ret", "ic", spearman_ic)):
        y = getattr(rows, target)
        sel = finite & e
        if metric_name == "r2":
            train_mean = float(np.mean(y[finite & (rows.split == TRAIN)]))
            const = np.full(sel.sum(), train_mean)
            res = block_bootstrap(metric, y[sel], const, rows.day[sel], **bk)
            out.append(_regression_row("constant", target, metric_name, res, None, {}))
        for name, X in reps.items():
            if name in regression_only and target != "fwd_rv":
                continue
            fit = fit_ridge_probe(
                X[finite], y[finite], rows.split[finite], ev.ridge_alpha_grid, select_by=metric
            )
            pred = np.full(rows.anchors.size, np.nan)
            pred[finite] = fit.predictions
            res = block_bootstrap(metric, y[sel], pred[sel], rows.day[sel], **bk)
            val_sel = finite & (rows.split == VAL)
            val = {"val": metric(y[val_sel], pred[val_sel])}
            out.append(_regression_row(name, target, metric_name, res, fit.param, val))
    return out


def _regression_row(
    name: str, target: str, metric_name: str, res, alpha: float | None, extra: dict[str, Any]
) -> dict[str, Any]:
    return {
        "representation": name,
        "target": target,
        "metric": metric_name,
        "value": res.estimate,
        "ci": {metric_name: _ci(res)},
        "alpha": alpha,
        **extra,
    }


def _latent_rows(
    reps: dict[str, np.ndarray],
    rows: ProbeRows,
    ev: EvalConfig,
    eval_split: int,
    skip: tuple[str, ...],
) -> list[dict[str, Any]]:
    """Linear decodability of the true regime, and its share of the Bayes filter's gain.

    The filter's decision is ``argmax_k p_k`` (no fitting). Chance = accuracy of always
    predicting the train-majority regime. ``share = (acc − chance)/(acc_filter − chance)``
    is bootstrapped jointly with both accuracies on the same replicate rows.
    """
    e = rows.split == eval_split
    regime = rows.regime.astype(np.int64)
    k = rows.filter_probs.shape[1]
    majority = int(np.bincount(regime[rows.split == TRAIN], minlength=k).argmax())
    filt = rows.filter_probs.argmax(axis=1)

    def metric(yt, both):
        acc = float(np.mean(both[:, 0] == yt))
        acc_f = float(np.mean(both[:, 1] == yt))
        chance = float(np.mean(yt == majority))
        return {
            "accuracy": acc,
            "share_of_filter": share_over_chance(acc, acc_f, chance),
            "filter_accuracy": acc_f,
            "chance": chance,
        }

    def row(name, dim, pred, c):
        res = block_bootstrap(
            metric, regime[e], np.column_stack([pred[e], filt[e]]), rows.day[e], **_boot_kwargs(ev)
        )
        return {
            "representation": name,
            "dim": dim,
            "accuracy": res["accuracy"].estimate,
            "share_of_filter": res["share_of_filter"].estimate,
            "chance": res["chance"].estimate,
            "filter_accuracy": res["filter_accuracy"].estimate,
            "ci": {m: _ci(res[m]) for m in ("accuracy", "share_of_filter")},
            "C": c,
        }

    out = [row("bayes_filter_argmax", k, filt, None)]
    for name, X in reps.items():
        if name in skip:
            continue
        fit = fit_classification_probe(
            X,
            regime,
            rows.split,
            ev.probe_c_grid,
            balanced=False,
            select_by=lambda yt, yp: float(np.mean(yt == yp)),
            seed=ev.seed,
        )
        out.append(row(name, X.shape[1], fit.predictions, fit.param))
    return out


# ---------------------------------------------------------------------------------------
# walk-forward evaluation (expanding window over all probed rows)
# ---------------------------------------------------------------------------------------

# Representations the walk-forward evaluation covers: none of them saw a label of any day.
WALK_FORWARD_REPS = ("lejepa", "raw_window", "random_init", "oracle_filter")
WALK_FORWARD_METRICS = (
    "balanced_accuracy",
    "lift_balanced",
    "direction_accuracy",
    "lift_direction",
)


def _wf_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    m = classification_metrics(y_true, y_pred, N_CLASSES, 0)
    return {k: m[k] for k in WALK_FORWARD_METRICS}


def walk_forward_probe(
    reps: dict[str, np.ndarray],
    rows: ProbeRows,
    split_cfg: SplitConfig,
    ev: EvalConfig,
    *,
    n_folds: int | None = None,
    select_share: float = 0.15,
    day_names: np.ndarray | None = None,
) -> dict[str, Any]:
    """Expanding-window walk-forward scores of the 3-class logistic probe.

    All probed rows (whatever their train/val/test split) are ordered by day; the days
    ``min(day)..max(day)`` are cut by :func:`marketjepa.data.splits.walk_forward_eval_folds`
    into ``n_folds + 1`` equal blocks. Fold ``k`` scores block ``k``; it fits the scaler and
    every C on the rows of the days before block ``k`` minus ``split.embargo_days`` (and
    minus the selection days and their embargo), picks C by balanced accuracy on the last
    ``select_share`` of those training days, and never sees a row of the scored block.
    ``day_names[d]`` (optional) names day index ``d`` in the output (e.g. its date).

    Returns ``{n_folds, embargo_days, select_share, selected_by, folds: [{fold, fit_days,
    select_days, days, dates?, n_fit, n_select, n_rows}], representations: {name: {folds:
    [{fold, days, n_rows, C, balanced_accuracy, lift_balanced, direction_accuracy,
    lift_direction}], mean: {metric: x}, std: {metric: x}, pooled: {metric: x, ci:
    {metric: [lo, hi]}}}}}``; ``days`` are ``[first, last]`` day indices; mean and std
    (sample std, ddof 1; NaN with one fold) are over the folds where the metric is
    defined; ``pooled`` scores all scored blocks together, with a day-block bootstrap CI.
    """
    n_folds = split_cfg.walk_forward_folds if n_folds is None else n_folds
    day = np.asarray(rows.day, dtype=np.int64)
    folds, fold_rows = _wf_folds(day, split_cfg, n_folds, select_share, day_names)
    with threadpool_limits(limits=1, user_api="blas"):
        out_reps = {
            name: _wf_representation(X, rows.label, day, folds, fold_rows, ev)
            for name, X in reps.items()
        }
    return {
        "n_folds": n_folds,
        "embargo_days": split_cfg.embargo_days,
        "select_share": select_share,
        "selected_by": "balanced_accuracy",
        "folds": folds,
        "representations": out_reps,
    }


def _wf_folds(
    day: np.ndarray,
    split_cfg: SplitConfig,
    n_folds: int,
    select_share: float,
    day_names: np.ndarray | None,
) -> tuple[list[dict[str, Any]], list[tuple[np.ndarray, np.ndarray]]]:
    """Each fold's description and ``(rows used, their fold split)``."""
    d0 = int(day.min())
    per_day = walk_forward_eval_folds(int(day.max()) - d0 + 1, split_cfg, n_folds, select_share)

    def span(mask: np.ndarray) -> list[int]:
        d = day[mask]
        return [int(d.min()), int(d.max())]

    folds, fold_rows = [], []
    for k, fold_days in enumerate(per_day, start=1):
        fold_split = fold_days[day - d0]
        used = np.flatnonzero(fold_split >= TRAIN)
        counts = {s: int(np.sum(fold_split == s)) for s in (TRAIN, VAL, TEST)}
        if min(counts.values()) == 0:
            raise MarketJepaError(
                f"walk-forward fold {k} of {n_folds} has no probe rows to "
                f"{'fit' if not counts[TRAIN] else 'select C' if not counts[VAL] else 'score'} "
                "on; use fewer split.walk_forward_folds or more probe rows"
            )
        info = {
            "fold": k,
            "fit_days": span(fold_split == TRAIN),
            "select_days": span(fold_split == VAL),
            "days": span(fold_split == TEST),
            "n_fit": counts[TRAIN],
            "n_select": counts[VAL],
            "n_rows": counts[TEST],
        }
        if day_names is not None:
            info["dates"] = [str(day_names[d]) for d in info["days"]]
        folds.append(info)
        fold_rows.append((used, fold_split[used]))
    return folds, fold_rows


def _wf_representation(
    X: np.ndarray,
    label: np.ndarray,
    day: np.ndarray,
    folds: list[dict[str, Any]],
    fold_rows: list[tuple[np.ndarray, np.ndarray]],
    ev: EvalConfig,
) -> dict[str, Any]:
    """One representation's per-fold scores, their mean/std and the pooled bootstrap."""
    scores, pooled = [], []
    for info, (used, fsplit) in zip(folds, fold_rows, strict=True):
        y = label[used]
        fit = fit_classification_probe(X[used], y, fsplit, ev.probe_c_grid, seed=ev.seed)
        majority = int(np.bincount(y[fsplit == TRAIN], minlength=N_CLASSES).argmax())
        scored = fsplit == TEST
        m = classification_metrics(y[scored], fit.predictions[scored], N_CLASSES, majority)
        pooled.append((y[scored], fit.predictions[scored], day[used][scored]))
        scores.append(
            {"fold": info["fold"], "days": info["days"], "n_rows": info["n_rows"]}
            | {"C": fit.param}
            | {k: m[k] for k in WALK_FORWARD_METRICS}
        )
    table = np.array([[f[k] for k in WALK_FORWARD_METRICS] for f in scores], dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN column / one fold
        mean = np.nanmean(table, axis=0)
        std = (
            np.nanstd(table, axis=0, ddof=1)
            if len(scores) > 1
            else np.full(len(WALK_FORWARD_METRICS), np.nan)
        )
    boot = block_bootstrap(
        _wf_metrics, *(np.concatenate(a) for a in zip(*pooled, strict=True)), **_boot_kwargs(ev)
    )
    return {
        "folds": scores,
        "mean": {k: float(v) for k, v in zip(WALK_FORWARD_METRICS, mean, strict=True)},
        "std": {k: float(v) for k, v in zip(WALK_FORWARD_METRICS, std, strict=True)},
        "pooled": {k: boot[k].estimate for k in WALK_FORWARD_METRICS}
        | {"ci": {k: _ci(boot[k]) for k in WALK_FORWARD_METRICS}},
    }


# ---------------------------------------------------------------------------------------
# the stage
# ---------------------------------------------------------------------------------------


def _walk_forward(
    cfg: Config, reps: dict[str, np.ndarray], inputs, notes: list[str]
) -> dict[str, Any] | None:
    """The walk-forward section (``split.walk_forward_folds > 0``), or None with a note."""
    if cfg.split.walk_forward_folds <= 0:
        return None
    try:
        out = walk_forward_probe(
            {k: reps[k] for k in WALK_FORWARD_REPS if k in reps},
            inputs.rows,
            cfg.split,
            cfg.eval,
            day_names=inputs.day_names,
        )
    except MarketJepaError as exc:
        notes.append(f"walk-forward evaluation skipped: {exc}")
        return None
    out["note"] = (
        "all probed rows, whatever their split; lejepa's encoder was pretrained "
        "(without labels) on the train days, which hold the scored blocks of early "
        "folds; label-trained encoders (supervised, lejepa_finetuned) are left out"
    )
    return out


def run_probes(cfg: Config, prepared_dir: Path, run_dir: Path) -> dict:
    """Probe every representation of the ``represent`` stage; write ``probes.json``.

    ``prepared_dir`` is unused (the stage signature): the rows and representations come
    from the run directory alone.
    """
    t0 = time.perf_counter()
    run_dir, ev = Path(run_dir), cfg.eval
    summary = read_summary(run_dir)
    inputs = load_probe_inputs(run_dir)
    rows, eval_split = inputs.rows, inputs.eval_split
    reps = load_representations(run_dir, list(summary["representations"]), rows)
    notes = list(summary["notes"])
    table = probe_table(reps, rows, ev, eval_split=eval_split)
    walk_forward = _walk_forward(cfg, reps, inputs, notes)
    code = {name: s for s, name in SPLIT_NAMES.items()}
    n_days = {
        name: int(np.unique(rows.day[rows.split == code[name]]).size)
        for name in summary["embedded_splits"]
    }
    result = {
        "evaluated_on": SPLIT_NAMES[eval_split],
        "n_rows": rows.counts(),
        "n_days": n_days,
        "ci_level": ev.ci_level,
        "bootstrap": {"block_days": ev.bootstrap_block_days, "samples": ev.bootstrap_samples},
        **table,
        "supervised_history": summary["supervised_history"],
        **(
            {"finetuned_history": summary["finetuned_history"]}
            if "finetuned_history" in summary
            else {}
        ),
        **({"walk_forward": walk_forward} if walk_forward is not None else {}),
        "notes": notes,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    write_result(run_dir / "probes.json", validate_result(result, ProbeTable, "probes.json"))
    _print_summary(result, len(reps), eval_split)
    return result


def _print_summary(result: dict[str, Any], n_reps: int, eval_split: int) -> None:
    best = max(
        (r for r in result["classification"] if not r["representation"].startswith("oracle")),
        key=lambda r: r["balanced_accuracy"],
    )
    stage_line(
        "probe",
        f"{n_reps} representations on {result['n_rows'][SPLIT_NAMES[eval_split]]} "
        f"{SPLIT_NAMES[eval_split]} rows; best non-oracle balanced accuracy "
        f"{best['representation']} {best['balanced_accuracy']:.3f} "
        f"(lift {best['lift_balanced']:+.3f}) in {result['seconds']:.0f}s",
    )
    print_tables(render_probe_tables(result), console)
    for note in result["notes"]:
        console.print(f"  note: {note}")

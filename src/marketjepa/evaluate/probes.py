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

With ``split.walk_forward_folds > 0`` the same probe is also scored walk-forward over all
probed rows (:func:`walk_forward_probe`): each fold fits and chooses C on earlier days only.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.linalg import LinAlgWarning
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from marketjepa.config import Config, EvalConfig, SplitConfig
from marketjepa.constants import CLASS_NAMES, N_CLASSES, SPLIT_NAMES, TEST, TRAIN, VAL
from marketjepa.data.calendar import full_session_minutes
from marketjepa.data.windows import even_subsample
from marketjepa.device import resolve_device
from marketjepa.errors import DataValidationError, MarketJepaError, StageInputMissing
from marketjepa.evaluate.bootstrap import block_bootstrap, paired_bootstrap_test
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

# ---------------------------------------------------------------------------------------
# probe fits: train rows only
# ---------------------------------------------------------------------------------------


def _fit_train_only(estimator: Any, X: np.ndarray, y: np.ndarray, rows: np.ndarray, split) -> Any:
    """Fit on ``rows`` after checking every one of them is a train row (causality guard)."""
    if rows.size == 0 or not np.all(split[rows] == TRAIN):
        raise AssertionError("probe fit on rows outside the train split")
    return estimator.fit(X[rows], y[rows])


def default_logistic(c: float, balanced: bool, seed: int) -> LogisticRegression:
    """Multinomial (lbfgs) logistic regression; warm-started along the C path."""
    return LogisticRegression(
        C=c,
        class_weight="balanced" if balanced else None,
        max_iter=300,
        warm_start=True,
        random_state=seed,
    )


@dataclass
class ProbeFit:
    """A probe fit on train rows, with its chosen hyper-parameter and predictions."""

    param: float
    val_scores: dict[float, float]
    predictions: np.ndarray  # for every row (train, val, eval)
    fit_rows: np.ndarray = field(repr=False)


def fit_classification_probe(
    X: np.ndarray,
    y: np.ndarray,
    split: np.ndarray,
    c_grid: list[float],
    *,
    balanced: bool = True,
    select_by: Callable[[np.ndarray, np.ndarray], float] = balanced_accuracy,
    seed: int = 0,
    estimator_factory: Callable[[float], Any] | None = None,
) -> ProbeFit:
    """Standardized logistic-regression probe; C picked on validation rows.

    Scaler and every candidate are fit on train rows only; the candidate maximizing
    ``select_by`` on validation rows (ties → the smaller C, stronger regularization) is
    returned with its predictions for all rows.
    """
    split = np.asarray(split)
    train = np.flatnonzero(split == TRAIN)
    val = np.flatnonzero(split == VAL)
    if train.size == 0 or val.size == 0:
        raise MarketJepaError("probes need train and validation rows")
    Z = StandardScaler().fit(X[train]).transform(X).astype(np.float32)
    # Default: one warm-started estimator walks the C path from strong to weak
    # regularization (each fit starts from the previous optimum: far fewer lbfgs steps).
    shared = default_logistic(min(c_grid), balanced, seed) if estimator_factory is None else None
    best, scores = None, {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for c in sorted(c_grid):
            est = shared.set_params(C=c) if shared is not None else estimator_factory(c)
            _fit_train_only(est, Z, y, train, split)
            scores[c] = float(select_by(y[val], est.predict(Z[val])))
            if best is None or scores[c] > scores[best[0]]:
                best = (c, copy.deepcopy(est))
    return ProbeFit(best[0], scores, best[1].predict(Z), train)


def fit_ridge_probe(
    X: np.ndarray,
    y: np.ndarray,
    split: np.ndarray,
    alpha_grid: list[float],
    *,
    select_by: Callable[[np.ndarray, np.ndarray], float] = r2_score,
) -> ProbeFit:
    """Standardized ridge probe; alpha picked on validation rows, fit on train rows only."""
    split = np.asarray(split)
    train = np.flatnonzero(split == TRAIN)
    val = np.flatnonzero(split == VAL)
    Z = StandardScaler().fit(X[train]).transform(X)
    best, scores = None, {}
    for a in sorted(alpha_grid, reverse=True):  # ties → larger alpha
        # Collinear window statistics make the smallest alphas ill-conditioned; the
        # solution is still the ridge solution and validation decides whether it is kept.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LinAlgWarning)
            est = _fit_train_only(Ridge(alpha=a), Z, y, train, split)
        s = select_by(y[val], est.predict(Z[val]))
        scores[a] = float(s) if np.isfinite(s) else float("-inf")
        if best is None or scores[a] > scores[best[0]]:
            best = (a, est)
    return ProbeFit(best[0], scores, best[1].predict(Z), train)


# ---------------------------------------------------------------------------------------
# the probe table
# ---------------------------------------------------------------------------------------


@dataclass
class ProbeRows:
    """The rows every representation is probed on (stacked: train, then val, then test)."""

    anchors: np.ndarray
    split: np.ndarray
    label: np.ndarray
    day: np.ndarray
    fwd_ret: np.ndarray
    fwd_rv: np.ndarray
    # Trailing volatility of the label (data/labels.py): scales fwd_ret in the
    # directional-return test (evaluate/signed_return.py).
    sigma_h: np.ndarray
    regime: np.ndarray | None = None
    filter_probs: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = self.anchors.size
        for name in ("split", "label", "day", "fwd_ret", "fwd_rv", "sigma_h"):
            if getattr(self, name).shape[0] != n:
                raise ValueError(
                    f"ProbeRows.{name} has {getattr(self, name).shape[0]} rows, not {n}"
                )

    def counts(self) -> dict[str, int]:
        return {SPLIT_NAMES[s]: int(np.sum(self.split == s)) for s in (TRAIN, VAL, TEST)}


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
    bk = _boot_kwargs(ev)
    train_labels = rows.label[rows.split == TRAIN]
    majority = int(np.bincount(train_labels, minlength=N_CLASSES).argmax())
    out: dict[str, Any] = {"classification": [], "regression": [], "latent": [], "paired_tests": []}

    # classification: majority row, then each representation
    const = np.full(rows.anchors.size, majority)
    row = _classification_row("majority", 0, const, rows, eval_split, majority, ev)
    out["classification"].append(row | {"C": None})
    preds: dict[str, np.ndarray] = {}
    for name, X in reps.items():
        if name in regression_only:
            continue
        fit = fit_classification_probe(X, rows.label, rows.split, ev.probe_c_grid, seed=ev.seed)
        preds[name] = fit.predictions
        row = _classification_row(name, X.shape[1], fit.predictions, rows, eval_split, majority, ev)
        out["classification"].append(row | {"C": fit.param})
    out["majority_class"] = {
        "class": CLASS_NAMES[majority],
        "train_rate": float(np.mean(train_labels == majority)),
        "eval_accuracy": out["classification"][0]["accuracy"],
    }

    # regression: forward log realized vol (R²) and forward return (Spearman IC)
    finite = np.isfinite(rows.fwd_rv) & np.isfinite(rows.fwd_ret)
    targets = (("fwd_rv", "r2", r2_score), ("fwd_ret", "ic", spearman_ic))
    for target, metric_name, metric in targets:
        y = getattr(rows, target)
        sel = finite & e
        train_mean = float(np.mean(y[finite & (rows.split == TRAIN)]))
        if metric_name == "r2":
            res = block_bootstrap(
                metric, y[sel], np.full(sel.sum(), train_mean), rows.day[sel], **bk
            )
            out["regression"].append(
                {
                    "representation": "constant",
                    "target": target,
                    "metric": metric_name,
                    "value": res.estimate,
                    "ci": {metric_name: _ci(res)},
                    "alpha": None,
                }
            )
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
            out["regression"].append(
                {
                    "representation": name,
                    "target": target,
                    "metric": metric_name,
                    "value": res.estimate,
                    "ci": {metric_name: _ci(res)},
                    "alpha": fit.param,
                    "val": metric(y[val_sel], pred[val_sel]),
                }
            )

    if rows.regime is not None and rows.filter_probs is not None:
        out["latent"] = _latent_rows(reps, rows, ev, eval_split, regression_only)

    for a, b in paired:
        if a in preds and b in preds:
            t = paired_bootstrap_test(
                balanced_accuracy, rows.label[e], preds[a][e], preds[b][e], rows.day[e], **bk
            )
            out["paired_tests"].append(
                {"a": a, "b": b, "metric": "balanced_accuracy"} | t.to_dict()
            )
    return out


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
    from marketjepa.data.splits import walk_forward_eval_folds

    n_folds = split_cfg.walk_forward_folds if n_folds is None else n_folds
    day = np.asarray(rows.day, dtype=np.int64)
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

    out_reps: dict[str, Any] = {}
    bk = _boot_kwargs(ev)
    with threadpool_limits(limits=1, user_api="blas"):
        for name, X in reps.items():
            scores, pooled = [], []
            for info, (used, fsplit) in zip(folds, fold_rows, strict=True):
                y = rows.label[used]
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
                _wf_metrics, *(np.concatenate(a) for a in zip(*pooled, strict=True)), **bk
            )
            out_reps[name] = {
                "folds": scores,
                "mean": {k: float(v) for k, v in zip(WALK_FORWARD_METRICS, mean, strict=True)},
                "std": {k: float(v) for k, v in zip(WALK_FORWARD_METRICS, std, strict=True)},
                "pooled": {k: boot[k].estimate for k in WALK_FORWARD_METRICS}
                | {"ci": {k: _ci(boot[k]) for k in WALK_FORWARD_METRICS}},
            }
    return {
        "n_folds": n_folds,
        "embargo_days": split_cfg.embargo_days,
        "select_share": select_share,
        "selected_by": "balanced_accuracy",
        "folds": folds,
        "representations": out_reps,
    }


# ---------------------------------------------------------------------------------------
# the stage
# ---------------------------------------------------------------------------------------


def _load_embeddings(run_dir: Path) -> dict[int, dict[str, np.ndarray]]:
    out = {}
    for s, name in SPLIT_NAMES.items():
        path = run_dir / "embeddings" / f"{name}.npz"
        if not path.exists():
            if s == TEST:
                continue
            raise StageInputMissing(
                f"{path} not found — run `marketjepa diagnose` on this run directory first"
            )
        with np.load(path) as z:
            missing = {"pooled", "starts", "anchors"} - set(z.files)
            if missing:
                raise StageInputMissing(f"{path}: missing arrays {sorted(missing)}")
            out[s] = {k: z[k] for k in ("pooled", "starts", "anchors")}
    return out


def _truth_arrays(truth: dict | None) -> tuple[np.ndarray | None, np.ndarray | None]:
    if not truth or "regime" not in truth:
        return None, None
    cols = sorted((k for k in truth if k.startswith("filter_p")), key=lambda k: int(k[8:]))
    if not cols:
        return np.asarray(truth["regime"]), None
    return np.asarray(truth["regime"]), np.column_stack([np.asarray(truth[c]) for c in cols])


def run_probes(cfg: Config, prepared_dir: Path, run_dir: Path) -> dict:
    """Probe every representation; write ``representations/*.npz`` and ``probes.json``."""
    import time

    from marketjepa.artifacts import write_json
    from marketjepa.console import console, stage_line
    from marketjepa.data.prepared import PreparedData
    from marketjepa.data.windows import WindowDataset, WindowSpec
    from marketjepa.evaluate import baselines as bl
    from marketjepa.evaluate.tables import print_tables, render_probe_tables

    t0 = time.perf_counter()
    run_dir, prepared_dir = Path(run_dir), Path(prepared_dir)
    ev = cfg.eval
    data = PreparedData.load(prepared_dir)
    spec = WindowSpec.from_config(cfg.windows)
    emb = _load_embeddings(run_dir)
    notes: list[str] = []

    eval_split = TEST if TEST in emb and emb[TEST]["anchors"].size and cfg.split.test > 0 else VAL
    if eval_split == VAL:
        notes.append(
            "no test split: scores are on validation days, where C/alpha were also chosen "
            "and the supervised baseline was early-stopped (optimistic)"
        )

    # probe rows: labelled anchors, evenly subsampled, identical for every representation
    label = np.asarray(data.label)
    pos, parts = {}, {}
    for s, e in emb.items():
        ok = np.flatnonzero(label[e["anchors"]] >= 0)
        keep = even_subsample(ok, ev.max_probe_windows)
        pos[s] = keep
        parts[s] = e["anchors"][keep]
    order = [s for s in (TRAIN, VAL, TEST) if s in parts]
    anchors = np.concatenate([parts[s] for s in order])
    starts = np.concatenate([emb[s]["starts"][pos[s]] for s in order])
    split = np.concatenate([np.full(parts[s].size, s, dtype=np.int8) for s in order])
    if np.any(np.asarray(data.split)[anchors] != split):
        raise MarketJepaError("embedding anchors disagree with the prepared split column")
    regime, filt = _truth_arrays(getattr(data, "truth", None))
    rows = ProbeRows(
        anchors=anchors,
        split=split,
        label=label[anchors].astype(np.int64),
        day=np.asarray(data.session)[anchors],
        fwd_ret=np.asarray(data.fwd_ret, dtype=np.float64)[anchors],
        fwd_rv=np.asarray(data.fwd_rv, dtype=np.float64)[anchors],
        sigma_h=np.asarray(data.sigma_h, dtype=np.float64)[anchors],
        regime=None if regime is None else regime[anchors],
        filter_probs=None if filt is None else filt[anchors],
    )

    reps: dict[str, np.ndarray] = {
        "lejepa": np.concatenate([emb[s]["pooled"][pos[s]] for s in order]).astype(np.float32)
    }
    device = resolve_device(cfg.train.device)
    features = np.asarray(data.features, dtype=np.float32)
    ds = WindowDataset(features, spec, device)
    bs = max(256, cfg.train.batch_size)
    other = "mean" if cfg.model.pooling == "last" else "last"
    model = None
    try:
        from marketjepa.train.checkpoint import load_model

        model = load_model(run_dir, which="best", device=device)
        reps[f"lejepa_{other}"] = bl.encoder_embeddings(model.encoder, ds, starts, bs, other)
    except (ImportError, FileNotFoundError, MarketJepaError) as exc:
        notes.append(f"lejepa_{other} skipped: cannot re-embed with the checkpoint ({exc})")

    reps["raw_window"] = bl.raw_window_features(features, anchors, spec.patch_len, spec.context_len)
    reps["hybrid"] = np.concatenate([reps["lejepa"], reps["raw_window"]], axis=1)
    close, session = np.asarray(data.close), np.asarray(data.session)
    # one "day" of bars = the calendar's usual session (390 on XNYS), never a constant
    day_bars = full_session_minutes(cfg.data.calendar)
    reps["har_rv"] = bl.har_rv_features(close, session, anchors, bars_per_day=day_bars)
    if "minute" in data.frame.columns:
        reps["har_rv_intraday"] = np.concatenate(
            [
                bl.har_rv_features(
                    close,
                    session,
                    anchors,
                    bars_per_day=day_bars,
                    extra_bars=[cfg.labels.horizon],
                ),
                bl.diurnal_dummies(
                    data.frame["minute"].to_numpy()[anchors], session_minutes=day_bars
                ),
            ],
            axis=1,
        )
    else:
        notes.append("har_rv_intraday skipped: the prepared data has no 'minute' column")

    n_feat = features.shape[1]
    names = data.feature_names
    enc = bl.build_encoder(n_feat, spec, cfg.model, ev.seed, names)
    reps["random_init"] = bl.encoder_embeddings(enc, ds, starts, bs)

    # supervised: all labelled train windows, early-stopped on the probe's val rows
    tr_ok = np.flatnonzero(label[emb[TRAIN]["anchors"]] >= 0)
    val_rows = np.flatnonzero(split == VAL)

    def fit_on_labels(encoder):
        """The supervised protocol (train windows only, early-stopped on val rows)."""
        return bl.train_supervised(
            encoder,
            encoder.d_model,
            ds,
            emb[TRAIN]["starts"][tr_ok],
            label[emb[TRAIN]["anchors"][tr_ok]],
            starts[val_rows],
            rows.label[val_rows],
            epochs=ev.supervised_epochs,
            lr=cfg.train.lr,
            weight_decay=cfg.train.weight_decay,
            batch_size=cfg.train.batch_size,
            max_steps_per_epoch=cfg.train.max_steps_per_epoch,
            grad_clip=cfg.train.grad_clip,
            seed=ev.seed,
        )

    sup = fit_on_labels(bl.build_encoder(n_feat, spec, cfg.model, ev.seed, names))
    reps["supervised"] = bl.encoder_embeddings(sup.model.encoder, ds, starts, bs)
    notes.append(
        f"supervised: best epoch {sup.best_epoch + 1}/{len(sup.history)} "
        f"(val balanced accuracy {sup.best_val_balanced_accuracy:.3f})"
    )
    # lejepa_finetuned: the same protocol, initialized from the pretrained encoder — does
    # self-supervised pretraining help as an initialization?
    finetuned = None
    if ev.finetune and model is not None:
        import torch

        torch.manual_seed(ev.seed)  # the head's initialization
        finetuned = fit_on_labels(copy.deepcopy(model.encoder))
        reps["lejepa_finetuned"] = bl.encoder_embeddings(finetuned.model.encoder, ds, starts, bs)
        notes.append(
            f"lejepa_finetuned: best epoch {finetuned.best_epoch + 1}/{len(finetuned.history)} "
            f"(val balanced accuracy {finetuned.best_val_balanced_accuracy:.3f})"
        )
    elif ev.finetune:
        notes.append("lejepa_finetuned skipped: no pretrained checkpoint to fine-tune")
    if rows.regime is not None:
        k = int(rows.filter_probs.shape[1]) if rows.filter_probs is not None else None
        k = k or int(regime.max()) + 1
        reps["oracle_latent"] = bl.one_hot(rows.regime, k)
        if rows.filter_probs is not None:
            reps["oracle_filter"] = bl.oracle_filter_features(rows.filter_probs)

    rep_dir = run_dir / "representations"
    rep_dir.mkdir(parents=True, exist_ok=True)
    for name, X in reps.items():
        arrays = {}
        for s, sname in SPLIT_NAMES.items():
            m = split == s
            arrays[sname] = X[m]
            arrays[f"anchors_{sname}"] = anchors[m]
        np.savez(rep_dir / f"{name}.npz", **arrays)

    table = probe_table(reps, rows, ev, eval_split=eval_split)
    walk_forward = None
    if cfg.split.walk_forward_folds > 0:
        dates = data.frame["session"].unique().sort().cast(str).to_numpy()
        try:
            walk_forward = walk_forward_probe(
                {k: reps[k] for k in WALK_FORWARD_REPS if k in reps},
                rows,
                cfg.split,
                ev,
                day_names=dates,
            )
            walk_forward["note"] = (
                "all probed rows, whatever their split; lejepa's encoder was pretrained "
                "(without labels) on the train days, which hold the scored blocks of early "
                "folds; label-trained encoders (supervised, lejepa_finetuned) are left out"
            )
        except MarketJepaError as exc:
            notes.append(f"walk-forward evaluation skipped: {exc}")
    result = {
        "evaluated_on": SPLIT_NAMES[eval_split],
        "n_rows": rows.counts(),
        "n_days": {SPLIT_NAMES[s]: int(np.unique(rows.day[split == s]).size) for s in order},
        "ci_level": ev.ci_level,
        "bootstrap": {"block_days": ev.bootstrap_block_days, "samples": ev.bootstrap_samples},
        **table,
        "supervised_history": sup.history,
        **({"finetuned_history": finetuned.history} if finetuned is not None else {}),
        **({"walk_forward": walk_forward} if walk_forward is not None else {}),
        "notes": notes,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    write_json(run_dir / "probes.json", result)
    best = max(
        (r for r in table["classification"] if not r["representation"].startswith("oracle")),
        key=lambda r: r["balanced_accuracy"],
    )
    stage_line(
        "probe",
        f"{len(reps)} representations on {rows.counts()[SPLIT_NAMES[eval_split]]} "
        f"{SPLIT_NAMES[eval_split]} rows; best non-oracle balanced accuracy "
        f"{best['representation']} {best['balanced_accuracy']:.3f} "
        f"(lift {best['lift_balanced']:+.3f}) in {result['seconds']:.0f}s",
    )
    print_tables(render_probe_tables(result), console)
    for note in notes:
        console.print(f"  note: {note}")
    return result

"""Linear probe fits on train rows only: logistic (entry label, regime) and ridge.

The scaler and every candidate hyper-parameter are fit on train rows only; the candidate
with the best validation score is kept as fit (nothing is refit on validation rows).
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.linalg import LinAlgWarning
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.preprocessing import StandardScaler

from marketjepa.constants import TRAIN, VAL
from marketjepa.errors import MarketJepaError
from marketjepa.evaluate.scoring import balanced_accuracy, r2_score


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

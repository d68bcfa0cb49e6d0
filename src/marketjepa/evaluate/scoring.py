"""Scores of predicted classes against true ones: confusion matrix, balanced and
direction accuracy, F1, R², rank IC, share of a reference's gain over chance.

Pure numpy functions, the one implementation every stage uses (probes, the supervised
baselines' model selection, the policy's class report).
"""

from __future__ import annotations

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """``M[i, j]`` = number of rows with true class ``i`` predicted as ``j``."""
    idx = np.asarray(y_true, dtype=np.int64) * n_classes + np.asarray(y_pred, dtype=np.int64)
    return np.bincount(idx, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def per_class_scores(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision ``M_kk / Σ_i M_ik``, recall ``M_kk / Σ_j M_kj`` and F1 per class.

    Undefined ratios (no predictions / no support) are NaN for precision/recall and 0
    for F1 (scikit-learn's ``zero_division=0`` convention).
    """
    tp = np.diag(cm).astype(np.float64)
    pred = cm.sum(axis=0).astype(np.float64)
    true = cm.sum(axis=1).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(pred > 0, tp / pred, np.nan)
        recall = np.where(true > 0, tp / true, np.nan)
        f1 = np.where(pred + true > 0, 2 * tp / (pred + true), 0.0)
    return precision, recall, f1


def classification_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, n_classes: int, majority_class: int
) -> dict[str, float]:
    """Headline classification scores from the confusion matrix ``M``.

    - accuracy ``Σ_k M_kk / n``
    - balanced accuracy: mean recall over classes present in ``y_true`` (chance = 1/K)
    - macro-F1: mean over classes present in ``y_true`` or ``y_pred`` of ``2TP/(2TP+FP+FN)``
    - majority accuracy: share of rows of the *train* majority class (what always
      predicting it scores)
    - ``lift_accuracy = accuracy − majority accuracy``;
      ``lift_balanced = balanced accuracy − 1/K`` (both in absolute points)
    - direction accuracy: among rows where both the truth and the prediction are a move
      (CALL or PUT), the mean of the CALL and PUT recalls
      ``½·[M_CC/(M_CC+M_CP) + M_PP/(M_PC+M_PP)]`` (chance = ½), and
      ``lift_direction = direction accuracy − ½``. This isolates *direction*: balanced
      accuracy also rewards predicting *when* a large move comes (volatility, which is
      predictable even in a martingale market), direction accuracy does not.
    """
    cm = confusion_matrix(y_true, y_pred, n_classes)
    n = cm.sum()
    if n == 0:
        nan = float("nan")
        return dict.fromkeys(
            ("accuracy", "balanced_accuracy", "macro_f1", "majority_accuracy"), nan
        ) | {
            "lift_accuracy": nan,
            "lift_balanced": nan,
            "direction_accuracy": nan,
            "lift_direction": nan,
        }
    _, recall, f1 = per_class_scores(cm)
    support = cm.sum(axis=1)
    used = (support + cm.sum(axis=0)) > 0
    acc = float(np.trace(cm) / n)
    bacc = float(np.nanmean(recall[support > 0]))
    majority = float(support[majority_class] / n)
    direction = direction_accuracy(cm)
    return {
        "accuracy": acc,
        "balanced_accuracy": bacc,
        "macro_f1": float(np.mean(f1[used])),
        "majority_accuracy": majority,
        "lift_accuracy": acc - majority,
        "lift_balanced": bacc - 1.0 / n_classes,
        "direction_accuracy": direction,
        "lift_direction": direction - 0.5,
    }


def direction_accuracy(cm: np.ndarray, call: int = 1, put: int = 2) -> float:
    """Balanced CALL-vs-PUT accuracy on rows where truth and prediction are both moves.

    ``½·[M_CC/(M_CC+M_CP) + M_PP/(M_PC+M_PP)]`` from the confusion matrix ``M`` (rows =
    truth); a class with no such rows is left out; NaN when neither has any.
    """
    recalls = []
    for k, other in ((call, put), (put, call)):
        n = cm[k, k] + cm[k, other]
        if n > 0:
            recalls.append(cm[k, k] / n)
    return float(np.mean(recalls)) if recalls else float("nan")


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean per-class recall over the classes present in ``y_true``."""
    y_true = np.asarray(y_true, dtype=np.int64)
    k = int(max(y_true.max(initial=0), np.asarray(y_pred).max(initial=0))) + 1
    cm = confusion_matrix(y_true, y_pred, k)
    support = cm.sum(axis=1)
    return float(np.mean(np.diag(cm)[support > 0] / support[support > 0]))


def r2_score(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Coefficient of determination ``1 − Σ(y−ŷ)² / Σ(y−ȳ)²`` (ȳ of the scored rows)."""
    y = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    sst = np.sum((y - y.mean()) ** 2)
    return float(1.0 - np.sum((y - p) ** 2) / sst) if sst > 0 else float("nan")


def _ranks(x: np.ndarray) -> np.ndarray:
    r = np.empty(x.size, dtype=np.float64)
    r[np.argsort(x, kind="stable")] = np.arange(x.size)
    return r


def spearman_ic(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Information coefficient: Pearson correlation of the ranks of ``y`` and ``ŷ``.

    Ties get distinct (stable-order) ranks; continuous targets rarely tie, and a constant
    prediction has no rank spread, so its IC is NaN (undefined) rather than 0.
    """
    y = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    if y.size < 3 or np.ptp(p) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(np.corrcoef(_ranks(y), _ranks(p))[0, 1])


# Below this gain of the reference over chance a "share of it" is noise divided by noise
# (a null market's Bayes filter sits at chance): the share is then undefined.
MIN_REFERENCE_GAIN = 0.02


def share_over_chance(
    acc: float, reference: float, chance: float, min_gain: float = MIN_REFERENCE_GAIN
) -> float:
    """``(acc − chance) / (reference − chance)``: share of the reference's gain over chance;
    NaN unless the reference beats chance by at least ``min_gain``."""
    gap = reference - chance
    return float((acc - chance) / gap) if gap >= min_gain else float("nan")

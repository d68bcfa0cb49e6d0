"""Per-epoch latent-state probe: can a linear map read the true regime off the embeddings?

On synthetic data the hidden regime and its Bayes-filter posterior (computed from the
observables with the true parameters) are known. Validation windows are split
chronologically in half; a standardized multinomial logistic regression is fitted on
the first half and scored on the second, at each window's anchor row. Chronological
halves keep overlapping neighbouring windows out of the scored half.

    latent_acc   = accuracy of the probe on the scored half
    filter_acc   = accuracy of argmax of the Bayes filter on the same rows
    chance       = majority-regime rate on the scored half
    latent_share = (latent_acc − chance) / (filter_acc − chance)

``latent_share`` is the share of the best achievable lift over chance that the encoder
recovers (1 = as good as the Bayes filter, 0 = chance; can be negative).
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler


def latent_probe(
    z: np.ndarray, regime: np.ndarray, filter_p: np.ndarray | None, seed: int = 0
) -> dict[str, float]:
    """Linear decodability of ``regime`` [n] from embeddings ``z`` [n, d] (time-ordered rows).

    ``filter_p`` [n, K] is the Bayes filter posterior at the same rows (or None).
    Returns ``latent_acc``, ``latent_share``, ``filter_acc`` and ``chance`` (NaN when the
    fit half holds a single regime).
    """
    z = np.asarray(z, dtype=np.float64)
    regime = np.asarray(regime)
    half = len(regime) // 2
    nan = {"latent_acc": np.nan, "latent_share": np.nan, "filter_acc": np.nan, "chance": np.nan}
    if half < 2 or np.unique(regime[:half]).size < 2:
        return nan
    scaler = StandardScaler().fit(z[:half])
    clf = LogisticRegression(C=1.0, max_iter=200, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(scaler.transform(z[:half]), regime[:half])
    y = regime[half:]
    acc = float(np.mean(clf.predict(scaler.transform(z[half:])) == y))
    chance = float(np.bincount(y.astype(np.int64)).max() / y.size)
    out = {"latent_acc": acc, "latent_share": np.nan, "filter_acc": np.nan, "chance": chance}
    if filter_p is not None:
        f_acc = float(np.mean(np.argmax(np.asarray(filter_p)[half:], axis=1) == y))
        out["filter_acc"] = f_acc
        if f_acc > chance:
            out["latent_share"] = (acc - chance) / (f_acc - chance)
    return out

"""Per-epoch latent-state probe: can a linear map read the true regime off the embeddings?

On synthetic data the hidden regime and its Bayes-filter posterior (computed from the
observables with the true parameters) are known. A standardized multinomial logistic
regression (``C = 1``) is fitted on the embeddings of evenly spaced **training-day**
windows (``train.latent_probe_fit_windows`` of them) and scored on the validation
windows, at each window's anchor row — the same train-fit / validation-score design as
the lever screens (``marketjepa.tune.levers.validation_score``), so the curve in
``metrics.csv`` and the report's plot measures how much of the regime the embedding
carries, not how compact it is in a few hundred rows. With
``train.latent_probe_fit_windows = 0`` (or no fit rows) the validation windows are split
chronologically in half instead: fit on the first, score on the second (cheaper, but
sample-starved: on the `cpu` preset it reads 0.3 where the train-fitted probe reads 0.5).

    latent_acc   = accuracy of the probe on the scored rows
    filter_acc   = accuracy of argmax of the Bayes filter on the same rows
    chance       = majority-regime rate on the scored rows
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

NAN = {"latent_acc": np.nan, "latent_share": np.nan, "filter_acc": np.nan, "chance": np.nan}


def latent_probe(
    z: np.ndarray,
    regime: np.ndarray,
    filter_p: np.ndarray | None,
    seed: int = 0,
    z_fit: np.ndarray | None = None,
    regime_fit: np.ndarray | None = None,
) -> dict[str, float]:
    """Linear decodability of ``regime`` [n] from embeddings ``z`` [n, d] (time-ordered rows).

    ``z_fit``/``regime_fit`` (training-day rows): fit there, score every row of ``z``;
    without them, fit on the first half of ``z`` and score the second.
    ``filter_p`` [n, K] is the Bayes filter posterior at the rows of ``z`` (or None).
    Returns ``latent_acc``, ``latent_share``, ``filter_acc`` and ``chance`` (NaN when the
    fit rows hold a single regime).
    """
    z = np.asarray(z, dtype=np.float64)
    regime = np.asarray(regime)
    if z_fit is None or regime_fit is None:
        half = len(regime) // 2
        z_fit, regime_fit = z[:half], regime[:half]
        z, regime = z[half:], regime[half:]
        filter_p = None if filter_p is None else np.asarray(filter_p)[half:]
    z_fit, regime_fit = np.asarray(z_fit, dtype=np.float64), np.asarray(regime_fit)
    if len(regime_fit) < 2 or np.unique(regime_fit).size < 2 or len(regime) == 0:
        return dict(NAN)
    scaler = StandardScaler().fit(z_fit)
    clf = LogisticRegression(C=1.0, max_iter=200, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(scaler.transform(z_fit), regime_fit)
    acc = float(np.mean(clf.predict(scaler.transform(z)) == regime))
    chance = float(np.bincount(regime.astype(np.int64)).max() / regime.size)
    out = {"latent_acc": acc, "latent_share": np.nan, "filter_acc": np.nan, "chance": chance}
    if filter_p is not None:
        f_acc = float(np.mean(np.argmax(np.asarray(filter_p), axis=1) == regime))
        out["filter_acc"] = f_acc
        if f_acc > chance:
            out["latent_share"] = (acc - chance) / (f_acc - chance)
    return out

"""Collapse measures of embeddings and the collapse verdict (DESIGN §4, issues #6, #14).

One home for what training (per-epoch diagnostics, best checkpoint, experiments) and
evaluation (``diagnose``) both need. All measures take ``z [N, d]`` (numpy or torch) and return plain dicts of floats.

Measures (``embedding_stats``):

* per-dimension variance ``v_j = Var(z_{·j})``: mean / std / min — **scale-dependent**;
* ``mean_sq_norm = E‖z‖²`` (uncentered);
* ``norm_var = d·mean_j v_j / E‖z‖² = tr Cov(z) / E‖z‖²`` ∈ [0, 1] — the share of the
  embeddings' energy that is spread rather than a common offset. 1 for zero-mean data
  at any scale (isotropic or not), → 0 when all points sit at one nonzero point. It is
  blind to *dimensional* collapse of zero-mean data, which RankMe and the spectrum catch;
* ``rankme = exp(H(p))``, ``p_k = σ_k / Σσ`` with σ_k the singular values of the
  (uncentered) embedding matrix — RankMe, Garrido et al. 2023, "RankMe: Assessing the
  downstream performance of pretrained self-supervised representations by their rank",
  eq. 1. ≈ d for isotropic data (N ≫ d), 1 for rank-1 data; ``rankme_ratio = rankme/d``;
* ``spectrum``: eigenvalues of the (centered) covariance, sorted, normalized to sum 1;
  ``top1_share`` its first entry;
* ``dead_dims``: coordinates carrying < ``dead_share`` of the total variance.

rankme_ratio, norm_var, top1_share and dead_dims do not change when z is multiplied by
any nonzero constant; only they enter :func:`verdict`. :func:`row_verdict` applies it
to a training metrics row (``sig_*`` / ``probe_*`` columns).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import numpy as np
import torch

from marketjepa.config import EvalConfig
from marketjepa.errors import MarketJepaError
from marketjepa.model.sigreg import (
    ecf_partial_sums,
    epps_pulley_from_sums,
    gaussian_expected_sigreg,
    null_expected_sigreg,
    point_mass_sigreg,
    quadrature,
    sample_directions,
    sigreg,
)

# Thresholds on the covariance spectrum share; not (yet) fields of EvalConfig.
DEFAULT_HEALTHY_MAX_TOP1_SHARE = 0.5
DEFAULT_COLLAPSED_TOP1_SHARE = 0.95


def _as_matrix(z: Any) -> np.ndarray:
    if isinstance(z, torch.Tensor):
        z = z.detach().to("cpu", torch.float64).numpy()
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2 or z.shape[0] < 2 or z.shape[1] < 1:
        raise MarketJepaError(f"embeddings must be a [N >= 2, d] matrix, got shape {z.shape}")
    bad = ~np.isfinite(z)
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1))
        raise MarketJepaError(
            f"embeddings contain {int(bad.sum())} non-finite values in {rows.size} rows "
            f"(first rows {rows[:5].tolist()}): the model diverged; re-run pretraining or "
            "use an earlier checkpoint"
        )
    return z


def rankme(z: Any, eps: float = 1e-12) -> float:
    """Entropy effective rank of the singular values of ``z`` (Garrido et al. 2023, eq. 1)."""
    z = _as_matrix(z)
    # Singular values from the d×d Gram matrix (far cheaper than an SVD for N ≫ d). Its
    # rounding noise (~1e-16·λ_max) would become singular values ~1e-8·σ_max that do not
    # scale with z; eigenvalues below 1e-12·λ_max (σ < 1e-6·σ_max, negligible entropy) are
    # zeroed so a rank-deficient z gives the same RankMe at any scale.
    gram = z.T @ z if z.shape[0] >= z.shape[1] else z @ z.T
    lam = np.linalg.eigvalsh(gram)
    lam = np.where(lam > 1e-12 * lam.max(), lam, 0.0) if lam.max() > 0 else np.zeros_like(lam)
    s = np.sqrt(lam)
    total = s.sum()
    if total <= 0:
        return 0.0
    p = s / total + eps
    return float(np.exp(-(p * np.log(p)).sum()))


def embedding_stats(z: Any, dead_share: float = 1e-3) -> dict[str, Any]:
    """Collapse measures of ``z [N, d]`` (module docstring for definitions)."""
    z = _as_matrix(z)
    n, d = z.shape
    var = z.var(axis=0)
    total_var = float(var.sum())
    mean_sq_norm = float(np.mean(np.einsum("nd,nd->n", z, z)))
    zc = z - z.mean(axis=0)
    eig = np.clip(np.linalg.eigvalsh(zc.T @ zc / n), 0.0, None)[::-1]
    spectrum = eig / eig.sum() if eig.sum() > 0 else np.zeros_like(eig)
    rm = rankme(z)
    return {
        "n": int(n),
        "d": int(d),
        "dim_var_mean": float(var.mean()),
        "dim_var_std": float(var.std()),
        "dim_var_min": float(var.min()),
        "mean_sq_norm": mean_sq_norm,
        "norm_var": total_var / mean_sq_norm if mean_sq_norm > 0 else 0.0,
        "rankme": rm,
        "rankme_ratio": rm / d,
        "dead_dims": int(np.sum(var < dead_share * total_var)) if total_var > 0 else int(d),
        "top1_share": float(spectrum[0]),
        "spectrum": [float(x) for x in spectrum],
    }


def sigreg_statistic(
    z: Any,
    num_slices: int = 256,
    seed: int = 0,
    batch_size: int | None = None,
    num_knots: int = 17,
    t_max: float = 3.0,
) -> float:
    """SIGReg of held-out embeddings against N(0, I), in float64.

    ``batch_size=None``: one statistic on all N rows (it scales with N unless z is
    Gaussian). ``batch_size=B``: the mean statistic over the ⌊N/B⌋ consecutive batches of
    B rows — comparable to the training loss at batch B. Directions from
    ``sample_directions(d, num_slices, seed, step=0)``. ECF sums are accumulated in chunks
    so memory stays bounded for large N.
    """
    x = torch.from_numpy(_as_matrix(z))
    n, d = x.shape
    a = sample_directions(d, num_slices, seed, 0).to(torch.float64)
    t, w = quadrature(num_knots, t_max, dtype=torch.float64)
    chunk = max(1, (1 << 22) // (num_slices * num_knots))

    def whole(rows: torch.Tensor) -> float:
        sums = sum(
            ecf_partial_sums(rows[i : i + chunk], a, t) for i in range(0, rows.shape[0], chunk)
        )
        return float(epps_pulley_from_sums(sums, num_slices, t, w).mean())

    with torch.no_grad():
        if batch_size is None or batch_size >= n:
            return whole(x)
        return float(
            np.mean(
                [whole(x[i : i + batch_size]) for i in range(0, n - batch_size + 1, batch_size)]
            )
        )


_THRESHOLD_KEYS = (
    "healthy_rankme_ratio",
    "collapsed_rankme_ratio",
    "healthy_normalized_variance",
    "collapsed_normalized_variance",
    "healthy_max_top1_share",
    "collapsed_top1_share",
)


def _threshold_dict(thresholds: EvalConfig | Mapping[str, float] | None) -> dict[str, float]:
    defaults = {
        **EvalConfig().model_dump(),
        "healthy_max_top1_share": DEFAULT_HEALTHY_MAX_TOP1_SHARE,
        "collapsed_top1_share": DEFAULT_COLLAPSED_TOP1_SHARE,
    }
    if thresholds is None:
        src: Mapping[str, Any] = defaults
    elif isinstance(thresholds, Mapping):
        src = thresholds
    else:
        src = thresholds.model_dump()
    return {k: float(src.get(k, defaults[k])) for k in _THRESHOLD_KEYS}


def verdict(
    stats: Mapping[str, Any], thresholds: EvalConfig | Mapping[str, float] | None = None
) -> dict[str, Any]:
    """HEALTHY / PARTIAL / COLLAPSED from scale-invariant measures only.

    COLLAPSED if any of: ``rankme_ratio ≤ collapsed_rankme_ratio``, ``norm_var ≤
    collapsed_normalized_variance``, ``top1_share ≥ collapsed_top1_share``. HEALTHY if all
    of: ``rankme_ratio ≥ healthy_rankme_ratio``, ``norm_var ≥ healthy_normalized_variance``,
    ``top1_share ≤ healthy_max_top1_share``. PARTIAL otherwise. Every reason names the
    number and the threshold it was compared with; failing checks come first.
    ``thresholds``: an :class:`EvalConfig` or a mapping (missing keys take the defaults).
    """
    th = _threshold_dict(thresholds)
    rr, nv, top1 = (float(stats[k]) for k in ("rankme_ratio", "norm_var", "top1_share"))
    rank = f"rankme_ratio {rr:.4g} (RankMe {float(stats.get('rankme', math.nan)):.4g}"
    rank += f" of d={stats.get('d', '?')})"
    # (value text, value, direction of "good", healthy key, collapsed key)
    rules = [
        (rank, rr, "high", "healthy_rankme_ratio", "collapsed_rankme_ratio"),
        (f"norm_var {nv:.4g}", nv, "high", "healthy_normalized_variance",
         "collapsed_normalized_variance"),
        (f"top1_share {top1:.4g}", top1, "low", "healthy_max_top1_share",
         "collapsed_top1_share"),
    ]  # fmt: skip
    measures = {"rankme_ratio": rr, "norm_var": nv, "top1_share": top1}
    collapsed = [
        f"{text} {'<=' if good == 'high' else '>='} collapsed threshold {th[ck]:g}"
        for text, v, good, _, ck in rules
        if (v <= th[ck] if good == "high" else v >= th[ck])
    ]
    if collapsed:
        return {"status": "COLLAPSED", "reasons": collapsed, "thresholds": th, "measures": measures}
    failing, passing = [], []
    for text, v, good, hk, _ in rules:
        ok = v >= th[hk] if good == "high" else v <= th[hk]
        op = {("high", True): ">=", ("high", False): "<", ("low", True): "<=", ("low", False): ">"}
        (passing if ok else failing).append(f"{text} {op[good, ok]} healthy threshold {th[hk]:g}")
    status = "PARTIAL" if failing else "HEALTHY"
    return {
        "status": status,
        "reasons": failing + passing,
        "thresholds": th,
        "measures": measures,
    }


SEVERITY = {"HEALTHY": 0, "PARTIAL": 1, "COLLAPSED": 2}
# Metric-row prefixes of the two tensors diagnosed each epoch (SIGReg's and the probes').
ROW_TENSORS = ("sig_", "probe_")


def row_verdict(
    row: Mapping[str, Any], thresholds: EvalConfig | Mapping[str, float] | None = None
) -> str:
    """The worse :func:`verdict` status of a metrics row's ``sig_*`` and ``probe_*`` stats."""
    statuses = []
    for prefix in ROW_TENSORS:
        stats = {k: row[f"{prefix}{k}"] for k in ("rankme_ratio", "rankme", "norm_var")}
        stats["top1_share"] = row[f"{prefix}top1_share"]
        statuses.append(verdict(stats, thresholds)["status"])
    return max(statuses, key=SEVERITY.__getitem__)


def _round2(x: float) -> str:
    """Two decimals of the 3-significant-digit value, half up (0.8448 → 0.845 → 0.85)."""
    return str(Decimal(f"{x:.3g}").quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def _solve_sigma(target: float, n: int, lo: float, hi: float) -> float:
    """σ in [lo, hi] with gaussian_expected_sigreg(n, σ) = target (monotone there)."""
    f_lo = gaussian_expected_sigreg(n, lo) - target
    for _ in range(100):
        mid = math.sqrt(lo * hi)
        f_mid = gaussian_expected_sigreg(n, mid) - target
        if (f_mid > 0) == (f_lo > 0):
            lo, f_lo = mid, f_mid
        else:
            hi = mid
    return math.sqrt(lo * hi)


def monte_carlo_sigreg(n: int, d: int, sigma: float, num_slices: int = 64, seed: int = 0) -> float:
    """SIGReg of one draw of N isotropic Gaussian embeddings N(0, σ²I_d) (float32)."""
    g = torch.Generator().manual_seed(seed)
    z = sigma * torch.randn(n, d, generator=g)
    with torch.no_grad():
        return float(sigreg(z, sample_directions(d, num_slices, seed, 0)))


def verdict_from_summary(
    dim_var_mean: float,
    dim_var_std: float | None,
    sigreg: float | None,
    batch_size: int | None,
    d: int,
) -> dict[str, Any]:
    """Verdict from summary numbers alone (what the seed report gives): always INCONCLUSIVE.

    Why a verdict needs the embeddings themselves:

    1. Absolute per-dimension variance has a scale. ``d·dim_var_mean`` is the total
       variance; embeddings of unit norm spread evenly over d dims show ``1/d`` per dim
       (less when a common mean takes part of the norm). The seed's 0.0033 = 0.85/256 is
       exactly that picture (L2-normalized or LayerNorm-scaled outputs) and says nothing
       about how many directions the embeddings use.
    2. ``dim_var_std`` is only per *axis*: its coefficient of variation gives the axis
       participation ratio ``d/(1 + CV²)``, but variance collapsed onto a direction that is
       not a coordinate axis (the usual case) spreads evenly over the axes, so it cannot
       confirm or rule out dimensional collapse.
    3. SIGReg at batch N is comparable with analytic values (:mod:`marketjepa.model.sigreg`):
       ≈ 1.05 for N(0, I) at any N; ``E = N·Σw(φ_σ − φ)² + Σw(1 − φ_σ²)`` for isotropic
       Gaussian embeddings of per-dim std σ (computed here and checked by Monte Carlo with
       :func:`marketjepa.model.sigreg.sigreg`); ≥ ``N·Σw(1 − φ)²`` for any embeddings
       collapsed to one point. The seed's 53.6 at N = 2048 is ~15× below what per-dim std
       √0.0033 = 0.057 implies (≈ 813) and far below the collapse floor (≈ 823); it matches
       Gaussian embeddings with per-dim std ≈ 0.75 or ≈ 1.4. So the variance and SIGReg were
       not measured on the same tensor at the same scale, and the SIGReg value argues
       against a collapse of the tensor it regularized.

    A decision needs scale-invariant measures (RankMe / d, normalized variance, spectrum
    share) computed from the embeddings: :func:`embedding_stats` + :func:`verdict`.
    """
    if d < 1 or dim_var_mean < 0:
        raise ValueError(f"need d >= 1 and dim_var_mean >= 0, got d={d}, {dim_var_mean}")
    total = d * dim_var_mean
    numbers: dict[str, Any] = {
        "d": d,
        "dim_var_mean": dim_var_mean,
        "total_variance": total,
        "per_dim_std": math.sqrt(dim_var_mean),
        "unit_norm_even_dim_var": 1.0 / d,
    }
    reasons = [
        f"dim_var_mean {dim_var_mean:.4g} × {d} = {total:.3g} ≈ {_round2(total)}/{d}: "
        f"total variance {total:.3g}. "
        f"Embeddings of unit norm spread evenly over {d} dims would show 1/{d} = {1 / d:.4g} "
        f"per dim ({total:.0%} of that here), Gaussian N(0, I) embeddings 1.0; absolute "
        "variance depends on the embedding's scale (normalization, LayerNorm, weights), so "
        "it cannot tell collapse from scale"
    ]
    if dim_var_std is not None and dim_var_mean > 0:
        reasons.append(_axis_reason(dim_var_mean, dim_var_std, d, numbers))
    if sigreg is not None and batch_size:
        reasons.append(_sigreg_reason(sigreg, int(batch_size), d, numbers))
    else:
        reasons.append("no SIGReg value with its batch size given to cross-check the scale")
    reasons.append(
        "a verdict needs scale-invariant measures from the embeddings (RankMe / d, "
        "normalized variance, spectrum share): run diagnose on the checkpoint"
    )
    return {"status": "INCONCLUSIVE", "reasons": reasons, "numbers": numbers}


def _axis_reason(dim_var_mean: float, dim_var_std: float, d: int, numbers: dict) -> str:
    """What per-axis variance spread says (adds its numbers to ``numbers``)."""
    cv = dim_var_std / dim_var_mean
    pr = d / (1.0 + cv * cv)
    numbers.update(dim_var_std=dim_var_std, dim_var_cv=cv, axis_participation=pr)
    return (
        f"dim_var_std {dim_var_std:.4g} (coefficient of variation {cv:.2f}) spreads the "
        f"variance over ~{pr:.0f} of {d} coordinate axes (participation ratio "
        f"d/(1+CV²)); per-axis variances cannot see collapse onto correlated directions, "
        "so this neither confirms nor rules out dimensional collapse"
    )


def _sigreg_reason(sigreg: float, n: int, d: int, numbers: dict) -> str:
    """SIGReg at batch ``n`` against the analytic values (adds its numbers to ``numbers``)."""
    std = numbers["per_dim_std"]
    expected = gaussian_expected_sigreg(n, std)
    mc = monte_carlo_sigreg(n, d, std)
    floor = point_mass_sigreg(n)
    null = null_expected_sigreg()
    numbers.update(
        sigreg=sigreg,
        batch_size=n,
        sigreg_expected_at_std=expected,
        sigreg_monte_carlo_at_std=mc,
        sigreg_collapsed_floor=floor,
        sigreg_null=null,
    )
    implied = []
    if null < sigreg < floor:
        implied.append(_solve_sigma(sigreg, n, 1e-6, 1.0))
    if null < sigreg < gaussian_expected_sigreg(n, 1e6):
        implied.append(_solve_sigma(sigreg, n, 1.0, 1e6))
    numbers["sigreg_implied_std"] = implied
    if sigreg < 0.5 * expected:
        rel = f"far below (×{expected / max(sigreg, 1e-12):.0f})"
    elif sigreg > 2.0 * expected:
        rel = f"far above (×{sigreg / expected:.1f})"
    else:
        rel = "consistent with"
    implied_txt = (
        " It matches Gaussian embeddings with per-dim std "
        + " or ".join(f"{s:.3g}" for s in implied)
        + "."
        if implied
        else ""
    )
    return (
        f"SIGReg {sigreg:.4g} at batch {n} is {rel} the {expected:.0f} that Gaussian "
        f"embeddings with per-dim std {std:.3g} would give (analytic; Monte Carlo with "
        f"our sigreg: {mc:.0f}); any batch collapsed to a point gives >= {floor:.0f} and "
        f"N(0, I) gives {null:.2f}.{implied_txt} The variance and SIGReg were not "
        "measured on the same tensor at the same scale"
        + (", and this SIGReg argues against collapse" if sigreg < 0.5 * floor else "")
    )

"""Collapse diagnostics on known matrices, scale invariance, and the seed's numbers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from marketjepa.config import EvalConfig
from marketjepa.errors import MarketJepaError
from marketjepa.model.collapse import (
    embedding_stats,
    rankme,
    row_verdict,
    sigreg_statistic,
    verdict,
    verdict_from_summary,
)
from marketjepa.model.sigreg import (
    gaussian_expected_sigreg,
    null_expected_sigreg,
    point_mass_sigreg,
    sample_directions,
    sigreg,
)

SCALE_FREE = ("norm_var", "rankme", "rankme_ratio", "dead_dims", "top1_share")


def _gauss(n: int, d: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, d))


def test_identity_matrix_exact_values():
    d = 16
    s = embedding_stats(np.eye(d))
    assert s["rankme"] == pytest.approx(d, rel=1e-6)
    # Rows e_i: per-dim variance 1/d − 1/d², E‖z‖² = 1 → norm_var = 1 − 1/d.
    assert s["dim_var_mean"] == pytest.approx(1 / d - 1 / d**2)
    assert s["norm_var"] == pytest.approx(1 - 1 / d)
    assert s["dead_dims"] == 0
    assert sum(s["spectrum"]) == pytest.approx(1.0)


def test_isotropic_gaussian_is_healthy():
    d = 32
    s = embedding_stats(_gauss(4000, d))
    assert s["norm_var"] == pytest.approx(1.0, abs=0.01)
    assert s["rankme"] > 0.97 * d and s["rankme_ratio"] > 0.97
    assert s["dim_var_mean"] == pytest.approx(1.0, abs=0.05)
    assert s["mean_sq_norm"] == pytest.approx(d, rel=0.05)
    assert s["dead_dims"] == 0 and s["top1_share"] < 2.0 / d
    assert s["spectrum"] == sorted(s["spectrum"], reverse=True)
    v = verdict(s, EvalConfig())
    assert v["status"] == "HEALTHY"
    assert any("0.25" in r for r in v["reasons"])


def test_rank_one_is_collapsed():
    rng = np.random.default_rng(1)
    d = 32
    direction = rng.standard_normal(d)
    z = rng.standard_normal((2000, 1)) * direction[None, :]
    s = embedding_stats(z)
    assert s["rankme"] == pytest.approx(1.0, abs=1e-3)
    assert s["top1_share"] == pytest.approx(1.0)
    # Zero-mean rank-1 data still has norm_var ≈ 1: that measure sees offsets, not rank.
    assert s["norm_var"] == pytest.approx(1.0, abs=0.01)
    v = verdict(s)
    assert v["status"] == "COLLAPSED"
    assert any("rankme_ratio" in r and "0.05" in r for r in v["reasons"])


def test_point_mass_is_collapsed_by_normalized_variance():
    z = 3.0 + 1e-4 * _gauss(1000, 8)
    s = embedding_stats(z)
    assert s["norm_var"] < 1e-6
    v = verdict(s)
    assert v["status"] == "COLLAPSED"
    assert any(r.startswith("norm_var") for r in v["reasons"])


def test_partial_when_few_directions_used():
    d = 32
    z = np.zeros((3000, d))
    z[:, :5] = _gauss(3000, 5, seed=2)
    s = embedding_stats(z)
    assert s["dead_dims"] == d - 5
    v = verdict(s)
    assert v["status"] == "PARTIAL"  # rankme_ratio ≈ 5/32 between 0.05 and 0.25
    assert "rankme_ratio" in v["reasons"][0] and "< healthy threshold 0.25" in v["reasons"][0]
    assert v["thresholds"]["healthy_rankme_ratio"] == 0.25


def _row(**tensors: np.ndarray) -> dict[str, float]:
    """A training metrics row with the collapse columns of each prefixed tensor."""
    row = {}
    for prefix, z in tensors.items():
        s = embedding_stats(z)
        row |= {f"{prefix}_{k}": s[k] for k in ("rankme_ratio", "rankme", "norm_var", "top1_share")}
    return row


def test_row_verdict_is_the_worse_of_the_two_tensors():
    healthy, few = _gauss(3000, 32), np.zeros((3000, 32))
    few[:, :5] = _gauss(3000, 5, seed=2)
    point = 3.0 + 1e-4 * _gauss(3000, 32, seed=3)
    assert row_verdict(_row(sig=healthy, probe=healthy)) == "HEALTHY"
    assert row_verdict(_row(sig=healthy, probe=few)) == "PARTIAL"
    assert row_verdict(_row(sig=point, probe=few)) == "COLLAPSED"
    # Thresholds come from the config: a lower healthy bar makes 5 of 32 dims healthy.
    lenient = EvalConfig(healthy_rankme_ratio=0.1)
    assert row_verdict(_row(sig=healthy, probe=few), lenient) == "HEALTHY"


@pytest.mark.parametrize("scale", [1e-3, 1e3])
def test_scale_does_not_change_scale_invariant_numbers_or_verdict(scale):
    for z in (_gauss(1500, 16, seed=3), _gauss(1500, 1, seed=4) @ _gauss(1, 16, seed=5)):
        base, scaled = embedding_stats(z), embedding_stats(z * scale)
        for key in SCALE_FREE:
            assert scaled[key] == pytest.approx(base[key], rel=1e-9, abs=1e-12), key
        np.testing.assert_allclose(scaled["spectrum"], base["spectrum"], rtol=1e-7, atol=1e-15)
        assert scaled["dim_var_mean"] == pytest.approx(base["dim_var_mean"] * scale**2)
        assert verdict(scaled)["status"] == verdict(base)["status"]


def test_custom_thresholds_are_used_and_reported():
    s = embedding_stats(_gauss(2000, 16))
    strict = EvalConfig(healthy_rankme_ratio=1.0, collapsed_rankme_ratio=0.9999)
    v = verdict(s, strict)
    assert v["status"] == "COLLAPSED"
    assert v["thresholds"]["collapsed_rankme_ratio"] == 0.9999
    assert verdict(s, {"healthy_rankme_ratio": 1.0})["status"] == "PARTIAL"


def test_rankme_matches_definition_and_accepts_torch():
    z = _gauss(50, 6, seed=6)
    sv = np.linalg.svd(z, compute_uv=False)
    p = sv / sv.sum()
    assert rankme(z) == pytest.approx(np.exp(-(p * np.log(p)).sum()), rel=1e-6)
    assert rankme(torch.from_numpy(z).float()) == pytest.approx(rankme(z), rel=1e-5)


def test_non_finite_embeddings_raise_clear_error():
    z = _gauss(10, 4)
    z[3, 1] = np.nan
    with pytest.raises(MarketJepaError, match="non-finite.*rows \\[3\\]"):
        embedding_stats(z)


def test_sigreg_statistic_matches_sigreg_and_batching():
    z = _gauss(3000, 8, seed=7)
    direct = float(sigreg(torch.from_numpy(z), sample_directions(8, 64, 5, 0).double()))
    assert sigreg_statistic(z, num_slices=64, seed=5) == pytest.approx(direct, rel=1e-10)
    batched = sigreg_statistic(z, num_slices=64, seed=5, batch_size=1000)
    per_batch = [
        float(sigreg(torch.from_numpy(z[i : i + 1000]), sample_directions(8, 64, 5, 0).double()))
        for i in (0, 1000, 2000)
    ]
    assert batched == pytest.approx(np.mean(per_batch), rel=1e-10)
    assert batched < 3 * null_expected_sigreg()
    assert sigreg_statistic(z * 0.05, num_slices=64, batch_size=1000) > 200


def test_seed_numbers_are_inconclusive_with_reasons():
    v = verdict_from_summary(0.0033, 0.0024, 53.63, 2048, 256)
    assert v["status"] == "INCONCLUSIVE"
    text = " ".join(v["reasons"])
    assert "0.85/256" in text and "1/256 = 0.003906" in text
    nums = v["numbers"]
    # What N(0, 0.057²·I) embeddings give at batch 2048: analytic and Monte Carlo agree.
    expected = nums["sigreg_expected_at_std"]
    assert expected == pytest.approx(gaussian_expected_sigreg(2048, 0.0033**0.5))
    assert 780 < expected < 840
    assert nums["sigreg_monte_carlo_at_std"] == pytest.approx(expected, rel=0.03)
    assert nums["sigreg_collapsed_floor"] == pytest.approx(point_mass_sigreg(2048))
    assert f"{expected:.0f}" in text and "53.63" in text
    assert expected > 10 * 53.63
    # The implied per-dim stds reproduce the reported SIGReg.
    assert len(nums["sigreg_implied_std"]) == 2
    for std in nums["sigreg_implied_std"]:
        assert gaussian_expected_sigreg(2048, std) == pytest.approx(53.63, rel=1e-6)


def test_summary_without_sigreg_is_still_inconclusive():
    v = verdict_from_summary(1.0, None, None, None, 64)
    assert v["status"] == "INCONCLUSIVE"
    assert any("no SIGReg" in r for r in v["reasons"])

"""SIGReg math: null behaviour, power, quadrature vs a numerical integral, DDP equivalence."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import integrate

from marketjepa.model.sigreg import (
    NULL_SIGREG_CONTINUOUS,
    ecf_partial_sums,
    gaussian_expected_sigreg,
    null_expected_sigreg,
    point_mass_sigreg,
    quadrature,
    sample_directions,
    sigreg,
)


def _gauss(n: int, d: int, seed: int, dtype=torch.float64) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def test_quadrature_integrates_gaussian_window():
    t, w = quadrature(17, 3.0, dtype=torch.float64)
    assert t[0] == 0 and t[-1] == 3.0 and t.numel() == 17
    # ∫_{-3}^{3} e^{-t²/2} dt = √(2π)·(2Φ(3) − 1) = 2.5000...
    exact = np.sqrt(2 * np.pi) * 0.9973002039367398
    assert float(w.sum()) == pytest.approx(exact, rel=2e-3)


def test_null_statistic_is_order_one_and_does_not_grow_with_n():
    d, m = 8, 64
    means = {}
    for n in (256, 4096):
        vals = [
            float(sigreg(_gauss(n, d, seed=r), sample_directions(d, m, seed=r, step=0)))
            for r in range(3)
        ]
        means[n] = np.mean(vals)
    expected = null_expected_sigreg()
    assert expected == pytest.approx(1.0525, abs=1e-3)
    # Truncating the integral at t_max = 3 loses < 1% of √(2π) − √(2π/3).
    assert expected == pytest.approx(NULL_SIGREG_CONTINUOUS, rel=0.01)
    for n, v in means.items():
        assert abs(v - expected) < 0.3, (n, v)
    assert means[4096] < 1.5 * means[256]
    # The un-scaled ECF distance (statistic / N) goes to 0.
    assert means[4096] / 4096 < 4e-4


def test_large_for_collapsed_shifted_scaled():
    n, d, m = 2048, 16, 64
    a = sample_directions(d, m, seed=1, step=0).double()
    null = null_expected_sigreg()
    zero = torch.zeros(n, d, dtype=torch.float64)
    assert float(sigreg(zero, a)) == pytest.approx(point_mass_sigreg(n), rel=1e-9)
    point = torch.full((n, d), 0.7, dtype=torch.float64)
    assert float(sigreg(point, a)) >= point_mass_sigreg(n)
    z = _gauss(n, d, seed=2)
    for bad in (z + 1.0, 3.0 * z, 0.3 * z, z[:, :1].expand(n, d) * 1.0):
        assert float(sigreg(bad, a)) > 30 * null
    assert float(sigreg(z, a)) < 3 * null


@pytest.mark.parametrize("sigma", [0.057, 0.5, 2.0])
def test_gaussian_expectation_matches_monte_carlo(sigma):
    n, d = 2048, 32
    mc = np.mean(
        [
            float(sigreg(sigma * _gauss(n, d, seed=s), sample_directions(d, 64, s, 0)))
            for s in range(3)
        ]
    )
    assert mc == pytest.approx(gaussian_expected_sigreg(n, sigma), rel=0.1)


def _quad_reference(x: np.ndarray, t_max: float = 3.0) -> float:
    """N·∫_{−t_max}^{t_max} |φ̂(t) − e^{−t²/2}|² e^{−t²/2} dt by adaptive quadrature."""

    def integrand(t: float) -> float:
        re = np.cos(t * x).mean() - np.exp(-0.5 * t * t)
        im = np.sin(t * x).mean()
        return (re * re + im * im) * np.exp(-0.5 * t * t)

    val, _ = integrate.quad(integrand, -t_max, t_max, limit=200, epsabs=1e-12)
    return x.size * val


def test_matches_numerical_integration_on_projections():
    rng = np.random.default_rng(0)
    n, d = 300, 5
    z = np.concatenate(
        [rng.standard_normal((n, 2)), rng.standard_t(4, (n, 2)), rng.exponential(1, (n, 1))],
        axis=1,
    )
    a = sample_directions(d, 3, seed=7, step=3).double()
    ref = np.mean([_quad_reference(z @ a[:, m].numpy()) for m in range(3)])
    zt = torch.from_numpy(z)
    # A fine trapezoid grid converges to the integral; the 17-knot default is close.
    assert float(sigreg(zt, a, num_knots=2001)) == pytest.approx(ref, rel=1e-5)
    assert float(sigreg(zt, a)) == pytest.approx(ref, rel=0.02)


def test_invariant_to_batch_order():
    z = _gauss(512, 8, seed=3, dtype=torch.float32) * 1.3 + 0.2
    a = sample_directions(8, 32, seed=0, step=5)
    perm = torch.randperm(512, generator=torch.Generator().manual_seed(0))
    assert float(sigreg(z[perm], a)) == pytest.approx(float(sigreg(z, a)), rel=1e-5)


def test_reduce_fn_equals_whole_batch_value_and_gradient():
    d, m = 8, 32
    z = (_gauss(600, d, seed=4) * 0.8 + 0.1).requires_grad_(True)
    a = sample_directions(d, m, seed=0, step=11).double()
    full = sigreg(z, a)
    full.backward()
    grad_full = z.grad.clone()

    # Rank 0 holds rows [0, 250), rank 1 rows [250, 600) (unequal shards on purpose).
    t, _ = quadrature(dtype=torch.float64)
    z0 = z.detach()[:250].clone().requires_grad_(True)
    other = ecf_partial_sums(z.detach()[250:], a, t)
    part = sigreg(z0, a, reduce_fn=lambda s: s + other)
    assert part.item() == pytest.approx(full.item(), rel=1e-12)
    part.backward()
    torch.testing.assert_close(z0.grad, grad_full[:250], rtol=1e-10, atol=1e-12)


def test_directions_depend_only_on_seed_and_step():
    a = sample_directions(16, 8, seed=3, step=10)
    b = sample_directions(16, 8, seed=3, step=10, device="cpu")
    assert torch.equal(a, b)
    torch.testing.assert_close(a.norm(dim=0), torch.ones(8))
    assert not torch.allclose(a, sample_directions(16, 8, seed=3, step=11))
    assert not torch.allclose(a, sample_directions(16, 8, seed=4, step=10))
    # The global torch RNG does not influence them (ranks may have diverged RNG state).
    torch.manual_seed(123)
    assert torch.equal(a, sample_directions(16, 8, seed=3, step=10))


def test_bf16_input_and_autocast_are_computed_in_float32():
    z = _gauss(256, 8, seed=5, dtype=torch.float32)
    a = sample_directions(8, 16, 0, 0)
    v = sigreg(z.bfloat16(), a)
    assert v.dtype == torch.float32
    assert float(v) == pytest.approx(float(sigreg(z.bfloat16().float(), a)), rel=1e-6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = sigreg(z, a)
    assert inside.dtype == torch.float32
    assert float(inside) == pytest.approx(float(sigreg(z, a)), rel=1e-6)


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="directions"):
        sigreg(torch.zeros(4, 3), torch.zeros(4, 2))
    with pytest.raises(ValueError, match=r"\[N, d\]"):
        sigreg(torch.zeros(4), torch.zeros(4, 2))

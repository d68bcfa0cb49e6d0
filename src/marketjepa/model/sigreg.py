"""SIGReg: sliced Epps–Pulley test of the embeddings against N(0, I) (DESIGN §3).

LeJEPA (Balestriero & LeCun, 2025, "LeJEPA: Provable and Scalable Self-Supervised
Learning Without the Heuristics", §4) regularizes embeddings towards an isotropic
Gaussian with *Sketched Isotropic Gaussian Regularization*: project the ``N`` embeddings
``z ∈ R^{N×d}`` on ``M`` random unit directions ``a_m`` and apply a univariate
goodness-of-fit test to each projection ``x_{m,n} = a_m·z_n``. The test is Epps–Pulley
(Epps & Pulley, 1983): the weighted L² distance between the empirical characteristic
function (ECF) ``φ̂_m(t) = (1/N) Σ_n exp(i t x_{m,n})`` and the N(0, 1) characteristic
function ``φ(t) = exp(−t²/2)``::

    EP_m = N · ∫_{−∞}^{∞} |φ̂_m(t) − φ(t)|² w(t) dt,        w(t) = exp(−t²/2)
         = N · ∫ [(Re φ̂_m(t) − φ(t))² + (Im φ̂_m(t))²] w(t) dt
    SIGReg = (1/M) Σ_m EP_m

The integrand is even in ``t`` (cos is even, sin² is even), so the integral is twice the
one over ``[0, ∞)``; it is truncated at ``t_max`` (3 by default: w(3) ≈ 0.011) and
evaluated with the trapezoid rule on ``K`` equally spaced knots ``0 = t_0 < … < t_{K−1} =
t_max`` (17 by default), the Gaussian window folded into the quadrature weights
``w_k = 2·Δt·exp(−t_k²/2)`` (half that at both ends).

Properties used by the tests and the diagnostics:

* Under the null (``z ~ N(0, I)``), ``E|φ̂(t) − φ(t)|² = (1 − φ(t)²)/N``, so
  ``E[SIGReg] = ∫ (1 − e^{−t²}) e^{−t²/2} dt ≈ √(2π) − √(2π/3) ≈ 1.06`` at *every* N:
  the ×N scaling makes the statistic O(1) for Gaussian data and O(N) otherwise.
* For projections ``N(0, σ²)`` (isotropic Gaussian embeddings of per-dim std σ):
  ``E[SIGReg] = N·Σ_k w_k (e^{−σ²t_k²/2} − e^{−t_k²/2})² + Σ_k w_k (1 − e^{−σ²t_k²})``.
* For embeddings collapsed to one point ``c``: ``EP_m = N·∫ (1 − 2cos(t a_m·c) φ(t) + φ(t)²)
  w(t) dt ≥ N·∫ (1 − φ)² w dt ≈ 0.409·N`` (equality at c = 0): ≈ 837 at N = 2048.

Distributed data parallel: the statistic is a smooth function of the ECF *sums*
``Σ_n cos(t x_n)``, ``Σ_n sin(t x_n)`` and of ``N``. :func:`sigreg` packs them in one
vector and hands it to ``reduce_fn`` (a SUM all-reduce across ranks); the result then
equals the single-process value on the concatenated batch. Use a differentiable
all-reduce (``torch.distributed.nn.functional.all_reduce``): its backward sums the
(identical) upstream gradients of all ranks, i.e. multiplies them by the world size,
which DDP's gradient averaging divides out again, so gradients match the single-process
run too.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

ReduceFn = Callable[[Tensor], Tensor]

_MASK64 = (1 << 64) - 1

# √(2π) − √(2π/3) ≈ 1.059: the null expectation of the untruncated integral.
NULL_SIGREG_CONTINUOUS = math.sqrt(2 * math.pi) - math.sqrt(2 * math.pi / 3)


def quadrature(
    num_knots: int = 17,
    t_max: float = 3.0,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[Tensor, Tensor]:
    """Knots ``t_k`` on ``[0, t_max]`` and weights for ``∫_{−t_max}^{t_max} f(t) e^{−t²/2} dt``.

    Trapezoid rule on the half line, doubled for the even integrand, Gaussian window
    folded in. Returns ``(t [K], w [K])``.
    """
    if num_knots < 2:
        raise ValueError(f"num_knots must be >= 2, got {num_knots}")
    if t_max <= 0:
        raise ValueError(f"t_max must be > 0, got {t_max}")
    t = torch.linspace(0.0, t_max, num_knots, device=device, dtype=dtype)
    dt = t_max / (num_knots - 1)
    w = torch.full_like(t, 2.0 * dt)
    w[0] = dt
    w[-1] = dt
    return t, w * torch.exp(-0.5 * t * t)


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def sample_directions(
    d: int, num_slices: int, seed: int, step: int, device: torch.device | str | None = None
) -> Tensor:
    """``[d, num_slices]`` random unit columns, a pure function of ``(seed, step)``.

    Drawn on a CPU ``torch.Generator`` (so every rank, CPU or GPU, draws bit-identical
    directions) seeded by a splitmix64 hash of ``(seed, step)``, then moved to ``device``.
    Gaussian columns normalized to unit length are uniform on the sphere.
    """
    if d < 1 or num_slices < 1:
        raise ValueError(f"d and num_slices must be >= 1, got {d}, {num_slices}")
    key = _splitmix64(_splitmix64(seed & _MASK64) ^ (step & _MASK64))
    g = torch.Generator(device="cpu").manual_seed(key)
    a = torch.randn(d, num_slices, generator=g, dtype=torch.float32)
    a = a / a.norm(dim=0, keepdim=True)
    return a.to(device) if device is not None else a


def ecf_partial_sums(z: Tensor, directions: Tensor, knots: Tensor) -> Tensor:
    """Packed local ECF sums ``[Σcos (M·K), Σsin (M·K), N]`` of ``z [N, d]``.

    This is exactly what is all-reduced (summed) across DDP ranks.
    """
    x = (z @ directions).unsqueeze(-1) * knots  # [N, M, K]
    n = torch.full((1,), float(z.shape[0]), device=z.device, dtype=z.dtype)
    return torch.cat([torch.cos(x).sum(0).flatten(), torch.sin(x).sum(0).flatten(), n])


def epps_pulley_from_sums(sums: Tensor, num_slices: int, knots: Tensor, weights: Tensor) -> Tensor:
    """Per-slice Epps–Pulley statistics ``[M]`` from packed (global) ECF sums."""
    mk = num_slices * knots.numel()
    n = sums[-1]
    cos_mean = sums[:mk].view(num_slices, -1) / n
    sin_mean = sums[mk : 2 * mk].view(num_slices, -1) / n
    err = (cos_mean - torch.exp(-0.5 * knots * knots)).square() + sin_mean.square()
    return n * (err @ weights)


def sigreg(
    z: Tensor,
    directions: Tensor,
    num_knots: int = 17,
    t_max: float = 3.0,
    reduce_fn: ReduceFn | None = None,
) -> Tensor:
    """Sliced Epps–Pulley statistic of ``z [N, d]`` against N(0, I) (module docstring).

    ``directions [d, M]`` are unit columns (:func:`sample_directions`). Computed in
    float32 at least, with autocast disabled (safe inside a bf16 autocast region).
    ``reduce_fn`` — if given — must return the elementwise SUM over ranks of the packed ECF
    sums (:func:`ecf_partial_sums`); the global N is part of that vector, so the value
    equals the single-process value on the concatenated batch. Returns a scalar tensor
    (differentiable w.r.t. ``z``).
    """
    if z.ndim != 2:
        raise ValueError(f"sigreg expects z of shape [N, d], got {tuple(z.shape)}")
    if directions.ndim != 2 or directions.shape[0] != z.shape[1]:
        raise ValueError(f"directions must be [d={z.shape[1]}, M], got {tuple(directions.shape)}")
    dtype = torch.promote_types(z.dtype, torch.float32)
    z = z.to(dtype)
    directions = directions.to(device=z.device, dtype=dtype)
    t, w = quadrature(num_knots, t_max, device=z.device, dtype=dtype)
    # Autocast would run the projection in bf16 (~3 significant digits), biasing the ECF.
    with torch.autocast(device_type=z.device.type, enabled=False):
        sums = ecf_partial_sums(z, directions, t)
        if reduce_fn is not None:
            sums = reduce_fn(sums)
        return epps_pulley_from_sums(sums, directions.shape[1], t, w).mean()


def gaussian_expected_sigreg(
    n: int, sigma: float = 1.0, num_knots: int = 17, t_max: float = 3.0
) -> float:
    """``E[SIGReg]`` for N samples whose projections are N(0, σ²) (exact for the quadrature).

    ``E|φ̂(t) − φ(t)|² = (φ_σ(t) − φ(t))² + (1 − φ_σ(t)²)/N`` with ``φ_σ(t) = e^{−σ²t²/2}``
    (variance of the ECF of N iid draws), summed with the quadrature weights, times N.
    Applies to any isotropic Gaussian embedding with per-dim std σ, on every slice.
    """
    t, w = quadrature(num_knots, t_max, dtype=torch.float64)
    phi = torch.exp(-0.5 * t * t)
    phi_s = torch.exp(-0.5 * (sigma * t) ** 2)
    per_t = n * (phi_s - phi).square() + (1.0 - phi_s.square())
    return float(per_t @ w)


def null_expected_sigreg(num_knots: int = 17, t_max: float = 3.0) -> float:
    """``E[SIGReg]`` for exact N(0, I) samples (independent of N, ≈ 1.06 by default)."""
    return gaussian_expected_sigreg(1, 1.0, num_knots, t_max)


def point_mass_sigreg(n: int, num_knots: int = 17, t_max: float = 3.0) -> float:
    """SIGReg of N embeddings all equal to 0: the floor of any fully collapsed batch."""
    t, w = quadrature(num_knots, t_max, dtype=torch.float64)
    return float(n * ((1.0 - torch.exp(-0.5 * t * t)).square() @ w))


__all__ = [
    "NULL_SIGREG_CONTINUOUS",
    "ecf_partial_sums",
    "epps_pulley_from_sums",
    "gaussian_expected_sigreg",
    "null_expected_sigreg",
    "point_mass_sigreg",
    "quadrature",
    "sample_directions",
    "sigreg",
]


def sigreg_view(z_sig: Tensor, n_windows: int, token_pos: Tensor) -> Tensor:
    """One row per window of the tensor SIGReg regularizes.

    With ``loss.sigreg_on`` = pooled this is the pooled embedding. With tokens/both SIGReg
    sees every token ``[B·C, d]``; each window contributes the token at ``token_pos`` (a
    fixed random position), an unbiased sample of that token distribution at 1/C the size.
    """
    if z_sig.shape[0] == n_windows:
        return z_sig
    tokens = z_sig.reshape(n_windows, -1, z_sig.shape[-1])
    return tokens[torch.arange(n_windows, device=tokens.device), token_pos.to(tokens.device)]


def token_positions(n_windows: int, n_tokens: int, seed: int) -> np.ndarray:
    """The fixed random token position per window that :func:`sigreg_view` takes."""
    return np.random.default_rng([seed, 1]).integers(0, n_tokens, size=n_windows)

"""Vectorized Black–Scholes–Merton pricing, Greeks and implied-volatility inversion.

European option on a dividend-paying underlying (continuous yield q, rate r)::

    d1 = [ln(S/K) + (r − q + σ²/2)·T] / (σ·√T),   d2 = d1 − σ·√T
    C  = S·e^{−qT}·N(d1) − K·e^{−rT}·N(d2)
    P  = K·e^{−rT}·N(−d2) − S·e^{−qT}·N(−d1)

All functions broadcast over numpy arrays. ``is_call`` is a bool array (True = call).
Time ``T`` is in years; at ``T <= 0`` prices are intrinsic value.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr

_SQRT_2PI = np.sqrt(2.0 * np.pi)


def _pdf(x: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * x * x) / _SQRT_2PI


def _d1_d2(S, K, T, sigma, r, q):
    sqrt_t = np.sqrt(np.maximum(T, 1e-12))
    vol_t = np.maximum(sigma, 1e-12) * sqrt_t
    d1 = (np.log(S / K) + (r - q + 0.5 * sigma * sigma) * T) / vol_t
    return d1, d1 - vol_t


def bs_price(S, K, T, sigma, is_call, r: float = 0.0, q: float = 0.0) -> np.ndarray:
    """Black–Scholes–Merton price; intrinsic value where ``T <= 0``."""
    S, K, T, sigma = (np.asarray(a, dtype=np.float64) for a in (S, K, T, sigma))
    is_call = np.asarray(is_call, dtype=bool)
    d1, d2 = _d1_d2(S, K, T, sigma, r, q)
    disc_q, disc_r = np.exp(-q * np.maximum(T, 0)), np.exp(-r * np.maximum(T, 0))
    call = S * disc_q * ndtr(d1) - K * disc_r * ndtr(d2)
    put = K * disc_r * ndtr(-d2) - S * disc_q * ndtr(-d1)
    price = np.where(is_call, call, put)
    intrinsic = np.where(is_call, np.maximum(S - K, 0.0), np.maximum(K - S, 0.0))
    return np.where(T > 0, price, intrinsic)


def bs_greeks(S, K, T, sigma, is_call, r: float = 0.0, q: float = 0.0) -> dict[str, np.ndarray]:
    """Delta, gamma, vega (per 1.00 of vol) and theta (per year) of each option."""
    S, K, T, sigma = (np.asarray(a, dtype=np.float64) for a in (S, K, T, sigma))
    is_call = np.asarray(is_call, dtype=bool)
    Tp = np.maximum(T, 1e-12)
    d1, d2 = _d1_d2(S, K, Tp, sigma, r, q)
    disc_q, disc_r = np.exp(-q * Tp), np.exp(-r * Tp)
    pdf = _pdf(d1)
    delta = np.where(is_call, disc_q * ndtr(d1), disc_q * (ndtr(d1) - 1.0))
    gamma = disc_q * pdf / (S * np.maximum(sigma, 1e-12) * np.sqrt(Tp))
    vega = S * disc_q * pdf * np.sqrt(Tp)
    common = -S * disc_q * pdf * sigma / (2.0 * np.sqrt(Tp))
    theta_call = common - r * K * disc_r * ndtr(d2) + q * S * disc_q * ndtr(d1)
    theta_put = common + r * K * disc_r * ndtr(-d2) - q * S * disc_q * ndtr(-d1)
    theta = np.where(is_call, theta_call, theta_put)
    return {"delta": delta, "gamma": gamma, "vega": vega, "theta": theta}


def implied_vol(
    price,
    S,
    K,
    T,
    is_call,
    r: float = 0.0,
    q: float = 0.0,
    lo: float = 1e-4,
    hi: float = 5.0,
    tol: float = 1e-13,
    max_iter: int = 100,
) -> tuple[np.ndarray, np.ndarray]:
    """Invert Black–Scholes for σ, vectorized: safeguarded Newton inside a bisection bracket.

    Returns ``(iv, status)``; ``iv`` is NaN where inversion failed and ``status`` says why:
    0 ok, 1 price below intrinsic (or non-positive), 2 price at/above the no-arbitrage
    upper bound, 3 no convergence, 4 expired (T <= 0). Failures are never returned as 0.
    """
    price, S, K, T = (np.asarray(a, dtype=np.float64) for a in (price, S, K, T))
    is_call = np.asarray(is_call, dtype=bool)
    price, S, K, T, is_call = np.broadcast_arrays(price, S, K, T, is_call)
    disc_q, disc_r = np.exp(-q * np.maximum(T, 0)), np.exp(-r * np.maximum(T, 0))
    lower = np.where(
        is_call, np.maximum(S * disc_q - K * disc_r, 0), np.maximum(K * disc_r - S * disc_q, 0)
    )
    upper = np.where(is_call, S * disc_q, K * disc_r)
    status = np.zeros(price.shape, dtype=np.int8)
    status[~(price > lower)] = 1
    status[(status == 0) & ~(price < upper)] = 2
    status[T <= 0] = 4
    status[~np.isfinite(price)] = 1

    todo = status == 0
    iv = np.full(price.shape, np.nan)
    if todo.any():
        p, s, k, t, c = price[todo], S[todo], K[todo], T[todo], is_call[todo]
        a = np.full(p.shape, lo)
        b = np.full(p.shape, hi)
        # Brenner–Subrahmanyam start, kept inside the bracket.
        x = np.clip(np.sqrt(2 * np.pi / t) * p / s, lo * 2, hi / 2)
        done = np.zeros(p.shape, dtype=bool)
        for _ in range(max_iter):
            f = bs_price(s, k, t, x, c, r, q) - p
            done |= (np.abs(f) < tol * np.maximum(1.0, p)) | (b - a < 1e-12)
            if done.all():
                break
            a = np.where(f < 0, x, a)
            b = np.where(f > 0, x, b)
            vega = bs_greeks(s, k, t, x, c, r, q)["vega"]
            newton = x - f / np.where(vega > 1e-14, vega, np.nan)
            inside = np.isfinite(newton) & (newton > a) & (newton < b)
            x = np.where(done, x, np.where(inside, newton, 0.5 * (a + b)))
        f = bs_price(s, k, t, x, c, r, q) - p
        # Accept when the price is matched to 1e-9 (relative to max(1, price)).
        ok = np.abs(f) < 1e-9 * np.maximum(1.0, p)
        sub = np.where(ok, x, np.nan)
        iv[todo] = sub
        st = status[todo]
        st[~ok] = 3
        status[todo] = st
    return iv, status

import numpy as np

from marketjepa.black_scholes import bs_greeks, bs_price, implied_vol


def test_put_call_parity():
    S, K, T, s, r, q = 450.0, np.array([440.0, 450, 460]), 0.1, 0.2, 0.04, 0.013
    c = bs_price(S, K, T, s, True, r, q)
    p = bs_price(S, K, T, s, False, r, q)
    np.testing.assert_allclose(c - p, S * np.exp(-q * T) - K * np.exp(-r * T), atol=1e-10)


def test_known_value():
    # Hull's textbook example: S=42, K=40, r=10%, sigma=20%, T=0.5 -> C=4.76, P=0.81
    assert abs(bs_price(42, 40, 0.5, 0.2, True, 0.1) - 4.7594) < 1e-4
    assert abs(bs_price(42, 40, 0.5, 0.2, False, 0.1) - 0.8086) < 1e-4


def test_iv_round_trip_within_1e6():
    rng = np.random.default_rng(0)
    n = 2000
    S = rng.uniform(300, 500, n)
    K = S * rng.uniform(0.93, 1.07, n)
    T = rng.uniform(1 / (365 * 24), 60 / 365, n)
    sig = rng.uniform(0.08, 0.8, n)
    call = rng.random(n) < 0.5
    price = bs_price(S, K, T, sig, call, 0.04, 0.013)
    iv, status = implied_vol(price, S, K, T, call, 0.04, 0.013)
    # options with almost no vega carry no vol information at double precision
    meaningful = bs_greeks(S, K, T, sig, call, 0.04, 0.013)["vega"] > 1e-3
    ok = status == 0
    assert ok[meaningful].mean() > 0.99
    np.testing.assert_allclose(iv[ok & meaningful], sig[ok & meaningful], atol=1e-6)


def test_iv_failures_masked_not_zero():
    iv, status = implied_vol(
        np.array([0.5, 460.0, 1.0]),
        450.0,
        np.array([400.0, 450, 450]),
        np.array([0.1, 0.1, 0.0]),
        True,
    )
    assert status.tolist() == [1, 2, 4]
    assert np.isnan(iv).all()


def test_greeks_match_finite_differences():
    S, K, T, s = 450.0, 452.0, 5 / 365, 0.18
    g = bs_greeks(S, K, T, s, True)
    h = 1e-3
    d = (bs_price(S + h, K, T, s, True) - bs_price(S - h, K, T, s, True)) / (2 * h)
    v = (bs_price(S, K, T, s + 1e-5, True) - bs_price(S, K, T, s - 1e-5, True)) / 2e-5
    th = -(bs_price(S, K, T + 1e-6, s, True) - bs_price(S, K, T - 1e-6, s, True)) / 2e-6
    assert abs(g["delta"] - d) < 1e-6
    assert abs(g["vega"] - v) < 1e-4
    assert abs(g["theta"] - th) / abs(th) < 1e-4

import numpy as np
import pytest

from marketjepa.config import BacktestConfig
from marketjepa.trading.costs import CostModel, itemize


def test_round_trip_hand_built_to_the_cent():
    costs = CostModel(
        half_spread_abs=0.02,
        half_spread_pct=0.01,
        commission_per_contract=0.65,
        fees_per_contract=0.02,
        slippage_abs=0.01,
    )
    out = itemize(np.array([1.50]), np.array([2.00]), np.array([2]), costs)
    # entry: 1.50 + (0.02 + 0.015) + 0.01 = 1.545; exit: 2.00 − (0.02 + 0.02) − 0.01 = 1.95
    assert out["entry_fill"][0] == pytest.approx(1.545)
    assert out["exit_fill"][0] == pytest.approx(1.95)
    cents = {k: round(float(v[0]), 2) for k, v in out.items()}
    assert cents["gross_pnl"] == 100.00
    assert cents["cost_spread"] == 15.00  # (0.035 + 0.04) × 200
    assert cents["cost_slippage"] == 4.00
    assert cents["cost_commission"] == 2.60
    assert cents["cost_fees"] == 0.08
    assert cents["cost_total"] == 21.68
    assert cents["net_pnl"] == 78.32


def test_losing_trade_and_worthless_exit_never_sells_below_zero():
    costs = CostModel(0.03, 0.0, 0.65, 0.0, 0.02)
    out = itemize(np.array([0.80, 0.80]), np.array([0.01, 0.0]), np.array([1, 1]), costs)
    # exit at mid 0.01: spread capped at 0.01, no room for slippage, fill 0
    np.testing.assert_allclose(out["exit_fill"], [0.0, 0.0])
    np.testing.assert_allclose(out["cost_spread"], [(0.03 + 0.01) * 100, 0.03 * 100])
    np.testing.assert_allclose(out["cost_slippage"], [2.0, 2.0])
    # net: (0 − 0.85) × 100 − 1.30 = −86.30 for both
    np.testing.assert_allclose(np.round(out["net_pnl"], 2), [-86.30, -86.30])
    np.testing.assert_allclose(out["gross_pnl"] - out["cost_total"], out["net_pnl"], atol=1e-12)


def test_from_config_and_round_trip_per_share():
    cfg = BacktestConfig(half_spread_abs=0.01, half_spread_pct=0.02, slippage_abs=0.005)
    c = CostModel.from_config(cfg)
    assert c.commission_per_contract == 0.65 and c.fees_per_contract == 0.02
    # 2 × (0.01 + 0.02 × 2 + 0.005) + 2 × 0.67 / 100
    assert c.round_trip_per_share(2.0) == pytest.approx(0.11 + 0.0134)

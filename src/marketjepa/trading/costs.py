"""Transaction costs of a long option round trip, itemized per trade (DESIGN §5).

Per share (the option's quoted price), with ``m`` the mid price::

    half_spread(m) = half_spread_abs + half_spread_pct · m   (or the quoted (ask − bid)/2)
    entry fill     = m_entry + half_spread(m_entry) + slippage_abs          (buy at the ask)
    exit fill      = m_exit  − half_spread(m_exit)  − slippage_abs, floored at 0 (sell at the bid)

The exit spread and slippage are capped so a fill is never negative (a worthless option is
abandoned at 0, not sold at a negative price). Per contract and side, ``commission_per_contract``
and ``fees_per_contract`` are charged (both sides always, conservatively, even for an option
that expires worthless). With ``n`` contracts and multiplier 100::

    gross P&L = (m_exit − m_entry) · 100 · n
    net P&L   = (exit fill − entry fill) · 100 · n − 2 · n · (commission + fees)
              = gross − spread − slippage − commission − fees
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from marketjepa.config import BacktestConfig

MULTIPLIER = 100


@dataclass(frozen=True)
class CostModel:
    half_spread_abs: float = 0.02
    half_spread_pct: float = 0.0
    commission_per_contract: float = 0.65
    fees_per_contract: float = 0.02
    slippage_abs: float = 0.0

    @classmethod
    def from_config(cls, cfg: BacktestConfig) -> CostModel:
        return cls(
            half_spread_abs=cfg.half_spread_abs,
            half_spread_pct=cfg.half_spread_pct,
            commission_per_contract=cfg.commission_per_contract,
            fees_per_contract=cfg.fees_per_contract,
            slippage_abs=cfg.slippage_abs,
        )

    def half_spread(self, mid: np.ndarray, quoted: np.ndarray | None = None) -> np.ndarray:
        """Assumed half-spread, or the ``quoted`` one ((ask − bid)/2) where it is finite."""
        assumed = self.half_spread_abs + self.half_spread_pct * np.asarray(mid, dtype=np.float64)
        if quoted is None:
            return assumed
        quoted = np.asarray(quoted, dtype=np.float64)
        return np.where(np.isfinite(quoted), quoted, assumed)

    def entry_fill(self, mid: np.ndarray, quoted: np.ndarray | None = None) -> np.ndarray:
        """Price paid per share when buying at ``mid`` (at the ask when ``quoted``)."""
        mid = np.asarray(mid, dtype=np.float64)
        return mid + self.half_spread(mid, quoted) + self.slippage_abs

    def exit_parts(
        self, mid: np.ndarray, quoted: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(fill, spread, slippage) per share when selling at ``mid``; fill >= 0."""
        mid = np.asarray(mid, dtype=np.float64)
        spread = np.minimum(self.half_spread(mid, quoted), mid)
        slip = np.minimum(self.slippage_abs, mid - spread)
        return mid - spread - slip, spread, slip

    def round_trip_per_share(self, mid: np.ndarray) -> np.ndarray:
        """Costs per share of buying and selling at about the same ``mid`` (breakeven use)."""
        mid = np.asarray(mid, dtype=np.float64)
        fixed = 2.0 * (self.commission_per_contract + self.fees_per_contract) / MULTIPLIER
        return 2.0 * (self.half_spread(mid) + self.slippage_abs) + fixed


def itemize(
    entry_mid: np.ndarray,
    exit_mid: np.ndarray,
    contracts: np.ndarray,
    costs: CostModel,
    entry_quoted: np.ndarray | None = None,
    exit_quoted: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Fills, itemized costs ($ per trade) and gross/net P&L ($) for each round trip.

    ``entry_quoted``/``exit_quoted``: quoted half-spreads (NaN = none: assumed one)."""
    entry_mid = np.asarray(entry_mid, dtype=np.float64)
    exit_mid = np.asarray(exit_mid, dtype=np.float64)
    n = np.asarray(contracts, dtype=np.float64) * MULTIPLIER
    entry_spread = costs.half_spread(entry_mid, entry_quoted)
    entry_fill = entry_mid + entry_spread + costs.slippage_abs
    exit_fill, exit_spread, exit_slip = costs.exit_parts(exit_mid, exit_quoted)
    n_contracts = np.asarray(contracts, dtype=np.float64)
    commission = 2.0 * costs.commission_per_contract * n_contracts
    fees = 2.0 * costs.fees_per_contract * n_contracts
    spread = (entry_spread + exit_spread) * n
    slippage = (costs.slippage_abs + exit_slip) * n
    gross = (exit_mid - entry_mid) * n
    net = (exit_fill - entry_fill) * n - commission - fees
    return {
        "entry_fill": entry_fill,
        "exit_fill": exit_fill,
        "cost_spread": spread,
        "cost_slippage": slippage,
        "cost_commission": commission,
        "cost_fees": fees,
        "cost_total": spread + slippage + commission + fees,
        "gross_pnl": gross,
        "net_pnl": net,
    }

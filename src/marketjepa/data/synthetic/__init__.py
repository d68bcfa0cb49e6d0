"""The embedded synthetic SPY + options market (DESIGN §2.0).

:func:`generate_market` writes raw Polygon-style files plus the hidden truth;
:func:`simulate_market` gives the same market as in-memory arrays.
"""

from marketjepa.data.synthetic.generate import generate_market
from marketjepa.data.synthetic.market import SyntheticMarket, simulate_market

__all__ = ["SyntheticMarket", "generate_market", "simulate_market"]

"""marketjepa: LeJEPA-style self-supervised encoders for intraday market data."""

__version__ = "0.1.0"

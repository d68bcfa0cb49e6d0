"""Entry policy, options backtester, costs and performance metrics."""

"""Embedding diagnostics, probes, baselines and bootstrap confidence intervals."""

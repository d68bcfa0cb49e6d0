"""Mechanics of benchmarks/oracle_input.py (issue #12, fifth round): the oracle channels are
the Bayes filter's posterior standardized with training-row moments only."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="module")
def oracle():
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "oracle_input.py"
    spec = importlib.util.spec_from_file_location("oracle_input_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _truth(p0: np.ndarray) -> dict[str, np.ndarray]:
    return {"regime": np.zeros(p0.size, np.int8), "filter_p0": p0, "filter_p1": 1.0 - p0}


def test_oracle_channels_use_training_moments_only(oracle):
    p0 = np.array([0.2, 0.4, 0.6, 0.9, np.nan])
    split = np.array([0, 0, 0, 1, 2])
    z = oracle.oracle_channels(_truth(p0), split)
    mu, sd = 0.4, np.std([0.2, 0.4, 0.6])
    np.testing.assert_allclose(z[:4, 0], (p0[:4] - mu) / sd, atol=1e-6)
    np.testing.assert_allclose(z[:4, 1], -(p0[:4] - mu) / sd, atol=1e-6)
    assert z.dtype == np.float32 and z[4].tolist() == [0.0, 0.0]  # no posterior: 0
    # moving a validation or test row's posterior leaves every other row alone
    moved = p0.copy()
    moved[3] = 0.1
    np.testing.assert_array_equal(oracle.oracle_channels(_truth(moved), split)[:3], z[:3])


def test_oracle_channels_need_the_filter_posterior(oracle):
    with pytest.raises(SystemExit, match="filter posterior"):
        oracle.oracle_channels({"regime": np.zeros(3)}, np.zeros(3))
    with pytest.raises(SystemExit, match="filter posterior"):
        oracle.oracle_channels(None, np.zeros(3))

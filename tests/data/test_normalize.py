"""Normalizer: train-only fit, robust/standard scale, clipping, NaN → 0, JSON round trip."""

import numpy as np
import pytest

from marketjepa.data.normalize import IQR_TO_SIGMA, Normalizer


def test_robust_fit_uses_train_rows_only_and_clips(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, (20000, 3))
    x[:, 2] = 7.0  # constant → scale falls back to 1
    x[::10, 1] = np.nan
    train = np.arange(20000) < 15000
    x[~train] += 1000.0  # wild val/test values must not move the fit
    norm = Normalizer.fit(x, ["a", "b", "c"], train, "robust", clip_z=4.0)
    q = np.nanquantile(x[train], [0.25, 0.5, 0.75], axis=0)
    np.testing.assert_allclose(norm.center[:2], q[1, :2])
    np.testing.assert_allclose(norm.scale[:2], (q[2, :2] - q[0, :2]) / IQR_TO_SIGMA)
    assert norm.scale[0] == pytest.approx(2.0, rel=0.03)  # σ units for Gaussian data
    assert norm.center[2] == 7.0 and norm.scale[2] == 1.0
    z = norm.apply(x)
    assert z.dtype == np.float32
    val_ok = ~train & np.isfinite(x[:, 1])
    assert (z[~train, 0] == 4.0).all() and (z[val_ok, 1] == 4.0).all()  # clipped at +clip_z
    assert (z[::10, 1] == 0).all()  # NaN → 0
    norm.save(tmp_path / "n.json")
    back = Normalizer.load(tmp_path / "n.json")
    assert back.names == ["a", "b", "c"] and np.array_equal(back.center, norm.center)
    assert back.to_dict()["fitted_on"] == "train"
    np.testing.assert_array_equal(back.apply(x), z)


def test_standard_fit():
    rng = np.random.default_rng(1)
    x = rng.normal(-1.0, 0.5, (5000, 1))
    norm = Normalizer.fit(x, ["a"], np.ones(5000, bool), "standard", clip_z=5.0)
    assert norm.center[0] == pytest.approx(x.mean()) and norm.scale[0] == pytest.approx(x.std())
    z = norm.apply(x)
    assert abs(float(z.mean())) < 1e-5 and float(z.std()) == pytest.approx(1.0, abs=1e-3)

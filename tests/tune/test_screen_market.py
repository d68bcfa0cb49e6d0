"""`screen_market`: the configuration and prepared market every lever-screen benchmark uses."""

from __future__ import annotations

import numpy as np

from marketjepa.config import load_config
from marketjepa.tune.levers import screen_market


def test_screen_market_builds_the_screen_config_and_prepares_the_market(tmp_path):
    sets = [
        f"data.prepared_dir={tmp_path / 'prepared'}",
        f"synth.out_dir={tmp_path / 'raw'}",
        "synth.end=2022-02-28",
        "model.causal=true",
    ]
    cfg, data = screen_market("tiny", sets, epochs=3)
    assert cfg.train.epochs == 3 and cfg.train.device == "cpu"
    assert not cfg.train.watchdog.enabled and cfg.model.causal
    x = np.asarray(data.features)
    assert x.shape == (len(data.split), len(data.feature_names)) and data.truth is not None
    # without an epoch count the preset's stays, and a second call reuses the prepared data
    cfg2, data2 = screen_market("tiny", sets)
    assert cfg2.train.epochs == load_config("tiny").train.epochs == 2
    np.testing.assert_array_equal(np.asarray(data2.features), x)

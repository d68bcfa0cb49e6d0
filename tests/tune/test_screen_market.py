"""The lever screens' shared setup: `screen_market` (configuration and prepared market) and
`screen_pretraining` (the per-epoch validation latent share around one pretraining)."""

from __future__ import annotations

import numpy as np
import pytest

from marketjepa.config import load_config
from marketjepa.tune.levers import screen_market, screen_pretraining


@pytest.fixture(scope="module")
def tiny_sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("screen")
    return [
        f"data.prepared_dir={root / 'prepared'}",
        f"synth.out_dir={root / 'raw'}",
        "synth.end=2022-02-28",
        "model.causal=true",
        "train.max_steps_per_epoch=2",
        "train.max_val_windows=64",
    ]


def test_screen_market_builds_the_screen_config_and_prepares_the_market(tiny_sets):
    cfg, data = screen_market("tiny", tiny_sets, epochs=3)
    assert cfg.train.epochs == 3 and cfg.train.device == "cpu"
    assert not cfg.train.watchdog.enabled and cfg.model.causal
    x = np.asarray(data.features)
    assert x.shape == (len(data.split), len(data.feature_names)) and data.truth is not None
    # without an epoch count the preset's stays, and a second call reuses the prepared data
    cfg2, data2 = screen_market("tiny", tiny_sets)
    assert cfg2.train.epochs == load_config("tiny").train.epochs == 2
    np.testing.assert_array_equal(np.asarray(data2.features), x)


def test_screen_pretraining_prints_the_share_before_and_after_every_epoch(
    tiny_sets, tmp_path, capsys
):
    cfg, data = screen_market("tiny", tiny_sets, epochs=2)
    seen: list = []
    extra = np.zeros((len(data.split), 1), np.float32)  # one more (empty) input channel
    x = np.concatenate([np.asarray(data.features, np.float32), extra], axis=1)
    screen_pretraining(
        cfg, data, tmp_path / "variant", features=x,
        feature_names=[*data.feature_names, "extra"],
        after_init=lambda enc: seen.append(("init", enc.patch.proj.in_features)),
        after_epoch=lambda epoch, enc: seen.append(("epoch", epoch)),
    )  # fmt: skip
    out = capsys.readouterr().out
    assert "variant epoch 0 (random init): latent share " in out
    assert "variant epoch 1: latent share " in out and "variant epoch 2: latent share " in out
    patch = cfg.windows.patch_len
    assert seen == [("init", patch * x.shape[1]), ("epoch", 1), ("epoch", 2)]
    assert (tmp_path / "variant" / "pretrain.json").exists()

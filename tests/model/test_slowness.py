"""The slowness auxiliary: its math, its wiring into the LeJEPA loss, its validation."""

from __future__ import annotations

import pytest
import torch

from helpers.tiny import TINY_MODEL, assert_aux_term_wired
from marketjepa.config import load_config
from marketjepa.data.windows import WindowSpec
from marketjepa.model.jepa import LeJEPA
from marketjepa.model.slowness import slowness_loss


def test_slowness_is_the_mean_squared_change_over_the_lag_by_hand():
    # one window, 3 tokens of d = 2: changes over lag 1 are (1, 0), (0, 2)
    z = torch.tensor([[[0.0, 0.0], [1.0, 0.0], [1.0, 2.0]]])
    assert slowness_loss(z, 1).item() == pytest.approx((1 + 0 + 0 + 4) / 4)
    # lag 2: the only pair is (1, 2) − (0, 0)
    assert slowness_loss(z, 2).item() == pytest.approx((1 + 4) / 2)
    assert slowness_loss(torch.ones(4, 5, 3), 1).item() == 0.0  # constant tokens: no change


def test_slowness_rejects_bad_shapes_and_lags():
    with pytest.raises(ValueError, match="B, C, d"):
        slowness_loss(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="lag 3"):
        slowness_loss(torch.zeros(2, 3, 4), 3)


def test_aux_slowness_adds_its_weighted_term_to_the_loss_and_trains_the_encoder():
    cfg = load_config("tiny", overrides=[*TINY_MODEL, "model.causal=true", "loss.aux_slowness=2"])
    spec = WindowSpec.from_config(cfg.windows)
    torch.manual_seed(0)
    model = LeJEPA(4, spec, cfg.model, cfg.loss)
    ctx, tgt = torch.randn(8, spec.context_len, 4), torch.randn(8, spec.target_len, 4)
    out = model(ctx, tgt, step=0)
    _, tokens = model.embed(ctx)
    torch.testing.assert_close(out["aux_slowness"], slowness_loss(tokens, 1))
    assert_aux_term_wired(model, out, "aux_slowness", 2.0)


def test_slowness_lag_must_fit_the_context():
    with pytest.raises(ValueError, match="slowness_lag"):
        load_config("tiny", overrides=["loss.aux_slowness=1", "loss.slowness_lag=999"])

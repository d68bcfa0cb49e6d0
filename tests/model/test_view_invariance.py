"""Cross-channel view invariance: its math, its wiring into the LeJEPA loss, its validation."""

from __future__ import annotations

import pytest
import torch

from helpers.tiny import assert_aux_term_wired, small_model_cfg
from marketjepa.config import ConfigError, LossConfig, load_config
from marketjepa.data.windows import WindowSpec
from marketjepa.errors import MarketJepaError
from marketjepa.model.inputs import only_mask
from marketjepa.model.jepa import LeJEPA
from marketjepa.model.view_invariance import view_invariance_loss

NAMES = ["ret_1", "volume_z", "skew_25d", "put_call_volume", "tod_sin"]
STOCK, OPTIONS, CALENDAR = [0, 1], [2, 3], [4]
NF = len(NAMES)
SPEC = WindowSpec(patch_len=4, context_patches=5, gap_patches=1, target_patches=3)


def test_view_invariance_is_the_mean_squared_distance_to_the_views_mean_by_hand():
    # one window, two views of d = 2: mean (1, 1); distances (−1, −1) and (1, 1)
    z = torch.tensor([[[0.0, 0.0], [2.0, 2.0]]])
    assert view_invariance_loss(z).item() == pytest.approx((1 + 1 + 1 + 1) / 4)
    # three views: mean (1, 0); squared distances 1, 0, 1 on the first coordinate
    z3 = torch.tensor([[[0.0, 0.0], [1.0, 0.0], [2.0, 0.0]]])
    assert view_invariance_loss(z3).item() == pytest.approx(2 / 6)
    assert view_invariance_loss(torch.ones(4, 3, 5)).item() == 0.0  # views agree: no loss


def test_view_invariance_rejects_a_single_view_or_bad_shapes():
    with pytest.raises(ValueError, match="V >= 2"):
        view_invariance_loss(torch.zeros(4, 1, 3))
    with pytest.raises(ValueError, match="B, V, d"):
        view_invariance_loss(torch.zeros(4, 3))


def test_view_masks_keep_only_the_named_channels():
    assert only_mask(["stock"], NAMES, NF, "opt").tolist() == [1, 1, 0, 0, 0]
    assert only_mask(["options", "tod_sin"], NAMES, NF, "opt").tolist() == [0, 0, 1, 1, 1]
    with pytest.raises(MarketJepaError, match="loss.view_channels: 'iv_atm' matches no"):
        only_mask(["iv_atm"], NAMES, NF, "loss.view_channels")


def _model(weight: float, views: list[list[str]] | None = None) -> LeJEPA:
    extra = {"view_channels": views} if views is not None else {}
    loss = LossConfig(num_slices=8, ema=False, aux_view_invariance=weight, **extra)
    torch.manual_seed(0)
    return LeJEPA(NF, SPEC, small_model_cfg(causal=True), loss, NAMES)


def test_aux_view_invariance_adds_its_weighted_term_and_trains_the_encoder():
    m = _model(2.0)
    ctx = torch.randn(6, SPEC.context_len, NF, generator=torch.Generator().manual_seed(1))
    tgt = torch.randn(6, SPEC.target_len, NF)
    gap = torch.randn(6, SPEC.gap_len, NF)
    out = m(ctx, tgt, step=0, gap=gap)
    # by hand: the full window, the stock-only window, the options-only window
    z_full = m.embed(ctx)[0]
    keep_stock, keep_opt = torch.zeros(NF), torch.zeros(NF)
    keep_stock[STOCK], keep_opt[OPTIONS] = 1.0, 1.0
    z_stock, z_opt = m.embed(ctx * keep_stock)[0], m.embed(ctx * keep_opt)[0]
    mean = (z_full + z_stock + z_opt) / 3
    expect = torch.stack([z_full - mean, z_stock - mean, z_opt - mean]).square().mean()
    torch.testing.assert_close(out["aux_view_invariance"], expect)
    assert_aux_term_wired(m, out, "aux_view_invariance", 2.0)


def test_a_channel_view_does_not_read_the_channels_outside_it():
    m = _model(1.0).eval()
    ctx = torch.randn(3, SPEC.context_len, NF, generator=torch.Generator().manual_seed(2))
    moved = ctx.clone()
    moved[:, :, OPTIONS + CALENDAR] += 3.0 * torch.randn_like(moved[:, :, OPTIONS + CALENDAR])
    tgt, gap = torch.randn(3, SPEC.target_len, NF), torch.randn(3, SPEC.gap_len, NF)
    with torch.no_grad():
        stock_view = m.view_keep[0]
        torch.testing.assert_close(m.embed(moved * stock_view)[0], m.embed(ctx * stock_view)[0])
        # teeth: the full view and the options view do move, and so does the term
        assert (m.embed(moved)[0] - m.embed(ctx)[0]).abs().amax() > 1e-3
        a = m(ctx, tgt, step=0, gap=gap)["aux_view_invariance"]
        b = m(moved, tgt, step=0, gap=gap)["aux_view_invariance"]
        assert abs(a.item() - b.item()) > 1e-6


def test_view_invariance_off_leaves_the_loss_alone():
    m = _model(0.0)
    assert m.view_keep is None
    ctx, tgt = torch.randn(4, SPEC.context_len, NF), torch.randn(4, SPEC.target_len, NF)
    out = m(ctx, tgt, step=0, gap=torch.randn(4, SPEC.gap_len, NF))
    assert "aux_view_invariance" not in out
    torch.testing.assert_close(out["loss"], out["pred"] + m.loss_cfg.lambda_sigreg * out["sigreg"])


def test_view_channels_must_name_something_when_the_term_is_on():
    with pytest.raises(ConfigError, match="view_channels"):
        load_config("tiny", overrides=["loss.aux_view_invariance=1", "loss.view_channels=[]"])
    with pytest.raises(ConfigError, match="view_channels"):
        load_config(
            "tiny", overrides=["loss.aux_view_invariance=1", "loss.view_channels=[[stock],[]]"]
        )
    with pytest.raises(MarketJepaError, match="loss.view_channels"):
        _model(1.0, [["stock"], ["iv_atm"]])

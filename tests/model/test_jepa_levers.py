"""Issue #12 levers: causal attention, the full-sequence target path, multi-scale targets."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from helpers.tiny import small_model_cfg
from marketjepa.config import ConfigError, LossConfig, load_config
from marketjepa.data.windows import WindowDataset, WindowSpec
from marketjepa.model.encoder import PatchEncoder
from marketjepa.model.jepa import LeJEPA

SPEC = WindowSpec(patch_len=4, context_patches=5, gap_patches=2, target_patches=3)
NF = 6


def _windows(b: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ctx = torch.randn(b, SPEC.context_len, NF, generator=g)
    gap = torch.randn(b, SPEC.gap_len, NF, generator=g)
    tgt = torch.randn(b, SPEC.target_len, NF, generator=g)
    return ctx, gap, tgt


@pytest.mark.parametrize("positions", ["learned", "rotary"])
def test_causal_attention_earlier_tokens_ignore_later_patches(positions):
    torch.manual_seed(0)
    enc = PatchEncoder(NF, SPEC, small_model_cfg(causal=True, positions=positions)).eval()
    x = _windows()[0]
    y = x.clone()
    y[:, 3 * SPEC.patch_len :] += 5.0 * torch.randn_like(y[:, 3 * SPEC.patch_len :])
    a, b = enc(x), enc(y)
    torch.testing.assert_close(a[:, :3], b[:, :3])  # patches 0-2 did not move
    assert (a[:, 3:] - b[:, 3:]).abs().amax() > 1e-3  # later ones did
    # and the bidirectional encoder does let the future in (the test has teeth)
    torch.manual_seed(0)
    bi = PatchEncoder(NF, SPEC, small_model_cfg(causal=False, positions=positions)).eval()
    assert (bi(x)[:, :3] - bi(y)[:, :3]).abs().amax() > 1e-3


@pytest.mark.parametrize("ema", [False, True])
def test_sequence_target_path_is_one_stop_grad_pass_over_context_gap_target(ema):
    loss = LossConfig(lambda_sigreg=0.5, num_slices=16, ema=ema, target_path="sequence")
    torch.manual_seed(0)
    m = LeJEPA(NF, SPEC, small_model_cfg(causal=True), loss)
    ctx, gap, tgt = _windows()
    targets = m.encode_target(tgt, ctx, gap)
    enc = m.target_encoder if ema else m.encoder
    full = enc(torch.cat([ctx, gap, tgt], dim=1))
    assert full.shape[1] == SPEC.context_patches + SPEC.gap_patches + SPEC.target_patches
    torch.testing.assert_close(targets, full[:, -SPEC.target_patches :])
    assert not targets.requires_grad  # stop-gradient (or EMA) target
    # the target tokens saw everything before them: changing the context moves them
    moved = m.encode_target(tgt, ctx + 1.0, gap)
    assert (moved - targets).abs().amax() > 1e-3
    # with causal attention the context tokens of the full pass are the context pass's
    torch.testing.assert_close(full[:, : SPEC.context_patches], enc(ctx), atol=1e-5, rtol=1e-5)
    # gradient reaches the context encoder only through the prediction/SIGReg path
    out = m(ctx, tgt, step=0, gap=gap)
    out["loss"].backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in m.encoder.parameters())
    with pytest.raises(ValueError, match="gap"):
        m.encode_target(tgt, ctx, None)


def test_separate_target_path_encodes_the_target_alone():
    loss = LossConfig(lambda_sigreg=0.5, num_slices=16, ema=False)
    torch.manual_seed(0)
    m = LeJEPA(NF, SPEC, small_model_cfg(causal=True), loss)
    ctx, gap, tgt = _windows()
    torch.testing.assert_close(m.encode_target(tgt, ctx, gap), m.encoder(tgt))
    torch.testing.assert_close(m.encode_target(tgt, ctx + 1.0, gap), m.encoder(tgt))


def test_multi_scale_targets_are_means_over_prefix_spans():
    scales = [1, 3]
    loss = LossConfig(lambda_sigreg=0.0, num_slices=16, ema=False, target_scales=scales)
    torch.manual_seed(0)
    m = LeJEPA(NF, SPEC, small_model_cfg(), loss)
    ctx, gap, tgt = _windows()
    out = m(ctx, tgt, step=0, gap=gap)
    with torch.no_grad():
        preds = m.predictor(m.embed(ctx)[1])
        targets = m.encode_target(tgt, ctx, gap)
        expect = [F.mse_loss(preds[:, :s].mean(1), targets[:, :s].mean(1)) for s in scales]
    torch.testing.assert_close(out["pred_per_scale"], torch.stack(expect))
    torch.testing.assert_close(out["pred"].detach(), torch.stack(expect).mean())


def test_lever_config_validation_and_gap_gather():
    with pytest.raises(ConfigError, match="target_scales"):
        load_config("tiny", overrides=["loss.target_scales=[1,99]"])
    with pytest.raises(ConfigError, match="target_scales"):
        load_config("tiny", overrides=["loss.target_scales=[0]"])
    cfg = load_config("tiny", overrides=["model.causal=true", "loss.target_path=sequence"])
    assert cfg.model.causal and cfg.loss.target_path == "sequence"
    x = torch.arange(200 * 2, dtype=torch.float32).reshape(200, 2)
    ds = WindowDataset(x, SPEC)
    gap = ds.gap([0, 7])
    torch.testing.assert_close(
        gap[1], x[7 + SPEC.context_len : 7 + SPEC.context_len + SPEC.gap_len]
    )


def test_pooled_predictor_input_sees_only_the_probed_embedding():
    loss = LossConfig(lambda_sigreg=0.0, num_slices=16, ema=False)
    torch.manual_seed(0)
    m = LeJEPA(NF, SPEC, small_model_cfg(causal=True, predictor_input="pooled"), loss)
    ctx, gap, tgt = _windows()
    pooled, tokens = m.embed(ctx)
    preds = m.predictor(pooled[:, None])
    assert preds.shape == (4, SPEC.target_patches, 16)
    expect = F.mse_loss(preds, m.encode_target(tgt, ctx, gap), reduction="none").mean((0, 2))
    torch.testing.assert_close(m(ctx, tgt, step=0)["pred_per_horizon"], expect.detach())
    with pytest.raises(ValueError, match="expects 1 context tokens"):
        m.predictor(tokens)


def test_block_masked_context_targets_predict_a_block_from_the_tokens_before_it():
    spec = WindowSpec(patch_len=4, context_patches=8, gap_patches=1, target_patches=2)
    loss = LossConfig(lambda_sigreg=0.0, num_slices=16, ema=False, context_mask_patches=3)
    torch.manual_seed(0)
    m = LeJEPA(NF, spec, small_model_cfg(causal=True), loss)
    g = torch.Generator().manual_seed(0)
    ctx = torch.randn(4, spec.context_len, NF, generator=g)
    tgt = torch.randn(4, spec.target_len, NF, generator=g)
    starts = {m.mask_start(step, 0) for step in range(200)}
    assert starts == set(range(1, 8 - 3 + 1))  # every block inside the context
    assert m.mask_start(5, 0) == m.mask_start(5, 0)  # reproducible from (seed, step)
    i = m.mask_start(7, 0)
    out = m(ctx, tgt, step=7)
    tokens = m.embed(ctx)[1]
    with torch.no_grad():
        known, queries = torch.arange(i), torch.arange(i, i + 3)
        preds = m.predictor.predict_at(tokens[:, :i], known, queries)
        expect = F.mse_loss(preds, tokens[:, i : i + 3])
    torch.testing.assert_close(out["pred_mask"], expect)
    # the prediction uses only tokens before the block: perturbing the block's bars and
    # everything after leaves it unchanged (causal encoder)
    ctx2 = ctx.clone()
    ctx2[:, i * spec.patch_len :] += 3.0
    with torch.no_grad():
        preds2 = m.predictor.predict_at(m.embed(ctx2)[1][:, :i], known, queries)
    torch.testing.assert_close(preds, preds2)
    with pytest.raises(ConfigError, match="context_mask_patches"):
        load_config("tiny", overrides=["loss.context_mask_patches=2"])  # not causal

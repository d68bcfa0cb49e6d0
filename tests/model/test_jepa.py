"""LeJEPA forward/loss: finiteness, gradient flow, conventions, EMA, target path."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from helpers.tiny import small_model_cfg
from marketjepa.config import LossConfig, ModelConfig
from marketjepa.data.windows import WindowSpec
from marketjepa.model.encoder import pool_tokens
from marketjepa.model.jepa import LeJEPA
from marketjepa.model.sigreg import sample_directions, sigreg

SPEC = WindowSpec(patch_len=4, context_patches=5, gap_patches=1, target_patches=3)
NF = 6
MODEL = small_model_cfg(n_layers=1)


def _loss(**kw) -> LossConfig:
    base = dict(lambda_sigreg=0.3, num_slices=32, ema=False)
    base.update(kw)
    return LossConfig(**base)


def _model(loss: LossConfig, model: ModelConfig = MODEL, seed: int = 0) -> LeJEPA:
    torch.manual_seed(seed)
    return LeJEPA(NF, SPEC, model, loss)


def _batch(b: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ctx = torch.randn(b, SPEC.context_len, NF, generator=g)
    tgt = torch.randn(b, SPEC.target_len, NF, generator=g)
    return ctx, tgt


def _grad_norm(module: torch.nn.Module) -> float:
    return sum(float(p.grad.norm()) for p in module.parameters() if p.grad is not None)


@pytest.mark.parametrize("ema", [False, True])
def test_forward_finite_and_gradients_flow(ema):
    m = _model(_loss(ema=ema, aux_reconstruction=0.5))
    out = m(*_batch(), step=0)
    for key in ("loss", "pred", "sigreg", "aux_recon"):
        assert out[key].ndim == 0 and torch.isfinite(out[key]), key
    assert out["z_probe"].shape == (8, 16) and not out["z_probe"].requires_grad
    assert out["z_sigreg"].shape == (8, 16) and not out["z_sigreg"].requires_grad
    out["loss"].backward()
    assert _grad_norm(m.encoder) > 0 and _grad_norm(m.predictor) > 0
    assert _grad_norm(m.aux_head) > 0
    if ema:
        assert all(p.grad is None for p in m.target_encoder.parameters())


def test_embed_returns_pooled_and_tokens():
    m = _model(_loss())
    ctx, _ = _batch()
    pooled, tokens = m.embed(ctx)
    assert tokens.shape == (8, SPEC.context_patches, 16)
    torch.testing.assert_close(pooled, tokens[:, -1])
    out = m(ctx, _batch()[1], step=0)
    torch.testing.assert_close(out["z_probe"], pooled.detach())


def test_conventions_compute_documented_combination():
    lam = 0.3
    ctx, tgt = _batch()
    add = _model(_loss(convention="additive", lambda_sigreg=lam))
    lej = _model(_loss(convention="lejepa", lambda_sigreg=lam))
    lej.load_state_dict(add.state_dict())
    oa, ol = add(ctx, tgt, step=4), lej(ctx, tgt, step=4)
    torch.testing.assert_close(oa["pred"], ol["pred"])
    torch.testing.assert_close(oa["sigreg"], ol["sigreg"])
    torch.testing.assert_close(oa["loss"], oa["pred"] + lam * oa["sigreg"])
    torch.testing.assert_close(ol["loss"], (1 - lam) * ol["pred"] + lam * ol["sigreg"])
    # The seed's bookkeeping: 1.55 + 0.1·53.63 = 6.913.
    seed_total = 1.55 + 0.1 * 53.63
    assert seed_total == pytest.approx(6.91, abs=0.005)


def test_loss_terms_match_their_definitions():
    m = _model(_loss(sigreg_on="pooled", aux_reconstruction=0.25))
    ctx, tgt = _batch()
    out = m(ctx, tgt, step=7, seed=3)
    pooled, tokens = m.embed(ctx)
    targets = m.encoder(tgt)  # no EMA: the encoder itself
    preds = m.predictor(tokens)
    per_h = (preds - targets).square().mean(dim=(0, 2))
    torch.testing.assert_close(out["pred_per_horizon"], per_h.detach())
    torch.testing.assert_close(out["pred"], per_h.mean())
    a = sample_directions(16, 32, seed=3, step=7)
    torch.testing.assert_close(out["sigreg"], sigreg(pooled, a))
    recon = m.aux_head(tokens[:, -1])
    aux = F.mse_loss(recon, tgt[:, : SPEC.patch_len].reshape(8, -1))
    torch.testing.assert_close(out["aux_recon"], aux)
    torch.testing.assert_close(out["loss"], out["pred"] + 0.3 * out["sigreg"] + 0.25 * aux)


def test_single_horizon_predicts_pooled_target():
    for pooling in ("last", "mean"):
        cfg = MODEL.model_copy(update={"pooling": pooling})
        m = _model(_loss(multi_horizon=False), model=cfg)
        ctx, tgt = _batch()
        out = m(ctx, tgt, step=0)
        _, tokens = m.embed(ctx)
        ref = F.mse_loss(
            pool_tokens(m.predictor(tokens), pooling), pool_tokens(m.encoder(tgt), pooling)
        )
        torch.testing.assert_close(out["pred"], ref)
        assert "pred_per_horizon" not in out


def test_sigreg_on_tokens_and_both():
    ctx, tgt = _batch()
    mt = _model(_loss(sigreg_on="tokens"))
    ot = mt(ctx, tgt, step=2)
    assert ot["z_sigreg"].shape == (8 * SPEC.context_patches, 16)
    mb = _model(_loss(sigreg_on="both"))
    ob = mb(ctx, tgt, step=2)
    torch.testing.assert_close(ob["sigreg"], 0.5 * (ob["sigreg_pooled"] + ob["sigreg_tokens"]))
    torch.testing.assert_close(ob["sigreg_tokens"], ot["sigreg"].detach())


def test_directions_change_with_step_not_with_call():
    m = _model(_loss())
    ctx, tgt = _batch()
    with torch.no_grad():
        a, b, c = (m(ctx, tgt, step=s)["sigreg"] for s in (5, 5, 6))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_ema_update_rule():
    m = _model(_loss(ema=True, ema_momentum=0.9))
    assert m.target_encoder is not None
    for p_t, p in zip(m.target_encoder.parameters(), m.encoder.parameters(), strict=True):
        assert torch.equal(p_t, p) and not p_t.requires_grad
    with torch.no_grad():
        for p in m.encoder.parameters():
            p.add_(torch.randn_like(p))
    before = [p.clone() for p in m.target_encoder.parameters()]
    m.update_ema()
    for p_t, old, p in zip(
        m.target_encoder.parameters(), before, m.encoder.parameters(), strict=True
    ):
        torch.testing.assert_close(p_t, 0.9 * old + 0.1 * p)
    before = [p.clone() for p in m.target_encoder.parameters()]
    m.update_ema(momentum=0.5)
    for p_t, old, p in zip(
        m.target_encoder.parameters(), before, m.encoder.parameters(), strict=True
    ):
        torch.testing.assert_close(p_t, 0.5 * old + 0.5 * p)
    # Targets come from the EMA copy, without gradient.
    _, tgt = _batch()
    out_t = m.encode_target(tgt)
    assert not out_t.requires_grad
    torch.testing.assert_close(out_t, m.target_encoder(tgt))


def test_without_ema_target_path_shares_encoder_weights():
    m = _model(_loss(ema=False))
    assert m.target_encoder is None
    m.update_ema()  # no-op
    _, tgt = _batch()
    out_t = m.encode_target(tgt)
    assert out_t.requires_grad  # no stop-gradient
    torch.testing.assert_close(out_t, m.encoder(tgt))
    # The prediction loss sends gradient into the encoder through the target path too.
    m.zero_grad()
    m.encode_target(tgt).square().sum().backward()
    assert _grad_norm(m.encoder) > 0


def test_state_dict_round_trip():
    m = _model(_loss(ema=True, aux_reconstruction=0.1), seed=1)
    twin = _model(_loss(ema=True, aux_reconstruction=0.1), seed=2)
    twin.load_state_dict(m.state_dict(), strict=True)
    ctx, tgt = _batch()
    with torch.no_grad():
        torch.testing.assert_close(m(ctx, tgt, step=1)["loss"], twin(ctx, tgt, step=1)["loss"])


def test_seed_preset_forward():
    loss = LossConfig(num_slices=16)  # seed: λ 0.1 additive, EMA 0.996, multi-horizon
    assert (loss.lambda_sigreg, loss.convention, loss.ema, loss.ema_momentum) == (
        0.1,
        "additive",
        True,
        0.996,
    )
    spec = WindowSpec(30, 30, 0, 30)
    torch.manual_seed(0)
    m = LeJEPA(23, spec, ModelConfig(), loss)
    g = torch.Generator().manual_seed(0)
    ctx = torch.randn(2, spec.context_len, 23, generator=g)
    tgt = torch.randn(2, spec.target_len, 23, generator=g)
    with torch.no_grad():
        out = m(ctx, tgt, step=1)
    assert out["pred_per_horizon"].shape == (30,)
    assert out["z_probe"].shape == (2, 256)
    torch.testing.assert_close(out["loss"], out["pred"] + 0.1 * out["sigreg"])


def test_info_nce_matches_manual_cross_entropy():
    import math

    from marketjepa.model.infonce import info_nce

    g = torch.Generator().manual_seed(0)
    p, t = torch.randn(5, 8, generator=g), torch.randn(5, 8, generator=g)
    pn, tn = p / p.norm(dim=1, keepdim=True), t / t.norm(dim=1, keepdim=True)
    sims = (pn @ tn.T / 0.1).tolist()
    manual = -sum(sims[i][i] - math.log(sum(math.exp(v) for v in sims[i])) for i in range(5)) / 5
    assert info_nce(p, t, 0.1).item() == pytest.approx(manual, rel=1e-5)
    # aligned pairs give a much lower loss than shuffled ones
    assert info_nce(p, p, 0.1) < info_nce(p, p[torch.tensor([1, 2, 3, 4, 0])], 0.1)


def test_infonce_auxiliary_adds_to_the_loss():
    from marketjepa.config import load_config
    from marketjepa.data.windows import WindowSpec
    from marketjepa.model.jepa import LeJEPA

    cfg = load_config("tiny", overrides=["loss.aux_infonce=0.5"])
    spec = WindowSpec.from_config(cfg.windows)
    torch.manual_seed(0)
    model = LeJEPA(6, spec, cfg.model, cfg.loss)
    ctx = torch.randn(16, spec.context_len, 6)
    tgt = torch.randn(16, spec.target_len, 6)
    out = model(ctx, tgt, step=0)
    base = out["pred"] + cfg.loss.lambda_sigreg * out["sigreg"]
    assert torch.allclose(out["loss"], base + 0.5 * out["aux_infonce"], atol=1e-5)
    out["loss"].backward()


def test_sigreg_pooling_mean_regularizes_the_mean_of_tokens_not_the_probed_last_token():
    ctx, tgt = _batch()
    m = _model(_loss(sigreg_pooling="mean"))
    out = m(ctx, tgt, step=3)
    pooled, tokens = m.embed(ctx)
    torch.testing.assert_close(out["z_probe"], tokens[:, -1].detach())  # probes read last
    d = sample_directions(16, 32, 0, 3, tokens.device)
    cfg = m.loss_cfg
    ref = sigreg(tokens.mean(dim=1), d, cfg.num_knots, cfg.t_max)
    torch.testing.assert_close(out["sigreg"], ref)
    torch.testing.assert_close(out["z_sigreg"], tokens.mean(dim=1).detach())
    same = _model(_loss())(ctx, tgt, step=3)  # default: the probed (last-token) pooling
    torch.testing.assert_close(same["sigreg"], sigreg(pooled, d, cfg.num_knots, cfg.t_max))
    assert not torch.allclose(same["sigreg"], out["sigreg"])
    torch.testing.assert_close(same["pred"], out["pred"])  # only the SIGReg term differs

"""Future-summary auxiliary: the masked loss, the span means, causality, the hook."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers.tiny import TINY_MODEL
from marketjepa.config import ConfigError, LossConfig, ModelConfig, load_config
from marketjepa.data.windows import WindowDataset, WindowSpec, pretrain_starts
from marketjepa.errors import MarketJepaError
from marketjepa.model.future_summary import FutureMeanHead, FutureMeans, future_mean_loss
from marketjepa.model.jepa import LeJEPA
from marketjepa.train.pretrain import train_lejepa

SPEC = WindowSpec(patch_len=4, context_patches=5, gap_patches=1, target_patches=2)
NF = 3


def _market(n_days: int = 6, day_len: int = 40, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_days * day_len, NF)).astype(np.float32)
    session = np.repeat(np.arange(n_days), day_len)
    split = np.where(session < n_days - 2, 0, 1).astype(np.int8)
    return x, session, split


def test_masked_loss_matches_a_hand_computation():
    pred = torch.tensor([[[1.0, 2.0], [0.0, 0.0]], [[3.0, -1.0], [5.0, 5.0]]])
    target = torch.tensor([[[0.0, 0.0], [9.0, float("nan")]], [[1.0, 1.0], [4.0, 7.0]]])
    valid = torch.tensor([[True, False], [True, True]])
    # valid cells: (1² + 2²)/2 = 2.5, (2² + 2²)/2 = 4, (1² + 2²)/2 = 2.5 → 9 / 3
    torch.testing.assert_close(future_mean_loss(pred, target, valid), torch.tensor(3.0))
    none = torch.zeros(2, 2, dtype=torch.bool)
    assert future_mean_loss(pred, target, none).item() == 0.0
    with pytest.raises(ValueError, match="valid"):
        future_mean_loss(pred, target, valid[:, :1])


def test_future_means_are_span_means_masked_at_the_session_close():
    x, session, split = _market()
    fm = FutureMeans(x, session, split, spans=[3, 10])
    anchors = np.arange(x.shape[0])
    y, valid = fm(anchors)
    assert y.shape == (x.shape[0], 2, NF) and valid.shape == (x.shape[0], 2)
    for a in (0, 17, 26, 29, 36, 37, 39, 40, 229):
        for k, h in enumerate([3, 10]):
            inside = a + h < x.shape[0] and session[a + h] == session[a]
            assert bool(valid[a, k]) == inside, (a, h)
            if inside:
                want = x[a + 1 : a + h + 1].astype(np.float64).mean(0)
                np.testing.assert_allclose(y[a, k].numpy(), want, rtol=1e-5, atol=1e-6)
    # the last h bars of each day have no full span before the close
    assert int((~valid[:, 1]).sum()) == 6 * 10
    with pytest.raises(ValueError, match="spans"):
        FutureMeans(x, session, split, spans=[])
    sub, sub_valid = FutureMeans(x, session, split, spans=[3, 10], columns=[2, 0])(anchors)
    torch.testing.assert_close(sub, y[:, :, [2, 0]])
    assert torch.equal(sub_valid, valid)
    # standardized: training-split moments of the valid targets only
    z, z_valid = FutureMeans(x, session, split, spans=[3, 10], standardize=True)(anchors)
    assert torch.equal(z_valid, valid)
    for k in range(2):
        train_cells = y[(split == 0) & valid[:, k].numpy(), k].double()
        mu, sd = train_cells.mean(0), train_cells.std(0, correction=0)
        torch.testing.assert_close(
            z[:, k].double(), (y[:, k].double() - mu) / sd, atol=1e-4, rtol=0
        )


def test_embedding_ignores_bars_after_the_context_while_the_target_moves():
    x, session, split = _market()
    cfg = LossConfig(num_slices=8, ema=False, aux_future_mean=1.0, future_mean_spans=[4, 12])
    torch.manual_seed(0)
    model = LeJEPA(NF, SPEC, ModelConfig(d_model=16, n_heads=4, n_layers=1, ff_dim=32), cfg)
    model.eval()
    starts = np.array([0, 40, 85, 120])  # contexts never overlap a perturbed future
    anchors = SPEC.anchor(starts)
    y = x.copy()
    for a in anchors:  # perturb every bar after each anchor within its day
        y[a + 1 : (session[a] + 1) * 40] += 3.0
    pooled = [model.embed(WindowDataset(arr, SPEC).context(starts))[0] for arr in (x, y)]
    torch.testing.assert_close(pooled[0], pooled[1])
    t0, v0 = FutureMeans(x, session, split, cfg.future_mean_spans)(anchors)
    t1, v1 = FutureMeans(y, session, split, cfg.future_mean_spans)(anchors)
    assert torch.equal(v0, v1) and bool(v0.all())
    torch.testing.assert_close(t1 - t0, torch.full_like(t0, 3.0), atol=1e-5, rtol=0)


def test_hook_adds_the_weighted_loss_and_trains_encoder_and_head():
    x, session, split = _market()
    spans = [4, 12]
    base = dict(num_slices=8, ema=False, future_mean_spans=spans)
    mcfg = ModelConfig(d_model=16, n_heads=4, n_layers=1, ff_dim=32)
    data = WindowDataset(x, SPEC)
    starts = pretrain_starts(split, 0, SPEC)[:16]
    ctx, tgt = data.batch(starts)
    fut = FutureMeans(x, session, split, spans)(SPEC.anchor(starts))
    torch.manual_seed(0)
    plain = LeJEPA(NF, SPEC, mcfg, LossConfig(**base))
    for kind in ("linear", "mlp"):
        torch.manual_seed(0)
        m = LeJEPA(NF, SPEC, mcfg, LossConfig(**base, aux_future_mean=2.0, future_mean_head=kind))
        assert isinstance(m.future_head, FutureMeanHead)
        out = m(ctx, tgt, step=0, future=fut)
        pooled, _ = m.embed(ctx)
        want = future_mean_loss(m.future_head(pooled), *fut)
        torch.testing.assert_close(out["aux_future_mean"], want)
        ref = plain(ctx, tgt, step=0)
        torch.testing.assert_close(out["loss"], ref["loss"] + 2.0 * want)
        out["aux_future_mean"].backward()
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in m.encoder.parameters())
        assert all(p.grad is not None for p in m.future_head.parameters())
        with pytest.raises(ValueError, match="future span means"):
            m(ctx, tgt, step=0)
    assert plain.future_head is None


def test_config_validation():
    with pytest.raises(ConfigError, match="future_mean_spans"):
        load_config("tiny", overrides=["loss.aux_future_mean=1", "loss.future_mean_spans=[]"])
    with pytest.raises(ConfigError):
        load_config("tiny", overrides=["loss.aux_future_mean=1", "loss.future_mean_spans=[0]"])
    with pytest.raises(ConfigError):
        load_config("tiny", overrides=["loss.future_mean_head=deep"])


def test_pretraining_loop_runs_with_the_auxiliary_and_needs_sessions(tmp_path):
    x, session, split = _market(n_days=8, day_len=60)
    cfg = load_config(
        "tiny",
        overrides=[
            *TINY_MODEL,
            "train.batch_size=16",
            "train.epochs=1",
            "train.max_steps_per_epoch=2",
            "train.max_val_windows=32",
            "train.device=cpu",
            "loss.aux_future_mean=1.0",
            "loss.future_mean_spans=[5,20]",
        ],
    )
    out = train_lejepa(cfg, x, split, tmp_path / "run", session=session)
    assert out["status"] == "completed"
    with pytest.raises(MarketJepaError, match="session"):
        train_lejepa(cfg, x, split, tmp_path / "run2")
    sub = cfg.model_copy(
        update={"loss": cfg.loss.model_copy(update={"future_mean_features": ["c", "z"]})}
    )
    with pytest.raises(MarketJepaError, match=r"unknown feature\(s\) \['z'\]"):
        train_lejepa(
            sub, x, split, tmp_path / "run3", session=session, feature_names=["a", "b", "c"]
        )

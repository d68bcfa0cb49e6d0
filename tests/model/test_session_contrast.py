"""Same-session temporal contrast: the math, the same-session mask, the model hook, config."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from helpers.tiny import TINY_MODEL, small_model_cfg
from marketjepa.config import ConfigError, LossConfig, load_config
from marketjepa.data.windows import WindowSpec
from marketjepa.model.infonce import info_nce
from marketjepa.model.jepa import LeJEPA
from marketjepa.model.session_contrast import session_contrast
from marketjepa.train.pretrain import train_lejepa


def test_matches_a_hand_computed_case():
    # Unit vectors, τ = 1, two sessions of two anchors each.
    anchor = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 0.0]])
    target = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
    session = torch.tensor([5, 5, 9, 9])
    # rows 0, 1, 3: positive logit 1, one negative 0 → log(e + 1) − 1 = log(1 + e⁻¹);
    # row 2: positive t2·a2 = 0, negative t3·a2 = 1 → log(1 + e).
    easy, hard = math.log(1 + math.exp(-1)), math.log(1 + math.e)
    want = (3 * easy + hard) / 4
    got = session_contrast(anchor, target, session, temperature=1.0)
    assert got.item() == pytest.approx(want, rel=1e-6)
    # Scaling the inputs changes nothing (cosine similarities); τ divides the logits.
    got2 = session_contrast(3 * anchor, 0.5 * target, session, temperature=0.5)
    want2 = (3 * math.log(1 + math.exp(-2)) + math.log(1 + math.exp(2))) / 4
    assert got2.item() == pytest.approx(want2, rel=1e-6)


def test_cross_session_pairs_never_enter_the_denominator():
    torch.manual_seed(0)
    anchor = torch.randn(6, 4)
    target = torch.randn(6, 4)
    session = torch.tensor([0, 0, 0, 1, 1, 2])  # row 5 has no negative: left out
    loss = session_contrast(anchor, target, session)
    # = the per-session plain InfoNCEs, summed over the 5 rows with a negative.
    a, t = F.normalize(anchor, dim=-1), F.normalize(target, dim=-1)
    parts = [
        F.cross_entropy(a[r] @ t[r].T / 0.1, torch.arange(len(r)), reduction="sum")
        for r in ([0, 1, 2], [3, 4])
    ]
    assert loss.item() == pytest.approx(float(sum(parts)) / 5, rel=1e-5)
    # The whole-batch InfoNCE differs: there other days' targets are negatives.
    assert abs(loss.item() - info_nce(anchor, target).item()) > 1e-3
    # Only session 0 has negatives: the other rows' targets get no gradient at all, and
    # moving them leaves the loss unchanged.
    alone = torch.tensor([0, 0, 0, 1, 2, 3])
    tgt = target.clone().requires_grad_(True)
    grad = torch.autograd.grad(session_contrast(anchor, tgt, alone), tgt)[0]
    assert torch.count_nonzero(grad[3:]) == 0 and torch.count_nonzero(grad[:3]) > 0
    moved = target.clone()
    moved[3:] = 10 * torch.randn(3, 4)
    assert session_contrast(anchor, moved, alone).item() == pytest.approx(
        session_contrast(anchor, target, alone).item(), rel=1e-6
    )


def test_no_negative_anywhere_gives_zero_with_a_graph_and_bad_shapes_raise():
    a = torch.randn(3, 4, requires_grad=True)
    loss = session_contrast(a, torch.randn(3, 4), torch.tensor([0, 1, 2]))
    assert loss.item() == 0.0
    loss.backward()
    assert a.grad is not None and torch.count_nonzero(a.grad) == 0
    with pytest.raises(ValueError, match=r"\[B, d\]"):
        session_contrast(torch.randn(3, 4), torch.randn(3, 5), torch.tensor([0, 0, 1]))
    with pytest.raises(ValueError, match="session"):
        session_contrast(torch.randn(3, 4), torch.randn(3, 4), torch.tensor([0, 0]))


SPEC = WindowSpec(patch_len=4, context_patches=5, gap_patches=1, target_patches=2)


@pytest.mark.parametrize("which", ["predictor", "context"])
def test_model_adds_the_weighted_same_session_contrast(which):
    mcfg = small_model_cfg()
    base = dict(lambda_sigreg=0.5, ema=False, num_slices=16)
    torch.manual_seed(0)
    ctx, tgt = torch.randn(8, SPEC.context_len, 3), torch.randn(8, SPEC.target_len, 3)
    session = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    torch.manual_seed(0)
    plain = LeJEPA(3, SPEC, mcfg, LossConfig(**base))
    torch.manual_seed(0)
    cfg = LossConfig(
        **base,
        aux_session_contrast=2.0,
        session_contrast_temperature=0.2,
        session_contrast_anchor=which,
    )
    m = LeJEPA(3, SPEC, mcfg, cfg)
    out = m(ctx, tgt, step=0, session=session)
    pooled, tokens = m.embed(ctx)
    anchor = m.predictor(tokens).mean(1) if which == "predictor" else pooled
    want = session_contrast(anchor, m.encode_target(tgt).mean(1), session, 0.2)
    torch.testing.assert_close(out["aux_session_contrast"], want)
    ref = plain(ctx, tgt, step=0)
    torch.testing.assert_close(out["loss"], ref["loss"] + 2.0 * want)
    out["aux_session_contrast"].backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in m.encoder.parameters())
    with pytest.raises(ValueError, match="session id"):
        m(ctx, tgt, step=0)
    assert "aux_session_contrast" not in plain(ctx, tgt, step=0, session=session)


def test_config_needs_two_anchors_per_session_and_a_dividing_batch():
    with pytest.raises(ConfigError, match="anchors_per_session >= 2"):
        load_config("tiny", overrides=["loss.aux_session_contrast=1"])
    with pytest.raises(ConfigError, match="multiple of train.anchors_per_session"):
        load_config("tiny", overrides=["train.batch_size=30", "train.anchors_per_session=8"])
    with pytest.raises(ConfigError):
        load_config("tiny", overrides=["loss.session_contrast_temperature=0"])
    cfg = load_config(
        "tiny",
        overrides=[
            "train.batch_size=32",
            "train.anchors_per_session=8",
            "loss.aux_session_contrast=1",
        ],
    )
    assert cfg.loss.session_contrast_anchor == "predictor"
    for preset in ("tiny", "cpu", "seed", "gpu"):
        c = load_config(preset)
        assert c.train.anchors_per_session == 1 and c.loss.aux_session_contrast == 0


def test_pretraining_loop_runs_with_same_session_contrast(tmp_path):
    rng = np.random.default_rng(0)
    n_days, day_len = 10, 60
    x = rng.standard_normal((n_days * day_len, 3)).astype(np.float32)
    session = np.repeat(np.arange(n_days), day_len)
    split = np.where(session < n_days - 3, 0, 1).astype(np.int8)
    cfg = load_config(
        "tiny",
        overrides=[
            *TINY_MODEL,
            "train.batch_size=16",
            "train.anchors_per_session=4",
            "train.epochs=1",
            "train.max_steps_per_epoch=3",
            "train.max_val_windows=40",
            "train.device=cpu",
            "loss.aux_session_contrast=1.0",
        ],
    )
    rows: list[dict] = []
    out = train_lejepa(
        cfg,
        x,
        split,
        tmp_path / "run",
        session=session,
        on_epoch_end=lambda epoch, row, model: rows.append(row),
    )
    assert out["status"] == "completed" and out["steps"] == 3
    # the validation loss carries the contrast: loss − pred − λ·SIGReg > 0
    row = rows[-1]
    lam = cfg.loss.lambda_sigreg
    assert row["val_loss"] - row["val_pred"] - lam * row["val_sigreg"] > 0.05
    with pytest.raises(Exception, match="trading-day index"):
        train_lejepa(cfg, x, split, tmp_path / "no_sessions")

"""Patch encoder and predictor: shapes, pooling, positions, RevIN, rotary math."""

from __future__ import annotations

import pytest
import torch

from helpers.tiny import small_model_cfg
from marketjepa.config import ModelConfig
from marketjepa.data.windows import WindowSpec
from marketjepa.model.encoder import PatchEncoder, Rotary, apply_rotary
from marketjepa.model.patch import PatchEmbedding
from marketjepa.model.predictor import Predictor

SPEC = WindowSpec(patch_len=4, context_patches=6, gap_patches=2, target_patches=3)
F = 5


def _x(b: int = 3, patches: int = SPEC.context_patches, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, patches * SPEC.patch_len, F, generator=g)


@pytest.mark.parametrize("positions", ["learned", "rotary"])
@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_shapes_and_pooling(positions, pooling):
    torch.manual_seed(0)
    enc = PatchEncoder(F, SPEC, small_model_cfg(positions=positions, pooling=pooling)).eval()
    assert enc.d_model == 16 and enc.n_patches == SPEC.context_patches
    tokens = enc(_x())
    assert tokens.shape == (3, SPEC.context_patches, 16)
    pooled = enc.pool(tokens)
    assert pooled.shape == (3, 16)
    expected = tokens[:, -1] if pooling == "last" else tokens.mean(dim=1)
    torch.testing.assert_close(pooled, expected)
    # Shorter windows (targets) are encoded too.
    assert enc(_x(patches=2)).shape == (3, 2, 16)


@pytest.mark.parametrize("positions", ["learned", "rotary"])
def test_positions_break_permutation_symmetry(positions):
    torch.manual_seed(0)
    enc = PatchEncoder(F, SPEC, small_model_cfg(positions=positions)).eval()
    x = _x(b=1)
    p = SPEC.patch_len
    swapped = x.clone()
    swapped[:, :p], swapped[:, p : 2 * p] = x[:, p : 2 * p], x[:, :p]
    # Without positions a transformer is permutation-equivariant and the last token
    # would not change when two earlier patches swap.
    assert not torch.allclose(enc(x)[:, -1], enc(swapped)[:, -1], atol=1e-6)


def test_rotary_scores_depend_on_relative_position_only():
    rot = Rotary(8)
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(1, 1, 1, 8, generator=g), torch.randn(1, 1, 1, 8, generator=g)

    def score(pq: int, pk: int) -> float:
        cq, sq = rot(torch.tensor([pq]))
        ck, sk = rot(torch.tensor([pk]))
        return float((apply_rotary(q, cq, sq) * apply_rotary(k, ck, sk)).sum())

    assert score(3, 1) == pytest.approx(score(10, 8), rel=1e-5)
    assert score(3, 1) != pytest.approx(score(3, 2), rel=1e-3)
    cq, sq = rot(torch.tensor([7]))
    assert float(apply_rotary(q, cq, sq).norm()) == pytest.approx(float(q.norm()), rel=1e-6)


def test_learned_table_too_short_raises_and_bad_input_raises():
    enc = PatchEncoder(F, SPEC, small_model_cfg())
    with pytest.raises(ValueError, match="position table"):
        enc(_x(patches=SPEC.context_patches + 1))
    with pytest.raises(ValueError, match="expected input"):
        enc(torch.randn(2, 5, F))  # not a multiple of the patch length
    with pytest.raises(ValueError, match="expected input"):
        enc(torch.randn(2, 24, F + 1))


def test_patch_embedding_is_one_linear_map_of_flattened_patches():
    emb = PatchEmbedding(F, 4, 16)
    x = _x(b=2)
    ref = emb.proj(x.reshape(2, 6, 4 * F))
    torch.testing.assert_close(emb(x), ref)


def test_revin_is_invariant_to_per_window_affine_rescaling():
    torch.manual_seed(0)
    enc = PatchEncoder(F, SPEC, small_model_cfg(revin=True)).eval()
    x = _x()
    scale = torch.tensor([0.5, 2.0, 3.0, 1.0, 10.0])
    shift = torch.tensor([1.0, -2.0, 0.0, 5.0, 0.3])
    torch.testing.assert_close(enc(x * scale + shift), enc(x), rtol=1e-4, atol=1e-4)
    # A constant (masked) feature does not produce NaN.
    x[:, :, 0] = 0.0
    assert torch.isfinite(enc(x)).all()


def test_predictor_outputs_one_embedding_per_target_patch():
    for positions in ("learned", "rotary"):
        torch.manual_seed(0)
        cfg = small_model_cfg(positions=positions)
        pred = Predictor(SPEC, cfg)
        tokens = torch.randn(3, SPEC.context_patches, 16)
        out = pred(tokens)
        assert out.shape == (3, SPEC.target_patches, 16)
        # Queries differ only by position, so horizons get different predictions.
        assert not torch.allclose(out[:, 0], out[:, 1])
        assert pred.positions.tolist() == [0, 1, 2, 3, 4, 5, 8, 9, 10]
    with pytest.raises(ValueError, match="context tokens"):
        pred(torch.randn(3, 2, 16))


def test_seed_size_encoder_parameter_count():
    cfg = ModelConfig()  # the seed's d=256, 8 heads, 6 layers, ff 2048
    enc = PatchEncoder(23, WindowSpec(30, 30, 0, 30), cfg)
    n = sum(p.numel() for p in enc.parameters())
    per_layer = 4 * 256 * 256 + 4 * 256 + 2 * 256 * 2048 + 2048 + 256 + 4 * 256
    expected = 30 * 23 * 256 + 256 + 30 * 256 + 6 * per_layer + 2 * 256
    assert n == expected

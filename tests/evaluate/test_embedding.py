"""model/embedding.py: the one embedding loop gives what the loops it replaces gave."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers.tiny import TINY_MODEL, ar1_features
from marketjepa.config import load_config
from marketjepa.data.windows import WindowDataset, WindowSpec
from marketjepa.model import embedding
from marketjepa.model.encoder import PatchEncoder
from marketjepa.model.jepa import LeJEPA
from marketjepa.model.sigreg import sigreg_view


def _setup(sigreg_on: str = "pooled", sigreg_pooling: str = "same"):
    overrides = [
        *TINY_MODEL,
        f"loss.sigreg_on={sigreg_on}",
        f"loss.sigreg_pooling={sigreg_pooling}",
    ]
    cfg = load_config("tiny", overrides=overrides)
    spec = WindowSpec.from_config(cfg.windows)
    x = ar1_features(np.random.default_rng(0), 400, 3)
    ds = WindowDataset(x, spec)
    starts = np.arange(0, 400 - spec.total_len, 7, dtype=np.int64)
    return cfg, spec, ds, starts


@pytest.mark.parametrize("sigreg_on", ["pooled", "tokens"])
def test_embed_windows_matches_one_full_batch_forward(sigreg_on):
    """Batched, eval-mode, fp32 on CPU: the same rows as one forward pass over all windows."""
    cfg, spec, ds, starts = _setup(sigreg_on)
    torch.manual_seed(0)
    model = LeJEPA(3, spec, cfg.model, cfg.loss)
    pos = np.random.default_rng(1).integers(0, spec.context_patches, starts.size)
    new = embedding.embed_windows(model, ds, starts, pos, 16, True, token_view=sigreg_view)
    model.eval()
    with torch.no_grad():
        pooled, tokens = model.embed(ds.context(starts))
    want_sig = (
        sigreg_view(tokens.reshape(-1, model.d_model), starts.size, torch.as_tensor(pos))
        if sigreg_on == "tokens"
        else pooled
    )
    np.testing.assert_allclose(new[0], pooled.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(new[1], want_sig.numpy(), rtol=1e-5, atol=1e-6)
    if sigreg_on == "tokens":
        assert not np.array_equal(new[0], new[1])  # one token per window, not the pooled row


def test_embed_windows_sigreg_rows_follow_sigreg_pooling():
    """With SIGReg on the mean of tokens, the diagnosed SIGReg rows are that mean, not the
    probed last token (the same tensor the loss regularizes)."""
    cfg, spec, ds, starts = _setup("pooled", "mean")
    assert cfg.model.pooling == "last"
    torch.manual_seed(0)
    model = LeJEPA(3, spec, cfg.model, cfg.loss)
    pos = np.zeros(starts.size, dtype=np.int64)
    probe, sig = embedding.embed_windows(model, ds, starts, pos, 16, True, token_view=sigreg_view)
    model.eval()
    with torch.no_grad():
        _, tokens = model.embed(ds.context(starts))
    np.testing.assert_allclose(probe, tokens[:, -1].numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sig, tokens.mean(1).numpy(), rtol=1e-5, atol=1e-6)


def test_encoder_embeddings_pool_batch_and_restore_mode():
    cfg, spec, ds, starts = _setup()
    torch.manual_seed(0)
    enc = PatchEncoder(3, spec, cfg.model).train()
    with torch.no_grad():
        enc.eval()
        tokens = enc(ds.context(starts))
        enc.train()
    for pooling, ref in (
        (None, enc.pool(tokens)),
        ("mean", tokens.mean(1)),
        ("last", tokens[:, -1]),
    ):
        got = embedding.encoder_embeddings(enc, ds, starts, 8, pooling)
        assert got.dtype == np.float32 and got.shape == (starts.size, enc.d_model)
        np.testing.assert_allclose(got, ref.numpy(), rtol=1e-5, atol=1e-6)
    assert enc.training  # put back in the mode it came in
    empty = embedding.encoder_embeddings(enc, ds, starts[:0], 8)
    assert empty.shape == (0, enc.d_model)
    with pytest.raises(ValueError, match="unknown pooling"):
        embedding.encoder_embeddings(enc, ds, starts, 8, "max")

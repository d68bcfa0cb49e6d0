"""The diagnose stage: saved embeddings follow the contract, diagnostics and verdict."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from helpers.tiny import TINY_MODEL, ar1_features
from marketjepa.config import load_config
from marketjepa.data.windows import WindowDataset
from marketjepa.evaluate.diagnose import diagnose_arrays
from marketjepa.train.checkpoint import load_model
from marketjepa.train.pretrain import train_lejepa

BASE = [
    *TINY_MODEL,
    "train.batch_size=32",
    "train.epochs=1",
    "train.max_steps_per_epoch=2",
    "train.max_val_windows=64",
    "train.device=cpu",
    "eval.max_probe_windows=50",
]


def market(n: int = 800, f: int = 3):
    rng = np.random.default_rng(2)
    x = ar1_features(rng, n, f)
    split = np.zeros(n, np.int8)
    split[480:490] = -1
    split[490:640] = 1
    split[640:650] = -1
    split[650:] = 2
    # The last 5 bars of every 40-bar "session" have no label.
    label = np.where(np.arange(n) % 40 < 35, rng.integers(0, 3, n), -1).astype(np.int8)
    return x, split, label


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    runs = {}
    x, split, label = market()
    for sigreg_on in ("pooled", "tokens"):
        cfg = load_config("tiny", overrides=BASE + [f"loss.sigreg_on={sigreg_on}"])
        run_dir = tmp_path_factory.mktemp(sigreg_on)
        train_lejepa(cfg, x, split, run_dir)
        runs[sigreg_on] = (cfg, run_dir, diagnose_arrays(cfg, x, split, label, run_dir))
    return x, split, label, runs


def test_embeddings_follow_the_contract(trained):
    x, split, label, runs = trained
    cfg, run_dir, result = runs["pooled"]
    model = load_model(run_dir)
    spec = model.spec
    for sid, name in enumerate(("train", "val", "test")):
        z = np.load(run_dir / "embeddings" / f"{name}.npz")
        starts, anchors = z["starts"], z["anchors"]
        n = starts.size
        assert 0 < n <= cfg.eval.max_probe_windows and result["windows"][name] == n
        assert z["pooled"].shape == z["sigreg"].shape == (n, 16)
        assert z["pooled"].dtype == np.float32
        np.testing.assert_array_equal(anchors, starts + spec.context_len - 1)
        assert (label[anchors] >= 0).all()
        # Every window lies wholly inside its split.
        window_rows = starts[:, None] + np.arange(spec.context_len)
        assert (split[window_rows] == sid).all()
        # Pooled = the checkpoint's embedding of those windows; pooled SIGReg tensor = pooled.
        with torch.no_grad():
            ref = model.embed(WindowDataset(x, spec).context(starts))[0].numpy()
        np.testing.assert_allclose(z["pooled"], ref, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(z["sigreg"], z["pooled"])
    # Capped by even subsampling across the whole split (train has > 50 windows).
    train_starts = np.load(run_dir / "embeddings" / "train.npz")["starts"]
    assert train_starts.size == 50 and train_starts[-1] - train_starts[0] > 400


def test_per_token_sigreg_tensor_is_one_token_per_window(trained):
    x, _, _, runs = trained
    _, run_dir, _ = runs["tokens"]
    model = load_model(run_dir)
    z = np.load(run_dir / "embeddings" / "val.npz")
    pos = z["sigreg_token"]
    assert pos.min() >= 0 and pos.max() < model.spec.context_patches
    assert np.unique(pos).size > 1
    with torch.no_grad():
        tokens = model.embed(WindowDataset(x, model.spec).context(z["starts"]))[1].numpy()
    np.testing.assert_allclose(z["sigreg"], tokens[np.arange(pos.size), pos], atol=1e-5)


def test_diagnostics_json_reports_both_tensors_and_a_verdict(trained):
    _, _, _, runs = trained
    cfg, run_dir, result = runs["pooled"]
    saved = json.loads((run_dir / "diagnostics.json").read_text())
    assert saved["verdict"]["status"] == result["verdict"]["status"]
    assert saved["verdict"]["status"] in ("HEALTHY", "PARTIAL", "COLLAPSED")
    assert saved["heldout_split"] == "test" and saved["pretrain_status"] == "completed"
    assert set(saved["verdict"]["thresholds"]) >= {"healthy_rankme_ratio", "collapsed_rankme_ratio"}
    for split in ("val", "test"):
        for tensor in ("probe", "sigreg"):
            s = saved["splits"][split][tensor]
            for key in ("dim_var_mean", "norm_var", "rankme", "rankme_ratio", "dead_dims"):
                assert np.isfinite(s[key])
            assert len(s["spectrum"]) == 16 and abs(sum(s["spectrum"]) - 1) < 1e-6
            assert s["sigreg_heldout"] > 0
            assert s["verdict"]["status"] in ("HEALTHY", "PARTIAL", "COLLAPSED")


def test_no_test_split_falls_back_to_validation(tmp_path):
    x, split, label = market()
    split = np.where(split == 2, 1, split).astype(np.int8)  # the seed had no test split
    cfg = load_config("tiny", overrides=BASE)
    train_lejepa(cfg, x, split, tmp_path)
    result = diagnose_arrays(cfg, x, split, label, tmp_path)
    assert result["windows"]["test"] == 0 and result["heldout_split"] == "val"
    assert np.load(tmp_path / "embeddings" / "test.npz")["pooled"].shape == (0, 16)

"""Tiny-model settings and small AR(1) feature arrays shared by the training tests."""

import csv

import numpy as np
import torch

from marketjepa.config import ModelConfig

# Overrides that shrink the "tiny" preset's model, windows and SIGReg slices further.
TINY_MODEL = [
    "model.d_model=16",
    "model.n_heads=2",
    "model.n_layers=1",
    "model.ff_dim=32",
    "model.predictor_d_model=16",
    "model.predictor_heads=2",
    "windows.patch_len=4",
    "windows.context_patches=4",
    "windows.gap_patches=1",
    "windows.target_patches=2",
    "windows.stride=2",
    "loss.num_slices=16",
]


def ar1_features(rng, n: int, f: int, phi: float = 0.7, drift=None) -> np.ndarray:
    """(n, f) float32 AR(1) series from ``rng``'s standard normals, plus ``drift[t]`` if given."""
    x = np.zeros((n, f), np.float32)
    e = rng.standard_normal((n, f)).astype(np.float32)
    for t in range(1, n):
        x[t] = phi * x[t - 1] + e[t]
        if drift is not None:
            x[t] += drift[t]
    return x


def read_metrics(path) -> list[dict]:
    """Rows of a metrics.csv as dicts."""
    with open(path) as f:
        return list(csv.DictReader(f))


def small_model_cfg(**kw) -> ModelConfig:
    """A 2-layer d=16 ModelConfig for module-level tests, with ``kw`` overriding fields."""
    base = dict(
        d_model=16,
        n_heads=4,
        n_layers=2,
        ff_dim=32,
        predictor_d_model=8,
        predictor_layers=1,
        predictor_heads=2,
    )
    return ModelConfig(**(base | kw))


def assert_aux_term_wired(model, out: dict, key: str, weight: float) -> None:
    """An additive-convention LeJEPA's ``out["loss"]`` is ``pred + λ·sigreg + weight·out[key]``
    and the auxiliary term's own gradient reaches the encoder."""
    base = out["pred"] + model.loss_cfg.lambda_sigreg * out["sigreg"]
    torch.testing.assert_close(out["loss"], base + weight * out[key])
    out[key].backward()
    grads = [p.grad for p in model.encoder.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)

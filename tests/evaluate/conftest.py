"""Shared fixtures of the evaluate tests: a prepared folder and a run with embeddings."""

from __future__ import annotations

import numpy as np
import pytest

from marketjepa.constants import SPLIT_NAMES


def write_prepared(path, n_days=24, bars=60, seed=0):
    """A prepared folder in the docs/architecture.md format (features, labels, truth)."""
    import datetime as dt

    import polars as pl

    from marketjepa.artifacts import write_json

    rng = np.random.default_rng(seed)
    n = n_days * bars
    regime = np.repeat(rng.integers(0, 3, n // 30 + 1), 30)[:n]
    feats = rng.normal(size=(n, 3)).astype(np.float32)
    feats[:, 0] += (regime - 1) * 0.7
    label = np.where(rng.random(n) < 0.7, 0, regime).astype(np.int8)
    day = np.repeat(np.arange(n_days), bars)
    split = np.select([day < 14, day == 14, day < 19, day == 19], [0, -1, 1, -1], 2).astype(np.int8)
    close = 100 * np.exp(np.cumsum(0.001 * rng.normal(size=n)))
    filt = np.full((n, 3), 0.15)
    filt[np.arange(n), regime] = 0.7
    start = dt.date(2022, 1, 3)
    frame = pl.DataFrame(
        {
            "ts": np.arange(n, dtype=np.int64) * 60_000_000_000,
            "session": [start + dt.timedelta(days=int(d)) for d in day],
            "split": split,
            "label": label,
            "fwd_ret": rng.normal(size=n).astype(np.float32),
            "fwd_rv": rng.normal(size=n).astype(np.float32),
            "minute": np.tile(np.arange(bars, dtype=np.int16), n_days),
            "sigma_h": np.ones(n, dtype=np.float32),
            "close": close,
            "options_valid": np.ones(n, dtype=bool),
            **{f"f_x{i}": feats[:, i] for i in range(3)},
        }
    )
    path.mkdir(parents=True)
    frame.write_parquet(path / "dataset.parquet")
    truth = {"ts": frame["ts"], "regime": regime.astype(np.int8)}
    truth |= {f"filter_p{k}": filt[:, k] for k in range(3)}
    pl.DataFrame(truth).write_parquet(path / "truth.parquet")
    write_json(path / "manifest.json", {"feature_names": ["x0", "x1", "x2"]})
    write_json(path / "normalization.json", {"method": "robust", "features": {}})


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    import torch

    from marketjepa.config import load_config
    from marketjepa.data.prepared import PreparedData
    from marketjepa.data.windows import WindowDataset, WindowSpec, context_starts
    from marketjepa.model.jepa import LeJEPA
    from marketjepa.train.checkpoint import save_checkpoint

    root = tmp_path_factory.mktemp("probe_stage")
    prepared, run_dir = root / "prepared", root / "run"
    write_prepared(prepared)
    cfg = load_config(
        "tiny",
        overrides=[
            "eval.bootstrap_samples=30",
            "eval.probe_c_grid=[0.1, 1.0]",
            "eval.ridge_alpha_grid=[1.0, 100.0]",
            "eval.supervised_epochs=1",
            "train.max_steps_per_epoch=3",
            "train.batch_size=64",
            "train.device=cpu",
        ],
    )
    data = PreparedData.load(prepared)
    spec = WindowSpec.from_config(cfg.windows)
    torch.manual_seed(123)  # not the random-init baseline's seed
    model = LeJEPA(3, spec, cfg.model, cfg.loss).eval()
    save_checkpoint(
        run_dir / "checkpoints" / "best.pt",
        {"config_yaml": cfg.to_yaml(), "n_features": 3, "model": model.state_dict()},
    )
    ds = WindowDataset(data.features, spec)
    (run_dir / "embeddings").mkdir()
    for s, name in SPLIT_NAMES.items():
        starts = context_starts(data.split, s, spec, stride=2, anchor_mask=data.label >= 0)
        with torch.no_grad():
            pooled = model.embed(ds.context(starts))[0].numpy()
        np.savez(
            run_dir / "embeddings" / f"{name}.npz",
            pooled=pooled,
            sigreg=pooled,
            starts=starts,
            anchors=spec.anchor(starts),
        )
    return cfg, prepared, run_dir

"""Pretraining loop: artifacts, learning, determinism, watchdog stop, NaN guard, schedule."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch

from helpers.tiny import TINY_MODEL, ar1_features, read_metrics
from marketjepa.config import load_config
from marketjepa.errors import TrainingDiverged
from marketjepa.train.checkpoint import load_checkpoint
from marketjepa.train.latent_probe import latent_probe
from marketjepa.train.pretrain import METRIC_COLUMNS, best_key, train_lejepa
from marketjepa.train.schedule import lr_at

TINY = [
    *TINY_MODEL,
    "train.batch_size=32",
    "train.epochs=3",
    "train.max_steps_per_epoch=4",
    "train.max_val_windows=96",
    "train.device=cpu",
]


def tiny_cfg(*extra: str):
    return load_config("tiny", overrides=TINY + list(extra))


def ar1_market(n: int = 900, f: int = 3, seed: int = 0):
    """AR(1) features, splits with embargo gaps, and a planted 3-state regime."""
    rng = np.random.default_rng(seed)
    regime = np.repeat(rng.integers(0, 3, n // 12 + 1), 12)[:n]
    drift = np.array([-0.3, 0.0, 0.3], np.float32)[regime]
    x = ar1_features(rng, n, f, phi=0.8, drift=drift)
    split = np.zeros(n, np.int8)
    split[600:620] = -1
    split[620:760] = 1
    split[760:780] = -1
    split[780:] = 2
    onehot = np.eye(3)[regime] * 0.7 + 0.1
    truth = {"regime": regime, **{f"filter_p{k}": onehot[:, k] for k in range(3)}}
    return x, split, truth


def test_loop_writes_contract_artifacts_and_learns(tmp_path):
    x, split, truth = ar1_market()
    cfg = tiny_cfg("train.epochs=3", "train.max_steps_per_epoch=5")
    out = train_lejepa(cfg, x, split, tmp_path, truth=truth)
    assert out["status"] == "completed" and out["epochs_run"] == 3
    assert json.loads((tmp_path / "pretrain.json").read_text())["status"] == "completed"
    with open(tmp_path / "metrics.csv") as f:
        assert next(csv.reader(f)) == METRIC_COLUMNS
    rows = read_metrics(tmp_path / "metrics.csv")
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert [int(r["step"]) for r in rows] == [5, 10, 15]
    for r in rows:
        for c in METRIC_COLUMNS:
            assert math.isfinite(float(r[c])), c
        assert 0 < float(r["probe_rankme_ratio"]) <= 1
    # Training lowers the training objective.
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
    assert (tmp_path / "checkpoints" / "last.pt").exists()
    best = load_checkpoint(tmp_path / "checkpoints" / "best.pt")
    assert best["epoch"] == out["best_epoch"]
    assert "optimizer" not in best
    assert any((tmp_path / "tb").iterdir())


def test_cpu_training_is_deterministic(tmp_path):
    x, split, _ = ar1_market()
    cfg = tiny_cfg("train.epochs=1")
    train_lejepa(cfg, x, split, tmp_path / "a")
    train_lejepa(cfg, x, split, tmp_path / "b")
    a = read_metrics(tmp_path / "a" / "metrics.csv")[0]
    b = read_metrics(tmp_path / "b" / "metrics.csv")[0]
    for c in ("train_loss", "val_loss", "probe_rankme"):
        assert a[c] == b[c]


def test_watchdog_stops_and_marks_run_collapsed(tmp_path):
    x, split, _ = ar1_market()
    # A RankMe/d threshold no 16-dim embedding of a short run can meet: every epoch
    # counts as collapsing, so the run must stop after `patience` epochs.
    cfg = tiny_cfg(
        "train.epochs=5",
        "train.max_steps_per_epoch=2",
        "train.watchdog.min_rankme_ratio=0.999",
        "train.watchdog.patience_epochs=2",
    )
    out = train_lejepa(cfg, x, split, tmp_path)
    assert out["status"] == "collapsed"
    assert out["epochs_run"] == 2
    assert "RankMe/d" in out["message"] and "2 consecutive" in out["message"]
    assert (tmp_path / "checkpoints" / "best.pt").exists()


def test_nan_stops_run_and_keeps_last_good_checkpoint(tmp_path):
    x, split, _ = ar1_market()
    cfg = tiny_cfg("train.epochs=3", "train.max_steps_per_epoch=2")

    def corrupt_after_first_epoch(epoch, row, model):
        if epoch == 1:
            with torch.no_grad():
                model.encoder.patch.proj.weight.fill_(float("nan"))

    with pytest.raises(TrainingDiverged, match=r"loss is nan at epoch 2, step 2"):
        train_lejepa(cfg, x, split, tmp_path, on_epoch_end=corrupt_after_first_epoch)
    summary = json.loads((tmp_path / "pretrain.json").read_text())
    assert summary["status"] == "diverged" and summary["epochs_run"] == 1
    last = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert last["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in last["model"].values() if v.is_floating_point())


def test_best_checkpoint_is_not_fooled_by_collapse():
    healthy = {"collapsed": False, "val_loss": 5.0, "probe_rankme_ratio": 0.6}
    collapsed = {"collapsed": True, "val_loss": 0.01, "probe_rankme_ratio": 0.01}
    less_collapsed = {"collapsed": True, "val_loss": 9.0, "probe_rankme_ratio": 0.04}
    assert min([collapsed, healthy], key=best_key) is healthy
    assert min([collapsed, less_collapsed], key=best_key) is less_collapsed


def test_schedule_warmup_then_cosine_to_floor():
    lrs = [lr_at(s, 100, 1.0, 0.1, 0.1) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert max(lrs) == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:], strict=False))
    assert lrs[-1] == pytest.approx(0.1, abs=1e-3)
    mid = 10 + 45  # half-way through the cosine: the mean of peak and floor
    assert lrs[mid] == pytest.approx(0.55, abs=1e-9)


def test_latent_probe_share_of_bayes_filter():
    rng = np.random.default_rng(0)
    regime = np.repeat(rng.integers(0, 3, 800), 5)
    filt = np.eye(3)[regime] * 0.6 + 0.1
    informative = np.eye(3)[regime] + 0.3 * rng.standard_normal((regime.size, 3))
    noise = rng.standard_normal((regime.size, 8))
    good = latent_probe(informative, regime, filt)
    bad = latent_probe(noise, regime, filt)
    assert good["filter_acc"] == 1.0
    assert good["latent_acc"] > 0.9 and good["latent_share"] > 0.85
    assert abs(bad["latent_share"]) < 0.1


def test_latent_probe_fits_on_the_given_rows_and_scores_every_row_of_z():
    rng = np.random.default_rng(1)
    r_fit, r_val = rng.integers(0, 3, 600), np.repeat(rng.integers(0, 3, 60), 5)
    filt = np.eye(3)[r_val] * 0.6 + 0.1
    z_fit = np.eye(3)[r_fit] + 0.3 * rng.standard_normal((600, 3))
    z_val = np.eye(3)[r_val] + 0.3 * rng.standard_normal((300, 3))
    good = latent_probe(z_val, r_val, filt, 0, z_fit, r_fit)
    assert good["latent_share"] > 0.85
    assert good["chance"] == np.bincount(r_val).max() / 300  # every validation row scored
    # a probe fitted on rows whose labels say nothing about z reads nothing on validation
    bad = latent_probe(z_val, r_val, filt, 0, z_fit, rng.permutation(r_fit))
    assert bad["latent_share"] < 0.3
    assert math.isnan(latent_probe(z_val, r_val, filt, 0, z_fit, np.zeros(600, int))["latent_acc"])


def _ar1_validator(*overrides: str):
    """A Validator on the AR(1) market: training-day fit windows, validation windows."""
    from marketjepa.data.windows import WindowDataset, WindowSpec
    from marketjepa.train.validation import Validator

    x, split, truth = ar1_market()
    cfg = tiny_cfg(*overrides)
    spec = WindowSpec.from_config(cfg.windows)
    data = WindowDataset(x, spec)
    train_starts = np.arange(0, 600 - spec.total_len, dtype=np.int64)
    val_starts = np.arange(620, 760 - spec.total_len, dtype=np.int64)
    v = Validator(data, val_starts, cfg, truth, fit_starts=train_starts)
    return v, x, split, truth, train_starts


def test_validator_fits_the_latent_probe_on_capped_training_windows_only():
    from marketjepa.train.validation import Validator

    v, _, split, truth, train_starts = _ar1_validator("train.latent_probe_fit_windows=40")
    data, val_starts, spec = v.data, v.starts, v.data.spec
    assert v.fit_starts.size == 40 and np.all(split[spec.anchor(v.fit_starts)] == 0)
    np.testing.assert_array_equal(v.regime_fit, truth["regime"][spec.anchor(v.fit_starts)])
    off = Validator(data, val_starts, tiny_cfg("train.latent_probe_fit_windows=0"), truth,
                    fit_starts=train_starts)  # fmt: skip
    assert off.fit_starts is None


def test_collapse_experiment_writes_a_table_per_variant(tmp_path):
    from marketjepa.train.experiment import VARIANTS, collapse_experiment_arrays

    x, split, truth = ar1_market()
    cfg = tiny_cfg("train.epochs=1", "train.max_steps_per_epoch=1")
    text = collapse_experiment_arrays(cfg, x, split, tmp_path, truth=truth)
    assert (tmp_path / "collapse_experiment.md").read_text() == text
    lines = [ln for ln in text.splitlines() if ln.startswith("| ")]
    assert len(lines) == 1 + len(VARIANTS)
    seed_row = next(ln for ln in lines if ln.startswith("| seed-like"))
    assert "| 0.1 | 0.996 | 0 | no |" in seed_row
    results = json.loads((tmp_path / "collapse_experiment.json").read_text())
    for r in results:
        assert r["verdict"] in ("HEALTHY", "PARTIAL", "COLLAPSED")
        assert math.isfinite(r["final"]["probe_rankme"])
        assert (tmp_path / r["run_dir"].split("/")[-1] / "checkpoints" / "best.pt").exists()


def test_latent_row_is_the_per_epoch_probe_and_pretrain_records_it_before_step_one(tmp_path):
    from marketjepa.model.jepa import LeJEPA
    from marketjepa.train.validation import Validator

    v, x, split, truth, _ = _ar1_validator("train.latent_probe_fit_windows=40")
    cfg, data, val_starts = v.cfg, v.data, v.starts
    torch.manual_seed(0)
    model = LeJEPA(x.shape[1], data.spec, cfg.model, cfg.loss).eval()
    row = v.epoch_row(model, 0, 0, 0.0)
    init = v.latent_row(model)
    assert init == {"latent_acc": row["latent_acc"], "latent_share": row["latent_share"]}
    assert Validator(data, val_starts, cfg, None).latent_row(model) is None  # real data
    # the run records it (random-init baseline of the curve); without truth it is null
    train_lejepa(tiny_cfg("train.epochs=1", "train.max_steps_per_epoch=2"), x, split,
                 tmp_path / "syn", truth=truth)  # fmt: skip
    rec = json.loads((tmp_path / "syn" / "pretrain.json").read_text())["latent_init"]
    assert set(rec) == {"latent_acc", "latent_share"} and 0 <= rec["latent_acc"] <= 1
    train_lejepa(tiny_cfg("train.epochs=1", "train.max_steps_per_epoch=2"), x, split,
                 tmp_path / "real")  # fmt: skip
    assert json.loads((tmp_path / "real" / "pretrain.json").read_text())["latent_init"] is None

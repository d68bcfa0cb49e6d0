"""Collapse watchdog: scale-invariant thresholds, patience, persistence across resume."""

from __future__ import annotations

import numpy as np
import pytest

from marketjepa.config import WatchdogConfig, load_config
from marketjepa.model.collapse import embedding_stats
from marketjepa.train.pretrain import train_lejepa
from marketjepa.train.watchdog import CollapseWatchdog, collapse_reasons

RNG = np.random.default_rng(0)
ISOTROPIC = RNG.standard_normal((2000, 32))
RANK_ONE = RNG.standard_normal((2000, 1)) @ RNG.standard_normal((1, 32))
OFFSET = 10.0 + 0.1 * RNG.standard_normal((2000, 32))  # every window at ~one point


def row(z_sig: np.ndarray, z_probe: np.ndarray | None = None) -> dict:
    z_probe = z_sig if z_probe is None else z_probe
    out = {}
    for prefix, z in (("sig_", z_sig), ("probe_", z_probe)):
        out.update({f"{prefix}{k}": v for k, v in embedding_stats(z).items()})
    return out


CFG = WatchdogConfig(min_rankme_ratio=0.05, min_normalized_variance=0.05, patience_epochs=2)


def test_healthy_embeddings_pass_at_any_scale():
    for scale in (1e-3, 1.0, 1e3):
        assert collapse_reasons(row(scale * ISOTROPIC), CFG) == []


@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e3])
def test_collapsed_embeddings_are_flagged_at_any_scale(scale):
    rank_one = collapse_reasons(row(scale * RANK_ONE), CFG)
    assert any("RankMe/d" in r for r in rank_one)
    offset = collapse_reasons(row(scale * OFFSET), CFG)
    assert any("normalized variance" in r for r in offset)


def test_either_tensor_can_trigger():
    reasons = collapse_reasons(row(ISOTROPIC, RANK_ONE), CFG)
    assert reasons and all(r.startswith("probe tensor") for r in reasons)


def test_patience_counts_consecutive_epochs_only():
    dog = CollapseWatchdog(CFG)
    bad, good = row(RANK_ONE), row(ISOTROPIC)
    assert [dog.update(r) for r in (bad, good, bad)] == [False, False, False]
    assert dog.update(bad) is True
    assert "2 consecutive" in dog.message and "lambda_sigreg" in dog.message
    restored = CollapseWatchdog(CFG)
    restored.load_state_dict(dog.state_dict())
    assert restored.stopped and restored.message == dog.message


def test_disabled_watchdog_never_stops():
    dog = CollapseWatchdog(WatchdogConfig(enabled=False, patience_epochs=1))
    assert not any(dog.update(row(RANK_ONE)) for _ in range(3))


def test_stop_decision_survives_a_kill_and_resume(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((500, 3)).astype(np.float32)
    split = np.zeros(500, np.int8)
    split[380:] = 1
    cfg = load_config(
        "tiny",
        overrides=[
            "model.d_model=16",
            "model.n_heads=2",
            "model.ff_dim=32",
            "model.predictor_d_model=16",
            "model.predictor_heads=2",
            "windows.patch_len=4",
            "windows.context_patches=4",
            "windows.target_patches=2",
            "loss.num_slices=8",
            "train.batch_size=32",
            "train.epochs=3",
            "train.max_steps_per_epoch=1",
            "train.max_val_windows=48",
            "train.device=cpu",
            # unreachable threshold: the first epoch already triggers the stop
            "train.watchdog.min_rankme_ratio=0.999",
            "train.watchdog.patience_epochs=1",
        ],
    )

    def kill(epoch, r, model):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_lejepa(cfg, x, split, tmp_path, on_epoch_end=kill)
    out = train_lejepa(cfg, x, split, tmp_path, resume=True)
    assert out["status"] == "collapsed" and out["epochs_run"] == 1

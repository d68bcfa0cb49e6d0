"""Checkpoints: resume reproduces the uninterrupted run, atomic writes, safe loading."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers.tiny import TINY_MODEL, ar1_features, read_metrics
from marketjepa.config import load_config
from marketjepa.errors import MarketJepaError
from marketjepa.train.checkpoint import load_checkpoint, load_model, save_checkpoint
from marketjepa.train.pretrain import METRIC_COLUMNS, train_lejepa

TINY = [
    *TINY_MODEL,
    "train.batch_size=32",
    "train.max_val_windows=64",
    "train.device=cpu",
]


def tiny_cfg(*extra: str):
    return load_config("tiny", overrides=TINY + list(extra))


def market(n: int = 700, f: int = 3, seed: int = 1):
    rng = np.random.default_rng(seed)
    x = ar1_features(rng, n, f)
    split = np.zeros(n, np.int8)
    split[500:510] = -1
    split[510:] = 1
    return x, split


class Killed(Exception):
    pass


def test_resume_matches_uninterrupted_run(tmp_path):
    x, split = market()
    # EMA target encoder and dropout: resume must restore both and the torch RNG.
    cfg = tiny_cfg(
        "train.epochs=3", "train.max_steps_per_epoch=2", "loss.ema=true", "model.dropout=0.1"
    )
    train_lejepa(cfg, x, split, tmp_path / "full")

    def kill_after_second_epoch(epoch, row, model):
        if epoch == 2:
            raise Killed

    with pytest.raises(Killed):
        train_lejepa(cfg, x, split, tmp_path / "cut", on_epoch_end=kill_after_second_epoch)
    assert len(read_metrics(tmp_path / "cut" / "metrics.csv")) == 2
    out = train_lejepa(cfg, x, split, tmp_path / "cut", resume=True)
    assert out["status"] == "completed" and out["epochs_run"] == 3

    full, cut = (
        read_metrics(tmp_path / "full" / "metrics.csv"),
        read_metrics(tmp_path / "cut" / "metrics.csv"),
    )
    assert len(cut) == 3
    for a, b in zip(full, cut, strict=True):
        for c in METRIC_COLUMNS:
            if c == "seconds" or a[c] == b[c] == "":  # timing; latent columns without truth
                continue
            assert float(a[c]) == pytest.approx(float(b[c]), rel=1e-6, abs=1e-6), c
    wa = load_checkpoint(tmp_path / "full" / "checkpoints" / "last.pt")["model"]
    wb = load_checkpoint(tmp_path / "cut" / "checkpoints" / "last.pt")["model"]
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=0, atol=1e-6)
    # Resuming a finished run trains nothing more.
    again = train_lejepa(cfg, x, split, tmp_path / "cut", resume=True)
    assert again["epochs_run"] == 3


def test_resume_refuses_a_different_configuration(tmp_path):
    x, split = market()
    train_lejepa(tiny_cfg("train.epochs=1", "train.max_steps_per_epoch=1"), x, split, tmp_path)
    (tmp_path / "pretrain.json").unlink()
    other = tiny_cfg("train.epochs=1", "train.max_steps_per_epoch=1", "loss.lambda_sigreg=5")
    with pytest.raises(MarketJepaError, match="cannot resume"):
        train_lejepa(other, x, split, tmp_path, resume=True)


def test_load_model_rebuilds_the_trained_encoder(tmp_path):
    x, split = market()
    seen = {}

    def keep_embedding(epoch, row, model):
        model.eval()
        with torch.no_grad():
            seen["z"] = model.embed(torch.as_tensor(x[None, :16]))[0].clone()

    cfg = tiny_cfg("train.epochs=1", "train.max_steps_per_epoch=2")
    train_lejepa(cfg, x, split, tmp_path, on_epoch_end=keep_embedding)
    model = load_model(tmp_path, "best")
    assert not model.training
    with torch.no_grad():
        z = model.embed(torch.as_tensor(x[None, :16]))[0]
    torch.testing.assert_close(z, seen["z"])


def test_atomic_save_keeps_the_previous_file_on_failure(tmp_path):
    path = tmp_path / "checkpoints" / "last.pt"
    save_checkpoint(path, {"epoch": 1, "w": torch.ones(3)})
    with pytest.raises(Exception):  # noqa: B017 - any pickling error
        save_checkpoint(path, {"epoch": 2, "bad": lambda: None})
    assert load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]  # no temp file left


def test_load_refuses_pickled_objects_and_missing_files(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format_version": 1, "obj": Killed()}, path)
    with pytest.raises(MarketJepaError, match="not a readable checkpoint"):
        load_checkpoint(path)
    with pytest.raises(MarketJepaError, match="checkpoint not found"):
        load_model(tmp_path / "nothing")


def test_corrupt_checkpoint_errors_never_suggest_weights_only_false(tmp_path):
    pickled = tmp_path / "pickled.pt"
    torch.save({"format_version": 1, "obj": Killed()}, pickled)
    with pytest.raises(Exception, match="weights_only"):  # torch's own advice ...
        torch.load(pickled, weights_only=True)
    good = tmp_path / "good.pt"
    save_checkpoint(good, {"epoch": 1, "w": torch.ones(64)})
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all\n")
    for path in (pickled, truncated, garbage):
        with pytest.raises(MarketJepaError) as info:
            load_checkpoint(path)
        msg = str(info.value)
        assert msg.startswith(f"{path}: not a readable checkpoint"), msg
        assert "weights_only" not in msg and "\n" not in msg, msg  # ... is never passed on
        assert "delete it and rerun" in msg

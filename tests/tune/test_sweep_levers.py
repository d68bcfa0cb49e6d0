"""Issue #12: validation-only lever scoring, the Optuna sweep and the levers experiment."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from helpers.tiny import TINY_MODEL, ar1_features
from marketjepa.config import load_config

TINY = [
    *TINY_MODEL,
    "train.batch_size=32",
    "train.epochs=1",
    "train.max_steps_per_epoch=2",
    "train.max_val_windows=64",
    "train.device=cpu",
    "eval.bootstrap_samples=20",
    "eval.bootstrap_block_days=1",
    "eval.probe_c_grid=[0.1,1.0]",
]


def _market(n: int = 1200, seed: int = 0):
    """AR(1) features with a planted regime, labels, days of 40 rows, train/val/test."""
    rng = np.random.default_rng(seed)
    regime = np.repeat(rng.integers(0, 3, n // 20 + 1), 20)[:n]
    x = ar1_features(rng, n, 3, phi=0.8, drift=np.array([-0.4, 0.0, 0.4], np.float32)[regime])
    split = np.zeros(n, np.int8)
    split[700:720] = -1
    split[720:940] = 1
    split[940:960] = -1
    split[960:] = 2
    label = rng.integers(0, 3, n)
    label[::7] = -1
    onehot = np.eye(3)[regime] * 0.7 + 0.1
    truth = {"regime": regime, **{f"filter_p{k}": onehot[:, k] for k in range(3)}}
    return x, split, label, np.arange(n) // 40, truth


def test_validation_score_never_reads_test_days(tmp_path):
    import torch

    from marketjepa.data.windows import WindowSpec
    from marketjepa.evaluate.baselines import build_encoder
    from marketjepa.tune.levers import validation_score

    cfg = load_config("tiny", overrides=TINY)
    x, split, label, _, truth = _market()
    enc = build_encoder(3, WindowSpec.from_config(cfg.windows), cfg.model, 0)
    a = validation_score(enc, cfg, x, split, label, truth)
    assert math.isfinite(a["latent_share"]) and a["objective"] == a["latent_share"]
    assert math.isfinite(a["direction_lift"])
    # scrambling everything on test days (features, labels, truth) changes nothing
    x2, label2 = x.copy(), label.copy()
    t = split == 2
    x2[t] = np.random.default_rng(1).standard_normal((t.sum(), 3))
    label2[t] = 0
    truth2 = {k: v.copy() for k, v in truth.items()}
    truth2["regime"][t] = 0
    with torch.no_grad():
        b = validation_score(enc, cfg, x2, split, label2, truth2)
    assert a == b
    # without truth the objective is the direction lift
    c = validation_score(enc, cfg, x, split, label, None)
    assert math.isnan(c["latent_share"]) and c["objective"] == c["direction_lift"]


def test_sample_levers_maps_the_input_levers_to_config_values():
    import optuna

    from marketjepa.tune.sweep import SEARCH_SPACE, sample_levers

    space = {k: SEARCH_SPACE[k] for k in ("model.pooling", "model.session_mask")}
    space |= {k: SEARCH_SPACE[k] for k in ("input_exclude", "target_exclude")}
    fixed = {"model.session_mask": True, "input_exclude": "calendar", "target_exclude": "none"}
    changes = sample_levers(optuna.trial.FixedTrial({"model.pooling": "last", **fixed}), space)
    assert changes == {
        "model.pooling": "last",
        "model.session_mask": True,
        "model.input_exclude": ["calendar"],
        "loss.target_exclude": [],
    }
    # the session mask confines the last token: mean pooling skips it
    mean = sample_levers(optuna.trial.FixedTrial({"model.pooling": "mean", **fixed}), space)
    assert "model.session_mask" not in mean
    load_config("cpu", overrides=[f"{k}={v}".replace("'", "") for k, v in changes.items()])


def test_sweep_is_resumable_and_records_every_trial(tmp_path):
    from marketjepa.tune.sweep import SEARCH_SPACE, sweep_arrays

    # left out: the window-geometry levers (tiny data has too few rows for them) and the
    # input levers (tiny data has no named calendar features; see the next test)
    input_levers = {"input_exclude", "target_exclude", "model.session_mask"}
    space = {
        k: v
        for k, v in SEARCH_SPACE.items()
        if not k.startswith("windows.") and k != "loss.context_mask_patches"
        if k not in input_levers
    }
    cfg = load_config("tiny", overrides=TINY)
    x, split, label, _, truth = _market()
    kw = dict(epochs=1, steps=1, space=space)
    s1 = sweep_arrays(cfg, x, split, label, truth, tmp_path, n_trials=2, **kw)
    assert s1["n_trials"] == 2 and (tmp_path / "study.db").exists()
    s2 = sweep_arrays(cfg, x, split, label, truth, tmp_path, n_trials=3, **kw)
    assert s2["n_trials"] == 3  # resumed: one more trial, not three
    assert [t["number"] for t in s2["trials"]] == [0, 1, 2]
    assert all(t["state"] == "COMPLETE" for t in s2["trials"])
    for t in s2["trials"]:
        assert set(t["changes"]) == {k for k in space if k != "target_scales"} | {
            "loss.target_scales"
        }
        assert math.isfinite(t["objective"]) and math.isfinite(t["direction_lift"])
    best = load_config("tiny", tmp_path / "best_config.yaml")
    assert best.train.sweep_trials == 3
    assert best.loss.lambda_sigreg == s2["best"]["changes"]["loss.lambda_sigreg"]
    rows = (tmp_path / "trials.csv").read_text().splitlines()
    assert len(rows) == 1 + 3
    assert json.loads((tmp_path / "sweep.json").read_text())["n_trials"] == 3


def test_levers_comparison_pairs_chosen_against_every_representation(tmp_path):
    from marketjepa.tune.levers import TODAY, compare_on_market, levers_table

    cfg = load_config("tiny", overrides=[*TINY, "model.causal=true", "loss.target_path=sequence"])
    x, split, label, day, truth = _market()
    res = compare_on_market(cfg, x, split, label, day, truth, tmp_path)
    st = res["stats"]
    for n in ("lejepa_today", "random_init_chosen", "random_init_today", "raw_window"):
        for m in ("lat", "dir"):
            d = st[f"{m}:lejepa_chosen-{n}"]
            assert d["ci"][0] <= d["estimate"] <= d["ci"][1] or math.isnan(d["estimate"])
            diff = st[f"{m}:lejepa_chosen"]["estimate"] - st[f"{m}:{n}"]["estimate"]
            assert d["estimate"] == pytest.approx(diff, nan_ok=True)
    assert (tmp_path / "today" / "checkpoints" / "best.pt").exists()
    text = levers_table([{"market": "seed 0", **res}], dict.fromkeys(TODAY, "x"))
    assert "| raw_window |" in text and "Δ latent share" in text


@pytest.mark.parametrize(
    "args, message",
    [
        (["experiment", "levers", "--seeds", "a,b"], "--seeds must be comma-separated"),
        (["experiment", "levers", "--seeds", "", "--no-null"], "nothing to run"),
        (["sweep", "--trials", "0"], "--trials, --epochs and --steps must be >= 1"),
        (["sweep", "--set", "loss.target_scales=[9]"], "target_scales"),
    ],
)
def test_cli_rejects_bad_lever_arguments_with_exit_code_2(args, message):
    from typer.testing import CliRunner

    from marketjepa.cli import app

    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2, res.output
    assert message in " ".join(res.output.split())


def _small_space():
    from marketjepa.tune.sweep import SEARCH_SPACE

    keep = ("model.causal", "loss.target_path", "loss.lambda_sigreg", "model.pooling")
    return {k: SEARCH_SPACE[k] for k in keep}


def test_sweep_probe_window_cap_is_honored(tmp_path):
    import optuna

    from marketjepa.train.checkpoint import load_model
    from marketjepa.tune.levers import validation_score, with_overrides
    from marketjepa.tune.sweep import sweep_arrays

    cfg = load_config("tiny", overrides=TINY)
    x, split, label, _, truth = _market()
    s = sweep_arrays(
        cfg, x, split, label, truth, tmp_path, n_trials=1, epochs=1, steps=1,
        space=_small_space(), probe_windows=40, val_windows=32,
    )  # fmt: skip
    (trial,) = optuna.load_study(
        study_name="levers", storage=f"sqlite:///{tmp_path}/study.db"
    ).trials
    assert trial.user_attrs["probe_anchors"] == [40, 40]
    # the recorded objective is validation_score with the cap, not its default
    tcfg = with_overrides(cfg, trial.user_attrs["changes"], "test")
    enc = load_model(tmp_path / "trials" / "0000", which="best", device="cpu").encoder
    capped = validation_score(enc, tcfg, x, split, label, truth, max_windows=40)
    assert s["trials"][0]["objective"] == pytest.approx(capped["objective"])
    assert s["budget"]["probe_windows"] == 40
    # the loop's per-epoch validation used the sweep's val_windows
    pre = json.loads((tmp_path / "trials" / "0000" / "pretrain.json").read_text())
    assert s["budget"]["train.max_val_windows"] == 32 and pre["n_val_windows"] == 32


def _add_unreachable_trials(study) -> None:
    """Finished trials whose epoch-1 share (2.0) no real trial reaches: enough of them for
    the median pruner to start judging."""
    import optuna

    from marketjepa.tune.sweep import PRUNER_STARTUP

    dist = optuna.distributions.FloatDistribution(0.0, 1.0)
    for _ in range(PRUNER_STARTUP):
        study.add_trial(
            optuna.trial.create_trial(
                value=2.0, params={"p": 0.5}, distributions={"p": dist},
                intermediate_values={1: 2.0}, user_attrs={"changes": {}},
            )
        )  # fmt: skip


def test_sweep_prunes_and_records_pruned_trials(tmp_path):
    import optuna

    from marketjepa.errors import MarketJepaError
    from marketjepa.tune.sweep import PRUNER_STARTUP, STUDY_NAME, sweep_arrays

    cfg = load_config("tiny", overrides=TINY)
    x, split, label, _, truth = _market()
    kw = dict(epochs=2, steps=1, space=_small_space())
    sweep_arrays(cfg, x, split, label, truth, tmp_path, n_trials=0, **kw)  # creates the study
    study = optuna.load_study(study_name=STUDY_NAME, storage=f"sqlite:///{tmp_path}/study.db")
    _add_unreachable_trials(study)  # finished trials whose epoch-1 share no real one reaches
    s = sweep_arrays(cfg, x, split, label, truth, tmp_path, n_trials=PRUNER_STARTUP + 1, **kw)
    last = s["trials"][-1]
    assert last["state"] == "PRUNED" and last["pruned"] == "median pruner after epoch 1"
    assert math.isfinite(last["epoch1_latent_share"]) and last["objective"] is None
    assert s["n_trials"] == PRUNER_STARTUP + 1
    assert "PRUNED" in (tmp_path / "trials.csv").read_text()
    # a resume with another budget is refused: its trials would not be comparable
    with pytest.raises(MarketJepaError, match="another budget"):
        sweep_arrays(cfg, x, split, label, truth, tmp_path, n_trials=9, **kw, probe_windows=10)

    # the per-trial time cap prunes a trial still pretraining after an epoch before the last
    t = sweep_arrays(
        cfg, x, split, label, truth, tmp_path / "cap", n_trials=1, prune=False,
        trial_seconds=1e-6, **kw,
    )  # fmt: skip
    (row,) = t["trials"]
    assert row["state"] == "PRUNED" and row["pruned"].startswith("over 0s after epoch 1")


def test_sweep_gain_objective_subtracts_the_same_architecture_at_random_init(tmp_path):
    from marketjepa.data.windows import WindowSpec
    from marketjepa.errors import MarketJepaError
    from marketjepa.evaluate.baselines import build_encoder
    from marketjepa.tune.levers import validation_score, with_overrides
    from marketjepa.tune.sweep import OBJECTIVES, sweep_arrays

    cfg = load_config("tiny", overrides=TINY)
    x, split, label, _, truth = _market()
    s = sweep_arrays(
        cfg, x, split, label, truth, tmp_path, n_trials=1, epochs=1, steps=1,
        space=_small_space(), probe_windows=40, prune=False, objective="gain",
    )  # fmt: skip
    (row,) = s["trials"]
    tcfg = with_overrides(cfg, row["changes"], "test")
    enc0 = build_encoder(3, WindowSpec.from_config(tcfg.windows), tcfg.model, tcfg.train.seed)
    base = validation_score(enc0, tcfg, x, split, label, truth, max_windows=40)["objective"]
    assert row["random_init_objective"] == pytest.approx(base)
    assert row["objective"] == pytest.approx(row["latent_share"] - base)
    assert s["budget"]["objective"] == "gain" and s["objective"] == OBJECTIVES["gain"]
    with pytest.raises(MarketJepaError, match="unknown sweep objective"):
        sweep_arrays(cfg, x, split, label, truth, tmp_path / "x", n_trials=1, objective="best")


def test_gain_objective_is_not_median_pruned_on_the_architecture_share(tmp_path):
    import optuna

    from marketjepa.tune.sweep import PRUNER_STARTUP, STUDY_NAME, sweep_arrays

    cfg = load_config("tiny", overrides=TINY)
    x, split, label, _, truth = _market()
    kw = dict(epochs=2, steps=1, space=_small_space(), objective="gain")
    sweep_arrays(cfg, x, split, label, truth, tmp_path, n_trials=0, **kw)  # creates the study
    study = optuna.load_study(study_name=STUDY_NAME, storage=f"sqlite:///{tmp_path}/study.db")
    _add_unreachable_trials(study)  # finished trials whose epoch-1 share no real one reaches
    s = sweep_arrays(cfg, x, split, label, truth, tmp_path, n_trials=PRUNER_STARTUP + 1, **kw)
    assert s["trials"][-1]["state"] == "COMPLETE"

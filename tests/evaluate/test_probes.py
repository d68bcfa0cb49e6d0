"""Probes: metric math, train-only fits, lift CIs on signal vs noise, the probe table."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score
from sklearn.metrics import r2_score as sk_r2
from sklearn.preprocessing import StandardScaler

from marketjepa.config import EvalConfig
from marketjepa.data.windows import even_positions
from marketjepa.evaluate import linear_probe as lp
from marketjepa.evaluate import probes as pr
from marketjepa.evaluate import represent as rp
from marketjepa.evaluate.tables import render_probe_tables, to_text

EV = EvalConfig(bootstrap_samples=200, bootstrap_block_days=2)


def _market_rows(seed=0, n_days=(50, 15, 15), per_day=40, signal=1.5):
    """Rows with HOLD-heavy labels (~84/8/8) and a persistent regime behind them."""
    rng = np.random.default_rng(seed)
    split = np.concatenate([np.full(n * per_day, s, dtype=np.int8) for s, n in enumerate(n_days)])
    day = np.repeat(np.arange(sum(n_days)), per_day)
    n = day.size
    label = rng.choice(3, size=n, p=[0.84, 0.08, 0.08])
    regime = np.where(rng.random(n) < 0.8, label, rng.integers(0, 3, n))
    filt = np.full((n, 3), 0.1)
    filt[np.arange(n), regime] = 0.8
    rows = pr.ProbeRows(
        anchors=np.arange(n),
        split=split,
        label=label,
        day=day,
        fwd_ret=(label == 1) * 0.002 - (label == 2) * 0.002 + 0.003 * rng.normal(size=n),
        fwd_rv=rng.normal(size=n),
        sigma_h=np.full(n, 0.003),
        regime=regime,
        filter_probs=filt,
    )
    centers = rng.normal(size=(3, 6))
    signal_rep = (signal * centers[label] + rng.normal(size=(n, 6))).astype(np.float32)
    noise_rep = rng.normal(size=(n, 6)).astype(np.float32)
    return rows, signal_rep, noise_rep


def test_classification_metrics_match_sklearn():
    rng = np.random.default_rng(0)
    y = rng.choice(3, 500, p=[0.7, 0.2, 0.1])
    p = np.where(rng.random(500) < 0.6, y, rng.integers(0, 3, 500))
    m = pr.classification_metrics(y, p, 3, majority_class=0)
    assert m["accuracy"] == pytest.approx(accuracy_score(y, p))
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, p))
    assert m["macro_f1"] == pytest.approx(f1_score(y, p, average="macro"))
    assert m["majority_accuracy"] == pytest.approx(np.mean(y == 0))
    assert m["lift_accuracy"] == pytest.approx(m["accuracy"] - np.mean(y == 0))
    assert m["lift_balanced"] == pytest.approx(m["balanced_accuracy"] - 1 / 3)
    # Always predicting the majority: zero lift on both (the seed's 83.3% case).
    const = pr.classification_metrics(y, np.zeros_like(y), 3, majority_class=0)
    assert const["lift_accuracy"] == 0 and const["lift_balanced"] == pytest.approx(0)
    cm = pr.confusion_matrix(y, p, 3)
    assert cm.sum() == 500 and cm[1, 2] == np.sum((y == 1) & (p == 2))


def test_regression_metrics_match_references():
    rng = np.random.default_rng(1)
    y = rng.normal(size=300)
    p = y + rng.normal(size=300)
    assert pr.r2_score(y, p) == pytest.approx(sk_r2(y, p))
    assert pr.spearman_ic(y, p) == pytest.approx(spearmanr(y, p).statistic)
    assert np.isnan(pr.spearman_ic(y, np.ones(300)))
    assert pr.share_over_chance(0.6, 0.8, 0.4) == pytest.approx(0.5)
    # a reference at (or within noise of) chance leaves the share undefined, not huge
    assert np.isnan(pr.share_over_chance(0.36, 0.365, 0.36))
    assert np.isnan(pr.share_over_chance(0.36, 0.35, 0.36))


class RecordingLogistic(LogisticRegression):
    """A real logistic regression that also records every matrix it is fit on."""

    seen: list[np.ndarray] = []

    def fit(self, X, y, sample_weight=None):
        RecordingLogistic.seen.append(np.array(X))
        return super().fit(X, y, sample_weight)


def test_probe_never_fits_on_val_or_test_rows():
    rows, sig, _ = _market_rows(n_days=(20, 8, 8), per_day=20)
    RecordingLogistic.seen = []
    grid = [0.01, 0.1, 1.0]
    fit = pr.fit_classification_probe(
        sig,
        rows.label,
        rows.split,
        grid,
        estimator_factory=lambda c: RecordingLogistic(C=c, class_weight="balanced"),
    )
    train = np.flatnonzero(rows.split == 0)
    np.testing.assert_array_equal(fit.fit_rows, train)
    z_train = StandardScaler().fit(sig[train]).transform(sig[train]).astype(np.float32)
    assert len(RecordingLogistic.seen) == len(grid)
    for X in RecordingLogistic.seen:
        np.testing.assert_array_equal(X, z_train)  # exactly the train rows, nothing else
    assert fit.param in grid and set(fit.val_scores) == set(grid)
    assert fit.predictions.shape == rows.label.shape

    with pytest.raises(AssertionError, match="outside the train split"):
        lp._fit_train_only(
            LogisticRegression(), sig, rows.label, np.flatnonzero(rows.split != 2), rows.split
        )
    ridge = pr.fit_ridge_probe(sig, rows.fwd_rv, rows.split, [1.0, 10.0])
    np.testing.assert_array_equal(ridge.fit_rows, train)


def test_lift_ci_above_zero_with_signal_and_covers_zero_on_noise():
    rows, sig, noise = _market_rows(signal=0.8, n_days=(40, 20, 40))
    reps = {"signal": sig, "noise": noise}
    out = pr.probe_table(reps, rows, EV, eval_split=2, paired=(("signal", "noise"),))
    cls = {r["representation"]: r for r in out["classification"]}
    assert cls["majority"]["lift_accuracy"] == 0
    assert cls["majority"]["ci"]["lift_balanced"] == [pytest.approx(0), pytest.approx(0)]
    s, z = cls["signal"], cls["noise"]
    assert s["lift_balanced"] > 0 and s["ci"]["lift_balanced"][0] > 0
    lo, hi = z["ci"]["lift_balanced"]
    assert lo < 0 < hi
    assert s["confusion"] and sum(map(sum, s["confusion"])) == np.sum(rows.split == 2)
    assert set(s["per_class"]) == {"HOLD", "BUY_CALL", "BUY_PUT"}
    for key in ("accuracy", "balanced_accuracy", "macro_f1", "lift_accuracy"):
        a, b = s["ci"][key]
        assert a <= s[key] <= b

    t = out["paired_tests"][0]
    assert t["difference"] > 0 and t["ci"][0] > 0 and t["p_value"] < 0.05


def test_probe_table_regression_latent_and_rendering():
    rows, sig, noise = _market_rows(n_days=(30, 10, 10), per_day=30, signal=0.8)
    rv_rep = rows.fwd_rv[:, None] + 0.5 * np.random.default_rng(3).normal(size=(rows.split.size, 2))
    reps = {"signal": sig, "noise": noise, "har_rv": rv_rep.astype(np.float32)}
    reps["filter"] = rows.filter_probs.astype(np.float32)
    out = pr.probe_table(reps, rows, EV, eval_split=1)  # no test split: score on val
    assert "har_rv" not in {r["representation"] for r in out["classification"]}
    reg = {(r["representation"], r["target"]): r for r in out["regression"]}
    assert ("har_rv", "fwd_ret") not in reg
    assert reg[("har_rv", "fwd_rv")]["value"] > 0.5
    assert reg[("constant", "fwd_rv")]["value"] <= 0.01
    assert reg[("signal", "fwd_ret")]["metric"] == "ic"
    assert reg[("signal", "fwd_ret")]["value"] > 0.1  # labels carry the return sign

    lat = {r["representation"]: r for r in out["latent"]}
    assert lat["bayes_filter_argmax"]["share_of_filter"] == pytest.approx(1.0)
    assert lat["filter"]["accuracy"] == pytest.approx(lat["bayes_filter_argmax"]["accuracy"])
    assert abs(lat["noise"]["share_of_filter"]) < 0.2

    text = to_text(render_probe_tables({"evaluated_on": "val", "n_rows": {"val": 300}, **out}))
    assert "signal" in text and "har_rv" in text and "Latent" in text


def test_even_subsample():
    np.testing.assert_array_equal(even_positions(5, 0), np.arange(5))
    np.testing.assert_array_equal(even_positions(5, 10), np.arange(5))
    idx = even_positions(1000, 10)
    assert idx.size == 10 and idx[0] == 0 and idx[-1] == 999
    assert np.all(np.diff(idx) >= 110)


def test_non_finite_representation_is_a_clear_error():
    rows, sig, _ = _market_rows(n_days=(5, 3, 3), per_day=10)
    sig[3, 0] = np.nan
    with pytest.raises(pr.MarketJepaError, match="non-finite"):
        pr.probe_table({"lejepa": sig}, rows, EV)


# ---------------------------------------------------------------------------------------
# walk-forward evaluation
# ---------------------------------------------------------------------------------------


def test_walk_forward_fits_only_on_earlier_days_with_embargo(monkeypatch):
    from marketjepa.config import SplitConfig

    rows, sig, _ = _market_rows(n_days=(30, 10, 10), per_day=12)
    rows.day = rows.day + 7  # day indices need not start at 0
    embargo = 2
    seen = []
    real_fit = pr.fit_classification_probe

    def spy(X, y, split, *args, **kwargs):
        fit = real_fit(X, y, split, *args, **kwargs)
        seen.append((X[:, 0].copy(), split.copy(), X[fit.fit_rows, 0].copy()))
        return fit

    monkeypatch.setattr(pr, "fit_classification_probe", spy)
    X = np.column_stack([rows.day, sig]).astype(np.float32)  # column 0 = the row's day
    cfg = SplitConfig(embargo_days=embargo, walk_forward_folds=3)
    out = pr.walk_forward_probe({"rep": X}, rows, cfg, EV)
    assert len(seen) == 3 and out["n_folds"] == 3
    for (day, split, fit_days), fold in zip(seen, out["folds"], strict=True):
        fit, sel, scored = (day[split == s] for s in (0, 1, 2))
        np.testing.assert_array_equal(np.sort(fit_days), np.sort(fit))  # fit on TRAIN only
        # fit days < selection days < scored days, each gap at least the embargo
        assert fit.max() + embargo < sel.min() and sel.max() + embargo < scored.min()
        assert [scored.min(), scored.max()] == fold["days"]
        assert fold["n_rows"] == scored.size == np.sum(np.isin(rows.day, np.unique(scored)))
        assert fold["fit_days"] == [fit.min(), fit.max()] and fold["n_fit"] == fit.size
    # scored blocks follow each other, all probed rows after the first block get scored
    starts = [f["days"][0] for f in out["folds"]]
    assert starts == sorted(starts) and out["folds"][-1]["days"][1] == rows.day.max()
    assert sum(f["n_rows"] for f in out["folds"]) == np.sum(rows.day >= starts[0])


def test_walk_forward_finds_planted_direction_in_every_fold():
    from marketjepa.config import SplitConfig

    rows, sig, noise = _market_rows(n_days=(50, 15, 15), per_day=30, signal=1.0)
    cfg = SplitConfig(embargo_days=1, walk_forward_folds=3)
    names = np.array([f"day{d}" for d in range(rows.day.max() + 1)])
    out = pr.walk_forward_probe({"signal": sig, "noise": noise}, rows, cfg, EV, day_names=names)
    s = out["representations"]["signal"]
    assert [f["fold"] for f in s["folds"]] == [1, 2, 3]
    for f in s["folds"]:
        assert f["lift_direction"] > 0.1 and f["lift_balanced"] > 0.1
        assert f["direction_accuracy"] == pytest.approx(f["lift_direction"] + 0.5)
    lifts = [f["lift_direction"] for f in s["folds"]]
    assert s["mean"]["lift_direction"] == pytest.approx(np.mean(lifts))
    assert s["std"]["lift_direction"] == pytest.approx(np.std(lifts, ddof=1))
    assert s["pooled"]["ci"]["lift_direction"][0] > 0  # all scored blocks together
    assert abs(out["representations"]["noise"]["mean"]["lift_direction"]) < 0.1
    lo, hi = out["representations"]["noise"]["pooled"]["ci"]["lift_direction"]
    assert lo < 0 < hi
    assert out["folds"][0]["dates"] == [f"day{d}" for d in out["folds"][0]["days"]]
    text = to_text(render_probe_tables(_with_walk_forward(out)))
    assert "Walk-forward probes (3 expanding folds" in text and "signal" in text


def _with_walk_forward(wf):
    rows, sig, _ = _market_rows(n_days=(5, 3, 3), per_day=10)
    return pr.probe_table({"lejepa": sig}, rows, EV) | {
        "evaluated_on": "test",
        "n_rows": rows.counts(),
        "walk_forward": wf,
    }


# ---------------------------------------------------------------------------------------
# the stage, on a small hand-built prepared folder and a real (untrained) LeJEPA checkpoint
# ---------------------------------------------------------------------------------------


def _spy_train_supervised(monkeypatch):
    """Record every train_supervised call: weights at its first training step, the windows
    it trained on (encoder in train mode), its arguments and its final weights."""
    import torch

    from marketjepa.evaluate import baselines as bl

    calls, real = [], bl.train_supervised

    def state(module):
        return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}

    def spy(encoder, d_model, dataset, train_starts, train_labels, val_starts, val_labels, **kw):
        call = {"first_step": None, "fit_starts": [], "kw": kw}

        class Recording:  # the dataset, seen through what the training loop asks of it
            device = dataset.device

            def context(self, starts):
                if encoder.training and torch.is_grad_enabled():
                    if call["first_step"] is None:
                        call["first_step"] = state(encoder)
                    call["fit_starts"].append(np.asarray(starts).copy())
                return dataset.context(starts)

        res = real(
            encoder, d_model, Recording(), train_starts, train_labels, val_starts, val_labels, **kw
        )
        call |= {"train_starts": train_starts, "val_starts": val_starts}
        call |= {"final": state(res.model.encoder)}
        calls.append(call)
        return res

    monkeypatch.setattr(bl, "train_supervised", spy)
    return calls


def _same(a, b):
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_run_probes_writes_representations_and_json(tiny_run, capsys, monkeypatch):
    from marketjepa.artifacts import read_json
    from marketjepa.data.prepared import PreparedData
    from marketjepa.data.windows import WindowSpec
    from marketjepa.train.checkpoint import load_model

    cfg, prepared, run_dir = tiny_run
    cfg = cfg.model_copy(update={"split": cfg.split.model_copy(update={"walk_forward_folds": 3})})
    calls = _spy_train_supervised(monkeypatch)
    rp.run_represent(cfg, prepared, run_dir)
    assert not calls[2:]  # the label-trained encoders are trained by `represent` only...
    n_calls = len(calls)
    result = pr.run_probes(cfg, prepared, run_dir)
    assert len(calls) == n_calls  # ...never by `probe`

    # supervised, then lejepa_finetuned: the same protocol, only the initial weights differ
    assert len(calls) == 2
    sup, fine = calls
    pretrained = {k: v.cpu() for k, v in load_model(run_dir).encoder.state_dict().items()}
    assert _same(fine["first_step"], pretrained)  # starts from best.pt's encoder...
    assert not _same(fine["final"], pretrained)  # ...and training moved it
    assert not _same(sup["first_step"], pretrained)  # the supervised one starts at random
    assert fine["kw"] == sup["kw"]
    for key in ("train_starts", "val_starts"):
        np.testing.assert_array_equal(fine[key], sup[key])
    data, spec = PreparedData.load(prepared), WindowSpec.from_config(cfg.windows)
    for call in calls:  # every window that reached the optimizer is a train window
        fit = np.concatenate(call["fit_starts"])
        assert np.isin(fit, call["train_starts"]).all()
        assert np.all(data.split[spec.anchor(fit)] == pr.TRAIN)
        assert np.all(data.split[spec.anchor(call["val_starts"])] == pr.VAL)
    assert len(result["finetuned_history"]) == cfg.eval.supervised_epochs
    assert ("lejepa_finetuned", "supervised") in {(t["a"], t["b"]) for t in result["paired_tests"]}
    assert result["evaluated_on"] == "test"
    assert read_json(run_dir / "probes.json")["evaluated_on"] == "test"
    names = {r["representation"] for r in result["classification"]}
    expected = {"majority", "lejepa", "lejepa_mean", "raw_window", "hybrid", "random_init"}
    expected |= {"supervised", "lejepa_finetuned", "oracle_latent", "oracle_filter"}
    assert expected <= names
    reg_names = {r["representation"] for r in result["regression"]}
    assert reg_names >= {"har_rv", "har_rv_intraday", "constant"}
    assert {(t["a"], t["b"]) for t in result["paired_tests"]} >= {
        ("lejepa", "raw_window"),
        ("lejepa", "random_init"),
    }
    oracle = next(r for r in result["classification"] if r["representation"] == "oracle_latent")
    assert oracle["lift_balanced"] > 0.2  # the planted regime drives the labels
    with np.load(run_dir / "representations" / "lejepa.npz") as z:
        ref = {s: z[f"anchors_{s}"] for s in ("train", "val", "test")}
    for name in (names - {"majority"}) | {"har_rv", "har_rv_intraday"}:
        with np.load(run_dir / "representations" / f"{name}.npz") as z:
            for split in ("train", "val", "test"):
                assert z[split].shape[0] == result["n_rows"][split]
                np.testing.assert_array_equal(z[f"anchors_{split}"], ref[split])  # same rows
    wf = read_json(run_dir / "probes.json")["walk_forward"]
    assert set(wf["representations"]) == {"lejepa", "raw_window", "random_init", "oracle_filter"}
    assert wf["n_folds"] == len(wf["folds"]) == 3 and wf["embargo_days"] == cfg.split.embargo_days
    for f in wf["folds"]:  # days are the prepared session indices, named by their dates
        assert f["fit_days"][1] + cfg.split.embargo_days < f["days"][0]
        assert f["dates"][0] == str(data.frame["session"].unique().sort()[f["days"][0]])
    for r in wf["representations"].values():
        assert [f["n_rows"] for f in r["folds"]] == [f["n_rows"] for f in wf["folds"]]
        assert set(r["mean"]) == set(r["std"]) >= {"balanced_accuracy", "lift_direction"}
    out = capsys.readouterr().out
    assert "Entry-label probes on test rows" in out and "Walk-forward probes" in out


def test_run_probes_without_test_split_scores_on_val(tiny_run, tmp_path):
    import shutil

    cfg, prepared, run_dir = tiny_run
    run2 = tmp_path / "run"
    shutil.copytree(run_dir / "checkpoints", run2 / "checkpoints")
    for name in ("train", "val"):
        (run2 / "embeddings").mkdir(exist_ok=True)
        shutil.copy(run_dir / "embeddings" / f"{name}.npz", run2 / "embeddings")
    split2 = cfg.split.model_copy(update={"val": 0.3, "test": 0.0, "walk_forward_folds": 0})
    eval2 = cfg.eval.model_copy(update={"finetune": False})
    cfg2 = cfg.model_copy(update={"split": split2, "eval": eval2})
    rp.run_represent(cfg2, prepared, run2)
    result = pr.run_probes(cfg2, prepared, run2)
    assert result["evaluated_on"] == "val"
    assert result["n_rows"]["test"] == 0
    assert any("no test split" in n for n in result["notes"])
    # both extras are off: no fine-tuned encoder, no walk-forward section
    assert "lejepa_finetuned" not in {r["representation"] for r in result["classification"]}
    assert not (run2 / "representations" / "lejepa_finetuned.npz").exists()
    assert "walk_forward" not in result and "finetuned_history" not in result


def test_direction_accuracy_from_confusion_matrix():
    from marketjepa.evaluate.probes import direction_accuracy

    # rows = truth (HOLD, CALL, PUT); HOLD rows and HOLD predictions carry no direction
    cm = np.array([[50, 7, 3], [4, 6, 2], [9, 1, 3]])
    assert direction_accuracy(cm) == pytest.approx(0.5 * (6 / 8 + 3 / 4))
    assert np.isnan(direction_accuracy(np.diag([5, 0, 0])))


def test_volatility_timing_gives_balanced_lift_but_no_direction_lift():
    # A predictor that knows *when* a large move comes but guesses its sign at random:
    # balanced accuracy rises well above 1/3, direction accuracy stays at chance.
    rng = np.random.default_rng(0)
    n = 20000
    y = rng.choice(3, size=n, p=[0.8, 0.1, 0.1])
    moves = y > 0
    pred = np.where(moves, rng.integers(1, 3, size=n), 0)
    m = pr.classification_metrics(y, pred, 3, 0)
    assert m["lift_balanced"] > 0.25
    assert abs(m["lift_direction"]) < 0.03

"""`marketjepa sweep`: an Optuna study over the pretraining levers (issue #12).

Each trial samples one configuration from :data:`SEARCH_SPACE` (applied over the run's
config), pretrains it at a reduced budget (``--epochs`` × ``--steps`` steps) and scores it
with :func:`marketjepa.tune.levers.validation_score`: a probe fitted on train days and
scored on **validation days only** (latent-regime share where the synthetic truth exists,
else direction lift). Test days are never read by a trial.

Storage is SQLite in the sweep folder (``study.db``, study name ``levers``), so a killed
sweep resumes where it stopped: ``--trials N`` is the total number of finished trials to
reach, not the number to add. Every trial's sampled levers, scores and seconds are Optuna
user attributes and are also written to ``trials.csv``; ``sweep.json`` holds the best
trial, its full resolved config (``best_config.yaml``, with ``train.sweep_trials`` set to
the number of finished trials so the DSR of the policy built on it counts them) and the
trial count.

Sampler: TPE (Bergstra et al. 2011) with a fixed seed; the first trials are random.

Objective ``share`` (default) ranks the trained encoder's validation score; at a budget of
a few dozen steps that ranks *architectures* (every trial of the measured 30-trial study
landed within ±0.02 of its own random-init encoder, docs/levers.md). ``gain`` subtracts
the score of the same architecture with random weights (``build_encoder`` at
``train.seed``, scored identically), which is what issue #12 asks pretraining to beat;
each trial then embeds the probe rows twice, and only the time cap prunes (the median
pruner's per-epoch share measures the architecture, not the gain).

Reduced budget (issue #12: ≥ 30 trials in ≤ 60 minutes on 2 cores; the CLI's defaults,
measured in docs/levers.md "The sweep"). A trial's time is almost all pretraining steps
and the loop's per-epoch validation (``val_windows`` sets ``train.max_val_windows``);
``probe_windows`` caps the evenly spaced train and validation anchors of
:func:`validation_score` (default 6,000, as in the levers experiment). With ``prune`` an
Optuna ``MedianPruner`` stops a trial after an epoch before the last when its per-epoch
validation latent share (the loop's own latent probe on validation windows, computed
anyway) is below the median of the finished trials at that epoch; ``trial_seconds``
(0 = off) prunes a trial whose pretraining has run longer than that after an epoch
before the last. Pruned trials count toward ``--trials`` and are recorded as ``PRUNED``
with the reason. The budget is stored in the study, so a resume with other budget
options is refused.
"""

from __future__ import annotations

import csv
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from marketjepa.artifacts import write_json
from marketjepa.config import Config, save_config
from marketjepa.console import stage_line
from marketjepa.constants import TRAIN, VAL
from marketjepa.data.prepared import PreparedData
from marketjepa.data.windows import WindowSpec
from marketjepa.errors import MarketJepaError
from marketjepa.evaluate.baselines import build_encoder
from marketjepa.train.checkpoint import load_model
from marketjepa.train.pretrain import train_lejepa
from marketjepa.tune.levers import probe_starts, validation_score, with_overrides

STUDY_NAME = "levers"
# What a trial maximizes (validation days only).
OBJECTIVES = {
    "share": "validation days only: latent share where truth exists, else direction lift",
    "gain": "validation days only: latent share (else direction lift) minus that of the "
    "same architecture with random weights",
}

# Cap on each split's probe anchors when scoring a trial. Scoring is ~2% of a trial
# (12 s of 670 s, profiled) and fewer anchors make the share noisy (one trial: 0.506 at
# 6,000, 0.339 at 1,500, 0.476 at 1,000), so the default stays validation_score's 6,000.
PROBE_WINDOWS = 6000
# Finished trials before the median pruner may stop one.
PRUNER_STARTUP = 5

# name → (kind, choices) ; every lever of issue #12 that is a config option.
SEARCH_SPACE: dict[str, tuple[str, list[Any]]] = {
    "model.causal": ("cat", [False, True]),
    "loss.target_path": ("cat", ["separate", "sequence"]),
    # target span in patches; multi-scale pools the first 1, T/4 and T target patches
    "windows.target_patches": ("cat", [3, 6, 12, 24]),
    "target_scales": ("cat", ["per_patch", "multi_scale"]),
    "loss.sigreg_on": ("cat", ["pooled", "tokens", "both"]),
    "loss.sigreg_pooling": ("cat", ["same", "mean"]),
    "loss.lambda_sigreg": ("log", [0.1, 10.0]),
    "model.predictor_layers": ("cat", [1, 2, 3]),
    "model.predictor_d_model": ("cat", [32, 64, 128]),
    "windows.context_patches": ("cat", [12, 24, 36]),
    "windows.patch_len": ("cat", [5, 10]),
    "model.pooling": ("cat", ["last", "mean"]),
    # needs model.pooling=last: a trial with mean pooling skips it
    "model.session_mask": ("cat", [False, True]),
    # channels removed from the encoder's input / from the target path only
    "input_exclude": ("cat", ["none", "calendar"]),
    "target_exclude": ("cat", ["none", "calendar"]),
    "model.revin": ("cat", [False, True]),
    "loss.aux_infonce": ("cat", [0.0, 0.1, 0.5]),
    # needs model.causal: a trial pairing it with bidirectional attention is pruned
    "loss.context_mask_patches": ("cat", [0, 4, 8]),
}


# Search-space names that are not config keys (sample_levers maps them to config values).
DERIVED = ("target_scales", "input_exclude", "target_exclude")


def scales_for(kind: str, target_patches: int) -> list[int]:
    """``per_patch`` → ``[]`` (every target patch a horizon); ``multi_scale`` → 1, T/4, T."""
    if kind == "per_patch":
        return []
    return sorted({1, max(1, target_patches // 4), target_patches})


def sample_levers(
    trial: Any, space: dict[str, tuple[str, list[Any]]] | None = None, target_patches: int = 3
) -> dict[str, Any]:
    """Dotted config changes for one Optuna trial (``space`` defaults to SEARCH_SPACE;
    ``target_patches`` is the span when the space does not sample it)."""
    raw: dict[str, Any] = {}
    for name, (kind, values) in (space or SEARCH_SPACE).items():
        if name == "loss.context_mask_patches" and not raw.get("model.causal", True):
            continue  # conditional: block masking needs causal attention
        if name == "model.session_mask" and raw.get("model.pooling", "last") != "last":
            continue  # conditional: the session mask confines the last token
        if kind == "cat":
            raw[name] = trial.suggest_categorical(name, values)
        else:
            raw[name] = trial.suggest_float(name, values[0], values[1], log=True)
    changes = {k: v for k, v in raw.items() if k not in DERIVED}
    if "target_scales" in raw:
        t = raw.get("windows.target_patches", target_patches)
        changes["loss.target_scales"] = scales_for(raw["target_scales"], t)
    for name, key in (
        ("input_exclude", "model.input_exclude"),
        ("target_exclude", "loss.target_exclude"),
    ):
        if name in raw:
            changes[key] = [] if raw[name] == "none" else [raw[name]]
    return changes


def _storage(out_dir: Path):
    out_dir.mkdir(parents=True, exist_ok=True)
    return optuna.storages.RDBStorage(f"sqlite:///{(out_dir / 'study.db').resolve()}")


def run_sweep(
    cfg: Config,
    prepared_dir: Path,
    out_dir: Path,
    n_trials: int = 30,
    epochs: int = 2,
    steps: int = 60,
    seed: int = 0,
    probe_windows: int = PROBE_WINDOWS,
    prune: bool = True,
    trial_seconds: float = 0.0,
    val_windows: int | None = None,
    objective: str = "share",
) -> dict[str, Any]:
    """Run (or resume) the study until ``n_trials`` trials have finished; see module doc.

    The prepared arrays are read once per call, not once per trial."""
    data = PreparedData.load(Path(prepared_dir))
    return sweep_arrays(
        cfg,
        data.features,
        data.split,
        data.label,
        data.truth,
        out_dir,
        n_trials=n_trials,
        epochs=epochs,
        steps=steps,
        seed=seed,
        feature_names=data.feature_names,
        probe_windows=probe_windows,
        prune=prune,
        trial_seconds=trial_seconds,
        val_windows=val_windows,
        objective=objective,
    )


def sweep_arrays(
    cfg: Config,
    features: np.ndarray,
    split: np.ndarray,
    label: np.ndarray,
    truth: dict[str, np.ndarray] | None,
    out_dir: Path,
    *,
    n_trials: int = 30,
    epochs: int = 2,
    steps: int = 60,
    seed: int = 0,
    space: dict[str, tuple[str, list[Any]]] | None = None,
    feature_names: list[str] | None = None,
    probe_windows: int = PROBE_WINDOWS,
    prune: bool = True,
    trial_seconds: float = 0.0,
    val_windows: int | None = None,
    objective: str = "share",
) -> dict[str, Any]:
    """:func:`run_sweep` on in-memory arrays (``label`` −1 = unlabelled row); ``space``
    replaces :data:`SEARCH_SPACE` (e.g. a smaller one for tiny data); ``feature_names``
    are needed by the levers that select input columns."""
    if objective not in OBJECTIVES:
        raise MarketJepaError(f"unknown sweep objective {objective!r}; use one of {OBJECTIVES}")
    if probe_windows < 0 or trial_seconds < 0 or (val_windows or 0) < 0:
        raise MarketJepaError(
            "probe_windows, trial_seconds and val_windows must be >= 0; got "
            f"{probe_windows}, {trial_seconds}, {val_windows}"
        )
    out_dir = Path(out_dir)
    features = np.asarray(features, np.float32)
    split, label = np.asarray(split), np.asarray(label)
    budget = {
        "train.epochs": epochs,
        "train.max_steps_per_epoch": steps,
        "train.watchdog.enabled": False,
    }
    if val_windows is not None:  # the loop's per-epoch validation windows (pruning signal)
        budget["train.max_val_windows"] = val_windows
    scoring = {"probe_windows": probe_windows, "prune": prune, "trial_seconds": trial_seconds}
    if objective != "share":  # studies stored before the option keep their budget key set
        scoring["objective"] = objective
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # The median pruner reads the per-epoch latent share, an architecture's level: a fair
    # early signal for the 'share' objective, none for 'gain' (trained minus random init),
    # where it would drop the strong architectures before their gain is known.
    pruner = (
        optuna.pruners.MedianPruner(n_startup_trials=PRUNER_STARTUP, n_warmup_steps=0)
        if prune and objective == "share"
        else optuna.pruners.NopPruner()
    )
    study = optuna.create_study(
        study_name=STUDY_NAME,
        storage=_storage(out_dir),
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=10),
        pruner=pruner,
        load_if_exists=True,
    )
    _check_budget(study, budget | scoring, out_dir)

    def on_epoch_end(trial: optuna.Trial, t0: float):
        """Report the loop's per-epoch validation latent share; prune before the last epoch."""

        def hook(epoch: int, row: dict[str, Any], _model: Any) -> None:
            share = row.get("latent_share", math.nan)
            if share is not None and math.isfinite(share):
                trial.set_user_attr(f"epoch{epoch}_latent_share", float(share))
            if epoch >= epochs:
                return  # the last epoch is scored by validation_score, not pruned
            if share is not None and math.isfinite(share):
                trial.report(float(share), epoch)
                if trial.should_prune():
                    trial.set_user_attr("pruned", f"median pruner after epoch {epoch}")
                    raise optuna.TrialPruned()
            elapsed = time.time() - t0
            if trial_seconds and elapsed > trial_seconds:
                trial.set_user_attr(
                    "pruned", f"over {trial_seconds:.0f}s after epoch {epoch} ({elapsed:.0f}s)"
                )
                raise optuna.TrialPruned()

        return hook

    def run_trial(trial: optuna.Trial) -> float:
        changes = sample_levers(trial, space, cfg.windows.target_patches)
        try:
            tcfg = with_overrides(cfg, changes | budget, f"sweep trial {trial.number}")
        except Exception as exc:  # an impossible combination (e.g. window too long)
            trial.set_user_attr("error", str(exc).splitlines()[-1].split(" (got ")[0])
            raise optuna.TrialPruned() from None
        t0 = time.time()
        run = out_dir / "trials" / f"{trial.number:04d}"
        trial.set_user_attr("changes", changes)
        try:
            train_lejepa(
                tcfg,
                features,
                split,
                run,
                truth=truth,
                feature_names=feature_names,
                on_epoch_end=on_epoch_end(trial, t0),
            )
        except MarketJepaError as exc:  # too few windows for this geometry, divergence
            trial.set_user_attr("error", str(exc))
            raise optuna.TrialPruned() from None
        except optuna.TrialPruned:
            trial.set_user_attr("seconds", time.time() - t0)
            stage_line(
                "sweep",
                f"trial {trial.number}: pruned ({trial.user_attrs['pruned']}, "
                f"{time.time() - t0:.0f}s) {changes}",
            )
            raise

        model = load_model(run, which="best", device="cpu")
        scores = validation_score(
            model.encoder, tcfg, features, split, label, truth, max_windows=probe_windows
        )
        ctx_len = WindowSpec.from_config(tcfg.windows).context_len
        n = probe_starts(split, label, ctx_len, (TRAIN, VAL), probe_windows)
        trial.set_user_attr("probe_anchors", [int(n[TRAIN].size), int(n[VAL].size)])
        trial.set_user_attr("seconds", time.time() - t0)
        if objective == "gain":  # minus the same architecture with random weights
            spec = WindowSpec.from_config(tcfg.windows)
            enc0 = build_encoder(
                features.shape[1], spec, tcfg.model, tcfg.train.seed, feature_names
            )
            base = validation_score(
                enc0, tcfg, features, split, label, truth, max_windows=probe_windows
            )
            trial.set_user_attr("random_init_objective", base["objective"])
            scores["objective"] = scores["objective"] - base["objective"]
        for k, v in scores.items():
            trial.set_user_attr(k, v)
        stage_line(
            "sweep",
            f"trial {trial.number}: objective {scores['objective']:.3f} "
            f"({time.time() - t0:.0f}s) {changes}",
        )
        return float(scores["objective"]) if math.isfinite(scores["objective"]) else -1.0

    def finished() -> int:
        states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
        return len(study.get_trials(deepcopy=False, states=states))

    t0 = time.time()
    while finished() < n_trials:
        study.optimize(run_trial, n_trials=1)
    return _write_summary(study, cfg, out_dir, budget | scoring, time.time() - t0)


def _check_budget(study: optuna.Study, budget: dict[str, Any], out_dir: Path) -> None:
    """Store the budget in a new study; refuse to resume one run with another budget
    (its trials would not be comparable)."""
    stored = study.user_attrs.get("budget")
    if stored is None:
        if study.get_trials(deepcopy=False):
            raise MarketJepaError(
                f"{out_dir / 'study.db'}: the study has trials but no recorded budget "
                "(written by an older version); use a new --out"
            )
        study.set_user_attr("budget", budget)
    elif stored != budget:
        diff = {k: (stored.get(k), v) for k, v in budget.items() if stored.get(k) != v}
        raise MarketJepaError(
            f"{out_dir / 'study.db'}: the study was run with another budget "
            f"(stored vs now: {diff}); rerun with the same options or use a new --out"
        )


def _write_summary(study, cfg: Config, out_dir: Path, budget, seconds: float) -> dict[str, Any]:
    trials = study.get_trials(deepcopy=False)
    rows = []
    for t in trials:
        rows.append(
            {
                "number": t.number,
                "state": t.state.name,
                # a pruned trial's value is its last intermediate, not the objective
                "objective": t.value if t.state == optuna.trial.TrialState.COMPLETE else None,
                **{k: t.user_attrs.get(k) for k in ("latent_share", "direction_lift", "seconds")},
                "epoch1_latent_share": t.user_attrs.get("epoch1_latent_share"),
                "random_init_objective": t.user_attrs.get("random_init_objective"),
                "changes": t.user_attrs.get("changes"),
                "pruned": t.user_attrs.get("pruned"),
                "error": t.user_attrs.get("error"),
            }
        )
    with open(out_dir / "trials.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["number"])
        w.writeheader()
        w.writerows(rows)
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    n_finished = sum(
        t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
        for t in trials
    )
    summary: dict[str, Any] = {
        "study": STUDY_NAME,
        "storage": "study.db",
        "n_trials": n_finished,
        "n_complete": len(complete),
        "budget": budget,
        "objective": OBJECTIVES[budget.get("objective", "share")],
        "seconds_this_call": seconds,
        "trials": rows,
    }
    if complete:
        best = study.best_trial
        changes = best.user_attrs["changes"]
        bcfg = with_overrides(cfg, changes | {"train.sweep_trials": n_finished}, "sweep best")
        save_config(bcfg, out_dir / "best_config.yaml")
        summary["best"] = {"number": best.number, "value": best.value, "changes": changes}
    write_json(out_dir / "sweep.json", summary)
    best_line = (
        f"best trial {summary['best']['number']}: {summary['best']['value']:.3f}"
        if complete
        else "no trial completed"
    )
    stage_line("sweep", f"{n_finished} trials in {out_dir} ({best_line}); {seconds:.0f}s")
    return summary

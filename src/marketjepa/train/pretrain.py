"""The pretraining loop (one readable function, nanoGPT-style; DESIGN §3–4, issues #5, #14).

Per optimizer step: gather a shuffled global batch of window starts, take this rank's
shard, ``loss = LeJEPA(context, target, step)`` under bf16 autocast on CUDA, backward,
clip the gradient norm, check loss and gradient are finite (else stop with
:class:`TrainingDiverged` *before* the update, keeping the last good checkpoint), AdamW
step at the warmup+cosine learning rate (:mod:`marketjepa.train.schedule`), EMA update of
the target encoder (if enabled).

Per epoch (rank 0): validation losses on up to ``train.max_val_windows`` evenly spaced
validation windows (fixed SIGReg directions, so epochs are comparable), collapse
diagnostics of the validation embeddings for the tensor SIGReg regularizes (``sig_*``)
and the tensor the probes use (``probe_*``), the latent-regime probe on synthetic data,
a row in ``metrics.csv`` and TensorBoard, ``checkpoints/last.pt``, and the collapse
watchdog (:mod:`marketjepa.train.watchdog`).

**Best checkpoint.** A collapsed encoder trivially reaches a low prediction loss (constant
embeddings are perfectly predictable), so ``best.pt`` is the epoch with the lowest
validation *total* loss (prediction + SIGReg term, the objective itself, which penalizes
collapse) among epochs whose collapse verdict (:func:`marketjepa.model.collapse.row_verdict`
on both tensors, ``eval.*`` thresholds) is not COLLAPSED. Any non-collapsed epoch beats
every collapsed one; if all epochs collapsed, the one with the highest probe-tensor
RankMe/d is kept (and the run is reported as collapsed).

**Determinism and resume.** Model init uses ``torch.manual_seed(train.seed)``; the
window order of epoch ``e`` is a permutation from ``numpy.random.default_rng([seed, e])``;
SIGReg directions are a function of ``(seed, step)``. ``last.pt`` holds model, optimizer,
step, torch RNG states and the metrics history, so ``resume=True`` continues after the
last completed epoch and, on CPU, reproduces the uninterrupted run's losses.

**DDP.** Under ``torchrun`` each rank takes an equal contiguous shard of every global
batch; see :mod:`marketjepa.train.distributed` for why losses and gradients equal the
single-process ones. Only rank 0 evaluates and writes files; its stop decision is
broadcast.

The loop below only sequences the parts: window plan and batches
(:mod:`~marketjepa.train.batches`), validation (:mod:`~marketjepa.train.validation`),
``best.pt`` / ``last.pt`` and resume (:mod:`~marketjepa.train.checkpoint`), logging
(:mod:`~marketjepa.train.run_log`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from marketjepa.config import Config
from marketjepa.console import stage_line
from marketjepa.data.prepared import PreparedData
from marketjepa.data.windows import WindowDataset, WindowSpec
from marketjepa.device import autocast_ctx
from marketjepa.errors import MarketJepaError, TrainingDiverged
from marketjepa.model.jepa import LeJEPA
from marketjepa.results import PretrainSummary, validate_result, write_result
from marketjepa.train.batches import (
    Batch,
    BatchSampler,
    WindowPlan,
    build_future_means,
    needs_gap,
    plan_windows,
)
from marketjepa.train.checkpoint import Checkpoints, TrainState
from marketjepa.train.distributed import (
    DistEnv,
    broadcast_flag,
    cleanup_distributed,
    make_reduce_fn,
    mean_across_ranks,
    setup_distributed,
)
from marketjepa.train.run_log import METRIC_COLUMNS, RunLog
from marketjepa.train.schedule import lr_at
from marketjepa.train.validation import Validator
from marketjepa.train.watchdog import CollapseWatchdog

BEST_CRITERION = (
    "lowest val_loss (pred + SIGReg term) among epochs whose collapse verdict is not "
    "COLLAPSED on either tensor; if all collapsed, highest probe_rankme_ratio"
)

TRAIN_LOSSES = ("train_loss", "train_pred", "train_sigreg")
VAL_LOSSES = ("val_loss", "val_pred", "val_sigreg")

EpochCallback = Callable[[int, dict[str, Any], nn.Module], None]


@dataclass(frozen=True)
class PretrainInputs:
    """Row-aligned arrays one pretraining run reads (see :func:`train_lejepa`)."""

    features: np.ndarray
    split: np.ndarray
    truth: dict[str, np.ndarray] | None = None
    session: np.ndarray | None = None
    feature_names: list[str] | None = None

    @property
    def n_features(self) -> int:
        return int(self.features.shape[1])


# --------------------------------------------------------------------------- helpers


def build_optimizer(model: nn.Module, cfg: Config, device: torch.device) -> torch.optim.AdamW:
    """AdamW; weight decay on matrices only (not biases, LayerNorm gains), as in nanoGPT."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    groups = [
        {"params": decay, "weight_decay": cfg.train.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    fused = device.type == "cuda"
    return torch.optim.AdamW(groups, lr=cfg.train.lr, betas=(0.9, 0.95), fused=fused)


def compile_model(model: nn.Module) -> None:
    """``torch.compile`` the transformer parts in place (state-dict keys unchanged).

    SIGReg stays eager: its directions come from a per-step CPU generator, which would
    force a graph break and a recompile for every new step value.
    """
    for part in (model.encoder, model.predictor, model.target_encoder):
        if part is not None:
            part.compile()


def best_key(row: dict[str, Any]) -> tuple[int, float]:
    """Sort key of ``best.pt`` candidates (lower is better; see the module docstring)."""
    if row["collapsed"]:
        return (1, -row["probe_rankme_ratio"])
    return (0, row["val_loss"])


# ---------------------------------------------------------------------------- step


def train_step(
    net: nn.Module,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: Batch,
    step: int,
    cfg: Config,
    device: torch.device,
    reduce_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> dict[str, float]:
    """Forward, backward and gradient clipping of one step (no update yet).

    ``net`` is the (DDP/compiled) module called, ``model`` the bare LeJEPA. Returns
    ``loss, pred, sigreg, gradient norm`` as host floats — one device sync per step, which
    both logs them and lets the caller refuse a non-finite update.
    """
    with autocast_ctx(device, cfg.train.bf16):
        out = net(
            batch.context,
            batch.target,
            step=step,
            seed=cfg.train.seed,
            reduce_fn=reduce_fn,
            gap=batch.gap,
            future=batch.future,
            session=batch.session,
        )
    optimizer.zero_grad(set_to_none=True)
    out["loss"].backward()
    clip = cfg.train.grad_clip if cfg.train.grad_clip > 0 else math.inf
    gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    values = torch.stack([out["loss"], out["pred"], out["sigreg"], gnorm]).float().tolist()
    return dict(zip(("loss", "pred", "sigreg", "gradient norm"), values, strict=True))


# ----------------------------------------------------------------------------- loop


def pretrain(cfg: Config, prepared_dir: Path, run_dir: Path, resume: bool = False) -> dict:
    """Pretrain on a prepared dataset; writes checkpoints/, metrics.csv, tb/, pretrain.json."""
    data = PreparedData.load(Path(prepared_dir))
    return train_lejepa(
        cfg,
        data.features,
        data.split,
        Path(run_dir),
        truth=data.truth,
        resume=resume,
        session=data.session,
        feature_names=data.feature_names,
    )


def train_lejepa(
    cfg: Config,
    features: np.ndarray,
    split: np.ndarray,
    run_dir: Path,
    truth: dict[str, np.ndarray] | None = None,
    resume: bool = False,
    on_epoch_end: EpochCallback | None = None,
    session: np.ndarray | None = None,
    feature_names: list[str] | None = None,
) -> dict[str, Any]:
    """Pretrain LeJEPA on ``features [N, F]`` with ``split [N]`` (0 train, 1 val).

    ``truth`` (synthetic data) holds row-aligned ``regime`` and ``filter_p*`` arrays for
    the latent probe. ``on_epoch_end(epoch, row, model)`` runs after each epoch's
    checkpoint is written (progress hooks, experiments). ``session [N]`` (trading-day
    index) is needed only by ``loss.aux_future_mean``, ``loss.aux_session_contrast`` and
    ``train.anchors_per_session`` > 1; ``feature_names [F]`` by the options
    that select columns (``loss.future_mean_features``, ``model.input_exclude``,
    ``model.session_mask``, ``loss.target_exclude``); checkpoints store them so
    :func:`~marketjepa.train.checkpoint.load_model` rebuilds the same model. Returns the
    ``pretrain.json`` summary (rank 0; other ranks get a dict with ``status`` only).
    """
    features = np.asarray(features, dtype=np.float32)
    split = np.asarray(split)
    if features.ndim != 2 or split.shape != (features.shape[0],):
        raise MarketJepaError(
            f"features must be [N, F] and split [N]; got {features.shape} and {split.shape}"
        )
    names = list(feature_names) if feature_names is not None else None
    inputs = PretrainInputs(features, split, truth, session, names)
    owns_group = not torch.distributed.is_initialized()  # a caller's group is left alone
    env = setup_distributed(cfg.train.device)
    owns_group = owns_group and env.distributed
    ok = False
    try:
        out = _train(cfg, inputs, Path(run_dir), resume, on_epoch_end, env)
        ok = True
        return out
    finally:
        if owns_group:
            cleanup_distributed(env, ok)


def _train(
    cfg: Config,
    inp: PretrainInputs,
    run_dir: Path,
    resume: bool,
    on_epoch_end: EpochCallback | None,
    env: DistEnv,
) -> dict[str, Any]:
    t0 = time.time()
    tc, device = cfg.train, env.device
    spec = WindowSpec.from_config(cfg.windows)
    plan = plan_windows(cfg, inp.split, spec, env, inp.session)
    torch.manual_seed(tc.seed)
    model = LeJEPA(inp.n_features, spec, cfg.model, cfg.loss, inp.feature_names).to(device)
    optimizer = build_optimizer(model, cfg, device)
    ckpts = Checkpoints(run_dir, cfg, inp.n_features, inp.feature_names)
    state = TrainState(CollapseWatchdog(tc.watchdog))
    if resume and (done := _resume(ckpts, model, optimizer, state, env)) is not None:
        return done
    net: nn.Module = model
    if env.distributed:
        net = DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
    if tc.compile:
        compile_model(model)
    reduce_fn = make_reduce_fn(env)
    data = WindowDataset(inp.features, spec, device)
    future_means = build_future_means(
        cfg, inp.features, inp.split, inp.session, inp.feature_names, device
    )
    # Anchor days travel with the batches only for the loss that reads them.
    contrast_days = inp.session if cfg.loss.aux_session_contrast > 0 else None
    batches = BatchSampler(data, plan, env, tc.seed, needs_gap(cfg), future_means, contrast_days)
    validator = Validator(
        data, plan.val_starts, cfg, inp.truth, future_means, contrast_days, plan.train_starts
    )
    if env.is_main and state.step == 0:
        state.latent_init = validator.latent_row(model)
    log = RunLog(run_dir, plan.total_steps, tc.epochs, state.step, env.is_main)
    try:
        for epoch in range(state.epoch, tc.epochs):
            t_epoch = time.time()
            order = batches.epoch_order(epoch)
            sums = np.zeros(3)
            model.train()
            for i in range(plan.steps_per_epoch):
                lr = lr_at(state.step, plan.total_steps, tc.lr, tc.warmup_frac, tc.min_lr_frac)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                batch = batches.batch(order, i)
                vals = train_step(net, model, optimizer, batch, state.step, cfg, device, reduce_fn)
                _check_finite(vals, epoch, state, ckpts, env, t0)
                optimizer.step()
                model.update_ema()
                state.step += 1
                sums += (vals["loss"], vals["pred"], vals["sigreg"])
                log.step(state.step, epoch, i == plan.steps_per_epoch - 1, {**vals, "lr": lr})

            train_means = sums / max(plan.steps_per_epoch, 1)
            train_means = mean_across_ranks(torch.tensor(train_means, device=device), env)
            stop, row = False, {}
            if env.is_main:
                row = validator.epoch_row(model, epoch, state.step, lr)
                row.update(zip(TRAIN_LOSSES, train_means.tolist(), strict=True))
                _check_finite({k: row[k] for k in VAL_LOSSES}, epoch, state, ckpts, env, t0)
                row["seconds"] = time.time() - t_epoch
                stop = _record_epoch(row, state, model, optimizer, ckpts, log)
            if on_epoch_end is not None:
                on_epoch_end(epoch + 1, row, model)
            if broadcast_flag(stop, env):
                state.status = "collapsed"
                break
    finally:
        log.close()
    if not env.is_main:
        return {"status": state.status}
    return _finish(state, plan, env, model.d_model, run_dir, t0)


def _resume(
    ckpts: Checkpoints,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    state: TrainState,
    env: DistEnv,
) -> dict[str, Any] | None:
    """Restore from ``last.pt`` if there is one; the summary if that run already finished."""
    say = stage_line if env.is_main else (lambda *_: None)
    if not ckpts.last.exists():
        say("pretrain", f"no {ckpts.last} to resume from; starting from scratch")
        return None
    done = ckpts.resume(model, optimizer, state, env.device)
    if done is not None:
        say("pretrain", f"already {done['status']} in {ckpts.run_dir}; nothing to resume")
    elif not state.watchdog.stopped:
        say("pretrain", f"resuming {ckpts.run_dir} after epoch {state.epoch} (step {state.step})")
    return done


def _record_epoch(
    row: dict[str, Any],
    state: TrainState,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    ckpts: Checkpoints,
    log: RunLog,
) -> bool:
    """Book a finished epoch (rank 0): history, watchdog, checkpoints, logs; True = stop."""
    state.history.append(row)
    state.epoch = row["epoch"]
    stop = state.watchdog.update(row)
    if state.best is None or best_key(row) < tuple(state.best["key"]):
        state.best = {"epoch": state.epoch, "key": list(best_key(row))}
        ckpts.save_best(model, state)
    ckpts.save_last(model, optimizer, state)
    log.epoch(state.history)
    if stop:
        state.status, state.message = "collapsed", state.watchdog.message
    return stop


def _summary(state: TrainState, t0: float) -> dict[str, Any]:
    history = state.history
    return {
        "status": state.status,
        "epochs_run": len(history),
        "best_epoch": state.best["epoch"] if state.best else None,
        "best_criterion": BEST_CRITERION,
        "message": state.message,
        "seconds": time.time() - t0,
        "final": {k: history[-1].get(k) for k in METRIC_COLUMNS} if history else {},
        "collapsed_epochs": [r["epoch"] for r in history if r.get("collapsed")],
        "latent_init": state.latent_init,
    }


def _finish(
    state: TrainState, plan: WindowPlan, env: DistEnv, d_model: int, run_dir: Path, t0: float
) -> dict[str, Any]:
    """Write and return ``pretrain.json``; one console line."""
    summary = _summary(state, t0)
    summary.update(
        steps=state.step,
        steps_per_epoch=plan.steps_per_epoch,
        global_batch=plan.global_batch,
        world_size=env.world_size,
        device=str(env.device),
        n_train_windows=int(plan.train_starts.size),
        n_val_windows=int(plan.val_starts.size),
    )
    write_result(
        run_dir / "pretrain.json", validate_result(summary, PretrainSummary, "pretrain.json")
    )
    last = state.history[-1] if state.history else {}
    line = (
        f"{state.status}: {len(state.history)} epochs, {state.step} steps in "
        f"{summary['seconds']:.0f}s; best epoch {summary['best_epoch']}; val loss "
        f"{last.get('val_loss', math.nan):.4f}, RankMe "
        f"{last.get('probe_rankme', math.nan):.1f}/{d_model}"
    )
    if state.status == "collapsed":
        line += f" — {state.message}"
    stage_line("pretrain", line)
    return summary


def _check_finite(
    values: dict[str, float],
    epoch: int,
    state: TrainState,
    ckpts: Checkpoints,
    env: DistEnv,
    t0: float,
) -> None:
    """Stop with :class:`TrainingDiverged` (``pretrain.json`` says where) on a non-finite value."""
    bad = [(name, v) for name, v in values.items() if not math.isfinite(v)]
    if not bad:
        return
    name, value = bad[0]
    last_epoch = state.history[-1]["epoch"] if state.history else 0
    kept = (
        f"last good checkpoint kept: {ckpts.last} (epoch {last_epoch})"
        if ckpts.last.exists()
        else "no checkpoint was written before this"
    )
    message = (
        f"training diverged: {name} is {value} at epoch {epoch + 1}, step {state.step}; "
        f"{kept}. Try a lower train.lr, train.grad_clip > 0, or check the features for "
        "extreme values"
    )
    if env.is_main:
        state.status, state.message = "diverged", message
        summary = _summary(state, t0)
        summary["diverged_at"] = {"epoch": epoch + 1, "step": state.step, "value": name}
        write_result(
            ckpts.run_dir / "pretrain.json",
            validate_result(summary, PretrainSummary, "pretrain.json"),
        )
    raise TrainingDiverged(message)

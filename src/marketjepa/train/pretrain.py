"""The pretraining loop (one readable function, nanoGPT-style; DESIGN §3–4, issue #5).

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
collapse) among epochs whose collapse verdict (:func:`marketjepa.evaluate.diagnostics.verdict`
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
"""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn

from marketjepa.artifacts import EMBEDDING_STAT_KEYS, atomic_path, read_json, write_json
from marketjepa.config import Config
from marketjepa.console import make_progress, stage_line
from marketjepa.data.windows import WindowDataset, WindowSpec, even_subsample, pretrain_starts
from marketjepa.device import autocast_ctx
from marketjepa.errors import DataValidationError, MarketJepaError, TrainingDiverged
from marketjepa.model.future_summary import FutureMeans
from marketjepa.train.checkpoint import (
    checkpoint_path,
    config_from_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from marketjepa.train.distributed import (
    DistEnv,
    broadcast_flag,
    cleanup_distributed,
    make_reduce_fn,
    mean_across_ranks,
    setup_distributed,
    shard,
    usable_batch,
)
from marketjepa.train.latent_probe import latent_probe
from marketjepa.train.schedule import lr_at
from marketjepa.train.watchdog import CollapseWatchdog

METRIC_COLUMNS = [
    "epoch",
    "step",
    "train_loss",
    "train_pred",
    "train_sigreg",
    "val_loss",
    "val_pred",
    "val_sigreg",
    "lr",
    *(f"sig_{k}" for k in EMBEDDING_STAT_KEYS),
    *(f"probe_{k}" for k in EMBEDDING_STAT_KEYS),
    "latent_acc",
    "latent_share",
    "seconds",
]
BEST_CRITERION = (
    "lowest val_loss (pred + SIGReg term) among epochs whose collapse verdict is not "
    "COLLAPSED on either tensor; if all collapsed, highest probe_rankme_ratio"
)
# Validation SIGReg uses fixed directions (step 0 of a separate seed stream).
VAL_SEED_OFFSET = 7919
# Config keys that may change between a run and its resume.
RESUMABLE_CHANGES = {"device", "compile", "watchdog", "sweep_trials"}

EpochCallback = Callable[[int, dict[str, Any], nn.Module], None]


# --------------------------------------------------------------------------- helpers


def sigreg_view(z_sig: torch.Tensor, n_windows: int, token_pos: torch.Tensor) -> torch.Tensor:
    """One row per window of the tensor SIGReg regularizes.

    With ``loss.sigreg_on`` = pooled this is the pooled embedding. With tokens/both SIGReg
    sees every token ``[B·C, d]``; each window contributes the token at ``token_pos`` (a
    fixed random position), an unbiased sample of that token distribution at 1/C the size.
    """
    if z_sig.shape[0] == n_windows:
        return z_sig
    tokens = z_sig.reshape(n_windows, -1, z_sig.shape[-1])
    return tokens[torch.arange(n_windows, device=tokens.device), token_pos.to(tokens.device)]


def token_positions(n_windows: int, n_tokens: int, seed: int) -> np.ndarray:
    return np.random.default_rng([seed, 1]).integers(0, n_tokens, size=n_windows)


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


def _comparable(cfg_dict: dict[str, Any]) -> dict[str, Any]:
    train = {k: v for k, v in cfg_dict["train"].items() if k not in RESUMABLE_CHANGES}
    return {
        "windows": cfg_dict["windows"],
        "model": cfg_dict["model"],
        "loss": cfg_dict["loss"],
    } | {"train": train}


def same_pretrain_config(cfg: Config, last: Path) -> bool:
    """Whether checkpoint ``last`` was written for ``cfg``'s pretraining configuration
    (the windows/model/loss/train sections, up to the keys a resume may change)."""
    old = config_from_checkpoint(load_checkpoint(last))
    return _comparable(old.to_dict()) == _comparable(cfg.to_dict())


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return repr(float(v)) if isinstance(v, float) else str(v)


def write_metrics_csv(path: Path, history: list[dict[str, Any]]) -> None:
    """Rewrite ``metrics.csv`` from the full history (atomic; consistent after resume)."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(METRIC_COLUMNS)
        for row in history:
            w.writerow([_fmt(row.get(c)) for c in METRIC_COLUMNS])


def _is_collapsed(row: dict[str, Any], cfg: Config) -> bool:
    from marketjepa.evaluate.diagnostics import verdict

    for prefix in ("sig_", "probe_"):
        stats = {
            "rankme_ratio": row[f"{prefix}rankme_ratio"],
            "rankme": row[f"{prefix}rankme"],
            "norm_var": row[f"{prefix}norm_var"],
            "top1_share": row[f"{prefix}top1_share"],
        }
        if verdict(stats, cfg.eval)["status"] == "COLLAPSED":
            return True
    return False


def _best_key(row: dict[str, Any]) -> tuple[int, float]:
    if row["collapsed"]:
        return (1, -row["probe_rankme_ratio"])
    return (0, row["val_loss"])


# ---------------------------------------------------------------------------- step


def train_step(
    net: nn.Module,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    context: torch.Tensor,
    target: torch.Tensor,
    step: int,
    reduce_fn: Callable[[torch.Tensor], torch.Tensor] | None,
    cfg: Config,
    device: torch.device,
    gap: torch.Tensor | None = None,
    future: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> dict[str, float]:
    """Forward, backward and gradient clipping of one step (no update yet).

    ``net`` is the (DDP/compiled) module called, ``model`` the bare LeJEPA. Returns
    ``loss, pred, sigreg, gradient norm`` as host floats — one device sync per step, which
    both logs them and lets the caller refuse a non-finite update.
    """
    with autocast_ctx(device, cfg.train.bf16):
        out = net(
            context,
            target,
            step=step,
            seed=cfg.train.seed,
            reduce_fn=reduce_fn,
            gap=gap,
            future=future,
        )
    optimizer.zero_grad(set_to_none=True)
    out["loss"].backward()
    clip = cfg.train.grad_clip if cfg.train.grad_clip > 0 else math.inf
    gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    values = torch.stack([out["loss"], out["pred"], out["sigreg"], gnorm]).float().tolist()
    return dict(zip(("loss", "pred", "sigreg", "gradient norm"), values, strict=True))


# ------------------------------------------------------------------------ validation


@torch.no_grad()
def evaluate_validation(
    model: nn.Module,
    data: WindowDataset,
    starts: np.ndarray,
    token_pos: np.ndarray,
    cfg: Config,
    device: torch.device,
    future_means: FutureMeans | None = None,
) -> tuple[dict[str, float], np.ndarray, np.ndarray]:
    """Validation losses and embeddings ``(losses, z_probe [n, d], z_sig [n, d])``.

    Windows are scored in ⌈n/B⌉ near-equal chunks (B = train batch size) so the SIGReg
    statistic (which scales with the batch for non-Gaussian embeddings) is on the
    training scale; losses are chunk-size-weighted means.
    """
    was_training = model.training
    model.eval()
    n_chunks = max(1, math.ceil(starts.size / cfg.train.batch_size))
    sums = np.zeros(3)
    probe, sig = [], []
    seed = cfg.train.seed + VAL_SEED_OFFSET
    for idx in np.array_split(np.arange(starts.size), n_chunks):
        ctx, tgt = data.batch(starts[idx])
        gap = data.gap(starts[idx]) if _needs_gap(cfg) else None
        fut = future_means(data.spec.anchor(starts[idx])) if future_means is not None else None
        with autocast_ctx(device, cfg.train.bf16):
            out = model(ctx, tgt, step=0, seed=seed, gap=gap, future=fut)
        vals = torch.stack([out["loss"], out["pred"], out["sigreg"]]).float().cpu().numpy()
        sums += vals * idx.size
        probe.append(out["z_probe"].float().cpu())
        pos = torch.as_tensor(token_pos[idx])
        sig.append(sigreg_view(out["z_sigreg"].float(), idx.size, pos).cpu())
    model.train(was_training)
    means = sums / starts.size
    losses = {"val_loss": means[0], "val_pred": means[1], "val_sigreg": means[2]}
    return (
        {k: float(v) for k, v in losses.items()},
        torch.cat(probe).numpy(),
        torch.cat(sig).numpy(),
    )


def _feature_columns(wanted: list[str], names: list[str] | None) -> list[int] | None:
    """Column indices of ``loss.future_mean_features`` (``None`` = all features)."""
    if not wanted:
        return None
    missing = [w for w in wanted if names is None or w not in names]
    if missing:
        raise MarketJepaError(
            f"loss.future_mean_features: unknown feature(s) {missing}; the features are "
            f"{names if names is not None else '(no feature names given)'}"
        )
    assert names is not None  # every name was found
    return [names.index(w) for w in wanted]


def _needs_gap(cfg: Config) -> bool:
    """The full-sequence target path encodes the gap bars too."""
    return cfg.loss.target_path == "sequence" and cfg.windows.gap_patches > 0


def _diagnostics(z: np.ndarray, prefix: str, dead_share: float) -> dict[str, float]:
    from marketjepa.evaluate.diagnostics import embedding_stats

    stats = embedding_stats(z, dead_share)
    out = {f"{prefix}{k}": float(stats[k]) for k in EMBEDDING_STAT_KEYS}
    out[f"{prefix}top1_share"] = float(stats["top1_share"])
    return out


def _truth_at(truth: dict[str, np.ndarray] | None, rows: np.ndarray):
    if not truth or "regime" not in truth:
        return None, None
    regime = np.asarray(truth["regime"])[rows]
    keys = sorted((k for k in truth if k.startswith("filter_p")), key=lambda k: int(k[8:]))
    filt = np.stack([np.asarray(truth[k])[rows] for k in keys], axis=1) if keys else None
    return regime, filt


# ----------------------------------------------------------------------------- loop


def pretrain(cfg: Config, prepared_dir: Path, run_dir: Path, resume: bool = False) -> dict:
    """Pretrain on a prepared dataset; writes checkpoints/, metrics.csv, tb/, pretrain.json."""
    from marketjepa.data.prepared import PreparedData

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
    index) is needed only by ``loss.aux_future_mean``; ``feature_names [F]`` by the options
    that select columns (``loss.future_mean_features``, ``model.input_exclude``,
    ``model.session_mask``, ``loss.target_exclude``); checkpoints store them so
    :func:`~marketjepa.train.checkpoint.load_model` rebuilds the same model. Returns the
    ``pretrain.json`` summary (rank 0; other ranks get a dict with ``status`` only).
    """
    run_dir = Path(run_dir)
    owns_group = not torch.distributed.is_initialized()  # a caller's group is left alone
    env = setup_distributed(cfg.train.device)
    owns_group = owns_group and env.distributed
    ok = False
    try:
        out = _train(
            cfg, features, split, run_dir, truth, resume, on_epoch_end, env, session, feature_names
        )
        ok = True
        return out
    finally:
        if owns_group:
            cleanup_distributed(env, ok)


def _train(
    cfg: Config,
    features: np.ndarray,
    split: np.ndarray,
    run_dir: Path,
    truth: dict[str, np.ndarray] | None,
    resume: bool,
    on_epoch_end: EpochCallback | None,
    env: DistEnv,
    session: np.ndarray | None = None,
    feature_names: list[str] | None = None,
) -> dict[str, Any]:
    from marketjepa.model.jepa import LeJEPA

    t0 = time.time()
    tc, device, seed = cfg.train, env.device, cfg.train.seed
    spec = WindowSpec.from_config(cfg.windows)
    features = np.asarray(features, dtype=np.float32)
    split = np.asarray(split)
    if features.ndim != 2 or split.shape != (features.shape[0],):
        raise MarketJepaError(
            f"features must be [N, F] and split [N]; got {features.shape} and {split.shape}"
        )

    train_starts = pretrain_starts(split, 0, spec, cfg.windows.stride)
    val_starts = even_subsample(
        pretrain_starts(split, 1, spec, cfg.windows.stride), tc.max_val_windows
    )
    for name, s in (("training", train_starts), ("validation", val_starts)):
        if s.size < 2:
            raise DataValidationError(
                f"only {s.size} {name} windows (at least 2 needed): each needs "
                f"{spec.total_len} consecutive {name} rows (context+gap+target = "
                f"{spec.context_patches}+{spec.gap_patches}+{spec.target_patches} patches of "
                f"{spec.patch_len})",
                hint="use more data or smaller windows; `marketjepa inspect-data` with the "
                "same --preset/--set says what fits",
            )
    global_batch = usable_batch(min(tc.batch_size, train_starts.size), env.world_size)
    steps_per_epoch = train_starts.size // global_batch
    if tc.max_steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, tc.max_steps_per_epoch)
    total_steps = tc.epochs * steps_per_epoch

    paths = {
        "last": checkpoint_path(run_dir, "last"),
        "best": checkpoint_path(run_dir, "best"),
        "metrics": run_dir / "metrics.csv",
        "summary": run_dir / "pretrain.json",
    }
    cfg_yaml = yaml.safe_dump(cfg.to_dict(), sort_keys=False)

    torch.manual_seed(seed)
    names = list(feature_names) if feature_names is not None else None
    model = LeJEPA(features.shape[1], spec, cfg.model, cfg.loss, names).to(device)
    optimizer = build_optimizer(model, cfg, device)
    watchdog = CollapseWatchdog(tc.watchdog)
    history: list[dict[str, Any]] = []
    start_epoch, step, best = 0, 0, None

    if resume and paths["last"].exists():
        state = load_checkpoint(paths["last"], map_location=device)
        old = config_from_checkpoint(state)
        if (
            _comparable(old.to_dict()) != _comparable(cfg.to_dict())
            or state["n_features"] != features.shape[1]
        ):
            raise MarketJepaError(
                f"{paths['last']}: cannot resume — the run was started with a different "
                "windows/model/loss/train configuration or feature set; start a new run"
            )
        if paths["summary"].exists():
            done = read_json(paths["summary"])
            if done.get("status") in ("completed", "collapsed"):
                if env.is_main:
                    stage_line(
                        "pretrain", f"already {done['status']} in {run_dir}; nothing to resume"
                    )
                return done
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_epoch, step = int(state["epoch"]), int(state["step"])
        history = list(state["history"])
        best = state["trainer"]["best"]
        watchdog.load_state_dict(state["trainer"]["watchdog"])
        torch.set_rng_state(state["rng"]["torch"].cpu())
        if device.type == "cuda" and state["rng"]["cuda"]:
            torch.cuda.set_rng_state_all([s.cpu() for s in state["rng"]["cuda"]])
        if watchdog.stopped:  # killed after the watchdog's stop decision was saved
            start_epoch = tc.epochs
        elif env.is_main:
            stage_line("pretrain", f"resuming {run_dir} after epoch {start_epoch} (step {step})")
    elif resume and env.is_main:
        stage_line("pretrain", f"no {paths['last']} to resume from; starting from scratch")

    net: nn.Module = model
    if env.distributed:
        from torch.nn.parallel import DistributedDataParallel as DDP

        net = DDP(model, device_ids=[device] if device.type == "cuda" else None)
    if tc.compile:
        compile_model(model)
    reduce_fn = make_reduce_fn(env)
    data = WindowDataset(features, spec, device)
    future_means = None
    if cfg.loss.aux_future_mean > 0:
        if session is None or np.shape(session) != split.shape:
            raise MarketJepaError(
                "loss.aux_future_mean needs the trading-day index of every row (session [N]) "
                "to mask future spans that cross the close"
            )
        future_means = FutureMeans(
            features,
            session,
            split,
            cfg.loss.future_mean_spans,
            device,
            _feature_columns(cfg.loss.future_mean_features, feature_names),
            cfg.loss.future_mean_standardize,
        )
    # Reused batch buffers: equal shards every step, and no page faults per batch on CPU.
    local_batch = global_batch // env.world_size
    ctx_buf = torch.empty(local_batch, spec.context_len, features.shape[1], device=device)
    tgt_buf = torch.empty(local_batch, spec.target_len, features.shape[1], device=device)
    gap_buf = None
    if _needs_gap(cfg):
        gap_buf = torch.empty(local_batch, spec.gap_len, features.shape[1], device=device)

    val_tok = token_positions(val_starts.size, spec.context_patches, seed)
    regime, filt = _truth_at(truth, spec.anchor(val_starts))

    writer = None
    if env.is_main:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(run_dir / "tb"), purge_step=step if step else None)

    status, message = ("collapsed", watchdog.message) if watchdog.stopped else ("completed", "")
    progress = make_progress() if env.is_main else None
    try:
        if progress is not None:
            progress.start()
            task = progress.add_task("pretrain", total=total_steps, completed=step, info="")
        for epoch in range(start_epoch, tc.epochs):
            t_epoch = time.time()
            order = train_starts[
                np.random.default_rng([seed, epoch]).permutation(train_starts.size)
            ]
            sums = np.zeros(3)
            model.train()
            for i in range(steps_per_epoch):
                local = shard(order[i * global_batch : (i + 1) * global_batch], env)
                lr = lr_at(step, total_steps, tc.lr, tc.warmup_frac, tc.min_lr_frac)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                ctx = data.context(local, out=ctx_buf)
                tgt = data.target(local, out=tgt_buf)
                gap = data.gap(local, out=gap_buf) if gap_buf is not None else None
                fut = future_means(spec.anchor(local)) if future_means is not None else None
                vals = train_step(
                    net, model, optimizer, ctx, tgt, step, reduce_fn, cfg, device, gap, fut
                )
                for name, v in vals.items():
                    if not math.isfinite(v):
                        _diverged(paths, history, best, run_dir, env, epoch, step, name, v, t0)
                loss_v, pred_v, sig_v, gnorm_v = vals.values()
                optimizer.step()
                model.update_ema()
                step += 1
                sums += (loss_v, pred_v, sig_v)
                if writer is not None and (step % 10 == 0 or i == steps_per_epoch - 1):
                    writer.add_scalar("step/loss", loss_v, step)
                    writer.add_scalar("step/grad_norm", gnorm_v, step)
                    writer.add_scalar("step/lr", lr, step)
                if progress is not None:
                    progress.update(
                        task, advance=1, info=f"epoch {epoch + 1}/{tc.epochs} loss {loss_v:.4f}"
                    )

            train_means = mean_across_ranks(
                torch.tensor(sums / max(steps_per_epoch, 1), device=device), env
            ).tolist()
            stop = False
            if env.is_main:
                row = _epoch_row(
                    model,
                    data,
                    val_starts,
                    val_tok,
                    regime,
                    filt,
                    cfg,
                    device,
                    epoch,
                    step,
                    lr,
                    future_means,
                )
                row.update(
                    train_loss=train_means[0],
                    train_pred=train_means[1],
                    train_sigreg=train_means[2],
                )
                for name in ("val_loss", "val_pred", "val_sigreg"):
                    if not math.isfinite(row[name]):
                        _diverged(
                            paths, history, best, run_dir, env, epoch, step, name, row[name], t0
                        )
                row["seconds"] = time.time() - t_epoch
                history.append(row)
                stop = watchdog.update(row)
                if best is None or _best_key(row) < tuple(best["key"]):
                    best = {"epoch": epoch + 1, "key": list(_best_key(row))}
                    save_checkpoint(
                        paths["best"],
                        {
                            "config_yaml": cfg_yaml,
                            "n_features": features.shape[1],
                            "feature_names": names,
                            "model": model.state_dict(),
                            "epoch": epoch + 1,
                            "step": step,
                            "metrics": row,
                        },
                    )
                save_checkpoint(
                    paths["last"],
                    {
                        "config_yaml": cfg_yaml,
                        "n_features": features.shape[1],
                        "feature_names": names,
                        "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "epoch": epoch + 1,
                        "step": step,
                        "rng": {
                            "torch": torch.get_rng_state(),
                            "cuda": torch.cuda.get_rng_state_all() if device.type == "cuda" else [],
                        },
                        "history": history,
                        "trainer": {"best": best, "watchdog": watchdog.state_dict()},
                    },
                )
                write_metrics_csv(paths["metrics"], history)
                _log_tensorboard(writer, row)
                if stop:
                    status, message = "collapsed", watchdog.message
                if on_epoch_end is not None:
                    on_epoch_end(epoch + 1, row, model)
            elif on_epoch_end is not None:
                on_epoch_end(epoch + 1, {}, model)
            if broadcast_flag(stop, env):
                status = "collapsed"
                break
    finally:
        if progress is not None:
            progress.stop()
        if writer is not None:
            writer.close()

    if not env.is_main:
        return {"status": status}
    summary = _summary(status, message, history, best, run_dir, t0)
    summary.update(
        steps=step,
        steps_per_epoch=steps_per_epoch,
        global_batch=global_batch,
        world_size=env.world_size,
        device=str(device),
        n_train_windows=int(train_starts.size),
        n_val_windows=int(val_starts.size),
    )
    write_json(paths["summary"], summary)
    last = history[-1] if history else {}
    line = (
        f"{status}: {len(history)} epochs, {step} steps in {summary['seconds']:.0f}s; "
        f"best epoch {summary['best_epoch']}; val loss {last.get('val_loss', math.nan):.4f}, "
        f"RankMe {last.get('probe_rankme', math.nan):.1f}/{model.d_model}"
    )
    if status == "collapsed":
        line += f" — {message}"
    stage_line("pretrain", line)
    return summary


def _epoch_row(
    model, data, val_starts, val_tok, regime, filt, cfg, device, epoch, step, lr, fut_means=None
):
    losses, z_probe, z_sig = evaluate_validation(
        model, data, val_starts, val_tok, cfg, device, fut_means
    )
    row: dict[str, Any] = {"epoch": epoch + 1, "step": step, "lr": lr, **losses}
    if np.isfinite(z_probe).all() and np.isfinite(z_sig).all():
        row.update(_diagnostics(z_sig, "sig_", cfg.eval.dead_dim_share))
        row.update(_diagnostics(z_probe, "probe_", cfg.eval.dead_dim_share))
        row["collapsed"] = _is_collapsed(row, cfg)
    else:  # non-finite embeddings: the loss check reports divergence right after
        row["val_loss"] = math.nan
    row["latent_acc"] = row["latent_share"] = math.nan
    if regime is not None:
        lp = latent_probe(z_probe, regime, filt, seed=cfg.train.seed)
        row["latent_acc"], row["latent_share"] = lp["latent_acc"], lp["latent_share"]
    return row


def _log_tensorboard(writer, row: dict[str, Any]) -> None:
    if writer is None:
        return
    for k in METRIC_COLUMNS[2:]:
        v = row.get(k)
        if v is not None and not (isinstance(v, float) and math.isnan(v)):
            group = "diag" if k.startswith(("sig_", "probe_", "latent")) else "epoch"
            writer.add_scalar(f"{group}/{k}", float(v), row["step"])
    writer.flush()


def _summary(status, message, history, best, run_dir, t0) -> dict[str, Any]:
    return {
        "status": status,
        "epochs_run": len(history),
        "best_epoch": best["epoch"] if best else None,
        "best_criterion": BEST_CRITERION,
        "message": message,
        "seconds": time.time() - t0,
        "final": {k: history[-1].get(k) for k in METRIC_COLUMNS} if history else {},
        "collapsed_epochs": [r["epoch"] for r in history if r.get("collapsed")],
    }


def _diverged(paths, history, best, run_dir, env, epoch, step, name, value, t0) -> None:
    last_epoch = history[-1]["epoch"] if history else 0
    kept = (
        f"last good checkpoint kept: {paths['last']} (epoch {last_epoch})"
        if paths["last"].exists()
        else "no checkpoint was written before this"
    )
    message = (
        f"training diverged: {name} is {value} at epoch {epoch + 1}, step {step}; {kept}. "
        "Try a lower train.lr, train.grad_clip > 0, or check the features for extreme values"
    )
    if env.is_main:
        summary = _summary("diverged", message, history, best, run_dir, t0)
        summary["diverged_at"] = {"epoch": epoch + 1, "step": step, "value": name}
        write_json(paths["summary"], summary)
    raise TrainingDiverged(message)

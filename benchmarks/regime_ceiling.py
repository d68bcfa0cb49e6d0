"""The ceiling: how much of the planted regime can a model of these inputs carry at all?

Issue #12, fourth round (docs/levers.md). The Bayes filter reads the exact per-bar
evidence of the hidden regime; the encoder reads causal features in which that evidence
is mixed with nuisance (volatility level, time-of-day volume, option-surface dynamics).
This script trains models *supervised on the true regime* — the most any representation
of the same inputs could learn to carry — and probes them exactly like every
self-supervised representation (:func:`marketjepa.tune.levers.validation_score`: rows at
≤ ``--max-windows`` evenly spaced labelled anchors per split, a standardized logistic
probe of the true regime fitted on train days, ``C`` chosen on validation days, share =
(acc − chance) / (Bayes filter acc − chance)). Test days are scored with the same fitted
probe, once, at the end (day-block bootstrap CI); nothing is tuned on them.

Representations (``--models``; the references always run):

* ``raw_window`` / ``random_init`` — references: raw window statistics and the preset's
  encoder (``model.pooling=last``) with random weights;
* ``bayes_filter`` — the filter posterior itself (``p``, ``log p``), probed: ≈ 1 by
  construction, a check of the probe;
* ``enc_ce`` / ``enc_ce_causal`` — the preset's PatchEncoder (same config, last token;
  bidirectional / ``model.causal=true``) + a linear head, trained end to end with
  cross-entropy on the true regime at the anchor bar; ``enc_soft`` / ``enc_soft_causal``
  — the same with the filter posterior at the anchor as a soft target;
  ``enc_*_causal_dense`` — causal, every token trained on the regime (posterior) at its
  own patch's last bar (24 targets per window; the last token, the probed one, on the
  anchor's);
* ``mlp_ce`` / ``mlp_soft`` — an MLP on ``raw_window_features`` (the statistics the
  baseline already computes), hidden layer probed;
* ``gru_ce`` / ``gru_soft`` — a causal GRU over each session's features from the open
  (the filter's own information set, restarted at every open, not limited to the
  240-bar window), trained on every bar of the train sessions; its state at the anchor
  is probed.

``--extra-train-seeds 0,1`` also trains the supervised models on the train days of
the other synthetic markets listed (more draws of the same planted process; the probe rows,
validation and test days stay the evaluated market's): is the ceiling limited by data?

Supervised training reads train days only; validation days serve early stopping (regime
accuracy of the model's own head, evaluated every ``--eval-every`` steps) and the
probe's ``C``; test days are read once, by the final probe. Each row also reports the
head's own argmax share (no probe). Torch and BLAS run on one thread.

    nice -n 10 python benchmarks/regime_ceiling.py --preset cpu --seeds 0,1 --max-seconds 270 \\
        --models enc_soft_causal_dense,enc_soft_causal,enc_ce_causal,enc_ce,mlp_soft,mlp_ce,gru_soft,gru_ce \\
        --out runs/ceiling     # docs/levers.md "Fourth round": 29 min on 2 shared cores

(the default ``--models`` runs all ten variants).

Prepares the market(s) first if needed (like every stage command); writes
``ceiling.json`` and ``ceiling.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from threadpoolctl import threadpool_limits
from torch import Tensor, nn

from marketjepa.config import Config, load_config
from marketjepa.constants import TEST, TRAIN, VAL
from marketjepa.data.prepared import PreparedData, truth_arrays
from marketjepa.data.windows import WindowDataset, WindowSpec, context_starts
from marketjepa.evaluate.baselines import (
    build_encoder,
    oracle_filter_features,
    raw_window_features,
)
from marketjepa.evaluate.bootstrap import block_bootstrap
from marketjepa.pipeline import ensure_prepared, ensure_synthetic
from marketjepa.tune.levers import (
    accuracy,
    embed,
    probe_predictions,
    probe_starts,
    regime_share,
    with_overrides,
)

MODELS = (
    "enc_ce",
    "enc_ce_causal",
    "enc_soft",
    "enc_soft_causal",
    "enc_ce_causal_dense",
    "enc_soft_causal_dense",
    "mlp_ce",
    "mlp_soft",
    "gru_ce",
    "gru_soft",
)
SPLITS = (TRAIN, VAL, TEST)


# ------------------------------------------------------------------ probe rows and score


@dataclass
class ProbeRows:
    """The probe rows of one market: labelled anchors of train, validation and test days
    (the rows of :func:`validation_score`, plus test rows), their true regime and the
    Bayes filter's argmax."""

    anchors: np.ndarray
    sp: np.ndarray
    day: np.ndarray
    regime: np.ndarray
    filter_pred: np.ndarray
    majority: int

    @classmethod
    def build(
        cls,
        split: np.ndarray,
        label: np.ndarray,
        session: np.ndarray,
        regime: np.ndarray,
        filt: np.ndarray,
        context_len: int,
        cap: int,
    ) -> ProbeRows:
        starts = probe_starts(split, label, context_len, SPLITS, cap)
        anchors = np.concatenate([starts[s] for s in SPLITS]) + context_len - 1
        sp = np.concatenate([np.full(starts[s].size, s, np.int8) for s in SPLITS])
        r = np.asarray(regime)[anchors].astype(np.int64)
        return cls(
            anchors=anchors,
            sp=sp,
            day=np.asarray(session)[anchors],
            regime=r,
            filter_pred=np.asarray(filt)[anchors].argmax(axis=1),
            majority=int(np.bincount(r[sp == TRAIN]).argmax()),
        )

    def share(self, pred: np.ndarray, which: int) -> float:
        """Share of the filter's lift of predictions ``pred`` (one per row) on split ``which``."""
        m = self.sp == which
        return regime_share(self.regime[m], pred[m], self.filter_pred[m], self.majority)

    def test_ci(self, pred: np.ndarray, cfg: Config) -> tuple[float, float]:
        """Day-block bootstrap CI of the test share (``eval.bootstrap_*``)."""
        m = self.sp == TEST
        majority = self.majority

        def metric(yt: np.ndarray, cols: np.ndarray) -> float:
            return regime_share(yt, cols[:, 0], cols[:, 1], majority)

        ev = cfg.eval
        res = block_bootstrap(
            metric,
            self.regime[m],
            np.column_stack([pred[m], self.filter_pred[m]]),
            self.day[m],
            block_days=ev.bootstrap_block_days,
            n_samples=ev.bootstrap_samples,
            level=ev.ci_level,
            seed=ev.seed,
        )
        return res.lo, res.hi


def score(rows: ProbeRows, X: np.ndarray, cfg: Config) -> dict[str, float]:
    """The probe of :func:`validation_score` on representation ``X`` (one row per probe
    row): fit on train, ``C`` on validation; validation share and test share with CI."""
    pred = probe_predictions(X, rows.regime, rows.sp, cfg.eval.probe_c_grid, cfg.eval.seed)
    lo, hi = rows.test_ci(pred, cfg)
    return {
        "val_share": rows.share(pred, VAL),
        "test_share": rows.share(pred, TEST),
        "test_ci": [lo, hi],
    }


# --------------------------------------------------------------------- supervised fitting


@dataclass
class FitLog:
    steps: int = 0
    seconds: float = 0.0
    best_step: int = 0
    best_val_acc: float = -math.inf
    history: list[tuple[int, float, float]] = field(default_factory=list)


def fit(
    net: nn.Module,
    loss_on: Callable[[nn.Module, np.ndarray], Tensor],
    n_train: int,
    val_acc: Callable[[nn.Module], float],
    *,
    batch_size: int,
    max_steps: int,
    max_seconds: float,
    eval_every: int,
    patience: int,
    lr: float,
    seed: int,
) -> FitLog:
    """AdamW on minibatches of train items; keeps the weights of the best validation
    accuracy (evaluated every ``eval_every`` steps and at the end), stops after
    ``patience`` evaluations without improvement, ``max_steps`` or ``max_seconds``."""
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=0.01)
    rng = np.random.default_rng(seed)
    log, best = FitLog(), copy.deepcopy(net.state_dict())
    t0, losses, order, pos = time.time(), [], rng.permutation(n_train), 0
    while True:
        if pos + batch_size > n_train:
            order, pos = rng.permutation(n_train), 0
        idx = np.sort(order[pos : pos + batch_size])
        pos += batch_size
        net.train()
        loss = loss_on(net, idx)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        losses.append(float(loss.detach()))
        log.steps += 1
        done = log.steps >= max_steps or time.time() - t0 >= max_seconds
        if log.steps % eval_every == 0 or done:
            net.eval()
            acc = val_acc(net)
            log.history.append((log.steps, float(np.mean(losses)), acc))
            losses = []
            if acc > log.best_val_acc:
                log.best_val_acc, log.best_step = acc, log.steps
                best = copy.deepcopy(net.state_dict())
            elif (log.steps - log.best_step) // eval_every >= patience:
                done = True
        if done:
            break
    net.load_state_dict(best)
    net.eval()
    log.seconds = time.time() - t0
    return log


class Classifier(nn.Module):
    """``body`` (input → representation ``[B, d]``) + a linear head over the regimes."""

    def __init__(self, body: nn.Module, width: int, n_classes: int) -> None:
        super().__init__()
        self.body = body
        self.head = nn.Linear(width, n_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.body(x))


class PooledEncoder(nn.Module):
    """A PatchEncoder's pooled embedding (its own pooling: the last token here)."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, x: Tensor) -> Tensor:
        return self.encoder.pool(self.encoder(x))


def _targets(regime: np.ndarray, filt: np.ndarray, rows: np.ndarray, soft: bool) -> Tensor:
    if soft:
        return torch.as_tensor(np.asarray(filt)[rows], dtype=torch.float32)
    return torch.as_tensor(np.asarray(regime)[rows], dtype=torch.long)


@torch.no_grad()
def _batched(fn: Callable[[np.ndarray], Tensor], n: int, batch: int = 1024) -> np.ndarray:
    return np.concatenate([fn(np.arange(i, min(i + batch, n))).numpy() for i in range(0, n, batch)])


@dataclass
class Market:
    """One prepared planted market and its probe rows."""

    cfg: Config
    x: np.ndarray
    split: np.ndarray
    session: np.ndarray
    regime: np.ndarray
    filt: np.ndarray
    feature_names: list[str]
    rows: ProbeRows
    spec: WindowSpec

    @property
    def val_rows(self) -> np.ndarray:
        """Validation probe rows used for early stopping (indices into ``rows``)."""
        return np.flatnonzero(self.rows.sp == VAL)


@dataclass
class Budget:
    max_steps: int
    max_seconds: float
    eval_every: int
    patience: int
    batch_size: int
    lr: float


def train_encoder(
    m: Market, causal: bool, soft: bool, dense: bool, budget: Budget
) -> tuple[dict, dict]:
    """The preset's encoder (last token) + linear head trained on the regime at the anchor;
    ``dense`` (causal only): every token's head output is trained on the regime at its
    own patch's last bar, the last token's on the anchor's (24 targets per window)."""
    if dense and not causal:
        raise ValueError("dense targets need causal attention (a token must not see its future)")
    cfg = with_overrides(
        m.cfg, {"model.pooling": "last", "model.causal": causal}, "ceiling: encoder"
    )
    spec = m.spec
    enc = build_encoder(m.x.shape[1], spec, cfg.model, cfg.train.seed, m.feature_names)
    net = Classifier(PooledEncoder(enc), cfg.model.d_model, m.filt.shape[1])
    ds = WindowDataset(m.x, spec, "cpu")
    starts = context_starts(m.split, TRAIN, spec, 1)
    # Target rows [n, 1] (the anchor) or [n, C] (each patch's last bar, oldest first).
    ends = (np.arange(spec.context_patches) + 1) * spec.patch_len - 1 if dense else None
    rows = starts[:, None] + ends[None, :] if dense else spec.anchor(starts)[:, None]
    y = _targets(m.regime, m.filt, rows, soft)
    v = m.val_rows
    v_starts = m.rows.anchors[v] - spec.context_len + 1

    def loss_on(net: nn.Module, idx: np.ndarray) -> Tensor:
        x = ds.context(starts[idx])
        logits = net.head(enc(x)) if dense else net(x)[:, None]
        return F.cross_entropy(logits.flatten(0, 1), y[idx].flatten(0, 1))

    def val_acc(net: nn.Module) -> float:
        pred = _batched(lambda i: net(ds.context(v_starts[i])).argmax(1), v.size)
        return accuracy(m.rows.regime[v], pred)

    log = _fit(net, loss_on, starts.size, val_acc, budget, cfg.train.seed)
    all_starts = m.rows.anchors - spec.context_len + 1
    X = embed(enc, m.x, spec, all_starts)
    head = _batched(lambda i: net.head(torch.as_tensor(X[i])).argmax(1), X.shape[0])
    return {"X": X, "head": head}, _log_dict(log, starts.size)


def train_mlp(m: Market, soft: bool, budget: Budget, max_train: int) -> tuple[dict, dict]:
    """MLP on raw window statistics (train anchors evenly thinned to ``max_train``)."""
    spec = m.spec
    starts = context_starts(m.split, TRAIN, spec, 1)
    if starts.size > max_train:
        starts = starts[np.linspace(0, starts.size - 1, max_train).round().astype(np.int64)]
    anchors = spec.anchor(starts)

    def raw(a: np.ndarray) -> np.ndarray:
        return raw_window_features(m.x, a, spec.patch_len, spec.context_len)

    xt = raw(anchors)
    mu, sd = xt.mean(0), xt.std(0) + 1e-6  # train moments only
    xt = torch.as_tensor((xt - mu) / sd)
    xp = torch.as_tensor((raw(m.rows.anchors) - mu) / sd)
    y = _targets(m.regime, m.filt, anchors, soft)
    width = 256
    torch.manual_seed(m.cfg.train.seed)
    body = nn.Sequential(
        nn.Linear(xt.shape[1], width),
        nn.GELU(),
        nn.Dropout(0.1),
        nn.Linear(width, width),
        nn.GELU(),
    )
    net = Classifier(body, width, m.filt.shape[1])
    v = m.val_rows

    def loss_on(net: nn.Module, idx: np.ndarray) -> Tensor:
        return F.cross_entropy(net(xt[idx]), y[idx])

    def val_acc(net: nn.Module) -> float:
        with torch.no_grad():
            return accuracy(m.rows.regime[v], net(xp[v]).argmax(1).numpy())

    log = _fit(net, loss_on, xt.shape[0], val_acc, budget, m.cfg.train.seed)
    X = _batched(lambda i: body(xp[i]), xp.shape[0])
    head = _batched(lambda i: net(xp[i]).argmax(1), xp.shape[0])
    return {"X": X, "head": head}, _log_dict(log, xt.shape[0])


class SessionGRU(nn.Module):
    """Causal GRU over one session's bars from the open; one state per bar."""

    def __init__(self, n_features: int, hidden: int, n_classes: int, layers: int = 2) -> None:
        super().__init__()
        self.gru = nn.GRU(n_features, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden, n_classes)

    def states(self, x: Tensor) -> Tensor:
        return self.gru(x)[0]

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.states(x))


def _sessions(session: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First row and length of each session (rows of a session are contiguous)."""
    s = np.asarray(session)
    first = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    if np.unique(s[first]).size != first.size:
        raise ValueError("rows of a session are not contiguous")
    return first, np.diff(np.r_[first, s.size])


def train_gru(m: Market, soft: bool, budget: Budget, hidden: int) -> tuple[dict, dict]:
    """Causal GRU over session-to-date features, loss on every bar of the train sessions."""
    first, length = _sessions(m.session)
    n_days, t_max, k = first.size, int(length.max()), m.filt.shape[1]
    pos = np.arange(t_max)
    valid = pos[None, :] < length[:, None]
    rows = np.where(valid, first[:, None] + pos[None, :], 0)  # [D, T] row of each bar
    seq = torch.as_tensor(m.x[rows] * valid[..., None])
    day_split = np.asarray(m.split)[first]
    # A session must lie within one split (splits are whole days).
    if np.any(np.asarray(m.split)[rows][valid] != np.repeat(day_split, length)):
        raise ValueError("a session spans two splits")
    train_days = np.flatnonzero(day_split == TRAIN)
    tgt = _targets(m.regime, m.filt, rows, soft)
    mask = torch.as_tensor(valid)
    # Probe rows → (day, bar of the day).
    day_of_row = np.repeat(np.arange(n_days), length)
    a_day = day_of_row[m.rows.anchors]
    a_pos = m.rows.anchors - first[a_day]
    torch.manual_seed(m.cfg.train.seed)
    net = SessionGRU(m.x.shape[1], hidden, k)
    v = m.val_rows
    v_days = np.unique(a_day[v])

    def loss_on(net: nn.Module, idx: np.ndarray) -> Tensor:
        d = train_days[idx]
        logits = net(seq[d])[mask[d]]
        return F.cross_entropy(logits, tgt[d][mask[d]])

    @torch.no_grad()
    def states(days: np.ndarray) -> Tensor:
        return torch.cat([net.states(seq[days[i : i + 64]]) for i in range(0, days.size, 64)])

    def val_acc(net: nn.Module) -> float:
        st = states(v_days)
        where = np.searchsorted(v_days, a_day[v])
        pred = net.head(st[where, a_pos[v]]).argmax(1).numpy()
        return accuracy(m.rows.regime[v], pred)

    log = _fit(net, loss_on, train_days.size, val_acc, budget, m.cfg.train.seed)
    days = np.unique(a_day)
    st = states(days)[np.searchsorted(days, a_day), a_pos]
    with torch.no_grad():
        head = net.head(st).argmax(1).numpy()
    return {"X": st.numpy(), "head": head}, _log_dict(log, train_days.size)


def _fit(net, loss_on, n_train, val_acc, b: Budget, seed: int) -> FitLog:
    return fit(
        net,
        loss_on,
        n_train,
        val_acc,
        batch_size=min(b.batch_size, n_train),
        max_steps=b.max_steps,
        max_seconds=b.max_seconds,
        eval_every=b.eval_every,
        patience=b.patience,
        lr=b.lr,
        seed=seed,
    )


def _log_dict(log: FitLog, n_train: int) -> dict:
    return {
        "steps": log.steps,
        "seconds": round(log.seconds, 1),
        "best_step": log.best_step,
        "best_val_acc": log.best_val_acc,
        "n_train": int(n_train),
        "history": log.history,
    }


# ------------------------------------------------------------------------------ driver


def load_market(preset: str, seed: int, sets: list[str], cap: int) -> Market:
    overrides = ["train.watchdog.enabled=false", "train.device=cpu", f"synth.seed={seed}"]
    cfg = load_config(preset, overrides=[*overrides, *sets])
    if cfg.data.source != "synthetic" or cfg.synth.signal <= 0:
        raise SystemExit("the ceiling needs a planted synthetic market (synth.signal > 0)")
    ensure_synthetic(cfg)
    data = PreparedData.load(ensure_prepared(cfg))
    regime, filt = truth_arrays(data.truth)
    if regime is None or filt is None:
        raise SystemExit(f"{data.path}: no true regime / Bayes filter posterior in truth.parquet")
    spec = WindowSpec.from_config(cfg.windows)
    split, label = np.asarray(data.split), np.asarray(data.label)
    rows = ProbeRows.build(split, label, data.session, regime, filt, spec.context_len, cap)
    return Market(
        cfg=cfg,
        x=np.asarray(data.features, np.float32),
        split=split,
        session=np.asarray(data.session),
        regime=np.asarray(regime),
        filt=np.asarray(filt, np.float64),
        feature_names=list(data.feature_names),
        rows=rows,
        spec=spec,
    )


def with_extra_train_days(m: Market, extra: list[Market]) -> Market:
    """``m`` whose supervised models also train on the train days of ``extra`` markets
    (more draws of the same planted process: is the ceiling limited by data?).

    The extra markets' rows are appended after ``m``'s behind a one-row separator (split
    −1, so no window crosses markets); their validation and test days become −1 (unused).
    ``m``'s probe rows, validation and test days are unchanged.
    """
    xs, splits, sessions, regimes, filts = [m.x], [m.split], [m.session], [m.regime], [m.filt]
    k, f = m.filt.shape[1], m.x.shape[1]
    for e in extra:
        if e.feature_names != m.feature_names:
            raise SystemExit("extra markets must have the same feature columns")
        offset = int(sessions[-1].max()) + 1
        xs += [np.zeros((1, f), np.float32), e.x]
        splits += [np.full(1, -1, m.split.dtype), np.where(e.split == TRAIN, TRAIN, -1)]
        sessions += [np.full(1, offset), e.session + offset + 1]
        regimes += [np.zeros(1, m.regime.dtype), e.regime]
        filts += [np.full((1, k), 1.0 / k), e.filt]
    return Market(
        cfg=m.cfg,
        x=np.concatenate(xs),
        split=np.concatenate(splits).astype(m.split.dtype),
        session=np.concatenate(sessions),
        regime=np.concatenate(regimes),
        filt=np.concatenate(filts),
        feature_names=m.feature_names,
        rows=m.rows,
        spec=m.spec,
    )


def run_market(m: Market, models: list[str], args: argparse.Namespace) -> dict[str, dict]:
    """Every representation's scores on one market (printed as they come)."""
    out: dict[str, dict] = {}

    def report(name: str, res: dict) -> None:
        out[name] = res
        lo, hi = res["test_ci"]
        head = ""
        if "head_val_share" in res:
            head = f"; head {res['head_val_share']:.3f} / {res['head_test_share']:.3f}"
        fit_s = (
            f"; {res['fit']['steps']} steps, {res['fit']['seconds']:.0f}s" if "fit" in res else ""
        )
        print(
            f"  {name:16s} val {res['val_share']:.3f}  test {res['test_share']:.3f} "
            f"[{lo:.3f}, {hi:.3f}]{head}{fit_s}",
            flush=True,
        )

    spec, rows, cfg = m.spec, m.rows, m.cfg
    report("bayes_filter", score(rows, oracle_filter_features(m.filt[rows.anchors]), cfg))
    raw = raw_window_features(m.x, rows.anchors, spec.patch_len, spec.context_len)
    report("raw_window", score(rows, raw, cfg))
    last = with_overrides(cfg, {"model.pooling": "last"}, "ceiling: random init")
    enc = build_encoder(m.x.shape[1], spec, last.model, cfg.eval.seed, m.feature_names)
    report(
        "random_init", score(rows, embed(enc, m.x, spec, rows.anchors - spec.context_len + 1), cfg)
    )
    a = args
    enc_b = Budget(a.enc_steps, a.max_seconds, a.eval_every, a.patience, 256, a.enc_lr)
    mlp_b = Budget(a.mlp_steps, a.max_seconds, a.eval_every, a.patience, 512, a.mlp_lr)
    gru_b = Budget(a.gru_steps, a.max_seconds, a.gru_eval_every, a.patience, 16, a.gru_lr)
    for name in models:
        soft = "_soft" in name
        if name.startswith("enc_"):
            reps, log = train_encoder(m, "_causal" in name, soft, name.endswith("_dense"), enc_b)
        elif name.startswith("mlp_"):
            reps, log = train_mlp(m, soft, mlp_b, args.mlp_max_train)
        else:
            reps, log = train_gru(m, soft, gru_b, args.gru_hidden)
        res = score(rows, reps["X"], cfg)
        res["head_val_share"] = rows.share(reps["head"], VAL)
        res["head_test_share"] = rows.share(reps["head"], TEST)
        res["fit"] = log
        report(name, res)
    return out


def table(results: dict[int, dict[str, dict]], n_rows: dict[int, dict[int, int]]) -> str:
    """Markdown: one row per representation, validation and test share per seed."""
    seeds = list(results)
    names = list(next(iter(results.values())))
    head = ["representation"]
    for s in seeds:
        head += [f"val share (seed {s})", f"test share (seed {s})"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for n in names:
        cells = [n]
        for s in seeds:
            r = results[s].get(n)
            if r is None:
                cells += ["–", "–"]
                continue
            lo, hi = r["test_ci"]
            cells += [f"{r['val_share']:.3f}", f"{r['test_share']:.3f} [{lo:.3f}, {hi:.3f}]"]
        lines.append("| " + " | ".join(cells) + " |")
    rows_line = "; ".join(
        f"seed {s}: " + "/".join(str(n_rows[s][k]) for k in SPLITS) for s in seeds
    )
    lines += ["", f"Probe rows (train/val/test): {rows_line}."]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--seeds", default="0,1", help="synthetic market seeds (synth.seed)")
    ap.add_argument("--set", action="append", default=[], dest="sets")
    ap.add_argument("--models", default=",".join(MODELS), help=f"subset of {MODELS}")
    ap.add_argument("--max-windows", type=int, default=6000, help="probe rows per split")
    ap.add_argument("--enc-steps", type=int, default=3000)
    ap.add_argument("--mlp-steps", type=int, default=4000)
    ap.add_argument("--gru-steps", type=int, default=1500)
    ap.add_argument("--max-seconds", type=float, default=300.0, help="cap per training")
    ap.add_argument("--enc-lr", type=float, default=3e-4)
    ap.add_argument("--mlp-lr", type=float, default=3e-4)
    ap.add_argument("--gru-lr", type=float, default=2e-3)
    ap.add_argument("--eval-every", type=int, default=50)
    ap.add_argument("--gru-eval-every", type=int, default=20)
    ap.add_argument("--patience", type=int, default=6, help="evaluations without gain")
    ap.add_argument("--mlp-max-train", type=int, default=100_000)
    ap.add_argument("--gru-hidden", type=int, default=64)
    ap.add_argument(
        "--extra-train-seeds",
        default="",
        help="also train the supervised models on these synthetic markets' train days",
    )
    ap.add_argument("--out", type=Path, default=Path("runs/ceiling"))
    args = ap.parse_args()
    models = [n for n in args.models.split(",") if n]
    if unknown := sorted(set(models) - set(MODELS)):
        raise SystemExit(f"unknown --models {unknown}; choose from {MODELS}")
    extra_seeds = [int(e) for e in args.extra_train_seeds.split(",") if e]
    torch.set_num_threads(1)
    results: dict[int, dict[str, dict]] = {}
    n_rows: dict[int, dict[int, int]] = {}
    args.out.mkdir(parents=True, exist_ok=True)
    with threadpool_limits(limits=1):
        for seed in (int(s) for s in args.seeds.split(",")):
            m = load_market(args.preset, seed, args.sets, args.max_windows)
            if extra := [e for e in extra_seeds if e != seed]:
                more = [load_market(args.preset, e, args.sets, args.max_windows) for e in extra]
                m = with_extra_train_days(m, more)
                print(f"seed {seed}: supervised models also train on seeds {extra}")
            n_rows[seed] = {k: int(np.sum(m.rows.sp == k)) for k in SPLITS}
            print(f"synthetic seed {seed}: probe rows {n_rows[seed]}", flush=True)
            results[seed] = run_market(m, models, args)
            (args.out / "ceiling.json").write_text(
                json.dumps(
                    {"args": vars(args) | {"out": str(args.out)}, "results": results}, indent=1
                )
            )
    text = table(results, n_rows)
    (args.out / "ceiling.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()

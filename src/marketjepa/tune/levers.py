"""Pretraining levers (issue #12): validation scoring and the `experiment levers` comparison.

**Validation score** (the sweep's objective, :func:`validation_score`). Windows are
embedded at evenly spaced labelled anchors of the train and validation days; a
standardized logistic probe is fitted on train anchors and scored on validation anchors
only, with ``C`` chosen on validation from ``eval.probe_c_grid``:

* ``latent_share`` (synthetic data: the true regime is known) =
  ``(acc − chance) / (acc_filter − chance)``, chance = the train-majority regime's rate,
  ``acc_filter`` = accuracy of the Bayes filter's argmax on the same rows;
* ``direction_lift`` (always) = direction accuracy of the label probe − ½
  (:func:`marketjepa.evaluate.probes.direction_accuracy`).

The objective is ``latent_share`` where truth exists, else ``direction_lift``. Test days
are never read.

**The levers experiment** (:func:`run_levers_experiment`). For each market (synthetic
seeds and the null market, ``synth.signal = 0``), the chosen configuration and today's
are pretrained on the same prepared data; every representation — both LeJEPAs, each
one's random-init encoder (same architecture, fresh weights) and raw window statistics —
is probed on the same rows with the same probes (fit on train, ``C`` on validation,
scored on test days). Paired day-block bootstrap CIs
(:mod:`marketjepa.evaluate.bootstrap`) give chosen − X for the latent share and the
direction lift on identical replicate days.
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
from threadpoolctl import threadpool_limits

from marketjepa.artifacts import write_json
from marketjepa.config import Config, apply_overrides, build_config, load_config
from marketjepa.console import stage_line
from marketjepa.constants import N_CLASSES, TEST, TRAIN, VAL
from marketjepa.data.prepared import PreparedData, truth_arrays
from marketjepa.data.windows import WindowDataset, WindowSpec, context_starts
from marketjepa.evaluate.baselines import build_encoder, encoder_embeddings, raw_window_features
from marketjepa.evaluate.bootstrap import block_bootstrap
from marketjepa.evaluate.probes import (
    confusion_matrix,
    direction_accuracy,
    fit_classification_probe,
)
from marketjepa.pipeline import ensure_prepared, ensure_synthetic
from marketjepa.train.checkpoint import load_model
from marketjepa.train.pretrain import train_lejepa

# Today's `cpu` preset before issue #12 (targets encoded alone, bidirectional attention).
TODAY: dict[str, Any] = {
    "model.causal": False,
    "loss.target_path": "separate",
    "loss.target_scales": [],
    "windows.target_patches": 3,
    "model.predictor_input": "tokens",
    "model.input_exclude": [],
    "model.session_mask": False,
    "loss.target_exclude": [],
    "loss.aux_future_mean": 0.0,
    "loss.sigreg_pooling": "same",
}


def with_overrides(cfg: Config, changes: dict[str, Any], origin: str) -> Config:
    """``cfg`` with dotted ``changes`` applied (values written as YAML scalars/lists)."""
    items = [f"{k}={_yaml(v)}" for k, v in changes.items()]
    return build_config(apply_overrides(cfg.to_dict(), items), origin)


def screen_market(
    preset: str, sets: list[str], epochs: int | None = None
) -> tuple[Config, PreparedData]:
    """The configuration and prepared market of a lever screen (benchmarks/lever_screen.py,
    benchmarks/oracle_input.py): ``preset`` with the ``--set`` overrides, no watchdog, on
    the CPU, ``epochs`` if given; the synthetic market is generated and prepared if needed."""
    overrides = ["train.watchdog.enabled=false", "train.device=cpu", *sets]
    if epochs:
        overrides.append(f"train.epochs={epochs}")
    cfg = load_config(preset, overrides=overrides)
    if cfg.data.source == "synthetic":
        ensure_synthetic(cfg)
    return cfg, PreparedData.load(ensure_prepared(cfg))


def screen_pretraining(
    cfg: Config,
    data: PreparedData,
    out: Path,
    features: np.ndarray | None = None,
    feature_names: list[str] | None = None,
    after_init: Callable[[torch.nn.Module], None] | None = None,
    after_epoch: Callable[[int, torch.nn.Module], None] | None = None,
) -> None:
    """Pretrain one lever-screen variant and print its validation latent share (probe fitted
    on train days, scored on validation days; test days never read) for the random-init
    encoder and after every epoch. ``features``/``feature_names`` replace the prepared ones
    (e.g. with extra channels); the hooks print more readouts of the same encoder."""
    x = np.asarray(data.features if features is None else features, np.float32)
    names = list(data.feature_names if feature_names is None else feature_names)
    split, label = np.asarray(data.split), np.asarray(data.label)
    spec = WindowSpec.from_config(cfg.windows)
    enc = build_encoder(x.shape[1], spec, cfg.model, cfg.train.seed, names)
    r = validation_score(enc, cfg, x, split, label, data.truth)
    print(f"{out.name} epoch 0 (random init): latent share {r['latent_share']:.3f}", flush=True)
    if after_init is not None:
        after_init(enc)
    t0 = time.time()

    def on_epoch(epoch: int, row: dict, model: torch.nn.Module) -> None:
        s = validation_score(model.encoder, cfg, x, split, label, data.truth)
        print(
            f"{out.name} epoch {epoch}: latent share {s['latent_share']:.3f}, direction lift "
            f"{s['direction_lift']:+.3f}, per-epoch probe {row['latent_share']:.3f}, "
            f"val pred {row['val_pred']:.4f}, RankMe {row['probe_rankme']:.1f}, "
            f"{time.time() - t0:.0f}s",
            flush=True,
        )
        if after_epoch is not None:
            after_epoch(epoch, model.encoder)

    train_lejepa(
        cfg, x, split, out, truth=data.truth, on_epoch_end=on_epoch, session=data.session,
        feature_names=names,
    )  # fmt: skip


def _yaml(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list | tuple):
        return "[" + ",".join(str(x) for x in v) + "]"
    return str(v)


def _even(idx: np.ndarray, cap: int) -> np.ndarray:
    if cap <= 0 or idx.size <= cap:
        return idx
    return idx[np.linspace(0, idx.size - 1, cap).round().astype(np.int64)]


def probe_starts(
    split: np.ndarray, label: np.ndarray, context_len: int, splits: tuple[int, ...], cap: int
) -> dict[int, np.ndarray]:
    """Evenly spaced context-window starts with a labelled anchor, per split.

    Every start's context lies within one split run (``context_starts``); ``cap`` caps
    each split's count (0 = all).
    """
    spec = WindowSpec(patch_len=context_len, context_patches=1, gap_patches=0, target_patches=1)
    ok = np.asarray(label) >= 0
    return {s: _even(context_starts(split, s, spec, 1, ok), cap) for s in splits}


@torch.no_grad()
def embed(encoder: torch.nn.Module, features: np.ndarray, spec, starts: np.ndarray) -> np.ndarray:
    """Pooled embeddings of the context windows at ``starts`` (eval mode, CPU batches)."""
    device = next(encoder.parameters()).device
    ds = WindowDataset(features, spec, device)
    return encoder_embeddings(encoder, ds, starts, batch_size=1024)


def probe_predictions(
    X: np.ndarray, y: np.ndarray, split: np.ndarray, grid: list[float], seed: int, labels=False
):
    """Probe predictions for every row: the regime probe maximizes accuracy (as the probes
    stage does); the label probe is class-balanced and picks C by balanced accuracy, else
    it predicts HOLD everywhere and has no direction accuracy."""
    kw = {} if labels else {"balanced": False, "select_by": accuracy}
    with threadpool_limits(limits=1, user_api="blas"):
        return fit_classification_probe(X, y, split, grid, seed=seed, **kw).predictions


def accuracy(yt: np.ndarray, yp: np.ndarray) -> float:
    return float(np.mean(yt == yp))


def filter_share(acc: float, acc_filter: float, chance: float) -> float:
    return (acc - chance) / (acc_filter - chance) if acc_filter > chance else math.nan


def regime_share(
    regime: np.ndarray, pred: np.ndarray, filter_pred: np.ndarray, majority: int
) -> float:
    """Share of the Bayes filter's lift over chance that predictions ``pred`` of ``regime``
    recover on these rows; chance = the rate of ``majority`` (the train-majority regime)."""
    chance = float(np.mean(regime == majority))
    return filter_share(accuracy(regime, pred), accuracy(regime, filter_pred), chance)


def _direction_lift(yt: np.ndarray, yp: np.ndarray) -> float:
    d = direction_accuracy(confusion_matrix(yt, yp, N_CLASSES))
    return d - 0.5 if math.isfinite(d) else math.nan


def train_val_rows(
    split: np.ndarray, label: np.ndarray, context_len: int, cap: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(starts, split id)`` of :func:`validation_score`'s probe rows: ≤ ``cap`` evenly
    spaced labelled windows of train days, then of validation days."""
    starts = probe_starts(split, label, context_len, (TRAIN, VAL), cap)
    sp = np.concatenate([np.full(starts[s].size, s, np.int8) for s in (TRAIN, VAL)])
    return np.concatenate([starts[TRAIN], starts[VAL]]), sp


@dataclass(frozen=True)
class RegimeRows:
    """The true regime at probe rows (train + validation days) and what a regime probe's
    validation share is measured against: chance = the train-majority regime's rate on
    validation rows, and the Bayes filter's validation accuracy."""

    regime: np.ndarray
    sp: np.ndarray
    filter_pred: np.ndarray  # argmax of the Bayes filter's posterior
    majority: int  # the train-majority regime

    @classmethod
    def at(
        cls, anchors: np.ndarray, sp: np.ndarray, truth: dict[str, np.ndarray] | None
    ) -> RegimeRows | None:
        """``None`` without a known regime and filter (real data)."""
        regime, filt = truth_arrays(truth)
        if regime is None or filt is None:
            return None
        r = regime[anchors].astype(np.int64)
        majority = int(np.bincount(r[sp == TRAIN]).argmax())
        return cls(r, sp, filt[anchors].argmax(axis=1), majority)

    @property
    def chance(self) -> float:
        return float(np.mean(self.regime[self.sp == VAL] == self.majority))

    @property
    def filter_acc(self) -> float:
        v = self.sp == VAL
        return accuracy(self.regime[v], self.filter_pred[v])

    def share(self, X: np.ndarray, cfg: Config) -> float:
        """Validation share of the filter's lift of a probe fitted on train rows of ``X``."""
        pred = probe_predictions(X, self.regime, self.sp, cfg.eval.probe_c_grid, cfg.eval.seed)
        v = self.sp == VAL
        return regime_share(self.regime[v], pred[v], self.filter_pred[v], self.majority)


def validation_score(
    encoder: torch.nn.Module,
    cfg: Config,
    features: np.ndarray,
    split: np.ndarray,
    label: np.ndarray,
    truth: dict[str, np.ndarray] | None,
    max_windows: int = 6000,
) -> dict[str, float]:
    """Validation-only scores of ``encoder`` (module docstring); never reads test days."""
    spec = WindowSpec.from_config(cfg.windows)
    s_all, sp = train_val_rows(split, label, spec.context_len, max_windows)
    anchors = spec.anchor(s_all)
    X = embed(encoder, features, spec, s_all)
    v = sp == VAL
    seed, grid = cfg.eval.seed, cfg.eval.probe_c_grid
    y = np.asarray(label)[anchors].astype(np.int64)
    out = {
        "direction_lift": _direction_lift(y[v], probe_predictions(X, y, sp, grid, seed, True)[v])
    }
    rows = RegimeRows.at(anchors, sp, truth)
    out["latent_share"] = rows.share(X, cfg) if rows is not None else math.nan
    finite = math.isfinite(out["latent_share"])
    out["objective"] = out["latent_share"] if finite else out["direction_lift"]
    return out


# ------------------------------------------------------------------- the experiment


def compare_representations(
    reps: dict[str, np.ndarray],
    anchors: np.ndarray,
    sp: np.ndarray,
    day: np.ndarray,
    label: np.ndarray,
    truth: dict[str, np.ndarray] | None,
    cfg: Config,
    primary: str,
) -> dict[str, Any]:
    """Test-day latent share and direction lift of every representation, and paired
    day-block CIs of ``primary`` − each other one, on identical replicate days."""
    ev = cfg.eval
    e = sp == TEST
    y = np.asarray(label)[anchors].astype(np.int64)
    preds = {
        n: probe_predictions(X, y, sp, ev.probe_c_grid, ev.seed, True) for n, X in reps.items()
    }
    regime, filt = truth_arrays(truth)
    latent: dict[str, np.ndarray] = {}
    if regime is not None and filt is not None:
        r = regime[anchors].astype(np.int64)
        latent = {n: probe_predictions(X, r, sp, ev.probe_c_grid, ev.seed) for n, X in reps.items()}
        latent["bayes_filter"] = filt[anchors].argmax(axis=1)
        majority = int(np.bincount(r[sp == TRAIN]).argmax())
    names = list(reps)
    boot = {
        "block_days": ev.bootstrap_block_days,
        "n_samples": ev.bootstrap_samples,
        "level": ev.ci_level,
        "seed": ev.seed,
    }

    def metric(_yt: np.ndarray, cols: np.ndarray) -> dict[str, float]:
        # cols: [label, regime?, direction preds…, latent preds…, filter]
        yl = cols[:, 0]
        out = {f"dir:{n}": _direction_lift(yl, cols[:, 2 + i]) for i, n in enumerate(names)}
        if latent:
            yr, base = cols[:, 1], 2 + len(names)
            for i, n in enumerate(names):
                out[f"lat:{n}"] = regime_share(yr, cols[:, base + i], cols[:, -1], majority)
        for n in names:
            if n == primary:
                continue
            out[f"dir:{primary}-{n}"] = out[f"dir:{primary}"] - out[f"dir:{n}"]
            if latent:
                out[f"lat:{primary}-{n}"] = out[f"lat:{primary}"] - out[f"lat:{n}"]
        return out

    r_col = regime[anchors] if regime is not None else np.zeros(anchors.size)
    cols = [y, r_col, *(preds[n] for n in names)]
    if latent:
        cols += [latent[n] for n in names] + [latent["bayes_filter"]]
    res = block_bootstrap(metric, y[e], np.column_stack(cols)[e], day[e], **boot)
    return {k: {"estimate": v.estimate, "ci": [v.lo, v.hi]} for k, v in res.items()}


def chosen_levers(cfg: Config) -> dict[str, Any]:
    """The lever settings of ``cfg`` for every key :data:`TODAY` changes."""
    d = cfg.to_dict()
    out = {}
    for key in TODAY:
        node: Any = d
        for part in key.split("."):
            node = node[part]
        out[key] = node
    return out


def run_levers_experiment(
    cfg: Config,
    out_dir: Path,
    seeds: tuple[int, ...] = (0, 1),
    null_market: bool = True,
) -> str:
    """``cfg`` ("chosen") vs ``cfg`` with :data:`TODAY`'s levers on each market; writes
    ``levers.md`` and ``levers.json`` to ``out_dir``."""
    out_dir = Path(out_dir)
    markets = [(f"seed {s}", {"synth.seed": s}) for s in seeds]
    if null_market:
        seed0 = seeds[0] if seeds else cfg.synth.seed
        markets.append(("null market", {"synth.seed": seed0, "synth.signal": 0.0}))
    chosen = chosen_levers(cfg)
    results: list[dict[str, Any]] = []
    for market, mchanges in markets:
        base = with_overrides(cfg, mchanges | {"train.device": "cpu"}, f"levers: {market}")
        if base.data.source == "synthetic":
            ensure_synthetic(base)
        data = PreparedData.load(ensure_prepared(base))
        # A null market has a regime path but no evidence of it: the Bayes filter is at
        # chance, so a "share of the filter's lift" is 0/0 noise and is not reported.
        truth = data.truth if base.synth.signal > 0 else None
        res = compare_on_market(
            base,
            data.features,
            data.split,
            data.label,
            data.session,
            truth,
            out_dir / market.replace(" ", "_"),
            data.feature_names,
        )
        results.append({"market": market, "changes": mchanges, **res})
    text = levers_table(results, chosen)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "levers.md").write_text(text)
    write_json(out_dir / "levers.json", {"chosen": chosen, "today": TODAY, "results": results})
    stage_line("experiment", f"levers table written to {out_dir / 'levers.md'}")
    return text


def compare_on_market(
    base: Config,
    features: np.ndarray,
    split: np.ndarray,
    label: np.ndarray,
    session: np.ndarray,
    truth: dict[str, np.ndarray] | None,
    out_dir: Path,
    feature_names: list[str] | None = None,
) -> dict[str, Any]:
    """Pretrain ``base`` ("chosen") and ``base`` + :data:`TODAY` on one market's arrays and
    compare every representation on the same probe rows (module docstring)."""
    features = np.asarray(features, np.float32)
    split, label = np.asarray(split), np.asarray(label)
    vcfgs = {"chosen": base, "today": with_overrides(base, TODAY, "levers: today")}
    # Rows: labelled anchors of the widest context, so every representation is probed on
    # exactly the same rows.
    ctx = max(WindowSpec.from_config(c.windows).context_len for c in vcfgs.values())
    starts = probe_starts(split, label, ctx, (TRAIN, VAL, TEST), base.eval.max_probe_windows)
    anchors = np.concatenate([s + ctx - 1 for s in starts.values()])
    sp = np.concatenate([np.full(s.size, k, np.int8) for k, s in starts.items()])
    reps: dict[str, np.ndarray] = {}
    seconds: dict[str, float] = {}
    for name, vcfg in vcfgs.items():
        spec = WindowSpec.from_config(vcfg.windows)
        vstarts = anchors - spec.context_len + 1
        run = Path(out_dir) / name
        stage_line("experiment", f"levers: pretraining {name} → {run}")
        t0 = time.time()
        train_lejepa(
            vcfg, features, split, run, truth=truth, session=session, feature_names=feature_names
        )
        seconds[name] = time.time() - t0
        model = load_model(run, which="best", device="cpu")
        reps[f"lejepa_{name}"] = embed(model.encoder, features, spec, vstarts)
        enc = build_encoder(features.shape[1], spec, vcfg.model, base.eval.seed, feature_names)
        reps[f"random_init_{name}"] = embed(enc, features, spec, vstarts)
    spec0 = WindowSpec.from_config(base.windows)
    reps["raw_window"] = raw_window_features(features, anchors, spec0.patch_len, spec0.context_len)
    day = np.asarray(session)[anchors]
    stats = compare_representations(reps, anchors, sp, day, label, truth, base, "lejepa_chosen")
    return {
        "pretrain_seconds": seconds,
        "n_rows": {int(k): int(v.size) for k, v in starts.items()},
        "stats": stats,
    }


def _fmt(s: dict[str, Any] | None, sign: bool = False) -> str:
    if s is None or not math.isfinite(s["estimate"]):
        return "–"
    f = "+.3f" if sign else ".3f"
    lo, hi = s["ci"]
    return f"{s['estimate']:{f}} [{lo:{f}}, {hi:{f}}]"


def levers_table(results: list[dict[str, Any]], chosen: dict[str, Any]) -> str:
    """Markdown: per market, each representation's test-day scores and the paired CIs."""
    names = ["lejepa_chosen", "lejepa_today", "random_init_chosen", "random_init_today"]
    names.append("raw_window")
    lines = [
        "# Levers experiment: chosen pretraining configuration vs today's",
        "",
        "chosen = " + ", ".join(f"`{k}={_yaml(v)}`" for k, v in chosen.items()),
        "",
        "Test days; 95% day-block bootstrap CIs. Paired rows: chosen LeJEPA − X on the same "
        "replicate days.",
        "",
    ]
    for r in results:
        st = r["stats"]
        secs = ", ".join(f"{k} {v:.0f}s" for k, v in r["pretrain_seconds"].items())
        lines += [
            f"## {r['market']} (pretraining {secs}; test rows {r['n_rows'][TEST]})",
            "",
            "| representation | latent share of Bayes filter | direction lift |",
            "|---|---|---|",
        ]
        for n in names:
            lines.append(f"| {n} | {_fmt(st.get(f'lat:{n}'))} | {_fmt(st.get(f'dir:{n}'), True)} |")
        lines += [
            "",
            "| paired: lejepa_chosen − | Δ latent share | Δ direction lift |",
            "|---|---|---|",
        ]
        for n in names[1:]:
            key = f"lejepa_chosen-{n}"
            lines.append(
                f"| {n} | {_fmt(st.get(f'lat:{key}'), True)} | {_fmt(st.get(f'dir:{key}'), True)} |"
            )
        lines.append("")
    return "\n".join(lines)

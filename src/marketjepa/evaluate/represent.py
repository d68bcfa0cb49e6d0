"""The ``represent`` stage: every frozen representation the probes compare (DESIGN §4).

It picks the probe rows once — labelled anchors of the diagnose stage's embeddings,
evenly subsampled to ``eval.max_probe_windows`` per split — and builds, for exactly those
rows, every representation: LeJEPA's pooled embedding (from ``embeddings/``) and its other
pooling (re-embedded with ``best.pt``), raw window statistics, their hybrid, HAR-RV (daily
and intraday), a random-init encoder, a supervised encoder and the pretrained encoder
fine-tuned with the same protocol (both trained here, on train windows only, early-stopped
on the probe's validation rows), and on synthetic data the true regime and the Bayes
filter. Written to the run directory:

    representations/<name>.npz  per split ``<split>`` [n, d] and ``anchors_<split>`` [n]
    probe_rows.npz              anchors, starts, split, label, day, fwd_ret, fwd_rv,
                                sigma_h, day_names, eval_split (and regime, filter_probs)
    represent.json              the representations (in probe order), notes, the
                                supervised / fine-tuned training histories, timings

The ``probe`` stage (:mod:`marketjepa.evaluate.probes`) reads only these files.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from marketjepa.artifacts import read_json
from marketjepa.config import Config
from marketjepa.console import stage_line
from marketjepa.constants import SPLIT_NAMES, TEST, TRAIN, VAL
from marketjepa.data.calendar import full_session_minutes
from marketjepa.data.prepared import PreparedData, truth_arrays
from marketjepa.data.windows import WindowDataset, WindowSpec, even_subsample
from marketjepa.device import resolve_device
from marketjepa.errors import MarketJepaError, StageInputMissing
from marketjepa.evaluate import baselines as bl
from marketjepa.model.embedding import encoder_embeddings
from marketjepa.results import Represented, validate_result, write_result
from marketjepa.train.checkpoint import load_model

REP_DIR = "representations"
ROWS_FILE = "probe_rows.npz"
SUMMARY_FILE = "represent.json"
_ROW_ARRAYS = ("anchors", "starts", "split", "label", "day", "fwd_ret", "fwd_rv", "sigma_h")


@dataclass
class ProbeRows:
    """The rows every representation is probed on (stacked: train, then val, then test)."""

    anchors: np.ndarray
    split: np.ndarray
    label: np.ndarray
    day: np.ndarray
    fwd_ret: np.ndarray
    fwd_rv: np.ndarray
    # Trailing volatility of the label (data/labels.py): scales fwd_ret in the
    # directional-return test (evaluate/signed_return.py).
    sigma_h: np.ndarray
    regime: np.ndarray | None = None
    filter_probs: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = self.anchors.size
        for name in ("split", "label", "day", "fwd_ret", "fwd_rv", "sigma_h"):
            if getattr(self, name).shape[0] != n:
                raise ValueError(
                    f"ProbeRows.{name} has {getattr(self, name).shape[0]} rows, not {n}"
                )

    def counts(self) -> dict[str, int]:
        return {SPLIT_NAMES[s]: int(np.sum(self.split == s)) for s in (TRAIN, VAL, TEST)}


@dataclass
class ProbeInputs:
    """What the probe stage reads back: the rows, where they are scored, their dates."""

    rows: ProbeRows
    starts: np.ndarray
    eval_split: int
    day_names: np.ndarray  # day index → its date (str)


# ---------------------------------------------------------------------------------------
# inputs: the diagnose stage's embeddings, the probe rows
# ---------------------------------------------------------------------------------------


def load_embeddings(run_dir: Path) -> dict[int, dict[str, np.ndarray]]:
    """``{split: {pooled, starts, anchors}}`` from ``embeddings/`` (test optional)."""
    out = {}
    for s, name in SPLIT_NAMES.items():
        path = Path(run_dir) / "embeddings" / f"{name}.npz"
        if not path.exists():
            if s == TEST:
                continue
            raise StageInputMissing(
                f"{path} not found — run `marketjepa diagnose` on this run directory first"
            )
        with np.load(path) as z:
            missing = {"pooled", "starts", "anchors"} - set(z.files)
            if missing:
                raise StageInputMissing(f"{path}: missing arrays {sorted(missing)}")
            out[s] = {k: z[k] for k in ("pooled", "starts", "anchors")}
    return out


def select_rows(
    data: PreparedData, emb: dict[int, dict[str, np.ndarray]], max_rows: int
) -> tuple[ProbeRows, np.ndarray, np.ndarray]:
    """Labelled anchors of every split, evenly subsampled to ``max_rows`` each.

    Returns ``(rows, starts, lejepa)``: the rows, their window starts and their LeJEPA
    pooled embeddings, stacked train, val, test.
    """
    label = np.asarray(data.label)
    order = [s for s in (TRAIN, VAL, TEST) if s in emb]
    pos = {}
    for s in order:
        ok = np.flatnonzero(label[emb[s]["anchors"]] >= 0)
        pos[s] = even_subsample(ok, max_rows)
    anchors = np.concatenate([emb[s]["anchors"][pos[s]] for s in order])
    starts = np.concatenate([emb[s]["starts"][pos[s]] for s in order])
    split = np.concatenate([np.full(pos[s].size, s, dtype=np.int8) for s in order])
    if np.any(np.asarray(data.split)[anchors] != split):
        raise MarketJepaError("embedding anchors disagree with the prepared split column")
    regime, filt = truth_arrays(getattr(data, "truth", None))
    rows = ProbeRows(
        anchors=anchors,
        split=split,
        label=label[anchors].astype(np.int64),
        day=np.asarray(data.session)[anchors],
        fwd_ret=np.asarray(data.fwd_ret, dtype=np.float64)[anchors],
        fwd_rv=np.asarray(data.fwd_rv, dtype=np.float64)[anchors],
        sigma_h=np.asarray(data.sigma_h, dtype=np.float64)[anchors],
        regime=None if regime is None else regime[anchors],
        filter_probs=None if filt is None else filt[anchors],
    )
    lejepa = np.concatenate([emb[s]["pooled"][pos[s]] for s in order]).astype(np.float32)
    return rows, starts, lejepa


# ---------------------------------------------------------------------------------------
# the representations
# ---------------------------------------------------------------------------------------


@dataclass
class BuildContext:
    """Everything the representation builders share."""

    cfg: Config
    data: PreparedData
    spec: WindowSpec
    features: np.ndarray
    ds: WindowDataset
    rows: ProbeRows
    starts: np.ndarray
    train_emb: dict[str, np.ndarray]  # the diagnose embeddings of the train split
    notes: list[str]

    def embed(self, encoder: torch.nn.Module, pooling: str | None = None) -> np.ndarray:
        bs = max(256, self.cfg.train.batch_size)
        return encoder_embeddings(encoder, self.ds, self.starts, bs, pooling, self.cfg.train.bf16)

    def fresh_encoder(self) -> torch.nn.Module:
        n_feat, names = self.features.shape[1], self.data.feature_names
        return bl.build_encoder(n_feat, self.spec, self.cfg.model, self.cfg.eval.seed, names)


def _market_reps(b: BuildContext, lejepa: np.ndarray) -> dict[str, np.ndarray]:
    """Representations computed from the bars alone: window statistics and HAR-RV."""
    anchors, spec, cfg = b.rows.anchors, b.spec, b.cfg
    reps = {
        "raw_window": bl.raw_window_features(b.features, anchors, spec.patch_len, spec.context_len)
    }
    reps["hybrid"] = np.concatenate([lejepa, reps["raw_window"]], axis=1)
    close, session = np.asarray(b.data.close), np.asarray(b.data.session)
    # one "day" of bars = the calendar's usual session (390 on XNYS), never a constant
    day_bars = full_session_minutes(cfg.data.calendar)
    reps["har_rv"] = bl.har_rv_features(close, session, anchors, bars_per_day=day_bars)
    if "minute" not in b.data.frame.columns:
        b.notes.append("har_rv_intraday skipped: the prepared data has no 'minute' column")
        return reps
    extra = [cfg.labels.horizon]
    minute = b.data.frame["minute"].to_numpy()[anchors]
    reps["har_rv_intraday"] = np.concatenate(
        [
            bl.har_rv_features(close, session, anchors, bars_per_day=day_bars, extra_bars=extra),
            bl.diurnal_dummies(minute, session_minutes=day_bars),
        ],
        axis=1,
    )
    return reps


def _fit_on_labels(b: BuildContext, encoder: torch.nn.Module) -> bl.SupervisedResult:
    """The supervised protocol: all labelled train windows, early-stopped on val rows."""
    cfg, rows, label = b.cfg, b.rows, np.asarray(b.data.label)
    tr_ok = np.flatnonzero(label[b.train_emb["anchors"]] >= 0)
    val_rows = np.flatnonzero(rows.split == VAL)
    return bl.train_supervised(
        encoder,
        encoder.d_model,
        b.ds,
        b.train_emb["starts"][tr_ok],
        label[b.train_emb["anchors"][tr_ok]],
        b.starts[val_rows],
        rows.label[val_rows],
        epochs=cfg.eval.supervised_epochs,
        lr=cfg.train.lr,
        weight_decay=cfg.train.weight_decay,
        batch_size=cfg.train.batch_size,
        max_steps_per_epoch=cfg.train.max_steps_per_epoch,
        grad_clip=cfg.train.grad_clip,
        seed=cfg.eval.seed,
    )


def _trained_reps(
    b: BuildContext, pretrained: torch.nn.Module | None
) -> tuple[dict[str, np.ndarray], dict[str, list[dict[str, float]]]]:
    """Encoders trained on labels: ``supervised`` (random init) and ``lejepa_finetuned``
    (the same protocol from the pretrained encoder — does pretraining help as an init?)."""
    reps, histories = {}, {}
    runs = [("supervised", b.fresh_encoder)]
    if b.cfg.eval.finetune and pretrained is not None:
        runs.append(("lejepa_finetuned", lambda: copy.deepcopy(pretrained.encoder)))
    for name, make in runs:
        if name == "lejepa_finetuned":
            torch.manual_seed(b.cfg.eval.seed)  # the head's initialization
        res = _fit_on_labels(b, make())
        reps[name] = b.embed(res.model.encoder)
        histories[name] = res.history
        b.notes.append(
            f"{name}: best epoch {res.best_epoch + 1}/{len(res.history)} "
            f"(val balanced accuracy {res.best_val_balanced_accuracy:.3f})"
        )
    if b.cfg.eval.finetune and pretrained is None:
        b.notes.append("lejepa_finetuned skipped: no pretrained checkpoint to fine-tune")
    return reps, histories


def _oracle_reps(rows: ProbeRows) -> dict[str, np.ndarray]:
    """The true regime (one-hot) and the Bayes filter, where the data has them."""
    if rows.regime is None:
        return {}
    k = int(rows.filter_probs.shape[1]) if rows.filter_probs is not None else None
    k = k or int(rows.regime.max()) + 1
    reps = {"oracle_latent": bl.one_hot(rows.regime, k)}
    if rows.filter_probs is not None:
        reps["oracle_filter"] = bl.oracle_filter_features(rows.filter_probs)
    return reps


def build_representations(
    b: BuildContext, lejepa: np.ndarray, run_dir: Path
) -> tuple[dict[str, np.ndarray], dict[str, list[dict[str, float]]], dict[str, float]]:
    """Every representation in probe order, the label-training histories, and seconds each."""
    seconds: dict[str, float] = {}
    t = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal t
        seconds[name] = round(time.perf_counter() - t, 2)
        t = time.perf_counter()

    reps: dict[str, np.ndarray] = {"lejepa": lejepa}
    other = "mean" if b.cfg.model.pooling == "last" else "last"
    pretrained = None
    try:
        pretrained = load_model(run_dir, which="best", device=b.ds.device)
        reps[f"lejepa_{other}"] = b.embed(pretrained.encoder, other)
    except (FileNotFoundError, MarketJepaError) as exc:
        b.notes.append(f"lejepa_{other} skipped: cannot re-embed with the checkpoint ({exc})")
    lap("lejepa")
    reps |= _market_reps(b, lejepa)
    lap("market")
    reps["random_init"] = b.embed(b.fresh_encoder())
    lap("random_init")
    trained, histories = _trained_reps(b, pretrained)
    reps |= trained
    lap("supervised")
    reps |= _oracle_reps(b.rows)
    return reps, histories, seconds


# ---------------------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------------------


def save_representations(run_dir: Path, reps: dict[str, np.ndarray], rows: ProbeRows) -> None:
    folder = Path(run_dir) / REP_DIR
    folder.mkdir(parents=True, exist_ok=True)
    for name, X in reps.items():
        arrays = {}
        for s, sname in SPLIT_NAMES.items():
            m = rows.split == s
            arrays[sname] = X[m]
            arrays[f"anchors_{sname}"] = rows.anchors[m]
        np.savez(folder / f"{name}.npz", **arrays)


def save_probe_rows(path: Path, inputs: ProbeInputs) -> None:
    rows = inputs.rows
    arrays = {k: getattr(rows, k) for k in _ROW_ARRAYS if k != "starts"}
    arrays |= {"starts": inputs.starts, "eval_split": np.int8(inputs.eval_split)}
    arrays["day_names"] = np.asarray(inputs.day_names, dtype=str)
    for k in ("regime", "filter_probs"):
        if getattr(rows, k) is not None:
            arrays[k] = getattr(rows, k)
    np.savez(path, **arrays)


def _missing(path: Path, what: str) -> StageInputMissing:
    return StageInputMissing(
        f"{path}: {what} — run `marketjepa represent` on this run directory first"
    )


def load_probe_inputs(run_dir: Path) -> ProbeInputs:
    """The probe rows written by :func:`run_represent`."""
    path = Path(run_dir) / ROWS_FILE
    if not path.exists():
        raise _missing(path, "not found")
    with np.load(path) as z:
        missing = (set(_ROW_ARRAYS) | {"eval_split", "day_names"}) - set(z.files)
        if missing:
            raise _missing(path, f"missing arrays {sorted(missing)}")
        a = {k: z[k] for k in z.files}
    rows = ProbeRows(
        **{k: a[k] for k in _ROW_ARRAYS if k != "starts"},
        regime=a.get("regime"),
        filter_probs=a.get("filter_probs"),
    )
    return ProbeInputs(rows, a["starts"], int(a["eval_split"]), a["day_names"])


def load_representations(run_dir: Path, names: list[str], rows: ProbeRows) -> dict[str, np.ndarray]:
    """``{name: [n_rows, d]}`` aligned with ``rows`` (stacked train, val, test)."""
    out = {}
    for name in names:
        path = Path(run_dir) / REP_DIR / f"{name}.npz"
        if not path.exists():
            raise _missing(path, f"representation {name!r} not found")
        with np.load(path) as z:
            splits = [SPLIT_NAMES[s] for s in (TRAIN, VAL, TEST)]
            if any(s not in z.files or f"anchors_{s}" not in z.files for s in splits):
                raise _missing(path, "not a representation file (per-split arrays missing)")
            anchors = np.concatenate([z[f"anchors_{s}"] for s in splits])
            if not np.array_equal(anchors, rows.anchors):
                raise _missing(path, f"its rows differ from {ROWS_FILE}'s")
            out[name] = np.concatenate([z[s] for s in splits])
    return out


def read_summary(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / SUMMARY_FILE
    if not path.exists():
        raise _missing(path, "not found")
    return read_json(path)


# ---------------------------------------------------------------------------------------
# the stage
# ---------------------------------------------------------------------------------------


def run_represent(cfg: Config, prepared_dir: Path, run_dir: Path) -> dict[str, Any]:
    """Build every representation of the probe rows; write them, the rows and a summary."""
    t0 = time.perf_counter()
    run_dir = Path(run_dir)
    data = PreparedData.load(Path(prepared_dir))
    emb = load_embeddings(run_dir)
    notes: list[str] = []
    has_test = TEST in emb and emb[TEST]["anchors"].size and cfg.split.test > 0
    eval_split = TEST if has_test else VAL
    if eval_split == VAL:
        notes.append(
            "no test split: scores are on validation days, where C/alpha were also chosen "
            "and the supervised baseline was early-stopped (optimistic)"
        )
    rows, starts, lejepa = select_rows(data, emb, cfg.eval.max_probe_windows)
    spec = WindowSpec.from_config(cfg.windows)
    features = np.asarray(data.features, dtype=np.float32)
    ds = WindowDataset(features, spec, resolve_device(cfg.train.device))
    b = BuildContext(cfg, data, spec, features, ds, rows, starts, emb[TRAIN], notes)
    reps, histories, seconds = build_representations(b, lejepa, run_dir)

    save_representations(run_dir, reps, rows)
    day_names = data.frame["session"].unique().sort().cast(str).to_numpy()
    save_probe_rows(run_dir / ROWS_FILE, ProbeInputs(rows, starts, eval_split, day_names))
    summary = {
        "evaluated_on": SPLIT_NAMES[eval_split],
        "n_rows": rows.counts(),
        "embedded_splits": [SPLIT_NAMES[s] for s in emb],
        "representations": {name: {"dim": int(X.shape[1])} for name, X in reps.items()},
        "supervised_history": histories["supervised"],
        **(
            {"finetuned_history": histories["lejepa_finetuned"]}
            if "lejepa_finetuned" in histories
            else {}
        ),
        "notes": notes,
        "build_seconds": seconds,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    write_result(run_dir / SUMMARY_FILE, validate_result(summary, Represented, SUMMARY_FILE))
    stage_line(
        "represent",
        f"{len(reps)} representations of {rows.anchors.size} probe rows "
        f"({', '.join(f'{k} {v}' for k, v in rows.counts().items())}) in "
        f"{summary['seconds']:.0f}s",
    )
    return summary

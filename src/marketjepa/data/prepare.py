"""The ``prepare`` stage: ingest → causal features → splits → labels → normalization → disk.

Output contract: ``docs/architecture.md`` § "Prepared dataset". The folder is
``<data.prepared_dir>/<hash>`` with the hash of the data, features, labels and split
sections (and of the synthetic market for synthetic data, ``marketjepa.paths``); it is reused when
its ``manifest.json`` exists unless ``force``. Everything is written into a temporary
sibling folder that is renamed into place last, so a crash leaves no partial dataset.

Order matters for leakage: splits are assigned by day first, then the label threshold
``k`` and the normalizer are fitted on train rows only and applied to every row.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from marketjepa import paths
from marketjepa.artifacts import to_jsonable
from marketjepa.config import Config
from marketjepa.console import console, stage_line
from marketjepa.data.features import (
    OPTION_COLUMNS,
    FeatureInputs,
    compute_features,
    resolve_features,
)
from marketjepa.data.labels import class_rates, make_labels
from marketjepa.data.normalize import Normalizer
from marketjepa.data.splits import SPLIT_NAMES, day_splits, days_per_split, row_splits
from marketjepa.data.windows import WindowSpec, pretrain_starts
from marketjepa.errors import DataValidationError, MarketJepaError
from marketjepa.results import PreparedManifest, validate_result, write_result
from marketjepa.rundir_lock import clean_data_temps

BAR_COLUMNS = {
    "ts": pl.Int64,
    "session": pl.Date,
    "minute": pl.Int16,
    "session_minutes": pl.Int16,
    "open": pl.Float64,
    "high": pl.Float64,
    "low": pl.Float64,
    "close": pl.Float64,
    "volume": pl.Float64,
    "filled": pl.Boolean,
}
_SOURCE = "ingest output"


# One definition of the cache key, shared with the pipeline and the report.
prepared_hash = paths.prepared_hash
prepared_path = paths.prepared_dir


@dataclass
class PreparedBuild:
    frame: pl.DataFrame
    normalizer: Normalizer
    manifest: dict[str, Any]
    option_bars: pl.DataFrame | None
    truth: pl.DataFrame | None


def _fmt_ts(ns: int) -> str:
    return datetime.fromtimestamp(int(ns) / 1e9).astimezone().isoformat(timespec="minutes")


def _first_bad(mask: np.ndarray, ts: np.ndarray, problem: str) -> None:
    if mask.any():
        i = int(np.flatnonzero(mask)[0])
        raise DataValidationError(
            f"{problem} ({int(mask.sum())} bar(s))",
            file=_SOURCE,
            where=f"row {i}, ts {int(ts[i])} ({_fmt_ts(ts[i])})",
            hint="check the raw files around this time",
        )


def validate_bars(bars: pl.DataFrame, option_summary: pl.DataFrame | None) -> None:
    """The invariants feature code relies on; violations name the first bad row."""
    missing = [c for c in BAR_COLUMNS if c not in bars.columns]
    if missing:
        raise DataValidationError(
            f"bars lack column(s) {', '.join(missing)}; found {', '.join(bars.columns)}",
            file=_SOURCE,
        )
    if bars.height == 0:
        raise DataValidationError("no regular-session bars", file=_SOURCE)
    ts = bars["ts"].to_numpy()
    _first_bad(np.r_[False, np.diff(ts) <= 0], ts, "timestamps not strictly increasing")
    px = {
        c: bars[c].cast(pl.Float64).fill_null(np.nan).to_numpy()
        for c in BAR_COLUMNS
        if c in ("open", "high", "low", "close", "volume")
    }
    for c in ("open", "high", "low", "close"):
        _first_bad(~(np.isfinite(px[c]) & (px[c] > 0)), ts, f"non-positive or missing {c}")
    _first_bad(px["high"] < px["low"], ts, "high below low")
    _first_bad(~(np.isfinite(px["volume"]) & (px["volume"] >= 0)), ts, "bad volume")
    minute = bars["minute"].cast(pl.Int64).to_numpy()
    smin = bars["session_minutes"].cast(pl.Int64).to_numpy()
    _first_bad((minute < 0) | (minute >= smin), ts, "minute outside the session")
    day = bars["session"].to_physical().to_numpy()
    _first_bad(np.r_[False, np.diff(day) < 0], ts, "sessions out of order")
    if option_summary is not None:
        if option_summary.height != bars.height or not np.array_equal(
            option_summary["ts"].to_numpy(), ts
        ):
            raise DataValidationError(
                "option summary rows do not match the bars (same ts, same order expected)",
                file=_SOURCE,
            )
        lacking = [c for c in OPTION_COLUMNS if c not in option_summary.columns]
        if lacking:
            raise DataValidationError(
                f"option summary lacks column(s) {', '.join(lacking)}", file=_SOURCE
            )


def _ingest_counts(log: dict[str, Any], n_rows: int, n_filled: int) -> dict[str, int]:
    """Bars before/after the session filter as the ingest log reports them (derived from
    the outside-session counts when the log lacks the totals)."""
    outside = log.get("dropped_outside_session")
    if outside is None:
        outside = sum(
            int(log.get(k, 0) or 0)
            for k in ("premarket_bars", "postmarket_bars", "other_outside_bars")
        )
    after = log.get("bars_after_session_filter", n_rows - n_filled)
    before = log.get("bars_before_session_filter", int(after) + int(outside))
    return {
        "bars_before_session_filter": int(before),
        "bars_after_session_filter": int(after),
        "bars_outside_session": int(outside),
        "filled_minutes": n_filled,
        "rows": n_rows,
    }


def _session_counts(log: dict[str, Any], bars: pl.DataFrame) -> dict[str, Any]:
    """Raw, filled and dropped minutes and dropped partial sessions (data section)."""
    n_filled = int(bars["filled"].sum())
    return {
        "calendar": log.get("calendar", "XNYS"),
        "raw_minutes": int(log.get("raw_minutes", bars.height - n_filled)),
        "partial_sessions": log.get("partial_sessions", "drop"),
        "partial_sessions_found": int(log.get("partial_sessions_found", 0)),
        "dropped_sessions": int(log.get("dropped_sessions", 0)),
        "dropped_session_dates": list(log.get("dropped_session_dates", [])),
        "dropped_minutes": int(log.get("dropped_minutes", 0)),
        "outside_date_range_bars": int(log.get("outside_date_range_bars", 0)),
    }


@dataclass
class CausalFeatures:
    """Raw (unnormalized) features of a bar series plus the inputs they came from."""

    inputs: FeatureInputs
    names: list[str]
    dropped: list[str]
    raw: np.ndarray  # [N, F] float64, NaN where undefined or masked


def causal_features(
    cfg: Config, bars: pl.DataFrame, option_summary: pl.DataFrame | None
) -> CausalFeatures:
    """Validate ingested bars and compute the configured causal features.

    The one feature path: ``prepare`` runs it over the whole history, ``marketjepa
    signal`` / ``replay`` over the bars a live feed has delivered so far; the normalizer
    fitted by ``prepare`` is applied afterwards in both."""
    validate_bars(bars, option_summary)
    names, dropped = resolve_features(cfg.features.names, has_options=option_summary is not None)
    if not names:
        raise MarketJepaError("features.names leaves no feature to compute")
    x = FeatureInputs.from_frames(
        bars,
        option_summary,
        cfg.data.max_option_staleness_minutes,
        cfg.features.volume_z_sessions,
        cfg.data.calendar,
    )
    return CausalFeatures(x, names, dropped, compute_features(x, names))


def _dataset_frame(
    bars: pl.DataFrame, osum: pl.DataFrame | None, cf: CausalFeatures, z, split, lab
) -> pl.DataFrame:
    """dataset.parquet: bars, option summary columns, normalized features, split, labels."""
    frame = bars.select([pl.col(c).cast(t) for c, t in BAR_COLUMNS.items()])
    if osum is not None:
        opt_cols = [osum[c].cast(pl.Float64) for c in OPTION_COLUMNS]
    else:
        opt_cols = [pl.Series(c, [None] * bars.height, dtype=pl.Float64) for c in OPTION_COLUMNS]
    feat_cols = [pl.Series(f"f_{n}", z[:, j]) for j, n in enumerate(cf.names)]
    return frame.with_columns(
        *opt_cols,
        *feat_cols,
        pl.Series("options_valid", cf.inputs.options_valid),
        pl.Series("split", split, dtype=pl.Int8),
        pl.Series("label", lab.label, dtype=pl.Int8),
        pl.Series("fwd_ret", lab.fwd_ret.astype(np.float32)),
        pl.Series("fwd_rv", lab.fwd_rv.astype(np.float32)),
        pl.Series("sigma_h", lab.sigma_h.astype(np.float32)),
    )


def _feature_stats(
    cf: CausalFeatures, norm: Normalizer, z, split, splits_present
) -> dict[str, Any]:
    """Per feature: normalizer center/scale, missing and clipped shares, mean/std per split."""
    train = split == 0
    rows_ok = np.isfinite(cf.raw)
    stats = {}
    for j, n in enumerate(cf.names):
        col = z[:, j]
        stats[n] = {
            "center": float(norm.center[j]),
            "scale": float(norm.scale[j]),
            "missing_frac": float(1.0 - rows_ok[:, j].mean()),
            "clipped_frac_train": float((np.abs(col[train]) >= norm.clip_z).mean()),
            **{
                f"{SPLIT_NAMES[s]}_{m}": float(getattr(col[split == s], m)())
                for s in splits_present
                for m in ("mean", "std")
            },
        }
    return stats


def _split_counts(cfg: Config, split, per_day, filled, lab, splits_present) -> dict[str, Any]:
    """Days, rows, pretraining windows, filled share and class rates per split."""
    spec = WindowSpec.from_config(cfg.windows)
    per = {SPLIT_NAMES[s]: split == s for s in splits_present}
    return {
        "filled_share_per_split": {
            k: float(filled[m].mean()) if m.any() else 0.0 for k, m in per.items()
        },
        "days_per_split": days_per_split(per_day),
        "rows_per_split": {k: int(m.sum()) for k, m in per.items()},
        "windows_per_split": {
            SPLIT_NAMES[s]: int(pretrain_starts(split, s, spec, cfg.windows.stride).size)
            for s in splits_present
        },
        "window_spec": {
            "patch_len": spec.patch_len,
            "context_patches": spec.context_patches,
            "gap_patches": spec.gap_patches,
            "target_patches": spec.target_patches,
            "stride": cfg.windows.stride,
        },
        "class_rates_per_split": {k: class_rates(lab.label[m]) for k, m in per.items()},
        "labelled_rows_per_split": {k: int((lab.label[m] >= 0).sum()) for k, m in per.items()},
    }


def build_prepared(
    cfg: Config,
    result: Any,
    truth: pl.DataFrame | None = None,
    per_day: np.ndarray | None = None,
) -> PreparedBuild:
    """Everything ``prepare`` writes, computed in memory from an ingest result.

    ``per_day`` (split id per trading day) replaces ``day_splits(cfg.split)``: a
    walk-forward fold passes its own, so labels and normalizer fit on its train days."""
    t0 = time.perf_counter()
    bars: pl.DataFrame = result.bars
    osum: pl.DataFrame | None = result.option_summary
    cf = causal_features(cfg, bars, osum)
    x, names = cf.inputs, cf.names
    t_feat = time.perf_counter() - t0

    n_days = int(x.day.max()) + 1
    if per_day is None:
        per_day = day_splits(n_days, cfg.split)
    elif per_day.shape != (n_days,):
        raise MarketJepaError(f"per-day split has {per_day.size} entries for {n_days} days")
    split = row_splits(x.day, per_day)
    train = split == 0
    filled = bars["filled"].to_numpy()
    lab = make_labels(x.close, x.r1, x.day, x.minute, cfg.labels, train_mask=train, filled=filled)
    norm = Normalizer.fit(cf.raw, names, train, cfg.features.normalizer, cfg.features.clip_z)
    z = norm.apply(cf.raw)
    frame = _dataset_frame(bars, osum, cf, z, split, lab)
    splits_present = [s for s in SPLIT_NAMES if (per_day == s).any()]
    log = getattr(result, "log", {}) or {}
    counts = _split_counts(cfg, split, per_day, filled, lab, splits_present)
    manifest = {
        "config_hash": prepared_hash(cfg),
        "created": datetime.now().isoformat(timespec="seconds"),
        "source": cfg.data.source,
        "inputs": getattr(result, "inputs", {}) or {},
        "ingest_log": log,
        **_ingest_counts(log, bars.height, int(bars["filled"].sum())),
        "n_days": int(per_day.size),
        "repairs": {
            "filled_minutes": int(bars["filled"].sum()),
            "zero_volume_bars": int(log.get("zero_volume_bars", 0)),
        },
        **_session_counts(log, bars),
        "filled_share_per_split": counts.pop("filled_share_per_split"),
        "first_session": str(bars["session"][0]),
        "last_session": str(bars["session"][-1]),
        **counts,
        "label_kind": lab.kind,
        "label_k": lab.k,
        "horizon": cfg.labels.horizon,
        "feature_names": names,
        "feature_dim": len(names),
        "dropped_features": cf.dropped,
        "options": osum is not None,
        "options_valid_frac": float(x.options_valid.mean()),
        "feature_stats": _feature_stats(cf, norm, z, split, splits_present),
        "seconds": {"features": round(t_feat, 3), "total": round(time.perf_counter() - t0, 3)},
    }
    option_bars = result.option_bars
    if truth is not None:
        truth = align_truth(truth, frame["ts"])
        manifest["truth_missing_rows"] = int(truth["regime"].null_count())
    return PreparedBuild(frame, norm, to_jsonable(manifest), option_bars, truth)


def align_truth(truth: pl.DataFrame, ts: pl.Series) -> pl.DataFrame:
    """``ts, regime, filter_p*`` of the synthetic latent state, one row per dataset row."""
    cols = ["ts", "regime", *sorted(c for c in truth.columns if c.startswith("filter_p"))]
    missing = [c for c in cols if c not in truth.columns]
    if missing:
        raise DataValidationError(f"truth lacks column(s) {', '.join(missing)}", file="truth")
    return pl.DataFrame({"ts": ts}).join(
        truth.select(cols).unique("ts", keep="first"), on="ts", how="left", maintain_order="left"
    )


def load_truth(cfg: Config) -> pl.DataFrame | None:
    """The synthetic latent state, only for synthetic data; never used for features."""
    if cfg.data.source != "synthetic":
        return None
    path = paths.synthetic_dir(cfg) / "truth" / "latent.parquet"
    return pl.read_parquet(path) if path.exists() else None


def write_prepared(build: PreparedBuild, out_dir: str | Path) -> Path:
    """Write the dataset folder atomically (temp folder renamed into place)."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    clean_data_temps(out_dir.parent)  # temp and old folders of killed runs
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}-{time.time_ns()}"
    tmp.mkdir()
    try:
        build.frame.write_parquet(tmp / "dataset.parquet", statistics=False)
        if build.option_bars is not None:
            build.option_bars.write_parquet(tmp / "option_bars.parquet")
        if build.truth is not None:
            build.truth.write_parquet(tmp / "truth.parquet")
        build.normalizer.save(tmp / "normalization.json")
        manifest_path = tmp / "manifest.json"
        write_result(
            manifest_path, validate_result(build.manifest, PreparedManifest, manifest_path)
        )
        if out_dir.exists():  # force: move the old one aside, then swap in
            old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}-{time.time_ns()}"
            out_dir.rename(old)
            tmp.rename(out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def print_summary(manifest: dict[str, Any], out_dir: Path) -> None:
    from rich.table import Table

    m = manifest
    stage_line(
        "prepare",
        f"{m['bars_before_session_filter']:,} bars → {m['bars_after_session_filter']:,} in "
        f"session ({m['filled_minutes']:,} filled) · {m['n_days']} days · "
        f"{m['feature_dim']} features · label k={m['label_k']:.3f} ({m['label_kind']}) → "
        f"{out_dir}",
    )
    fs = m.get("filled_share_per_split", {})
    stage_line(
        "prepare",
        f"minutes: {m.get('raw_minutes', 0):,} raw, {m['filled_minutes']:,} filled (never "
        f"labelled or traded), {m.get('dropped_minutes', 0):,} dropped in "
        f"{m.get('dropped_sessions', 0)} partial session(s)"
        + (f"; test rows filled {100 * fs['test']:.1f}%" if "test" in fs else ""),
    )
    if m["dropped_features"]:
        stage_line("prepare", f"no option data: left out {', '.join(m['dropped_features'])}")
    t = Table(title="splits", title_justify="left")
    for col in ("split", "days", "rows", "windows", "labelled", "HOLD", "BUY_CALL", "BUY_PUT"):
        t.add_column(col, justify="right")
    for s, rates in m["class_rates_per_split"].items():
        t.add_row(
            s,
            str(m["days_per_split"][s]),
            f"{m['rows_per_split'][s]:,}",
            f"{m['windows_per_split'][s]:,}",
            f"{m['labelled_rows_per_split'][s]:,}",
            *(f"{100 * rates[c]:.1f}%" for c in ("HOLD", "BUY_CALL", "BUY_PUT")),
        )
    t.add_row("embargo", str(m["days_per_split"]["embargo"]), "", "", "", "", "", "")
    console.print(t)
    ft = Table(title="features (normalized; stats on train unless named)", title_justify="left")
    for col in ("feature", "center", "scale", "missing", "clipped", "train μ/σ", "val μ/σ"):
        ft.add_column(col, justify="right")
    for name, s in m["feature_stats"].items():
        ft.add_row(
            name,
            f"{s['center']:.4g}",
            f"{s['scale']:.4g}",
            f"{100 * s['missing_frac']:.1f}%",
            f"{100 * s['clipped_frac_train']:.2f}%",
            f"{s.get('train_mean', 0):+.2f}/{s.get('train_std', 0):.2f}",
            f"{s.get('val_mean', 0):+.2f}/{s.get('val_std', 0):.2f}" if "val_mean" in s else "",
        )
    console.print(ft)


def prepare_from_ingest(
    cfg: Config,
    result: Any,
    out_dir: str | Path | None = None,
    force: bool = False,
    progress: bool = True,
    truth: pl.DataFrame | None = None,
) -> Path:
    """Build and write the prepared dataset from an in-memory ingest result."""
    out = Path(out_dir) if out_dir is not None else prepared_path(cfg)
    if (out / "manifest.json").exists() and not force:
        return out
    build = build_prepared(cfg, result, truth)
    write_prepared(build, out)
    if progress:
        print_summary(build.manifest, out)
    return out


def prepare(cfg: Config, force: bool = False, progress: bool = True) -> Path:
    """Ingest the configured raw data and write ``data/prepared/<hash>/`` (cached)."""
    out = prepared_path(cfg)
    if (out / "manifest.json").exists() and not force:
        if progress:
            stage_line("prepare", f"reusing {out} (use --force to rebuild)")
        return out
    from marketjepa.data.ingest import ingest

    t0 = time.perf_counter()
    result = ingest(cfg, progress=progress)
    if progress:
        n = result.bars.height
        stage_line("prepare", f"ingested {n:,} bars in {time.perf_counter() - t0:.1f}s")
    truth = load_truth(cfg)
    if progress and truth is None and cfg.data.source == "synthetic":
        stage_line("prepare", "no synthetic truth/latent.parquet found: truth.parquet skipped")
    path = prepare_from_ingest(cfg, result, out, force=True, progress=progress, truth=truth)
    if progress:
        stage_line("prepare", f"done in {time.perf_counter() - t0:.1f}s → {path}")
    return path


__all__ = [
    "CausalFeatures",
    "PreparedBuild",
    "build_prepared",
    "causal_features",
    "prepare",
    "prepare_from_ingest",
    "prepared_hash",
    "prepared_path",
    "validate_bars",
    "write_prepared",
]

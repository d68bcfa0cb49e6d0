"""Walk-forward backtest (``marketjepa walkforward``): every day scored out of sample once.

Folds. The ``D`` trading days are cut into ``n + 1`` equal blocks
(:func:`marketjepa.data.splits.walk_forward_eval_folds`, expanding window). Fold ``k``
(1..n) trades block ``k + 1`` (its TEST days) and learns only from the days before it:
the last share ``s = split.val / (split.train + split.val)`` of them choose the
checkpoint and the policy thresholds (VAL), the days before those, minus
``split.embargo_days``, are fit on (TRAIN), and ``embargo_days`` separate the training days
from the traded block. Days after the traded block are unused (split −1) in that fold.

Per fold, from raw bars ingested once:

1. prepare — :func:`marketjepa.data.prepare.build_prepared` (the ``prepare`` code path)
   with the fold's per-day split, so the label threshold and the feature normalizer are
   fitted on the fold's TRAIN rows only;
2. encoder — LeJEPA pretrained on the fold's TRAIN windows, best checkpoint chosen on its
   VAL windows; or, with ``reuse_encoder``, the run's own ``checkpoints/best.pt`` (a
   representation leak whenever the run's encoder was trained on days a fold trades:
   stated per fold in the output);
3. representations — the ``diagnose`` embeddings of labelled anchors (``lejepa``) and the
   raw-window statistics baseline (``raw_window``);
4. policy — :func:`marketjepa.trading.policy.run_policy`: head on TRAIN anchors,
   thresholds on VAL anchors;
5. backtest — :func:`marketjepa.trading.backtest.run_backtest` on the TEST block, with the
   always-CALL / always-PUT / random-entry baselines.

Concatenation. Each strategy's daily P&L over the traded blocks, in order, is one
out-of-sample equity curve (every fold starts from the P&L carried so far; sizing inside a
fold uses that fold's own realized equity). Its metrics are
:func:`marketjepa.trading.metrics.strategy_metrics`; the deflated Sharpe ratio of a policy
uses ``N`` = every threshold pair of every representation in every fold (all the
configurations the walk-forward tried) and ``V`` = the variance of those trials'
per-day validation Sharpe ratios. Baselines are deflated by the same ``N`` and ``V``, as in
the single-split backtest (issue #11): they are read beside the policies the run selected
among all those configurations, at the chosen policy's trade count.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from threadpoolctl import threadpool_limits

from marketjepa.artifacts import read_json, to_jsonable, write_json
from marketjepa.config import Config, SplitConfig, read_config
from marketjepa.console import console, stage_line
from marketjepa.data.splits import EMBARGO, TEST, TRAIN, VAL, day_splits, walk_forward_eval_folds
from marketjepa.errors import MarketJepaError, StageInputMissing
from marketjepa.trading.backtest import MULTIPLIER, random_entry_distribution
from marketjepa.trading.metrics import strategy_metrics

WF_DIR = "walkforward"
POLICY_REPS = ("lejepa", "raw_window")
BASELINES = ("always_call", "always_put")
SIGNIFICANCE = 0.95  # DSR needed to call an edge significant (as the report's rules)
# Each fold's day blocks by role: fit the encoder/policy, select thresholds, trade.
SPANS = {"fit": TRAIN, "select": VAL, "traded": TEST}
REUSE_HINT = (
    "run `marketjepa run` (or `pretrain`) for this run first, or drop --reuse-encoder to "
    "pretrain in every fold"
)


def select_share(split_cfg: SplitConfig) -> float:
    """Share of a fold's training days that choose checkpoint and thresholds."""
    return split_cfg.val / (split_cfg.train + split_cfg.val)


def fold_splits(n_days: int, split_cfg: SplitConfig, n_folds: int) -> list[np.ndarray]:
    """Per-day split ids of each fold (0 fit, 1 select, 2 traded, −1 unused)."""
    if n_folds < 1:
        raise MarketJepaError(f"walk-forward needs at least 1 fold, got {n_folds}")
    return walk_forward_eval_folds(n_days, split_cfg, n_folds, select_share(split_cfg))


def fold_config(cfg: Config) -> Config:
    """The run's config for one fold. The fold's per-day split is explicit; a positive
    ``split.test`` only tells the policy and backtest stages to trade the TEST block."""
    if cfg.split.test > 0:
        return cfg
    sp = cfg.split
    return cfg.model_copy(
        update={
            "split": SplitConfig(
                train=0.7,
                val=0.15,
                test=0.15,
                embargo_days=sp.embargo_days,
                walk_forward_folds=sp.walk_forward_folds,
            )
        }
    )


def _span(per_day: np.ndarray, sid: int, dates: list[str]) -> dict[str, Any]:
    idx = np.flatnonzero(per_day == sid)
    if idx.size == 0:
        return {"days": 0, "first": None, "last": None}
    return {
        "days": int(idx.size),
        "first": dates[int(idx[0])],
        "last": dates[int(idx[-1])],
        "index": [int(idx[0]), int(idx[-1])],
    }


def write_representations(cfg: Config, prepared_dir: Path, fold_dir: Path) -> list[str]:
    """``representations/{lejepa,raw_window}.npz`` from the fold's ``embeddings/``."""
    from marketjepa.data.prepared import PreparedData
    from marketjepa.data.windows import WindowSpec
    from marketjepa.evaluate.baselines import raw_window_features

    data = PreparedData.load(prepared_dir)
    spec = WindowSpec.from_config(cfg.windows)
    out: dict[str, dict[str, np.ndarray]] = {name: {} for name in POLICY_REPS}
    for s in ("train", "val", "test"):
        with np.load(fold_dir / "embeddings" / f"{s}.npz") as z:
            pooled, anchors = z["pooled"], z["anchors"].astype(np.int64)
        out["lejepa"][s] = pooled
        out["raw_window"][s] = raw_window_features(
            data.features, anchors, spec.patch_len, spec.context_len
        )
        for name in POLICY_REPS:
            out[name][f"anchors_{s}"] = anchors
    folder = fold_dir / "representations"
    folder.mkdir(parents=True, exist_ok=True)
    for name, arrays in out.items():
        np.savez(folder / f"{name}.npz", **arrays)
    return list(out)


def run_fold(
    cfg: Config,
    ingest_result: Any,
    truth: pl.DataFrame | None,
    per_day: np.ndarray,
    fold_dir: Path,
    encoder_checkpoint: Path | None = None,
    keep_prepared: bool = False,
) -> dict[str, Any]:
    """Prepare, pretrain (or reuse), embed, fit the policy and trade one fold."""
    from marketjepa.data.prepare import build_prepared, write_prepared
    from marketjepa.evaluate.diagnose import run_diagnose
    from marketjepa.trading.backtest import run_backtest
    from marketjepa.trading.policy import run_policy
    from marketjepa.train.pretrain import pretrain

    fold_dir = Path(fold_dir)
    fold_dir.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    t = time.perf_counter()
    prep = write_prepared(
        build_prepared(cfg, ingest_result, truth, per_day=per_day), fold_dir / "prepared"
    )
    seconds["prepare"] = time.perf_counter() - t
    t = time.perf_counter()
    if encoder_checkpoint is None:
        pre = pretrain(cfg, prep, fold_dir)
    else:
        (fold_dir / "checkpoints").mkdir(exist_ok=True)
        shutil.copyfile(encoder_checkpoint, fold_dir / "checkpoints" / "best.pt")
        pre = {"status": "reused", "checkpoint": str(encoder_checkpoint)}
    seconds["pretrain"] = time.perf_counter() - t
    t = time.perf_counter()
    diag = run_diagnose(cfg, prep, fold_dir)
    write_representations(cfg, prep, fold_dir)
    seconds["embed"] = time.perf_counter() - t
    t = time.perf_counter()
    # Small dense problems: BLAS threads only contend (10x slower on a loaded 2-core box).
    with threadpool_limits(limits=1, user_api="blas"):
        policy = run_policy(cfg, prep, fold_dir)
    seconds["policy"] = time.perf_counter() - t
    t = time.perf_counter()
    report = run_backtest(cfg, prep, fold_dir)
    seconds["backtest"] = time.perf_counter() - t
    manifest = read_json(prep / "manifest.json")
    shutil.copyfile(prep / "normalization.json", fold_dir / "normalization.json")
    write_json(fold_dir / "prepared_manifest.json", manifest)
    if not keep_prepared:
        shutil.rmtree(prep, ignore_errors=True)
    return {
        "pretrain": {
            k: pre.get(k) for k in ("status", "best_epoch", "epochs_run", "checkpoint") if k in pre
        },
        "collapse": diag["verdict"]["status"],
        "label_k": manifest.get("label_k"),
        "test_rows": int(manifest["rows_per_split"].get("test", 0)),
        "policy": policy,
        "backtest": report,
        "seconds": {k: round(v, 2) for k, v in seconds.items()},
    }


def _encoder_leak(
    cfg: Config, run_dir: Path, folds: list[np.ndarray], dates: list[str]
) -> dict[str, Any]:
    """Which traded days the run's own encoder saw (pretraining on train, checkpoint on val)."""
    run_cfg = read_config(run_dir / "config.yaml")
    seen = day_splits(len(dates), run_cfg.split)
    seen = (seen == TRAIN) | (seen == VAL)
    per_fold = [int(np.sum(seen & (f == TEST))) for f in folds]
    idx = np.flatnonzero(seen)
    return {
        "encoder_days": [dates[int(idx[0])], dates[int(idx[-1])]] if idx.size else None,
        "traded_days_seen_per_fold": per_fold,
        "folds_with_leak": [k + 1 for k, n in enumerate(per_fold) if n > 0],
    }


def _concat(
    folds_dir: list[Path], strategy: str, fold_trades: list[pl.DataFrame]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    eq, tr = [], []
    for k, (d, trades) in enumerate(zip(folds_dir, fold_trades, strict=True), start=1):
        e = pl.read_parquet(d / "backtest" / "equity.parquet").filter(
            pl.col("strategy") == strategy
        )
        eq.append(e.select("strategy", "date", "pnl").with_columns(pl.lit(k).alias("fold")))
        tr.append(
            trades.filter(pl.col("strategy") == strategy).with_columns(pl.lit(k).alias("fold"))
        )
    return pl.concat(eq, how="vertical"), pl.concat(tr, how="vertical")


def _metrics(
    cfg: Config, eq: pl.DataFrame, tr: pl.DataFrame, n_bars: int, n_trials: int, var: float
) -> dict[str, Any]:
    ev = cfg.eval
    notional = float(
        ((tr["entry_fill"] + tr["exit_fill"]) * tr["contracts"]).sum() * MULTIPLIER
        if tr.height
        else 0.0
    )
    return strategy_metrics(
        net_pnl=tr["net_pnl"].to_numpy(),
        is_call=(tr["side"] == "CALL").to_numpy(),
        daily_pnl=eq["pnl"].to_numpy(),
        initial_capital=cfg.backtest.initial_capital,
        bars_in_position=int((tr["exit_row"] - tr["entry_row"] + 1).sum()) if tr.height else 0,
        n_bars=n_bars,
        premium_notional=notional,
        n_trials=n_trials,
        var_trial_sharpes=var,
        bootstrap_samples=ev.bootstrap_samples,
        bootstrap_block_days=ev.bootstrap_block_days,
        ci_level=ev.ci_level,
        seed=ev.seed,
    )


def run_walkforward(
    cfg: Config,
    run_dir: Path,
    n_folds: int,
    reuse_encoder: bool = False,
    ingest_result: Any = None,
    truth: pl.DataFrame | None = None,
    keep_prepared: bool = False,
    force: bool = False,
) -> dict[str, Any]:
    """Run every fold and write ``run_dir/walkforward/``; returns ``walkforward.json``.

    A fold whose ``fold.json`` records the same fold config, days, encoder and raw-data
    fingerprint is reused (an interrupted walk-forward resumes); ``force`` redoes all."""
    t0 = time.perf_counter()
    run_dir = Path(run_dir)
    out_dir = run_dir / WF_DIR
    ckpt = run_dir / "checkpoints" / "best.pt"
    if reuse_encoder and not ckpt.exists():
        raise StageInputMissing(f"--reuse-encoder: {ckpt} not found; {REUSE_HINT}")
    if ingest_result is None:
        ingest_result, truth = _ingest(cfg)
    sessions = ingest_result.bars["session"].unique(maintain_order=True)
    dates = [str(d) for d in sessions.to_list()]
    folds = fold_splits(len(dates), cfg.split, n_folds)
    fcfg = fold_config(cfg)
    _prune_folds(out_dir, n_folds)
    encoder_id = _file_hash(ckpt) if reuse_encoder else "pretrained per fold"
    data_id = getattr(ingest_result, "inputs", None) or {}

    leak = _encoder_leak(cfg, run_dir, folds, dates) if reuse_encoder else None
    fold_info, fold_dirs, fold_trades = [], [], []
    for k, per_day in enumerate(folds, start=1):
        spans = {name: _span(per_day, s, dates) for name, s in SPANS.items()}
        stage_line("walkforward", f"fold {k}/{n_folds}: {_spans_text(spans)}")
        fdir = out_dir / f"fold_{k}"
        key = _hash_json([fcfg.to_dict(), per_day.tolist(), encoder_id, data_id])
        done = fdir / "fold.json"
        if not force and done.exists() and read_json(done).get("key") == key and data_id:
            stage_line("walkforward", f"fold {k}: reusing {fdir} (same config, data, encoder)")
            res = read_json(done)["result"]
        else:
            shutil.rmtree(fdir, ignore_errors=True)
            enc = ckpt if reuse_encoder else None
            res = run_fold(fcfg, ingest_result, truth, per_day, fdir, enc, keep_prepared)
            write_json(done, {"key": key, "result": to_jsonable(res)})
        fold_dirs.append(fdir)
        fold_trades.append(pl.read_parquet(fdir / "backtest" / "trades.parquet"))
        fold_info.append(_fold_summary(k, per_day, spans, res))

    n_trials, var = _trial_stats(fold_dirs)
    concatenated = _write_tables(cfg, out_dir, fold_dirs, fold_trades, fold_info, (n_trials, var))

    main = concatenated["lejepa"]
    significant = main.get("dsr") is not None and main["dsr"] >= SIGNIFICANCE
    result = {
        "n_folds": n_folds,
        "n_days": len(dates),
        "embargo_days": cfg.split.embargo_days,
        "select_share": select_share(cfg.split),
        "traded_days": int(sum(f["traded"]["days"] for f in fold_info)),
        "untraded_first_days": int(np.flatnonzero(folds[0] == TEST)[0]),
        "encoder": "reused" if reuse_encoder else "pretrained per fold",
        "encoder_note": _encoder_note(reuse_encoder, leak, ckpt),
        "encoder_leak": leak,
        "n_trials": n_trials,
        "trial_sharpe_var": var,
        "folds": fold_info,
        "concatenated": concatenated,
        "significant_edge": bool(significant),
        "verdict": _verdict(main, n_trials, significant),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    result = to_jsonable(result)
    write_json(out_dir / "walkforward.json", result)
    print_walkforward(result)
    return result


def _spans_text(spans: dict[str, dict[str, Any]]) -> str:
    fit, sel, traded = spans["fit"], spans["select"], spans["traded"]
    return (
        f"fit {fit['first']}..{fit['last']} ({fit['days']} days), "
        f"select {sel['first']}..{sel['last']} ({sel['days']}), trade "
        f"{traded['first']}..{traded['last']} ({traded['days']})"
    )


def _ingest(cfg: Config) -> tuple[Any, pl.DataFrame | None]:
    """Raw bars (ingested once for all folds) and the synthetic truth, if any."""
    from marketjepa.data.ingest import ingest
    from marketjepa.data.prepare import load_truth

    t = time.perf_counter()
    ingest_result = ingest(cfg)
    truth = load_truth(cfg)
    stage_line("walkforward", f"ingested in {time.perf_counter() - t:.0f}s")
    return ingest_result, truth


def _prune_folds(out_dir: Path, n_folds: int) -> None:
    """Create ``out_dir``; remove folds of an earlier, longer schedule."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("fold_*"):
        if not old.name.removeprefix("fold_").isdigit() or int(old.name[5:]) > n_folds:
            shutil.rmtree(old, ignore_errors=True)


def _fold_summary(
    k: int, per_day: np.ndarray, spans: dict[str, dict[str, Any]], res: dict[str, Any]
) -> dict[str, Any]:
    """One fold's entry of ``walkforward.json`` (and row of ``folds.csv``)."""
    reps = res["policy"]["representations"]
    strategies = res["backtest"]["strategies"]
    return {
        "fold": k,
        **spans,
        "unused_days": int(np.sum(per_day == EMBARGO)),
        "pretrain": res["pretrain"],
        "collapse": res["collapse"],
        "label_k": res["label_k"],
        "test_rows": res["test_rows"],
        "thresholds": {
            r: {"tau_call": reps[r]["tau_call"], "tau_put": reps[r]["tau_put"]} for r in POLICY_REPS
        },
        "n_trials": {r: int(reps[r]["n_trials"]) for r in POLICY_REPS},
        "metrics": {
            name: {
                key: strategies[name].get(key)
                for key in ("total_return", "net_pnl", "n_trades", "sharpe", "psr", "dsr")
            }
            for name in (*POLICY_REPS, *BASELINES, "random")
        },
        "seconds": res["seconds"],
    }


def _trial_stats(fold_dirs: list[Path]) -> tuple[int, float]:
    """Every configuration tried (each threshold pair of each representation of each
    fold) and the variance of their validation Sharpe ratios."""
    trial_srs, n_trials = [], 0
    for fdir in fold_dirs:
        pol = read_json(fdir / "policy" / "policy.json")
        for r in POLICY_REPS:
            info = pol["representations"][r]
            n_trials += int(info["n_trials"])
            trial_srs += [t["val_sharpe_daily"] for t in info.get("trials", [])]
    srs = np.array([x for x in trial_srs if x is not None], float)
    srs = srs[np.isfinite(srs)]
    return n_trials, float(srs.var(ddof=1)) if srs.size > 1 else 0.0


def _write_tables(
    cfg: Config,
    out_dir: Path,
    fold_dirs: list[Path],
    fold_trades: list[pl.DataFrame],
    fold_info: list[dict[str, Any]],
    trials: tuple[int, float],
) -> dict[str, Any]:
    """Metrics of each strategy over all traded blocks; writes equity.csv, trades.csv and
    folds.csv."""
    n_bars = int(sum(f["test_rows"] for f in fold_info))
    n_trials, var = trials
    var = var if n_trials > 1 else 0.0
    concatenated, equity_frames, trade_frames = {}, [], []
    for name in (*POLICY_REPS, *BASELINES):
        eq, tr = _concat(fold_dirs, name, fold_trades)
        concatenated[name] = _metrics(cfg, eq, tr, n_bars, n_trials, var)
        equity_frames.append(eq)
        if name in POLICY_REPS:
            trade_frames.append(tr)
    rand = []
    for s in range(cfg.backtest.random_baseline_seeds):
        eq, tr = _concat(fold_dirs, f"random_s{s}", fold_trades)
        rand.append(_metrics(cfg, eq, tr, n_bars, n_trials, var))
    concatenated["random"] = random_entry_distribution(rand)

    equity = pl.concat(equity_frames, how="vertical")
    equity = equity.with_columns(
        (cfg.backtest.initial_capital + pl.col("pnl").cum_sum().over("strategy")).alias("equity")
    )
    equity = equity.with_columns(
        (1.0 - pl.col("equity") / pl.col("equity").cum_max().over("strategy")).alias("drawdown")
    )
    equity.write_csv(out_dir / "equity.csv")
    pl.concat(trade_frames, how="vertical").write_csv(out_dir / "trades.csv")
    _folds_csv(fold_info).write_csv(out_dir / "folds.csv")
    return concatenated


def _hash_json(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def _file_hash(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _encoder_note(reuse: bool, leak: dict[str, Any] | None, ckpt: Path) -> str:
    if not reuse:
        return (
            "each fold pretrained its own encoder on its fit days (checkpoint chosen on its "
            "selection days): no fold's encoder, normalizer, label threshold, policy head or "
            "thresholds saw a day it trades"
        )
    bad = (leak or {}).get("folds_with_leak") or []
    seen = (leak or {}).get("traded_days_seen_per_fold") or []
    where = (
        "; ".join(f"fold {k}: {seen[k - 1]} traded days" for k in bad) if bad else "no traded day"
    )
    return (
        f"LEAK RISK: the run's encoder ({ckpt.name}) was pretrained without labels on the "
        f"run's train days and its checkpoint chosen on its val days; it saw {where}. Those "
        "folds' results can be optimistic; normalizer, labels, policy head and thresholds are "
        "still fitted per fold (the reused encoder sees features normalized on each fold's "
        "fit days, not on the run's). Rerun without --reuse-encoder for an honest result."
    )


def _verdict(m: dict[str, Any], n_trials: int, significant: bool) -> str:
    ci = f"[{_f(m.get('sharpe_ci_low'))}, {_f(m.get('sharpe_ci_high'))}]"
    head = (
        f"lejepa walk-forward: total return {_pct(m.get('total_return'))}, "
        f"{m.get('n_trades')} trades, Sharpe {_f(m.get('sharpe'))} (95% CI {ci}), "
        f"PSR {_f(m.get('psr'))}, DSR {_f(m.get('dsr'))} over {n_trials} trials"
    )
    if significant:
        return f"{head} — significant edge (DSR ≥ {SIGNIFICANCE})"
    return f"{head} — no significant edge (DSR < {SIGNIFICANCE})"


def _f(x: Any) -> str:
    return "—" if x is None else f"{x:.2f}"


def _pct(x: Any) -> str:
    return "—" if x is None else f"{100 * x:+.2f}%"


def _folds_csv(fold_info: list[dict[str, Any]]) -> pl.DataFrame:
    rows = []
    for f in fold_info:
        for name, m in f["metrics"].items():
            th = f["thresholds"].get(name, {})
            rows.append(
                {
                    "fold": f["fold"],
                    "strategy": name,
                    "fit_first": f["fit"]["first"],
                    "fit_last": f["fit"]["last"],
                    "select_first": f["select"]["first"],
                    "select_last": f["select"]["last"],
                    "traded_first": f["traded"]["first"],
                    "traded_last": f["traded"]["last"],
                    "traded_days": f["traded"]["days"],
                    "n_trades": m.get("n_trades"),
                    "net_pnl": m.get("net_pnl"),
                    "total_return": m.get("total_return"),
                    "sharpe": m.get("sharpe"),
                    "psr": m.get("psr"),
                    "dsr": m.get("dsr"),
                    "tau_call": th.get("tau_call"),
                    "tau_put": th.get("tau_put"),
                    "n_trials": f["n_trials"].get(name),
                }
            )
    return pl.DataFrame(rows, infer_schema_length=None)


def print_walkforward(result: dict[str, Any]) -> None:
    from rich.table import Table

    t = Table(title=f"walk-forward: {result['n_folds']} folds, {result['encoder']}")
    for col in ("fold", "traded days", "strategy", "trades", "return", "sharpe", "PSR"):
        t.add_column(col, justify="left" if col in ("traded days", "strategy") else "right")
    for f in result["folds"]:
        for name in ("lejepa", "raw_window"):
            m = f["metrics"][name]
            t.add_row(
                str(f["fold"]),
                f"{f['traded']['first']}..{f['traded']['last']}",
                name,
                str(m.get("n_trades")),
                _pct(m.get("total_return")),
                _f(m.get("sharpe")),
                _f(m.get("psr")),
            )
    console.print(t)
    for name in (*POLICY_REPS, *BASELINES, "random"):
        m = result["concatenated"][name]
        stage_line(
            "walkforward",
            f"{name}: return {_pct(m.get('total_return'))}, trades {m.get('n_trades')}, "
            f"Sharpe {_f(m.get('sharpe'))}, PSR {_f(m.get('psr'))}, DSR {_f(m.get('dsr'))}",
        )
    console.print(result["verdict"])
    if result["encoder"] == "reused":
        console.print(f"[bold yellow]warning[/] {result['encoder_note']}")

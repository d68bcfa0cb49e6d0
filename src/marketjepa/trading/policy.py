"""Entry policy on frozen representations (DESIGN §5): heads, thresholds, signals.

Classifier policy. A class-weighted head (logistic regression or a small MLP) maps the
standardized representation at a window's anchor to p(HOLD), p(CALL), p(PUT); it is fit
on train anchors only. The signal at a bar is

    CALL if p_call ≥ τ_c and p_call ≥ p_put,   PUT if p_put ≥ τ_p and p_put > p_call,   else HOLD.

τ_c, τ_p are chosen on VALIDATION anchors only, never on test:
- ``threshold_objective = pnl``: over a grid of per-side signal rates
  ρ ∈ {0.5, 1, 2, 4, 8, 16}% ∪ {off} (τ = the (1 − ρ) quantile of that side's val
  probabilities), the pair with the highest net P&L after costs in the backtester on
  validation days (at least one side on). Every pair is a trial for the deflated Sharpe ratio.
- ``threshold_objective = trade_rate``: ρ = target_trade_rate / 2 on each side (one trial).

Regression policy (``policy.kind = regression``). Ridge on the same inputs predicts the
forward log return μ̂ (``fwd_ret``) and the log realized vol (``fwd_rv``); the latter is
mapped to the expected squared H-bar return v̂ = c·exp(2·rv̂), c fit on train by least squares
against fwd_ret² (so the units of ``fwd_rv`` do not matter). For the ATM option at bar t
(priced on the surface at t, no look-ahead) the expected per-share P&L over H bars is

    E[P&L] = Δ·S·μ̂ + ½·Γ·S²·(μ̂² + v̂) − (V(τ) − V(τ − H)) − round-trip costs,

and the policy buys the side with the larger E[P&L] when it exceeds a threshold τ chosen on
validation (grid: 0 — the plain breakeven rule — and val quantiles of the edge).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

from marketjepa.artifacts import atomic_path
from marketjepa.black_scholes import bs_greeks, bs_price
from marketjepa.config import Config
from marketjepa.console import console, stage_line
from marketjepa.constants import CALENDAR_MINUTES_PER_YEAR
from marketjepa.errors import DataValidationError, StageInputMissing
from marketjepa.evaluate.scoring import balanced_accuracy
from marketjepa.results import Policy, validate_result, write_result
from marketjepa.trading.backtest import (
    CALL,
    HOLD,
    PUT,
    CostModel,
    Rules,
    candidate_entries,
    daily_pnl,
    evaluation_split,
    load_market,
    make_pricer,
    select_trades,
    simulate,
)
from marketjepa.trading.costs import itemize
from marketjepa.trading.metrics import sharpe_ratio
from marketjepa.trading.pricing import MarketData, OptionPricer

SIDE_RATES = (0.005, 0.01, 0.02, 0.04, 0.08, 0.16)
PREFERRED_ORDER = ("lejepa", "lejepa_mean", "raw_window", "supervised", "random_init")
SPLITS = {"train": 0, "val": 1, "test": 2}


class ClassifierHead:
    """Standardize → class-weighted logistic regression or one-hidden-layer MLP.

    Class weights are "balanced" (n / (3 · n_c)), so the rare CALL/PUT classes are not
    drowned by HOLD; ``predict_proba`` returns [n, 3] with 0 for a class absent in training.
    """

    def __init__(self, head: str = "logistic", hidden: int = 64, seed: int = 0) -> None:
        self.head, self.hidden, self.seed = head, hidden, seed
        self.scaler = StandardScaler()

    def fit(self, X: np.ndarray, y: np.ndarray) -> ClassifierHead:
        Z = self.scaler.fit_transform(X)
        counts = np.bincount(y, minlength=3).astype(float)
        w = np.where(counts > 0, y.size / (3 * np.maximum(counts, 1)), 0.0)
        if self.head == "logistic":
            self.model = LogisticRegression(C=1.0, max_iter=300)
        else:
            self.model = MLPClassifier(
                hidden_layer_sizes=(self.hidden,),
                alpha=1e-4,
                batch_size=512,
                max_iter=30,
                random_state=self.seed,
            )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.model.fit(Z, y, sample_weight=w[y])
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        p = np.zeros((X.shape[0], 3))
        if X.shape[0]:
            p[:, self.model.classes_] = self.model.predict_proba(self.scaler.transform(X))
        return p


def class_report(y: np.ndarray, proba: np.ndarray) -> dict[str, Any]:
    """Accuracy, balanced accuracy, predicted (argmax) and true class rates (seed's table)."""
    pred = proba.argmax(axis=1)
    ok = y >= 0
    y, pred = y[ok], pred[ok]
    if y.size == 0:
        return {"n": 0}
    return {
        "n": int(y.size),
        "accuracy": float((pred == y).mean()),
        "balanced_accuracy": balanced_accuracy(y, pred),
        "pred_rates": {n: float((pred == c).mean()) for c, n in enumerate(("hold", "call", "put"))},
        "true_rates": {n: float((y == c).mean()) for c, n in enumerate(("hold", "call", "put"))},
    }


def signals_from_scores(
    score_call: np.ndarray, score_put: np.ndarray, tau_call: float, tau_put: float
) -> np.ndarray:
    """CALL/PUT where that side's score clears its threshold and beats the other side."""
    sig = np.full(score_call.size, HOLD, np.int8)
    sig[(score_call >= tau_call) & (score_call >= score_put)] = CALL
    sig[(score_put >= tau_put) & (score_put > score_call)] = PUT
    return sig


def signals_from_proba(proba: np.ndarray, tau_call: float, tau_put: float) -> np.ndarray:
    return signals_from_scores(proba[:, CALL], proba[:, PUT], tau_call, tau_put)


def rate_threshold(p: np.ndarray, rate: float | None) -> float:
    """τ such that about ``rate`` of ``p`` is ≥ τ; +inf for a side that is off."""
    if rate is None or p.size == 0:
        return math.inf
    return float(np.quantile(p, 1.0 - rate))


class ValBook:
    """Every possible val entry simulated once per side, for fast threshold search."""

    def __init__(
        self, pricer: OptionPricer, rows: np.ndarray, eval_mask: np.ndarray, rules: Rules, costs
    ) -> None:
        m = pricer.market
        self.market, self.eval_mask, self.rules = m, eval_mask, rules
        probe = np.zeros(m.n, np.int8)
        probe[rows] = CALL
        t, e, _, _ = candidate_entries(m, probe, eval_mask)
        self.t = t
        self.sims = {}
        for side, is_call in ((CALL, True), (PUT, False)):
            sim = simulate(pricer, e, np.full(e.size, is_call), rules, costs)
            per = itemize(
                sim["entry_mid"], sim["exit_mid"], np.full(e.size, rules.contracts), costs
            )
            self.sims[side] = (sim["entry_row"], sim["exit_row"], per["net_pnl"])
        self.sessions = np.unique(m.session[eval_mask])

    def evaluate(self, signal_rows: np.ndarray, signals: np.ndarray) -> tuple[float, int, float]:
        """(net P&L, trades, per-day Sharpe) of signals at val rows under the backtest rules."""
        pos = np.searchsorted(self.t, signal_rows)
        posc = np.minimum(pos, max(self.t.size - 1, 0))
        ok = (pos < self.t.size) & (self.t[posc] == signal_rows) & (signals != HOLD)
        entries, exits, pnl = [], [], []
        for side in (CALL, PUT):
            k = posc[ok & (signals == side)]
            er, xr, p = self.sims[side]
            entries.append(er[k])
            exits.append(xr[k])
            pnl.append(p[k])
        entry = np.concatenate(entries)
        order = np.argsort(entry, kind="stable")
        exit_, pnl_ = np.concatenate(exits)[order], np.concatenate(pnl)[order]
        acc = select_trades(entry[order], exit_, self.rules.max_positions)
        trades = {"exit_row": exit_[acc], "net_pnl": pnl_[acc]}
        _, daily = daily_pnl(self.market, self.eval_mask, trades)
        sr = sharpe_ratio(daily / self.rules.initial_capital, periods=1)
        return float(pnl_[acc].sum()), int(acc.size), sr


def expected_option_pnl(
    pricer: OptionPricer, rows: np.ndarray, mu: np.ndarray, var_h: np.ndarray, rules: Rules, costs
) -> np.ndarray:
    """E[P&L] per share [n, 2] (CALL, PUT) of the ATM option at the close of ``rows``."""
    m = pricer.market
    S = m.close[rows]
    K = np.rint(S)
    exp_day = pricer.expiry_day(rows, rules.dte)
    tau = pricer.tau_minutes(rows, exp_day)
    sigma, _ = pricer.surface_iv(rows, K, tau)
    T0 = tau / CALENDAR_MINUTES_PER_YEAR
    T1 = np.maximum(tau - rules.hold_bars, 0.0) / CALENDAR_MINUTES_PER_YEAR
    out = np.zeros((rows.size, 2))
    for j, is_call in enumerate((True, False)):
        g = bs_greeks(S, K, T0, sigma, is_call, m.r, m.q)
        v0 = bs_price(S, K, T0, sigma, is_call, m.r, m.q)
        decay = v0 - bs_price(S, K, T1, sigma, is_call, m.r, m.q)
        move = g["delta"] * S * mu + 0.5 * g["gamma"] * S * S * (mu * mu + var_h)
        out[:, j] = move - decay - costs.round_trip_per_share(v0)
    return out


def _load_representations(run_dir: Path) -> dict[str, dict[str, np.ndarray]]:
    folder = Path(run_dir) / "representations"
    files = sorted(folder.glob("*.npz")) if folder.exists() else []
    if not files:
        raise StageInputMissing(
            f"no representations in {folder} — run `marketjepa represent` first"
        )
    reps = {}
    for f in files:
        with np.load(f) as z:
            need = {"train", "val", "test", "anchors_train", "anchors_val", "anchors_test"}
            if need - set(z.files):
                raise DataValidationError(
                    f"missing arrays {sorted(need - set(z.files))}", file=str(f)
                )
            reps[f.stem] = {k: z[k] for k in need}
    return reps


def order_representations(names: list[str]) -> list[str]:
    first = [n for n in PREFERRED_ORDER if n in names]
    return first + sorted(n for n in names if n not in first)


@dataclass(frozen=True)
class _FitContext:
    """What every representation's policy fit shares: market, labels, rules, val book."""

    cfg: Config
    pricer: OptionPricer
    book: ValBook | None
    label: np.ndarray
    fwd_ret: np.ndarray
    fwd_rv: np.ndarray
    rules: Rules
    costs: CostModel


def _checked_anchors(m: MarketData, name: str, rep: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A representation's anchor rows per split; each must be a row of that split."""
    anchors = {s: np.asarray(rep[f"anchors_{s}"], np.int64) for s in SPLITS}
    for s, a in anchors.items():
        if a.size and (a.min() < 0 or a.max() >= m.n):
            raise DataValidationError(
                f"anchors_{s} outside the dataset (0..{m.n - 1})",
                file=f"representations/{name}.npz",
            )
        if a.size and np.any(m.split[a] != SPLITS[s]):
            bad = int(a[np.flatnonzero(m.split[a] != SPLITS[s])[0]])
            raise DataValidationError(
                f"anchors_{s} contains a row of split {int(m.split[bad])}",
                file=f"representations/{name}.npz",
                where=f"row {bad}",
            )
    return anchors


def _signal_frame(m: MarketData, name: str, anchors: dict, sig: dict) -> list[pl.DataFrame]:
    """The val and test signals of one representation, one row per anchor."""
    return [
        pl.DataFrame(
            {
                "row": anchors[s],
                "ts": m.ts[anchors[s]],
                "split": np.full(anchors[s].size, SPLITS[s], np.int8),
                "representation": [name] * anchors[s].size,
                "signal": sig[s],
            }
        )
        for s in ("val", "test")
        if anchors[s].size
    ]


_SIGNAL_SCHEMA = {
    "row": pl.Int64,
    "ts": pl.Int64,
    "split": pl.Int8,
    "representation": pl.Utf8,
    "signal": pl.Int8,
}


def fit_policies(
    cfg: Config,
    pricer: OptionPricer,
    label: np.ndarray,
    fwd_ret: np.ndarray,
    fwd_rv: np.ndarray,
    reps: dict[str, dict[str, np.ndarray]],
) -> tuple[dict[str, Any], pl.DataFrame]:
    """Fit a policy per representation; thresholds on val. Returns (policy.json, signals)."""
    m: MarketData = pricer.market
    pc = cfg.policy
    rules, costs = Rules.from_config(cfg.backtest), CostModel.from_config(cfg.backtest)
    _, evaluated_on = evaluation_split(cfg, m.split)
    order = order_representations(list(reps))
    all_val = np.unique(
        np.concatenate([np.asarray(reps[r]["anchors_val"], np.int64) for r in order])
    )
    book = (
        ValBook(pricer, all_val, m.split == 1, rules, costs)
        if pc.threshold_objective == "pnl"
        else None
    )
    ctx = _FitContext(cfg, pricer, book, label, fwd_ret, fwd_rv, rules, costs)
    out: dict[str, Any] = {
        "kind": pc.kind,
        "head": pc.head,
        "threshold_objective": pc.threshold_objective,
        "thresholds_chosen_on": "val",
        "evaluated_on": evaluated_on,
        "order": order,
        "representations": {},
        "warnings": [],
    }
    frames = []
    for name in order:
        anchors = _checked_anchors(m, name, reps[name])
        X = {s: np.asarray(reps[name][s], np.float64) for s in SPLITS}
        info, sig = _fit_one(ctx, X, anchors)
        if name.startswith("lejepa") and cfg.train.sweep_trials > 1:
            # Pretraining configurations tried by `marketjepa sweep` multiply the trials
            # behind a LeJEPA policy (each was a chance to find a lucky encoder).
            info["n_trials"] *= cfg.train.sweep_trials
        out["representations"][name] = info
        frames += _signal_frame(m, name, anchors, sig)
        out["warnings"] += [f"{name}: {w}" for w in info["warnings"]]
    out["n_trials_total"] = int(sum(r["n_trials"] for r in out["representations"].values()))
    signals = pl.concat(frames, how="vertical") if frames else pl.DataFrame(schema=_SIGNAL_SCHEMA)
    return out, signals


def fit_head(cfg: Config, X_train: np.ndarray, y_train: np.ndarray) -> ClassifierHead:
    """The classifier head of ``policy.head`` on the labelled train anchors (``y >= 0``).

    Deterministic (fixed seed, full-batch or seeded solver), so ``marketjepa signal``
    refits exactly the head the policy stage chose thresholds for."""
    pc = cfg.policy
    keep = np.asarray(y_train) >= 0
    X = np.asarray(X_train, np.float64)[keep]
    return ClassifierHead(pc.head, pc.mlp_hidden, pc.seed).fit(X, np.asarray(y_train)[keep])


Scores = dict[str, np.ndarray]


def _classifier_scores(ctx: _FitContext, X: dict, anchors: dict, y_tr: np.ndarray, info: dict):
    """p(CALL), p(PUT) per split from the classifier head; its class report into ``info``."""
    head = fit_head(ctx.cfg, X["train"], y_tr)
    proba = {s: head.predict_proba(X[s]) if X[s].shape[0] else np.zeros((0, 3)) for s in SPLITS}
    info["classification"] = {s: class_report(ctx.label[anchors[s]], proba[s]) for s in SPLITS}
    return {s: proba[s][:, CALL] for s in SPLITS}, {s: proba[s][:, PUT] for s in SPLITS}


def _regression_scores(ctx: _FitContext, X: dict, anchors: dict, keep: np.ndarray, info: dict):
    """Expected option P&L of each side (Ridge μ̂ and v̂); the better side's edge, else −inf."""
    a_tr = anchors["train"]
    ret, rv = ctx.fwd_ret, ctx.fwd_rv
    tr = keep & np.isfinite(ret[a_tr]) & np.isfinite(rv[a_tr])
    scaler = StandardScaler().fit(X["train"][tr])
    Z = {s: scaler.transform(X[s]) if X[s].shape[0] else X[s] for s in SPLITS}
    r_ret = Ridge(alpha=10.0).fit(Z["train"][tr], ret[a_tr][tr])
    r_rv = Ridge(alpha=10.0).fit(Z["train"][tr], rv[a_tr][tr])
    z_tr = np.exp(2.0 * r_rv.predict(Z["train"][tr]))
    c = float(np.sum(z_tr * ret[a_tr][tr] ** 2) / max(np.sum(z_tr * z_tr), 1e-300))
    edge = {}
    for s in SPLITS:
        if not X[s].shape[0]:
            edge[s] = np.zeros((0, 2))
            continue
        mu = r_ret.predict(Z[s])
        var_h = c * np.exp(2.0 * r_rv.predict(Z[s]))
        edge[s] = expected_option_pnl(ctx.pricer, anchors[s], mu, var_h, ctx.rules, ctx.costs)
    info["regression"] = {
        "ic_val": _ic(r_ret.predict(Z["val"]), ret[anchors["val"]]) if X["val"].shape[0] else None,
        "var_scale": c,
    }
    score_c = {s: np.where(edge[s][:, 0] >= edge[s][:, 1], edge[s][:, 0], -np.inf) for s in SPLITS}
    score_p = {s: np.where(edge[s][:, 1] > edge[s][:, 0], edge[s][:, 1], -np.inf) for s in SPLITS}
    return score_c, score_p


def _threshold_pairs(pc: Any, score_c: Scores, score_p: Scores) -> list[tuple[float, float]]:
    """Candidate (τ_call, τ_put) pairs, from validation scores only."""
    if pc.kind == "regression":
        best_edge = np.maximum(score_c["val"], score_p["val"])
        finite = best_edge[np.isfinite(best_edge)]
        grid = [0.0] + [float(np.quantile(finite, 1 - r)) for r in SIDE_RATES if finite.size]
        return [(t, t) for t in grid]
    if pc.threshold_objective == "trade_rate":
        rate = pc.target_trade_rate / 2
        return [(rate_threshold(score_c["val"], rate), rate_threshold(score_p["val"], rate))]
    rates = (*SIDE_RATES, None)
    return [
        (rate_threshold(score_c["val"], rc), rate_threshold(score_p["val"], rp))
        for rc in rates
        for rp in rates
        if rc is not None or rp is not None
    ]


def _val_trials(ctx: _FitContext, pairs, val_anchors, to_signal, warn: list[str]):
    """Every pair backtested on val days; the best net P&L (fewer trades on ties) wins."""
    pc = ctx.cfg.policy
    if ctx.book is None or not (pc.threshold_objective == "pnl" or pc.kind == "regression"):
        return [], pairs[0]
    trials = []
    for tc, tp in pairs:
        pnl, n, sr = ctx.book.evaluate(val_anchors, to_signal("val", tc, tp))
        trials.append(
            {"tau_call": tc, "tau_put": tp, "val_net_pnl": pnl, "val_trades": n}
            | {"val_sharpe_daily": sr}
        )
    best = max(
        range(len(trials)), key=lambda i: (trials[i]["val_net_pnl"], -trials[i]["val_trades"])
    )
    if trials[best]["val_net_pnl"] <= 0:
        warn.append("no threshold pair made money on validation days; using the least-losing one")
    return trials, pairs[best]


def _signal_rates(sig: dict[str, np.ndarray], warn: list[str]) -> dict[str, Any]:
    """CALL/PUT rates per split; warns when val or test trades one side or none."""
    rates = {
        s: {"call": float((sig[s] == CALL).mean()), "put": float((sig[s] == PUT).mean())}
        if sig[s].size
        else None
        for s in SPLITS
    }
    for s in ("val", "test"):
        r = rates[s]
        if r and (r["call"] > 0) != (r["put"] > 0):
            side = "CALL" if r["call"] > 0 else "PUT"
            warn.append(f"trades only one side on {s} ({side} only; the seed traded 100% CALL)")
        if r and r["call"] == 0 and r["put"] == 0:
            warn.append(f"no signals on {s}")
    return rates


def _fit_one(ctx: _FitContext, X: dict, anchors: dict) -> tuple[dict[str, Any], dict]:
    """One representation's head, thresholds (chosen on val) and signals per split."""
    pc = ctx.cfg.policy
    y_tr = ctx.label[anchors["train"]].astype(np.int64)
    keep = y_tr >= 0
    if keep.sum() < 10 or np.unique(y_tr[keep]).size < 2:
        raise DataValidationError(
            f"only {int(keep.sum())} labelled train anchors with {np.unique(y_tr[keep]).size} classes"
        )
    warn: list[str] = []
    info: dict[str, Any] = {"kind": pc.kind}
    if pc.kind == "classifier":
        score_c, score_p = _classifier_scores(ctx, X, anchors, y_tr, info)
    else:
        score_c, score_p = _regression_scores(ctx, X, anchors, keep, info)

    def to_signal(s: str, tc: float, tp: float) -> np.ndarray:
        return signals_from_scores(score_c[s], score_p[s], tc, tp)

    pairs = _threshold_pairs(pc, score_c, score_p)
    trials, (tc, tp) = _val_trials(ctx, pairs, anchors["val"], to_signal, warn)
    srs = np.array([t["val_sharpe_daily"] for t in trials], float)
    srs = srs[np.isfinite(srs)]
    sig = {s: to_signal(s, tc, tp) for s in SPLITS}
    info.update(
        {
            "tau_call": tc,
            "tau_put": tp,
            "signal_rates": _signal_rates(sig, warn),
            "n_trials": max(len(pairs), 1),
            "trials": trials,
            "trial_sharpe_var": float(srs.var(ddof=1)) if srs.size > 1 else 0.0,
            "warnings": warn,
        }
    )
    return info, sig


def _ic(pred: np.ndarray, y: np.ndarray) -> float | None:
    ok = np.isfinite(y)
    if ok.sum() < 3 or np.std(pred[ok]) == 0:
        return None
    return float(np.corrcoef(pred[ok], y[ok])[0, 1])


def run_policy(cfg: Config, prepared_dir: Path, run_dir: Path) -> dict:
    """Fit a policy for each representation; write ``policy/policy.json`` and signals."""
    run_dir = Path(run_dir)
    reps = _load_representations(run_dir)
    market, data = load_market(cfg, prepared_dir)
    pricer = make_pricer(cfg, prepared_dir, market)
    out, signals = fit_policies(
        cfg,
        pricer,
        np.asarray(data.label),
        np.asarray(data.fwd_ret, np.float64),
        np.asarray(data.fwd_rv, np.float64),
        reps,
    )
    folder = run_dir / "policy"
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / "signals.parquet") as tmp:
        signals.write_parquet(tmp)
    write_result(folder / "policy.json", validate_result(out, Policy, folder / "policy.json"))
    print_policy(out)
    return out


def print_policy(out: dict[str, Any]) -> None:
    for name, info in out["representations"].items():
        cls = info.get("classification")
        rates = info["signal_rates"]
        msg = f"{name}: "
        if cls and cls["train"].get("n"):
            tr, va = cls["train"], cls["val"]
            pr = va.get("pred_rates", {})
            msg += (
                f"acc {100 * tr['accuracy']:.1f}%/{100 * va.get('accuracy', float('nan')):.1f}% "
                f"(bal {100 * va.get('balanced_accuracy', float('nan')):.1f}%), val argmax "
                f"{100 * pr.get('hold', 0):.0f}/{100 * pr.get('call', 0):.0f}/{100 * pr.get('put', 0):.0f}; "
            )
        if rates.get("val"):
            msg += f"val signals CALL {100 * rates['val']['call']:.1f}% PUT {100 * rates['val']['put']:.1f}%"
        stage_line("policy", msg)
    for w in out["warnings"]:
        console.print(f"[bold yellow]warning[/] {w}")

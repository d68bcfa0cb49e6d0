"""Evidence gate and family-wise error control for every verdict of the report (issue #11).

**Evidence gate.** A verdict (LIFT, BEATS, SIGNIFICANT, EDGE > COSTS, "Directional edge:
yes") needs enough data to be estimable at all. Below any minimum of
:class:`~marketjepa.config.EvidenceConfig` the verdict is ``INSUFFICIENT EVIDENCE`` and
names what is missing ("3 test days; need ≥ 20 for a day-block CI"):

- test days ≥ ``min_test_days`` (default ``min_ci_blocks × eval.bootstrap_block_days``
  = 4 × 5 = 20: the day-block bootstrap needs several independent blocks);
- scored rows ≥ ``min_eval_rows``; rows of each class ≥ ``min_class_rows`` (a test set
  with one class gives the always-HOLD predictor balanced accuracy 1.000);
- trades ≥ ``min_trades`` for any strategy verdict;
- a non-degenerate CI: width > 0, bootstrap SE > 0, at least ``min_valid_resample_share``
  of the replicates defined and ``min_distinct_resamples`` distinct values.

A count the artifacts do not record (hand-written or old runs) is not checked.

**Family-wise error control (Holm 1979).** Each verdict is one test in a family: the
direction-lift tests of all probed representations, the paired comparisons of LeJEPA
with its baselines, the deflated-Sharpe tests of all policies. With p-values
``p_(1) ≤ … ≤ p_(m)`` the Holm step-down adjusted p-values are

    p̃_(i) = max_{j ≤ i} min(1, (m − j + 1) · p_(j)),

and a test is significant iff ``p̃ < α`` (``family_alpha``, default 0.05), which bounds
the probability of *any* false claim in the family by α under any dependence between
the tests. A probe or paired p-value is two-sided from the bootstrap standard error,
``p = 2·(1 − F(|θ̂| / SE))`` with F the Student-t CDF with (day blocks − 1) degrees of
freedom — the SE comes from resampling blocks of days, so it is estimated from only as
many independent units as there are blocks, and with few blocks a normal (or a
per-day) reference is too optimistic (SE = SD of the bootstrap replicates, or, for artifacts that did not record
it, the CI width / (2·Φ⁻¹((1 + level)/2))); a policy's p-value is ``1 − DSR``. A verdict also needs its CI on the claimed side of 0, so a claim never
contradicts the interval printed next to it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from scipy.stats import norm
from scipy.stats import t as t_dist

from marketjepa.config import EvalConfig, EvidenceConfig
from marketjepa.evaluate.bootstrap import resample_blocks

INSUFFICIENT = "INSUFFICIENT EVIDENCE"
METHOD = "Holm"
# Share of the probe family's α given to the headline (LeJEPA) row: weighted Holm.
PRIMARY_WEIGHT = 0.5
# Backtest rows that are baselines, not policies of a representation.
BASELINE_STRATEGIES = ("always_call", "always_put", "random")


def _ok(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


# ---------------------------------------------------------------------------- math


def holm(pvalues: list[float], weights: list[float] | None = None) -> list[float]:
    """Holm step-down adjusted p-values, in the input order (NaN counts as 1).

    Equal weights: ``p̃_(i) = max_{j ≤ i} min(1, (m − j + 1)·p_(j))`` over the ascending
    order. Weighted (Holm 1979, §4): order by ``q_j = p_j / w_j`` and
    ``p̃_(i) = max_{j ≤ i} min(1, q_(j) · Σ_{k ≥ j} w_(k))``: hypothesis ``j`` starts at
    level ``α·w_j / Σ w`` and inherits the weight of every rejected one. Both bound the
    family-wise error rate by α under any dependence.
    """
    p = [v if _ok(v) else 1.0 for v in pvalues]
    m = len(p)
    w = [1.0] * m if weights is None else [float(x) for x in weights]
    if len(w) != m or any(x <= 0 for x in w):
        raise ValueError("holm: one positive weight per p-value")
    order = sorted(range(m), key=lambda i: p[i] / w[i])
    remaining = sum(w)
    out = [1.0] * m
    running = 0.0
    for i in order:
        running = max(running, min(1.0, p[i] / w[i] * remaining))
        out[i] = running
        remaining -= w[i]
    return out


def p_two_sided(estimate: Any, se: Any, df: Any = None) -> float:
    """``2·(1 − F(|θ̂|/SE))`` with F the Student-t CDF with ``df`` degrees of freedom
    (the normal Φ when ``df`` is None); NaN when SE is not a positive number."""
    if not (_ok(estimate) and _ok(se) and se > 0):
        return float("nan")
    z = abs(estimate) / se
    return float(2.0 * (t_dist.sf(z, df) if _ok(df) and df >= 1 else norm.sf(z)))


def cluster_df(summary: dict) -> float | None:
    """Degrees of freedom of the day-block bootstrap SE: blocks − 1, with the test days cut
    into blocks of ``block_days`` (the bootstrap's resampling units; few-cluster
    correction, Cameron, Gelbach & Miller 2008). None when the run does not record its
    days."""
    days = (summary.get("probes") or {}).get("eval_days")
    if not (_ok(days) and days >= 2):
        return None
    return max(1, resample_blocks(int(days), block_days(summary))[1] - 1)


def se_from_ci(ci: Any, level: float) -> float:
    """Normal-equivalent SE of a CI: width / (2·Φ⁻¹((1 + level)/2))."""
    if not ci or not (_ok(ci[0]) and _ok(ci[1])):
        return float("nan")
    return float((ci[1] - ci[0]) / (2.0 * norm.ppf((1.0 + level) / 2.0)))


# ---------------------------------------------------------------------------- config


def evidence_config(summary: dict) -> EvidenceConfig:
    """The run's gate settings (config.eval.evidence), else the documented defaults."""
    ev = ((summary.get("config") or {}).get("eval") or {}).get("evidence")
    return EvidenceConfig(**ev) if isinstance(ev, dict) else EvidenceConfig()


def block_days(summary: dict) -> int:
    cfg_eval = (summary.get("config") or {}).get("eval") or {}
    b = (summary.get("probes") or {}).get("block_days") or cfg_eval.get("bootstrap_block_days")
    return int(b) if _ok(b) else EvalConfig().bootstrap_block_days


def min_test_days(summary: dict) -> int:
    cfg = evidence_config(summary)
    return cfg.min_test_days or cfg.min_ci_blocks * block_days(summary)


def family_alpha(summary: dict) -> float:
    return evidence_config(summary).family_alpha


# ---------------------------------------------------------------------------- gates


def _days_missing(summary: dict, days: Any) -> list[str]:
    need = min_test_days(summary)
    if _ok(days) and days < need:
        return [
            f"{int(days)} test day{'' if days == 1 else 's'}; need ≥ {need} for a day-block CI "
            f"({evidence_config(summary).min_ci_blocks} blocks of {block_days(summary)} days)"
        ]
    return []


def probe_missing(summary: dict) -> list[str]:
    """What the probe verdicts lack: test days, scored rows, rows of each class."""
    p = summary.get("probes") or {}
    cfg = evidence_config(summary)
    out = _days_missing(summary, p.get("eval_days"))
    rows = p.get("eval_rows")
    if _ok(rows) and rows < cfg.min_eval_rows:
        out.append(f"{int(rows)} scored rows; need ≥ {cfg.min_eval_rows}")
    for cls, n in (p.get("class_counts") or {}).items():
        if _ok(n) and n < cfg.min_class_rows:
            out.append(f"{int(n)} {cls} rows among the scored rows; need ≥ {cfg.min_class_rows}")
    return out


def ci_problem(summary: dict, ci: Any, info: dict | None) -> str | None:
    """Why a CI is degenerate (never significant), or None."""
    cfg = evidence_config(summary)
    if not ci or not (_ok(ci[0]) and _ok(ci[1])):
        return "no finite confidence interval"
    if ci[1] - ci[0] <= 1e-12 * max(1.0, abs(ci[0]), abs(ci[1])):
        return f"the CI [{ci[0]:.3g}, {ci[1]:.3g}] has zero width (degenerate bootstrap)"
    info = info or {}
    share, distinct = info.get("valid_share"), info.get("distinct")
    if _ok(share) and share < cfg.min_valid_resample_share:
        return (
            f"only {100 * share:.0f}% of bootstrap replicates are defined; need ≥ "
            f"{100 * cfg.min_valid_resample_share:.0f}%"
        )
    if _ok(distinct) and distinct < cfg.min_distinct_resamples:
        return (
            f"bootstrap replicates take only {int(distinct)} distinct values; need ≥ "
            f"{cfg.min_distinct_resamples}"
        )
    if _ok(info.get("se")) and info["se"] <= 0:
        return "the bootstrap standard error is 0"
    return None


def strategy_missing(summary: dict, metrics: dict) -> list[str]:
    """What a strategy verdict lacks: trades, backtest days, a usable Sharpe CI."""
    cfg = evidence_config(summary)
    bt = summary.get("backtest") or {}
    out = _days_missing(summary, bt.get("days"))
    n = metrics.get("n_trades")
    if _ok(n) and n < cfg.min_trades:
        out.append(f"{int(n)} trade{'' if n == 1 else 's'}; need ≥ {cfg.min_trades}")
    share = metrics.get("sharpe_ci_valid_share")
    if _ok(share) and share < cfg.min_valid_resample_share:
        out.append(
            f"Sharpe CI: only {100 * share:.0f}% of bootstrap replicates defined; need ≥ "
            f"{100 * cfg.min_valid_resample_share:.0f}%"
        )
    distinct = metrics.get("sharpe_ci_distinct")
    if _ok(distinct) and distinct < cfg.min_distinct_resamples:
        out.append(
            f"Sharpe CI: replicates take only {int(distinct)} distinct values; need ≥ "
            f"{cfg.min_distinct_resamples}"
        )
    return out


# ---------------------------------------------------------------------------- verdicts


@dataclass
class Verdict:
    """One test of a family: its status, evidence sentence and p-values."""

    status: str
    text: str
    p: float = float("nan")
    p_adj: float = float("nan")
    m: int = 0
    missing: list[str] = field(default_factory=list)


def _pv(p: float) -> str:
    """'= 0.031' or '< 0.0001' (a normal tail below that is not worth more digits)."""
    return "< 0.0001" if p < 1e-4 else f"= {p:.2g}"


def _p_text(p: float, p_adj: float, m: int, alpha: float, what: str) -> str:
    if not _ok(p):
        return ""
    return f", p {_pv(p)} ({METHOD}-adjusted over {m} {what}: p {_pv(p_adj)}; need < {alpha:g})"


def _one_side(row: dict) -> str | None:
    """'BUY_CALL'/'BUY_PUT' when the predictor never predicts the other move class."""
    cm = row.get("confusion")
    if not (isinstance(cm, list) and len(cm) == 3 and all(len(r) == 3 for r in cm)):
        return None
    calls, puts = sum(r[1] for r in cm), sum(r[2] for r in cm)
    if calls > 0 and puts == 0:
        return "BUY_CALL"
    if puts > 0 and calls == 0:
        return "BUY_PUT"
    return None


def _probe_test(row: dict) -> tuple[str, Any, Any, dict | None, str]:
    """(key, estimate, CI, resample info, label) of the row's primary lift test: the
    directional-return t-test over test days when the row has one and the predictor
    predicted any move (evaluate/signed_return.py), else the direction-accuracy lift,
    else the balanced-accuracy lift (both with their day-block bootstrap)."""
    res = row.get("resamples") or {}
    ret = row.get("dir_return") or {}
    if _ok(ret.get("estimate")) and (ret.get("active_days") or 0) > 0:
        info = {"se": ret.get("se"), "p": ret.get("p_value"), "df": ret.get("df")}
        days = int(ret["n_days"]) if _ok(ret.get("n_days")) else 0
        label = f"directional return (t-test over {days} test days)"
        return "ret", ret["estimate"], ret.get("ci"), info, label
    if row.get("lift_direction_ci") and _ok(row.get("lift_direction")):
        return (
            "dir",
            row["lift_direction"],
            row["lift_direction_ci"],
            res.get("lift_direction"),
            "direction-accuracy lift",
        )
    if row.get("lift_balanced_ci") and _ok(row.get("lift_balanced")):
        return (
            "bacc",
            row["lift_balanced"],
            row["lift_balanced_ci"],
            res.get("lift_balanced"),
            "balanced-accuracy lift",
        )
    return "", None, None, None, ""


def _direction_lift_text(row: dict) -> str:
    """The direction-accuracy lift, shown next to the directional-return test."""
    from marketjepa.report.rules import fmt, fmt_ci

    if not _ok(row.get("lift_direction")):
        return ""
    ci = f" CI {fmt_ci(row['lift_direction_ci'])}" if row.get("lift_direction_ci") else ""
    return f" (direction-accuracy lift {fmt(row['lift_direction'])}{ci})"


def headline_weights(names: list[str], primary: str | None) -> list[float]:
    """Weights of the probe family's weighted Holm: the headline representation (the
    pre-registered question "does LeJEPA have a directional edge?") gets
    ``PRIMARY_WEIGHT``, the other rows share the rest equally; equal weights when the
    headline row is absent or alone."""
    if primary not in names or len(names) < 2:
        return [1.0] * len(names)
    rest = (1.0 - PRIMARY_WEIGHT) / (len(names) - 1)
    return [PRIMARY_WEIGHT if n == primary else rest for n in names]


def probe_verdicts(summary: dict) -> dict[str, Verdict]:
    """LIFT / NO LIFT / BELOW / INSUFFICIENT EVIDENCE / UNCERTAIN per classification row,
    Holm-corrected over all probed representations (the majority row is the reference
    and is not tested)."""
    from marketjepa.report.rules import fmt, fmt_ci, lejepa_name, lift_status

    p = summary.get("probes") or {}
    rows = [r for r in p.get("classification") or [] if r["name"] != "majority"]
    level = p.get("ci_level") if _ok(p.get("ci_level")) else 0.95
    alpha = family_alpha(summary)
    common = probe_missing(summary)
    pre: dict[str, tuple] = {}
    for r in rows:
        key, est, ci, info, label = _probe_test(r)
        if not key:
            status, ev = lift_status(r)  # accuracy-vs-majority fallback or UNCERTAIN
            if common and status != "UNCERTAIN":
                pre[r["name"]] = ("gated", INSUFFICIENT, ev, float("nan"), common)
            else:
                pre[r["name"]] = ("raw", status, ev, float("nan"), [])
            continue
        ev = f"{label} {fmt(est)} CI {fmt_ci(ci)}"
        side = _one_side(r) if key in ("dir", "ret") else None
        if side:
            ev += (
                f": predicts {side} only — a bet on the drift, not a prediction of direction; "
                "its direction lift is 0 by construction"
            )
            pre[r["name"]] = ("oneside", "NO LIFT", ev, float("nan"), [])
            continue
        problem = ci_problem(summary, ci, info)
        missing = common + ([problem] if problem else [])
        if missing:
            pre[r["name"]] = ("gated", INSUFFICIENT, ev, float("nan"), missing)
            continue
        if key == "ret":
            pv = info["p"] if _ok(info["p"]) else p_two_sided(est, info["se"], info["df"])
        else:
            se = info.get("se") if info and _ok(info.get("se")) else se_from_ci(ci, level)
            pv = p_two_sided(est, se, cluster_df(summary))
        pre[r["name"]] = (
            "test",
            (est, ci, _direction_lift_text(r) if key == "ret" else ""),
            ev,
            pv,
            [],
        )
    names = list(pre)
    primary = lejepa_name(summary)
    weights = headline_weights(names, primary)
    adj = dict(zip(names, holm([pre[n][3] for n in names], weights), strict=True))
    m = len(names)
    what = "representations"
    if len(set(weights)) > 1:
        what += f", {primary} weighted {PRIMARY_WEIGHT:g}"
    out: dict[str, Verdict] = {}
    for n in names:
        kind, payload, ev, pv, missing = pre[n]
        if kind == "test":
            est, ci, described = payload
            sig = adj[n] < alpha
            ev += " is above 0" if ci[0] > 0 else (" is below 0" if ci[1] < 0 else " covers 0")
            ev += _p_text(pv, adj[n], m, alpha, what)
            if sig and ci[0] > 0:
                status = "LIFT"
            elif sig and ci[1] < 0:
                status = "BELOW"
            else:
                status = "NO LIFT"
                if ci[0] > 0 or ci[1] < 0:
                    ev += f" — CI excludes 0, but not after the {METHOD} correction"
            out[n] = Verdict(status, ev + described, pv, adj[n], m)
        elif kind == "gated":
            out[n] = Verdict(
                INSUFFICIENT, f"{ev}; {INSUFFICIENT}: {'; '.join(missing)}", m=m, missing=missing
            )
        else:
            out[n] = Verdict(payload, ev, m=m)
    return out


def paired_verdicts(summary: dict, tests: list[dict]) -> list[Verdict]:
    """Holm-corrected verdicts of LeJEPA's comparisons. ``tests``: dicts with ``diff``,
    ``ci`` (oriented as claimed), optional ``resamples`` and ``se``."""
    p = summary.get("probes") or {}
    level = p.get("ci_level") if _ok(p.get("ci_level")) else 0.95
    alpha = family_alpha(summary)
    common = probe_missing(summary)
    pvals, gated = [], []
    for t in tests:
        problem = ci_problem(summary, t.get("ci"), t.get("resamples"))
        missing = common + ([problem] if problem else [])
        gated.append(missing)
        se = t.get("se")
        if not _ok(se):
            info = t.get("resamples") or {}
            se = info.get("se") if _ok(info.get("se")) else se_from_ci(t.get("ci"), level)
        pvals.append(
            float("nan") if missing else p_two_sided(t.get("diff"), se, cluster_df(summary))
        )
    adj = holm(pvals)
    out = []
    for t, pv, pa, missing in zip(tests, pvals, adj, gated, strict=True):
        if missing:
            out.append(
                Verdict(
                    INSUFFICIENT,
                    f"{INSUFFICIENT}: {'; '.join(missing)}",
                    m=len(tests),
                    missing=missing,
                )
            )
            continue
        lo, hi = t["ci"]
        sig = pa < alpha
        status = "BEATS" if sig and lo > 0 else ("LOSES TO" if sig and hi < 0 else "TIES")
        text = _p_text(pv, pa, len(tests), alpha, "comparisons")
        if status == "TIES" and (lo > 0 or hi < 0):
            text += f" — CI excludes 0, but not after the {METHOD} correction"
        out.append(Verdict(status, text, pv, pa, len(tests)))
    return out


def policy_rows(summary: dict) -> list[dict]:
    """The headline policy and every other representation's policy (not the baselines)."""
    bt = summary.get("backtest") or {}
    main = {"name": bt.get("representation") or "policy", **(bt.get("metrics") or {})}
    others = [
        b
        for b in bt.get("baselines") or []
        if not any(b["name"].startswith(x) for x in BASELINE_STRATEGIES)
    ]
    return [main, *others]


def strategy_verdicts(summary: dict) -> dict[str, Verdict]:
    """SIGNIFICANT / NOT SIGNIFICANT / INSUFFICIENT EVIDENCE per policy: p = 1 − DSR
    (else 1 − PSR), Holm-corrected over all policies of the run."""
    alpha = family_alpha(summary)
    rows = policy_rows(summary)
    pvals, gated = [], []
    for r in rows:
        val = r.get("dsr") if _ok(r.get("dsr")) else r.get("psr")
        missing = strategy_missing(summary, r)
        gated.append(missing)
        pvals.append(1.0 - val if _ok(val) and not missing else float("nan"))
    adj = holm(pvals)
    out = {}
    for r, pv, pa, missing in zip(rows, pvals, adj, gated, strict=True):
        if missing:
            out[r["name"]] = Verdict(
                INSUFFICIENT, f"{INSUFFICIENT}: {'; '.join(missing)}", m=len(rows), missing=missing
            )
            continue
        sig = _ok(pv) and pa < alpha
        text = (
            f"p = 1 − DSR {_pv(pv)}, {METHOD}-adjusted over {len(rows)} policies: p {_pv(pa)} "
            f"(need < {alpha:g})"
            if _ok(pv)
            else "no DSR/PSR recorded"
        )
        out[r["name"]] = Verdict(
            "SIGNIFICANT" if sig else "NOT SIGNIFICANT", text, pv, pa, len(rows)
        )
    return out

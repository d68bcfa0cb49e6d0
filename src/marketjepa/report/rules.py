"""Verdict rules: pure functions from the run summary (see ``collect.py``) to findings.

A finding is a dict ``{id, severity, status, text, numbers, threshold}``:
``severity`` is one of ``ok | info | warning | critical``; ``status`` a short label
(``COLLAPSED``, ``NO LIFT``, ``LOSES`` ...); ``text`` always contains the number(s)
that triggered it, and ``numbers``/``threshold`` carry them for machines.
Recommendations are computed from findings plus the run's config, never canned.

Every rule returns ``None``/``[]`` when the numbers it needs are absent, so a run with
missing stages still gets the findings its artifacts support.
"""

from __future__ import annotations

import math
from typing import Any

from marketjepa.config import EvalConfig
from marketjepa.report import evidence as E

ONE_SIDE_SHARE = 0.95  # share of trades on one side above which the policy is "one-sided"
SIGNIFICANCE = 0.95  # PSR/DSR needed to call a Sharpe ratio significant
TREND_TOL = 0.01  # relative change first→last epoch below which a loss is "flat"
LATENT_DROP = 0.02  # drop in latent-probe accuracy over training that we flag
DOMINANCE = 0.5  # share of the losses that makes a component "dominant"
DEAD_DIMS_COLLAPSED = 0.5  # share of dead dims that alone reads as collapse

Finding = dict[str, Any]


# ---------------------------------------------------------------------------- helpers


def ok(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def fmt(x: Any, digits: int = 3) -> str:
    """Compact number: integers plain, |x| ≥ 1 with `digits` decimals, else `digits`
    significant digits; '—' when absent."""
    if not ok(x):
        return "—"
    if float(x).is_integer():
        return f"{int(x):,}" if abs(x) >= 10_000 else str(int(x))
    if abs(x) >= 1:
        return f"{x:.{digits}f}".rstrip("0").rstrip(".")
    return f"{x:.{digits}g}"


def money(x: Any) -> str:
    return ("-" if x < 0 else "") + f"${abs(x):,.2f}" if ok(x) else "—"


def pct(x: Any, digits: int = 1) -> str:
    return f"{100 * x:.{digits}f}%" if ok(x) else "—"


def fmt_ci(ci: Any, digits: int = 3) -> str:
    return f"[{fmt(ci[0], digits)}, {fmt(ci[1], digits)}]" if ci else "(no CI)"


def _finding(
    id: str,
    severity: str,
    status: str,
    text: str,
    numbers: dict[str, Any],
    threshold: Any = None,
) -> Finding:
    return {
        "id": id,
        "severity": severity,
        "status": status,
        "text": text,
        "numbers": numbers,
        "threshold": threshold,
    }


def thresholds(summary: dict) -> dict[str, float]:
    """Collapse thresholds: diagnostics.json's, else the run config's, else the defaults."""
    out = {
        k: float(getattr(EvalConfig(), k))
        for k in (
            "healthy_rankme_ratio",
            "collapsed_rankme_ratio",
            "healthy_normalized_variance",
            "collapsed_normalized_variance",
        )
    }
    cfg_eval = (summary.get("config") or {}).get("eval") or {}
    out.update({k: float(v) for k, v in cfg_eval.items() if k in out and ok(v)})
    diag_thr = summary.get("diagnostics", {}).get("thresholds") or {}
    out.update({k: float(v) for k, v in diag_thr.items() if k in out and ok(v)})
    return out


def lejepa_name(summary: dict) -> str | None:
    rows = summary.get("probes", {}).get("classification") or []
    names = [r["name"] for r in rows]
    if "lejepa" in names:
        return "lejepa"
    return next((r["name"] for r in rows if r.get("kind") == "encoder"), None)


def _row(summary: dict, name: str | None) -> dict | None:
    rows = summary.get("probes", {}).get("classification") or []
    return next((r for r in rows if r["name"] == name), None)


def scale_invariant_status(
    rankme_ratio: float | None, norm_var: float | None, thr: dict[str, float]
) -> str:
    """HEALTHY / PARTIAL / COLLAPSED from RankMe/d and normalized variance (DESIGN §4).

    COLLAPSED if any available measure is below its collapsed threshold, HEALTHY if all
    available measures reach their healthy threshold, else PARTIAL.
    """
    checks = [
        (rankme_ratio, thr["collapsed_rankme_ratio"], thr["healthy_rankme_ratio"]),
        (norm_var, thr["collapsed_normalized_variance"], thr["healthy_normalized_variance"]),
    ]
    checks = [c for c in checks if ok(c[0])]
    if not checks:
        return "INCONCLUSIVE"
    if any(v < lo for v, lo, _ in checks):
        return "COLLAPSED"
    if all(v >= hi for v, _, hi in checks):
        return "HEALTHY"
    return "PARTIAL"


_SEVERITY = {"HEALTHY": "ok", "PARTIAL": "warning", "COLLAPSED": "critical"}


# ---------------------------------------------------------------------------- collapse / training


def collapse_status(summary: dict) -> Finding:
    """Collapse verdict: diagnostics.json's if present, else computed from the last epoch's
    scale-invariant numbers, else INCONCLUSIVE (absolute variance alone cannot decide)."""
    thr = thresholds(summary)
    diag = summary.get("diagnostics", {})
    probe_t = (diag.get("tensors") or {}).get("probe") or {}
    final = summary.get("final") or {}
    rr = (
        probe_t.get("rankme_ratio")
        if ok(probe_t.get("rankme_ratio"))
        else final.get("rankme_ratio")
    )
    nv = probe_t.get("norm_var") if ok(probe_t.get("norm_var")) else final.get("norm_var")
    nums = {"rankme_ratio": rr, "norm_var": nv}
    thr_txt = (
        f"collapsed if RankMe/d < {fmt(thr['collapsed_rankme_ratio'])} or normalized variance "
        f"< {fmt(thr['collapsed_normalized_variance'])}; healthy if RankMe/d ≥ "
        f"{fmt(thr['healthy_rankme_ratio'])} and normalized variance ≥ "
        f"{fmt(thr['healthy_normalized_variance'])}"
    )
    measured = f"RankMe/d = {fmt(rr)}, normalized variance = {fmt(nv)}"
    if diag.get("available") and diag.get("verdict"):
        verdict = diag["verdict"]
        reasons = "; ".join(diag.get("reasons") or [])
        text = f"diagnostics verdict {verdict}: {measured} ({thr_txt})"
        text += f". Reasons: {reasons}" if reasons else ""
        sev = _SEVERITY.get(verdict, "warning")
        return _finding("collapse", sev, verdict, text, nums, thr)
    status = scale_invariant_status(rr, nv, thr)
    if status != "INCONCLUSIVE":
        text = f"{status} from the last epoch's probe tensor: {measured} ({thr_txt})"
        return _finding("collapse", _SEVERITY[status], status, text, nums, thr)
    dvm = final.get("dim_var_mean")
    d = (summary.get("model") or {}).get("embedding_dim")
    if ok(dvm):
        text = (
            f"INCONCLUSIVE: only the absolute per-dimension variance is available "
            f"(dim_variance_mean = {fmt(dvm, 4)}), which depends on the embedding scale"
        )
        if ok(d):
            text += (
                f"; {fmt(dvm, 4)} × d={d} = {fmt(dvm * d)} is the mean squared norm, what "
                f"embeddings of norm {fmt(math.sqrt(dvm * d))} spread evenly over all {d} dims "
                f"would show"
            )
        text += ". Run `marketjepa diagnose` for RankMe/d and normalized variance."
        return _finding(
            "collapse", "warning", "INCONCLUSIVE", text, {"dim_var_mean": dvm, "d": d}, thr
        )
    return _finding(
        "collapse",
        "warning",
        "INCONCLUSIVE",
        "INCONCLUSIVE: no collapse diagnostics in this run (diagnose stage not run and "
        "metrics.csv has no variance columns).",
        {},
        thr,
    )


def training_stop(summary: dict) -> Finding | None:
    tr = summary.get("training") or {}
    status, run, planned = tr.get("status"), tr.get("epochs_run"), tr.get("epochs")
    msg = f" ({tr['message']})" if tr.get("message") else ""
    if status == "collapsed":
        return _finding(
            "watchdog",
            "critical",
            "STOPPED: COLLAPSE",
            f"training stopped by the collapse watchdog after {run} of {planned} epochs{msg}",
            {"epochs_run": run, "epochs": planned},
        )
    if status == "diverged":
        return _finding(
            "diverged",
            "critical",
            "DIVERGED",
            f"training diverged (NaN/inf loss or gradient) after {run} of {planned} epochs{msg}; "
            "the last good checkpoint was kept",
            {"epochs_run": run, "epochs": planned},
        )
    return None


def loss_trend(values: list[float]) -> tuple[str, float | None]:
    """DECREASING / FLAT / INCREASING from the relative change first→last (tolerance TREND_TOL)."""
    vals = [v for v in values if ok(v)]
    if len(vals) < 2:
        return ("ONE EPOCH" if vals else "—"), None
    rel = (vals[-1] - vals[0]) / max(abs(vals[0]), 1e-12)
    if rel < -TREND_TOL:
        return "DECREASING", rel
    if rel > TREND_TOL:
        return "INCREASING", rel
    return "FLAT", rel


def _loss_rows(summary: dict) -> list[dict[str, Any]]:
    """Each loss should decrease from the first to the last epoch."""
    final = summary.get("final") or {}
    epochs = summary.get("epochs") or []
    rows = []
    for label, key in (
        ("Total train loss", "train_loss"),
        ("Prediction loss", "train_pred"),
        ("SIGReg loss", "train_sigreg"),
        ("Validation loss", "val_loss"),
    ):
        status, rel = loss_trend([e.get(key) for e in epochs])
        rule = f"change first→last epoch {pct(rel)} (flat within ±{pct(TREND_TOL)})"
        rows.append(
            {
                "metric": label,
                "value": final.get(key),
                "expected": "decreasing",
                "status": status,
                "rule": rule if rel is not None else "needs ≥ 2 epochs",
            }
        )
    return rows


def _embedding_rows(summary: dict) -> list[dict[str, Any]]:
    """The last epoch's embedding measures against the collapse thresholds."""
    final = summary.get("final") or {}
    thr = thresholds(summary)
    d = (summary.get("model") or {}).get("embedding_dim")
    rows = []
    dvm, dvs = final.get("dim_var_mean"), final.get("dim_var_std")
    msn = dvm * d if ok(dvm) and ok(d) else None
    rows.append(
        {
            "metric": "dim_variance_mean",
            "value": dvm,
            "expected": "scale-dependent",
            "status": "NOT A VERDICT" if ok(dvm) else "—",
            "rule": f"× d = {fmt(msn)} (mean squared norm); judge collapse by the rows below",
        }
    )
    cv = dvs / dvm if ok(dvs) and ok(dvm) and dvm > 0 else None
    rows.append(
        {
            "metric": "dim_variance_std",
            "value": dvs,
            "expected": "std/mean < 1",
            "status": ("UNEVEN" if cv > 1 else "EVEN") if ok(cv) else "—",
            "rule": f"std/mean = {fmt(cv)}",
        }
    )
    nv, rr = final.get("norm_var"), final.get("rankme_ratio")
    rows.append(
        {
            "metric": "normalized variance",
            "value": nv,
            "expected": f"≥ {fmt(thr['healthy_normalized_variance'])} (1.0 isotropic)",
            "status": scale_invariant_status(None, nv, thr) if ok(nv) else "—",
            "rule": f"collapsed < {fmt(thr['collapsed_normalized_variance'])}",
        }
    )
    rows.append(
        {
            "metric": "RankMe/d",
            "value": rr,
            "expected": f"≥ {fmt(thr['healthy_rankme_ratio'])}",
            "status": scale_invariant_status(rr, None, thr) if ok(rr) else "—",
            "rule": f"collapsed < {fmt(thr['collapsed_rankme_ratio'])}",
        }
    )
    dead = final.get("dead_dims")
    share = dead / d if ok(dead) and ok(d) and d > 0 else None
    if ok(share):
        status = (
            "OK" if dead == 0 else ("COLLAPSED" if share > DEAD_DIMS_COLLAPSED else "SOME DEAD")
        )
    else:
        status = "—"
    rows.append(
        {
            "metric": "dead dims",
            "value": dead,
            "expected": "0",
            "status": status,
            "rule": f"{pct(share)} of d={d} (collapsed above {pct(DEAD_DIMS_COLLAPSED, 0)})",
        }
    )
    return rows


def metric_statuses(summary: dict) -> list[dict[str, Any]]:
    """Rows of the FINAL TRAINING METRICS table: metric, value, expected, status, rule."""
    return _loss_rows(summary) + _embedding_rows(summary)


# ---------------------------------------------------------------------------- probes


def lift_status(row: dict) -> tuple[str, str]:
    """LIFT / NO LIFT / BELOW / UNCERTAIN for one probe row, and the evidence sentence.

    Primary: the *direction* lift CI (CALL-vs-PUT accuracy among predicted and true
    moves, minus ½) against 0 — a directional edge, which volatility timing alone cannot
    fake. Then the balanced-accuracy lift CI (vs 1/K), then the accuracy CI against the
    majority-class rate.
    """
    dlift, dci = row.get("lift_direction"), row.get("lift_direction_ci")
    if dci and ok(dlift):
        ev = f"direction-accuracy lift {fmt(dlift)} CI {fmt_ci(dci)}"
        if dci[0] > 0:
            return "LIFT", ev + " is above 0"
        if dci[1] < 0:
            return "BELOW", ev + " is below 0"
        return "NO LIFT", ev + " covers 0"
    lift, ci = row.get("lift_balanced"), row.get("lift_balanced_ci")
    if ci:
        ev = f"balanced-accuracy lift {fmt(lift)} CI {fmt_ci(ci)}"
        if ci[0] > 0:
            return "LIFT", ev + " is above 0"
        if ci[1] < 0:
            return "BELOW", ev + " is below 0"
        return "NO LIFT", ev + " covers 0"
    acc, aci, maj = row.get("accuracy"), row.get("accuracy_ci"), row.get("majority_accuracy")
    if aci and ok(maj):
        ev = f"accuracy {pct(acc)} CI [{pct(aci[0])}, {pct(aci[1])}] vs majority rate {pct(maj)}"
        if aci[0] > maj:
            return "LIFT", ev + " (CI above it)"
        if aci[1] < maj:
            return "BELOW", ev + " (CI below it)"
        return "NO LIFT", ev + " (CI covers it)"
    return "UNCERTAIN", f"balanced-accuracy lift {fmt(lift)} has no confidence interval"


def probe_lifts(summary: dict) -> list[Finding]:
    """LIFT / NO LIFT / BELOW / INSUFFICIENT EVIDENCE per representation, Holm-corrected
    over all probed representations (report/evidence.py)."""
    verdicts = E.probe_verdicts(summary)
    out = []
    for r in summary.get("probes", {}).get("classification") or []:
        if r["name"] not in verdicts:
            continue
        v = verdicts[r["name"]]
        sev = {"LIFT": "ok", "UNCERTAIN": "info"}.get(v.status, "warning")
        if r.get("kind") != "encoder" and sev == "warning":
            sev = "info"  # a baseline without lift is information, not a problem of this run
        out.append(
            _finding(
                f"lift_{r['name']}",
                sev,
                v.status,
                f"{r['name']}: {v.text}",
                {
                    "lift_direction": r.get("lift_direction"),
                    "lift_direction_ci": r.get("lift_direction_ci"),
                    "lift_balanced": r.get("lift_balanced"),
                    "ci": r.get("lift_balanced_ci"),
                    "accuracy": r.get("accuracy"),
                    "majority_accuracy": r.get("majority_accuracy"),
                    "p": v.p,
                    "p_adj": v.p_adj,
                    "family_size": v.m,
                },
                0.0,
            )
        )
    return out


def signal_present(summary: dict) -> Finding | None:
    """Is there a directional signal at all? Judged on the oracle and raw-window rows, with
    the same Holm-corrected verdicts as every other row: one of several reference rows
    lifting by chance does not count."""
    verdicts = E.probe_verdicts(summary)
    rows = [
        r
        for r in summary.get("probes", {}).get("classification") or []
        if (r.get("kind") == "oracle" or r["name"] == "raw_window") and r["name"] in verdicts
    ]
    judged = [(r, verdicts[r["name"]].status, verdicts[r["name"]].text) for r in rows]
    judged = [j for j in judged if j[1] != "UNCERTAIN"]
    if not judged:
        return None
    lifted = [j for j in judged if j[1] == "LIFT"]
    if lifted:
        r, _, ev = max(
            lifted, key=lambda j: j[0].get("lift_direction") or j[0]["lift_balanced"] or 0.0
        )
        return _finding(
            "signal_present",
            "ok",
            "SIGNAL PRESENT",
            f"signal present: {r['name']} {ev}",
            {
                "name": r["name"],
                "lift_direction": r.get("lift_direction"),
                "lift_balanced": r.get("lift_balanced"),
                "ci": r.get("lift_balanced_ci"),
            },
            0.0,
        )
    if all(j[1] == E.INSUFFICIENT for j in judged):
        return _finding(
            "signal_unknown",
            "warning",
            E.INSUFFICIENT,
            "cannot tell whether there is a directional signal: "
            + "; ".join(f"{r['name']} {ev}" for r, _, ev in judged[:1]),
            {r["name"]: r.get("lift_direction") for r, _, _ in judged},
            0.0,
        )
    evs = "; ".join(f"{r['name']} {ev}" for r, _, ev in judged)
    return _finding(
        "signal_absent",
        "warning",
        "NO SIGNAL",
        f"no directional signal found even by the reference rows: {evs}",
        {r["name"]: r.get("lift_balanced") for r, _, _ in judged},
        0.0,
    )


def _comparisons(summary: dict) -> list[dict[str, Any]]:
    """LeJEPA's comparisons (paired tests, else non-overlapping probe CIs) and the
    pretrained-vs-random-init test, oriented as ``name − other``: one Holm family."""
    probes = summary.get("probes", {})
    name = lejepa_name(summary)
    tests: list[dict[str, Any]] = []
    if name is None:
        return tests
    seen = set()
    for p in probes.get("paired") or []:
        if name not in (p["a"], p["b"]) or not p.get("ci") or not ok(p.get("diff")):
            continue
        sign = 1.0 if p["a"] == name else -1.0
        other = p["b"] if sign > 0 else p["a"]
        lo, hi = sorted((sign * p["ci"][0], sign * p["ci"][1]))
        seen.add(other)
        tests.append(
            {
                "id": f"vs_{other}",
                "other": other,
                "diff": sign * p["diff"],
                "ci": [lo, hi],
                "metric": p["metric"],
                "resamples": p.get("resamples"),
                "paired": True,
            }
        )
    me = _row(summary, name)
    for r in probes.get("classification") or []:
        # Oracles are upper bounds, not baselines to beat; other encoders are LeJEPA variants.
        if (
            r["name"] in seen
            or r["name"] == name
            or r.get("kind") in ("encoder", "oracle")
            or r["name"] == "majority"
        ):
            continue
        if not (me and me.get("balanced_accuracy_ci") and r.get("balanced_accuracy_ci")):
            continue
        a, b = me["balanced_accuracy_ci"], r["balanced_accuracy_ci"]
        # Unpaired: the difference's CI from the two CIs' normal-equivalent SEs.
        level = probes.get("ci_level") if ok(probes.get("ci_level")) else 0.95
        se = math.hypot(E.se_from_ci(a, level), E.se_from_ci(b, level))
        diff = (me["balanced_accuracy"] or 0.0) - (r["balanced_accuracy"] or 0.0)
        tests.append(
            {
                "id": f"vs_{r['name']}",
                "other": r["name"],
                "diff": diff,
                "ci": [a[0] - b[1], a[1] - b[0]],
                "ci_a": a,
                "ci_b": b,
                "se": se,
                "metric": "balanced_accuracy",
                "paired": False,
                "me": me,
                "row": r,
            }
        )
    for p in probes.get("paired") or []:
        if {p["a"], p["b"]} != {"lejepa_finetuned", "supervised"}:
            continue
        if not p.get("ci") or not ok(p.get("diff")):
            break
        sign = 1.0 if p["a"] == "lejepa_finetuned" else -1.0
        lo, hi = sorted((sign * p["ci"][0], sign * p["ci"][1]))
        tests.append(
            {
                "id": "init_supervised",
                "diff": sign * p["diff"],
                "ci": [lo, hi],
                "metric": p["metric"],
                "resamples": p.get("resamples"),
                "paired": True,
            }
        )
        break
    return tests


def _comparison_findings(summary: dict) -> dict[str, Finding]:
    tests = _comparisons(summary)
    name = lejepa_name(summary)
    out: dict[str, Finding] = {}
    for t, v in zip(tests, E.paired_verdicts(summary, tests), strict=True):
        diff, (lo, hi) = t["diff"], t["ci"]
        if t["id"] == "init_supervised":
            status = {"BEATS": "HELPS", "LOSES TO": "HURTS", "TIES": "NO CLEAR EFFECT"}.get(
                v.status, v.status
            )
            verb = {"HELPS": "beats", "HURTS": "loses to", "NO CLEAR EFFECT": "ties"}.get(
                status, "cannot be compared with"
            )
            text = (
                f"pretraining as initialization: lejepa_finetuned (fine-tuned from best.pt) {verb} "
                f"supervised (same training from random init): paired {t['metric']} difference "
                f"{fmt(diff)} CI {fmt_ci([lo, hi])}"
            )
            sev = {"HELPS": "ok", "HURTS": "warning"}.get(status, "info")
        elif t["paired"]:
            status = v.status
            verb = status.lower() if status != E.INSUFFICIENT else "cannot be compared with"
            text = (
                f"{name} {verb} {t['other']}: paired {t['metric']} difference {fmt(diff)} "
                f"CI {fmt_ci([lo, hi])}"
            )
            sev = {"BEATS": "ok", "TIES": "info"}.get(status, "warning")
        else:
            status = v.status
            verb = status.lower() if status != E.INSUFFICIENT else "cannot be compared with"
            me, r = t["me"], t["row"]
            text = (
                f"{name} {verb} {r['name']} (unpaired, no paired test recorded): "
                f"balanced accuracy {fmt(me['balanced_accuracy'])} CI {fmt_ci(t['ci_a'])} vs "
                f"{fmt(r['balanced_accuracy'])} CI {fmt_ci(t['ci_b'])}, difference {fmt(diff)}"
            )
            sev = {"BEATS": "ok", "TIES": "info"}.get(status, "warning")
        if status == E.INSUFFICIENT:
            sev = "warning"
            text += f"; {v.text}"
        else:
            text += v.text
        nums: dict[str, Any] = {"diff": diff, "ci": [lo, hi], "metric": t["metric"]}
        nums.update({"p": v.p, "p_adj": v.p_adj})
        if not t["paired"]:
            nums.update({"ci_a": t["ci_a"], "ci_b": t["ci_b"]})
        thr = 0.0 if t["paired"] else "non-overlapping CIs"
        out[t["id"]] = _finding(t["id"], sev, status, text, nums, thr)
    return out


def lejepa_vs_baselines(summary: dict) -> list[Finding]:
    """BEATS / LOSES TO / TIES / INSUFFICIENT EVIDENCE per baseline from the paired-test
    CI of the difference (LeJEPA − baseline), Holm-corrected over all comparisons; without
    a paired test, from the two probe CIs."""
    return [f for k, f in _comparison_findings(summary).items() if k.startswith("vs_")]


def pretraining_as_init(summary: dict) -> Finding | None:
    """Does LeJEPA pretraining help as an initialization? From the paired test of the
    fine-tuned pretrained encoder against the same architecture trained from random init
    (in the same Holm family as LeJEPA's other comparisons)."""
    return _comparison_findings(summary).get("init_supervised")


def vol_predictable(summary: dict) -> list[Finding]:
    """Is forward realized vol predictable (R² CI above 0), and how does it compare to HAR-RV?"""
    rows = [
        r
        for r in summary.get("probes", {}).get("regression") or []
        if "rv" in r["target"] or "vol" in r["target"]
    ]
    # Compare against the strongest HAR-RV variant: beating a straw man says nothing.
    hars = [r for r in rows if "har" in r["name"].lower() and ok(r.get("r2"))]
    har = max(hars, key=lambda r: r["r2"]) if hars else None
    name = lejepa_name(summary) or "lejepa"
    missing = E.probe_missing(summary)
    out = []
    for r in rows:
        if r is har or r["name"] != name or not r.get("r2_ci"):
            continue
        lo, hi = r["r2_ci"]
        problem = E.ci_problem(summary, r["r2_ci"], None)
        if missing or problem:
            why = "; ".join(missing + ([problem] if problem else []))
            text = f"vol predictability from {r['name']}: R² {fmt(r['r2'])} CI {fmt_ci(r['r2_ci'])}"
            out.append(
                _finding(
                    f"vol_{r['name']}",
                    "info",
                    E.INSUFFICIENT,
                    f"{text}; {E.INSUFFICIENT}: {why}",
                    {"r2": r["r2"], "ci": r["r2_ci"]},
                    0.0,
                )
            )
            continue
        status = "PREDICTABLE" if lo > 0 else "NOT PREDICTABLE"
        text = (
            f"vol is {status.lower()} from {r['name']}: R² {fmt(r['r2'])} CI {fmt_ci(r['r2_ci'])}"
        )
        nums = {"r2": r["r2"], "ci": r["r2_ci"]}
        if har and ok(har.get("r2")):
            rel = "above" if lo > har["r2"] else ("below" if hi < har["r2"] else "comparable to")
            text += f", {rel} HAR-RV ({har['name']}) R² {fmt(har['r2'])}"
            nums["har_r2"] = har["r2"]
            status += f" ({rel.upper()} HAR-RV)"
        out.append(_finding(f"vol_{r['name']}", "info", status, text, nums, 0.0))
    return out


def latent_trend(summary: dict) -> Finding | None:
    """On synthetic data: did pretraining move the encoder toward or away from the regime?"""
    vals = [e.get("latent_acc") for e in summary.get("epochs") or []]
    vals = [v for v in vals if ok(v)]
    if len(vals) < 2:
        return None
    drop = vals[0] - vals[-1]
    if drop > LATENT_DROP:
        return _finding(
            "latent_away",
            "warning",
            "AWAY FROM SIGNAL",
            f"latent-state probe accuracy fell from {fmt(vals[0])} (epoch 1) to "
            f"{fmt(vals[-1])} (last epoch): training moved the encoder away from the regime "
            f"(drop {fmt(drop)} > {fmt(LATENT_DROP)})",
            {"first": vals[0], "last": vals[-1]},
            LATENT_DROP,
        )
    status = "TOWARD SIGNAL" if -drop > LATENT_DROP else "FLAT"
    return _finding(
        "latent_trend",
        "info",
        status,
        f"latent-state probe accuracy {fmt(vals[0])} (epoch 1) → {fmt(vals[-1])} (last epoch)",
        {"first": vals[0], "last": vals[-1]},
        LATENT_DROP,
    )


# ---------------------------------------------------------------------------- policy / backtest


def policy_one_side(summary: dict) -> Finding | None:
    bt = summary.get("backtest", {})
    m = bt.get("metrics") or {}
    cs, ps, n = m.get("call_share"), m.get("put_share"), m.get("n_trades")
    source = f"{fmt(n)} backtest trades"
    if not (ok(cs) and ok(ps)):
        test = (summary.get("policy", {}).get("splits") or {}).get("test") or {}
        rates = test.get("signal_rates") or test.get("pred_rates")
        if not rates or not (rates.get("BUY_CALL", 0) + rates.get("BUY_PUT", 0)) > 0:
            return None
        tot = rates.get("BUY_CALL", 0) + rates.get("BUY_PUT", 0)
        cs, ps = rates.get("BUY_CALL", 0) / tot, rates.get("BUY_PUT", 0) / tot
        source = "test-day signals"
    share = max(cs, ps)
    if share > ONE_SIDE_SHARE:
        side = "CALL" if cs >= ps else "PUT"
        return _finding(
            "one_side",
            "warning",
            "ONE SIDE ONLY",
            f"policy trades one side only: {pct(cs)} CALL, {pct(ps)} PUT of {source} "
            f"(one-sided above {pct(ONE_SIDE_SHARE, 0)} {side})",
            {"call_share": cs, "put_share": ps},
            ONE_SIDE_SHARE,
        )
    return None


def no_trades(summary: dict) -> Finding | None:
    n = (summary.get("backtest", {}).get("metrics") or {}).get("n_trades")
    if ok(n) and n == 0:
        return _finding(
            "no_trades",
            "warning",
            "NO TRADES",
            "the policy made 0 trades on the evaluated days",
            {"n_trades": 0},
            0,
        )
    return None


def costs_vs_edge(summary: dict) -> Finding | None:
    a = summary.get("backtest", {}).get("attribution") or {}
    gross, costs = a.get("gross"), a.get("costs")
    if not (ok(gross) and ok(costs)):
        return None
    nums = {"gross": gross, "costs": costs}
    if gross <= 0:
        return _finding(
            "costs_exceed_edge",
            "warning",
            "NO GROSS EDGE",
            f"no gross edge before costs: gross P&L {money(gross)} ≤ 0; costs {money(costs)} "
            "add to the loss",
            nums,
            0.0,
        )
    if costs > gross:
        return _finding(
            "costs_exceed_edge",
            "warning",
            "COSTS EXCEED EDGE",
            f"costs exceed the gross edge: costs {money(costs)} > gross P&L {money(gross)} "
            f"({fmt(costs / gross)}× the edge)",
            nums,
            "costs > gross",
        )
    # Gross above costs is a claim about the strategy's net result: it needs the evidence
    # gate and a significant (Holm-corrected, deflated) Sharpe ratio, like "makes money".
    text = f"gross P&L {money(gross)} exceeds costs {money(costs)} (costs are {pct(costs / gross)} of the edge)"
    name = summary.get("backtest", {}).get("representation") or "policy"
    v = E.strategy_verdicts(summary).get(name)
    if v is None or v.status != "SIGNIFICANT":
        why = v.text if v is not None else "no significance test recorded"
        status = (
            E.INSUFFICIENT if v is not None and v.status == E.INSUFFICIENT else "EDGE NOT SHOWN"
        )
        return _finding(
            "edge_not_shown",
            "info",
            status,
            f"{text}, but the strategy is not significant ({why}): no evidence the edge survives costs",
            nums,
            "costs > gross and significant",
        )
    return _finding(
        "edge_survives_costs",
        "ok",
        "EDGE > COSTS",
        f"{text}; {v.text}",
        nums,
        "costs > gross",
    )


def loss_attribution(summary: dict) -> Finding | None:
    """When the strategy loses, which component dominates the losses?"""
    a = summary.get("backtest", {}).get("attribution") or {}
    net = a.get("net")
    if not ok(net) or net >= 0:
        return None
    drags = {
        k: -a[k] for k in ("underlying", "theta", "vega", "other") if ok(a.get(k)) and a[k] < 0
    }
    if ok(a.get("costs")) and a["costs"] > 0:
        drags["costs"] = a["costs"]
    total = sum(drags.values())
    if total <= 0:
        return None
    decay = drags.get("theta", 0.0) + drags.get("costs", 0.0)
    parts = ", ".join(f"{k} {money(v)}" for k, v in sorted(drags.items(), key=lambda kv: -kv[1]))
    if decay / total >= DOMINANCE:
        return _finding(
            "theta_spread",
            "warning",
            "THETA/SPREAD",
            f"losses dominated by theta/spread: theta + costs = {pct(decay / total)} of all "
            f"losing components ({parts}); net P&L {money(net)}",
            {"share": decay / total, **drags},
            DOMINANCE,
        )
    top = max(drags, key=drags.get)
    label = "wrong direction (underlying move)" if top == "underlying" else top
    return _finding(
        "loss_driver",
        "warning",
        f"{top.upper()}",
        f"losses dominated by {label}: {pct(drags[top] / total)} of all losing components "
        f"({parts}); net P&L {money(net)}",
        {"share": drags[top] / total, **drags},
        DOMINANCE,
    )


def significance(summary: dict) -> Finding | None:
    """SIGNIFICANT only above the evidence gate and with the policy's ``1 − DSR``
    Holm-adjusted over all policies of the run below the family α."""
    m = summary.get("backtest", {}).get("metrics") or {}
    dsr, psr, trials = m.get("dsr"), m.get("psr"), m.get("n_trials")
    if ok(dsr):
        key, val, label = "dsr", dsr, f"DSR {fmt(dsr)} over {fmt(trials)} trials"
    elif ok(psr):
        key, val, label = "psr", psr, f"PSR {fmt(psr)} (no DSR recorded)"
    else:
        return None
    ci = m.get("sharpe_ci")
    extra = (
        f", Sharpe {fmt(m.get('sharpe'))} bootstrap CI {fmt_ci(ci)}" if ok(m.get("sharpe")) else ""
    )
    name = summary.get("backtest", {}).get("representation") or "policy"
    v = E.strategy_verdicts(summary)[name]
    nums = {key: val, "n_trials": trials, "p_adj": v.p_adj}
    if v.status == E.INSUFFICIENT:
        return _finding(
            "not_significant",
            "warning",
            E.INSUFFICIENT,
            f"Sharpe ratio cannot be judged: {label}{extra}; {v.text}",
            nums,
            SIGNIFICANCE,
        )
    if v.status == "SIGNIFICANT":
        return _finding(
            "significant",
            "ok",
            "SIGNIFICANT",
            f"Sharpe ratio is significant: {label} ≥ {SIGNIFICANCE}{extra}; {v.text}",
            nums,
            SIGNIFICANCE,
        )
    below = f"{label} < {SIGNIFICANCE}" if val < SIGNIFICANCE else label
    return _finding(
        "not_significant",
        "warning",
        "NOT SIGNIFICANT",
        f"Sharpe ratio is not significant: {below}{extra}; {v.text}",
        nums,
        SIGNIFICANCE,
    )


def evidence_gate(summary: dict) -> Finding | None:
    """One finding listing everything below the evidence gate (report/evidence.py)."""
    probes = E.probe_missing(summary) if summary.get("probes", {}).get("available") else []
    bt = summary.get("backtest", {})
    strat = E.strategy_missing(summary, bt.get("metrics") or {}) if bt.get("available") else []
    strat = [x for x in strat if x not in probes]
    if not (probes or strat):
        return None
    parts = ([f"probes: {'; '.join(probes)}"] if probes else []) + (
        [f"backtest: {'; '.join(strat)}"] if strat else []
    )
    return _finding(
        "insufficient_evidence",
        "warning",
        E.INSUFFICIENT,
        "too little data for a confident verdict — " + " | ".join(parts),
        {"probes": probes, "backtest": strat, "min_test_days": E.min_test_days(summary)},
        E.min_test_days(summary),
    )


def evaluated_split(summary: dict) -> Finding | None:
    bt = summary.get("backtest", {})
    if not bt.get("available"):
        return None
    on = bt.get("evaluated_on")
    if on != "test":
        return _finding(
            "not_test_days",
            "warning",
            "NOT TEST DAYS",
            f"backtest evaluated on '{on}' days, not held-out test days: the policy's "
            "thresholds were chosen on validation days, so these numbers are optimistic",
            {"evaluated_on": on},
            "test",
        )
    return None


def prices_modeled(summary: dict) -> Finding | None:
    bt = summary.get("backtest", {})
    if bt.get("prices_modeled"):
        src = {k: v for k, v in (bt.get("price_sources") or {}).items() if ok(v)}
        total = sum(src.values())
        detail = ""
        if total:
            parts = {
                "surface_observed": "Black–Scholes on the IV surface inverted from option bars",
                "surface_proxy": "Black–Scholes on the IV proxy (trailing realized vol × ratio)",
                "bars": "the contract's own minute bars",
            }
            detail = ": " + "; ".join(
                f"{100 * n / total:.1f}% {parts.get(k, k)}" for k, n in src.items() if n
            )
        return _finding(
            "prices_modeled",
            "info",
            "PRICES MODELED",
            f"option prices were modeled (pricing mode '{bt.get('pricing')}'), not observed "
            f"trades{detail}",
            {"pricing": bt.get("pricing"), **src},
            None,
        )
    return None


def horizons(summary: dict) -> Finding | None:
    m = summary.get("model") or {}
    if m.get("gap") == 0:
        return _finding(
            "adjacent_horizons",
            "info",
            "GAP 0",
            f"context ({m.get('context_horizon')} patches) and target "
            f"({m.get('target_horizon')} patches) are adjacent (gap_patches = 0): the first "
            "target patch is nearly predictable from the last context patch",
            {"gap": 0},
            0,
        )
    return None


def null_market(summary: dict) -> Finding | None:
    d = summary.get("data") or {}
    if d.get("source") == "synthetic" and d.get("signal") == 0:
        return _finding(
            "null_market",
            "info",
            "NULL MARKET",
            "synthetic null market (synth.signal = 0): by construction direction is "
            "unpredictable, so any directional edge found here is noise",
            {"signal": 0},
            0,
        )
    return None


def evaluate(summary: dict) -> list[Finding]:
    """All findings for a run, most fundamental first."""
    out: list[Finding | None] = [training_stop(summary), collapse_status(summary)]
    out += [evidence_gate(summary), null_market(summary), signal_present(summary)]
    out += probe_lifts(summary) + lejepa_vs_baselines(summary) + [pretraining_as_init(summary)]
    out += vol_predictable(summary)
    out += [latent_trend(summary), horizons(summary), policy_one_side(summary), no_trades(summary)]
    out += [costs_vs_edge(summary), loss_attribution(summary), significance(summary)]
    out += [evaluated_split(summary), prices_modeled(summary)]
    return [f for f in out if f is not None]


# ---------------------------------------------------------------------------- recommendations


def _by_id(findings: list[Finding]) -> dict[str, Finding]:
    return {f["id"]: f for f in findings}


def _rec_evidence(summary: dict, findings: list[Finding]) -> list[dict[str, Any]]:
    """Too few test days or rows: get more data before any verdict."""
    f = _by_id(findings)
    cfg = summary.get("config") or {}
    out: list[dict[str, Any]] = []

    def add(id: str, because: list[str], text: str) -> None:
        out.append({"id": id, "because": because, "text": text})

    if "insufficient_evidence" in f:
        split = cfg.get("split") or {}
        add(
            "more_evidence",
            ["insufficient_evidence"],
            f"Get more evidence before reading any verdict ({f['insufficient_evidence']['text']}): "
            f"use a longer date range or a larger test share (split.test now "
            f"{fmt(split.get('test'))}); `marketjepa inspect-data` shows how many days the data has.",
        )
    return out


def _rec_training(summary: dict, findings: list[Finding]) -> list[dict[str, Any]]:
    """Divergence and collapse: learning rate, SIGReg weight, EMA, per-token SIGReg."""
    f = _by_id(findings)
    cfg = summary.get("config") or {}
    loss = cfg.get("loss") or {}
    tr = summary.get("training") or {}
    col = f.get("collapse")
    out: list[dict[str, Any]] = []

    def add(id: str, because: list[str], text: str) -> None:
        out.append({"id": id, "because": because, "text": text})

    if "diverged" in f:
        lr = tr.get("learning_rate")
        add(
            "lower_lr",
            ["diverged"],
            f"Training diverged: lower the learning rate (now {fmt(lr)}, try {fmt((lr or 0) / 3)}) "
            f"and keep gradient clipping on (train.grad_clip = {(cfg.get('train') or {}).get('grad_clip')}).",
        )
    if (col and col["status"] in ("COLLAPSED", "PARTIAL")) or "watchdog" in f:
        lam = loss.get("lambda_sigreg")
        because = [k for k in ("collapse", "watchdog") if k in f]
        if ok(lam):
            hi = 1.0 if loss.get("convention") == "lejepa" else max(10 * lam, 1.0)
            add(
                "raise_lambda",
                because,
                f"Raise loss.lambda_sigreg from {fmt(lam)} toward {fmt(hi)} "
                f"({col['status'] if col else 'watchdog'}: {col['text'] if col else ''}).",
            )
        if loss.get("ema"):
            add(
                "drop_ema",
                because,
                f"Drop the EMA target encoder (loss.ema = false; now momentum "
                f"{fmt(loss.get('ema_momentum'))}) or lower the momentum to ≤ 0.99 — LeJEPA "
                "needs no EMA.",
            )
        if loss.get("sigreg_on") == "pooled":
            add(
                "token_sigreg",
                because,
                "Apply SIGReg per token as well (loss.sigreg_on = both) to stop collapse along time.",
            )
    diag_ran = bool((summary.get("diagnostics") or {}).get("available"))
    if col and col["status"] == "INCONCLUSIVE" and not diag_ran:
        add(
            "run_diagnose",
            ["collapse"],
            "Run `marketjepa diagnose` so the verdict uses scale-invariant measures "
            "(RankMe/d, normalized variance) instead of absolute variance.",
        )

    return out


def _rec_design_levers(summary: dict, findings: list[Finding]) -> list[dict[str, Any]]:
    """A healthy encoder that does not beat raw_window: the design levers to try."""
    f = _by_id(findings)
    cfg = summary.get("config") or {}
    loss = cfg.get("loss") or {}
    win = cfg.get("windows") or {}
    tr = summary.get("training") or {}
    col = f.get("collapse")
    out: list[dict[str, Any]] = []

    def add(id: str, because: list[str], text: str) -> None:
        out.append({"id": id, "because": because, "text": text})

    raw_cmp = f.get("vs_raw_window")
    healthy = col is not None and col["status"] == "HEALTHY"
    if (
        healthy
        and raw_cmp
        and raw_cmp["status"] in ("LOSES TO", "TIES")
        and "signal_absent" not in f
    ):
        because = ["collapse", "vs_raw_window"]
        lead = (
            f"The encoder is healthy but {raw_cmp['status'].lower()} raw_window "
            f"(difference {fmt(raw_cmp['numbers']['diff'])}): the hard problem is making the "
            "embedding carry slow, accumulated evidence (DESIGN §4)."
        )
        add("design_levers", because, lead)
        if win.get("gap_patches") == 0:
            add("lever_gap", because, "Predict farther ahead: set windows.gap_patches > 0 (now 0).")
        if not loss.get("multi_horizon", True):
            add(
                "lever_multi_horizon",
                because,
                "Enable multi-horizon targets (loss.multi_horizon = true).",
            )
        if ok(win.get("context_patches")) and ok(win.get("patch_len")):
            add(
                "lever_context",
                because,
                f"Try a longer context (now {win['context_patches']} × {win['patch_len']} = "
                f"{win['context_patches'] * win['patch_len']} bars).",
            )
        if (cfg.get("model") or {}).get("pooling") == "mean":
            add(
                "lever_pooling", because, "Use last-token pooling (model.pooling = last; now mean)."
            )
        if loss.get("sigreg_on") == "pooled":
            add("lever_token_sigreg", because, "Add per-token SIGReg (loss.sigreg_on = both).")
        if ok(tr.get("epochs_run")):
            add(
                "lever_longer",
                because,
                f"Train longer (ran {tr['epochs_run']} epochs, {fmt(tr.get('global_step'))} steps).",
            )
        add(
            "lever_hybrid",
            because,
            "Use a hybrid representation (embedding ‖ window summary): it can never be worse "
            "than the summary alone.",
        )

    return out


def _rec_nothing_to_trade(summary: dict, findings: list[Finding]) -> list[dict[str, Any]]:
    """No directional signal (or a null market): say so; point to volatility if predictable."""
    f = _by_id(findings)
    out: list[dict[str, Any]] = []

    def add(id: str, because: list[str], text: str) -> None:
        out.append({"id": id, "because": because, "text": text})

    own_lift = f.get(f"lift_{lejepa_name(summary)}", {}).get("status")
    if "signal_absent" in f or ("null_market" in f and own_lift != "LIFT"):
        because = [k for k in ("signal_absent", "null_market") if k in f]
        add(
            "nothing_to_trade",
            because,
            "There is nothing to trade: no representation, not even the oracle/raw-window "
            "references, shows a directional lift. Do not tune the policy on this data."
            if "signal_absent" in f
            else "There is nothing to trade: this is a null market; any backtest profit is noise.",
        )
        vols = [
            x
            for x in findings
            if x["id"].startswith("vol_") and x["status"].startswith("PREDICTABLE")
        ]
        if vols:
            add(
                "vol_target",
                [vols[0]["id"]] + because,
                f"Volatility is predictable ({vols[0]['text']}): target volatility "
                "(straddles, vol regression) instead of direction.",
            )
    return out


def _rec_trading(summary: dict, findings: list[Finding]) -> list[dict[str, Any]]:
    """Policy and backtest problems: one-sided, costs, decay, significance, test days."""
    f = _by_id(findings)
    cfg = summary.get("config") or {}
    out: list[dict[str, Any]] = []

    def add(id: str, because: list[str], text: str) -> None:
        out.append({"id": id, "because": because, "text": text})

    if "one_side" in f:
        o = f["one_side"]["numbers"]
        add(
            "fix_one_side",
            ["one_side"],
            f"The policy is one-sided ({pct(o['call_share'])} CALL / {pct(o['put_share'])} PUT): "
            "check class weights and per-side thresholds; compare with always-CALL at the same rate.",
        )
    if "costs_exceed_edge" in f:
        bt = cfg.get("backtest") or {}
        add(
            "reduce_costs",
            ["costs_exceed_edge"],
            f"Costs dominate ({f['costs_exceed_edge']['text']}): trade less often (raise the "
            f"decision threshold), or use cheaper fills (half-spread now ${fmt(bt.get('half_spread_abs'))}, "
            f"commission ${fmt(bt.get('commission_per_contract'))}/contract).",
        )
    if "theta_spread" in f:
        bt = cfg.get("backtest") or {}
        add(
            "reduce_decay",
            ["theta_spread"],
            f"Time decay and spread eat the trades: try a longer-dated contract (backtest.dte "
            f"now {bt.get('dte')}) or a different hold (backtest.hold_bars now {bt.get('hold_bars')}).",
        )
    if "not_significant" in f:
        add(
            "not_deployable",
            ["not_significant"],
            f"Do not trade this policy: {f['not_significant']['text']}.",
        )
    if "not_test_days" in f:
        add(
            "use_test_days",
            ["not_test_days"],
            "Re-run the backtest on held-out test days (split.test > 0).",
        )
    return out


def _rec_latent(summary: dict, findings: list[Finding]) -> list[dict[str, Any]]:
    """Pretraining that moved the embedding away from the regime."""
    f = _by_id(findings)
    out: list[dict[str, Any]] = []

    def add(id: str, because: list[str], text: str) -> None:
        out.append({"id": id, "because": because, "text": text})

    if "latent_away" in f:
        add(
            "latent_away",
            ["latent_away"],
            f"Pretraining lowered regime decodability ({f['latent_away']['text']}): use the best "
            "epoch by latent-probe accuracy, or fewer epochs, and compare with random-init.",
        )
    return out


_RECOMMENDATION_RULES = (
    _rec_evidence,
    _rec_training,
    _rec_design_levers,
    _rec_nothing_to_trade,
    _rec_trading,
    _rec_latent,
)


def recommendations(summary: dict, findings: list[Finding]) -> list[dict[str, Any]]:
    """Actions computed from the findings and the run's settings; each names its trigger.
    One rule function per topic, in reading order."""
    return [rec for rule in _RECOMMENDATION_RULES for rec in rule(summary, findings)]

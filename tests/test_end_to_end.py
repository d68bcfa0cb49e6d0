"""End-to-end honesty tests at the `tiny` preset (issue: honest verdicts).

1. Planted-signal market: the report finds the signal (oracle and raw-window direction
   lift CIs above 0), states how LeJEPA compares with the baselines, and does not call a healthy
   encoder collapsed.
2. Null market (signal = 0): no directional edge (direction lift CIs cover 0), DSR not
   significant, and the headline never claims a profitable strategy.
"""

from __future__ import annotations

import importlib.util
import json
import math
import re
from pathlib import Path

import polars as pl
import pytest

from marketjepa.config import load_config
from marketjepa.paths import prepared_dir
from marketjepa.pipeline import run_pipeline, stage_done
from marketjepa.report.build import headline
from marketjepa.report.collect import collect_run
from marketjepa.results import RESULT_FILES, read_result, result_dict

pytestmark = pytest.mark.slow


def _cfg(root: Path, *overrides: str):
    return load_config(
        "tiny",
        overrides=[
            f"runs_dir={root / 'runs'}",
            f"data.prepared_dir={root / 'prepared'}",
            f"synth.out_dir={root / 'raw'}",
            *overrides,
        ],
    )


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    root = tmp_path_factory.mktemp("planted")
    cfg = _cfg(root, "name=planted")
    return cfg, run_pipeline(cfg)


@pytest.fixture(scope="module")
def null(tmp_path_factory):
    root = tmp_path_factory.mktemp("null")
    cfg = _cfg(root, "name=null-market", "synth.signal=0")
    return cfg, run_pipeline(cfg)


def _class_rows(run_dir: Path) -> dict[str, dict]:
    probes = json.loads((run_dir / "probes.json").read_text())
    return {r["representation"]: r for r in probes["classification"]}


def test_every_artifact_is_written(planted):
    _, run = planted
    for rel in [
        "config.yaml",
        "manifest.json",
        "metrics.csv",
        "checkpoints/best.pt",
        "checkpoints/last.pt",
        "embeddings/test.npz",
        "diagnostics.json",
        "probes.json",
        "policy/policy.json",
        "policy/signals.parquet",
        "backtest/trades.parquet",
        "backtest/equity.parquet",
        "backtest/metrics.json",
        "report.md",
        "report.html",
    ]:
        assert (run / rel).exists(), rel
    assert any((run / "tb").iterdir())
    assert list((run / "plots").glob("*.png"))


@pytest.mark.parametrize("market", ["planted", "null"])
def test_every_result_file_matches_its_model(market, request):
    """Each stage's output validates against its model in marketjepa.results, and
    validating then dumping it again writes the same numbers (results.py contract)."""
    cfg, run = request.getfixturevalue(market)
    for stage, (rel, model, _) in RESULT_FILES.items():
        path = (prepared_dir(cfg) if stage == "prepare" else run) / rel
        result = read_result(path, model)
        body = result_dict(result)
        assert body.pop("schema_version") == 1
        on_disk = json.loads(path.read_text())
        on_disk.pop("schema_version", None)
        assert json.dumps(body) == json.dumps(on_disk), stage


def test_planted_signal_is_found(planted):
    _, run = planted
    rows = _class_rows(run)
    for name in ("oracle_filter", "raw_window"):
        lo, _ = rows[name]["ci"]["lift_direction"]
        assert lo > 0, f"{name} direction lift CI should lie above 0: {rows[name]['ci']}"
    report = (run / "report.md").read_text()
    assert "## EMBEDDING QUALITY ANALYSIS" in report and "## ROOT CAUSE ANALYSIS" in report


def test_planted_report_states_lejepa_vs_baselines_and_collapse(planted):
    _, run = planted
    summary = collect_run(run)
    diag = json.loads((run / "diagnostics.json").read_text())
    lines = headline(summary)
    vs = next(x for x in lines if x.startswith("LeJEPA vs baselines"))
    assert re.search(r"(beats|ties|loses to) raw_window", vs)
    collapse = next(x for x in lines if x.startswith("Collapse"))
    # The report's collapse line must agree with the computed verdict, not a canned word.
    assert diag["verdict"]["status"] in collapse
    if diag["verdict"]["status"] != "COLLAPSED":
        assert "COLLAPSED" not in collapse


def test_null_market_has_no_edge(null):
    _, run = null
    rows = _class_rows(run)
    for name in ("lejepa", "raw_window"):
        lo, hi = rows[name]["ci"]["lift_direction"]
        assert lo <= 0 <= hi, f"null market: {name} direction lift CI {lo, hi} must cover 0"
    # The Bayes filter of a null market stays uniform: it never predicts a direction at all.
    lo, hi = rows["oracle_filter"]["ci"]["lift_direction"]
    assert (math.isnan(lo) and math.isnan(hi)) or lo <= 0 <= hi
    bt = json.loads((run / "backtest" / "metrics.json").read_text())
    dsr = bt["strategies"]["lejepa"].get("dsr")
    assert dsr is None or dsr < 0.95
    lines = headline(collect_run(run))
    money = next(x for x in lines if x.startswith("Strategy after costs"))
    assert "makes money" not in money
    edge = next(x for x in lines if x.startswith("Directional edge"))
    assert edge.startswith("Directional edge: no")


def test_honesty_benchmark_reads_the_report_fields_it_tallies(planted, null):
    """benchmarks/honesty.py judges a run through the report layer; a renamed field must
    not turn its direction-lift column into silent Nones."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "honesty.py"
    spec = importlib.util.spec_from_file_location("honesty_benchmark", path)
    honesty = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(honesty)
    for (_, run), edge_yes in ((planted, True), (null, False)):
        verdict = honesty.judge(run)
        assert isinstance(verdict["lejepa_dir_lift"], float)
        assert len(verdict["lejepa_dir_lift_ci"]) == 2
        assert isinstance(verdict["lejepa_dir_return_t"], float)
        assert verdict["edge_line"].startswith("Directional edge")
        assert verdict["edge_yes"] is edge_yes


def test_rerun_skips_finished_stages_and_from_redoes(planted):
    cfg, run = planted
    again = run_pipeline(cfg)
    assert again == run
    for stage in ("pretrain", "diagnose", "represent", "probe", "policy", "backtest", "report"):
        assert stage_done(cfg, run, stage)
    before = json.loads((run / "stages.json").read_text())["report"]["finished"]
    run_pipeline(cfg, from_stage="report")
    records = json.loads((run / "stages.json").read_text())
    assert records["report"]["finished"] >= before
    assert records["pretrain"]["seconds"] > 0


def test_compare_lists_config_differences_first(planted, null):
    from rich.console import Console

    from marketjepa.compare import compare_runs

    console = Console(width=200, record=True)
    console.print(compare_runs([planted[1], null[1]]))
    text = console.export_text()
    assert text.index("config differences") < text.index("results")
    assert "synth.signal" in text


# ---------------------------------------------------------------- using a trained run


@pytest.fixture(scope="module")
def served(planted):
    from marketjepa.serve.replay import load_frame
    from marketjepa.serve.signal import TrainedRun

    cfg, run_dir = planted
    run = TrainedRun.load(run_dir)
    frame = load_frame(run)
    test_days = frame.filter(pl.col("split") == 2)["session"].unique().sort()
    return cfg, run, frame, str(test_days[0])


def test_replay_decisions_equal_the_batch_pipeline(served):
    """Train/serve parity: a test day fed bar by bar as a live feed decides every bar as
    the batch pipeline does (features to 1e-6, same class), including every signal the
    policy stage itself wrote for that day."""
    from marketjepa.serve.replay import replay_day

    _, run, frame, day = served
    out = replay_day(run, day, frame=frame)
    p = out["parity"]
    assert p["bars"] == frame.filter(pl.col("session").cast(str) == day).height
    assert p["features_within_tol"] == p["bars"], p
    assert p["same_decision"] == p["bars"], p
    assert p["stored_signals"] > 0 and p["stored_signals_matched"] == p["stored_signals"], p
    assert p["ok"]
    assert out["net_pnl"] == pytest.approx(sum(t["net_pnl"] for t in out["trades"]))


def test_replay_parity_fails_when_a_feature_peeks_one_bar_ahead(served, monkeypatch):
    """The parity check is not vacuous: ret_1 redefined to read the *next* bar is computed
    identically by the batch path (the whole history at once) — but live the next bar does
    not exist yet, so replay disagrees with batch and says which feature."""
    import numpy as np

    from marketjepa.data import features as F
    from marketjepa.serve.replay import batch_features, replay_day, stored_features

    _, run, frame, day = served
    honest = batch_features(run, frame)  # prepare's path over the whole history
    assert np.abs(honest - stored_features(run, frame)).max() <= 1e-6

    def peeking_ret_1(x):
        return np.r_[np.diff(x.log_close), np.nan]  # log(close[t+1] / close[t])

    monkeypatch.setitem(F.FEATURES, "ret_1", F.Feature("ret_1", "stock", peeking_ret_1))
    peeking = batch_features(run, frame)
    out = replay_day(run, day, frame=frame, batch=peeking, max_bars=20)
    p = out["parity"]
    assert not p["ok"]
    assert p["features_within_tol"] == 0 and p["max_feature_diff"] > 1e-3
    assert list(p["worst_features"]) == ["ret_1"]


def _run_cli(*args: str):
    from typer.testing import CliRunner

    from marketjepa.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def test_signal_on_new_raw_files_matches_the_batch_decision(served):
    """`marketjepa signal` on the last sessions' raw files (stock + options) decides the
    latest bar as the batch pipeline does, and prices an entry like the backtest."""
    import numpy as np

    from marketjepa.paths import synthetic_dir
    from marketjepa.serve.replay import stored_features

    cfg, run, frame, _ = served
    raw = synthetic_dir(cfg)
    n = run.warmup_sessions + 1
    stocks = sorted((raw / "stocks").glob("*.csv.gz"))[-n:]
    options = sorted((raw / "options").glob("*.csv.gz"))[-n:]
    args = ["signal", run.run_dir, *[a for f in stocks for a in ("--bars", f)]]
    args += [a for f in options for a in ("--options", f)]
    res = _run_cli(*args, "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    (d,) = out["decisions"]
    last = frame.height - 1
    proba, sig = run.decide(stored_features(run, frame), np.array([last]))
    assert d["ts"] == int(frame["ts"][last])
    assert d["decision"] == ("HOLD", "BUY_CALL", "BUY_PUT")[int(sig[0])]
    assert list(d["proba"].values()) == pytest.approx(proba[0].tolist(), abs=1e-6)
    assert out["warmup_sessions"] == cfg.features.volume_z_sessions

    res = _run_cli(*args, "--all", "--json")
    assert res.exit_code == 0, res.output
    every = json.loads(res.output)["decisions"]
    entries = [x for x in every if x["contract"]]
    assert entries, "a planted market should give some entry in a session"
    c = entries[0]["contract"]
    assert c["strike"] == round(c["underlying"]) and c["entry_fill"] > c["mid"] > 0
    assert c["breakeven_move"] is not None and (c["breakeven_move"] > 0) == (c["right"] == "CALL")
    text = _run_cli(*args)
    assert text.exit_code == 0 and "warm-up: needs" in text.output


def test_signal_with_an_option_summary_file_instead_of_option_bars(served, tmp_path):
    import numpy as np

    from marketjepa.data.features import OPTION_COLUMNS
    from marketjepa.paths import synthetic_dir
    from marketjepa.serve.replay import stored_features

    cfg, run, frame, _ = served
    n = run.warmup_sessions + 1
    stocks = sorted((synthetic_dir(cfg) / "stocks").glob("*.csv.gz"))[-n:]
    summary = tmp_path / "summary.parquet"
    first = frame["session"].unique().sort()[-n]
    frame.filter(pl.col("session") >= first).select("ts", *OPTION_COLUMNS).write_parquet(summary)
    bars = [a for f in stocks for a in ("--bars", f)]
    with_summary = _run_cli("signal", run.run_dir, *bars, "--option-summary", summary, "--json")
    assert with_summary.exit_code == 0, with_summary.output
    (d,) = json.loads(with_summary.output)["decisions"]
    proba, _ = run.decide(stored_features(run, frame), np.array([frame.height - 1]))
    assert list(d["proba"].values()) == pytest.approx(proba[0].tolist(), abs=1e-6)


def test_signal_mid_session_as_a_live_feed(served, tmp_path):
    """Live, the last session is unfinished: bars up to 11:00 decide 11:00 as the batch
    pipeline (which saw the whole day) decided that bar."""
    import numpy as np

    from marketjepa.paths import synthetic_dir
    from marketjepa.serve.replay import stored_features

    cfg, run, frame, _ = served
    raw = synthetic_dir(cfg)
    n = run.warmup_sessions + 1
    stocks = sorted((raw / "stocks").glob("*.csv.gz"))[-n:]
    options = sorted((raw / "options").glob("*.csv.gz"))[-n:]
    row = frame.height - 390 + 90  # 11:00 on the last day
    cut = int(frame["ts"][row])
    today = [tmp_path / k / stocks[-1].name.removesuffix(".gz") for k in ("s", "o")]
    for src, dst in zip((stocks[-1], options[-1]), today, strict=True):
        dst.parent.mkdir()
        pl.read_csv(src).filter(pl.col("window_start") <= cut).write_csv(dst)
    args = ["signal", run.run_dir, *[a for f in (*stocks[:-1], today[0]) for a in ("--bars", f)]]
    args += [a for f in (*options[:-1], today[1]) for a in ("--options", f)]
    res = _run_cli(*args, "--json")
    assert res.exit_code == 0, res.output
    (d,) = json.loads(res.output)["decisions"]
    proba, sig = run.decide(stored_features(run, frame), np.array([row]))
    assert d["ts"] == cut and "11:00" in d["time"]
    assert d["decision"] == ("HOLD", "BUY_CALL", "BUY_PUT")[int(sig[0])]
    assert list(d["proba"].values()) == pytest.approx(proba[0].tolist(), abs=1e-6)


def test_signal_refuses_bad_inputs_with_exit_2(served, tmp_path):
    from marketjepa.paths import synthetic_dir

    cfg, run, _, _ = served
    stocks = sorted((synthetic_dir(cfg) / "stocks").glob("*.csv.gz"))
    options = sorted((synthetic_dir(cfg) / "options").glob("*.csv.gz"))
    # fewer bars than one window
    short = tmp_path / "short" / stocks[-1].name.removesuffix(".gz")
    short.parent.mkdir()
    pl.read_csv(stocks[-1]).head(run.window - 1).write_csv(short)
    res = _run_cli("signal", run.run_dir, "--bars", short, "--options", options[-1])
    assert res.exit_code == 2 and f"a window of {run.window} bars" in res.output
    # too few sessions for the warm-up: says how many it needs
    res = _run_cli("signal", run.run_dir, "--bars", stocks[-1], "--options", options[-1])
    assert res.exit_code == 2 and "not warmed up" in res.output
    assert f"needs {run.warmup_sessions} complete sessions" in res.output
    # no option data for a run trained with option features
    res = _run_cli("signal", run.run_dir, "--bars", stocks[-1])
    assert res.exit_code == 2 and "different feature set" in res.output
    # another ticker's bars
    other = tmp_path / stocks[-1].name.removesuffix(".gz")
    pl.read_csv(stocks[-1]).with_columns(pl.lit("QQQ").alias("ticker")).write_csv(other)
    res = _run_cli("signal", run.run_dir, "--bars", other, "--options", options[-1])
    assert res.exit_code == 2 and "different ticker" in res.output and "SPY" in res.output

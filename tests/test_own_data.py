"""Bring-your-own-data path, end to end: one column-mapped CSV of stock bars, no options.

The README promises that a user with only stock minute bars (timestamps as New York local
datetime strings, their own column names) gets the whole pipeline: the option features are
left out (feature_dim follows), there are no oracle rows (no ground truth), and the
backtest prices options from the IV proxy and says the prices were modeled.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from marketjepa.config import load_config
from marketjepa.data.synthetic import generate_market
from marketjepa.pipeline import run_pipeline
from marketjepa.report.build import headline
from marketjepa.report.collect import collect_run

pytestmark = pytest.mark.slow


def _user_csv(root: Path) -> Path:
    """Re-express synthetic Polygon files as a user's single CSV with its own columns."""
    raw = root / "vendor"
    generate_market(load_config("tiny").synth, raw, progress=False)
    bars = pl.concat(
        [pl.read_csv(f) for f in sorted((raw / "stocks").glob("*.csv.gz"))], how="vertical"
    )
    local = (
        pl.from_epoch(bars["window_start"], time_unit="ns")
        .dt.replace_time_zone("UTC")
        .dt.convert_time_zone("America/New_York")
        .dt.strftime("%Y-%m-%d %H:%M:%S")
    )
    table = pl.DataFrame(
        {
            "Datetime": local,
            "Open": bars["open"],
            "High": bars["high"],
            "Low": bars["low"],
            "Close": bars["close"],
            "Volume": bars["volume"],
        }
    )
    path = root / "my_bars.csv"
    table.write_csv(path)
    return path


@pytest.fixture(scope="module")
def own_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("own")
    csv = _user_csv(root)
    cfg = load_config(
        "tiny",
        overrides=[
            "name=own-data",
            f"runs_dir={root / 'runs'}",
            f"data.prepared_dir={root / 'prepared'}",
            "data.source=files",
            "data.format=table",
            f"data.stock_files={csv}",
            "data.columns.timestamp=Datetime",
            "data.columns.timestamp_unit=datetime",
            "data.columns.timezone=America/New_York",
            "data.columns.ticker=null",
            "data.columns.transactions=null",
            "data.columns.open=Open",
            "data.columns.high=High",
            "data.columns.low=Low",
            "data.columns.close=Close",
            "data.columns.volume=Volume",
        ],
    )
    return cfg, run_pipeline(cfg)


def test_stock_only_data_drops_option_features(own_run):
    cfg, run = own_run
    manifest = json.loads((run / "manifest.json").read_text())
    prep = json.loads((Path(manifest["inputs"]["prepared"]) / "manifest.json").read_text())
    assert prep["feature_dim"] == 16
    assert "skew_25d" not in prep["feature_names"] and "ret_1" in prep["feature_names"]


def test_no_ground_truth_means_no_oracle_rows(own_run):
    _, run = own_run
    probes = json.loads((run / "probes.json").read_text())
    names = {r["representation"] for r in probes["classification"]}
    assert {"lejepa", "raw_window", "random_init", "supervised"} <= names
    assert not any(n.startswith("oracle") for n in names)
    assert not probes.get("latent")


def test_backtest_prices_from_iv_proxy_and_says_so(own_run):
    _, run = own_run
    bt = json.loads((run / "backtest" / "metrics.json").read_text())
    assert bt["prices_modeled"] is True
    sources = bt["price_sources"]
    assert sources["surface_observed"] == 0 and sources["bars"] == 0
    report = (run / "report.md").read_text()
    if sources["surface_proxy"]:
        assert "IV proxy" in report
    money = next(x for x in headline(collect_run(run)) if x.startswith("Strategy after costs"))
    dsr = bt["strategies"]["lejepa"].get("dsr")
    if dsr is None or dsr < 0.95:
        assert "makes money" not in money


def test_signal_and_replay_on_own_stock_only_data(own_run, tmp_path):
    """A trained stock-only run decides new bars from the user's own CSV layout (the run's
    column mapping), states that option prices are modeled, and replays with parity."""
    import numpy as np
    from typer.testing import CliRunner

    from marketjepa.cli import app
    from marketjepa.serve.replay import load_frame, replay_day, stored_features
    from marketjepa.serve.signal import TrainedRun

    cfg, run_dir = own_run
    run = TrainedRun.load(run_dir)
    table = pl.read_csv(cfg.data.stock_files)
    days = table["Datetime"].str.slice(0, 10)
    keep = days.unique().sort()[-(run.warmup_sessions + 1) :]
    new = tmp_path / "new_bars.csv"
    table.filter(days.is_in(keep.implode())).write_csv(new)

    res = CliRunner().invoke(app, ["signal", str(run_dir), "--bars", str(new), "--all", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["options"] == "no option data: option prices are modeled"
    assert out["features"] == 16 and out["decisions"]
    frame = load_frame(run)
    last = frame.height - 1
    _, sig = run.decide(stored_features(run, frame), np.array([last]))
    assert out["decisions"][-1]["decision"] == ("HOLD", "BUY_CALL", "BUY_PUT")[int(sig[0])]
    for c in (d["contract"] for d in out["decisions"] if d["contract"]):
        assert c["modeled"] and c["price_source"].startswith("modeled: IV proxy")

    test_day = str(frame.filter(pl.col("split") == 2)["session"].min())
    rep = replay_day(run, test_day, frame=frame, max_bars=60)
    assert rep["parity"]["ok"], rep["parity"]

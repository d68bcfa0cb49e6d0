"""Clean sessions (issue 11): date bounds, partial sessions, filled bars never labelled or
traded, calendars other than XNYS, up-front config validation, what fits a preset."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from helpers.polygon import files_cfg, session_frame, write_csv_gz
from marketjepa.cli import app
from marketjepa.config import ConfigError, build_config, load_config
from marketjepa.data.calendar import NS_PER_MINUTE, full_session_minutes, trading_sessions
from marketjepa.data.features import FeatureInputs, compute_features
from marketjepa.data.fit import check_fit
from marketjepa.data.ingest import ingest
from marketjepa.data.labels import MAX_FILLED_SHARE, unfilled_horizon
from marketjepa.data.prepare import build_prepared
from marketjepa.data.splits import day_splits
from marketjepa.errors import DataValidationError
from marketjepa.trading.backtest import candidate_entries
from marketjepa.trading.pricing import MarketData


def day_frame(day: date, pre: int = 2, post: int = 2, skip=()) -> pl.DataFrame:
    """Polygon-style bars of one XNYS session plus ``pre``/``post`` bars outside it."""
    s = trading_sessions(day, day).row(0, named=True)
    m = np.array([k for k in range(-pre, s["session_minutes"] + post) if k not in skip])
    close = 100.0 + 0.01 * m + 0.05 * np.sin(m / 7.0)
    return session_frame(s["open_ns"], m, close, 1000.0 + m)


DAYS = [date(2024, 3, d) for d in (4, 5, 6, 7, 8, 11, 12, 13, 14, 15)]
NOON = 150  # minute index of 12:00 ET


def _write(tmp_path: Path, days: list[date], partial: dict[date, set[int]]) -> None:
    for d in days:
        write_csv_gz(day_frame(d, skip=partial.get(d, ())), tmp_path / "stocks" / f"{d}.csv.gz")


def test_partial_session_is_dropped_counted_and_never_fabricated(tmp_path):
    _write(tmp_path, DAYS[:3], {DAYS[1]: set(range(NOON))})  # day 2 starts at 12:00
    res = ingest(files_cfg(tmp_path), progress=False)
    assert res.bars["session"].unique().to_list() == [DAYS[0], DAYS[2]]
    assert res.log["dropped_sessions"] == 1 and res.log["dropped_session_dates"] == [str(DAYS[1])]
    assert res.log["dropped_minutes"] == 390 - NOON
    assert res.log["filled_minutes"] == 0 and not res.bars["filled"].any()
    assert "dropped 1 partial session" in res.log["summary_line"]


def test_partial_session_kept_is_filled_but_never_labelled_nor_an_entry(tmp_path):
    days = DAYS
    _write(tmp_path, days, {days[9]: set(range(NOON))})
    cfg = files_cfg(tmp_path, partial_sessions="keep").model_copy(
        update={"labels": build_config({"labels": {"horizon": 15}}).labels}
    )
    res = ingest(cfg, progress=False)
    assert res.log["dropped_sessions"] == 0 and res.log["filled_minutes"] == NOON
    b = build_prepared(cfg, res)
    f = b.frame
    filled = f["filled"].to_numpy()
    assert filled.sum() == NOON
    assert (f["label"].to_numpy()[filled] == -1).all()
    assert np.isnan(f["fwd_ret"].to_numpy()[filled]).all()
    assert np.isnan(f["fwd_rv"].to_numpy()[filled]).all()
    assert (f["label"].to_numpy()[~filled] >= 0).any()
    assert b.manifest["filled_minutes"] == NOON and b.manifest["raw_minutes"] == 10 * 390 - NOON
    assert b.manifest["filled_share_per_split"]["test"] > 0  # the last day is the test day
    # inspect-data's fit counts the same pretraining windows prepare does
    per = f.unique("session", maintain_order=True)["session_minutes"].to_list()
    fit = check_fit(per, cfg)
    for s in ("train", "val"):
        assert fit.windows[s] == b.manifest["windows_per_split"][s]
    m = MarketData.from_frame(f, f["session"].rank("dense").to_numpy() - 1, f["split"], 0, 0)
    every = np.ones(f.height, bool)
    t, e, _, _ = candidate_entries(m, np.ones(f.height, np.int8), every)
    assert t.size and not filled[t].any() and not filled[e].any()


def test_filled_rule_masks_rows_whose_horizon_is_mostly_filled():
    h = 10
    f = np.zeros(40, bool)
    f[20] = True  # one isolated filled bar: masks itself and the row ending on it
    ok = unfilled_horizon(f, h)
    assert not ok[20] and not ok[10] and ok[11] and ok[19] and ok[9]
    f[25:30] = True  # 5 filled in a row: more than 10% of H inside (t, t+H]
    ok = unfilled_horizon(f, h)
    assert MAX_FILLED_SHARE * h < 5
    assert not ok[19] and not ok[15] and ok[30]
    # causal in the label sense: flags after t+H never change row t
    g = f.copy()
    g[35:] = True
    assert (unfilled_horizon(g, h)[:25] == ok[:25]).all()


def test_start_and_end_bound_the_sessions(tmp_path):
    _write(tmp_path, DAYS[:5], {})
    cfg = files_cfg(tmp_path, start=str(DAYS[1]), end=str(DAYS[3]))
    res = ingest(cfg, progress=False)
    assert res.bars["session"].unique().sort().to_list() == DAYS[1:4]
    assert res.log["outside_date_range_bars"] == 2 * (390 + 4)
    with pytest.raises(DataValidationError, match="no data between data.start=2030-01-02"):
        ingest(files_cfg(tmp_path, start="2030-01-02"), progress=False)


def test_unknown_timezone_and_calendar_are_one_line_config_errors():
    with pytest.raises(ConfigError) as e:
        load_config("tiny", overrides=["data.columns.timezone=Mars/Olympus"])
    assert "\n" not in str(e.value) and "unknown IANA timezone 'Mars/Olympus'" in str(e.value)
    with pytest.raises(ConfigError, match="unknown exchange calendar 'XXXX'"):
        load_config("tiny", overrides=["data.calendar=XXXX"])
    with pytest.raises(ConfigError, match="before data.start"):
        load_config("tiny", overrides=["data.start=2024-03-05", "data.end=2024-03-01"])
    assert load_config("tiny", overrides=["data.calendar=CMES"]).data.calendar == "CMES"
    r = CliRunner().invoke(app, ["inspect-data", "--set", "data.columns.timezone=EST5"])
    assert r.exit_code == 2 and "unknown IANA timezone" in r.output
    assert "Traceback" not in r.output


def test_offset_aware_times_are_converted_and_reported(tmp_path):
    ref = pl.concat([day_frame(d) for d in DAYS[:2]])
    ts = pl.from_epoch(ref["window_start"], "ns").dt.replace_time_zone("UTC")
    iso = ts.dt.convert_time_zone("Asia/Tokyo").dt.strftime("%Y-%m-%dT%H:%M:%S%:z")
    tbl = ref.select("open", "high", "low", "close", "volume").with_columns(time=iso)
    tbl.write_csv(tmp_path / "bars.csv")
    cols = {"timestamp": "time", "timestamp_unit": "datetime", "ticker": None}
    res = ingest(
        build_config(
            {
                "data": {
                    "source": "files",
                    "format": "table",
                    "stock_files": str(tmp_path / "bars.csv"),
                    "columns": {**cols, "timezone": "Europe/London"},  # not applied
                }
            }
        ),
        progress=False,
    )
    assert res.bars.height == 780 and res.log["timestamps_offset_aware"]
    assert "carry their own UTC offset" in res.log["summary_line"]


def test_half_day_and_non_nyse_calendar_session_lengths(tmp_path):
    half = date(2024, 11, 29)  # XNYS closes at 13:00
    write_csv_gz(day_frame(half, post=0), tmp_path / "stocks" / f"{half}.csv.gz")
    res = ingest(files_cfg(tmp_path), progress=False)
    assert res.bars.height == 210 and res.log["half_day_sessions"] == 1
    # London: 08:00-16:30 local, 510 minutes, from the calendar
    s = trading_sessions(date(2024, 3, 11), date(2024, 3, 12), "XLON")
    assert s["session_minutes"].to_list() == [510, 510] and full_session_minutes("XLON") == 510
    rows = []
    for r in s.iter_rows(named=True):
        m = np.arange(-3, 513)
        c = 700 + 0.01 * m
        rows.append(
            pl.DataFrame(
                {
                    "ticker": "VOD",
                    "volume": 10.0,
                    "open": c,
                    "close": c,
                    "high": c + 0.1,
                    "low": c - 0.1,
                    "window_start": r["open_ns"] + m * 60_000_000_000,
                    "transactions": 1,
                }
            )
        )
    lon = tmp_path / "lon"
    write_csv_gz(pl.concat(rows), lon / "stocks" / "vod.csv.gz")
    cfg = build_config(
        {
            "data": {
                "source": "files",
                "ticker": "VOD",
                "calendar": "XLON",
                "stock_files": str(lon / "stocks" / "*.csv.gz"),
            }
        }
    )
    res = ingest(cfg, progress=False)
    assert res.bars.height == 1020 and set(res.bars["session_minutes"].to_list()) == {510}
    assert res.log["full_session_minutes"] == 510 and res.log["half_day_sessions"] == 0
    x = FeatureInputs.from_frames(res.bars, None, calendar="XLON")
    mtc = compute_features(x, ["minutes_to_close"])[:, 0]
    assert mtc[0] == 1.0 and mtc[509] == 0.0  # a full XLON session spans [1, 0]


def test_too_few_days_names_the_short_split_and_the_minimum():
    cfg = load_config("tiny").split
    with pytest.raises(DataValidationError) as e:
        day_splits(5, cfg)
    msg = str(e.value)
    assert e.value.exit_code == 2
    assert "at least 8 days are needed" in msg and "would get no day" in msg


def test_fit_reports_windows_per_split_and_suggests_overrides():
    cfg = load_config("tiny")
    fit = check_fit([390] * 30, cfg)
    assert fit.fits and fit.days["test"] >= 1 and fit.windows["train"] > 0
    short = check_fit([390] * 6, cfg)
    assert not short.fits and any("too few" in p for p in short.problems)
    assert "split.embargo_days=0" in short.suggestions
    long_ctx = load_config("tiny", overrides=["windows.context_patches=80", "windows.patch_len=10"])
    few = check_fit([390] * 10, long_ctx)
    assert not few.fits and any(s.startswith("windows.context_patches=") for s in few.suggestions)
    # the suggestion itself fits
    fixed = load_config(
        "tiny",
        overrides=["windows.context_patches=80", "windows.patch_len=10", *few.suggestions],
    )
    assert check_fit([390] * 10, fixed).fits


def test_run_stops_before_training_when_windows_do_not_fit(tmp_path):
    _write(tmp_path, DAYS, {})
    args = [
        "run",
        "--preset",
        "tiny",
        "--set",
        "data.source=files",
        "--set",
        f"data.stock_files={tmp_path / 'stocks' / '*.csv.gz'}",
        "--set",
        f"data.prepared_dir={tmp_path / 'prepared'}",
        "--set",
        f"runs_dir={tmp_path / 'runs'}",
        "--set",
        "windows.patch_len=10",
        "--set",
        "windows.context_patches=80",
    ]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 2, r.output
    out = " ".join(r.output.split())
    assert "does not fit preset tiny" in out and "--set windows.context_patches=" in out
    assert not (tmp_path / "runs").exists()  # nothing trained, no run folder


def test_cmes_session_opens_the_evening_before_its_date(tmp_path):
    s = trading_sessions(date(2024, 3, 12), date(2024, 3, 13), "CMES")
    rows = []
    for r in s.iter_rows(named=True):
        m = np.arange(r["session_minutes"])
        c = 5000 + 0.25 * np.sin(m / 9.0)
        rows.append(
            pl.DataFrame(
                {
                    "volume": 3.0,
                    "open": c,
                    "close": c,
                    "high": c + 0.5,
                    "low": c - 0.5,
                    "window_start": r["open_ns"] + m * NS_PER_MINUTE,
                }
            )
        )
    pl.concat(rows).write_csv(tmp_path / "es.csv")
    cfg = build_config(
        {
            "data": {
                "source": "files",
                "format": "table",
                "ticker": "ES",
                "calendar": "CMES",
                "stock_files": str(tmp_path / "es.csv"),
                "columns": {"ticker": None, "transactions": None},
            }
        }
    )
    res = ingest(cfg, progress=False)
    # the first bar (17:00 CT on the 11th) belongs to the session dated the 12th
    assert res.bars["session"].unique().sort().to_list() == [date(2024, 3, 12), date(2024, 3, 13)]
    assert res.log["dropped_sessions"] == 0 and res.log["filled_minutes"] == 0
    assert res.log["full_session_minutes"] == full_session_minutes("CMES")


def test_report_data_section_shows_raw_filled_dropped_minutes_and_test_filled_share(tmp_path):
    from marketjepa.report.collect import _data_section
    from marketjepa.report.markdown import _data
    from marketjepa.results import PreparedManifest

    _write(tmp_path, DAYS, {DAYS[9]: set(range(NOON)), DAYS[4]: {100, 101}})
    cfg = files_cfg(tmp_path)
    manifest = build_prepared(cfg, ingest(cfg, progress=False)).manifest
    d = _data_section(cfg.to_dict(), PreparedManifest.model_validate(manifest), tmp_path)
    assert (d["raw_minutes"], d["filled_minutes"]) == (9 * 390 - 2, 2)
    assert d["dropped_sessions"] == 1 and d["dropped_minutes"] == 390 - NOON
    rows = {r[0]: r[1] for r in _data({"data": d}).blocks[0].rows}
    assert rows["Session minutes: raw / filled"].startswith("3508 / 2")
    assert rows["Dropped partial sessions"].startswith(f"1 ({390 - NOON} minutes: {DAYS[9]}")
    assert rows["Test rows that are filled bars"] == "0.0%"  # the dropped day was the test day

"""The prepare stage end to end: artifact contract, cache, atomic writes, summary, loading."""

import gzip
import json
from datetime import date

import numpy as np
import polars as pl
import pytest

from helpers.bars import make_market
from marketjepa.config import (
    ALL_FEATURES,
    Config,
    DataConfig,
    FeatureConfig,
    LabelConfig,
    SplitConfig,
    WindowConfig,
)
from marketjepa.data import prepare as prep
from marketjepa.data.calendar import trading_sessions
from marketjepa.data.ingest import IngestResult
from marketjepa.data.normalize import Normalizer
from marketjepa.data.prepared import PreparedData
from marketjepa.errors import DataValidationError


def _cfg(tmp_path, **data):
    return Config(
        data=DataConfig(prepared_dir=str(tmp_path / "prepared"), **data),
        features=FeatureConfig(volume_z_sessions=2),
        labels=LabelConfig(horizon=5, vol_lookback=10),
        split=SplitConfig(train=0.5, val=0.25, test=0.25, embargo_days=1),
        windows=WindowConfig(patch_len=5, context_patches=4, gap_patches=1, target_patches=2),
    )


SESSIONS = [390, 390, 210, 390, 390, 390, 390, 390, 390]


def _result(options=True):
    bars, osum = make_market(SESSIONS, seed=11, day_steps=[1, 1, 3, 1, 1, 1, 3, 1, 1])
    ob = None
    if options:
        ob = pl.DataFrame(
            {
                "ts": bars["ts"][:3],
                "ticker": ["O:SPY220103C00400000"] * 3,
                "expiry": [date(2022, 1, 3)] * 3,
                "right": ["C"] * 3,
                "strike": [400.0] * 3,
                **{c: [1.0, 1.1, 1.2] for c in ("open", "high", "low", "close")},
                "volume": [3.0, 1.0, 2.0],
            }
        )
    return IngestResult(
        bars=bars,
        option_summary=osum if options else None,
        option_bars=ob,
        log={"bars_before_session_filter": bars.height + 100, "dropped_outside_session": 100},
        inputs={"stock_fingerprint": "abc"},
    )


def test_prepared_dataset_follows_the_contract(tmp_path):
    cfg = _cfg(tmp_path)
    res = _result()
    truth = pl.DataFrame(
        {
            "ts": res.bars["ts"].reverse(),  # order differs: must be aligned by ts
            "regime": pl.Series(np.arange(res.bars.height)[::-1] % 3, dtype=pl.Int8),
            "filter_p0": np.linspace(0, 1, res.bars.height),
            "drift": np.zeros(res.bars.height),
        }
    )
    out = prep.prepare_from_ingest(cfg, res, progress=False, truth=truth)
    assert out == tmp_path / "prepared" / prep.prepared_hash(cfg)
    for f in ("dataset.parquet", "manifest.json", "normalization.json", "option_bars.parquet"):
        assert (out / f).exists(), f
    df = pl.read_parquet(out / "dataset.parquet")
    schema = dict(df.schema)
    for c, t in {
        "ts": pl.Int64,
        "session": pl.Date,
        "minute": pl.Int16,
        "session_minutes": pl.Int16,
        "close": pl.Float64,
        "filled": pl.Boolean,
        "iv_atm_near": pl.Float64,
        "far_dte": pl.Float64,
        "options_valid": pl.Boolean,
        "split": pl.Int8,
        "label": pl.Int8,
        "fwd_ret": pl.Float32,
        "fwd_rv": pl.Float32,
        "sigma_h": pl.Float32,
    }.items():
        assert schema[c] == t, c
    assert [c for c in df.columns if c.startswith("f_")] == [f"f_{n}" for n in ALL_FEATURES]
    fx = df.select(pl.selectors.starts_with("f_")).to_numpy()
    assert fx.dtype == np.float32 and np.isfinite(fx).all() and np.abs(fx).max() <= 5.0
    assert df.height == res.bars.height and (df["ts"] == res.bars["ts"]).all()
    assert set(df["split"].unique()) == {-1, 0, 1, 2}
    lab, ret = df["label"].to_numpy(), df["fwd_ret"].to_numpy()
    last = np.r_[df["session"].to_numpy()[1:] != df["session"].to_numpy()[:-1], True]
    for e in np.flatnonzero(last):
        assert (lab[e - 4 : e + 1] == -1).all() and np.isnan(ret[e - 4 : e + 1]).all()
    assert np.isnan(ret[lab == -1]).sum() >= 5 * len(SESSIONS)

    norm = json.loads((out / "normalization.json").read_text())
    assert norm["fitted_on"] == "train" and norm["method"] == "robust" and norm["clip_z"] == 5.0
    assert list(norm["features"]) == ALL_FEATURES
    m = json.loads((out / "manifest.json").read_text())
    assert m["config_hash"] == prep.prepared_hash(cfg) and m["feature_dim"] == 23
    assert m["bars_before_session_filter"] == res.bars.height + 100
    assert m["days_per_split"] == {"train": 4, "val": 2, "test": 1, "embargo": 2}
    assert set(m["class_rates_per_split"]) == {"train", "val", "test"}
    tr = m["class_rates_per_split"]["train"]
    assert tr["BUY_CALL"] + tr["BUY_PUT"] == pytest.approx(0.16, abs=0.01)
    assert m["filled_minutes"] == int(res.bars["filled"].sum())
    assert m["windows_per_split"]["train"] > 0 and m["inputs"] == {"stock_fingerprint": "abc"}

    data = PreparedData.load(out)
    assert data.features.flags["C_CONTIGUOUS"] and data.features.dtype == np.float32
    assert data.features.shape == (df.height, 23) and data.feature_names == ALL_FEATURES
    np.testing.assert_array_equal(data.features, fx)
    assert data.session.min() == 0 and data.session.max() == len(SESSIONS) - 1
    assert (np.diff(data.session) >= 0).all()
    np.testing.assert_array_equal(data.label, lab)
    assert data.split.dtype == np.int8 and data.close.dtype == np.float64
    # truth aligned by ts, never part of the features
    np.testing.assert_array_equal(data.truth["regime"], np.arange(df.height) % 3)
    assert set(data.truth) == {"regime", "filter_p0"}
    assert data.option_bars().height == 3


def test_cache_force_and_atomic_write(tmp_path, monkeypatch):
    cfg = _cfg(tmp_path)
    res = _result()
    out = prep.prepare_from_ingest(cfg, res, progress=False)
    stamp = (out / "manifest.json").stat().st_mtime_ns
    assert prep.prepare_from_ingest(cfg, res, progress=False) == out
    assert (out / "manifest.json").stat().st_mtime_ns == stamp  # reused
    assert prep.prepare(cfg, progress=False) == out  # cached: no ingest needed

    def boom(self, path):
        raise RuntimeError("disk full")

    monkeypatch.setattr(Normalizer, "save", boom)
    with pytest.raises(RuntimeError):
        prep.prepare_from_ingest(cfg, res, force=True, progress=False)
    assert (out / "manifest.json").stat().st_mtime_ns == stamp  # old dataset untouched
    other = _cfg(tmp_path, max_option_staleness_minutes=9)
    with pytest.raises(RuntimeError):
        prep.prepare_from_ingest(other, res, progress=False)
    assert not prep.prepared_path(other).exists()
    assert sorted(p.name for p in (tmp_path / "prepared").iterdir()) == [out.name]  # no temp
    monkeypatch.undo()
    prep.prepare_from_ingest(cfg, res, force=True, progress=False)
    assert (out / "manifest.json").stat().st_mtime_ns != stamp


def test_without_options_the_option_features_are_left_out(tmp_path, capsys):
    cfg = _cfg(tmp_path)
    out = prep.prepare_from_ingest(cfg, _result(options=False), progress=True)
    printed = capsys.readouterr().out
    assert "left out" in printed and "BUY_CALL" in printed and "vwap_dev" in printed
    data = PreparedData.load(out)
    assert data.n_features == 16 and "iv_atm" not in data.feature_names
    assert data.manifest["dropped_features"] == ALL_FEATURES[13:20]
    assert not data.options_valid.any() and data.frame["iv_atm_near"].null_count() == data.n_rows
    assert data.truth is None and data.option_bars() is None


def test_hash_covers_synth_only_for_synthetic_data(tmp_path):
    a = _cfg(tmp_path)
    b = a.model_copy(update={"synth": a.synth.model_copy(update={"seed": 7})})
    assert prep.prepared_hash(a) != prep.prepared_hash(b)
    fa, fb = _cfg(tmp_path, source="files"), None
    fb = fa.model_copy(update={"synth": fa.synth.model_copy(update={"seed": 7})})
    assert prep.prepared_hash(fa) == prep.prepared_hash(fb)
    c = a.model_copy(update={"windows": a.windows.model_copy(update={"stride": 4})})
    assert prep.prepared_hash(c) == prep.prepared_hash(a)  # windows are not baked in


def test_bad_bars_raise_a_clear_error(tmp_path):
    res = _result()
    bad = res.bars.with_columns(
        ts=pl.when(pl.int_range(pl.len()) == 500).then(pl.col("ts") - 10**12).otherwise("ts")
    )
    with pytest.raises(DataValidationError, match="row 500.*|not strictly increasing"):
        prep.build_prepared(_cfg(tmp_path), IngestResult(bad, None, None))
    bad = res.bars.with_columns(
        close=pl.when(pl.int_range(pl.len()) == 7).then(-1.0).otherwise("close")
    )
    with pytest.raises(DataValidationError, match="row 7"):
        prep.build_prepared(_cfg(tmp_path), IngestResult(bad, None, None))
    with pytest.raises(DataValidationError, match="option summary rows"):
        prep.build_prepared(
            _cfg(tmp_path), IngestResult(res.bars, res.option_summary.head(9), None)
        )


def _polygon_day(s, rng, price):
    n = int(s["session_minutes"])
    ts = s["open_ns"] + np.arange(-5, n) * 60_000_000_000  # 5 pre-market bars
    c = price * np.exp(np.cumsum(rng.normal(0, 5e-4, ts.size)))
    o = np.r_[price, c[:-1]]
    return pl.DataFrame(
        {
            "ticker": "SPY",
            "volume": rng.integers(100, 10_000, ts.size).astype(float),
            "open": o,
            "close": c,
            "high": np.maximum(o, c) * 1.0002,
            "low": np.minimum(o, c) * 0.9998,
            "window_start": ts,
            "transactions": rng.integers(1, 50, ts.size),
        }
    ), float(c[-1])


def test_prepare_runs_ingest_on_raw_files(tmp_path):
    """The public entry point on Polygon-style files (ingest → prepare → load)."""
    rng = np.random.default_rng(0)
    raw = tmp_path / "raw"
    raw.mkdir()
    price = 400.0
    for s in trading_sessions(date(2022, 11, 17), date(2022, 11, 30)).iter_rows(named=True):
        df, price = _polygon_day(s, rng, price)
        with gzip.open(raw / f"{s['session']}.csv.gz", "wb") as f:
            df.write_csv(f)
    cfg = _cfg(tmp_path, source="files", stock_files=str(raw / "*.csv.gz"))
    out = prep.prepare(cfg, progress=False)
    data = PreparedData.load(out)
    m = data.manifest
    assert m["n_days"] == 9 and m["feature_dim"] == 16  # no options given
    assert m["bars_before_session_filter"] - m["bars_after_session_filter"] == 5 * 9
    assert 210 in data.frame["session_minutes"].to_list()  # the day after Thanksgiving
    assert data.truth is None

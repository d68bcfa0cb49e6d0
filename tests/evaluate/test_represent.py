"""The `represent` stage writes every representation and the probe rows; `probe` reads only
those files, and says which command to run when one is missing."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from marketjepa.artifacts import read_json, to_jsonable
from marketjepa.data.prepared import PreparedData
from marketjepa.errors import StageInputMissing
from marketjepa.evaluate import probes as pr
from marketjepa.evaluate import represent as rp
from marketjepa.pipeline import RUN_STAGES, STAGE_OUTPUT, stage_hash
from marketjepa.results import Represented, read_result, result_dict


def _fast(cfg):
    """No fine-tuning and no walk-forward: the file contract is what these tests check."""
    return cfg.model_copy(
        update={
            "eval": cfg.eval.model_copy(update={"finetune": False}),
            "split": cfg.split.model_copy(update={"walk_forward_folds": 0}),
        }
    )


@pytest.fixture(scope="module")
def represented(tiny_run, tmp_path_factory):
    cfg, prepared, run_dir = tiny_run
    cfg = _fast(cfg)
    summary = rp.run_represent(cfg, prepared, run_dir)
    return cfg, prepared, run_dir, summary


def test_represent_writes_representations_rows_and_summary(represented):
    cfg, prepared, run_dir, summary = represented
    on_disk = read_result(run_dir / rp.SUMMARY_FILE, Represented)
    assert result_dict(on_disk) == {"schema_version": 1, **to_jsonable(summary)}
    names = list(summary["representations"])
    assert names[:2] == ["lejepa", "lejepa_mean"]  # the probe order: LeJEPA first
    assert {"raw_window", "hybrid", "har_rv", "random_init", "supervised"} <= set(names)
    assert {"oracle_latent", "oracle_filter"} <= set(names)  # the prepared data has truth
    assert "lejepa_finetuned" not in names and "finetuned_history" not in summary
    assert summary["supervised_history"] and summary["evaluated_on"] == "test"

    inputs = rp.load_probe_inputs(run_dir)
    rows, data = inputs.rows, PreparedData.load(prepared)
    assert rows.counts() == summary["n_rows"] and inputs.eval_split == pr.TEST
    np.testing.assert_array_equal(rows.split, data.split[rows.anchors])  # the prepared rows
    np.testing.assert_array_equal(rows.label, data.label[rows.anchors])
    assert np.all(rows.label >= 0)
    assert inputs.day_names[0] == str(data.frame["session"].min())
    reps = rp.load_representations(run_dir, names, rows)
    for name, X in reps.items():
        assert X.shape == (rows.anchors.size, summary["representations"][name]["dim"])
    # lejepa is the diagnose stage's pooled embedding of exactly these rows
    with np.load(run_dir / "embeddings" / "train.npz") as z:
        by_anchor = dict(zip(z["anchors"].tolist(), z["pooled"], strict=True))
    train = np.flatnonzero(rows.split == pr.TRAIN)
    np.testing.assert_array_equal(
        reps["lejepa"][train], np.stack([by_anchor[a] for a in rows.anchors[train].tolist()])
    )


def test_probe_reads_only_the_represent_files(represented, tmp_path, monkeypatch):
    cfg, _, run_dir, summary = represented
    run2 = tmp_path / "run"
    shutil.copytree(run_dir / rp.REP_DIR, run2 / rp.REP_DIR)
    for name in (rp.ROWS_FILE, rp.SUMMARY_FILE):
        shutil.copy(run_dir / name, run2 / name)

    def no_training(*args, **kwargs):
        raise AssertionError("the probe stage trained an encoder")

    monkeypatch.setattr(rp.bl, "train_supervised", no_training)
    # no prepared folder, no embeddings, no checkpoint: only the represent stage's files
    result = pr.run_probes(cfg, tmp_path / "no-prepared-data", run2)
    names = [r["representation"] for r in result["classification"]]
    assert names[0] == "majority"
    classified = [n for n in summary["representations"] if n not in ("har_rv", "har_rv_intraday")]
    assert names[1:] == classified
    assert result["supervised_history"] == summary["supervised_history"]
    assert result["notes"][: len(summary["notes"])] == summary["notes"]
    assert read_json(run2 / "probes.json")["n_rows"] == summary["n_rows"]


def test_missing_representation_names_the_file_and_the_command(represented, tmp_path):
    cfg, _, run_dir, _ = represented
    run2 = tmp_path / "run"
    shutil.copytree(run_dir / rp.REP_DIR, run2 / rp.REP_DIR)
    for name in (rp.SUMMARY_FILE, rp.ROWS_FILE):
        with pytest.raises(StageInputMissing, match=rf"{name}.*`marketjepa represent`"):
            pr.run_probes(cfg, tmp_path, run2)
        shutil.copy(run_dir / name, run2 / name)
    (run2 / rp.REP_DIR / "random_init.npz").unlink()
    with pytest.raises(StageInputMissing, match=r"random_init\.npz.*marketjepa represent"):
        pr.run_probes(cfg, tmp_path, run2)


def test_represent_is_a_pipeline_stage_between_diagnose_and_probe(tiny_run):
    cfg = tiny_run[0]
    assert RUN_STAGES.index("diagnose") + 1 == RUN_STAGES.index("represent")
    assert RUN_STAGES.index("represent") + 1 == RUN_STAGES.index("probe")
    assert STAGE_OUTPUT["represent"] == rp.SUMMARY_FILE
    # its cache entry depends on the eval section (probe rows, supervised epochs) and upstream
    other = cfg.model_copy(update={"eval": cfg.eval.model_copy(update={"supervised_epochs": 7})})
    assert stage_hash(cfg, "represent") != stage_hash(other, "represent")

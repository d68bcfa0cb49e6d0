"""Result models: clear errors naming file and field, optional stages, layout table.

Every real stage output is validated against its model in tests/test_end_to_end.py
(on the planted and null tiny runs the suite already makes)."""

import json
from pathlib import Path

import pytest

from helpers.results import policy_dict, probe_table_dict
from marketjepa.errors import DataValidationError
from marketjepa.results import (
    RESULT_FILES,
    BacktestMetrics,
    Policy,
    ProbeTable,
    layout_table,
    read_result,
    result_dict,
    validate_result,
    write_result,
)


def test_renamed_field_names_file_and_field(tmp_path):
    body = probe_table_dict()
    row = body["classification"][0]
    row["bacc_lift"] = row.pop("lift_balanced")
    path = tmp_path / "probes.json"
    path.write_text(json.dumps(body))
    with pytest.raises(DataValidationError) as err:
        read_result(path, ProbeTable)
    msg = str(err.value)
    assert str(path) in msg
    assert "classification.0.lift_balanced" in msg
    assert "ProbeTable" in msg


def test_missing_optional_stage_is_none_and_required_one_fails(tmp_path):
    assert read_result(tmp_path / "backtest/metrics.json", BacktestMetrics, optional=True) is None
    with pytest.raises(DataValidationError, match="not found"):
        read_result(tmp_path / "backtest/metrics.json", BacktestMetrics)


def test_invalid_json_names_the_file(tmp_path):
    path = tmp_path / "policy.json"
    path.write_text("{not json")
    with pytest.raises(DataValidationError, match="not valid JSON") as err:
        read_result(path, Policy)
    assert str(path) in str(err.value)


def test_write_then_read_keeps_numbers_and_their_types(tmp_path):
    body = policy_dict()
    body["representations"]["lejepa"]["tau_call"] = float("inf")
    path = tmp_path / "policy" / "policy.json"
    write_result(path, validate_result(body, Policy, path))
    on_disk = json.loads(path.read_text())
    assert on_disk["schema_version"] == 1
    assert on_disk["n_trials_total"] == 48 and isinstance(on_disk["n_trials_total"], int)
    back = read_result(path, Policy)
    assert back.representations["lejepa"].tau_call == float("inf")
    assert result_dict(back) == on_disk


def test_layout_table_lists_every_result_file_and_docs_carry_the_current_copy():
    table = layout_table()
    for stage, (rel, model, _) in RESULT_FILES.items():
        where = "data/prepared/<hash>" if stage == "prepare" else "runs/<run>"
        assert table.count(f"| `{where}/{rel}` | `{model.__name__}` |") == 1
    docs = (Path(__file__).resolve().parents[1] / "docs" / "architecture.md").read_text()
    assert f"<!-- layout_table -->\n{table}\n<!-- /layout_table -->" in docs, (
        "docs/architecture.md's run-directory table is stale: paste layout_table() there"
    )

"""Typed result models: one pydantic model per stage output file.

Each stage builds a plain dict and writes it with :func:`write_result`; the report, the
console tables, ``compare`` and the test fixtures read it back with :func:`read_result`.
The fields each reader uses are declared here, so a renamed or missing field is a
validation error naming the file and the field, not a silent "—" in the report.

Top-level models and the rows the report reads forbid unknown keys (``extra="forbid"``);
open-ended parts (per-feature statistics, ingest logs, trial lists) are typed dicts.
``Num`` keeps a number's JSON type (an int stays an int) so a dict validated and dumped
again writes the same file. ``schema_version`` is bumped when a field changes meaning.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from marketjepa.artifacts import to_jsonable, write_json
from marketjepa.errors import DataValidationError

SCHEMA_VERSION = 1

Num = int | float
CI = list[float]  # [low, high]


class Strict(BaseModel):
    """A JSON object whose keys are all declared: a rename is a validation error."""

    model_config = ConfigDict(extra="forbid")


class Result(Strict):
    """A stage output file (versioned)."""

    schema_version: int = SCHEMA_VERSION


# ---------------------------------------------------------------------------- prepare


class PreparedManifest(Result):
    """``data/prepared/<hash>/manifest.json`` (data/prepare.py)."""

    config_hash: str
    created: str
    source: str
    inputs: dict[str, Any]
    ingest_log: dict[str, Any]
    bars_before_session_filter: int
    bars_after_session_filter: int
    bars_outside_session: int
    filled_minutes: int
    rows: int
    n_days: int
    repairs: dict[str, int]
    calendar: str
    raw_minutes: int
    partial_sessions: str
    partial_sessions_found: int
    dropped_sessions: int
    dropped_session_dates: list[str]
    dropped_minutes: int
    outside_date_range_bars: int
    filled_share_per_split: dict[str, float]
    first_session: str
    last_session: str
    days_per_split: dict[str, int]
    rows_per_split: dict[str, int]
    windows_per_split: dict[str, int]
    window_spec: dict[str, int]
    class_rates_per_split: dict[str, dict[str, float]]
    labelled_rows_per_split: dict[str, int]
    label_kind: str
    label_k: float | None
    horizon: int
    feature_names: list[str]
    feature_dim: int
    dropped_features: list[str]
    options: bool
    options_valid_frac: float
    feature_stats: dict[str, dict[str, Any]]
    seconds: dict[str, float]
    truth_missing_rows: int | None = None  # synthetic data only


# ---------------------------------------------------------------------------- pretrain


class PretrainSummary(Result):
    """``pretrain.json`` (train/pretrain.py). A diverged run stops before the run totals."""

    status: str
    epochs_run: int
    best_epoch: int | None
    best_criterion: str
    message: str
    seconds: float
    final: dict[str, Num | bool | None]  # last metrics.csv row (METRIC_COLUMNS)
    collapsed_epochs: list[int]
    # Per-epoch latent probe of the encoder before training (synthetic data; else None).
    latent_init: dict[str, Num | None] | None = None
    diverged_at: dict[str, Any] | None = None
    steps: int | None = None
    steps_per_epoch: int | None = None
    global_batch: int | None = None
    world_size: int | None = None
    device: str | None = None
    n_train_windows: int | None = None
    n_val_windows: int | None = None


# ---------------------------------------------------------------------------- diagnose


class TensorStats(Strict):
    """Collapse measures of one embedding tensor on one split."""

    n: int
    d: int
    dim_var_mean: float
    dim_var_std: float
    dim_var_min: float
    mean_sq_norm: float
    norm_var: float
    rankme: float
    rankme_ratio: float
    dead_dims: int
    top1_share: float
    spectrum: list[float]
    sigreg_heldout: float | None
    sigreg_batch: int
    sigreg_gaussian: float | None
    sigreg_gaussian_same_scale: float | None
    verdict: dict[str, Any]


class Verdict(Strict):
    """The run's collapse verdict: the worse tensor on the held-out split."""

    status: str
    split: str | None
    decided_by: str
    reasons: list[str]
    thresholds: dict[str, float]
    per_tensor: dict[str, str]


class Diagnostics(Result):
    """``diagnostics.json`` (evaluate/diagnose.py)."""

    checkpoint: str
    checkpoint_epoch: int
    pretrain_status: str | None
    pretrain_message: str | None
    sigreg_on: str
    sigreg_tensor: str
    pooling: str
    d_model: int
    windows: dict[str, int]
    heldout_split: str | None
    splits: dict[str, dict[str, TensorStats]]  # split -> "probe" | "sigreg" -> stats
    verdict: Verdict


# ---------------------------------------------------------------------------- probe


class SignedReturn(Strict):
    """Directional return t-test over test days (evaluate/signed_return.py)."""

    estimate: float
    se: float
    df: int
    t: float
    p_value: float
    ci: CI
    n_days: int
    active_days: int


class ClassificationRow(Strict):
    """One representation's 3-class probe on the evaluated split."""

    representation: str
    dim: int
    accuracy: float
    balanced_accuracy: float
    macro_f1: float
    majority_accuracy: float
    lift_accuracy: float
    lift_balanced: float
    direction_accuracy: float
    lift_direction: float
    per_class: dict[str, dict[str, Num]]
    confusion: list[list[int]]
    ci: dict[str, CI]
    resamples: dict[str, dict[str, Num]]  # metric -> {se, valid_share, distinct}
    dir_return: SignedReturn | None
    val: dict[str, float]
    C: float | None


class RegressionRow(Strict):
    """One representation's ridge probe of one target (``metric`` is r2 or ic)."""

    representation: str
    target: str
    metric: str
    value: float
    ci: dict[str, CI]
    alpha: float | None
    val: float | None = None


class LatentRow(Strict):
    """How well a representation decodes the synthetic market's hidden regime."""

    representation: str
    dim: int
    accuracy: float
    share_of_filter: float
    chance: float
    filter_accuracy: float
    ci: dict[str, CI]
    C: float | None


class PairedTest(Strict):
    """Paired day-block bootstrap of ``a`` minus ``b`` on one metric."""

    a: str
    b: str
    metric: str
    difference: float
    ci: CI
    p_value: float
    estimate_a: float
    estimate_b: float
    resamples: dict[str, Num]


class WalkForwardFold(Strict):
    fold: int
    fit_days: list[int]
    select_days: list[int]
    days: list[int]
    n_fit: int
    n_select: int
    n_rows: int
    dates: list[str] | None = None


class WalkForwardRep(Strict):
    """Per-fold scores of one representation, their mean/std, and all folds pooled."""

    folds: list[dict[str, Any]]
    mean: dict[str, float]
    std: dict[str, float]
    pooled: dict[str, Any]  # metric -> value, "ci" -> {metric: [lo, hi]}


class WalkForward(Strict):
    n_folds: int
    embargo_days: int
    select_share: float
    selected_by: str
    folds: list[WalkForwardFold]
    representations: dict[str, WalkForwardRep]
    note: str = ""


class ProbeTable(Result):
    """``probes.json`` (evaluate/probes.py)."""

    evaluated_on: str
    n_rows: dict[str, int]
    n_days: dict[str, int]
    ci_level: float
    bootstrap: dict[str, int]
    classification: list[ClassificationRow]
    regression: list[RegressionRow]
    latent: list[LatentRow]
    paired_tests: list[PairedTest]
    majority_class: dict[str, Any]
    supervised_history: list[dict[str, Num]]
    finetuned_history: list[dict[str, Num]] | None = None
    walk_forward: WalkForward | None = None
    notes: list[str]
    seconds: float


class RepresentationShape(Strict):
    dim: int


class Represented(Result):
    """``represent.json`` (evaluate/represent.py): the frozen representations built for
    the probes, in probe order, with the supervised encoders' training histories."""

    evaluated_on: str
    n_rows: dict[str, int]
    embedded_splits: list[str]
    representations: dict[str, RepresentationShape]
    supervised_history: list[dict[str, Num]]
    finetuned_history: list[dict[str, Num]] | None = None
    notes: list[str]
    build_seconds: dict[str, float]
    seconds: float


# ---------------------------------------------------------------------------- policy


class SplitReport(Strict):
    """A policy head's classification on one split (empty split: ``n`` only)."""

    n: int
    accuracy: float | None = None
    balanced_accuracy: float | None = None
    pred_rates: dict[str, float] | None = None
    true_rates: dict[str, float] | None = None


class RepresentationPolicy(Strict):
    """The policy fitted on one representation: head, thresholds, trials on val."""

    kind: str
    classification: dict[str, SplitReport] | None = None  # kind "classifier"
    regression: dict[str, float | None] | None = None  # kind "regression"
    tau_call: float
    tau_put: float
    signal_rates: dict[str, dict[str, float] | None]
    n_trials: int
    trials: list[dict[str, Num | None]]
    trial_sharpe_var: float
    warnings: list[str]


class Policy(Result):
    """``policy/policy.json`` (trading/policy.py)."""

    kind: str
    head: str
    threshold_objective: str
    thresholds_chosen_on: str
    evaluated_on: str
    order: list[str]
    representations: dict[str, RepresentationPolicy]
    warnings: list[str]
    n_trials_total: int


# ---------------------------------------------------------------------------- backtest


class StrategyMetrics(Strict):
    """One strategy's test-period metrics (trading/backtest.py, trading/metrics.py)."""

    total_return: float
    net_pnl: float
    n_trades: int
    win_rate: float | None
    avg_win: float | None
    avg_loss: float | None
    profit_factor: float | None
    call_share: float | None
    put_share: float | None
    exposure: float
    turnover: float
    n_days: int
    sharpe: float | None
    sortino: float | None
    sharpe_ci_low: float | None
    sharpe_ci_high: float | None
    sharpe_ci_valid_share: float | None
    sharpe_ci_distinct: int | None
    max_drawdown: float
    max_drawdown_days: int
    skewness: float | None
    kurtosis: float | None
    psr: float | None
    n_trials: int
    var_trial_sharpes: float | None
    sr0_deflated: float | None
    dsr: float | None
    n_signals: int
    signals_dropped_at_session_end: int
    exit_reasons: dict[str, int]


class RandomBaselineMetrics(Strict):
    """Random entries: the mean over seeds of each metric, with 5th/95th percentiles."""

    n_seeds: int
    total_return: float
    total_return_p05: float
    total_return_p95: float
    net_pnl: float
    net_pnl_p05: float
    net_pnl_p95: float
    n_trades: Num
    n_trades_p05: Num
    n_trades_p95: Num
    win_rate: float | None
    win_rate_p05: float | None
    win_rate_p95: float | None
    sharpe: float | None
    sharpe_p05: float | None
    sharpe_p95: float | None
    sortino: float | None
    sortino_p05: float | None
    sortino_p95: float | None
    max_drawdown: float
    max_drawdown_p05: float
    max_drawdown_p95: float
    psr: float | None
    psr_p05: float | None
    psr_p95: float | None
    dsr: float | None
    dsr_p05: float | None
    dsr_p95: float | None
    call_share: float | None
    call_share_p05: float | None
    call_share_p95: float | None
    exposure: float
    exposure_p05: float
    exposure_p95: float


class BacktestMetrics(Result):
    """``backtest/metrics.json`` (trading/backtest.py); ``strategies["random"]`` is the
    random-entry baseline, every other entry one strategy's metrics."""

    evaluated_on: str
    evaluated_on_warning: str | None
    pricing_mode: str
    prices_modeled: bool
    price_sources: dict[str, int]
    iv_proxy_note: str | None
    bars_fallbacks: dict[str, Any] | None
    n_trials: int
    var_trial_sharpes: float | None
    baseline_trade_count: int | None
    baseline_trade_count_rule: str | None
    rules: dict[str, Any]
    days: int
    strategies: dict[str, StrategyMetrics | RandomBaselineMetrics]
    attribution: dict[str, dict[str, float]]
    seconds: float | None = None


# ---------------------------------------------------------------------------- files

M = TypeVar("M", bound=BaseModel)

# stage -> (path relative to the run directory (prepare: to the prepared folder), model, what)
RESULT_FILES: dict[str, tuple[str, type[Result], str]] = {
    "prepare": ("manifest.json", PreparedManifest, "prepared dataset: counts, splits, labels"),
    "pretrain": ("pretrain.json", PretrainSummary, "training status, best epoch, last row"),
    "diagnose": ("diagnostics.json", Diagnostics, "collapse measures and verdict"),
    "represent": ("represent.json", Represented, "frozen representations built for the probes"),
    "probe": ("probes.json", ProbeTable, "probe table with block-bootstrap CIs"),
    "policy": ("policy/policy.json", Policy, "fitted policy and thresholds per representation"),
    "backtest": ("backtest/metrics.json", BacktestMetrics, "strategy and baseline metrics"),
}


def _where(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


def validate_result(data: Any, model: type[M], file: str | Path) -> M:
    """``model`` validated from ``data`` (numpy scalars allowed, as a stage builds it);
    a mismatch names the file and the first bad field."""
    try:
        return model.model_validate(to_jsonable(data))
    except ValidationError as exc:
        errs = exc.errors()
        first = errs[0]
        more = f" (and {len(errs) - 1} more)" if len(errs) > 1 else ""
        raise DataValidationError(
            f"field '{_where(first['loc'])}': {first['msg']}{more}; does not match "
            f"{model.__name__} schema {SCHEMA_VERSION}",
            file=str(file),
            hint="re-run the stage that wrote it",
        ) from None


def read_result(path: str | Path, model: type[M], *, optional: bool = False) -> M | None:
    """Read and validate a result file. ``optional``: a missing file is ``None``."""
    path = Path(path)
    if not path.exists():
        if optional:
            return None
        raise DataValidationError("result file not found", file=str(path))
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataValidationError(
            f"not valid JSON ({exc})", file=str(path), hint="re-run the stage that wrote it"
        ) from None
    return validate_result(data, model, path)


def result_dict(model: BaseModel) -> dict[str, Any]:
    """The JSON body of a result: the fields that were given, numbers as given."""
    body = model.model_dump(exclude_unset=True)
    if isinstance(model, Result):
        body = {"schema_version": model.schema_version, **body}
    return to_jsonable(body)


def write_result(path: str | Path, result: BaseModel) -> None:
    """Write a validated result atomically. A stage wires its dict in with
    ``write_result(path, validate_result(d, Model, path))``."""
    write_json(Path(path), result_dict(result))


# The other files of a run directory and the data folders (no model: not JSON results)
OTHER_FILES: tuple[tuple[str, str], ...] = (
    ("runs/<run>/config.yaml", "fully resolved configuration"),
    (
        "runs/<run>/manifest.json",
        "package version, git commit, torch version, device, seeds, inputs",
    ),
    ("runs/<run>/stages.json", "per-stage config hash and timing (what `run` skips)"),
    ("runs/<run>/metrics.csv, tb/", "per-epoch losses and diagnostics (TensorBoard)"),
    ("runs/<run>/checkpoints/{last,best}.pt", "model, optimizer and trainer state"),
    ("runs/<run>/embeddings/{train,val,test}.npz", "pooled and SIGReg tensors, anchors"),
    ("runs/<run>/representations/<name>.npz", "every probed representation (policy input)"),
    ("runs/<run>/policy/signals.parquet", "row, ts, split, representation, signal"),
    ("runs/<run>/backtest/{trades,equity}.parquet", "every strategy's trades and equity"),
    ("runs/<run>/walkforward/", "walkforward.json, folds.csv, equity.csv, trades.csv, fold_k/"),
    ("runs/<run>/plots/*.png, report.md, report.html", "the report"),
    ("data/raw/synthetic/<hash>/", "the synthetic market's raw files (+ truth/ for oracles)"),
    ("data/prepared/<hash>/", "dataset.parquet, normalization.json, option_bars.parquet"),
)


def layout_table() -> str:
    """The run directory and data folders as one Markdown table (pasted into
    docs/architecture.md): the result files with their model, then the other files."""
    lines = ["| file | model | holds |", "|---|---|---|"]
    for stage, (rel, model, what) in RESULT_FILES.items():
        where = f"data/prepared/<hash>/{rel}" if stage == "prepare" else f"runs/<run>/{rel}"
        lines.append(f"| `{where}` | `{model.__name__}` | {stage}: {what} |")
    lines += [f"| `{path}` | – | {what} |" for path, what in OTHER_FILES]
    return "\n".join(lines)

"""Does a dataset fit a preset? Days, rows and windows per split, and the smallest overrides.

``marketjepa inspect-data --preset P`` (plus ``--config``/``--set``) calls :func:`check_fit`
with the length of every session that ingest would keep (after ``data.start``/``data.end``
and dropped partial sessions). The rule mirrors the stages that would fail later:

- :func:`marketjepa.data.splits.day_splits`: every split needs at least one day;
- pretraining needs at least ``MIN_PRETRAIN_WINDOWS`` full context+gap+target windows in
  train and in validation (:func:`marketjepa.data.windows.pretrain_starts`);
- probes and the backtest need at least one context window in the evaluation split (test,
  or validation when ``split.test = 0``);
- with ``split.walk_forward_folds > 0`` the walk-forward folds over all days must each have
  fit, selection and scored days (:func:`marketjepa.data.splits.walk_forward_eval_folds`).

Each split is a contiguous run of days, so a split of ``R`` rows holds
``(R − L) // stride + 1`` windows of length ``L``. Filled bars count as rows (they stay in
the windows' context) but are never labelled, so this is an upper bound on labelled
windows. When the data does not fit, :func:`suggest_overrides` searches, in order, shorter
context / target windows, split fractions without embargo, and both, and returns the first
``--set`` overrides that fit (the smallest change to the preset).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from marketjepa.config import Config, SplitConfig, WindowConfig
from marketjepa.data.splits import min_days, short_splits, split_counts, walk_forward_eval_folds
from marketjepa.errors import MarketJepaError

MIN_PRETRAIN_WINDOWS = 2  # train/pretrain.py refuses fewer


@dataclass
class Fit:
    fits: bool
    days: dict[str, int]
    rows: dict[str, int]
    windows: dict[str, int]  # pretrain windows (train/val) or context windows (eval split)
    needed_days: int
    needed_rows: dict[str, int]
    problems: list[str] = field(default_factory=list)
    suggestions: list[str] = field(default_factory=list)


def _rows_per_split(session_minutes: list[int], split: SplitConfig) -> tuple[dict, dict]:
    c = split_counts(len(session_minutes), split)
    rows, i = {}, 0
    order = ["train", "embargo1", "val"] + (["embargo2", "test"] if split.test > 0 else [])
    sizes = {
        "train": c["train"],
        "val": c["val"],
        "test": c["test"],
        "embargo1": split.embargo_days,
        "embargo2": split.embargo_days,
    }
    for name in order:
        n = max(min(sizes[name], len(session_minutes) - i), 0)
        if not name.startswith("embargo"):
            rows[name] = int(sum(session_minutes[i : i + n]))
        i += n
    return c, rows


def _windows(rows: int, length: int, stride: int) -> int:
    return max((rows - length) // stride + 1, 0) if rows >= length else 0


def check_fit(
    session_minutes: list[int], cfg: Config, suggest: bool = True, walk_forward: bool = True
) -> Fit:
    """Whether sessions of these lengths fit ``cfg``'s splits and windows (and, with
    ``walk_forward``, its walk-forward folds)."""
    sp, w = cfg.split, cfg.windows
    total = (w.context_patches + w.gap_patches + w.target_patches) * w.patch_len
    context = w.context_patches * w.patch_len
    eval_split = "test" if sp.test > 0 else "val"
    counts, rows = _rows_per_split(session_minutes, sp)
    days = {k: counts[k] for k in ("train", "val", "test", "embargo")}
    windows = {
        "train": _windows(rows.get("train", 0), total, w.stride),
        "val": _windows(rows.get("val", 0), total, w.stride),
    }
    if sp.test > 0:
        windows["test"] = _windows(rows.get("test", 0), context, 1)
    needed_rows = {
        "train": total + (MIN_PRETRAIN_WINDOWS - 1) * w.stride,
        "val": total + (MIN_PRETRAIN_WINDOWS - 1) * w.stride,
    }
    if sp.test > 0:
        needed_rows["test"] = context
    problems = []
    short = short_splits(len(session_minutes), sp)
    if short:
        problems.append(
            f"{len(session_minutes)} days are too few: {' and '.join(short)} would get no day "
            f"(need at least {min_days(sp)} days for train={sp.train} val={sp.val} "
            f"test={sp.test} embargo_days={sp.embargo_days})"
        )
    else:
        for s, need in needed_rows.items():
            if rows.get(s, 0) < need:
                what = "context" if s == "test" else "context+gap+target"
                problems.append(
                    f"{s}: {rows.get(s, 0):,} rows in {days[s]} day(s), but "
                    f"{'one' if s == 'test' else MIN_PRETRAIN_WINDOWS} {what} window(s) of "
                    f"{context if s == 'test' else total} bars need {need:,} rows"
                )
    if eval_split == "val" and not short and rows.get("val", 0) < context:
        problems.append(f"val (the evaluation split): fewer rows than one context ({context})")
    if walk_forward and sp.walk_forward_folds > 0 and not short:
        try:
            walk_forward_eval_folds(len(session_minutes), sp)
        except MarketJepaError as exc:
            problems.append(str(exc))
    fit = Fit(
        fits=not problems,
        days=days,
        rows=rows,
        windows=windows,
        needed_days=min_days(sp),
        needed_rows=needed_rows,
        problems=problems,
    )
    if problems and suggest:
        fit.suggestions = suggest_overrides(session_minutes, cfg)
    return fit


def _with(cfg: Config, windows: dict | None = None, split: dict | None = None) -> Config:
    upd: dict = {}
    if windows:
        upd["windows"] = WindowConfig(**{**cfg.windows.model_dump(), **windows})
    if split:
        upd["split"] = SplitConfig(**{**cfg.split.model_dump(), **split})
    return cfg.model_copy(update=upd)


_SPLITS = [  # split overrides tried, smallest change first
    {},
    {"embargo_days": 0},
    {"train": 0.6, "val": 0.2, "test": 0.2},
    {"train": 0.6, "val": 0.2, "test": 0.2, "embargo_days": 0},
    {"train": 0.5, "val": 0.25, "test": 0.25, "embargo_days": 0},
    {"train": 0.34, "val": 0.33, "test": 0.33, "embargo_days": 0},
]


def suggest_overrides(session_minutes: list[int], cfg: Config) -> list[str]:
    """``--set`` overrides of the smallest change that make the data fit; [] if none does."""
    w = cfg.windows
    shapes = [{}]
    for c in range(w.context_patches, 0, -1):
        for t in range(w.target_patches, 0, -1):
            if (c, t) != (w.context_patches, w.target_patches):
                shapes.append({"context_patches": c, "target_patches": t})
    # largest windows first: among shapes with the same split change, keep the most context
    shapes[1:] = sorted(
        shapes[1:],
        key=lambda s: (-(s["context_patches"] + s["target_patches"]), -s["context_patches"]),
    )
    folds = list(range(cfg.split.walk_forward_folds, -1, -1))
    for base in _SPLITS:
        if base and cfg.split.test == 0:
            base = {k: v for k, v in base.items() if k == "embargo_days"}
        for k in folds:
            split = {**base, "walk_forward_folds": k}
            for shape in shapes:
                try:
                    trial = _with(cfg, shape, split)
                except ValueError:
                    continue
                if check_fit(session_minutes, trial, suggest=False).fits:
                    sets = [f"windows.{n}={v}" for n, v in shape.items() if getattr(w, n) != v]
                    sets += [
                        f"split.{n}={v}" for n, v in split.items() if getattr(cfg.split, n) != v
                    ]
                    return sets
    return []


def require_fit(session_minutes: list[int], cfg: Config) -> None:
    """Raise a DataValidationError (exit 2) with the problems and suggested overrides when
    the windows do not fit; ``run`` calls it after prepare, before any training."""
    from marketjepa.errors import DataValidationError

    fit = check_fit(session_minutes, cfg, walk_forward=False)
    if fit.fits:
        return
    fix = " ".join(f"--set {o}" for o in fit.suggestions)
    raise DataValidationError(
        f"the data does not fit preset {cfg.preset}: " + "; ".join(fit.problems),
        hint=(f"try {fix}" if fix else "more sessions are needed")
        + " (`marketjepa inspect-data` shows days, rows and windows per split)",
    )


__all__ = ["MIN_PRETRAIN_WINDOWS", "Fit", "check_fit", "require_fit", "suggest_overrides"]

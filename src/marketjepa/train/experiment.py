"""The collapse experiment: the seed's settings vs the recommended ones (issue #5).

Same data, model size, steps and seed for every variant; only the knobs the seed report
blamed for its collapse change:

=================  ======  ===========  ===  =============
variant            λ       EMA          gap  multi-horizon
=================  ======  ===========  ===  =============
seed-like          0.1     0.996        0    no
recommended λ=1    1       none         1    yes
recommended λ=5    5       none         1    yes
=================  ======  ===========  ===  =============

(λ additive: ``loss = pred + λ·SIGReg``.) The watchdog is switched off so every variant
trains the same number of steps; the verdict column says whether it would have stopped.
Reported from the last epoch's validation embeddings: per-dim variance mean (scale
dependent), RankMe, normalized variance, validation SIGReg, the collapse verdict on both
tensors and, on synthetic data, the latent-regime probe.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from marketjepa.artifacts import write_json
from marketjepa.config import Config, apply_overrides, build_config
from marketjepa.console import stage_line
from marketjepa.data.prepared import PreparedData
from marketjepa.model.collapse import row_verdict
from marketjepa.train.pretrain import train_lejepa

SEED_LIKE = {
    "loss.lambda_sigreg": 0.1,
    "loss.convention": "additive",
    "loss.ema": True,
    "loss.ema_momentum": 0.996,
    "windows.gap_patches": 0,
    "loss.multi_horizon": False,
}


def _recommended(lam: float) -> dict[str, Any]:
    return {
        "loss.lambda_sigreg": lam,
        "loss.convention": "additive",
        "loss.ema": False,
        "windows.gap_patches": 1,
        "loss.multi_horizon": True,
    }


VARIANTS: dict[str, dict[str, Any]] = {
    "seed-like": SEED_LIKE,
    "recommended λ=1": _recommended(1.0),
    "recommended λ=5": _recommended(5.0),
}


def variant_config(
    cfg: Config, changes: dict[str, Any], epochs: int, max_steps: int | None
) -> Config:
    overrides = [f"{k}={v}" for k, v in changes.items()]
    overrides += [f"train.epochs={epochs}", "train.watchdog.enabled=false"]
    if max_steps is not None:
        overrides.append(f"train.max_steps_per_epoch={max_steps}")
    return build_config(apply_overrides(cfg.to_dict(), overrides), "collapse experiment")


def _num(v: Any, fmt: str) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)


def collapse_table(results: list[dict[str, Any]]) -> str:
    """Markdown table of the experiment's final-epoch numbers."""
    lines = [
        "| variant | λ | EMA | gap | multi-horizon | dim var mean | RankMe | normalized var "
        "| val SIGReg | val pred | verdict | latent acc | latent share |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        c, row = r["changes"], r["final"]
        ema = str(c.get("loss.ema_momentum")) if c["loss.ema"] else "none"
        lines.append(
            f"| {r['variant']} | {c['loss.lambda_sigreg']:g} | {ema} | {c['windows.gap_patches']} "
            f"| {'yes' if c['loss.multi_horizon'] else 'no'} "
            f"| {_num(row['probe_dim_var_mean'], '.4f')} "
            f"| {_num(row['probe_rankme'], '.1f')} / {r['d_model']} "
            f"| {_num(row['probe_norm_var'], '.3f')} | {_num(row['val_sigreg'], '.2f')} "
            f"| {_num(row['val_pred'], '.4f')} | {r['verdict']} "
            f"| {_num(row.get('latent_acc'), '.3f')} | {_num(row.get('latent_share'), '.2f')} |"
        )
    return "\n".join(lines)


def run_collapse_experiment(
    cfg: Config,
    prepared_dir: Path,
    out_dir: Path,
    epochs: int | None = None,
    max_steps_per_epoch: int | None = None,
) -> str:
    """Train every variant on ``prepared_dir``; write and return the markdown table.

    ``epochs`` defaults to min(cfg.train.epochs, 3) to keep the experiment to minutes on
    the ``cpu`` preset. Writes ``out_dir/<variant>/`` run folders,
    ``collapse_experiment.md`` and ``collapse_experiment.json``.
    """
    data = PreparedData.load(Path(prepared_dir))
    return collapse_experiment_arrays(
        cfg,
        data.features,
        data.split,
        Path(out_dir),
        data.truth,
        epochs,
        max_steps_per_epoch,
        data.feature_names,
    )


def collapse_experiment_arrays(
    cfg: Config,
    features: np.ndarray,
    split: np.ndarray,
    out_dir: Path,
    truth: dict[str, np.ndarray] | None = None,
    epochs: int | None = None,
    max_steps_per_epoch: int | None = None,
    feature_names: list[str] | None = None,
) -> str:
    """:func:`run_collapse_experiment` on in-memory arrays."""
    out_dir = Path(out_dir)
    epochs = epochs or min(cfg.train.epochs, 3)
    results = []
    for name, changes in VARIANTS.items():
        vcfg = variant_config(cfg, changes, epochs, max_steps_per_epoch)
        rows: list[dict[str, Any]] = []
        slug = name.replace(" ", "_").replace("λ=", "lambda")
        summary = train_lejepa(
            vcfg,
            features,
            split,
            out_dir / slug,
            truth=truth,
            on_epoch_end=lambda epoch, row, model, rows=rows: rows.append(row),
            feature_names=feature_names,
        )
        final = rows[-1]
        results.append(
            {
                "variant": name,
                "changes": changes,
                "d_model": vcfg.model.d_model,
                "epochs": len(rows),
                "steps": summary["steps"],
                "verdict": row_verdict(final, vcfg.eval),
                "final": {k: v for k, v in final.items() if k != "collapsed"},
                "run_dir": str(out_dir / slug),
            }
        )
    table = collapse_table(results)
    steps = results[0]["steps"]
    text = (
        "# Collapse experiment\n\n"
        f"Preset `{cfg.preset}`, d={cfg.model.d_model}, {epochs} epochs ({steps} steps of "
        f"batch {cfg.train.batch_size}), seed {cfg.train.seed}; numbers from the last "
        "epoch's validation embeddings (probe tensor). Normalized variance and RankMe/d "
        "are scale-invariant; dim var mean is not.\n\n" + table + "\n"
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "collapse_experiment.md").write_text(text)
    write_json(out_dir / "collapse_experiment.json", results)
    stage_line("experiment", f"collapse table written to {out_dir / 'collapse_experiment.md'}")
    return text

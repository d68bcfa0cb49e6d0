"""The ``diagnose`` stage: embed windows with the best checkpoint and judge collapse.

For each split (train/val/test) the context windows whose anchor row has a label
(``label >= 0``) are taken with stride ``windows.stride``, evenly subsampled to at most
``eval.max_probe_windows``, and embedded without gradients in batches. Saved to
``embeddings/<split>.npz``:

    pooled   [n, d] float32  the tensor the probes use (``LeJEPA.embed`` pooled output)
    sigreg   [n, d] float32  the tensor SIGReg regularizes, one row per window: the pooled
                             embedding (``loss.sigreg_on=pooled``; the pooling of
                             ``loss.sigreg_pooling`` when it is not ``same``), or for ``tokens``/``both``
                             one token per window at a fixed random position (``sigreg_token``)
                             — an unbiased sample of the per-token distribution SIGReg sees
    sigreg_token [n] int64   that token position (−1 when pooled)
    starts   [n] int64       window start rows;  anchors [n] int64  anchor rows (labels)

``diagnostics.json`` holds, for both tensors on val and test, the collapse measures of
:func:`marketjepa.model.collapse.embedding_stats` (spectrum included), the SIGReg
statistic of the held-out embeddings at the training batch size next to its value for
exact Gaussians, a verdict per tensor, and the overall verdict: the worse of the two
tensors on the held-out split (test, or val when there is no test split).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from marketjepa.artifacts import read_json
from marketjepa.config import Config
from marketjepa.console import stage_line
from marketjepa.data.prepared import PreparedData
from marketjepa.data.windows import WindowDataset, context_starts, even_subsample
from marketjepa.device import resolve_device
from marketjepa.model.collapse import SEVERITY, embedding_stats, sigreg_statistic, verdict
from marketjepa.model.embedding import embed_windows
from marketjepa.model.sigreg import (
    gaussian_expected_sigreg,
    null_expected_sigreg,
    sigreg_view,
    token_positions,
)
from marketjepa.results import Diagnostics, validate_result, write_result
from marketjepa.train.checkpoint import checkpoint_path, load_checkpoint, load_model

SPLITS = {"train": 0, "val": 1, "test": 2}


def _tensor_report(z: np.ndarray, cfg: Config, model: torch.nn.Module) -> dict[str, Any]:
    lc = model.loss_cfg
    stats = embedding_stats(z, cfg.eval.dead_dim_share)
    batch = min(cfg.train.batch_size, z.shape[0])
    stats["sigreg_heldout"] = sigreg_statistic(
        z, num_slices=lc.num_slices, seed=cfg.eval.seed, batch_size=batch,
        num_knots=lc.num_knots, t_max=lc.t_max,
    )  # fmt: skip
    stats["sigreg_batch"] = batch
    stats["sigreg_gaussian"] = null_expected_sigreg(lc.num_knots, lc.t_max)
    # What isotropic Gaussian embeddings with the same mean per-dim variance would score.
    stats["sigreg_gaussian_same_scale"] = gaussian_expected_sigreg(
        batch, float(np.sqrt(stats["dim_var_mean"])), lc.num_knots, lc.t_max
    )
    stats["verdict"] = verdict(stats, cfg.eval)
    return stats


def overall_verdict(reports: dict[str, Any], heldout: str | None) -> dict[str, Any]:
    """The worse of the probe and SIGReg tensors' verdicts on the held-out split."""
    if heldout is None:
        return {"status": "INCONCLUSIVE", "reasons": ["no val/test windows"]}
    per = {t: reports[heldout][t]["verdict"] for t in ("probe", "sigreg")}
    worst = max(per, key=lambda t: SEVERITY[per[t]["status"]])
    return {
        "status": per[worst]["status"],
        "split": heldout,
        "decided_by": worst,
        "reasons": [f"{t} tensor: {r}" for t in per for r in per[t]["reasons"]],
        "thresholds": per[worst]["thresholds"],
        "per_tensor": {t: v["status"] for t, v in per.items()},
    }


def diagnose_arrays(
    cfg: Config,
    features: np.ndarray,
    split: np.ndarray,
    label: np.ndarray,
    run_dir: Path,
    which: str = "best",
) -> dict[str, Any]:
    """Embed, save ``embeddings/*.npz``, write and return ``diagnostics.json``."""
    run_dir = Path(run_dir)
    device = resolve_device(cfg.train.device)
    model = load_model(run_dir, which, device)
    ckpt = load_checkpoint(checkpoint_path(run_dir, which))
    spec = model.spec
    data = WindowDataset(np.asarray(features, dtype=np.float32), spec, device)
    has_label = np.asarray(label) >= 0
    out_dir = run_dir / "embeddings"
    out_dir.mkdir(parents=True, exist_ok=True)

    counts, reports = {}, {}
    for name, sid in SPLITS.items():
        starts = context_starts(split, sid, spec, cfg.windows.stride, anchor_mask=has_label)
        starts = even_subsample(starts, cfg.eval.max_probe_windows)
        tok = token_positions(starts.size, spec.context_patches, cfg.eval.seed + sid)
        pooled, sig = embed_windows(
            model, data, starts, tok, cfg.train.batch_size, cfg.train.bf16, token_view=sigreg_view
        )
        per_token = model.loss_cfg.sigreg_on != "pooled"
        np.savez(
            out_dir / f"{name}.npz",
            pooled=pooled,
            sigreg=sig,
            sigreg_token=tok.astype(np.int64) if per_token else np.full(starts.size, -1),
            starts=starts.astype(np.int64),
            anchors=spec.anchor(starts),
        )
        counts[name] = int(starts.size)
        if name != "train" and starts.size >= 2:
            reports[name] = {
                "probe": _tensor_report(pooled, cfg, model),
                "sigreg": _tensor_report(sig, cfg, model),
            }

    heldout = "test" if "test" in reports else "val" if "val" in reports else None
    overall = overall_verdict(reports, heldout)
    summary_path = run_dir / "pretrain.json"
    pre = read_json(summary_path) if summary_path.exists() else {}
    result = {
        "checkpoint": which,
        "checkpoint_epoch": int(ckpt["epoch"]),
        "pretrain_status": pre.get("status"),
        "pretrain_message": pre.get("message"),
        "sigreg_on": model.loss_cfg.sigreg_on,
        "sigreg_tensor": sigreg_tensor_name(model.loss_cfg),
        "pooling": model.model_cfg.pooling,
        "d_model": model.d_model,
        "windows": counts,
        "heldout_split": heldout,
        "splits": reports,
        "verdict": overall,
    }
    write_result(
        run_dir / "diagnostics.json", validate_result(result, Diagnostics, "diagnostics.json")
    )
    msg = f"verdict {overall['status']}"
    if heldout:
        p = reports[heldout]["probe"]
        msg += (
            f" on {heldout} (probe RankMe {p['rankme']:.1f}/{model.d_model}, normalized "
            f"variance {p['norm_var']:.2f})"
        )
    stage_line("diagnose", msg + f"; embedded {counts['train']}/{counts['val']}/{counts['test']}")
    return result


def sigreg_tensor_name(loss_cfg: Any) -> str:
    """What the ``sigreg`` rows of ``embeddings/*.npz`` hold, in words."""
    if loss_cfg.sigreg_on != "pooled":
        return "one token per window at a fixed random position"
    if loss_cfg.sigreg_pooling == "same":
        return "pooled embedding"
    return f"{loss_cfg.sigreg_pooling} of tokens (loss.sigreg_pooling; the probes read the pooled embedding)"


def run_diagnose(cfg: Config, prepared_dir: Path, run_dir: Path) -> dict[str, Any]:
    """The ``diagnose`` stage on a prepared dataset (reads ``checkpoints/best.pt``)."""
    data = PreparedData.load(Path(prepared_dir))
    return diagnose_arrays(cfg, data.features, data.split, data.label, Path(run_dir))

"""Pretraining throughput on CPU: windows/s and achieved FLOP/s for the cpu and seed sizes.

Times the real training step (:func:`marketjepa.train.pretrain.train_step` + AdamW) on
random features for a few steps after a warm-up. FLOPs per window are analytic
(:func:`train_flops_per_window`, matmuls and attention only, 2 FLOPs per multiply-add,
backward = 2 × forward), cross-checked against ``torch.utils.flop_counter`` on one step.

    python benchmarks/pretrain_bench.py [--steps 5] [--seed-batch 64]

The seed size runs with a small batch on CPU (its 2048 would take minutes per step);
windows/s barely depends on the batch at these sizes.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from marketjepa.config import Config, load_config
from marketjepa.data.windows import WindowDataset, WindowSpec
from marketjepa.model.jepa import LeJEPA
from marketjepa.train.batches import Batch
from marketjepa.train.pretrain import build_optimizer, train_step


def encoder_flops(n: int, patch_in: int, d: int, layers: int, ff: int) -> float:
    """Forward FLOPs of the patch encoder on ``n`` tokens of ``patch_in = P·F`` inputs.

    patch 2·n·P·F·d; per pre-LN block: QKV + output projections 2·n·4d², attention
    scores and weighted sum 2·2·n²·d, MLP 2·2·n·d·ff.
    """
    return 2 * n * patch_in * d + layers * (8 * n * d * d + 4 * n * n * d + 4 * n * d * ff)


def predictor_flops(c: int, t: int, d: int, pd: int, layers: int) -> float:
    """Forward FLOPs of the predictor: C context tokens + T queries, width pd, MLP 4·pd."""
    length = c + t
    blocks = layers * (8 * length * pd * pd + 4 * length * length * pd + 16 * length * pd * pd)
    return 2 * c * d * pd + blocks + 2 * t * pd * d


def train_flops_per_window(cfg: Config, n_features: int) -> dict[str, float]:
    """Analytic training FLOPs per window (forward + backward; EMA target forward only)."""
    w, m, lo = cfg.windows, cfg.model, cfg.loss
    pf = w.patch_len * n_features
    ctx = encoder_flops(w.context_patches, pf, m.d_model, m.n_layers, m.ff_dim)
    tgt = encoder_flops(w.target_patches, pf, m.d_model, m.n_layers, m.ff_dim)
    pred = predictor_flops(
        w.context_patches, w.target_patches, m.d_model, m.predictor_d_model, m.predictor_layers
    )
    rows = {"pooled": 1, "tokens": w.context_patches, "both": 1 + w.context_patches}
    sig = 2 * m.d_model * lo.num_slices * rows[lo.sigreg_on]
    fwd = ctx + tgt + pred + sig
    train = 3 * (ctx + pred + sig) + (1 if lo.ema else 3) * tgt
    return {"forward": fwd, "train": train}


def bench(name: str, cfg: Config, n_features: int, batch: int, steps: int) -> dict[str, float]:
    spec = WindowSpec.from_config(cfg.windows)
    rows = spec.total_len + batch * 4
    x = np.random.default_rng(0).standard_normal((rows, n_features)).astype(np.float32)
    data = WindowDataset(x, spec)
    torch.manual_seed(0)
    model = LeJEPA(n_features, spec, cfg.model, cfg.loss)
    opt = build_optimizer(model, cfg, torch.device("cpu"))
    rng = np.random.default_rng(1)
    ctx_buf = torch.empty(batch, spec.context_len, n_features)
    tgt_buf = torch.empty(batch, spec.target_len, n_features)

    def one(step: int) -> None:
        s = rng.integers(0, rows - spec.total_len, batch)
        ctx, tgt = data.context(s, out=ctx_buf), data.target(s, out=tgt_buf)
        train_step(model, model, opt, Batch(ctx, tgt), step, cfg, torch.device("cpu"))
        opt.step()
        model.update_ema()

    with FlopCounterMode(display=False) as counter:
        one(0)
    one(1)  # warm-up
    t0 = time.perf_counter()
    for i in range(steps):
        one(2 + i)
    dt = time.perf_counter() - t0
    flops = train_flops_per_window(cfg, n_features)
    wps = steps * batch / dt
    return {
        "name": name,
        "batch": batch,
        "params_M": sum(p.numel() for p in model.parameters()) / 1e6,
        "windows_per_s": wps,
        "gflop_per_window": flops["train"] / 1e9,
        "counted_gflop_per_window": counter.get_total_flops() / batch / 1e9,
        "gflops_per_s": wps * flops["train"] / 1e9,
        "step_s": dt / steps,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--seed-batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    ap.add_argument("--sizes", default="cpu,seed", help="comma-separated presets to time")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    n_features = 23
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    results = []
    batches = {"cpu": None, "seed": args.seed_batch}
    for preset in args.sizes.split(","):
        batch = batches.get(preset)
        cfg = load_config(preset, overrides=["train.device=cpu"])
        results.append(bench(preset, cfg, n_features, batch or cfg.train.batch_size, args.steps))
    hdr = (
        f"{'size':<6}{'batch':>6}{'params M':>10}{'windows/s':>11}{'GFLOP/win':>11}"
        f"{'counted':>9}{'GFLOP/s':>9}{'s/step':>8}"
    )
    print(hdr)
    for r in results:
        print(
            f"{r['name']:<6}{r['batch']:>6}{r['params_M']:>10.2f}{r['windows_per_s']:>11.0f}"
            f"{r['gflop_per_window']:>11.4f}{r['counted_gflop_per_window']:>9.4f}"
            f"{r['gflops_per_s']:>9.1f}{r['step_s']:>8.3f}"
        )
    if results[0]["name"] != "cpu":
        return
    cpu = load_config("cpu")
    windows = cpu.train.epochs * cpu.train.max_steps_per_epoch * cpu.train.batch_size
    print(
        f"cpu preset: {cpu.train.epochs} epochs x {cpu.train.max_steps_per_epoch} steps x "
        f"{cpu.train.batch_size} = {windows} windows -> "
        f"~{windows / results[0]['windows_per_s']:.0f} s of training steps (+ validation)"
    )


if __name__ == "__main__":
    main()

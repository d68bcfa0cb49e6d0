"""One-shot GPU timing of the `seed` preset's pretraining step (issue #5 performance goal).

Runs the real training step (:func:`marketjepa.train.pretrain.train_step`, AdamW, EMA
update) of the seed configuration (d=256, 6 layers, ff 2048, 30×30 patches → 30 target
patches, batch 2048, bf16 autocast) on random features shaped like the seed's data
(342,907 rows × 23 features, resident on the GPU) for a fixed number of steps, and prints
windows/s, achieved TFLOP/s, MFU against the GPU's dense bf16 peak, peak memory, and the
projected time of 20 epochs over the seed's training windows (80% of the rows).

    python benchmarks/gpu_pretrain.py [--steps 30] [--compile] [--peak-tflops 989]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pretrain_bench import train_flops_per_window  # noqa: E402

from marketjepa.config import load_config  # noqa: E402
from marketjepa.data.windows import WindowDataset, WindowSpec, pretrain_starts  # noqa: E402
from marketjepa.model.jepa import LeJEPA  # noqa: E402
from marketjepa.train.batches import Batch  # noqa: E402
from marketjepa.train.pretrain import build_optimizer, compile_model, train_step  # noqa: E402

SEED_ROWS = 342_907
N_FEATURES = 23
# Dense bf16 tensor-core peak: H100 SXM 989 TFLOP/s (H200 has the same compute).
DEFAULT_PEAK_TFLOPS = 989.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--batch", type=int, default=None, help="default: the preset's 2048")
    ap.add_argument("--preset", default="seed")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--peak-tflops", type=float, default=DEFAULT_PEAK_TFLOPS)
    ap.add_argument("--epochs", type=int, default=20)
    args = ap.parse_args()

    cfg = load_config(args.preset, overrides=[f"train.device={args.device}"])
    batch = args.batch or cfg.train.batch_size
    device = torch.device(args.device)
    spec = WindowSpec.from_config(cfg.windows)
    split = np.zeros(SEED_ROWS, np.int8)
    split[int(SEED_ROWS * cfg.split.train) :] = 1
    n_train = pretrain_starts(split, 0, spec, cfg.windows.stride).size
    x = np.random.default_rng(0).standard_normal((SEED_ROWS, N_FEATURES)).astype(np.float32)
    data = WindowDataset(x, spec, device)
    torch.manual_seed(0)
    model = LeJEPA(N_FEATURES, spec, cfg.model, cfg.loss).to(device)
    opt = build_optimizer(model, cfg, device)
    if args.compile:
        compile_model(model)
    ctx_buf = torch.empty(batch, spec.context_len, N_FEATURES, device=device)
    tgt_buf = torch.empty(batch, spec.target_len, N_FEATURES, device=device)
    rng = np.random.default_rng(1)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    def one(step: int) -> None:
        s = rng.integers(0, n_train, batch)
        ctx, tgt = data.context(s, out=ctx_buf), data.target(s, out=tgt_buf)
        train_step(model, model, opt, Batch(ctx, tgt), step, cfg, device)
        opt.step()
        model.update_ema()

    t0 = time.perf_counter()
    for i in range(args.warmup):
        one(i)
    sync()
    warm_s = time.perf_counter() - t0
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for i in range(args.steps):
        one(args.warmup + i)
    sync()
    dt = time.perf_counter() - t0

    wps = args.steps * batch / dt
    flops = train_flops_per_window(cfg, N_FEATURES)["train"]
    tflops = wps * flops / 1e12
    epoch_s = n_train / wps
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    peak_mem = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else 0.0
    print(f"device            {name}  (torch {torch.__version__}, compile={args.compile})")
    print(f"preset            {args.preset}: batch {batch}, {n_train} train windows/epoch")
    print(f"warm-up           {args.warmup} steps in {warm_s:.1f} s")
    print(f"step time         {dt / args.steps * 1e3:.1f} ms over {args.steps} steps")
    print(f"windows/s         {wps:,.0f}")
    print(f"model FLOPs       {flops / 1e9:.3f} GFLOP/window (analytic, fwd+bwd)")
    print(f"achieved          {tflops:.1f} TFLOP/s")
    print(
        f"MFU               {100 * tflops / args.peak_tflops:.1f}% of {args.peak_tflops:g} TFLOP/s bf16"
    )
    print(f"peak memory       {peak_mem:.2f} GiB")
    print(
        f"projected         {args.epochs} epochs = {args.epochs * epoch_s / 60:.1f} min "
        f"({epoch_s:.1f} s/epoch, training steps only; goal <= 3 min on one H100)"
    )


if __name__ == "__main__":
    main()

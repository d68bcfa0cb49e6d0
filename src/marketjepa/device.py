"""The one place that turns a ``train.device`` setting into a torch device, and the one
mixed-precision context every forward pass uses (training, diagnostics, embeddings)."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch

from marketjepa.errors import MarketJepaError


def resolve_device(pref: str, local_rank: int = 0) -> torch.device:
    """``auto`` → CUDA when available, else CPU; ``cuda`` without a GPU is an error.

    Under torchrun each process takes the GPU of its ``local_rank``.
    """
    if pref == "cuda" or (pref == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise MarketJepaError("train.device=cuda but no CUDA GPU is available")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    if pref not in ("auto", "cpu"):
        return torch.device(pref)
    return torch.device("cpu")


def autocast_ctx(device: torch.device, bf16: bool) -> AbstractContextManager:
    """bf16 autocast on CUDA when ``train.bf16``; fp32 otherwise (CPU bf16 is slower here)."""
    if device.type == "cuda" and bf16:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()

"""The one embedding loop: context windows → float32 rows (batched, no grad, eval mode).

Every frozen representation (diagnose's embeddings, the random-init / supervised /
fine-tuned encoders of the probes, the live signal) goes through :func:`embed_batches`,
under the same :func:`marketjepa.device.autocast_ctx` as training, so all rows of one
probe table share one precision (bf16 autocast on CUDA with ``train.bf16``, fp32 on CPU).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from marketjepa.data.windows import WindowDataset, iterate_batches
from marketjepa.device import autocast_ctx

# (model, context batch [b, L, F], positions of the batch in ``starts``) → output tensors
Head = Callable[[nn.Module, torch.Tensor, np.ndarray], tuple[torch.Tensor, ...]]
# (all tokens flattened [b·T, d], b, token positions [b]) → one row per window [b, d]
TokenView = Callable[[torch.Tensor, int, torch.Tensor], torch.Tensor]


@torch.no_grad()
def embed_batches(
    model: nn.Module,
    dataset: WindowDataset,
    starts: np.ndarray,
    batch_size: int,
    bf16: bool,
    head: Head,
    widths: tuple[int, ...],
) -> tuple[np.ndarray, ...]:
    """Run ``head`` over the windows at ``starts`` in batches; one float32 array per output.

    ``widths`` are the output widths, used for the ``[0, width]`` arrays of an empty
    ``starts``. The model is put in eval mode (and back to its previous mode afterwards).
    """
    starts = np.asarray(starts, dtype=np.int64)
    was_training = model.training
    model.eval().to(dataset.device)
    parts: list[list[np.ndarray]] = [[] for _ in widths]
    positions = np.arange(starts.size)
    try:
        for chunk in iterate_batches(positions, batch_size):
            with autocast_ctx(dataset.device, bf16):
                outs = head(model, dataset.context(starts[chunk]), chunk)
            for acc, t in zip(parts, outs, strict=True):
                acc.append(t.float().cpu().numpy())
    finally:
        model.train(was_training)
    return tuple(
        np.concatenate(acc).astype(np.float32) if acc else np.empty((0, w), np.float32)
        for acc, w in zip(parts, widths, strict=True)
    )


def encoder_embeddings(
    encoder: nn.Module,
    dataset: WindowDataset,
    starts: np.ndarray,
    batch_size: int = 1024,
    pooling: str | None = None,
    bf16: bool = True,
) -> np.ndarray:
    """Pooled embeddings ``[n, d]`` of a :class:`~marketjepa.model.encoder.PatchEncoder`.

    ``pooling=None`` uses the encoder's own ``pool``; ``"mean"``/``"last"`` pool tokens
    explicitly (to evaluate both poolings of one encoder).
    """
    if pooling not in (None, "mean", "last"):
        raise ValueError(f"unknown pooling {pooling!r}")

    def head(enc: nn.Module, x: torch.Tensor, _: np.ndarray) -> tuple[torch.Tensor]:
        return (enc.pool(enc(x), pooling),)  # PatchEncoder.pool: None = its own pooling

    (out,) = embed_batches(encoder, dataset, starts, batch_size, bf16, head, (encoder.d_model,))
    return out


def embed_windows(
    model: nn.Module,
    data: WindowDataset,
    starts: np.ndarray,
    token_pos: np.ndarray,
    batch_size: int,
    bf16: bool = True,
    token_view: TokenView | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``(pooled [n, d], sigreg [n, d])`` of a LeJEPA model (``model.embed``).

    ``sigreg`` is ``token_view(tokens, b, token_pos)`` — the per-token tensor SIGReg sees,
    one token per window — when ``token_view`` is given and the model regularizes tokens
    (``loss.sigreg_on != "pooled"``); otherwise the pooled tensor SIGReg regularizes
    (``LeJEPA.sigreg_pooled``: the probed rows again unless ``loss.sigreg_pooling`` differs).
    """
    per_token = token_view is not None and model.loss_cfg.sigreg_on != "pooled"
    d = model.d_model
    token_pos = np.asarray(token_pos, dtype=np.int64)

    def head(m: nn.Module, x: torch.Tensor, pos: np.ndarray) -> tuple[torch.Tensor, ...]:
        p, tokens = m.embed(x)
        if not per_token:
            return p, m.sigreg_pooled(p, tokens)
        view = token_view(
            tokens.float().reshape(-1, d), p.shape[0], torch.as_tensor(token_pos[pos])
        )
        return p, view

    return embed_batches(model, data, starts, batch_size, bf16, head, (d, d))

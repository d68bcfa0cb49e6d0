"""Zero-copy windows over one contiguous float32 feature array (DESIGN §2.3).

A window starting at row ``s`` covers ``[s, s + L)`` with ``L = (C + G + T) · P``::

    context  rows [s,             s + C·P)          C patches of P bars
    gap      rows [s + C·P,       s + (C+G)·P)      G patches, skipped
    target   rows [s + (C+G)·P,   s + L)            T patches

The *anchor* of a window is its last context bar ``s + C·P − 1``: the embedding is "as
of" that bar, and probe/policy labels are read there. Windows are start indices only;
a batch is one gather from the shared array (on GPU the array lives on the device and
the gather runs there). Rows are consecutive regular-session minutes, so a window may
cross a day boundary (overnight is one step) but never a split boundary.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from marketjepa.config import WindowConfig


@dataclass(frozen=True)
class WindowSpec:
    patch_len: int
    context_patches: int
    gap_patches: int
    target_patches: int

    @classmethod
    def from_config(cls, cfg: WindowConfig) -> WindowSpec:
        return cls(cfg.patch_len, cfg.context_patches, cfg.gap_patches, cfg.target_patches)

    @property
    def context_len(self) -> int:
        return self.context_patches * self.patch_len

    @property
    def gap_len(self) -> int:
        return self.gap_patches * self.patch_len

    @property
    def target_len(self) -> int:
        return self.target_patches * self.patch_len

    @property
    def total_len(self) -> int:
        return self.context_len + self.gap_len + self.target_len

    def anchor(self, starts: np.ndarray) -> np.ndarray:
        """Row index of the last context bar of each window."""
        return np.asarray(starts, dtype=np.int64) + self.context_len - 1


def _runs(split_ids: np.ndarray, split: int) -> list[tuple[int, int]]:
    """Maximal half-open row ranges [a, b) where ``split_ids == split``."""
    mask = np.asarray(split_ids) == split
    if not mask.any():
        return []
    padded = np.concatenate([[False], mask, [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist(), strict=True))


def valid_starts(split_ids: np.ndarray, split: int, length: int, stride: int = 1) -> np.ndarray:
    """Start rows of every length-``length`` window lying wholly inside one run of ``split``.

    ``stride`` keeps every stride-th start of each run (cheap presets).
    """
    if length < 1 or stride < 1:
        raise ValueError(f"length and stride must be >= 1 (got {length}, {stride})")
    parts = [
        np.arange(a, b - length + 1, stride, dtype=np.int64) for a, b in _runs(split_ids, split)
    ]
    parts = [p for p in parts if p.size]
    return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)


def pretrain_starts(
    split_ids: np.ndarray, split: int, spec: WindowSpec, stride: int = 1
) -> np.ndarray:
    """Starts of full context+gap+target windows inside ``split``."""
    return valid_starts(split_ids, split, spec.total_len, stride)


def context_starts(
    split_ids: np.ndarray,
    split: int,
    spec: WindowSpec,
    stride: int = 1,
    anchor_mask: np.ndarray | None = None,
) -> np.ndarray:
    """Starts of context-only windows inside ``split`` (for embedding/probing).

    ``anchor_mask`` (bool per row) keeps only windows whose anchor row is True, e.g.
    rows that have a label.
    """
    starts = valid_starts(split_ids, split, spec.context_len, stride)
    if anchor_mask is not None and starts.size:
        starts = starts[np.asarray(anchor_mask, dtype=bool)[spec.anchor(starts)]]
    return starts


class WindowDataset:
    """Windows as gathers from one shared ``[N, F]`` float32 tensor.

    Holds the feature array once (moved to ``device`` once) plus nothing per window;
    :meth:`context` and :meth:`target` gather ``[B, L, F]`` batches for given starts.
    """

    def __init__(
        self,
        features: np.ndarray | torch.Tensor,
        spec: WindowSpec,
        device: str | torch.device = "cpu",
    ) -> None:
        x = torch.as_tensor(features, dtype=torch.float32)
        if x.ndim != 2:
            raise ValueError(f"features must be [N, F], got shape {tuple(x.shape)}")
        self.x = x.contiguous().to(device)
        self.spec = spec
        self.device = self.x.device
        # Overlapping views (no copy): row s of each is the contiguous block of one window's
        # context / target, so a batch is one index_select of whole blocks.
        self._ctx_view = self._blocks(0, spec.context_len)
        self._tgt_view = self._blocks(spec.context_len + spec.gap_len, spec.target_len)
        self._gap_view = self._blocks(spec.context_len, spec.gap_len)

    def _blocks(self, offset: int, length: int) -> torch.Tensor:
        n, f = self.x.shape
        count = max(n - offset - length + 1, 0)
        return self.x.as_strided(
            (count, length, f), (f, f, 1), self.x.storage_offset() + offset * f
        )

    @property
    def n_rows(self) -> int:
        return int(self.x.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.x.shape[1])

    def _gather(
        self, starts: np.ndarray | torch.Tensor, view: torch.Tensor, out: torch.Tensor | None
    ) -> torch.Tensor:
        s = torch.as_tensor(starts, dtype=torch.long, device=self.device)
        if out is not None:
            return torch.index_select(view, 0, s, out=out)
        return torch.index_select(view, 0, s)

    def context(
        self, starts: np.ndarray | torch.Tensor, out: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``[B, C·P, F]`` context bars of each window.

        ``out`` (a ``[B, C·P, F]`` float32 tensor on the device) is reused instead of a
        fresh allocation — much faster on CPU, where a new 100+ MB batch pays page
        faults; the caller must be done with the previous batch held in it.
        """
        return self._gather(starts, self._ctx_view, out)

    def target(
        self, starts: np.ndarray | torch.Tensor, out: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``[B, T·P, F]`` target bars of each window (after the gap); ``out`` as in
        :meth:`context`."""
        return self._gather(starts, self._tgt_view, out)

    def gap(
        self, starts: np.ndarray | torch.Tensor, out: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``[B, G·P, F]`` gap bars between context and target (the full-sequence target
        path encodes them); ``out`` as in :meth:`context`."""
        return self._gather(starts, self._gap_view, out)

    def batch(self, starts: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.context(starts), self.target(starts)

    def nbytes(self) -> int:
        return self.x.element_size() * self.x.nelement()


def iterate_batches(
    starts: np.ndarray,
    batch_size: int,
    shuffle: bool = False,
    generator: np.random.Generator | None = None,
):
    """Yield slices of ``starts`` of at most ``batch_size`` (optionally shuffled)."""
    order = starts
    if shuffle:
        rng = generator or np.random.default_rng()
        order = starts[rng.permutation(starts.size)]
    for i in range(0, order.size, batch_size):
        yield order[i : i + batch_size]


def even_positions(n: int, cap: int) -> np.ndarray:
    """At most ``cap`` positions spread evenly over ``range(n)`` (all of them if ``cap`` ≤ 0
    or ``n`` ≤ ``cap``); distinct and increasing."""
    if cap <= 0 or n <= cap:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, cap).round().astype(np.int64))


def even_subsample(items: np.ndarray, cap: int) -> np.ndarray:
    """At most ``cap`` evenly spaced elements of ``items`` (all if ``cap`` ≤ 0)."""
    return items[even_positions(items.size, cap)]

"""Window index tables and zero-copy gathers (DESIGN §2.3)."""

import numpy as np
import pytest
import torch

from marketjepa.config import WindowConfig
from marketjepa.data.windows import (
    WindowDataset,
    WindowSpec,
    context_starts,
    iterate_batches,
    pretrain_starts,
    valid_starts,
)

SPEC = WindowSpec(patch_len=3, context_patches=4, gap_patches=1, target_patches=2)  # L = 21


def _splits():
    # train 100 rows, embargo 10, val 50, embargo 5, test 40
    return np.r_[np.zeros(100), -np.ones(10), np.ones(50), -np.ones(5), 2 * np.ones(40)].astype(
        np.int8
    )


def test_spec_lengths_and_anchor():
    spec = WindowSpec.from_config(WindowConfig())  # seed: 30 × 30 → 30, no gap
    assert (spec.context_len, spec.gap_len, spec.target_len, spec.total_len) == (900, 0, 900, 1800)
    assert (SPEC.context_len, SPEC.gap_len, SPEC.target_len, SPEC.total_len) == (12, 3, 6, 21)
    assert SPEC.anchor(np.array([0, 5])).tolist() == [11, 16]


def test_first_and_last_valid_starts():
    sp = _splits()
    tr = pretrain_starts(sp, 0, SPEC)
    assert tr[0] == 0 and tr[-1] == 100 - 21 and tr.size == 80
    va = pretrain_starts(sp, 1, SPEC)
    assert va[0] == 110 and va[-1] == 160 - 21
    te = pretrain_starts(sp, 2, SPEC, stride=4)
    assert te[0] == 165 and (np.diff(te) == 4).all() and te[-1] <= 205 - 21
    ctx = context_starts(sp, 0, SPEC)
    assert ctx[-1] == 100 - 12  # context-only windows reach further
    mask = np.zeros(sp.size, bool)
    mask[[11, 50]] = True
    assert context_starts(sp, 0, SPEC, anchor_mask=mask).tolist() == [0, 39]
    assert pretrain_starts(np.zeros(10, np.int8), 0, SPEC).size == 0  # shorter than a window


@pytest.mark.parametrize("seed", range(5))
def test_no_window_crosses_a_split(seed):
    rng = np.random.default_rng(seed)
    sp = np.repeat(rng.integers(-1, 3, 40), rng.integers(1, 60, 40)).astype(np.int8)
    for s in (0, 1, 2):
        for stride in (1, 3):
            st = pretrain_starts(sp, s, SPEC, stride)
            rows = st[:, None] + np.arange(SPEC.total_len)[None, :]
            assert (sp[rows] == s).all()
            # every admissible start is found when stride = 1
            if stride == 1:
                ok = [
                    i
                    for i in range(sp.size - SPEC.total_len + 1)
                    if (sp[i : i + SPEC.total_len] == s).all()
                ]
                assert st.tolist() == ok


def test_gather_equals_explicit_slicing():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(205, 4)).astype(np.float32)
    ds = WindowDataset(x, SPEC)
    starts = pretrain_starts(_splits(), 0, SPEC)[[0, 7, -1]]
    ctx, tgt = ds.batch(starts)
    assert ctx.shape == (3, 12, 4) and tgt.shape == (3, 6, 4) and ctx.dtype == torch.float32
    for b, s in enumerate(starts):
        np.testing.assert_array_equal(ctx[b].numpy(), x[s : s + 12])
        np.testing.assert_array_equal(tgt[b].numpy(), x[s + 15 : s + 21])
    assert ds.context(torch.as_tensor(starts)).shape == (3, 12, 4)
    assert ds.context(np.empty(0, np.int64)).shape == (0, 12, 4)
    # a reused output buffer gives the same batch
    buf = torch.empty(3, 6, 4)
    assert ds.target(starts, out=buf).data_ptr() == buf.data_ptr()
    assert torch.equal(buf, tgt)
    last = 205 - SPEC.total_len
    assert ds.target([last]).shape == (1, 6, 4) and ds.context([205 - 12]).shape == (1, 12, 4)
    with pytest.raises(IndexError):
        ds.target([last + 1])  # would run past the array


def test_memory_is_o_bars():
    x = np.random.default_rng(1).normal(size=(50_000, 23)).astype(np.float32)
    ds = WindowDataset(x, SPEC)
    assert ds.x.data_ptr() == x.ctypes.data  # float32 C-contiguous input: shared, not copied
    storages = {
        v.untyped_storage().data_ptr(): v.untyped_storage().nbytes()
        for v in vars(ds).values()
        if isinstance(v, torch.Tensor)
    }
    held = sum(storages.values())  # views of the array share its storage
    assert held <= x.nbytes + 8 * SPEC.total_len * 2
    # a float64 input is converted once, to float32 (never one copy per window)
    ds64 = WindowDataset(x.astype(np.float64), SPEC)
    assert ds64.nbytes() == x.nbytes
    # the start table is 8 bytes per window, far below a materialized window tensor
    st = pretrain_starts(np.zeros(x.shape[0], np.int8), 0, SPEC)
    assert st.nbytes <= 8 * x.shape[0]


def test_iterate_batches_covers_every_start_once():
    st = np.arange(1000)
    got = np.concatenate(
        list(iterate_batches(st, 128, shuffle=True, generator=np.random.default_rng(0)))
    )
    assert sorted(got.tolist()) == st.tolist() and not np.array_equal(got, st)
    assert [b.size for b in iterate_batches(st, 300)] == [300, 300, 300, 100]
    with pytest.raises(ValueError):
        valid_starts(np.zeros(5), 0, 0)

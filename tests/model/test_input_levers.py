"""Issue #12 input levers: excluded channels (encoder / target path) and session-aware attention."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers.tiny import TINY_MODEL, ar1_features, small_model_cfg
from marketjepa.config import ConfigError, LossConfig, ModelConfig, load_config
from marketjepa.data.windows import WindowSpec
from marketjepa.errors import MarketJepaError
from marketjepa.model.encoder import PatchEncoder
from marketjepa.model.inputs import bar_sessions, channel_indices
from marketjepa.model.jepa import LeJEPA
from marketjepa.train.checkpoint import load_model
from marketjepa.train.pretrain import train_lejepa

NAMES = ["ret_1", "tod_sin", "volume_z", "tod_cos", "minutes_to_close", "skew_25d"]
CALENDAR = [1, 3, 4]
NF = len(NAMES)
SPEC = WindowSpec(patch_len=4, context_patches=5, gap_patches=1, target_patches=3)
CLOCK = NAMES.index("minutes_to_close")
OPEN = 7  # first bar of the second session in the context window (inside patch 1)


def _window(b: int = 3, length: int = SPEC.context_len, open_at: int = OPEN) -> torch.Tensor:
    """Random features; the clock falls by one step a bar and jumps up at ``open_at``."""
    x = torch.randn(b, length, NF, generator=torch.Generator().manual_seed(0))
    t = torch.arange(length, dtype=torch.float32)
    x[:, :, CLOCK] = torch.where(t < open_at, (open_at - 1 - t) * 0.01, 1.0 - (t - open_at) * 0.01)
    return x


def _perturbed(x: torch.Tensor, rows: slice, cols: list[int]) -> torch.Tensor:
    y = x.clone()
    y[:, rows, cols] += 3.0 * torch.randn_like(y[:, rows, cols])
    return y


def test_channel_selectors_are_names_or_groups_and_unknown_ones_are_errors():
    assert channel_indices(["calendar"], NAMES, "opt") == CALENDAR
    assert channel_indices(["calendar", "ret_1"], NAMES, "opt") == [0, *CALENDAR]
    assert channel_indices([], None, "opt") == []
    with pytest.raises(MarketJepaError, match="opt: 'rv_10' matches no input feature"):
        channel_indices(["rv_10"], NAMES, "opt")
    with pytest.raises(MarketJepaError, match="'options' matches no input feature"):
        channel_indices(["options"], ["ret_1", "tod_sin"], "opt")
    with pytest.raises(MarketJepaError, match="needs the run's feature names"):
        channel_indices(["calendar"], None, "opt")


def test_input_exclude_removes_the_channels_from_every_token():
    torch.manual_seed(0)
    enc = PatchEncoder(NF, SPEC, small_model_cfg(input_exclude=["calendar"]), feature_names=NAMES)
    x = _window()
    with torch.no_grad():
        base = enc.eval()(x)
        torch.testing.assert_close(enc(_perturbed(x, slice(None), CALENDAR)), base)
        assert (enc(_perturbed(x, slice(None), [0])) - base).abs().amax() > 1e-3
        # teeth: the same encoder without the option reads the calendar channels
        torch.manual_seed(0)
        full = PatchEncoder(NF, SPEC, small_model_cfg()).eval()
        assert (full(_perturbed(x, slice(None), CALENDAR)) - full(x)).abs().amax() > 1e-3


@pytest.mark.parametrize("path", ["separate", "sequence"])
def test_target_exclude_zeroes_channels_on_the_target_path_only(path):
    loss = LossConfig(num_slices=8, ema=False, target_path=path, target_exclude=["calendar"])
    torch.manual_seed(0)
    m = LeJEPA(NF, SPEC, small_model_cfg(causal=True), loss, NAMES).eval()
    ctx = _window()
    gap = torch.randn(3, SPEC.gap_len, NF)
    tgt = torch.randn(3, SPEC.target_len, NF)
    everywhere = slice(None)
    with torch.no_grad():
        t0 = m.encode_target(tgt, ctx, gap)
        t1 = m.encode_target(
            _perturbed(tgt, everywhere, CALENDAR),
            _perturbed(ctx, everywhere, CALENDAR),
            _perturbed(gap, everywhere, CALENDAR),
        )
        torch.testing.assert_close(t1, t0)
        assert (
            m.encode_target(_perturbed(tgt, everywhere, [0]), ctx, gap) - t0
        ).abs().amax() > 1e-3
        # the context encoder still reads the calendar channels
        z0 = m.embed(ctx)[0]
        assert (m.embed(_perturbed(ctx, everywhere, CALENDAR))[0] - z0).abs().amax() > 1e-3


def test_bar_sessions_number_every_open_in_the_window():
    clock = torch.tensor([[0.5, 0.4, 0.3, 1.0, 0.9, 0.2, 0.0, 0.0]])
    # the last bar: a one-bar session opens at 0 right after a close at 0
    assert bar_sessions(clock).tolist() == [[0, 0, 0, 1, 1, 1, 1, 2]]


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("positions", ["learned", "rotary"])
def test_session_mask_ignores_every_bar_before_the_last_open(causal, positions):
    cfg = small_model_cfg(session_mask=True, causal=causal, positions=positions)
    torch.manual_seed(0)
    enc = PatchEncoder(NF, SPEC, cfg, feature_names=NAMES).eval()
    x = _window()
    others = [c for c in range(NF) if c != CLOCK]
    earlier = _perturbed(x, slice(0, OPEN), others)  # every bar of the previous session
    with torch.no_grad():
        a, b = enc(x), enc(earlier)
        # patches 1-4 end in the new session: their tokens (the last one is the embedding)
        # do not move, though patch 1 holds three bars of the old session
        torch.testing.assert_close(a[:, 1:], b[:, 1:])
        assert (a[:, 0] - b[:, 0]).abs().amax() > 1e-3  # patch 0 is the old session's
        later = _perturbed(x, slice(OPEN, OPEN + 1), others)
        assert (enc(later)[:, -1] - a[:, -1]).abs().amax() > 1e-3
        # teeth: without the mask the old session reaches the last token
        torch.manual_seed(0)
        plain = PatchEncoder(NF, SPEC, small_model_cfg(causal=causal, positions=positions)).eval()
        assert (plain(earlier)[:, -1] - plain(x)[:, -1]).abs().amax() > 1e-3
        # one session in the window: the mask is no mask at all
        one = _window(open_at=0)
        plain.load_state_dict(enc.state_dict())
        torch.testing.assert_close(enc(one), plain(one))


def test_session_mask_needs_the_clock_channel_and_last_token_pooling():
    with pytest.raises(MarketJepaError, match="minutes_to_close"):
        PatchEncoder(NF, SPEC, small_model_cfg(session_mask=True), feature_names=NAMES[:4])
    with pytest.raises(ValueError, match="model.pooling=last"):
        ModelConfig(session_mask=True, pooling="mean")
    with pytest.raises(ConfigError, match="pooling=last"):
        load_config("tiny", overrides=["model.session_mask=true", "model.pooling=mean"])


def test_input_levers_survive_the_checkpoint(tmp_path):
    """Pretraining stores the feature names; load_model rebuilds the same masks."""
    rng = np.random.default_rng(0)
    n = 600
    x = ar1_features(rng, n, NF)
    x[:, CLOCK] = 1.0 - (np.arange(n) % 60) / 59.0  # sessions of 60 bars
    split = np.zeros(n, np.int8)
    split[450:] = 1
    cfg = load_config(
        "tiny",
        overrides=[
            *TINY_MODEL,
            "train.batch_size=16",
            "train.epochs=1",
            "train.max_steps_per_epoch=2",
            "train.device=cpu",
            "model.input_exclude=[calendar]",
            "model.session_mask=true",
            "loss.target_exclude=[ret_1]",
        ],
    )
    seen = {}

    def keep(epoch, row, model):
        model.eval()
        with torch.no_grad():
            seen["z"] = model.embed(torch.as_tensor(x[None, 40:56]))[0].clone()

    train_lejepa(cfg, x, split, tmp_path, on_epoch_end=keep, feature_names=NAMES)
    model = load_model(tmp_path, "best")
    assert model.encoder.session_column == CLOCK
    assert model.encoder.input_keep.tolist() == [1, 0, 1, 0, 0, 1]
    assert model.target_keep.tolist() == [0, 1, 1, 1, 1, 1]
    with torch.no_grad():
        torch.testing.assert_close(model.embed(torch.as_tensor(x[None, 40:56]))[0], seen["z"])
    with pytest.raises(MarketJepaError, match="needs the run's feature names"):
        train_lejepa(cfg, x, split, tmp_path / "no_names")

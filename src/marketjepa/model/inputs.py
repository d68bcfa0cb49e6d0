"""What the encoder reads of a window: excluded input channels and session boundaries.

Both are model options of issue #12 that depend on the run's feature list, so they are
resolved from the feature names once, when a model is built:

* **Channel exclusion** (``model.input_exclude``, ``loss.target_exclude``): each entry is
  a feature name or a feature group (``calendar``, ``stock``, ``options``, see
  :mod:`marketjepa.data.features`); the selected columns are multiplied by 0 before the
  patch embedding. A zeroed channel is a removed one for the (linear) patch embedding,
  and 0 is what normalization writes for "no information" (the train median).
* **Session ids** (``model.session_mask``): the ``minutes_to_close`` channel strictly
  decreases within a session (one step per bar) and jumps up at every open (to 1 at a
  full day's open, to > 0 at a half day's; the last bar of any session is 0), so
  ``x[t] ≥ x[t−1]`` marks the first bar of a new session. Normalization is a
  positive-scale affine map, which keeps the order. Ingest fills every session to the
  calendar's grid, so an open is never hidden by a missing run of bars. Reading the
  boundary from the window itself means every caller of the encoder (pretraining,
  probes, the policy, serving) applies the same mask without passing session ids.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from marketjepa.data.features import FEATURES
from marketjepa.errors import MarketJepaError

SESSION_CLOCK = "minutes_to_close"
GROUPS = ("stock", "options", "calendar")


def channel_indices(selectors: Sequence[str], feature_names: Sequence[str] | None, option: str):
    """Column indices of ``feature_names`` named by ``selectors`` (names or group names).

    ``option`` names the config key in errors. A selector that matches no column of this
    run (an unknown name, or a group with no feature here) is an error, not a no-op.
    """
    if not selectors:
        return []
    if feature_names is None:
        raise MarketJepaError(
            f"{option}={list(selectors)} needs the run's feature names to find the columns"
        )
    names = list(feature_names)
    out: set[int] = set()
    for sel in selectors:
        if sel in GROUPS:
            cols = [i for i, n in enumerate(names) if n in FEATURES and FEATURES[n].group == sel]
        else:
            cols = [names.index(sel)] if sel in names else []
        if not cols:
            raise MarketJepaError(
                f"{option}: {sel!r} matches no input feature; use a feature name or a group "
                f"({', '.join(GROUPS)}); the features are {names}"
            )
        out.update(cols)
    return sorted(out)


def keep_mask(
    selectors: Sequence[str], feature_names: Sequence[str] | None, n_features: int, option: str
) -> Tensor | None:
    """``[F]`` float mask, 0 on excluded columns (``None`` when nothing is excluded)."""
    idx = channel_indices(selectors, feature_names, option)
    if not idx:
        return None
    keep = torch.ones(n_features)
    keep[idx] = 0.0
    return keep


def only_mask(
    selectors: Sequence[str], feature_names: Sequence[str] | None, n_features: int, option: str
) -> Tensor:
    """``[F]`` float mask, 1 on the columns named by ``selectors`` and 0 elsewhere."""
    keep = torch.zeros(n_features)
    keep[channel_indices(selectors, feature_names, option)] = 1.0
    return keep


def session_clock_column(feature_names: Sequence[str] | None) -> int:
    """Index of the ``minutes_to_close`` channel (``model.session_mask`` needs it)."""
    if feature_names is None or SESSION_CLOCK not in feature_names:
        raise MarketJepaError(
            f"model.session_mask reads session opens from the {SESSION_CLOCK!r} feature; "
            f"add it to features.names (features: {list(feature_names or [])})"
        )
    return list(feature_names).index(SESSION_CLOCK)


def bar_sessions(clock: Tensor) -> Tensor:
    """Session id of every bar of ``clock [B, L]`` (the ``minutes_to_close`` channel):
    0 for the window's first session, +1 at every open inside the window."""
    opens = torch.zeros_like(clock, dtype=torch.long)
    opens[:, 1:] = (clock[:, 1:] >= clock[:, :-1]).long()
    return opens.cumsum(dim=1)

"""Cross-channel view invariance: the LeJEPA multi-view term over groups of input channels.

LeJEPA (Balestriero & LeCun 2025, eq. 2 and the reference ``lejepa`` loss) trains an
encoder so that the embeddings of several *views* of one sample agree with their mean
while SIGReg keeps the embedding isotropic Gaussian::

    z̄_b   = (1/V) Σ_v z_{b,v}
    L_inv = 1/(B·V·d) Σ_b Σ_v ‖z_{b,v} − z̄_b‖²

In images the views are crops. Here a view of a context window is the window with only
some input channels kept (the others zeroed, as ``model.input_exclude`` does): view 0 is
the full window (the embedding the probes read), views 1…V−1 keep one channel group each
(by default the stock bars and the option summary). What two channel groups of one
window have in common is what drives both — their shared causes: the volatility level and
a hidden market state that moves the stock's drift and volume *and* the options' skew and
put/call volume — while what is private to a group (its own measurement noise, time of
day when calendar channels are in no view) cannot be matched from the other group and is
pushed out of the agreed embedding. This is the multi-view (CCA) route to a common latent;
SIGReg on the full view keeps the solution from collapsing to a constant.
"""

from __future__ import annotations

from torch import Tensor


def view_invariance_loss(views: Tensor) -> Tensor:
    """Mean squared distance of each view's embedding to the views' mean (scalar).

    ``views [B, V, d]`` with ``V >= 2``; see the module docstring for the formula.
    """
    if views.ndim != 3 or views.shape[1] < 2:
        raise ValueError(f"views must be [B, V, d] with V >= 2, got {tuple(views.shape)}")
    v = views.float()
    return (v - v.mean(dim=1, keepdim=True)).square().mean()

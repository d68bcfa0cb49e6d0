"""Temporal-coherence (slowness) auxiliary over the context tokens of a causal encoder.

Slow feature analysis (Wiskott & Sejnowski 2002, "Slow Feature Analysis", eq. 1–4)
minimizes the mean squared time derivative ⟨ż²⟩ of unit-variance, decorrelated outputs;
"temporal coherence" (Mobahi, Collobert & Weston 2009) uses the same penalty as an
auxiliary of a deep network. Here the outputs are the context tokens: with causal
attention token ``i`` is a filter of the window up to patch ``i``, so for a lag of ``k``
patches::

    L_slow = 1/(B·(C−k)·d) Σ_b Σ_{i ≥ k} ‖z_{b,i} − z_{b,i−k}‖²

rewards tokens whose value changes little when ``k`` more patches of evidence arrive —
state that persists over ``k·P`` bars (the hidden regime, slow volatility) — over what is
new in every patch (the last bars' returns). SIGReg supplies the unit-variance,
decorrelated constraint that keeps the minimizer from being a constant.
"""

from __future__ import annotations

from torch import Tensor


def slowness_loss(tokens: Tensor, lag: int = 1) -> Tensor:
    """Mean squared change of the tokens ``[B, C, d]`` over ``lag`` positions (scalar)."""
    if tokens.ndim != 3:
        raise ValueError(f"tokens must be [B, C, d], got {tuple(tokens.shape)}")
    if not 1 <= lag < tokens.shape[1]:
        raise ValueError(f"slowness lag {lag} must be in [1, {tokens.shape[1] - 1}]")
    diff = tokens[:, lag:].float() - tokens[:, :-lag].float()
    return diff.square().mean()

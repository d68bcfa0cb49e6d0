"""Baseline representations for the probe table (DESIGN §4, issue #6).

Every builder returns one matrix row per window anchor (the window's last context bar),
so all representations are probed on identical rows:

- ``raw_window``: the last patch of raw (normalized) features plus mean and std of each
  feature over several trailing lengths of the context window, by cumulative sums.
- ``har_rv``: HAR-RV regressors (Corsi 2009) — log realized vol over the trailing
  1, 5 and 22 days of bars — for the forward-vol target.
- ``random_init``: the pretrained model's encoder architecture, untrained (fixed seed).
- ``supervised``: the same architecture plus a linear head, trained end-to-end on the
  3-class entry label (class-weighted, early-stopped on validation days).
- ``lejepa_finetuned``: the same training, starting from the pretrained LeJEPA encoder.
- ``oracle_latent`` / ``oracle_filter`` (synthetic data): one-hot true regime at the
  anchor, and the Bayes-filter posterior with true parameters.

Everything here is causal: a row uses bars up to and including its anchor only.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from marketjepa.config import ModelConfig
from marketjepa.data.windows import WindowDataset, WindowSpec, iterate_batches
from marketjepa.evaluate.scoring import balanced_accuracy
from marketjepa.model.embedding import encoder_embeddings  # noqa: F401  (re-exported)
from marketjepa.model.encoder import PatchEncoder

DEFAULT_TRAILING = (30, 120, 240)
HAR_DAYS = (1, 5, 22)
BARS_PER_DAY = 390  # XNYS; the probes pass the calendar's session length


def trailing_lengths(context_len: int, requested: Sequence[int] = DEFAULT_TRAILING) -> list[int]:
    """Trailing lengths used by :func:`raw_window_features`: those ≤ the context, plus it."""
    out = sorted({int(n) for n in requested if 1 <= n <= context_len} | {int(context_len)})
    return out


def _prefix_sums(x: np.ndarray) -> np.ndarray:
    """``S[i] = Σ_{j<i} x[j]`` with a leading zero row, in float64 (window sums by difference)."""
    s = np.zeros((x.shape[0] + 1, *x.shape[1:]), dtype=np.float64)
    np.cumsum(x, axis=0, dtype=np.float64, out=s[1:])
    return s


def raw_window_features(
    features: np.ndarray,
    anchors: np.ndarray,
    patch_len: int,
    context_len: int,
    lengths: Sequence[int] | None = None,
) -> np.ndarray:
    """Last patch plus trailing means/stds of the context window, per anchor.

    For anchor ``a`` and trailing length ``L`` (rows ``(a−L, a]``, all inside the context
    window ``[a−C·P+1, a]``), with prefix sums ``S1``/``S2`` of ``x`` and ``x²``::

        mean_L = (S1[a+1] − S1[a+1−L]) / L
        std_L  = sqrt(max((S2[a+1] − S2[a+1−L]) / L − mean_L², 0))

    Output columns: ``patch_len·F`` last-patch values (oldest bar first), then for each
    length in ascending order ``F`` means and ``F`` stds. No per-window Python loop.
    """
    x = np.asarray(features, dtype=np.float32)
    a = np.asarray(anchors, dtype=np.int64)
    if x.ndim != 2:
        raise ValueError(f"features must be [N, F], got {x.shape}")
    if patch_len > context_len:
        raise ValueError(f"patch_len {patch_len} exceeds context_len {context_len}")
    if a.size and (a.min() - context_len + 1 < 0 or a.max() >= x.shape[0]):
        raise ValueError("an anchor's context window falls outside the feature array")
    lengths = trailing_lengths(context_len, lengths or DEFAULT_TRAILING)
    n, f = a.size, x.shape[1]
    last = x[a[:, None] + np.arange(-patch_len + 1, 1)[None, :]].reshape(n, patch_len * f)
    s1 = _prefix_sums(x)
    s2 = _prefix_sums(np.square(x, dtype=np.float64))
    blocks = [last.astype(np.float32)]
    for length in lengths:
        m = (s1[a + 1] - s1[a + 1 - length]) / length
        v = (s2[a + 1] - s2[a + 1 - length]) / length - m**2
        blocks += [m.astype(np.float32), np.sqrt(np.maximum(v, 0.0)).astype(np.float32)]
    return np.concatenate(blocks, axis=1)


def raw_window_names(
    feature_names: Sequence[str], patch_len: int, context_len: int, lengths=None
) -> list[str]:
    """Column names matching :func:`raw_window_features`."""
    names = [f"{n}@t-{patch_len - 1 - i}" for i in range(patch_len) for n in feature_names]
    for length in trailing_lengths(context_len, lengths or DEFAULT_TRAILING):
        names += [f"mean{length}_{n}" for n in feature_names]
        names += [f"std{length}_{n}" for n in feature_names]
    return names


def intraday_log_returns(close: np.ndarray, session: np.ndarray) -> np.ndarray:
    """1-bar log returns, 0 at each session's first bar (no overnight gap in intraday RV)."""
    c = np.asarray(close, dtype=np.float64)
    s = np.asarray(session)
    r = np.zeros_like(c)
    if c.size > 1:
        with np.errstate(divide="ignore", invalid="ignore"):
            r[1:] = np.log(c[1:] / c[:-1])
        r[1:][s[1:] != s[:-1]] = 0.0
    r[~np.isfinite(r)] = 0.0
    return r


def har_rv_features(
    close: np.ndarray,
    session: np.ndarray,
    anchors: np.ndarray,
    days: Sequence[int] = HAR_DAYS,
    bars_per_day: int = BARS_PER_DAY,
    extra_bars: Sequence[int] = (),
) -> np.ndarray:
    """HAR-RV regressors at each anchor: ``½·log(mean r²)`` over trailing windows of bars.

    ``RV_L(a) = (1/L) Σ_{t ∈ (a−L, a]} r_t²`` for ``L = D·bars_per_day`` for each D in
    ``days`` (Corsi 2009's daily/weekly/monthly components on intraday bars), then for each
    ``L`` in ``extra_bars`` (e.g. the label horizon, an intraday component), truncated at
    the start of the data (the mean uses the bars available). Log vol, like the ``fwd_rv``
    target, so a linear ridge on these columns is the log-HAR model.
    """
    r2 = intraday_log_returns(close, session) ** 2
    a = np.asarray(anchors, dtype=np.int64)
    s = _prefix_sums(r2)
    cols = []
    for length in [int(d * bars_per_day) for d in days] + [int(b) for b in extra_bars]:
        lo = np.maximum(a + 1 - length, 0)
        rv = (s[a + 1] - s[lo]) / (a + 1 - lo)
        cols.append(0.5 * np.log(np.maximum(rv, 1e-20)))
    return np.column_stack(cols).astype(np.float32)


def diurnal_dummies(minute: np.ndarray, bucket_minutes: int = 30, session_minutes: int = 390):
    """One-hot of the ``bucket_minutes`` slot of the session each row falls in.

    Intraday volatility has a strong U-shape (open ≈ 2.5× midday); a forward-vol baseline
    without it would be a straw man at 15–60 minute horizons.
    """
    n_buckets = -(-session_minutes // bucket_minutes)
    b = np.clip(np.asarray(minute, dtype=np.int64) // bucket_minutes, 0, n_buckets - 1)
    return np.eye(n_buckets, dtype=np.float32)[b]


def one_hot(values: np.ndarray, n_classes: int) -> np.ndarray:
    v = np.asarray(values, dtype=np.int64)
    if v.size and (v.min() < 0 or v.max() >= n_classes):
        raise ValueError(f"class ids must be in [0, {n_classes}), got [{v.min()}, {v.max()}]")
    return np.eye(n_classes, dtype=np.float32)[v]


def oracle_filter_features(filter_probs: np.ndarray) -> np.ndarray:
    """Bayes-filter posterior ``p`` and ``log p`` per row.

    Both, so a linear probe can express a decision linear in either probabilities or
    log-odds (the Bayes rule for the regime is argmax log p).
    """
    p = np.asarray(filter_probs, dtype=np.float64)
    return np.concatenate([p, np.log(np.clip(p, 1e-6, 1.0))], axis=1).astype(np.float32)


def build_encoder(
    n_features: int,
    spec: WindowSpec,
    model_cfg: ModelConfig,
    seed: int,
    feature_names: Sequence[str] | None = None,
) -> nn.Module:
    """The pretrained model's encoder architecture with freshly seeded random weights
    (``feature_names``: needed by ``model.input_exclude`` / ``model.session_mask``)."""
    torch.manual_seed(seed)
    return PatchEncoder(n_features, spec, model_cfg, feature_names=feature_names)


class SupervisedClassifier(nn.Module):
    """Encoder → pooled embedding → linear head over the label classes."""

    def __init__(self, encoder: nn.Module, d_model: int, n_classes: int = 3) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(d_model, n_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder.pool(self.encoder(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


def balanced_class_weights(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """``w_k = n / (K · n_k)`` (scikit-learn's 'balanced'); 0 for classes absent in train."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=n_classes).astype(float)
    w = np.zeros(n_classes)
    present = counts > 0
    w[present] = labels.size / (present.sum() * counts[present])
    return w


@dataclass
class SupervisedResult:
    model: SupervisedClassifier
    best_epoch: int
    best_val_balanced_accuracy: float
    history: list[dict[str, float]] = field(default_factory=list)


@torch.no_grad()
def _predict(
    model: SupervisedClassifier, dataset: WindowDataset, starts: np.ndarray, batch_size: int
) -> np.ndarray:
    model.eval()
    preds = [
        model(dataset.context(chunk)).argmax(dim=1).cpu().numpy()
        for chunk in iterate_batches(starts, batch_size)
    ]
    return np.concatenate(preds) if preds else np.empty(0, dtype=np.int64)


def train_supervised(
    encoder: nn.Module,
    d_model: int,
    dataset: WindowDataset,
    train_starts: np.ndarray,
    train_labels: np.ndarray,
    val_starts: np.ndarray,
    val_labels: np.ndarray,
    *,
    epochs: int,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    batch_size: int = 256,
    max_steps_per_epoch: int = 0,
    grad_clip: float = 1.0,
    patience: int = 2,
    seed: int = 0,
    n_classes: int = 3,
) -> SupervisedResult:
    """Train encoder + linear head end-to-end on labels; keep the best-val-epoch weights.

    Loss: class-weighted cross-entropy ``−Σ_i w_{y_i} log softmax(h(f(x_i)))_{y_i} / Σ_i w_{y_i}``
    with balanced weights from the train labels. After each epoch the validation balanced
    accuracy is measured; training stops after ``patience`` epochs without improvement and
    the weights of the best epoch are restored. Only train windows reach the optimizer.
    """
    train_labels = np.asarray(train_labels, dtype=np.int64)
    val_labels = np.asarray(val_labels, dtype=np.int64)
    if train_starts.size == 0 or val_starts.size == 0:
        raise ValueError("supervised baseline needs train and validation windows")
    device = dataset.device
    model = SupervisedClassifier(encoder, d_model, n_classes).to(device)
    weights = torch.as_tensor(balanced_class_weights(train_labels, n_classes), dtype=torch.float32)
    loss_fn = nn.CrossEntropyLoss(weight=weights.to(device))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    rng = np.random.default_rng(seed)
    labels_t = torch.as_tensor(train_labels, device=device)
    index = np.arange(train_starts.size)

    best = (-np.inf, -1, copy.deepcopy(model.state_dict()))
    history: list[dict[str, float]] = []
    for epoch in range(epochs):
        model.train()
        losses = []
        for step, chunk in enumerate(iterate_batches(index, batch_size, True, rng)):
            if max_steps_per_epoch and step >= max_steps_per_epoch:
                break
            logits = model(dataset.context(train_starts[chunk]))
            loss = loss_fn(logits, labels_t[torch.as_tensor(chunk, device=device)])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            opt.step()
            losses.append(float(loss.detach()))
        val_bacc = balanced_accuracy(val_labels, _predict(model, dataset, val_starts, batch_size))
        history.append(
            {
                "epoch": epoch,
                "train_loss": float(np.mean(losses)),
                "val_balanced_accuracy": val_bacc,
            }
        )
        if val_bacc > best[0]:
            best = (val_bacc, epoch, copy.deepcopy(model.state_dict()))
        elif epoch - best[1] >= patience:
            break
    model.load_state_dict(best[2])
    model.eval()
    return SupervisedResult(model, best[1], float(best[0]), history)

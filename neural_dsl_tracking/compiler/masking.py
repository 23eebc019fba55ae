"""Padding masks in generated models: ``Embedding(..., mask_zero=true)`` makes token id 0
padding, and the layers after it leave the padded steps out (attention does not attend to
them, global pooling does not pool them, recurrent layers skip them).

Imported by generated programs through :mod:`neural_dsl_tracking.compiler.runtime`. A mask
is a ``(batch, steps)`` bool tensor, True at padded steps.
"""

from __future__ import annotations

import torch
from torch import nn


def padding_mask(ids: torch.Tensor) -> torch.Tensor:
    """True where the token id is 0. A sequence of padding only is left unmasked: attention
    over no step at all is undefined (NaN), so such a sequence is read as it is."""
    padding = ids.long() == 0
    return padding & ~padding.all(dim=1, keepdim=True)


def attention_mask(padding: torch.Tensor, causal: bool) -> torch.Tensor:
    """``(batch, queries, keys)``, True where a step may attend: every real step, and with
    ``causal`` only those not after the query. A padded step before the first real one would
    have nothing to attend to (NaN, which later layers spread): it attends to itself."""
    allowed = ~padding[:, None, :]
    if causal:
        steps = padding.size(1)
        ones = torch.ones(steps, steps, dtype=torch.bool, device=padding.device)
        allowed = (allowed & ones.tril()) | torch.eye(steps, dtype=torch.bool, device=padding.device)
    return allowed


def causal_mask(padding: torch.Tensor, heads: int, like: torch.Tensor) -> torch.Tensor:
    """The causal :func:`attention_mask` for ``nn.MultiheadAttention`` and the encoder
    layers: ``-inf`` where a step may not attend, in ``like``'s dtype, once per head."""
    allowed = attention_mask(padding, causal=True)
    additive = torch.zeros(allowed.shape, dtype=like.dtype, device=like.device).masked_fill(~allowed, float("-inf"))
    return additive.repeat_interleave(heads, dim=0)


def masked_mean(x: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
    """The mean of ``x`` (batch, steps, features) over the real steps."""
    keep = (~padding).unsqueeze(-1).to(x.dtype)
    return (x * keep).sum(dim=1) / keep.sum(dim=1)


def masked_max(x: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
    """The maximum of ``x`` (batch, steps, features) over the real steps."""
    return x.masked_fill(padding.unsqueeze(-1), float("-inf")).amax(dim=1)


def masked_rnn(rnn: nn.RNNBase, x: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
    """``rnn``'s outputs over the real steps of each sequence only, wherever the padding is
    (before, after or between them): each step's output at its own position, zeros at the
    padded ones. The real steps run as one packed sequence, so a padded batch gives the
    outputs of its sequences run one by one."""
    order = padding.to(torch.uint8).argsort(dim=1, stable=True)  # real steps first, in order
    lengths = (~padding).sum(dim=1).cpu()
    packed = nn.utils.rnn.pack_padded_sequence(_gather_steps(x, order), lengths, batch_first=True,
                                               enforce_sorted=False)
    out, _ = nn.utils.rnn.pad_packed_sequence(rnn(packed)[0], batch_first=True, total_length=x.size(1))
    return torch.zeros_like(out).scatter(1, order.unsqueeze(-1).expand_as(out), out)


def last_real_step(x: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
    """Each sequence's output at its last real step: ``x[:, -1]`` without the padding."""
    steps = torch.arange(x.size(1), device=x.device)
    last = torch.where(padding, -1, steps).amax(dim=1)
    return x[torch.arange(x.size(0), device=x.device), last]


def _gather_steps(x: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    return x.gather(1, order.unsqueeze(-1).expand_as(x))

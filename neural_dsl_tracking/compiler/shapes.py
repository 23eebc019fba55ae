"""Shapes during inference: per-sample dimensions, channels-last as the DSL writes them.

A dimension is an ``int``, ``None`` (dynamic, e.g. a sequence length) or a :class:`Sym`:
a size that comes from a model hyperparameter (``hp.dense_1.units``), so the generated
code refers to the configuration while inference checks use its compiled default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Union

from neural_dsl_tracking.compiler.codegen import Expr, product


@dataclass(frozen=True)
class Sym:
    """A size read from the run configuration; ``value`` is its compiled default."""

    expr: Expr
    value: int

    def __str__(self) -> str:
        return str(self.value)


Dim = Union[int, None, Sym]


def value_of(dim: Dim) -> int | None:
    """The concrete (default) size of a dimension, None when dynamic."""
    return dim.value if isinstance(dim, Sym) else dim


def code_of(dim: Dim) -> Expr | int:
    """What generated code should write for a (non-dynamic) dimension."""
    if dim is None:
        raise ValueError("a dynamic dimension has no code")
    return dim.expr if isinstance(dim, Sym) else dim


def same_dim(a: Dim, b: Dim) -> bool:
    """True when two dimensions are the same size for every configuration."""
    if isinstance(a, Sym) or isinstance(b, Sym):
        return isinstance(a, Sym) and isinstance(b, Sym) and a.expr == b.expr
    return a == b


def dim_product(dims: tuple[Dim, ...]) -> Dim:
    """The product of concrete dimensions (Flatten); None if any is dynamic."""
    if any(dim is None for dim in dims):
        return None
    total = math.prod(value_of(dim) for dim in dims)  # type: ignore[misc]
    if not any(isinstance(dim, Sym) for dim in dims):
        return total
    return Sym(product([code_of(dim) for dim in dims]), total)


def show(shape: tuple[Dim, ...]) -> str:
    """A shape for messages and comments: ``(8, 8, 1)``, dynamic sizes as ``None``."""
    inner = ", ".join("None" if d is None else str(value_of(d)) for d in shape)
    return f"({inner},)" if len(shape) == 1 else f"({inner})"


def same_padding(size: int | None, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """Keras ``padding="same"`` as (before, after) zero padding for one spatial axis."""
    span = (kernel - 1) * dilation + 1
    if size is None:
        total = max(span - stride, 0)
    else:
        out = -(-size // stride)
        total = max((out - 1) * stride + span - size, 0)
    return total // 2, total - total // 2


def window_out(size: int | None, kernel: int, stride: int, pad: tuple[int, int], dilation: int = 1) -> int | None:
    """Output length of a convolution or pooling window along one axis."""
    if size is None:
        return None
    span = (kernel - 1) * dilation + 1
    return (size + pad[0] + pad[1] - span) // stride + 1

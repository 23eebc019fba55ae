"""Arithmetic in values (``Dense(7*7*64)``, ``units: 2**8``), evaluated while reading.

A tiny evaluator over the syntax nodes, never Python's ``eval``: numbers only, with the
language's limits. Integers stay within 64 bits and floats finite; a power that would
be too large is refused from the sizes of its operands, before it is computed.
Division by zero and a non-number operand are problems located at the operator.
"""

from __future__ import annotations

import math
import operator
from typing import Callable

from neural_dsl_tracking.language.syntax import GROUP, MAX_INT, Expr, Value

Number = int | float


class ArithmeticProblem(ValueError):
    """A problem with one expression: the message and the node it is about."""

    def __init__(self, value: Value, message: str):
        super().__init__(message)
        self.value = value


_BINARY: dict[str, Callable[[Number, Number], Number]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "//": operator.floordiv,
    "%": operator.mod,
}


def evaluate(value: Value) -> Number:
    """The number an ``expr`` value (or a number) stands for; raises :class:`ArithmeticProblem`."""
    if value.kind == "number":
        return value.data
    if value.kind == "tuple" and value.text == GROUP:
        return evaluate(value.data[0])
    if value.kind != "expr":
        shown = value.text or value.kind
        if value.kind == "name":
            raise ArithmeticProblem(value, f"'{value.data}' is not a number (arithmetic takes "
                                          f"numbers and the parameters of a macro)")
        raise ArithmeticProblem(value, f"arithmetic takes numbers, got {shown}")
    expr: Expr = value.data
    operands = [evaluate(item) for item in expr.operands]
    if expr.op == "neg":
        return _checked(value, -operands[0])
    if expr.op == "pos":
        return operands[0]
    left, right = operands
    if expr.op in ("/", "//", "%") and right == 0:
        raise ArithmeticProblem(value, f"division by zero in '{expr.op}'")
    if expr.op == "**":
        return _power(value, left, right)
    try:
        return _checked(value, _BINARY[expr.op](left, right))
    except OverflowError:
        raise ArithmeticProblem(value, _TOO_LARGE) from None


_TOO_LARGE = f"the result is out of range: integers are up to 64 bits (at most {MAX_INT}), numbers up to about 1.8e308"


def _power(value: Value, base: Number, exponent: Number) -> Number:
    """``base ** exponent``, refused before computing when the result cannot fit."""
    if base == 0 and exponent < 0:
        raise ArithmeticProblem(value, "division by zero in '**' (0 to a negative power)")
    if abs(base) > 1 and exponent > 0:
        bits = exponent * math.log2(abs(base))
        limit = 64 if isinstance(base, int) and isinstance(exponent, int) else 1024
        if bits > limit:
            raise ArithmeticProblem(value, _TOO_LARGE)
    if isinstance(base, float) or isinstance(exponent, float) or exponent < 0:
        try:
            result = math.pow(base, exponent)
        except (OverflowError, ValueError):
            raise ArithmeticProblem(value, "the power has no real result or is out of range") from None
        return _checked(value, result)
    return _checked(value, base ** exponent)


def _checked(value: Value, result: Number) -> Number:
    if isinstance(result, int) and abs(result) > MAX_INT:
        raise ArithmeticProblem(value, _TOO_LARGE)
    if isinstance(result, float) and not math.isfinite(result):
        raise ArithmeticProblem(value, _TOO_LARGE)
    return result

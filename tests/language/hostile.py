"""Hostile `.neural` inputs, and the check every one of them must pass.

Each generator returns the text of a file built to hit a limit of the language: brackets
nested thousands deep, integer literals far beyond 64 bits (and beyond Python's 4,300-digit
conversion limit), floats with huge exponents or long mantissas, macro chains thousands
long, macros that double at each level, absurd repeat counts, and the same files with
`\\r\\n` or `\\r` line endings. :func:`cases` lists them at sizes past every limit;
:func:`check` parses one and asserts the outcome: a spec or ONE located message (no
other exception, no cascade of messages), in under :data:`SECONDS`. :func:`random_text`
draws a random hostile file (any kind, any size, edited at random) for fuzzing, and
:func:`check_text` checks what holds for any input: a spec or a located message, fast.

Self-contained (no relative imports), so other suites (``tests/chaos/``) can load it by
path: ``importlib.util.spec_from_file_location("hostile", ".../tests/language/hostile.py")``.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from functools import partial
from typing import Callable

from neural_dsl_tracking.errors import NeuralError
from neural_dsl_tracking.language import parse_text
from neural_dsl_tracking.language.spec import NeuralFile

SECONDS = 2.0
"""The most any check of a hostile file may take."""
FILENAME = "hostile.neural"


@dataclass(frozen=True)
class Case:
    """A hostile file and what checking it must give: ``message`` (a part of the one
    expected error, or of the first when not ``single``; None when the file is valid) at
    ``line`` (None: any line)."""

    name: str
    text: str
    message: str | None
    line: int | None = None
    single: bool = True


def network(layers: str, extra: str = "") -> str:
    """A small valid network around ``layers`` (plus sections in ``extra``)."""
    return f"network N {{\n  input: (4,)\n  layers:\n    {layers}\n{extra}}}\n"


# ------------------------------------------------------------------ nesting
def deep_braces(depth: int) -> str:
    """``ResidualConnection { ResidualConnection { ... Dense(1) } }``, ``depth`` levels."""
    return network("ResidualConnection { " * depth + "Dense(1)" + " }" * depth)


def deep_parentheses(depth: int) -> str:
    return network("Dense(" + "(" * depth + "1" + ")" * depth + ")")


def deep_lists(depth: int) -> str:
    return network("Dense(" + "[" * depth + "1" + "]" * depth + ")")


def deep_hpo(depth: int) -> str:
    """``HPO(choice(choice(... choice(1) ...)))`` as the units of a Dense."""
    return network("Dense(HPO(" + "choice(" * depth + "1" + ")" * depth + "))")


def deep_tracking_list(depth: int) -> str:
    return network("Dense(1)", "  tracking < tags: " + "[" * depth + "a" + "]" * depth + " >\n")


def deep_quoted_optimizer(depth: int) -> str:
    """Deep parentheses inside a quoted optimizer (parsed on its own)."""
    value = "(" * depth + "0.1" + ")" * depth
    return network("Dense(1)", f'  optimizer: "Adam(learning_rate={value})"\n')


def bare_openers(count: int) -> str:
    """Nothing but ``{`` after a network header."""
    return "network N " + "{" * count


# ------------------------------------------------------------------ literals
def huge_integer(digits: int, where: str = "units", sign: str = "") -> str:
    """An integer of ``digits`` digits in one place a literal can stand (see WHERE)."""
    return WHERE[where](sign + "9" * digits)


WHERE = {
    "units": lambda n: network(f"Dense({n})"),
    "hpo": lambda n: network(f"Dense(HPO(range(1, {n})))"),
    "tracking": lambda n: network("Dense(1)", f"  tracking < visualize_every: {n} >\n"),
    "dimension": lambda n: network("Dense(1)").replace("(4,)", f"(4, {n})"),
    "repeat": lambda n: network(f"Dense(1) * {n}"),
    "train": lambda n: network("Dense(1)", f"  train {{ epochs: {n} }}\n"),
    "execution": lambda n: network("Dense(1)", f"  execution {{ threads: {n} }}\n"),
    "quoted_optimizer": lambda n: network("Dense(1)", f'  optimizer: "Adam(learning_rate={n})"\n'),
    "schedule": lambda n: network("Dense(1)", f"  optimizer: SGD(ExponentialDecay(0.1, {n}, 0.9))\n"),
}
"""Where :func:`huge_integer` puts the literal: each builds a file around it."""


def huge_exponent(digits: int) -> str:
    """``1e999...9``: a float far beyond a double."""
    return network(f"Dropout(1e{'9' * digits})")


def long_mantissa(digits: int) -> str:
    """``0.5000...0``: a valid float written with ``digits`` digits."""
    return network(f"Dropout(0.5{'0' * digits})")


# ------------------------------------------------------------------ macros, repeats
def macro_chain(length: int) -> str:
    """``define M1 {Dense(1)} define M2 {M1} ... define M<length> {M<length-1>}``, used."""
    lines = ["define M1 { Dense(1) }"]
    lines += [f"define M{i} {{ M{i - 1} }}" for i in range(2, length + 1)]
    return "\n".join(lines) + "\n" + network(f"M{length}")


def macro_cycle(length: int) -> str:
    """M1 uses M2 ... M<length> uses M1."""
    lines = [f"define M{i} {{ M{i % length + 1} }}" for i in range(1, length + 1)]
    return "\n".join(lines) + "\n" + network("M1")


def nested_macro_chain(length: int) -> str:
    """Each macro wraps the previous one in a ResidualConnection: nesting through macros."""
    lines = ["define M1 { ResidualConnection { Dense(1) } }"]
    lines += [f"define M{i} {{ ResidualConnection {{ M{i - 1} }} }}" for i in range(2, length + 1)]
    return "\n".join(lines) + "\n" + network(f"M{length}")


def doubling_macros(levels: int) -> str:
    """``define A2 { A1 A1 }`` ... ``A<levels>``: 2**(levels-1) layers from a tiny file."""
    lines = ["define A1 { Dense(1) }"]
    lines += [f"define A{i} {{ A{i - 1} A{i - 1} }}" for i in range(2, levels + 1)]
    return "\n".join(lines) + "\n" + network(f"A{levels}")


def huge_repeat(count: int) -> str:
    return network(f"Dense(1) * {count}")


def macro_repeat(count: int) -> str:
    return "define B { Dense(1) Dense(2) }\n" + network(f"B * {count}")


def repeat_in_macro(count: int) -> str:
    """An unused macro whose own body repeats too much."""
    return f"define B {{ Dense(1) * {count} }}\n" + network("Dense(1)")


def many_networks(count: int) -> str:
    """``count`` networks, each using a macro of 9,000 layers."""
    return "define A { Dense(1) * 9000 }\n" + network("A") * count


def repeated_setting(count: int) -> str:
    """A train block setting the same key ``count`` times (as many problems)."""
    return network("Dense(1)", "  train {\n" + "    epochs: 1\n" * count + "  }\n")


def long_name(length: int) -> str:
    """An unknown layer whose name is ``length`` characters long (lower case: not a custom layer)."""
    return network("d" + "e" * length + "nse(1)")


def long_string(length: int) -> str:
    return network(f'Dense("{"a" * length}")')


def long_list(items: int) -> str:
    return network("Dense([" + "1, " * items + "])")


# ------------------------------------------------------------------ line endings
def with_line_endings(text: str, ending: str) -> str:
    """``text`` with every ``\\n`` replaced by ``ending`` (``\\r\\n`` or ``\\r``)."""
    return text.replace("\n", ending)


COMMENTED = (
    "# a comment on the first line\n"
    "network N {  # the network\n"
    "  input: (4,)\n"
    "  layers:\n"
    "    Dense(8)  # hidden\n"
    "    Dense(2)\n"
    "  train { epochs: 0 }\n"
    "}\n"
)
"""A file with comments and one error, on line 7 (``epochs: 0``)."""


def cases() -> list[Case]:
    """Every hostile file, at sizes past the limits, with the outcome it must give."""
    out_of_range = "is out of range: integers are up to 64 bits"
    nested = "brackets nested more than 64 deep"
    found = [
        Case("deep braces", deep_braces(5000), nested, 4),
        Case("deep parentheses", deep_parentheses(5000), nested, 4),
        Case("deep lists", deep_lists(5000), nested, 4),
        Case("deep HPO", deep_hpo(3000), nested, 4),
        Case("deep tracking list", deep_tracking_list(5000), nested, 5),
        Case("deep quoted optimizer", deep_quoted_optimizer(5000), nested, 5),
        Case("bare openers", bare_openers(100_000), nested, 1),
        *(Case(f"5000-digit integer in {where}", huge_integer(5000, where), out_of_range)
          for where in WHERE),
        Case("negative 20000-digit integer", huge_integer(20_000, "units", "-"), out_of_range, 4),
        Case("65-bit integer", network(f"Dense({2**64})"), out_of_range, 4),
        Case("5000-digit exponent", huge_exponent(5000), "is out of range: numbers are up to", 4),
        Case("5000-digit mantissa", long_mantissa(5000), None),
        Case("macro chain 500", macro_chain(500), None),
        Case("macro chain 5000", macro_chain(5000), None),
        Case("macro cycle 5000", macro_cycle(5000), "macro 'M1' uses itself", 5000),
        Case("nested macro chain 500", nested_macro_chain(500),
             "the layers of macro 'M64' are nested more than 64 deep", 64),
        Case("doubling macros 30", doubling_macros(30),
             "the layers of macro 'A15' expand to more than 10000 layers", 15),
        Case("repeat 10**9", huge_repeat(10**9),
             "the layers of network 'N' expand to more than 10000 layers", 4),
        Case("macro repeat 10**9", macro_repeat(10**9),
             "the layers of network 'N' expand to more than 10000 layers", 5),
        Case("repeat 10**9 in a macro", repeat_in_macro(10**9),
             "the layers of macro 'B' expand to more than 10000 layers", 1),
        Case("200 networks of 9000 layers", many_networks(200),
             "the networks of this file expand to more than 20000 layers in all", 15),
        Case("a setting given 5000 times", repeated_setting(5000),
             "train setting 'epochs' is given twice", 7, single=False),
        Case("10000-character name", long_name(10_000), "unknown layer 'deeeeee", 4),
        Case("10000-character string", long_string(10_000), "'units' must be a positive integer", 4),
        Case("5000-item list", long_list(5000), "'units' must be a positive integer", 4),
    ]
    for ending, name in (("\r\n", "CRLF"), ("\r", "CR")):
        found.append(Case(f"{name} line endings", with_line_endings(COMMENTED, ending),
                          "epochs must be a positive integer", 7))
        found.append(Case(f"{name} macro chain", with_line_endings(macro_chain(50), ending), None))
    return found


GENERATORS: dict[str, tuple[Callable[[int], str], int]] = {
    "deep braces": (deep_braces, 6000),
    "deep parentheses": (deep_parentheses, 6000),
    "deep lists": (deep_lists, 6000),
    "deep HPO": (deep_hpo, 4000),
    "deep tracking list": (deep_tracking_list, 6000),
    "deep quoted optimizer": (deep_quoted_optimizer, 6000),
    "bare openers": (bare_openers, 100_000),
    **{f"huge integer in {where}": (partial(huge_integer, where=where), 20_000) for where in WHERE},
    "huge exponent": (huge_exponent, 20_000),
    "long mantissa": (long_mantissa, 20_000),
    "macro chain": (macro_chain, 6000),
    "macro cycle": (macro_cycle, 6000),
    "nested macro chain": (nested_macro_chain, 2000),
    "doubling macros": (doubling_macros, 60),
    "huge repeat": (huge_repeat, 10**18),
    "macro repeat": (macro_repeat, 10**18),
    "repeat in a macro": (repeat_in_macro, 10**18),
    "many networks": (many_networks, 300),
    "repeated setting": (repeated_setting, 10_000),
    "long name": (long_name, 50_000),
    "long string": (long_string, 50_000),
    "long list": (long_list, 20_000),
}
"""Each kind of hostile file, by name: its generator and the largest size worth trying."""


def random_text(rng: random.Random) -> str:
    """A hostile file of a random kind and size (log-uniform, from tiny to past every
    limit), with random line endings and up to three random cuts or duplications."""
    generate, largest = GENERATORS[rng.choice(sorted(GENERATORS))]
    text = generate(max(1, round(largest ** rng.random())))
    text = with_line_endings(text, rng.choice(["\n", "\r\n", "\r"]))
    for _ in range(rng.randint(0, 3)):
        start = rng.randrange(len(text) + 1)
        end = min(len(text), start + rng.randint(1, 64))
        text = text[:start] + text[end:] if rng.random() < 0.5 else text[:end] + text[start:]
    return text


def check_text(text: str, name: str = "hostile input") -> NeuralFile | NeuralError:
    """Parse ``text``: a spec, or a ``NeuralError`` whose message is located in the file
    and has no overlong line; either in under :data:`SECONDS`. Anything else fails."""
    started = time.process_time()  # CPU time: what the input costs, not the machine's load
    try:
        outcome: NeuralFile | NeuralError = parse_text(text, FILENAME)
    except NeuralError as error:
        outcome = error
    elapsed = time.process_time() - started
    assert elapsed < SECONDS, f"{name}: checking took {elapsed:.1f} s of CPU"
    if isinstance(outcome, NeuralError):
        message = str(outcome)
        assert message.startswith(f"{FILENAME}:") and "Traceback" not in message, message[:2000]
        assert max(len(line) for line in message.splitlines()) < 400, f"{name}: overlong line"
    return outcome


def check(case: Case) -> NeuralFile | NeuralError:
    """:func:`check_text`, and the outcome ``case`` expects: the spec, or exactly the
    expected one located message."""
    outcome = check_text(case.text, case.name)
    if case.message is None:
        assert isinstance(outcome, NeuralFile), f"{case.name}: {outcome}"
        return outcome
    assert isinstance(outcome, NeuralError), f"{case.name}: parsed, expected {case.message!r}"
    assert_one_message(str(outcome), case)
    return outcome


def assert_one_message(message: str, case: Case) -> None:
    """``message`` is one problem (``file:line:col: ...``, the line, a caret), the
    expected one."""
    first, *rest = message.splitlines()
    assert case.message in first, f"{case.name}: {first[:300]}"
    if case.line is not None:
        assert first.startswith(f"{FILENAME}:{case.line}:"), f"{case.name}: {first[:300]}"
    assert not case.single or len(rest) <= 2 and not any(line.startswith(FILENAME) for line in rest), (
        f"{case.name}: more than one message:\n{message[:2000]}"
    )

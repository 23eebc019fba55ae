"""Property-based fuzzing: whatever the text, parsing returns a spec or raises one of the
project's own errors: never another exception, never a hang."""

from __future__ import annotations

import json
import os
import signal
from contextlib import contextmanager
from typing import Iterator

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neural_dsl_tracking.errors import NeuralError
from neural_dsl_tracking.language import parse_text
from neural_dsl_tracking.language.grammar import get_parser
from neural_dsl_tracking.language.spec import to_jsonable

from .conftest import CORPUS, REPO
from .hostile import check_text, random_text

SEEDS = sorted(
    p.read_text(encoding="utf-8")
    for folder in (CORPUS, REPO / "examples")
    if folder.is_dir()
    for p in folder.iterdir()
    if p.suffix in (".neural", ".nr")
)
assert SEEDS, "no seed files for fuzzing"
get_parser()  # build the parser up front, outside the per-example deadline

FRAGMENTS = [
    "network", "define", "tracking", "<", ">", "{", "}", "(", ")", "[", "]", ":", ";", ",",
    ".", "=", "*", "@", '"', "'", "#", "\n", " ", "\t", "HPO(", "choice(", "range(",
    "log_range(", "step=", "None", "NONE", "true", "False", "layers:", "input:", "loss:",
    "optimizer:", "train {", "execution {", "execute {", "metrics:", "backend:", "mlflow.",
    "Dense", "Conv2D", "-1", "0", "1e999", "99999999999999999999999", "1.5", "* 3",
    "ExponentialDecay(", "Adam(", '"cuda:0"', "visualize_every:", "\\", "\x00", "é",
]
SETTINGS = settings(
    max_examples=int(os.environ.get("NEURAL_FUZZ_EXAMPLES", "250")),  # raise it for a long hunt
    deadline=5000,  # ms per example; typical examples take a few ms
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    """Fail (instead of hanging forever) if parsing takes longer than ``seconds``."""

    def _timeout(signum, frame):  # pragma: no cover - only runs on a hang
        raise TimeoutError(f"parsing took more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, _timeout)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def check(text: str) -> None:
    with time_limit(30):  # a hang guard (wall time, generous under load)
        try:
            parsed = parse_text(text, "fuzz.neural")
        except NeuralError as error:
            message = str(error)
            assert message.startswith("fuzz.neural:"), message
            assert "Traceback" not in message
            return
    json.dumps(to_jsonable(parsed))  # a spec that parses is always serialisable


@st.composite
def mutated_seed(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(SEEDS))
    edits = draw(st.integers(min_value=1, max_value=6))
    for _ in range(edits):
        at = draw(st.integers(min_value=0, max_value=len(text)))
        action = draw(st.sampled_from(["delete", "insert", "replace", "duplicate"]))
        if action == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 12)):]
        elif action == "insert":
            text = text[:at] + draw(st.sampled_from(FRAGMENTS)) + text[at:]
        elif action == "replace":
            text = text[:at] + draw(st.sampled_from(FRAGMENTS)) + text[at + 1:]
        else:
            end = min(len(text), at + draw(st.integers(1, 40)))
            text = text[:end] + text[at:end] + text[end:]
    return text


@SETTINGS
@given(mutated_seed())
def test_mutated_corpus_files(text: str) -> None:
    check(text)


@SETTINGS
@given(st.lists(st.sampled_from(FRAGMENTS + ["N", "x", "12", "0.5"]), max_size=60).map(" ".join))
def test_random_token_soup(text: str) -> None:
    check(text)


@SETTINGS
@given(st.text(max_size=300))
def test_random_text(text: str) -> None:
    check(text)


@SETTINGS
@given(
    st.dictionaries(
        st.sampled_from(["backend", "visualize_every", "tags", "mlflow.tracking_uri",
                         "wandb.mode", "log_every", "mode", "store", "x.y", "mlflow"]),
        st.one_of(
            st.integers(-5, 5), st.booleans(), st.sampled_from(["mlflow", '"a b"', "[a, b]", "[]", "None"])
        ).map(lambda v: "true" if v is True else "false" if v is False else str(v)),
        max_size=6,
    )
)
def test_random_tracking_blocks(entries: dict[str, str]) -> None:
    body = "\n".join(f"  {key}: {value}" for key, value in entries.items())
    check(f"tracking <\n{body}\n>\nnetwork N {{ input: (4) layers: Dense(2) }}\n")


_scalars = st.one_of(
    st.integers(-3, 300).map(str), st.floats(-2, 2, allow_nan=False).map(lambda f: f"{f:.3g}"),
    st.sampled_from(['"relu"', '"same"', "relu", "true", "False", "None", "x"]),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(lambda v: "(" + ", ".join(v) + ")"),
        st.lists(inner, max_size=3).map(lambda v: "[" + ", ".join(v) + "]"),
        st.tuples(st.sampled_from(["choice", "range", "log_range", "uniform"]),
                  st.lists(inner, max_size=3)).map(lambda c: f"HPO({c[0]}({', '.join(c[1])}))"),
        st.tuples(st.sampled_from(["ExponentialDecay", "LSTM", "f"]), st.lists(inner, max_size=4))
        .map(lambda c: f"{c[0]}({', '.join(c[1])})"),
    ),
    max_leaves=6,
)
_arguments = st.lists(
    st.one_of(_values, st.tuples(
        st.sampled_from(["units", "rate", "activation", "kernel_size", "staircase", "step",
                         "learning_rate", "momentum", "decay_steps", "padding", "use_bias", "zz"]),
        _values).map(lambda kv: f"{kv[0]}={kv[1]}")),
    max_size=4,
).map(", ".join)


GOOD_LAYERS = ['Dense(8, "relu")', "Dropout(HPO(range(0.1, 0.5, step=0.1)))", "Flatten()",
               'Conv2D(4, (3, 3), padding="same")', "ResidualConnection { Dense(2) } * 2",
               "Block", 'Output(HPO(choice(2, 4)), activation="softmax")', 'Dense(3) @ "cpu"']


def _mostly(good: st.SearchStrategy[str], bad: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Valid most of the time, so that generated files reach the spec, not just errors."""
    return st.one_of(good, good, good, bad)


@st.composite
def random_network(draw: st.DrawFn) -> str:
    from neural_dsl_tracking.language.layers import LAYERS

    random_layer = st.builds(
        lambda name, args, suffix: f"{name}({args}){suffix}",
        st.sampled_from(sorted(LAYERS) + ["Block", "Nope"]), _arguments,
        st.sampled_from(["", " * 2", " { Dense(2) }", ' @ "cpu"', " * 0"]),
    )
    layers = draw(st.lists(_mostly(st.sampled_from(GOOD_LAYERS), random_layer), min_size=1, max_size=4))
    train_values = {"epochs": "3", "batch_size": "HPO(choice(16, 32))", "validation_split": "0.1",
                    "search_method": "random"}
    keys = draw(st.lists(st.sampled_from([*train_values, "epoch"]), max_size=3, unique=True))
    train = "; ".join(
        f"{key}: {draw(_mostly(st.just(train_values.get(key, '1')), _values))}" for key in keys
    )
    optimizer = draw(_mostly(
        st.sampled_from(["Adam", '"adam"', "SGD(0.01, momentum=0.9)",
                         "Adam(learning_rate=ExponentialDecay(0.1, 100, 0.9))"]),
        st.builds(lambda n, a: f"{n}({a})", st.sampled_from(["Adam", "SGD", "Adamx"]), _arguments),
    ))
    shape = draw(_mostly(st.sampled_from(["4", "None, 8", "2, 3, 4"]), st.sampled_from(["0", "2, x"])))
    device = draw(_mostly(st.sampled_from(['"cpu"', "auto", '"cuda:1"']), _values))
    return (
        "define Block { Dense(4) }\n"
        f"network R {{\n input: ({shape})\n layers:\n  " + "\n  ".join(layers) + "\n"
        f" optimizer: {optimizer}\n train {{ {train} }}\n execution {{ device: {device} }}\n}}\n"
    )


@SETTINGS
@given(random_network())
def test_random_networks(text: str) -> None:
    check(text)


@settings(SETTINGS, max_examples=int(os.environ.get("NEURAL_FUZZ_EXAMPLES", "100")))
@given(st.randoms(use_true_random=False))
def test_deep_and_large_inputs(rng) -> None:
    """Nesting thousands deep, huge repeat counts, huge literals, long macro chains and
    doubling macros (``hostile.py``), at random sizes, edited at random: a spec or a
    located message, each in under two seconds."""
    with time_limit(30):  # a hang guard (wall time); the cost itself is checked in CPU time
        check_text(random_text(rng), "fuzzed hostile input")

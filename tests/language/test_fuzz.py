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
    with time_limit(10):
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

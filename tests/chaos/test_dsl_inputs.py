"""Deep and large DSL inputs through ``neural check``, the command a user runs: nesting
thousands deep, integers of thousands of digits, macro chains thousands long, doubling
macros, giant repeats, CR line endings, at random sizes and randomly edited
(``tests/language/hostile.py``). Each check: exit 0 with a summary, or exit 1 with ONE
located message; no traceback; under 2 s of CPU beyond the command's own start-up."""

from __future__ import annotations

import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ..language.hostile import FILENAME, SECONDS, Case, assert_one_message, cases, network, random_text
from .conftest import NEURAL, assert_no_traceback

ALWAYS = ("5000-digit integer in units", "macro chain 500", "doubling macros 30", "deep braces")
SAMPLED = 4  # more of hostile.cases(), drawn at random
RANDOM_CASES = 6  # hostile.random_text(): a random kind and size, randomly edited


@dataclass
class Checked:
    code: int
    stdout: str
    stderr: str
    cpu: float  # seconds of CPU the command used


def neural_check(folder: Path, text: str) -> Checked:
    """``neural check hostile.neural`` in ``folder``, its CPU time measured from its rusage."""
    folder.mkdir()
    (folder / FILENAME).write_bytes(text.encode("utf-8", "surrogatepass"))
    with open(folder / "out", "wb") as out, open(folder / "err", "wb") as err:
        process = subprocess.Popen([NEURAL, "check", FILENAME], cwd=folder, stdout=out, stderr=err,
                                   stdin=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    read = lambda name: (folder / name).read_text(errors="replace")  # noqa: E731
    return Checked(process.returncode, read("out"), read("err"), usage.ru_utime + usage.ru_stime)


def assert_checked(case: Case, checked: Checked, start_up: float, *, known: bool) -> None:
    """One summary or one located message (``case.message`` itself when the outcome is
    ``known``), no traceback, in time."""
    context = f"{case.name}: exit {checked.code}\n{checked.stderr[:2000]}"
    assert_no_traceback(checked.stdout, checked.stderr)
    assert checked.cpu - start_up < SECONDS, f"{context}\n{checked.cpu:.2f} s of CPU"
    if checked.code == 0:
        assert f"{FILENAME}: ok" in checked.stdout and not (known and case.message), context
        return
    assert checked.code == 1 and not (known and case.message is None), context
    errors = [line for line in checked.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {FILENAME}:"), context
    message = checked.stderr[checked.stderr.index("error: ") + len("error: "):]
    assert max(len(line) for line in message.splitlines()) < 400, context
    if known:
        assert_one_message(message, case)


def test_deep_and_large_inputs_through_neural_check(tmp_path, rng):
    known = cases()
    chosen = [case for case in known if case.name in ALWAYS]
    assert len(chosen) == len(ALWAYS)
    chosen += rng.sample([case for case in known if case.name not in ALWAYS], SAMPLED)
    chosen = [(case, True) for case in chosen]
    chosen += [(Case(f"random input {i}", random_text(rng), None), False) for i in range(RANDOM_CASES)]
    small = network("Dense(1)")
    with ThreadPoolExecutor(4) as pool:
        start_ups = list(pool.map(lambda i: neural_check(tmp_path / f"small{i}", small), range(2)))
        results = list(pool.map(lambda item: neural_check(tmp_path / str(item[0]), item[1][0].text),
                                enumerate(chosen)))
    start_up = min(checked.cpu for checked in start_ups)
    failures = []
    for (case, known), checked in zip(chosen, results):
        try:
            assert_checked(case, checked, start_up, known=known)
        except AssertionError as error:
            failures.append(str(error)[:1500])
    assert not failures, "\n\n".join(failures)

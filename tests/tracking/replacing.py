"""A writer process replacing one ``version=False`` artifact in a loop, for the readers'
tests (manager reads here, dashboard downloads in tests/dashboard/test_downloads.py)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import subprocess
import sys
import threading
from typing import Callable, Iterator

NAME = "ckpt"
CONTENTS = [bytes([i]) * (256 * 1024 + i) for i in range(4)]  # sizes differ too
HASHES = {hashlib.sha256(content).hexdigest(): content for content in CONTENTS}
SECONDS = 4.0

_WRITER = """
import json, sys, time
from pathlib import Path
from neural_dsl_tracking.tracking import ExperimentTracker

args = json.loads(sys.argv[1])
tracker = ExperimentTracker("replacing", base_dir=args["base_dir"], store=args["store"],
                            auto_visualize=False)
scratch = Path(args["scratch"])
sizes = args["sizes"]

def log(i):
    scratch.write_bytes(bytes([i % len(sizes)]) * sizes[i % len(sizes)])
    tracker.log_artifact(scratch, name=args["name"], version=False)

log(0)
print(tracker.run_id, flush=True)
deadline, i = time.monotonic() + args["seconds"], 1
while time.monotonic() < deadline:
    log(i)
    i += 1
tracker.finish()
print(i, flush=True)
"""


@contextlib.contextmanager
def replacing_writer(store_kwargs: dict, scratch) -> Iterator[tuple[subprocess.Popen, str]]:
    """Start the writer; yields (process, run id) once the artifact exists. On leaving, the
    writer has ended (killed if it outlives its loop by a minute)."""
    args = {"base_dir": str(store_kwargs["base_dir"]), "store": store_kwargs["store"],
            "scratch": str(scratch), "name": NAME, "seconds": SECONDS,
            "sizes": [len(content) for content in CONTENTS]}
    process = subprocess.Popen([sys.executable, "-c", _WRITER, json.dumps(args)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        run_id = process.stdout.readline().strip()
        assert run_id, process.stderr.read()
        yield process, run_id
    finally:
        try:
            process.wait(SECONDS + 60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def writes_done(process: subprocess.Popen) -> int:
    """How many times the ended writer logged the artifact; asserts it ended cleanly."""
    out, err = process.communicate()
    assert process.returncode == 0, err
    return int(out.split()[-1])


Reader = Callable[[str, threading.Event, list, list], None]
"""``reader(run_id, done, failures, reads)``: reads until ``done``, appending each read's
SHA-256 to ``reads`` and each failure (a message) to ``failures``."""


def read_while_replacing(store_kwargs: dict, scratch, reader: Reader, readers: int = 2) -> None:
    """Run ``readers`` threads of ``reader`` while the writer replaces the artifact; asserts
    no read failed, and that both sides did enough for the race to be exercised."""
    failures: list[str] = []
    reads: list[str] = []
    done = threading.Event()
    with replacing_writer(store_kwargs, scratch) as (writer, run_id):
        threads = [threading.Thread(target=reader, args=(run_id, done, failures, reads), daemon=True)
                   for _ in range(readers)]
        for thread in threads:
            thread.start()
        try:
            writer.wait(SECONDS + 60)
        finally:
            done.set()
            for thread in threads:
                thread.join(60)
    writes = writes_done(writer)
    assert failures == [], f"{len(failures)} of {len(reads) + len(failures)} reads failed: {failures[:3]}"
    assert writes >= 20 and len(reads) >= 50 and len(set(reads)) >= 2, (writes, len(reads))

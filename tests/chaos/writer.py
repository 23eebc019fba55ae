"""A training-like writer for the chaos suite.

``python writer.py BASE_DIR STORE SEED SCRATCH_DIR [STEPS]`` (STORE: a PostgreSQL URL, or
empty for the SQLite store in BASE_DIR) logs metrics every step (``loss`` = step / 2,
``x`` = -step, ``sparse`` = step on every 7th step) and, now and then, hyperparameters, an
artifact version (``ckpt``: a new version each time, sometimes monitored; ``single``: one
version replaced each time) or a read that flushes, with short random pauses; forever, or
STEPS steps and then ``finish()``. It prints one line per fact, once the call has returned:

    run ID                     the run is open
    logged STEP                every step up to STEP was logged
    flushed STEP               ... and is in the store (printed after a read that flushes)
    param KEY                  hyperparameter KEY (value: the step) is stored
    put NAME SHA256            about to log this content as artifact NAME
    artifact NAME VERSION SHA  ... and this version of it is stored
    refused MESSAGE            one of those calls failed (a TrackingError: disk full)
    finished
"""

from __future__ import annotations

import hashlib
import random
import sys
import time
from pathlib import Path

from neural_dsl_tracking.errors import TrackingError
from neural_dsl_tracking.tracking import ExperimentTracker


def say(*words: object) -> None:
    print(*words, flush=True)


def log_artifact(tracker: ExperimentTracker, rng: random.Random, scratch: Path, step: int) -> None:
    content = rng.randbytes(rng.choice([16, 4096, 200_000]))
    scratch.write_bytes(content)
    name = rng.choice(["ckpt", "ckpt", "single"])
    say("put", name, hashlib.sha256(content).hexdigest())
    if name == "single":
        version = tracker.log_artifact(scratch, name=name, version=False)
    else:
        monitor = "loss" if rng.random() < 0.3 else None
        version = tracker.log_artifact(scratch, name=name, aliases=[f"s{step}"], monitor=monitor,
                                       metadata={"step": step})
    say("artifact", name, version.version, version.sha256)


def act(tracker: ExperimentTracker, rng: random.Random, scratch: Path, step: int) -> None:
    """Now and then: log a hyperparameter, an artifact, or read (which flushes)."""
    roll = rng.random()
    if roll < 0.03:
        tracker.log_hyperparameters({f"p{step}": step})
        say("param", f"p{step}")
    elif roll < 0.06:
        log_artifact(tracker, rng, scratch, step)
    elif roll < 0.07:
        tracker.get_best_metric("loss")
        say("flushed", step)


def main(base: str, store: str, seed: int, scratch_dir: str, steps: int | None) -> None:
    rng = random.Random(seed)
    tracker = ExperimentTracker("chaos", base_dir=base, store=store or None, run_name=f"writer-{seed}",
                                tags=["chaos"], auto_visualize=False)
    say("run", tracker.run_id)
    scratch = Path(scratch_dir) / f"{seed}.bin"
    step = 0
    while steps is None or step < steps:
        metrics = {"loss": step / 2, "x": -float(step)}
        if step % 7 == 0:
            metrics["sparse"] = float(step)
        tracker.log_metrics(metrics, step=step)
        try:
            act(tracker, rng, scratch, step)
        except TrackingError as error:
            say("refused", str(error).replace("\n", " "))
        if step % 10 == 0:
            say("logged", step)
        step += 1
        time.sleep(rng.uniform(0, 0.002))
    tracker.finish()
    say("finished")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4],
         int(sys.argv[5]) if len(sys.argv) > 5 else None)

"""Random SIGKILL and SIGTERM against compiled programs (``neural compile
examples/digits.neural``) while they start, train, checkpoint every epoch, and finish.

After SIGTERM the run is ``interrupted`` and holds every batch and epoch the program had
printed; after SIGKILL it reads ``crashed`` and holds what each checkpoint flushed and
every epoch printed more than LOSS_WINDOW before the kill. A program that finished before
the signal is ``completed``. No traceback; the stores pass their integrity check.
"""

from __future__ import annotations

import signal

import numpy as np
import pytest

from .conftest import (
    LOSS_WINDOW,
    assert_no_traceback,
    assert_store_takes_new_runs,
    attack,
    batches_per_epoch,
    check_store,
    wait_until_stale,
)

TRIALS = 50
STORES = 2
PARALLEL = 3
LONGEST = 6  # trial i trains 2 to LONGEST epochs: short runs may finish, long ones are cut
BATCH_SIZE = 32


def epochs_of(index: int) -> int:
    return 2 + index % (LONGEST - 1)


def epochs_printed(victim, before: float = float("inf")) -> int:
    return sum(1 for at, line in victim.lines if line.startswith("epoch ") and at < before)


def steps(manager, run, key: str) -> np.ndarray:
    return manager.get_metric_history(run.run_id, key).steps if key in run.metrics else np.array([], int)


def assert_program_kept(manager, run, victim, epochs: int, batches: int) -> None:
    """Batches (steps 1, 2, ...) and epochs (1, 2, ...) are gap-free and reach ``epochs``
    epochs; a checkpoint of epoch E exists for every epoch before the last one printed,
    and what each checkpoint flushed before it was stored is there."""
    context = victim.describe()
    batch_steps, epoch_steps = steps(manager, run, "batch_loss"), steps(manager, run, "val_accuracy")
    assert np.array_equal(batch_steps, np.arange(1, len(batch_steps) + 1)), context
    assert np.array_equal(epoch_steps, np.arange(1, len(epoch_steps) + 1)), context
    assert len(batch_steps) >= epochs * batches, f"{context}: {len(batch_steps)} batches stored"
    assert len(epoch_steps) >= epochs - 1, f"{context}: {len(epoch_steps)} epochs stored"
    checkpoints = [v.metadata["epoch"] for v in manager.list_artifact_versions(run.run_id, "checkpoint")]
    printed = epochs_printed(victim)
    assert checkpoints == list(range(1, len(checkpoints) + 1)) and len(checkpoints) >= printed - 1, context
    if checkpoints:
        assert len(batch_steps) >= checkpoints[-1] * batches and len(epoch_steps) >= checkpoints[-1], context


def moment(rng) -> tuple[str, float]:
    """Half the signals land anywhere in the run (from its first line on), half within
    30 ms after the line of epoch 1 or 2, when the program logs its metrics and checkpoint."""
    if rng.random() < 0.5:
        return "DigitsCNN:", rng.uniform(0.0, 0.6)
    return f"epoch {rng.randint(1, 2)}/", rng.uniform(0.0, 0.03)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_random_signals_against_compiled_programs(sig, programs, make_store, tmp_path, rng):
    stores = [make_store("sqlite") for _ in range(STORES)]

    def launch(index: int):
        out, err = tmp_path / f"{index}.out", tmp_path / f"{index}.err"
        args = [f"tracking.store={stores[index % STORES].base_dir}", f"tracking.run_name=trial-{index}",
                f"train.epochs={epochs_of(index)}", f"train.batch_size={BATCH_SIZE}", "tracking.visualize_every=0"]
        return programs.run(tmp_path, args, out, err), out, err

    victims = attack(launch, TRIALS, parallel=PARALLEL, rng=rng, signals=[sig], timing=moment, timeout=60)
    wait_until_stale(victims)
    managers = [spec.manager() for spec in stores]
    interrupted = 0
    for victim in victims:
        stderr = victim.stderr()
        assert_no_traceback(stderr, *(line for _, line in victim.lines))
        assert "could not close run" not in stderr, f"{victim.describe()}\n{stderr[-2000:]}"
        finished = any(" completed, recorded in " in line for _, line in victim.lines)
        assert victim.returncode == (0 if finished else -sig), f"{victim.describe()}\n{stderr[-2000:]}"
        manager = managers[victim.index % STORES]
        found = [r for r in manager.list_experiments() if r.run_name == f"trial-{victim.index}"]
        if not found:  # signalled before the tracker had created the run
            assert not finished and epochs_printed(victim) == 0, victim.describe()
            continue
        run = found[0]
        batches = batches_per_epoch(victim, BATCH_SIZE)
        if run.status == "completed":  # the signal came once finish() had recorded it
            assert_program_kept(manager, run, victim, epochs_of(victim.index), batches)
            continue
        assert not finished, victim.describe()
        interrupted += 1
        if sig == signal.SIGTERM:
            assert run.status == "interrupted", victim.describe()
            assert_program_kept(manager, run, victim, epochs_printed(victim), batches)
        else:
            assert run.status == "crashed", victim.describe()
            kept = epochs_printed(victim, before=victim.signalled_at - LOSS_WINDOW)
            assert_program_kept(manager, run, victim, kept, batches)
    assert interrupted >= TRIALS // 2, f"only {interrupted} of {TRIALS} signals reached a running run"
    for spec in stores:
        check_store(spec)
        assert_store_takes_new_runs(spec)

"""The fine levels a wide zoom is bucketed from: built from the overview's (or the warm-up's)
read of a long series, in the background, never by a second read of the store."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from neural_dsl_tracking.dashboard import data as data_module
from neural_dsl_tracking.dashboard import views
from neural_dsl_tracking.dashboard.data import DashboardData, FineLevels, draw
from neural_dsl_tracking.tracking import ExperimentManager
from neural_dsl_tracking.tracking.downsample import bucket_size_for
from neural_dsl_tracking.tracking.records import MetricHistory
from neural_dsl_tracking.tracking.store import Store

from .test_zoom import decoded

RUNS, STEPS = 3, 100_000  # each series longer than RAW_POINTS: a wide zoom draws its fine level
SPIKE, DIP = 76_543, 12_345


def values_of(index: int) -> np.ndarray:
    values = np.random.default_rng(index).normal(size=STEPS)
    values[SPIKE + index], values[DIP + index] = 1e6, -1e6
    return values


def wall_time(step) -> float:
    return 1e9 + step / 1000.0


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A store of ``RUNS`` runs of ``STEPS`` points (run-0 the oldest), each with a spike and a dip."""
    base = tmp_path_factory.mktemp("fine") / "neural_experiments"
    store = Store(base)
    for index in range(RUNS):
        run_id = store.create_run(experiment="zoom", run_name=f"run-{index}", start_time=1e9 + index)
        steps = np.arange(STEPS)
        store.append_metrics(run_id, {"loss": (steps, values_of(index), wall_time(steps))})
        store.set_status(run_id, "completed", end_time=wall_time(STEPS))
    store.close()
    return base


class CountingManager(ExperimentManager):
    """The real manager, counting the reads of whole series (no step or time range)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.whole_reads: list[str] = []

    def get_metric_history(self, run_id, key, after_step=None):
        self.whole_reads.append(run_id)
        return super().get_metric_history(run_id, key, after_step)

    def get_metric_histories(self, run_ids, keys=None, steps=None, times=None):
        run_ids = list(run_ids)
        if steps is None and times is None:
            self.whole_reads.extend(run_ids)
        return super().get_metric_histories(run_ids, keys, steps, times)


@pytest.fixture
def counted(base):
    """A fresh ``DashboardData`` whose manager counts its whole-series reads."""
    made: list[DashboardData] = []

    def fresh() -> DashboardData:
        data = DashboardData(base)
        data._manager = CountingManager(base_dir=str(base))
        made.append(data)
        return data

    yield fresh
    for data in made:
        data.manager().close()


def chart(data: DashboardData, span, x_mode: str = "step") -> dict:
    runs = data.runs()
    figure, _ = views.metric_chart(data, "loss", runs, views.run_colors(runs), 0.0, x_mode, False, "light",
                                   span=span)
    return figure


def wide_span(x_mode: str) -> tuple[float, float]:
    low, high = 5_000, STEPS - 5_000  # 90,000 points of each run: drawn from the fine levels
    return (low, high) if x_mode == "step" else (wall_time(low) * 1000.0, wall_time(high) * 1000.0)


def wait_for_builds() -> None:
    """Until the background builds ended (at most 10 s)."""
    deadline = time.monotonic() + 10
    while any(thread.name == "fine-levels" for thread in threading.enumerate()):
        assert time.monotonic() < deadline, "the fine levels were not built within 10 s"
        time.sleep(0.02)


@pytest.mark.parametrize("x_mode", ["step", "wall"])
def test_a_wide_zoom_after_the_overview_reads_no_series_again(counted, x_mode):
    synchronous = chart(counted(), wide_span(x_mode), x_mode)  # no overview: the zoom reads each series
    data = counted()
    chart(data, None)
    assert sorted(data.manager().whole_reads) == sorted(run.run_id for run in data.runs())
    data.manager().whole_reads.clear()
    zoomed = chart(data, wide_span(x_mode), x_mode)
    assert data.manager().whole_reads == []
    assert zoomed == synchronous
    for trace in zoomed["data"]:  # every spike and dip in the range survives
        assert decoded(trace["y"]).max() == 1e6 and decoded(trace["y"]).min() == -1e6


@pytest.mark.parametrize("x_mode", ["step", "wall"])
def test_a_narrow_zoom_after_the_overview_needs_no_fine_level(counted, monkeypatch, x_mode):
    monkeypatch.setattr(data_module, "FINE_PENDING_POINTS", 0)  # no fine level comes from the overview
    data = counted()
    chart(data, None)
    data.manager().whole_reads.clear()
    low, high = SPIKE - 5_000, SPIKE + 5_000  # 10,001 points: read from the store, every one
    span = (low, high) if x_mode == "step" else (wall_time(low) * 1000.0, wall_time(high) * 1000.0)
    zoomed = chart(data, span, x_mode)
    assert data.manager().whole_reads == []
    assert all(decoded(trace["y"]).max() == 1e6 for trace in zoomed["data"])


def test_the_fine_levels_are_built_in_the_background_after_the_overview(counted):
    data = counted()
    chart(data, None)
    wait_for_builds()
    data.manager().whole_reads.clear()
    for run in data.runs():  # kept by the background thread (it ended with its queue empty)
        fine = data.fine_level(run.run_id, "loss", STEPS)
        assert fine.count == STEPS and fine.values.max() == 1e6 and fine.values.min() == -1e6
    assert data.manager().whole_reads == []


def test_the_warm_up_builds_the_newest_series_fine_levels_only_up_to_the_cap(counted, monkeypatch):
    monkeypatch.setattr(data_module, "FINE_SERIES", 2)
    data = counted()
    data.warm()
    wait_for_builds()
    newest, oldest = data.runs()[:2], data.runs()[2]
    data.manager().whole_reads.clear()
    zoomed = chart(data, wide_span("step"))
    assert data.manager().whole_reads == [oldest.run_id]  # the newest two were built from the warm-up's read
    assert len(zoomed["data"]) == RUNS and {run.run_name for run in newest} < {trace["name"] for trace in zoomed["data"]}


def history(index: int) -> MetricHistory:
    steps = np.arange(STEPS)
    return MetricHistory("loss", steps, values_of(index), wall_time(steps))


def fine_of(history: MetricHistory):
    return draw(history.steps, history.values, history.timestamps,
                bucket_size_for(len(history), data_module.FINE_POINTS))[0]


def same(one, other) -> bool:
    return all(np.array_equal(getattr(one, name), getattr(other, name), equal_nan=True)
               for name in ("steps", "values", "times", "bucket_means", "bucket_counts")) \
        and one.bucket_size == other.bucket_size


def never_read():
    raise AssertionError("the store was read again")


class HeldHistory(MetricHistory):
    """A real history whose values are handed out only once ``release`` is set, so a build
    from it is seen in progress."""

    def __init__(self, index: int, started: threading.Event, release: threading.Event) -> None:
        plain = history(index)
        object.__setattr__(self, "_plain", plain)
        object.__setattr__(self, "_gates", (started, release))
        super().__init__(plain.key, plain.steps, plain.values, plain.timestamps)

    def __getattribute__(self, name):
        if name == "values":
            started, release = object.__getattribute__(self, "_gates")
            started.set()
            assert release.wait(10)
        return super().__getattribute__(name)


def test_a_zoom_waits_for_a_build_in_progress_and_gets_what_a_synchronous_one_draws():
    levels, started, release = FineLevels(), threading.Event(), threading.Event()
    levels.offer(("run", "loss", STEPS), HeldHistory(0, started, release))
    assert started.wait(10)  # the background thread is building it
    got: list = []
    waiter = threading.Thread(target=lambda: got.append(levels.get(("run", "loss", STEPS), never_read)))
    waiter.start()
    time.sleep(0.1)
    assert waiter.is_alive() and not got  # waiting for the build
    release.set()
    waiter.join(10)
    assert same(got[0], fine_of(history(0)))
    assert got[0].values.max() == 1e6 and got[0].values.min() == -1e6


class NamedHistory(MetricHistory):
    """A real history that notes which thread builds from it."""

    builders: list[str] = []

    def __getattribute__(self, name):
        if name == "values":
            NamedHistory.builders.append(threading.current_thread().name)
        return super().__getattribute__(name)


def test_a_zoom_waiting_for_one_build_builds_the_other_runs_queued_levels_meanwhile():
    levels, started, release = FineLevels(), threading.Event(), threading.Event()
    levels.offer(("run-0", "loss", STEPS), HeldHistory(0, started, release))
    assert started.wait(10)  # the background thread is building run-0's
    other = history(1)
    NamedHistory.builders.clear()
    levels.offer(("run-1", "loss", STEPS), NamedHistory(other.key, other.steps, other.values, other.timestamps))
    waiter = threading.Thread(target=lambda: levels.get(("run-0", "loss", STEPS), never_read), name="zoom")
    waiter.start()
    deadline = time.monotonic() + 10
    while not NamedHistory.builders and time.monotonic() < deadline:
        time.sleep(0.01)
    release.set()
    waiter.join(10)
    assert NamedHistory.builders == ["zoom"]
    NamedHistory.builders.clear()
    assert same(levels.get(("run-1", "loss", STEPS), never_read), fine_of(other))


def test_a_zoom_builds_a_queued_level_itself_from_the_arrays_read():
    levels = FineLevels()
    with levels.reading():  # a request reading: the background thread waits
        levels.offer(("run", "loss", STEPS), history(1))
        assert same(levels.get(("run", "loss", STEPS), never_read), fine_of(history(1)))


def test_the_queue_and_the_kept_levels_are_capped(monkeypatch):
    monkeypatch.setattr(data_module, "FINE_PENDING_POINTS", 2 * STEPS)
    monkeypatch.setattr(data_module, "FINE_SERIES", 2)
    levels, reads = FineLevels(), []

    def read(index):
        return lambda: reads.append(index) or history(index)

    with levels.reading():
        for index in range(3):  # the third is over the queue's budget of points: not queued
            levels.offer((f"run-{index}", "loss", STEPS), history(index))
        for index in range(3):
            levels.get((f"run-{index}", "loss", STEPS), read(index))
    assert reads == [2]
    levels.get(("run-0", "loss", STEPS), read(0))  # only the last two used are kept
    assert reads == [2, 0]
    levels.offer(("run-1", "loss", STEPS), history(1), evict=False)  # the warm-up evicts none
    levels.get(("run-2", "loss", STEPS), read(2))
    levels.get(("run-0", "loss", STEPS), read(0))
    assert reads == [2, 0]


class BrokenHistory(MetricHistory):
    """A history whose values cannot be had (as when memory runs out building from them)."""

    def __getattribute__(self, name):
        if name == "values":
            raise MemoryError("no memory for the build")
        return super().__getattribute__(name)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_after_a_failed_background_build_a_zoom_reads_and_the_next_offer_is_built():
    levels, reads = FineLevels(), []
    broken = history(0)
    levels.offer(("run-0", "loss", STEPS), BrokenHistory(broken.key, broken.steps, broken.values, broken.timestamps))
    wait_for_builds()
    assert same(levels.get(("run-0", "loss", STEPS), lambda: reads.append(0) or history(0)), fine_of(history(0)))
    assert reads == [0]
    NamedHistory.builders.clear()
    other = history(1)
    levels.offer(("run-1", "loss", STEPS), NamedHistory(other.key, other.steps, other.values, other.timestamps))
    wait_for_builds()
    assert NamedHistory.builders == ["fine-levels"]  # a new background thread built it
    assert same(levels.get(("run-1", "loss", STEPS), never_read), fine_of(other))


def test_a_short_series_gets_no_fine_level():
    levels = FineLevels()
    steps = np.arange(1_000)
    levels.offer(("run", "loss", 1_000), MetricHistory("loss", steps, steps * 1.0, steps * 1.0))
    assert not any(thread.name == "fine-levels" for thread in threading.enumerate())

"""What log_metrics accepts, and the clear TypeError for what it does not."""

from __future__ import annotations

import numpy as np
import pytest

from neural_dsl_tracking.tracking.values import metric_mode, to_float, to_step


@pytest.mark.parametrize("value, expected", [
    (1, 1.0), (2.5, 2.5), (True, 1.0), (np.float32(0.25), 0.25), (np.int64(7), 7.0),
    (np.array(3.5), 3.5), (np.bool_(False), 0.0),
])
def test_numbers_are_accepted(value, expected):
    assert to_float("m", value) == expected


def test_zero_dimensional_tensors_are_accepted():
    torch = pytest.importorskip("torch")
    assert to_float("loss", torch.tensor(0.5)) == 0.5
    with pytest.raises(TypeError, match="'loss'.*not a single number"):
        to_float("loss", torch.tensor([0.5, 1.0]))


@pytest.mark.parametrize("value", ["0.5", None, [1.0], {"a": 1}, b"1", object(), np.array([1, 2])])
def test_non_numbers_raise_type_error_naming_the_key(value):
    with pytest.raises(TypeError, match="metric 'val_loss'"):
        to_float("val_loss", value)


def test_a_bad_value_stores_nothing_of_that_call_and_the_run_goes_on(make_tracker, manager):
    tracker = make_tracker()
    tracker.log_metrics({"loss": 1.0, "acc": 0.5})
    with pytest.raises(TypeError, match="metric 'acc'"):
        tracker.log_metrics({"loss": 2.0, "acc": "high"})
    with pytest.raises(TypeError, match="metric names must be strings"):
        tracker.log_metrics({3: 1.0})
    with pytest.raises(TypeError, match="step must be an integer"):
        tracker.log_metrics({"loss": 1.0}, step="ten")
    with pytest.raises(TypeError, match="64-bit"):
        tracker.log_metrics({"loss": 1.0}, step=2**70)
    tracker.log_metrics({"loss": 3.0, "acc": np.float64(0.7)})
    tracker.finish()
    assert manager.get_metric_history(tracker.run_id, "loss").values.tolist() == [1.0, 3.0]
    assert manager.get_metric_history(tracker.run_id, "acc").values.tolist() == [0.5, 0.7]
    assert manager.get_experiment(tracker.run_id).status == "completed"


def test_the_callers_dict_may_change_after_the_call(make_tracker, manager):
    tracker = make_tracker()
    metrics = {"loss": 1.0}
    tracker.log_metrics(metrics)
    metrics["loss"] = 99.0
    tracker.finish()
    assert manager.get_metric_history(tracker.run_id, "loss").values.tolist() == [1.0]


@pytest.mark.parametrize("step, expected", [(3, 3), (np.int64(4), 4), (np.array(5), 5), (6.0, 6)])
def test_steps_accept_integral_numbers(step, expected):
    assert to_step(step) == expected


@pytest.mark.parametrize("step", [1.5, "2", None, True, float("nan")])
def test_steps_reject_the_rest(step):
    with pytest.raises(TypeError, match="step must be an integer"):
        to_step(step)


@pytest.mark.parametrize("step", [1e30, -1e30, np.uint64(2**64 - 1), np.float64(2.0**70), 2**63 - 1,
                                  2**62 + 1])
def test_out_of_range_steps_are_refused_and_do_not_lose_the_other_points(make_tracker, manager, step):
    tracker = make_tracker()
    tracker.log_metrics({"loss": 1.0})
    with pytest.raises(TypeError, match="out of range"):
        tracker.log_metrics({"loss": 2.0}, step=step)
    tracker.log_metrics({"loss": 3.0})
    tracker.finish()
    assert manager.get_metric_history(tracker.run_id, "loss").values.tolist() == [1.0, 3.0]


def test_default_steps_after_the_largest_step_are_stored(make_tracker, manager):
    from neural_dsl_tracking.tracking.values import MAX_STEP

    tracker = make_tracker()
    tracker.log_metrics({"loss": 1.0}, step=MAX_STEP)
    for value in (2.0, 3.0, 4.0):
        tracker.log_metrics({"loss": value})  # step=None: the step after the last one
    tracker.finish()
    history = manager.get_metric_history(tracker.run_id, "loss")
    assert history.steps.tolist() == [MAX_STEP + i for i in range(4)]


def test_an_integer_too_large_for_a_float_is_a_type_error_naming_the_key():
    with pytest.raises(TypeError, match="metric 'loss'.*too large"):
        to_float("loss", 10**400)


@pytest.mark.parametrize("key, mode", [("loss", "min"), ("val_loss", "min"), ("mae", "min"),
                                       ("accuracy", "max"), ("val_acc", "max"), ("f1", "max"),
                                       ("dice_loss", "min"), ("iou_loss", "min"), ("top1_error", "min"),
                                       ("top5_err", "min"), ("val/acc_error", "min"),
                                       ("grad_accum_loss", "min"), ("val/dice", "max")])
def test_best_direction_follows_the_metric_name(key, mode):
    assert metric_mode(key) == mode


def test_threads_logging_to_one_tracker_keep_each_call_whole(make_tracker, manager):
    import threading

    tracker = make_tracker()

    def worker(offset: int) -> None:
        for i in range(20_000):
            tracker.log_metrics({"value": float(offset + i), "step_copy": float(offset + i)},
                                step=offset + i)

    threads = [threading.Thread(target=worker, args=(k * 100_000,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    tracker.finish()
    history = manager.get_metric_history(tracker.run_id, "value")
    assert len(history) == 80_000
    assert np.array_equal(history.steps.astype(float), history.values)  # never mixed up


def test_metric_mode_is_exported_by_the_tracking_package():
    from neural_dsl_tracking import tracking

    assert "metric_mode" in tracking.__all__ and tracking.metric_mode is metric_mode

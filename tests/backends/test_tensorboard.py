"""The TensorBoard mirror, read back with TensorBoard's EventAccumulator."""

from __future__ import annotations

import json
import logging

import pytest

from neural_dsl_tracking.backends import RunInfo, open_mirrors
from neural_dsl_tracking.backends.registry import create_mirror
from neural_dsl_tracking.backends.workers import MirrorWorkers


def test_complete_run(tmp_path, failures, png_file, readback, artifact_file):
    store = tmp_path / "store"
    mirrors = open_mirrors(["tensorboard"], {"tensorboard": None},
                           RunInfo("run-tb", "e", "n", (), store), lambda *a: failures.append(a))
    mirrors.params({"lr": 0.01, "optimizer": {"type": "Adam"}})
    mirrors.params({"epochs": 3, "layers": [64, 10], "use_bn": True})
    loss = [("loss", s, 1.0 / (s + 1), 1_700_000_000.0 + s * 0.5) for s in range(2500)]
    acc = [("accuracy", e, 0.3 * e, 1_700_001_000.0 + e) for e in (1, 2, 3)]
    mirrors.metrics(loss[:1000] + acc[:1])
    mirrors.metrics(loss[1000:] + acc[1:])
    path, sha = artifact_file
    mirrors.artifact(path, "checkpoint", 2, sha, ["latest", "best"], "ckpt.pt")
    mirrors.figure(png_file, "loss")
    assert mirrors.finish("completed", timeout=60) == []
    assert failures == []

    events = readback.tensorboard(store / "tensorboard" / "run-tb")
    assert sorted(events.Tags()["scalars"]) == ["accuracy", "loss"]
    got = [(e.step, e.value, e.wall_time) for e in events.Scalars("loss")]
    assert got == [(s, pytest.approx(v), t) for _, s, v, t in loss]
    assert [(e.step, e.value) for e in events.Scalars("accuracy")] == [
        (e, pytest.approx(v)) for _, e, v, _ in acc]

    step, text = readback.text(events, "config")[-1]
    assert step == 1
    assert json.loads(text.removeprefix("```json\n").removesuffix("\n```")) == {
        "lr": 0.01, "optimizer": {"type": "Adam"}, "epochs": 3, "layers": [64, 10], "use_bn": True}
    ((version, note),) = readback.text(events, "artifacts/checkpoint")
    assert version == 2 and sha in note and "latest, best" in note and "ckpt.pt" in note

    (image,) = events.Images("plots/loss")
    assert image.encoded_image_string == png_file.read_bytes()
    assert (image.width, image.height, image.step) == (30, 20, 2499)

    hparams = readback.hparams(events)
    experiment = hparams["experiment"].experiment
    assert sorted(info.name for info in experiment.hparam_infos) == [
        "epochs", "layers", "lr", "optimizer.type", "use_bn"]
    assert [m.name.tag for m in experiment.metric_infos] == ["loss", "accuracy"]
    session = hparams["session_start_info"].session_start_info
    assert session.group_name == "run-tb"
    assert session.hparams["lr"].number_value == 0.01
    assert session.hparams["optimizer.type"].string_value == "Adam"
    assert session.hparams["layers"].string_value == "[64, 10]"
    assert session.hparams["use_bn"].bool_value is True
    from tensorboard.plugins.hparams import api_pb2
    assert hparams["session_end_info"].session_end_info.status == api_pb2.STATUS_SUCCESS
    # the HParams dashboard's final metrics are the last scalar values of those tags
    assert events.Scalars("accuracy")[-1].value == pytest.approx(0.9)


@pytest.mark.parametrize("status, expected", [("failed", "STATUS_FAILURE"),
                                              ("crashed", "STATUS_FAILURE"),
                                              ("interrupted", "STATUS_UNKNOWN"),
                                              ("pruned", "STATUS_SUCCESS")])
def test_custom_log_dir_and_final_status(tmp_path, readback, status, expected):
    from tensorboard.plugins.hparams import api_pb2

    log_dir = tmp_path / "custom" / "tb"
    mirrors = open_mirrors(["tensorboard"], {"tensorboard": {"log_dir": str(log_dir)}},
                           RunInfo("r", "e", None, (), tmp_path / "store"), lambda *a: None)
    mirrors.metrics([("loss", 0, 1.0, 1.0)])
    assert mirrors.finish(status, timeout=30) == []
    assert not (tmp_path / "store").exists()
    events = readback.tensorboard(log_dir)
    end = readback.hparams(events)["session_end_info"].session_end_info
    assert end.status == api_pb2.Status.Value(expected)
    assert readback.text(events, "status") == [(0, status)]


def test_a_figure_that_is_not_png_is_rejected_alone(tmp_path, failures, readback):
    html = tmp_path / "plot.html"
    html.write_text("<html></html>")
    mirrors = open_mirrors(["tensorboard"], {}, RunInfo("r", "e", None, (), tmp_path),
                           lambda *a: failures.append(a))
    mirrors.figure(html, "interactive")
    mirrors.metrics([("loss", 0, 1.0, 1.0)])
    unsent = mirrors.finish("completed", timeout=30)
    assert unsent == ["tensorboard: not sent: plots interactive (rejected: ValueError: "
                      f"{html} is not a PNG image; TensorBoard images must be PNG)"]
    assert len(failures) == 1
    events = readback.tensorboard(tmp_path / "tensorboard" / "r")
    assert [e.value for e in events.Scalars("loss")] == [1.0]


def test_missing_library_is_recorded_and_the_run_goes_on(tmp_path, failures, uninstall, caplog):
    """In-process workers (imports are hidden in this process only), the real mirror class."""
    uninstall("tensorboard")
    with caplog.at_level(logging.WARNING, "neural_dsl_tracking.backends"):
        mirrors = MirrorWorkers([create_mirror("tensorboard", RunInfo("r", "e", None, (), tmp_path), {})],
                               lambda *a: failures.append(a))
        mirrors.metrics([("loss", 0, 1.0, 1.0)])
        unsent = mirrors.finish("completed", timeout=30)
    assert len(caplog.records) == 1
    assert failures[0][0] == "tensorboard" and "disabled" in failures[0][1]
    assert unsent[0].startswith("tensorboard: not sent: 1 metric points")

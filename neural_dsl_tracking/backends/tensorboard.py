"""TensorBoard mirror: event files written with the ``tensorboard`` package's protos alone (no
torch, no TensorFlow), framed by :mod:`~neural_dsl_tracking.backends.event_file`.

Scalars: the key as tag, our step, the point's own wall time (points logged together share
one event).
The (merged) hyperparameters go to the text tag ``config`` as JSON; artifact versions to
text tags ``artifacts/<name>`` (step = version); PNG plots to image tags ``plots/<name>``.
At finish the HParams plugin gets the experiment, the session's hyperparameters and its
final status (our exact status also goes to the text tag ``status``); its metrics are the
scalar tags, whose last values are the final metrics.
Default directory: ``<store_dir>/tensorboard/<run id>``.
"""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from neural_dsl_tracking.dotted import flatten
from neural_dsl_tracking.backends.event_file import EventFile
from neural_dsl_tracking.backends.base import (
    ENDED_NORMALLY,
    ArtifactRef,
    MetricPoint,
    Mirror,
    deep_merge,
    safe_name,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def default_log_dir(store_dir: str | Path, run_id: str) -> Path:
    """Where a run's events go when ``log_dir`` is not set: ``<store>/tensorboard/<run id>``."""
    return Path(store_dir) / "tensorboard" / safe_name(run_id)

class TensorboardMirror(Mirror):
    """Mirror to a TensorBoard log directory."""

    name = "tensorboard"

    def start(self) -> None:
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.compat.proto.summary_pb2 import Summary

        self.log_dir = Path(self.options.get("log_dir") or default_log_dir(self.run.store_dir, self.run.run_id))
        self._event, self._summary = Event, Summary
        self._file = EventFile(self.log_dir, Event)
        self._config: dict[str, Any] = {}
        self._config_versions = 0
        self._metric_keys: dict[str, None] = {}
        self._last_step = 0
        self._start_time = self.run.start_time or time.time()

    def already_sent(self, params: Mapping[str, Any], metric_keys: Sequence[str]) -> None:
        """Keep them for the HParams summary of :meth:`finish`; the next config text is the
        next version."""
        deep_merge(self._config, params)
        self._config_versions += 1 if params else 0
        self._metric_keys.update(dict.fromkeys(metric_keys))

    @property
    def written(self) -> tuple[Path, int]:
        """The event file this session writes and how many bytes of it are flushed."""
        return self._file.path, self._file.size

    def log_params(self, params: Mapping[str, Any]) -> None:
        from tensorboard.plugins.text.summary_v2 import text_pb

        deep_merge(self._config, params)
        text = json.dumps(self._config, indent=2, sort_keys=True, default=str)
        self._write(text_pb("config", f"```json\n{text}\n```"), step=self._config_versions)
        self._config_versions += 1

    def log_metrics(self, points: Sequence[MetricPoint]) -> None:
        # Points logged together share step and time: one event holds all their values.
        events: dict[tuple[int, float], list[Any]] = {}
        Value = self._summary.Value
        for key, step, value, wall_time in points:
            events.setdefault((step, wall_time), []).append(Value(tag=key, simple_value=value))
            self._metric_keys[key] = None
        for (step, wall_time), values in events.items():
            summary = self._summary(value=values)
            self._file.write(self._event(wall_time=wall_time, step=step, summary=summary))
            self._last_step = max(self._last_step, step)
        self._file.flush()

    def log_artifact(self, artifact: ArtifactRef) -> None:
        from tensorboard.plugins.text.summary_v2 import text_pb

        aliases = ", ".join(artifact.aliases) or "none"
        text = (
            f"**{artifact.name} v{artifact.version}**: `{artifact.filename}`, "
            f"sha256 `{artifact.sha256}`, aliases: {aliases}"
        )
        self._write(text_pb(f"artifacts/{artifact.name}", text), step=artifact.version)

    def log_figure(self, path: Path, name: str) -> None:
        data = path.read_bytes()
        if not data.startswith(PNG_SIGNATURE):
            raise ValueError(f"{path} is not a PNG image; TensorBoard images must be PNG")
        width, height = struct.unpack(">II", data[16:24])
        image = self._summary.Image(height=height, width=width, encoded_image_string=data)
        summary = self._summary(value=[self._summary.Value(tag=f"plots/{name}", image=image)])
        self._write(summary, step=self._last_step)

    def finish(self, status: str, end_time: float | None = None) -> None:
        from tensorboard.plugins.hparams import api_pb2
        from tensorboard.plugins.hparams import metadata as hparams_metadata
        from tensorboard.plugins.hparams import plugin_data_pb2
        from tensorboard.plugins.text.summary_v2 import text_pb

        hparams = {key: _hparam_value(value) for key, value in flatten(self._config).items()}
        experiment = api_pb2.Experiment(
            hparam_infos=[
                api_pb2.HParamInfo(name=key, type=_hparam_type(value, api_pb2))
                for key, value in sorted(hparams.items())
            ],
            metric_infos=[
                api_pb2.MetricInfo(name=api_pb2.MetricName(tag=key)) for key in self._metric_keys
            ],
            time_created_secs=self._start_time,
        )
        start = plugin_data_pb2.SessionStartInfo(
            group_name=self.run.run_id, start_time_secs=self._start_time
        )
        for key, value in hparams.items():
            if isinstance(value, bool):
                start.hparams[key].bool_value = value
            elif isinstance(value, (int, float)):
                start.hparams[key].number_value = value
            else:
                start.hparams[key].string_value = value
        end = plugin_data_pb2.SessionEndInfo(
            status=_SESSION_STATUS.get(status, "STATUS_FAILURE"), end_time_secs=end_time or time.time()
        )
        Data = plugin_data_pb2.HParamsPluginData
        for tag, data in (
            (hparams_metadata.EXPERIMENT_TAG, Data(experiment=experiment)),
            (hparams_metadata.SESSION_START_INFO_TAG, Data(session_start_info=start)),
            (hparams_metadata.SESSION_END_INFO_TAG, Data(session_end_info=end)),
        ):
            summary = self._summary()
            summary.value.add(
                tag=tag,
                metadata=hparams_metadata.create_summary_metadata(data),
                tensor=hparams_metadata.NULL_TENSOR,
            )
            self._write(summary, step=0)
        self._write(text_pb("status", status), step=0)
        self._file.close()

    def _write(self, summary: Any, step: int) -> None:
        self._file.write(self._event(wall_time=time.time(), step=step, summary=summary))
        self._file.flush()


_SESSION_STATUS = {
    "interrupted": "STATUS_UNKNOWN",
    "running": "STATUS_RUNNING",
} | dict.fromkeys(ENDED_NORMALLY, "STATUS_SUCCESS")
"""Our run status -> the HParams plugin's session status (it has no "aborted"; ``pruned``
is a success); failed and crashed are failures. The exact status is also the text tag ``status``."""


def _hparam_value(value: Any) -> bool | int | float | str:
    if isinstance(value, (bool, int, float, str)):
        return value
    return json.dumps(value, default=str) if isinstance(value, (list, tuple)) else str(value)


def _hparam_type(value: Any, api_pb2: Any) -> int:
    if isinstance(value, bool):
        return api_pb2.DATA_TYPE_BOOL
    if isinstance(value, (int, float)):
        return api_pb2.DATA_TYPE_FLOAT64
    return api_pb2.DATA_TYPE_STRING

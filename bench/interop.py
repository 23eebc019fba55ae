"""Interop: import throughput against each peer's own read speed, and the round trip.

For each peer (MLflow, TensorBoard, W&B offline), ``--runs`` runs of 3 metrics x ``--steps``
steps (params, tags, an artifact where the peer keeps them) are written with the peer's own
SDK, then, timed in the same process:

* peer read: the peer's own reader over every point: ``MlflowClient.get_metric_history`` over
  every run and key; TensorBoard's ``EventAccumulator.Reload`` per run folder; the ``.wandb``
  files' records parsed with W&B's protobufs (``wandb_internal_pb2.Record``; the SDK has no
  public reader of offline runs);
* import: ``neural experiments import --from PEER`` (in process) into a fresh store;
* sync: ``neural experiments sync RUN... --to PEER`` back out to a fresh peer store;
* round trip: the synced runs read back with the peer's reader and compared with the
  originals: params, every metric point (step, value, wall time to the peer's precision:
  MLflow ms, W&B float seconds, TensorBoard float), tags and artifact bytes.

    .venv/bin/python bench/interop.py [--runs 10] [--steps 10000] [--peers mlflow,tensorboard,wandb]

The writers, readers and the comparison are also what ``tests/interop/test_round_trip.py``
runs (imported from this file), so the test and the figures measure the same thing.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

for _name, _value in {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true",
                      "WANDB_MODE": "offline", "WANDB_SILENT": "true",
                      "WANDB_DISABLE_GIT": "true"}.items():
    os.environ.setdefault(_name, _value)

KEYS = ("loss", "val/accuracy", "lr")
PEERS = ("mlflow", "tensorboard", "wandb")
T0 = 1_750_000_000.0


@dataclass
class Snapshot:
    """One run as a peer's reader sees it, normalised for comparing."""

    params: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, list[tuple[int, float, float]]] = field(default_factory=dict)
    artifacts: dict[str, bytes] = field(default_factory=dict)

    @property
    def points(self) -> int:
        return sum(len(p) for p in self.metrics.values())


def run_values(run: int, key: str, steps: int) -> list[float]:
    """A metric's values in run ``run``: distinct, not round numbers."""
    k = KEYS.index(key)
    return [math.sin(step / (97.0 + run) + k) * (k + 1) + run / 7 for step in range(steps)]


def _params(run: int) -> dict[str, Any]:
    return {"lr": 0.001 * (run + 1), "batch_size": 32 + run, "optimizer": "adam", "dropout": 0.25}


def _artifact(run: int) -> bytes:
    return (f"weights of run {run}\n".encode() + bytes(range(256))) * (50 + run)


# ---- writing with the peers' own SDKs --------------------------------------------------------
def write_mlflow(root: Path, runs: int, steps: int) -> str:
    """``runs`` MLflow runs in ``root/mlflow.db`` (log_batch, ms times), an artifact each."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param, RunTag

    uri = f"sqlite:///{root}/mlflow.db"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("interop", artifact_location=(root / "artifacts").as_uri())
    for run in range(runs):
        start = int(T0 * 1000) + run * 10_000_000
        created = client.create_run(experiment, run_name=f"run-{run}", start_time=start)
        run_id = created.info.run_id
        client.log_batch(run_id, params=[Param(k, str(v)) for k, v in _params(run).items()],
                         tags=[RunTag("team", "vision"), RunTag("seed", str(run)), RunTag("baseline", "")])
        batch = [Metric(key, value, start + 250 * step + k, step)
                 for k, key in enumerate(KEYS) for step, value in enumerate(run_values(run, key, steps))]
        for first in range(0, len(batch), 1000):
            client.log_batch(run_id, metrics=batch[first:first + 1000])
        upload = root / "upload" / str(run) / "weights.bin"
        upload.parent.mkdir(parents=True, exist_ok=True)
        upload.write_bytes(_artifact(run))
        client.log_artifact(run_id, str(upload), "model")
        client.set_terminated(run_id, "FINISHED", end_time=start + 250 * steps + 5)
    return uri


def write_tensorboard(root: Path, runs: int, steps: int) -> Path:
    """``runs`` folders of event files written by TensorBoard's writer (through torch's
    ``SummaryWriter``): one event per step holding the 3 scalars, hparams."""
    from tensorboard.compat.proto.summary_pb2 import Summary
    from torch.utils.tensorboard import SummaryWriter
    from torch.utils.tensorboard.summary import hparams as hparams_summary

    logs = root / "logs"
    for run in range(runs):
        writer = SummaryWriter(str(logs / f"run-{run}"))
        columns = [run_values(run, key, steps) for key in KEYS]
        for step in range(steps):
            summary = Summary(value=[Summary.Value(tag=key, simple_value=column[step])
                                     for key, column in zip(KEYS, columns)])
            writer.file_writer.add_summary(summary, step, walltime=T0 + run * 1e4 + step * 0.25)
        for summary in hparams_summary(_params(run), {})[:2]:
            writer.file_writer.add_summary(summary, walltime=T0 + run * 1e4)
        writer.close()
    return logs


def write_wandb(root: Path, runs: int, steps: int) -> Path:
    """``runs`` W&B offline runs under ``root/wandb``: one history row per step, an artifact."""
    import wandb

    root.mkdir(parents=True, exist_ok=True)
    settings = wandb.Settings(console="off", x_disable_stats=True, silent=True)
    for run in range(runs):
        handle = wandb.init(project="interop", name=f"run-{run}", id=f"peer{run:04d}", dir=str(root),
                            tags=["vision", f"seed-{run}"], config=_params(run), mode="offline",
                            settings=settings)
        columns = [run_values(run, key, steps) for key in KEYS]
        for step in range(steps):
            handle.log({key: column[step] for key, column in zip(KEYS, columns)}, step=step)
        upload = root / "upload" / str(run) / "weights.bin"
        upload.parent.mkdir(parents=True, exist_ok=True)
        upload.write_bytes(_artifact(run))
        artifact = wandb.Artifact(f"weights-{run}", type="model")
        artifact.add_file(str(upload))
        handle.log_artifact(artifact)
        handle.finish()
    return root / "wandb"


def wandb_env(root: Path) -> dict[str, str]:
    """W&B's folders for a measurement under ``root`` (its staging and cache would otherwise
    go to the home directory)."""
    return {"WANDB_DIR": str(root / "peer"), "WANDB_DATA_DIR": str(root / "wandb-data"),
            "WANDB_CACHE_DIR": str(root / "wandb-cache"), "WANDB_CONFIG_DIR": str(root / "wandb-config")}


WRITERS: dict[str, Callable[[Path, int, int], Any]] = {
    "mlflow": write_mlflow, "tensorboard": write_tensorboard, "wandb": write_wandb}


# ---- reading with the peers' own readers ----------------------------------------------------
def read_mlflow(uri: str, experiment: str = "interop") -> dict[str, Snapshot]:
    """Every run of ``experiment``: params, tags (not MLflow's ``mlflow.*`` nor our mirror's
    ``neural.*`` bookkeeping), every point (step, value, ms), artifact files by name."""
    from mlflow import MlflowClient
    from mlflow.artifacts import download_artifacts

    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    runs = client.search_runs([found.experiment_id], max_results=1000)
    snapshots = {}
    with tempfile.TemporaryDirectory() as scratch:
        for run in runs:
            snap = Snapshot(params=dict(run.data.params),
                            tags={k: v for k, v in run.data.tags.items()
                                  if not k.startswith(("mlflow.", "neural."))})
            for key in KEYS:
                snap.metrics[key] = sorted((m.step, m.value, m.timestamp)
                                           for m in client.get_metric_history(run.info.run_id, key))
            folder = Path(download_artifacts(run_id=run.info.run_id, tracking_uri=uri,
                                             dst_path=str(Path(scratch, run.info.run_id))))
            snap.artifacts = {p.name: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
            snapshots[run.info.run_name] = snap
    return snapshots


def read_tensorboard(logs: Path) -> dict[str, Snapshot]:
    """Every run folder under ``logs``: hparams, every scalar (step, value, wall time)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    snapshots = {}
    for folder in sorted({p.parent for p in logs.rglob("events.out.tfevents.*")}):
        events = EventAccumulator(str(folder), size_guidance={"scalars": 0, "tensors": 0})
        events.Reload()
        snap = Snapshot()
        for key in KEYS:
            snap.metrics[key] = sorted((e.step, e.value, e.wall_time) for e in events.Scalars(key))
        for tag, content in events.PluginTagToContent("hparams").items():
            start = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
            snap.params.update({k: _hparam(v) for k, v in start.hparams.items()})
        snapshots[folder.relative_to(logs).as_posix()] = snap
    return snapshots


def _hparam(value: Any) -> Any:
    kind = value.WhichOneof("kind")
    return getattr(value, kind) if kind else None


def wandb_records(file: Path) -> list[Any]:
    """The records of a ``.wandb`` file, parsed with W&B's protobufs (the framing read by the
    product's importer, neural_dsl_tracking.interop.from_wandb)."""
    from neural_dsl_tracking.interop.from_wandb import _records

    return list(_records(file, []))


def complete_records(file: Path, timeout: float = 30.0) -> list[Any]:
    """The records of a run file once its exit record is there (W&B's service writes the
    file after ``finish`` returns)."""
    deadline = time.monotonic() + timeout
    while True:
        records = wandb_records(file)
        if any(r.WhichOneof("record_type") == "exit" for r in records):
            return records
        assert time.monotonic() < deadline, f"{file} has no exit record after {timeout} s"
        time.sleep(0.1)


def read_wandb(wandb_dir: Path) -> dict[str, Snapshot]:
    """Every offline run under ``wandb_dir`` (a resumed run's folders together): config, tags,
    every history value (``_step``, value, ``_timestamp``), logged artifacts' files by name."""
    snapshots: dict[str, Snapshot] = {}
    names: dict[str, str] = {}
    for file in sorted(wandb_dir.glob("offline-run-*/run-*.wandb")):
        for record in wandb_records(file):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                names.setdefault(record.run.run_id, record.run.display_name)
                snap = snapshots.setdefault(names[record.run.run_id], Snapshot())
                tags = [t for t in record.run.tags if not t.startswith("source:")]  # the import's
                snap.tags.update(dict.fromkeys(tags, ""))
                snap.params.update(_wandb_items(record.run.config.update))
            elif kind == "config":
                snap.params.update(_wandb_items(record.config.update))
            elif kind == "history":
                row = _wandb_items(record.history.item)
                for key in KEYS:
                    if key in row:
                        snap.metrics.setdefault(key, []).append((row["_step"], row[key], row["_timestamp"]))
            elif kind == "artifact":
                for entry in record.artifact.manifest.contents:
                    if entry.local_path and not record.artifact.name.startswith("files"):
                        snap.artifacts[entry.path.rsplit("/", 1)[-1]] = Path(entry.local_path).read_bytes()
    for snap in snapshots.values():
        snap.params.pop("_wandb", None)
        snap.metrics = {key: sorted(points) for key, points in snap.metrics.items()}
    return snapshots


def _wandb_items(items: Any) -> dict[str, Any]:
    return {(item.key or ".".join(item.nested_key)): json.loads(item.value_json) for item in items}


def read_peer(peer: str, where: Any) -> dict[str, Snapshot]:
    return {"mlflow": read_mlflow, "tensorboard": read_tensorboard, "wandb": read_wandb}[peer](where)


# ---- import, sync, compare -----------------------------------------------------------------
def import_peer(peer: str, where: Any, store_dir: Path) -> list[Any]:
    """``neural experiments import --from PEER WHERE`` into the store at ``store_dir``."""
    from neural_dsl_tracking.interop.importing import import_runs, source_runs
    from neural_dsl_tracking.tracking.store import Store

    store = Store(str(store_dir))
    try:
        outcomes = import_runs(source_runs(peer, str(where)), store, progress=False)
    finally:
        store.close()
    failed = [o for o in outcomes if o.status != "imported"]
    assert not failed, failed
    return outcomes


def sync_peer(peer: str, store_dir: Path, out: Path) -> Any:
    """``neural experiments sync`` of every run of the store to a fresh peer store under ``out``;
    returns where the peer's reader finds them."""
    from neural_dsl_tracking.interop.sync import sync_runs
    from neural_dsl_tracking.tracking.store import Store

    store = Store(str(store_dir), create=False)
    try:
        runs = store.list_runs()
        if peer == "mlflow":
            uri = f"sqlite:///{out}/mlflow.db"
            _all_sent(sync_runs(store, [r.run_id for r in runs], peer, {"tracking_uri": uri}))
            return uri
        if peer == "tensorboard":
            for run in runs:  # a log folder per run, named as the run was (its folder's path)
                _all_sent(sync_runs(store, [run.run_id], peer, {"log_dir": str(out / "logs" / run.run_name)}))
            return out / "logs"
        saved = os.environ.get("WANDB_DIR")
        os.environ["WANDB_DIR"] = str(out)
        try:
            _all_sent(sync_runs(store, [r.run_id for r in runs], peer, {"mode": "offline"}))
        finally:
            os.environ.pop("WANDB_DIR") if saved is None else os.environ.__setitem__("WANDB_DIR", saved)
        return out / "wandb"
    finally:
        store.close()


def _all_sent(lines: Any) -> None:
    for line, ok in lines:
        assert ok, line


def compare(original: dict[str, Snapshot], back: dict[str, Snapshot]) -> tuple[int, int, list[str]]:
    """(points identical, points in the originals, every other difference found)."""
    problems = [f"run {name}: missing after the round trip" for name in original if name not in back]
    same = total = 0
    for name, first in original.items():
        again = back.get(name, Snapshot())
        total += first.points
        for key, points in first.metrics.items():
            got = again.metrics.get(key, [])
            same += sum(a == b for a, b in zip(points, got))
            if points != got:
                problems.append(f"run {name}, {key}: {len(points)} points, {len(got)} back, "
                                f"first difference {_first_difference(points, got)}")
        for what in ("params", "tags", "artifacts"):
            if getattr(first, what) != getattr(again, what):
                problems.append(f"run {name}: {what} differ: {_brief(getattr(first, what))} "
                                f"!= {_brief(getattr(again, what))}")
    return same, total, problems


def _first_difference(a: list, b: list) -> Any:
    return next(((x, y) for x, y in zip(a, b) if x != y), "in length")


def _brief(value: Any) -> str:
    text = repr({k: (v[:20] if isinstance(v, bytes) else v) for k, v in value.items()})
    return text if len(text) < 300 else text[:297] + "..."


@dataclass
class Figures:
    peer: str
    points: int
    peer_read: float
    imported: float
    synced: float
    same: int
    problems: list[str]


def measure(peer: str, root: Path, runs: int, steps: int) -> Figures:
    """Write, read with the peer, import, sync back, read back and compare: one peer."""
    where = WRITERS[peer](root / "peer", runs, steps)
    began = time.perf_counter()
    original = read_peer(peer, where)
    peer_read = time.perf_counter() - began
    began = time.perf_counter()
    import_peer(peer, where, root / "store")
    imported = time.perf_counter() - began
    began = time.perf_counter()
    back_where = sync_peer(peer, root / "store", root / "back")
    synced = time.perf_counter() - began
    same, total, problems = compare(original, read_peer(peer, back_where))
    return Figures(peer, total, peer_read, imported, synced, same, problems)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--peers", default=",".join(PEERS))
    args = parser.parse_args()
    print(f"{args.runs} runs x {len(KEYS)} metrics x {args.steps:,} steps per peer; "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'peer':<12}{'points':>9}{'peer read':>14}{'import':>14}{'import/read':>13}"
          f"{'sync':>14}{'round trip':>12}")
    for peer in args.peers.split(","):
        root = Path(tempfile.mkdtemp(prefix=f"interop-{peer}-"))
        os.environ.update(wandb_env(root))
        try:
            f = measure(peer, root, args.runs, args.steps)
        finally:
            shutil.rmtree(root, ignore_errors=True)
        rate = lambda seconds: f"{f.points / seconds / 1000:,.0f}k pt/s"  # noqa: E731
        print(f"{peer:<12}{f.points:>9,}{rate(f.peer_read):>14}{rate(f.imported):>14}"
              f"{f.peer_read / f.imported:>12.2f}x{rate(f.synced):>14}"
              f"{100 * f.same / max(f.points, 1):>11.2f}%")
        for problem in f.problems[:5]:
            print(f"  {problem}")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()

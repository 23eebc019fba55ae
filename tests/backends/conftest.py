"""Fixtures for the mirror tests: a shared MLflow SQLite store, a real ``mlflow server`` on
loopback (started once, only if a test asks), and readers that load what W&B and
TensorBoard wrote back from disk."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

for _name, _value in {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "WANDB_MODE": "offline",
    "WANDB_SILENT": "true",
    "WANDB_DISABLE_GIT": "true",
}.items():
    os.environ[_name] = _value

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MlflowServer:
    """``mlflow server`` on 127.0.0.1 with a SQLite backend and proxied artifacts."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> "MlflowServer":
        self.root.mkdir(parents=True, exist_ok=True)
        mlflow_cli = Path(sys.executable).with_name("mlflow")
        self.process = subprocess.Popen(
            [str(mlflow_cli), "server", "--host", "127.0.0.1", "--port", str(self.port),
             "--workers", "1", "--backend-store-uri", f"sqlite:///{self.root}/server.db",
             "--artifacts-destination", str(self.root / "artifacts")],
            stdout=(self.root / "server.log").open("wb"), stderr=subprocess.STDOUT,
            cwd=self.root, start_new_session=True,  # its own group: stop() ends the workers too
            # no background job runner (seven huey consumers) on a shared 2-core machine
            env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError((self.root / "server.log").read_text()[-2000:])
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=1) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError("mlflow server did not become healthy in 90 s")

    def stop(self) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.process.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory):
    server = MlflowServer(tmp_path_factory.mktemp("mlflow-server")).start()
    yield server
    server.stop()


@pytest.fixture
def own_mlflow_server(tmp_path: Path):
    """A server of the test's own, which the test may stop."""
    server = MlflowServer(tmp_path / "own-mlflow-server").start()
    yield server
    server.stop()


@pytest.fixture
def closed_port_uri() -> str:
    """An http URI where nothing listens."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture(scope="session")
def mlflow_sqlite_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One SQLite MLflow store for the session (its migrations take seconds)."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow-sqlite')}/mlflow.db"


@pytest.fixture
def failures() -> list[tuple[str, str]]:
    """Collects ``on_failure(backend, message)`` calls."""
    return []


@pytest.fixture
def in_process():
    """``in_process(names, options, run, on_failure)``: like open_mirrors, but the worker
    threads run in this process (faster to start; for tests of one mirror's behaviour)."""
    from neural_dsl_tracking.backends.registry import checked_options, create_mirror
    from neural_dsl_tracking.backends.workers import MirrorWorkers

    def open_here(names, options, run, on_failure):  # type: ignore[no-untyped-def]
        return MirrorWorkers(
            [create_mirror(n, run, checked_options(n, (options or {}).get(n))) for n in names],
            on_failure)

    return open_here


@pytest.fixture
def uninstall(monkeypatch: pytest.MonkeyPatch):
    """``uninstall("wandb")``: imports of that package (and its submodules already loaded)
    fail for the rest of the test, as if it were not installed."""

    def hide(package: str) -> None:
        for name in [n for n in sys.modules if n == package or n.startswith(package + ".")]:
            monkeypatch.setitem(sys.modules, name, None)
        monkeypatch.setitem(sys.modules, package, None)

    return hide


@pytest.fixture
def artifact_file(tmp_path: Path) -> tuple[Path, str]:
    """A stored artifact file and its SHA-256."""
    path = tmp_path / "objects" / "ckpt.pt"
    path.parent.mkdir()
    path.write_bytes(b"checkpoint bytes" * 64)
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def png_file(tmp_path: Path) -> Path:
    """A real 30x20 PNG image."""
    from PIL import Image

    path = tmp_path / "loss.png"
    Image.new("RGB", (30, 20), (200, 30, 30)).save(path)
    return path


# -- reading W&B offline runs back --------------------------------------------------------
def wandb_records(run_file: Path) -> list[Any]:
    """Every record of an offline ``.wandb`` file (LevelDB-log framing, 32 KiB blocks)."""
    from wandb.proto import wandb_internal_pb2

    data = run_file.read_bytes()
    if len(data) < 7:
        return []
    assert data[:4] == b":W&B", data[:7]
    block, pos, pending, records = 32768, 7, b"", []
    while pos + 7 <= len(data):
        if block - pos % block < 7:
            pos += block - pos % block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        pending += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def complete_wandb_records(run_file: Path, timeout: float = 30.0) -> list[Any]:
    """The records of a run file once its ``exit`` record is on disk: wandb-core writes the
    file asynchronously and may finish shortly after ``run.finish()`` returns."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            records = wandb_records(run_file)
        except Exception:  # noqa: BLE001 - caught mid-write; read again
            records = []
        if any(r.WhichOneof("record_type") == "exit" for r in records):
            return records
        assert time.monotonic() < deadline, f"{run_file} has no exit record after {timeout} s"
        time.sleep(0.1)


def read_wandb_run(wandb_dir: Path) -> SimpleNamespace:
    """The offline run(s) under ``wandb_dir``: run record, config, history rows, artifacts,
    summary and exit code, merged over all ``offline-run-*`` directories (a resumed run)."""
    files = sorted(wandb_dir.glob("offline-run-*/run-*.wandb"))
    assert files, f"no offline W&B run under {wandb_dir}"
    run = SimpleNamespace(run=None, config={}, history=[], artifacts=[], summary={},
                          exit_code=None, files=files)
    for path in files:
        for record in complete_wandb_records(path):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                run.run = record.run
                run.config.update(_items(record.run.config.update))
            elif kind == "config":
                run.config.update(_items(record.config.update))
            elif kind == "history":
                run.history.append(_items(record.history.item))
            elif kind == "summary":
                run.summary.update(_items(record.summary.update))
            elif kind == "artifact":
                run.artifacts.append(record.artifact)
            elif kind == "exit":
                run.exit_code = record.exit.exit_code
    run.config.pop("_wandb", None)
    return run


def _items(items: Any) -> dict[str, Any]:
    return {(item.key or "/".join(item.nested_key)): json.loads(item.value_json) for item in items}


# -- reading TensorBoard event files back -------------------------------------------------
def read_tensorboard(log_dir: Path) -> Any:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(
        str(log_dir), size_guidance={"scalars": 0, "images": 0, "tensors": 0}
    )
    accumulator.Reload()
    return accumulator


def tensorboard_text(accumulator: Any, tag: str) -> list[tuple[int, str]]:
    from tensorboard.util import tensor_util

    return [
        (event.step, tensor_util.make_ndarray(event.tensor_proto).item().decode())
        for event in accumulator.Tensors(tag)
    ]


def tensorboard_hparams(accumulator: Any) -> dict[str, Any]:
    from tensorboard.plugins.hparams import plugin_data_pb2

    content = accumulator.PluginTagToContent("hparams")
    return {
        tag.rsplit("/", 1)[-1]: plugin_data_pb2.HParamsPluginData.FromString(data)
        for tag, data in content.items()
    }


@pytest.fixture
def readback() -> SimpleNamespace:
    return SimpleNamespace(
        wandb=read_wandb_run, tensorboard=read_tensorboard, text=tensorboard_text,
        hparams=tensorboard_hparams,
    )


@pytest.fixture
def in_empty_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run the test from an empty directory, to check nothing is written to the cwd."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    yield cwd
    shutil.rmtree(cwd / "__pycache__", ignore_errors=True)

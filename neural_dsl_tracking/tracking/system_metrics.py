"""System metrics: what the machine and the training process are doing, sampled in the background.

:class:`SystemSampler` runs a daemon thread that, every ``interval`` seconds, reads CPU,
memory, disk and network counters through psutil and, when nvidia-ml-py finds an NVIDIA
driver, each GPU's utilisation, memory and temperature; it hands the values to the run's
metric writer as one buffered call under ``system/`` names, at the step of the whole seconds
since the run started. The hand-over is the writer buffer's atomic ``append``: the sampler
takes no lock, so reading ``/proc`` (or a slow GPU driver) never delays ``log_metrics`` or a
flush. The thread does not exist in a forked child; ``stop()`` ends it before the run's last
flush. nvidia-ml-py is imported in the thread, and only there.
"""

from __future__ import annotations

import threading
import time
import warnings
from typing import Any, Callable

SYSTEM_PREFIX = "system/"
MB = 1024.0 * 1024.0
STOP_TIMEOUT = 5.0

Point = tuple[int, float, dict[str, float]]


def is_system_metric(key: str) -> bool:
    """True for the metrics the sampler records (``system/...``)."""
    return key.startswith(SYSTEM_PREFIX)


def _per_second(now: Any, before: Any, fields: dict[str, str], seconds: float) -> dict[str, float]:
    """MB/s of each counter field between two readings (a counter that went back: 0)."""
    if now is None or before is None or seconds <= 0:
        return {}
    return {SYSTEM_PREFIX + name: max(0.0, getattr(now, field) - getattr(before, field)) / MB / seconds
            for name, field in fields.items()}


DISK_FIELDS = {"disk_read_mb_per_s": "read_bytes", "disk_write_mb_per_s": "write_bytes"}
NET_FIELDS = {"net_sent_mb_per_s": "bytes_sent", "net_recv_mb_per_s": "bytes_recv"}


class _Machine:
    """CPU, memory, disk and network of this machine and process, through psutil."""

    def __init__(self, psutil: Any) -> None:
        self._psutil = psutil
        self._process = psutil.Process()
        psutil.cpu_percent(None)  # the first call only starts the measurement
        self._process.cpu_percent(None)
        self._last = self._counters()

    def _counters(self) -> tuple[float, Any, Any]:
        return time.monotonic(), self._psutil.disk_io_counters(), self._psutil.net_io_counters()

    def read(self) -> dict[str, float]:
        memory = self._psutil.virtual_memory()
        values = {
            SYSTEM_PREFIX + "cpu_percent": float(self._psutil.cpu_percent(None)),
            SYSTEM_PREFIX + "process_cpu_percent": float(self._process.cpu_percent(None)),
            SYSTEM_PREFIX + "process_rss_mb": self._process.memory_info().rss / MB,
            SYSTEM_PREFIX + "memory_percent": float(memory.percent),
            SYSTEM_PREFIX + "memory_used_mb": (memory.total - memory.available) / MB,
        }
        now = self._counters()
        seconds = now[0] - self._last[0]
        values.update(_per_second(now[1], self._last[1], DISK_FIELDS, seconds))
        values.update(_per_second(now[2], self._last[2], NET_FIELDS, seconds))
        self._last = now
        return values


class Gpus:
    """Each NVIDIA GPU's utilisation, memory and temperature through nvidia-ml-py's ``pynvml``;
    no GPUs (nothing read) when the package, the driver or a GPU is missing."""

    def __init__(self) -> None:
        self._nvml: Any = None
        self._handles: list[Any] = []
        try:
            import pynvml  # nvidia-ml-py
        except ImportError:
            return
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError:  # no driver (NVMLError_LibraryNotFound), no GPU
            return
        self._nvml = pynvml
        try:
            self._handles = [pynvml.nvmlDeviceGetHandleByIndex(index)
                             for index in range(pynvml.nvmlDeviceGetCount())]
        except pynvml.NVMLError:
            self.close()

    @property
    def count(self) -> int:
        """The GPUs found."""
        return len(self._handles)

    def read(self) -> dict[str, float]:
        values: dict[str, float] = {}
        for index, handle in enumerate(self._handles):
            values.update(self._read_one(f"{SYSTEM_PREFIX}gpu{index}/", handle))
        return values

    def _read_one(self, prefix: str, handle: Any) -> dict[str, float]:
        nvml = self._nvml
        try:
            utilization = nvml.nvmlDeviceGetUtilizationRates(handle)
            memory = nvml.nvmlDeviceGetMemoryInfo(handle)
            temperature = nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU)
        except nvml.NVMLError:  # a GPU that fell off the bus: skip it this round
            return {}
        return {
            prefix + "utilization_percent": float(utilization.gpu),
            prefix + "memory_used_mb": memory.used / MB,
            prefix + "memory_percent": 100.0 * memory.used / memory.total if memory.total else 0.0,
            prefix + "temperature_c": float(temperature),
        }

    def close(self) -> None:
        """Release NVML (idempotent)."""
        if self._nvml is not None:
            nvml, self._nvml, self._handles = self._nvml, None, []
            try:
                nvml.nvmlShutdown()
            except nvml.NVMLError:
                pass


class SystemSampler:
    """Samples the machine every ``interval`` seconds into ``append`` (the writer's buffer),
    at steps of whole seconds since ``started`` (the run's start, a Unix time)."""

    def __init__(self, interval: int, append: Callable[[Point], None], started: float,
                 name: str = "neural-system-metrics") -> None:
        self.interval = interval
        self._append = append
        self._started = started
        self._last_step = -1
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=name)

    def start(self) -> None:
        """Start sampling (the first sample comes one interval later)."""
        self._thread.start()

    def stop(self) -> None:
        """End the thread (waiting at most ``STOP_TIMEOUT`` for a sample being read)."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(STOP_TIMEOUT)

    def _run(self) -> None:
        try:
            import psutil
        except ImportError:
            warnings.warn("system metrics need psutil (pip install psutil); none are recorded",
                          RuntimeWarning, stacklevel=1)
            return
        machine, gpus = _Machine(psutil), Gpus()
        try:
            while not self._stop.wait(self.interval):
                try:
                    values = machine.read()
                except Exception as error:  # noqa: BLE001 - a sample never stops the run
                    warnings.warn(f"system metrics stopped: {error}", RuntimeWarning, stacklevel=1)
                    return
                values.update(gpus.read())
                self._append(self._point(values))
        finally:
            gpus.close()

    def _point(self, values: dict[str, float]) -> Point:
        """One buffered call: the step (whole seconds since the start, always increasing),
        the wall time and the values."""
        now = time.time()
        self._last_step = max(int(now - self._started), self._last_step + 1)
        return self._last_step, now, values

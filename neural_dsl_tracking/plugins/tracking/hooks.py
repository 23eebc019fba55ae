"""The tracking plugin's contribution to generated programs.

:class:`TrackingHooks` writes the tracker calls at the compiler's hook points; all values
come from the validated ``config.tracking`` section at run time, so no DSL text reaches
the code. :func:`open_tracker`, :func:`write_file` and :func:`finish_run` are the small
runtime helpers the emitted code calls.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
from pathlib import Path
from typing import Any

from neural_dsl_tracking.compiler.codegen import CodeWriter, Expr, attr, call, lit
from neural_dsl_tracking.compiler.summary import SKIP_IF_DONE_ENV
from neural_dsl_tracking.plugins.tracking.spec import TrackingSpec

SECTION = attr("config", "tracking")
TRACKER = Expr("tracker")


class TrackingHooks:
    """Code for the hook points: setup opens the run, teardown finishes it."""

    uses_workdir = True

    def __init__(self, spec: TrackingSpec) -> None:
        self.spec = spec

    def imports(self) -> list[str]:
        return ["from neural_dsl_tracking.compiler.summary import describe_model, fingerprint",
                "from neural_dsl_tracking.plugins.tracking.hooks import completed_twin, finish_run, open_run, write_file",
                "from neural_dsl_tracking.plugins.tracking.resume import continued_settings"]

    def configure(self) -> list[str]:
        out = CodeWriter()
        out.line(f"config, composed = {call('continued_settings', Expr('config'), Expr('composed'), Expr('settings'), Expr('LAUNCH_DIR'))}")
        return out.lines

    def resume_state(self) -> Expr:
        return Expr("start_state")

    def setup(self) -> list[str]:
        out = CodeWriter()
        layers = call("model_layers", call("runtime.hyperparameters", attr("config", "model")))
        out.assign("model_spec", call("describe_model", Expr("model"), layers, attr("config", "data", "length"),
                                      Expr("TOKENS")))
        out.assign("run_fingerprint", call("fingerprint", Expr("model_spec"), Expr("composed"), Expr("LAUNCH_DIR")))
        with out.block(f"if {call('completed_twin', SECTION, Expr('run_fingerprint'), Expr('LAUNCH_DIR'))} is not None"):
            out.line("return {}")
        opened = call("open_run", SECTION, Expr("composed"), Expr("model"), launch_dir=Expr("LAUNCH_DIR"),
                      source_file=Expr("SOURCE_FILE"), model_spec=Expr("model_spec"))
        out.line(f"tracker, start_state = {opened}")
        out.line(call(attr(TRACKER, "log_model_spec"), Expr("model_spec"), Expr("run_fingerprint")))
        out.line(call(attr(TRACKER, "log_hyperparameters"), call("runtime.flatten", Expr("composed"))))
        versioned = attr(SECTION, "version_artifacts")
        out.line(call(attr(TRACKER, "log_artifact"), Expr("SOURCE_FILE"), name="source", version=versioned))
        config_file = call("write_file", Expr("workdir"), "config.json", Expr("composed"))
        out.line(call(attr(TRACKER, "log_artifact"), config_file, name="config", version=versioned))
        return out.lines

    def after_batch(self) -> list[str]:
        out = CodeWriter()
        with out.block(f"if step % {attr(SECTION, 'log_every')} == 0"):
            out.line(call(attr(TRACKER, "log_metrics"), {"batch_loss": Expr("batch_loss")}, step=Expr("step")))
        return out.lines

    def after_epoch(self) -> list[str]:
        out = CodeWriter()
        out.line(call(attr(TRACKER, "log_metrics"), Expr("epoch_metrics"), step=Expr("epoch")))
        return out.lines

    def checkpoint_every(self) -> Expr:
        return attr(SECTION, "checkpoint_every")

    def on_checkpoint(self) -> list[str]:
        out = CodeWriter()
        out.line(call(attr(TRACKER, "log_artifact"), Expr("checkpoint_path"), name="checkpoint",
                      version=attr(SECTION, "version_artifacts"),
                      metadata={"epoch": Expr("epoch"), "step": Expr("step"),
                                "metric_steps": call(attr(TRACKER, "metric_steps"))},
                      monitor=attr(SECTION, "monitor"), mode=attr(SECTION, "best_mode")))
        return out.lines

    def teardown(self) -> list[str]:
        out = CodeWriter()
        with out.block("try"):
            with out.block(f"if status == {lit('completed')}"):
                out.line(call(attr(TRACKER, "log_metrics"), Expr("{f'final_{key}': value for key, value in final_metrics.items()}"),
                              step=attr("config", "train", "epochs")))
                model_file = Expr(f"workdir / {lit('model.pt')}")
                out.line(call("torch.save", call(attr("model", "state_dict")), model_file))
                out.line(call(attr(TRACKER, "log_model"), model_file, framework="pytorch", name="model"))
        with out.block("finally"):
            out.line(call("finish_run", TRACKER, Expr("status")))
        return out.lines


# ---------------------------------------------------------------- runtime helpers


def open_run(section: TrackingSpec, composed: dict[str, Any], model: Any, *, launch_dir: Path,
             source_file: Path, model_spec: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any] | None]:
    """The run's tracker and the training state to continue from: None for a new run; for
    ``resume`` (the run reopened) or ``fork`` (a new run), the checkpoint's, checked to fit
    ``model`` (a resume: ``model_spec`` to be the run's network) before the run is opened."""
    from neural_dsl_tracking.plugins.tracking.resume import load_start, open_store, record_start

    if section.resume is None and section.fork is None:
        return open_tracker(section, composed, launch_dir=launch_dir, source_file=source_file), None
    with open_store(section, launch_dir) as store:
        start, state = load_start(store, section, model, model_spec)
    tracker = open_tracker(section, composed, launch_dir=launch_dir, source_file=source_file,
                           run_id=start.run_id if section.resume is not None else None)
    try:
        record_start(tracker, section, start)
    except BaseException:
        tracker.finish("failed")
        raise
    return tracker, state


def open_tracker(section: TrackingSpec, composed: dict[str, Any], *, launch_dir: Path,
                 source_file: Path, run_id: str | None = None) -> Any:
    """An ExperimentTracker configured by the run's ``tracking`` section.

    A relative ``store`` (and TensorBoard ``log_dir``) is resolved against the directory
    the program was launched from, not Hydra's output directory. With ``run_id``, that run
    is reopened (refused while it is still running elsewhere).
    """
    from neural_dsl_tracking.tracking import ExperimentTracker
    from neural_dsl_tracking.tracking.db import check_store_location

    check_store_location(section.store)  # before a URL is taken for a folder path
    show_messages_on_stderr()
    options = {
        "mlflow": section.mlflow.model_dump(),
        "wandb": section.wandb.model_dump(),
        "tensorboard": section.tensorboard.model_dump(),
    }
    log_dir = options["tensorboard"].get("log_dir")
    if log_dir:
        options["tensorboard"]["log_dir"] = str(_resolve(log_dir, launch_dir))
    return ExperimentTracker(
        experiment_name=section.experiment or "default",
        backend=list(section.backend),
        backend_options=options,
        run_name=section.run_name,
        tags=list(section.tags),
        visualize_every=section.visualize_every,
        system_metrics=section.system_metrics,
        config=composed,
        source_file=source_file,
        run_id=run_id,
        **store_place(section, launch_dir),
    )


def store_place(section: TrackingSpec, launch_dir: Path) -> dict[str, str]:
    """The ``store`` (and ``base_dir``) arguments of the run's store, relative paths resolved."""
    from neural_dsl_tracking.tracking.db import is_database_url

    if is_database_url(section.store):
        return {"store": section.store, "base_dir": str(launch_dir / "neural_experiments")}
    return {"store": str(_resolve(section.store, launch_dir))}


def completed_twin(section: TrackingSpec, fingerprint: str, launch_dir: Path) -> str | None:
    """Under ``neural run --skip-if-done`` (``NEURAL_SKIP_IF_DONE`` set): the id of the oldest
    completed run of the store with this fingerprint, said on stdout; else None (train)."""
    from neural_dsl_tracking.tracking import ExperimentManager
    from neural_dsl_tracking.tracking.db import check_store_location, is_database_url, redact

    if not os.environ.get(SKIP_IF_DONE_ENV):
        return None
    check_store_location(section.store)
    place = store_place(section, launch_dir)
    manager = ExperimentManager(**place)
    try:
        found = manager.completed_run_with_fingerprint(fingerprint)
    finally:
        manager.close()
    if found is not None:
        store = redact(place["store"]) if is_database_url(place["store"]) else place["store"]
        print(f"skipped: run {found[:8]} completed with the same fingerprint ({fingerprint[:8]}); "
              f"neural experiments show {found[:8]} --store {shlex.quote(store)}", flush=True)
    return found


class _ConsoleFormat(logging.Formatter):
    """``warning: <message>`` for problems, the bare message for progress."""

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        return text if record.levelno < logging.WARNING else f"{record.levelname.lower()}: {text}"


def show_messages_on_stderr() -> None:
    """Print the package's log messages (a failing mirror, what finish is sending) on
    stderr: generated programs turn Hydra's logging off, which would silence them."""
    logger = logging.getLogger("neural_dsl_tracking")
    if logger.handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(_ConsoleFormat())
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def finish_run(tracker: Any, status: str) -> None:
    """Finish the run, saying first what the wait is for and then where the run is."""
    short = tracker.run_id[:8]
    if tracker.mirrors:
        print(f"run {short}: final plots, then sending to {', '.join(tracker.mirrors)}", flush=True)
    tracker.finish(status)
    store = tracker.store_location
    print(f"run {short} {tracker.status}, recorded in {store}: "
          f"neural experiments show {short} --store {shlex.quote(store)}", flush=True)


def _resolve(path: str, launch_dir: Path) -> Path:
    candidate = Path(path).expanduser()
    return candidate if candidate.is_absolute() else launch_dir / candidate


def write_file(directory: Path, name: str, data: Any) -> Path:
    """Write ``data`` as JSON into ``directory`` and return the file's path."""
    path = Path(directory) / name
    path.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n", encoding="utf-8")
    return path

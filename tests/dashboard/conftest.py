"""Fixtures of the dashboard tests: a real store written by ExperimentTracker, the app
served in-process by werkzeug, and a real headless Chromium driven by Playwright."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import dataclass
from types import SimpleNamespace
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
from werkzeug.serving import make_server

from neural_dsl_tracking.dashboard.app import create_app
from neural_dsl_tracking.dashboard.data import DashboardData
from neural_dsl_tracking.dashboard.figures import FIGURE_COLORS, THEMES
from neural_dsl_tracking.tracking import ExperimentTracker

# Screenshots of every tab, in both themes, go to build/screenshots/; `make screenshots` refreshes docs/img/.
SCREENSHOTS = Path(os.environ.get("NEURAL_SCREENSHOT_DIR")
                   or Path(__file__).resolve().parents[2] / "build" / "screenshots")
HOSTILE_NAME = "<b>bold</b><img src=x onerror=window.__xss=1>"
SPIKE_STEP, SPIKE_VALUE, LONG_STEPS = 12_345, 1000.0, 20_000
CHECKPOINTS = (b"first checkpoint", b"second checkpoint \x00\xff")


LOGGED = SimpleNamespace(hostile_name=HOSTILE_NAME, spike_step=SPIKE_STEP, spike_value=SPIKE_VALUE,
                         long_steps=LONG_STEPS, checkpoints=CHECKPOINTS)


@pytest.fixture(scope="session")
def logged() -> SimpleNamespace:
    """What the test store holds, for assertions."""
    return LOGGED


@dataclass
class Store:
    """The main test store and what was logged into it."""

    path: Path
    ids: dict[str, str]  # run name -> run id


def _tracker(path: Path, experiment: str, name: str, tags: list[str]) -> ExperimentTracker:
    return ExperimentTracker(experiment, base_dir=str(path), run_name=name, tags=tags, auto_visualize=False)


def build_store(path: Path, tmp: Path) -> Store:
    ids: dict[str, str] = {}
    alpha = _tracker(path, "mnist", "alpha", ["baseline"])
    alpha.log_hyperparameters({"lr": 0.01, "batch_size": 32, "optimizer": "adam", "layers": [64, 10]})
    for step in range(200):
        alpha.log_metrics({"loss": 1.0 / (step + 1), "accuracy": step / 200}, step=step)
    for number, content in enumerate(CHECKPOINTS, start=1):
        file = tmp / f"ckpt{number}.pt"
        file.write_bytes(content)
        alpha.log_artifact(file, name="checkpoint", aliases=["best"] if number == 1 else ())
    alpha.finish("completed")
    ids["alpha"] = alpha.run_id

    beta = _tracker(path, "mnist", "beta", ["sweep"])
    beta.log_hyperparameters({"lr": 0.1, "batch_size": 32, "optimizer": "sgd", "layers": [64, 10]})
    noise = np.random.default_rng(0).uniform(0.4, 0.6, LONG_STEPS)
    noise[SPIKE_STEP] = SPIKE_VALUE
    for step, value in enumerate(noise.tolist()):
        beta.log_metrics({"loss": value}, step=step)
    for step in range(200):
        beta.log_metrics({"accuracy": 0.5 + step / 1000}, step=step)
    beta.finish("completed")
    ids["beta"] = beta.run_id

    gamma = _tracker(path, "cifar", "gamma", ["sweep", "gpu"])
    gamma.log_hyperparameters({"lr": 0.05, "batch_size": 64, "optimizer": "adam"})
    for step in range(100):
        gamma.log_metrics({"loss": 2.0 - step / 100}, step=step)
    gamma.finish("failed")
    ids["gamma"] = gamma.run_id

    hostile = _tracker(path, "cifar", HOSTILE_NAME, ["<i>tag</i>"])
    hostile.log_hyperparameters({"note": "<script>window.__xss=2</script>", "lr": 0.05})
    for step in range(50):
        hostile.log_metrics({"loss": 3.0 - step / 50}, step=step)
    hostile.finish("interrupted")
    ids["hostile"] = hostile.run_id

    ids["crashed"] = crashed_run(path)
    return Store(path, ids)


def crashed_run(path: Path) -> str:
    """A run whose process was killed mid-training (SIGKILL: no finish, no final flush)."""
    script = textwrap.dedent(f"""
        import os, signal, sys, time
        from neural_dsl_tracking.tracking import ExperimentTracker
        t = ExperimentTracker("cifar", base_dir={str(path)!r}, run_name="killed", auto_visualize=False)
        for step in range(30):
            t.log_metrics({{"loss": 1.5 - step / 100}}, step=step)
        time.sleep(1.5)  # the writer flushes every 0.5 s
        print(t.run_id, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr
    return done.stdout.strip()


LONG_CHARS = 10_000


def long_name(label: str, spaced: bool = False) -> str:
    """A 10,000-character name that begins and ends with ``label`` (with spaces between words if ``spaced``)."""
    filler = ("word " if spaced else "x") * LONG_CHARS
    return (f"{label}-{filler}")[:LONG_CHARS - len(label) - 1] + f"-{label}"


LONG = SimpleNamespace(experiment=long_name("experiment"), run=long_name("run"), tag=long_name("tag", spaced=True),
                       metric=long_name("metric"), param=long_name("param"), value=long_name("value", spaced=True),
                       artifact=long_name("artifact"), chars=LONG_CHARS)


def build_long_names_store(path: Path, tmp: Path) -> str:
    """A run whose every name is 10,000 characters long, as an old store (before name limits) may hold.

    Logged with short names, then renamed in the SQLite file; returns the run id.
    """
    import json
    import sqlite3

    source = tmp / "weights.bin"
    source.write_bytes(b"weights")
    with _tracker(path, "E", "R", ["T"]) as tracker:
        tracker.log_hyperparameters({"P": "V", "lr": 0.1})
        for step in range(20):
            tracker.log_metrics({"M": step / 20, "loss": 1 / (step + 1)}, step=step)
        tracker.log_artifact(source, name="A")
    renames = [
        ("UPDATE experiments SET name = ?", (LONG.experiment,)),
        ("UPDATE runs SET experiment = ?, run_name = ?", (LONG.experiment, LONG.run)),
        ("UPDATE run_tags SET tag = ?", (LONG.tag,)),
        ("UPDATE params SET key = ?, value = ? WHERE key = 'P'", (LONG.param, json.dumps(LONG.value))),
        ("UPDATE metric_chunks SET key = ? WHERE key = 'M'", (LONG.metric,)),
        ("UPDATE metric_summary SET key = ? WHERE key = 'M'", (LONG.metric,)),
        ("UPDATE artifact_versions SET name = ?", (LONG.artifact,)),
        ("UPDATE artifact_aliases SET name = ?", (LONG.artifact,)),
    ]
    with contextlib.closing(sqlite3.connect(path / "store.db")) as db, db:
        for statement, values in renames:
            assert db.execute(statement, values).rowcount >= 1, statement
    return tracker.run_id


@pytest.fixture(scope="session")
def long_names() -> SimpleNamespace:
    """The 10,000-character names of ``long_names_store``."""
    return LONG


@pytest.fixture(scope="session")
def long_names_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store whose one run has 10,000-character experiment, run, tag, metric, parameter and artifact names."""
    root = tmp_path_factory.mktemp("long-names")
    build_long_names_store(root / "neural_experiments", root)
    return root / "neural_experiments"


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    root = tmp_path_factory.mktemp("dashboard-store")
    return build_store(root / "neural_experiments", root)


@contextlib.contextmanager
def serving(app) -> Iterator[str]:
    """Serve a Dash app on a free loopback port; yields its URL."""
    server = make_server("127.0.0.1", 0, app.server, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(5)
        server.server_close()


@pytest.fixture(scope="session")
def dashboard_url(store: Store) -> Iterator[str]:
    # the killed run's heartbeat is seconds old: report it crashed after 1 s, not 30
    data = DashboardData(store.path, crash_after=1.0)
    time.sleep(1.2)
    with serving(create_app(data=data)) as url:
        yield url


def new_page(browser, **options):
    """A page in a new browser context (``options`` of ``new_context``); its ``errors`` lists
    the page's uncaught JavaScript errors."""
    context = browser.new_context(viewport={"width": 1200, "height": 800}, **options)
    page = context.new_page()
    page.set_default_timeout(20_000)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.errors = errors
    return page


@pytest.fixture
def page(browser):
    page = new_page(browser, accept_downloads=True)
    yield page
    page.context.close()


GRAPHS_JS = """() => Array.from(document.querySelectorAll('.metric-graph .js-plotly-plot')).map(gd => ({
    title: gd.layout.title.text,
    xaxis: gd._fullLayout.xaxis.type,
    yaxis: gd._fullLayout.yaxis.type,
    traces: gd._fullData.map(t => ({name: t.name, kind: t.meta && t.meta.kind, opacity: t.opacity,
                                   x: Array.from(t.x), y: Array.from(t.y)})),
}))"""


# the page shows `theme` (args[0]) and every drawn figure has its background (args[1])
THEMED_JS = """([theme, paper]) => document.documentElement.dataset.theme === theme &&
    Array.from(document.querySelectorAll('.js-plotly-plot')).every(gd => gd._fullLayout && gd._fullLayout.paper_bgcolor === paper)"""


class Ui:
    """Small helpers to drive the dashboard page."""

    def __init__(self, page) -> None:
        self.page = page

    def open(self, url: str) -> None:
        self.page.goto(url)
        self.page.wait_for_selector("#run-table tbody tr td", state="attached")

    def rows(self) -> list[str]:
        """Run names shown in the table."""
        return self.page.locator("#run-table td[data-dash-column=run_name]").all_inner_texts()

    def wait_rows(self, expected: list[str]) -> None:
        """Wait until the table shows the runs ``expected``, in that order."""
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        try:
            self.page.wait_for_function("names => Array.from(document.querySelectorAll("
                                        "'#run-table td[data-dash-column=run_name]')).map(td => td.innerText).join() "
                                        "=== names.join()", arg=expected, timeout=10_000)
        except PlaywrightTimeout:
            assert self.rows() == expected

    def clear_selection(self) -> None:
        self.page.click("#clear-selection")
        self.page.wait_for_function("() => document.querySelectorAll('#run-table input[type=checkbox]:checked').length === 0")

    def select(self, *names: str) -> None:
        for name in names:
            row = self.page.locator("#run-table tr", has=self.page.locator("td[data-dash-column=run_name]",
                                                                              has_text=name))
            row.locator("input[type=checkbox]").check()

    def tab(self, label: str) -> None:
        self.page.get_by_text(label, exact=True).click()

    def graphs(self) -> list[dict]:
        return self.page.evaluate(GRAPHS_JS)

    def wait_graphs(self, predicate_js: str) -> list[dict]:
        """Wait until ``predicate_js(graphs)`` holds, then return the graphs."""
        self.page.wait_for_function(f"() => ({predicate_js})(({GRAPHS_JS})())")
        return self.graphs()

    def pick(self, dropdown_id: str, option: str) -> None:
        self.page.click(f"#{dropdown_id}")
        self.page.locator(".dash-dropdown-option", has_text=option).first.click()
        self.page.keyboard.press("Escape")

    def theme(self) -> str:
        """The theme the page shows."""
        return self.page.evaluate("() => document.documentElement.dataset.theme")

    def wait_theme(self, theme: str) -> None:
        """Wait until the page and every drawn figure show ``theme``."""
        self.page.wait_for_function(THEMED_JS, arg=[theme, FIGURE_COLORS[theme]["paper"]])

    def switch_theme(self) -> str:
        """Click the theme toggle and wait for the other theme; returns it."""
        target = "light" if self.theme() == "dark" else "dark"
        self.page.click("#theme-toggle")
        self.wait_theme(target)
        return target

    def screenshot(self, name: str) -> list[Path]:
        """``dashboard-NAME.png`` (light theme) and ``dashboard-NAME-dark.png``; the page ends in
        the theme it was in."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        paths = []
        for _ in THEMES:
            theme = self.theme()
            self.wait_theme(theme)
            paths.append(SCREENSHOTS / f"dashboard-{name}{'' if theme == 'light' else '-' + theme}.png")
            self.page.screenshot(path=str(paths[-1]))
            self.switch_theme()
        return paths


@pytest.fixture
def ui(page) -> Ui:
    return Ui(page)


@pytest.fixture
def ui_preferring(browser):
    """``ui_preferring(scheme)``: a ``Ui`` on a page whose browser prefers the ``"light"`` or
    ``"dark"`` colour scheme."""
    pages = []

    def open_ui(scheme: str) -> Ui:
        pages.append(new_page(browser, color_scheme=scheme))
        return Ui(pages[-1])

    yield open_ui
    for page in pages:
        page.context.close()


def start_dashboard(*args: str, cwd=None, env=None) -> tuple[subprocess.Popen, str, list[str]]:
    """Start the dashboard; returns the process, its URL and what it printed before serving."""
    process = subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, cwd=cwd, env=env)
    lines: list[str] = []
    for line in process.stdout:
        lines.append(line.rstrip("\n"))
        if line.startswith("Press Ctrl-C"):
            break
    else:
        process.wait(timeout=20)
        raise AssertionError(f"no startup report: {lines} {process.stderr.read()}")
    url = next(line.split(": ", 1)[1] for line in lines if line.startswith("Neural experiments dashboard"))
    return process, url, lines


def stop_dashboard(process: subprocess.Popen) -> tuple[int, str, str]:
    """Ctrl-C; returns the exit code and what it printed after starting."""
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=20)
    return process.returncode, out, err


@pytest.fixture(scope="session")
def launch() -> SimpleNamespace:
    """``launch.start(*args)`` runs ``python *args`` until it serves; ``launch.stop(process)``."""
    return SimpleNamespace(start=start_dashboard, stop=stop_dashboard)


@pytest.fixture(scope="session")
def serve():
    """``with serve(app) as url``: the app served on a free loopback port."""
    return serving


def wait_until(condition, timeout: float = 20.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")


@pytest.fixture(scope="session")
def eventually():
    """``eventually(condition, timeout)``: poll until ``condition()`` is truthy."""
    return wait_until

"""The light and dark themes: readable colours (computed), the browser's preference as the
default, a toggle remembered across reloads, and figures whose template follows the page."""

from __future__ import annotations

import re

import pytest

from neural_dsl_tracking.dashboard.app import ASSETS
from neural_dsl_tracking.dashboard.figures import FIGURE_COLORS, THEMES, figure_template
from neural_dsl_tracking.tracking.values import RUN_STATUSES

BODY_TEXT_CONTRAST = 4.5  # WCAG AA for body text
BACKGROUNDS = ("bg", "panel", "header-bg", "differs-bg", "best-bg")
STATUSES = RUN_STATUSES  # each has its colour in both themes


def css_variables(css: str) -> dict[str, dict[str, str]]:
    """The colour variables of dashboard.css per theme (the dark block overrides the light one)."""
    blocks = {"light": r":root\s*\{(.*?)\}", "dark": r':root\[data-theme="dark"\]\s*\{(.*?)\}'}
    found = {}
    for theme, pattern in blocks.items():
        body = re.search(pattern, css, re.S).group(1)
        found[theme] = dict(re.findall(r"--([\w-]+):\s*(#[0-9a-fA-F]{6})", body))
    found["dark"] = {**found["light"], **found["dark"]}
    return found


def luminance(color: str) -> float:
    """Relative luminance of ``#rrggbb`` (WCAG 2)."""
    channels = [int(color[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(first: str, second: str) -> float:
    """The WCAG contrast ratio of two colours, 1 to 21."""
    light, dark = sorted((luminance(first), luminance(second)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


COLORS = css_variables((ASSETS / "dashboard.css").read_text())


@pytest.mark.parametrize("theme", THEMES)
def test_text_reaches_body_text_contrast_on_every_background(theme):
    colors = COLORS[theme]
    pairs = [("fg", background) for background in BACKGROUNDS]
    pairs += [(text, background) for text in ("muted", "link", *(f"status-{s}" for s in STATUSES))
              for background in ("bg", "panel", "header-bg")]
    low = {pair: round(contrast(colors[pair[0]], colors[pair[1]]), 2) for pair in pairs
           if contrast(colors[pair[0]], colors[pair[1]]) < BODY_TEXT_CONTRAST}
    assert low == {}
    figure = FIGURE_COLORS[theme]
    assert figure["text"] == colors["fg"] and figure["paper"] == colors["panel"]  # figures sit on panels
    assert figure["hover"] == colors["panel" if theme == "light" else "header-bg"]
    assert contrast(figure["text"], figure["paper"]) >= BODY_TEXT_CONTRAST
    assert contrast(figure["text"], figure["hover"]) >= BODY_TEXT_CONTRAST


def page_colors(page) -> dict[str, str]:
    return page.evaluate("""() => ({theme: document.documentElement.dataset.theme,
        background: getComputedStyle(document.body).backgroundColor, text: getComputedStyle(document.body).color,
        papers: Array.from(document.querySelectorAll('.js-plotly-plot')).map(gd => gd._fullLayout.paper_bgcolor),
        fonts: Array.from(document.querySelectorAll('.js-plotly-plot')).map(gd => gd._fullLayout.font.color)})""")


def rgb(color: str) -> str:
    return "rgb({}, {}, {})".format(*(int(color[i:i + 2], 16) for i in (1, 3, 5)))


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.parametrize("scheme", THEMES)
def test_theme_follows_the_browsers_colour_scheme(ui_preferring, dashboard_url, scheme):
    ui = ui_preferring(scheme)
    page = ui.page
    ui.open(dashboard_url)
    ui.wait_graphs("gs => gs.length >= 1")
    ui.wait_theme(scheme)
    shown = page_colors(page)
    assert shown["background"] == rgb(COLORS[scheme]["bg"]) and shown["text"] == rgb(COLORS[scheme]["fg"])
    assert set(shown["papers"]) == {FIGURE_COLORS[scheme]["paper"]}
    assert set(shown["fonts"]) == {FIGURE_COLORS[scheme]["text"]}
    assert page.errors == []


@pytest.mark.browser
@pytest.mark.slow
def test_toggle_switches_in_place_and_is_remembered(ui_preferring, dashboard_url):
    ui = ui_preferring("light")
    page = ui.page
    ui.open(dashboard_url)
    graphs = ui.wait_graphs("gs => gs.length >= 1")
    ui.wait_theme("light")
    # mark the drawn charts: a theme switch swaps their template, it does not draw new ones
    page.evaluate("() => document.querySelectorAll('.js-plotly-plot').forEach(gd => { gd.__drawnBefore = true; })")
    assert ui.switch_theme() == "dark"
    assert page.evaluate("() => Array.from(document.querySelectorAll('.js-plotly-plot')).every(gd => gd.__drawnBefore)")
    template = page.evaluate("() => document.querySelector('.metric-graph .js-plotly-plot').layout.template")
    assert template == figure_template("dark")
    assert len(ui.graphs()) == len(graphs)
    assert page.evaluate("() => window.localStorage.getItem('theme-choice')") == '"dark"'

    page.reload()
    page.wait_for_selector("#run-table tbody tr td", state="attached")
    ui.wait_graphs("gs => gs.length >= 1")
    ui.wait_theme("dark")  # remembered, although the browser prefers light
    assert page_colors(page)["background"] == rgb(COLORS["dark"]["bg"])

    ui.tab("Parallel coordinates")
    page.wait_for_selector("#parallel-graph .js-plotly-plot")
    ui.wait_theme("dark")  # drawn after the switch: with the dark template from the server
    assert ui.switch_theme() == "light"
    page.reload()
    page.wait_for_selector("#run-table tbody tr td", state="attached")
    ui.wait_theme("light")
    assert page.errors == []

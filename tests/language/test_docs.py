"""docs/language.md: every ```neural example parses, and the reference tables match the
code (layer catalogue, tracking keys)."""

from __future__ import annotations

import re

import pytest

from neural_dsl_tracking.language import parse_text
from neural_dsl_tracking.language.layers import LAYERS
from neural_dsl_tracking.plugins.tracking import TrackingSpec

from .conftest import REPO

DOC = (REPO / "docs" / "language.md").read_text(encoding="utf-8")
EXAMPLES = re.findall(r"```neural\n(.*?)```", DOC, flags=re.DOTALL)


def test_the_reference_has_examples() -> None:
    assert len(EXAMPLES) >= 6


@pytest.mark.parametrize("index", range(len(EXAMPLES)))
def test_every_example_parses(index: int) -> None:
    assert parse_text(EXAMPLES[index], f"docs/language.md[{index}]").networks


def network(name: str):
    for text in EXAMPLES:
        for net in parse_text(text).networks:
            if net.name == name:
                return net
    raise AssertionError(f"no example network {name}")


def test_examples_mean_what_the_text_says() -> None:
    assert len(network("WithMacros").layers) == 8
    small, large = network("Small"), network("Large")
    assert small.plugins.get("tracking").backend == ["local", "mlflow", "tensorboard"]
    assert small.plugins.get("tracking").experiment == "Small"
    assert large.plugins.get("tracking").experiment == "large-models"
    assert large.plugins.get("tracking").mlflow.tracking_uri == "sqlite:///mlflow.db"  # kept from the top level
    assert network("Scheduled").optimizer.schedule.decay_steps == 1000
    layers = network("Layers").layers
    assert [l.type for l in layers] == ["Conv2D", "ResidualConnection", "ResidualConnection",
                                        "GlobalAveragePooling2D", "Dense", "Output"]


def test_the_layer_table_matches_the_catalogue() -> None:
    rows = dict(re.findall(r"^\| `(\w+)` \| ([^|]+) \|", DOC, flags=re.MULTILINE))
    assert set(rows) == set(LAYERS)
    for name, info in LAYERS.items():
        documented = [p.strip() for p in rows[name].split(",")] if rows[name].strip() != "—" else []
        assert documented == list(info.positional), name


def test_every_tracking_key_is_documented() -> None:
    keys = []
    for name, field in TrackingSpec.model_fields.items():
        sub = field.annotation
        if isinstance(sub, type) and hasattr(sub, "model_fields"):
            keys += [f"{name}.{inner}" for inner in sub.model_fields]
        else:
            keys.append(name)
    for key in keys:
        assert f"\n| {key} |" in DOC, key


def test_the_readme_example_parses_with_its_tracking_line() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    (example,) = re.findall(r"```neural\n(.*?)```", readme, flags=re.DOTALL)
    net = parse_text(example, "README.md").network()
    assert [layer.type for layer in net.layers] == ["Flatten", "Dense", "Dropout", "Output"]
    assert net.plugins.get("tracking").backend == ["local", "tensorboard"]
    assert (net.plugins.get("tracking").monitor, net.plugins.get("tracking").mode, net.plugins.get("tracking").visualize_every) == ("val_accuracy", "max", 50)

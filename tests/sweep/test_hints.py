"""A value of the sweep block spelt as elsewhere gets the one meant: ``direction: max`` (the
tracking block's ``mode`` spelling) ``maximize``, ``sampler: bayesian`` (the ``train`` block's
``search_method`` spelling) ``tpe``; in the file with a caret, and as an override."""

from __future__ import annotations

from pathlib import Path

import pytest

from neural_dsl_tracking.cli import main
from neural_dsl_tracking.errors import NeuralValidationError
from neural_dsl_tracking.language import parse_text

from .conftest import write_network

NET = """network N {{
  input: (8, 8, 1)
  layers: Flatten() Dense(HPO(choice(16, 32)), "relu") Output(10, "softmax")
  loss: "sparse_categorical_crossentropy"
  sweep < {setting} >
}}
"""

SPELLINGS = [("direction", "max", "maximize"), ("direction", "min", "minimize"),
             ("sampler", "bayesian", "tpe")]


@pytest.mark.parametrize(("key", "written", "meant"), SPELLINGS)
def test_the_block_says_which_value_is_meant(key: str, written: str, meant: str) -> None:
    with pytest.raises(NeuralValidationError) as info:
        parse_text(NET.format(setting=f"{key}: {written}"), "m.neural")
    lines = str(info.value).splitlines()
    column = 11 + len(key) + 2
    assert lines[0] == (f"m.neural:5:{column}: '{key}' cannot be \"{written}\"; did you mean '{meant}'? "
                        f"(known: {'minimize, maximize' if key == 'direction' else 'tpe, random, grid'})")
    assert lines[2].endswith(" " * (column - 1) + "^" + "~" * (len(written) - 1))


def test_an_override_says_which_value_is_meant(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    write_network(tmp_path, "runs")
    monkeypatch.chdir(tmp_path)
    assert main(["sweep", "model.neural", "sweep.direction=max", "sweep.sampler=bayesian"]) == 1
    err = capsys.readouterr().err
    assert "sweep.direction='max': Input should be 'minimize' or 'maximize'; did you mean 'maximize'?\n" in err
    assert "sweep.sampler='bayesian': Input should be 'tpe', 'random' or 'grid'; did you mean 'tpe'?\n" in err
    assert "Traceback" not in err and not (tmp_path / "runs" / "runs").exists()


@pytest.mark.parametrize(("method", "meant"), [("tpe", "bayesian"), ("bayes", "bayesian"), ("randomized", "random")])
def test_a_search_method_spelt_as_a_sampler_or_misspelt_gets_the_one_meant(method: str, meant: str) -> None:
    from neural_dsl_tracking.compiler.build import check_network
    from neural_dsl_tracking.errors import CompileError

    text = NET.format(setting="").replace("  sweep <", f'  train {{ search_method: "{method}" }}\n  sweep <')
    with pytest.raises(CompileError) as info:
        check_network(parse_text(text, "m.neural").network(), "m.neural", text)
    assert (f"train search_method '{method}' is not a way the sweep searches; did you mean '{meant}'? "
            "(known: random, bayesian, grid)") in str(info.value)

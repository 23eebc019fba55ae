"""The syntax the original Neural DSL's docs use (issue 11, item 4): ``macro``, macros with
parameters, arithmetic, ``name: value`` in calls, ``* HPO(...)`` repeats, named inputs,
layer names in any letter case, integral floats, ``epochs:`` beside the sections and
``"cuda:1"``/``"tpu:0"`` devices. Each form: the spec it gives; the invalid forms: their
located messages."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from neural_dsl_tracking.errors import NeuralError, NeuralSyntaxError, NeuralValidationError
from neural_dsl_tracking.language import parse_file, parse_text
from neural_dsl_tracking.language.layer_expansion import MAX_DEPTH
from neural_dsl_tracking.language.spec import ChoiceHPO, ModelSpec, RangeHPO

from .test_cli import neural
from .test_errors import assert_points_at, error_of


def network(layers: str, before: str = "", after: str = "", input_: str = "(28, 28, 1)") -> str:
    """A file with one network ``N`` (layers on their own lines from line ``2 + before's``)."""
    return f"{before}network N {{\n  input: {input_}\n  layers:\n{layers}\n{after}}}\n"


def net(text: str) -> ModelSpec:
    return parse_text(text, "model.neural").networks[0]


def params(text: str) -> list[tuple[str, dict]]:
    return [(layer.type, layer.params) for layer in net(text).layers]


# ------------------------------------------------------------------ macro keyword


def test_macro_is_an_alias_of_define() -> None:
    text = network("    Block\n    Block", before="macro Block { Dense(8) Dropout(0.1) }\n")
    assert params(text) == [("Dense", {"units": 8}), ("Dropout", {"rate": 0.1})] * 2


# ------------------------------------------------------------------ macros with parameters

BLOCK = "define Block(filters, rate=0.25) {\n  Conv2D(filters, (3, 3), activation=\"relu\")\n  Dropout(rate)\n}\n"


def test_parametrised_macro_positional_keyword_colon_and_default() -> None:
    text = network("    Block(16)\n    Block(32, 0.5)\n    Block(filters=8)\n    Block(rate: 0.1, filters: 4)",
                   before=BLOCK)
    conv = lambda n: ("Conv2D", {"filters": n, "kernel_size": [3, 3], "activation": "relu"})  # noqa: E731
    assert params(text) == [conv(16), ("Dropout", {"rate": 0.25}), conv(32), ("Dropout", {"rate": 0.5}),
                            conv(8), ("Dropout", {"rate": 0.25}), conv(4), ("Dropout", {"rate": 0.1})]
    assert isinstance(net(text).layers[0].params["filters"], int)


def test_parameters_substitute_inside_arithmetic_hpo_tuples_and_repeats() -> None:
    before = ("define Stack(width, n) {\n"
              "  Dense(width * 2, activation=\"relu\") * n\n"
              "  Dense(HPO(choice(width, width // 2)))\n"
              "  Reshape((width, 2))\n"
              "}\n")
    layers = net(network("    Stack(8, 3)", before=before)).layers
    assert [(l.type, l.params) for l in layers] == [
        ("Dense", {"units": 16, "activation": "relu"})] * 3 + [
        ("Dense", {"units": ChoiceHPO(options=[8, 4])}), ("Reshape", {"target_shape": [8, 2]})]


def test_parametrised_macros_use_each_other_and_plain_macros() -> None:
    before = ("define Inner(u) { Dense(u) }\n"
              "define Outer(u) { Inner(u) Inner(u + 1) Plain }\n"
              "define Plain { Dropout(0.1) }\n")
    assert params(network("    Outer(4)", before=before)) == [
        ("Dense", {"units": 4}), ("Dense", {"units": 5}), ("Dropout", {"rate": 0.1})]


def test_unknown_parameter_is_located_with_did_you_mean() -> None:
    error = error_of(network("    Block(filter=16)", before=BLOCK), NeuralValidationError)
    assert "macro 'Block' has no parameter 'filter'; did you mean 'filters'?" in str(error)
    assert_points_at(error, 8, 11, width=6)


def test_missing_parameter_is_located() -> None:
    error = error_of(network("    Block(rate=0.1)", before=BLOCK), NeuralValidationError)
    assert "macro 'Block' needs 'filters' (it takes filters, rate)" in str(error)
    assert_points_at(error, 8, 5, width=5)


def test_too_many_arguments_and_bad_values_are_located() -> None:
    error = error_of(network("    Block(16, 0.1, 3)", before=BLOCK), NeuralValidationError)
    assert "macro 'Block' takes at most 2 positional arguments (filters, rate)" in str(error)
    error = error_of(network("    Block(\"wide\")", before=BLOCK), NeuralValidationError)
    assert "Conv2D: 'filters' must be a positive integer, got \"wide\"" in str(error)


def test_a_parameter_named_twice_and_a_plain_macro_given_arguments() -> None:
    error = error_of(network("    Dense(1)", before="define B(a, a) { Dense(a) }\n"), NeuralValidationError)
    assert "macro 'B': parameter 'a' is named twice" in str(error)
    error = error_of(network("    P(3)", before="define P { Dense(1) }\n"), NeuralValidationError)
    assert "macro 'P' takes no arguments" in str(error)


def test_a_cycle_through_parametrised_macros_is_reported() -> None:
    before = "define A(x) { B(x) }\ndefine B(y) { A(y) }\n"
    error = error_of(network("    A(1)", before=before), NeuralValidationError)
    assert "uses itself: A -> B -> A" in str(error)


def test_parametrised_macros_keep_the_expansion_limits() -> None:
    before = "define D(u) { Dense(u) * 5000 }\ndefine E(u) { D(u) D(u + 1) D(u + 2) }\n"
    error = error_of(network("    E(1)", before=before), NeuralValidationError)
    assert "the layers of macro 'E' expand to more than 10000 layers" in str(error)
    chain = "".join(f"define P{i}(u) {{ P{i + 1}(u) }}\n" for i in range(MAX_DEPTH + 5))
    chain += f"define P{MAX_DEPTH + 5}(u) {{ Dense(u) }}\n"
    error = error_of(network("    P0(2)", before=chain), NeuralValidationError)
    assert f"macros with parameters use each other more than {MAX_DEPTH} deep" in str(error)


def test_different_arguments_give_different_layers_and_the_same_ones_are_copies() -> None:
    layers = net(network("    Block(4)\n    Block(4)", before=BLOCK)).layers
    assert layers[0] == layers[2] and layers[0] is not layers[2]


# ------------------------------------------------------------------ arithmetic


@pytest.mark.parametrize("written,expected", [
    ("7*7*64", 3136), ("2**8", 256), ("(1 + 2) * 3", 9), ("100 // 3", 33), ("100 % 7", 2),
    ("-(-5)", 5), ("10 - 2 - 3", 5), ("2 ** 3 ** 2", 512), ("128 / 2", 64), ("+4", 4),
])
def test_arithmetic_in_integer_parameters(written: str, expected: int) -> None:
    units = params(network(f"    Dense({written})"))[0][1]["units"]
    assert units == expected and type(units) is int


def test_arithmetic_in_named_arguments_floats_and_train_settings() -> None:
    spec = net(network("    Dense(units: 2**8)\n    Dropout(1 / 4)", after="  train { epochs: 2 * 5 }\n"))
    assert spec.layers[0].params == {"units": 256} and spec.layers[1].params == {"rate": 0.25}
    assert spec.train.epochs == 10


@pytest.mark.parametrize("written,message,column", [
    ("1 / 0", "division by zero in '/'", 11),
    ("5 // (2 - 2)", "division by zero in '//'", 11),
    ("2**100000", "the result is out of range: integers are up to 64 bits", 11),
    ("2**63", "the result is out of range", 11),
    ("9223372036854775807 + 1", "the result is out of range", 11),
    ("10.0 ** 400", "the result is out of range", 11),
    ("\"a\" * 2", "arithmetic takes numbers, got \"a\"", 11),
    ("units * 2", "'units' is not a number (arithmetic takes numbers and the parameters of a macro)", 11),
])
def test_arithmetic_errors_are_located(written: str, message: str, column: int) -> None:
    error = error_of(network(f"    Dense({written})"), NeuralValidationError)
    assert message in str(error)
    assert str(error).startswith(f"model.neural:4:{column}: ")


def test_a_huge_power_is_refused_without_computing_it() -> None:
    import time

    started = time.perf_counter()
    error_of(network("    Dense(7 ** 999999999999)"), NeuralValidationError)
    assert time.perf_counter() - started < 1


@pytest.mark.parametrize("written", ["+".join(["1"] * 5000), "-" * 5000 + "1", "2" + "**1" * 5000])
def test_long_operator_chains_are_one_located_error(written: str) -> None:
    error = error_of(network(f"    Dense({written})"), NeuralSyntaxError)
    assert "arithmetic nested more than 64 operators deep" in str(error)
    assert str(error).startswith("model.neural:4:") and len(error.diagnostics) == 1


@pytest.mark.parametrize("body", ["(u, u)", "u" + "+1" * 60])
def test_arguments_growing_through_macros_are_refused(body: str) -> None:
    chain = "".join(f"define P{i}(u) {{ P{i + 1}({body}) }}\n" for i in range(60))
    error = error_of(network("    P0(1)", before=chain + "define P60(u) { Dense(u) }\n"), NeuralValidationError)
    assert "the value of 'u' grows beyond 10000 parts or 256 levels of nesting" in str(error)


def test_a_stray_operator_is_a_syntax_error_naming_a_value() -> None:
    error = error_of(network("    Dense(4 * )"), NeuralSyntaxError)
    assert "unexpected ')'; expected a value" in str(error)


# ------------------------------------------------------------------ name: value


def test_colon_arguments_mean_the_same_as_equals() -> None:
    colon = params(network("    Conv2D(filters: 8, kernel_size: (3, 3), activation: \"relu\")"))
    equals = params(network("    Conv2D(filters=8, kernel_size=(3, 3), activation=\"relu\")"))
    assert colon == equals
    optimizer = net(network("    Dense(2)", after="  optimizer: Adam(learning_rate: 0.01)\n")).optimizer
    assert optimizer is not None and optimizer.params == {"learning_rate": 0.01}


# ------------------------------------------------------------------ HPO repeat count


def test_hpo_repeat_count_expands_to_the_first_choice_and_keeps_the_space() -> None:
    spec = net(network("    Dense(4) * HPO(choice(6, 12))\n    Dense(2)"))
    assert [layer.type for layer in spec.layers] == ["Dense"] * 7
    assert spec.layers[0].repeat == ChoiceHPO(options=[6, 12])
    assert all(layer.repeat is None for layer in spec.layers[1:])


def test_hpo_range_repeat_count_has_integer_bounds() -> None:
    spec = net(network("    Dense(4) * HPO(range(2, 8, step=2))"))
    assert len(spec.layers) == 2
    space = spec.layers[0].repeat
    assert isinstance(space, RangeHPO) and (space.start, space.stop, space.step) == (2, 8, 2)


def test_arithmetic_and_parameters_as_repeat_counts() -> None:
    assert len(net(network("    Dense(4) * (2 * 3)")).layers) == 6


@pytest.mark.parametrize("count,message", [
    ("HPO(choice(2, 0))", "a repeat count must be a positive integer, got HPO(choice(2, 0))"),
    ("HPO(choice(2, 2.5))", "a repeat count must be a positive integer"),
    ("HPO(log_range(1, 8))", "a repeat count takes HPO(choice(...)) or HPO(range(...))"),
    ("HPO(choice(2, 20000))", "the layers of network 'N' expand to more than 10000 layers"),
])
def test_bad_hpo_repeat_counts(count: str, message: str) -> None:
    assert message in str(error_of(network(f"    Dense(4) * {count}"), NeuralValidationError))


# ------------------------------------------------------------------ named inputs


def test_named_inputs_are_kept_in_order() -> None:
    spec = net(network("    Dense(2)", input_="{ image: (64, 64, 3), text: (100,) }"))
    assert spec.input.named == {"image": [64, 64, 3], "text": [100]}
    assert spec.input.shape == [64, 64, 3]


def test_named_input_errors() -> None:
    error = error_of(network("    Dense(2)", input_="{ a: (4,), a: (5,) }"), NeuralValidationError)
    assert "input 'a' is given twice" in str(error)
    error = error_of(network("    Dense(2)", input_="{ a: (0,) }"), NeuralValidationError)
    assert "an input dimension must be a positive integer or None, got 0" in str(error)


# ------------------------------------------------------------------ letter case


def test_layer_names_in_any_case_are_read_with_a_warning() -> None:
    parsed = parse_text(network("    dense(64)\n    CONV2D(8, 3)\n    Dense(2)", input_="(8, 8, 1)"), "model.neural")
    assert [layer.type for layer in parsed.networks[0].layers] == ["Dense", "Conv2D", "Dense"]
    assert len(parsed.warnings) == 2
    assert parsed.warnings[0].startswith("model.neural:4:5: layer 'dense' is spelled 'Dense'; read as Dense")
    assert "CONV2D" in parsed.warnings[1] and "'Conv2D'" in parsed.warnings[1]


def test_a_macro_is_not_matched_in_another_case() -> None:
    error = error_of(network("    block", before="define Block { Dense(1) }\n"), NeuralValidationError)
    assert "unknown layer 'block'; did you mean 'Block'?" in str(error)


# ------------------------------------------------------------------ integral floats


@pytest.mark.parametrize("written,expected", [("64.0", 64), ("1e3", 1000), ("2.5e1", 25), ("640e-1", 64)])
def test_integral_floats_are_integers(written: str, expected: int) -> None:
    units = params(network(f"    Dense({written})"))[0][1]["units"]
    assert units == expected and type(units) is int


def test_integral_floats_in_tuples_train_settings_and_hpo_choices() -> None:
    spec = net(network("    Conv2D(8.0, (3.0, 3))\n    Dense(HPO(choice(32.0, 64)))",
                       after="  epochs: 1e1\n"))
    assert spec.layers[0].params == {"filters": 8, "kernel_size": [3, 3]}
    assert spec.layers[1].params["units"] == ChoiceHPO(options=[32, 64])
    assert type(spec.train.epochs) is int and spec.train.epochs == 10


def test_a_value_that_is_not_integral_is_a_located_error() -> None:
    error = error_of(network("    Dense(64.5)"), NeuralValidationError)
    assert "Dense: 'units' must be a positive integer, got 64.5" in str(error)
    assert_points_at(error, 4, 11, width=4)
    error = error_of(network("    Dense(1e30)"), NeuralValidationError)
    assert "must be a positive integer" in str(error)


# ------------------------------------------------------------------ settings beside the sections


def test_epochs_and_batch_size_beside_the_sections_fill_train() -> None:
    beside = net(network("    Dense(2)", after="  epochs: 15\n  batch_size: 64\n  loss: \"mse\"\n"))
    inside = net(network("    Dense(2)", after="  train { epochs: 15 batch_size: 64 }\n  loss: \"mse\"\n"))
    assert beside.train == inside.train and beside.train.epochs == 15


def test_settings_beside_and_inside_train_merge_and_repeats_are_errors() -> None:
    spec = net(network("    Dense(2)", after="  epochs: 3\n  train { batch_size: 8 }\n"))
    assert (spec.train.epochs, spec.train.batch_size) == (3, 8)
    error = error_of(network("    Dense(2)", after="  epochs: 3\n  train { epochs: 4 }\n"), NeuralValidationError)
    assert "train setting 'epochs' is given twice" in str(error)
    error = error_of(network("    Dense(2)", after="  epochs: 0\n"), NeuralValidationError)
    assert "epochs must be a positive integer, got 0" in str(error)


def test_an_unknown_name_beside_the_sections_is_a_located_error() -> None:
    error = error_of(network("    Dense(2)", after="  epoch: 3\n"), NeuralValidationError)
    assert "unknown section 'epoch'; did you mean 'epochs'?" in str(error)
    assert_points_at(error, 5, 3, width=5)


# ------------------------------------------------------------------ devices


@pytest.mark.parametrize("device", ["cuda:1", "tpu:0", "tpu", "cuda"])
def test_device_strings(device: str) -> None:
    spec = net(network(f"    Dense(2) @ \"{device}\"", after=f"  execution {{ device: \"{device}\" }}\n"))
    assert spec.execution.device == device and spec.layers[0].device == device


def test_an_unknown_device_is_located() -> None:
    error = error_of(network("    Dense(2)", after="  execution { device: \"tpux\" }\n"), NeuralValidationError)
    assert "unknown device 'tpux'; did you mean 'tpu'?" in str(error)


def test_the_spec_json_has_no_warnings_field() -> None:
    from neural_dsl_tracking.language.spec import to_jsonable

    parsed = parse_text(network("    dense(2)"), "model.neural")
    assert parsed.warnings and "warnings" not in to_jsonable(parsed)


def test_errors_keep_their_form() -> None:
    error = error_of(network("    Dense(1 / 0)"), NeuralError)
    lines = str(error).splitlines()
    assert lines[0] == "model.neural:4:11: division by zero in '/'"
    assert lines[1] == "  4 |     Dense(1 / 0)" and lines[2] == "    |           ^~~~~"


# ------------------------------------------------------------------ whole programs in the docs' style

CORPUS_ORIGINAL = Path(__file__).with_name("corpus_original")
PROGRAMS = sorted(CORPUS_ORIGINAL.glob("*.neural"))


def expectation(path: Path) -> str:
    """The first line: ``# expect: forward`` or ``# expect: compile-error: <message>``."""
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# expect: "), path
    return first.removeprefix("# expect: ")


def test_neural_check_accepts_every_program_and_warns_about_letter_case() -> None:
    """Every program but the d_model mismatch (a real mistake, refused at its layer as
    compile refuses it) passes neural check; what this backend cannot build (a custom layer,
    Lambda, Add, two named inputs, a TPU) is a note."""
    result = neural("check", *map(str, PROGRAMS))
    assert result.returncode == 1, result.stderr
    assert f"{len(PROGRAMS) - 1} of {len(PROGRAMS)} files valid" in result.stdout
    assert result.stderr.count("error: ") == 1, result.stderr
    assert "layers_d_model_mismatch.neural:5:5: layer TransformerEncoder: d_model=512" in result.stderr
    for name in ("device_tpu", "layers_custom_block", "layers_lambda", "layers_merge", "named_inputs"):
        assert f"note: {CORPUS_ORIGINAL / name}.neural:" in result.stderr, name
    assert "warning: " in result.stderr and "layer 'conv2d' is spelled 'Conv2D'" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("path", PROGRAMS, ids=lambda p: p.stem)
def test_program_compiles_to_a_forward_pass_or_a_clear_error(path: Path, tmp_path: Path) -> None:
    import torch

    from neural_dsl_tracking.compiler import compile_network, compile_program
    from neural_dsl_tracking.errors import CompileError

    spec = parse_file(path).networks[0]
    expected = expectation(path)
    if expected.startswith("compile-error: "):
        with pytest.raises(CompileError) as caught:
            compile_program(spec, path.name)
        assert expected.removeprefix("compile-error: ") in str(caught.value)
        assert str(caught.value).startswith(f"{path.name}:")
        return
    assert expected == "forward"
    model, module = _built(compile_network(spec, path, tmp_path / "out"))
    shape = tuple(7 if d is None else d for d in model.input_shape)
    x = torch.randint(0, module.TOKENS, (2, *shape)) if module.TOKENS else torch.randn(2, *shape)
    with torch.no_grad():
        y = model.eval()(x)
    assert tuple(y.shape) == (2, *(7 if d is None else d for d in model.output_shape))
    assert torch.isfinite(y).all()


def _built(train_py: Path) -> tuple[Any, ModuleType]:
    """The generated program imported, and its network built with the config's defaults."""
    import yaml

    from neural_dsl_tracking.compiler import runtime

    loader = importlib.util.spec_from_file_location(f"program_{train_py.parent.parent.name}", train_py)
    assert loader and loader.loader
    module = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(module)
    config = yaml.safe_load((train_py.parent / "conf" / "config.yaml").read_text())
    cls = next(v for v in vars(module).values() if isinstance(v, type) and hasattr(v, "head_activation"))
    return cls(runtime.hyperparameters(config["model"])), module


def test_the_hpo_repeat_space_is_in_the_compiled_config(tmp_path: Path) -> None:
    import yaml

    from neural_dsl_tracking.compiler import compile_network

    path = CORPUS_ORIGINAL / "hpo_repeat_transformer.neural"
    train_py = compile_network(parse_file(path).networks[0], path, tmp_path / "out")
    config = yaml.safe_load((train_py.parent / "conf" / "config.yaml").read_text())
    space = config["hpo"]["space"]["repeat.hpo_repeat_transformer.neural:5:5"]
    assert space == {"type": "choice", "values": [2, 4], "layer": "TransformerEncoder"}
    assert sum("encoder" in line and "= " in line for line in train_py.read_text().splitlines()) >= 2


def test_neural_compile_refuses_named_inputs_with_one_located_line(tmp_path: Path) -> None:
    result = neural("compile", str(CORPUS_ORIGINAL / "named_inputs.neural"), "-o", str(tmp_path / "out"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: named_inputs.neural:3:3: network MultiModal has 2 named inputs")


def test_neural_check_summary_names_the_inputs() -> None:
    result = neural("check", str(CORPUS_ORIGINAL / "named_inputs.neural"))
    assert result.returncode == 0, result.stderr
    assert "network MultiModal: inputs image (64, 64, 3), text (100), 4 layers" in result.stdout

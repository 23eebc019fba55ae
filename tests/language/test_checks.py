"""What ``neural check`` verifies (issue 11 item 5): the checks the original Neural DSL made
and shape inference, each rejection in the language's form (``file:line:col``, the source
line, a caret under the layer or value), the same rejection ``neural compile`` makes.

Each check has a valid program that passes and the invalid form with its message."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from neural_dsl_tracking.cli import main

HEAD = 'network Net {\n  input: (8, 8, 1)\n  layers:\n'
"""The first three lines of most programs here: layers start on line 4, column 5."""


def check(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str], name: str = "m.neural") -> tuple[int, str]:
    """``neural check`` of ``text`` (run in ``tmp_path``): its exit code and stderr."""
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    code = main(["check", str(path)])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.err.replace(str(tmp_path) + os.sep, "")


def program(*layers: str, tail: str = "") -> str:
    return HEAD + "".join(f"    {layer}\n" for layer in layers) + tail + "}\n"


def located(message: str, line: str, caret: str) -> str:
    """A rendered error: the message, the source line and the caret line, as check prints them."""
    number = message.split(":")[1]
    return f"{message}\n  {number} | {line}\n  {' ' * len(number)} | {caret}\n"


def test_a_conv2d_after_a_dense_is_refused_at_its_layer_with_the_incoming_shape(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = ('network Bad { input: (28, 28, 1)  layers: Flatten() Dense(64) Conv2D(32, (3, 3), "relu") Flatten() '
            'Output(10, "softmax")\n  loss: "categorical_crossentropy" optimizer: Adam(learning_rate=0.001) }\n')
    code, err = check(tmp_path, text, capsys)
    assert code == 1
    assert err == "error: " + located(
        "m.neural:1:63: layer Conv2D: expects 2 spatial axes and channels (rank 3 per sample), but its input is (64,)",
        text.splitlines()[0], " " * 62 + "^~~~~~")
    valid = text.replace("Flatten() Dense(64) Conv2D", "Conv2D")
    assert check(tmp_path, valid, capsys) == (0, "")


def test_check_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert check(tmp_path, program("Flatten()", 'Output(10, "softmax")'), capsys) == (0, "")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.neural"]


@pytest.mark.parametrize("layer, message", [
    ('Conv2D(8, (9, 9), padding="same")', "kernel_size 9 is larger than its input (8, 8, 1) (spatial size (8, 8))"),
    ("Conv2D(8, (3, 9))", "kernel_size (3, 9) is larger than its input (8, 8, 1) (spatial size (8, 8))"),
    ("Conv2D(8, 3, dilation_rate=4)",
     "kernel_size 3 with dilation_rate 4 (a window of 9) is larger than its input (8, 8, 1) (spatial size (8, 8))"),
    ("Conv2D(8, 3, strides=9)", "strides 9 is larger than its input (8, 8, 1) (spatial size (8, 8))"),
    ('MaxPooling2D((16, 16), padding="same")', "pool_size 16 is larger than its input (8, 8, 1) (spatial size (8, 8))"),
    ("AveragePooling2D(2, strides=(1, 9))", "strides (1, 9) is larger than its input (8, 8, 1) (spatial size (8, 8))"),
    ("SeparableConv2D(8, 9)", "kernel_size 9 is larger than its input (8, 8, 1) (spatial size (8, 8))"),
    ("Cropping2D(4)", "cropping (4, 4) leaves nothing of its input (8, 8, 1)"),
])
def test_a_window_larger_than_its_input_is_one_message_at_the_layer(
        layer: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = check(tmp_path, program(layer, "Flatten()", 'Output(10, "softmax")'), capsys)
    assert code == 1
    name = layer.split("(")[0]
    assert err == "error: " + located(f"m.neural:4:5: layer {name}: {message}", f"    {layer}",
                                      "    ^" + "~" * (len(name) - 1))


@pytest.mark.parametrize("layer", ['Conv2D(8, (8, 8), padding="same")', "Conv2D(8, 3, strides=8)",
                                   "MaxPooling2D((8, 8))", "Conv2D(8, 2, dilation_rate=7)", "Cropping2D(3)"])
def test_a_window_as_large_as_its_input_fits(layer: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert check(tmp_path, program(layer, "Flatten()", 'Output(10, "softmax")'), capsys) == (0, "")


def test_shape_messages_give_the_incoming_shape(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = "network T {\n  input: (10, 64)\n  layers:\n    TransformerEncoder(num_heads=8, d_model=512)\n" \
           '    GlobalAveragePooling1D()\n    Output(3, "softmax")\n}\n'
    code, err = check(tmp_path, text, capsys)
    assert code == 1
    assert err.startswith("error: m.neural:4:5: layer TransformerEncoder: d_model=512, but its input has 64 "
                          "features (put Dense(512) before it, or make d_model match) (its input is (10, 64))\n")


def test_a_misspelt_loss_is_refused_by_check_with_did_you_mean(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    code, err = check(tmp_path, program("Flatten()", 'Output(10, "softmax")',
                                        tail='  loss: "categorical_crossentropie"\n'), capsys)
    assert code == 1
    assert err.startswith("error: m.neural:6:9: loss 'categorical_crossentropie' is not supported; did you mean "
                          "'categorical_crossentropy'?; supported losses: sparse_categorical_crossentropy, ")
    assert err.endswith('\n  6 |   loss: "categorical_crossentropie"\n    |         ' + "^" + "~" * 26 + "\n")


@pytest.mark.parametrize("output, loss, message", [
    ('Output(3, "sigmoid")', "binary_crossentropy",
     "m.neural:6:9: binary_crossentropy needs an output layer with 1 unit (the probability of the positive class), "
     "but the network outputs (3,); for 3 classes use categorical_crossentropy"),
    ('Output(3, "softmax")', "binary_crossentropy",
     "m.neural:6:9: binary_crossentropy with a 3-unit softmax output is ambiguous"),
    ('Output(1, "softmax")', "categorical_crossentropy",
     "m.neural:6:9: categorical_crossentropy needs an output layer with at least 2 units (one per class), "
     "but the network outputs (1,)"),
])
def test_the_output_layer_is_checked_against_the_loss(output: str, loss: str, message: str, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    code, err = check(tmp_path, program("Flatten()", output, tail=f"  loss: {loss}\n"), capsys)
    assert code == 1
    assert err.startswith(f"error: {message}"), err
    assert f"\n  6 |   loss: {loss}\n    |         ^{'~' * (len(loss) - 1)}\n" in err


@pytest.mark.parametrize("output, loss", [('Output(1, "sigmoid")', "binary_crossentropy"),
                                          ('Output(2, "softmax")', "binary_crossentropy"),
                                          ('Output(10, "softmax")', "categorical_crossentropy")])
def test_an_output_that_fits_its_loss_passes(output: str, loss: str, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert check(tmp_path, program("Flatten()", output, tail=f"  loss: {loss}\n"), capsys) == (0, "")


def test_without_a_loss_the_final_layer_is_where_the_message_points(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    code, err = check(tmp_path, program("Flatten()", 'Output(1, "softmax")'), capsys)
    assert code == 1
    assert err == "error: " + located(
        "m.neural:5:5: sparse_categorical_crossentropy needs an output layer with at least 2 units (one per class), "
        "but the network outputs (1,)", '    Output(1, "softmax")', "    ^~~~~~")


@pytest.mark.parametrize("layer, caret_at, message", [
    ("BatchNormalization(momentum=1.5)", 33, "BatchNormalization: 'momentum' must be a number from 0 to 1, got 1.5"),
    ("BatchNormalization(momentum=-0.1)", 33, "BatchNormalization: 'momentum' must be a number from 0 to 1, got -0.1"),
    ("BatchNormalization(epsilon=0)", 32, "BatchNormalization: 'epsilon' must be a positive number, got 0"),
    ("LayerNormalization(epsilon=-1e-5)", 32, "LayerNormalization: 'epsilon' must be a positive number, got -1e-05"),
    ("Dropout(1.0)", 13, "Dropout: 'rate' must be a number from 0 up to (not including) 1, got 1.0"),
    ("Dropout(rate=-0.5)", 18, "Dropout: 'rate' must be a number from 0 up to (not including) 1, got -0.5"),
])
def test_values_out_of_range_are_refused_at_the_value(layer: str, caret_at: int, message: str, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    code, err = check(tmp_path, program(layer, "Flatten()", 'Output(10, "softmax")'), capsys)
    assert code == 1
    assert err.startswith(f"error: m.neural:4:{caret_at}: {message}\n  4 |     {layer}\n    | {' ' * (caret_at - 1)}^")


@pytest.mark.parametrize("layer", ["BatchNormalization(momentum=0)", "BatchNormalization(momentum=1)",
                                   "BatchNormalization(momentum=0.9, epsilon=1e-5)", "Dropout(0)", "Dropout(0.99)"])
def test_values_in_range_pass_check_and_compile(layer: str, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    text = program(layer, "Flatten()", 'Output(10, "softmax")')
    assert check(tmp_path, text, capsys) == (0, "")
    assert main(["compile", str(tmp_path / "m.neural"), "-o", str(tmp_path / "out")]) == 0
    capsys.readouterr()


@pytest.mark.parametrize("definition", ["define Empty {\n}\n", "macro Empty { }\n", "define Empty(units) {\n}\n"])
def test_an_empty_macro_is_refused_at_its_name(definition: str, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    code, err = check(tmp_path, definition + program("Flatten()", 'Output(10, "softmax")'), capsys)
    assert code == 1
    column = definition.index("Empty") + 1
    assert err == "error: " + located(
        f"m.neural:1:{column}: macro 'Empty' has no layers; a macro stands for the layers it holds, "
        "e.g. define Empty { Dense(64) }", definition.splitlines()[0], " " * (column - 1) + "^~~~~")


def test_a_macro_with_layers_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = "define Block {\n  Dense(16)\n}\n" + program("Flatten()", "Block", 'Output(10, "softmax")')
    assert check(tmp_path, text, capsys) == (0, "")


@pytest.mark.parametrize("after", ["}\n", '  loss: "mse"\n}\n', "  optimizer: Adam()\n}\n"])
def test_an_empty_layers_section_is_refused_at_layers(after: str, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    code, err = check(tmp_path, HEAD + after, capsys)
    assert code == 1
    assert err == "error: " + located(
        "m.neural:3:3: the network's layers: section is empty; write at least one layer, e.g. layers: Dense(10)",
        "  layers:", "  ^~~~~~")


def test_what_this_backend_cannot_build_is_a_note_and_check_passes(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    code, err = check(tmp_path, program("Flatten()", 'Lambda("lambda x: x")', 'Output(10, "softmax")'), capsys)
    assert code == 0
    assert err == "note: " + located(
        "m.neural:5:5: layer Lambda: its code string is never run or copied into the generated program; write the "
        "operation with built-in layers", '    Lambda("lambda x: x")', "    ^~~~~~")


def test_neural_compile_makes_the_same_rejection_in_the_same_form(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    code, err = check(tmp_path, program("Conv2D(8, 9)", "Flatten()", 'Output(10, "softmax")'), capsys)
    assert code == 1
    assert main(["compile", str(tmp_path / "m.neural"), "-o", str(tmp_path / "out")]) == 1
    compiled = capsys.readouterr().err
    assert compiled == err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("units, data", [(10, "digits"), (12, "synthetic"), (9, "synthetic")])
def test_the_digits_data_is_the_default_only_for_its_10_classes(units: int, data: str) -> None:
    from neural_dsl_tracking.compiler import compile_program
    from neural_dsl_tracking.language import parse_text

    text = program("Flatten()", f'Output({units}, "softmax")')
    config = compile_program(parse_text(text, "m.neural").network(), "m.neural", text).config
    assert {"data": data} in config["defaults"]


def test_data_digits_refuses_an_output_that_is_not_its_10_classes() -> None:
    from types import SimpleNamespace

    from neural_dsl_tracking.compiler.data import NetworkIO, load_data
    from neural_dsl_tracking.errors import ConfigError

    digits = SimpleNamespace(name="digits", scale=True)
    assert len(load_data(digits, NetworkIO((8, 8, 1), (10,), None, "cross_entropy"), 0.2, 0, Path.cwd()).x_train)
    with pytest.raises(ConfigError, match=r"^data=digits has 10 classes \(the digits 0 to 9\), but the network outputs "
                                          r"\(12,\); give its output layer 10 units, or use data=synthetic or data=npz$"):
        load_data(digits, NetworkIO((8, 8, 1), (12,), None, "cross_entropy"), 0.2, 0, Path.cwd())


@pytest.mark.parametrize("tail, code, kind, message, line, caret", [
    ("  optimizer: Adam(learning_rate=0.01, momentum=0.9)\n", 1, "error",
     "m.neural:6:14: optimizer Adam has no parameter 'momentum'; it takes learning_rate, betas, eps, weight_decay, "
     "amsgrad", "  optimizer: Adam(learning_rate=0.01, momentum=0.9)", "             ^~~~"),
    ('  execution { device: "tpu:0" }\n', 0, "note",
     "m.neural:1:1: execution device 'tpu:0': the PyTorch program runs on cpu, cuda, cuda:N or mps, not on a TPU; "
     'write device: "auto" (or leave it out)', "network Net {", "^~~~~~~"),
])
def test_optimizer_and_device_messages_point_at_their_entry(tail: str, code: int, kind: str, message: str, line: str,
                                                            caret: str, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """An optimizer argument it does not take is refused at the optimizer; a TPU (which this
    backend cannot use) is a note at the network, and the file passes."""
    assert check(tmp_path, program("Flatten()", 'Output(10, "softmax")', tail=tail), capsys) == (
        code, f"{kind}: " + located(message, line, caret))


def test_a_sequence_layer_after_a_convolution_is_told_how_to_read_positions_as_steps(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = check(tmp_path, program("Conv2D(16, 3)", "TransformerEncoder(num_heads=2)", "Flatten()",
                                        'Output(10, "softmax")'), capsys)
    assert code == 1
    assert err.startswith("error: m.neural:5:5: layer TransformerEncoder: expects a sequence (steps, features) "
                          "(rank 2 per sample), but its input is (6, 6, 16); Reshape((-1, 16)) before it reads each "
                          "position as a step\n")
    fixed = program("Conv2D(16, 3)", "Reshape((-1, 16))", "TransformerEncoder(num_heads=2)", "Flatten()",
                    'Output(10, "softmax")')
    assert check(tmp_path, fixed, capsys) == (0, "")

"""The original Neural DSL's layer forms: positional conventions, the parameter names its
docs use (one canonical name in the spec), the layers its docs use, custom layers, Lambda."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from neural_dsl_tracking.errors import NeuralError
from neural_dsl_tracking.language import parse_text


def layers_of(body: str, input_shape: str = "(28, 28, 1)") -> list[dict]:
    text = f"network N {{\n  input: {input_shape}\n  layers:\n    {body}\n  loss: mse\n  optimizer: Adam\n}}\n"
    spec = parse_text(text, "m.neural").networks[0]
    return [layer.model_dump(mode="json", context={"positions": False}) for layer in spec.layers]


def error_of(body: str) -> str:
    with pytest.raises(NeuralError) as caught:
        layers_of(body)
    return str(caught.value)


@pytest.mark.parametrize("layer", ["Conv1D", "Conv2D", "Conv3D", "Conv2DTranspose", "SeparableConv2D"])
def test_a_string_third_is_the_activation(layer: str) -> None:
    (spec,) = layers_of(f'{layer}(32, (3, 3), "relu")')
    assert spec["params"] == {"filters": 32, "kernel_size": [3, 3], "activation": "relu"}


def test_a_padding_then_an_activation_by_position() -> None:
    (spec,) = layers_of('Conv2D(32, 3, "same", "relu")')
    assert spec["params"] == {"filters": 32, "kernel_size": 3, "padding": "same", "activation": "relu"}


def test_a_string_that_is_neither_names_the_parameter_and_the_keyword_form() -> None:
    message = error_of('Conv2D(16, (3, 3), "relux")')
    assert "m.neural:4:24: Conv2D: \"relux\" cannot be 'strides'" in message
    assert "read as the activation" in message and 'did you mean "relu"?' in message
    assert 'Write it by name: activation="relu"' in message


def test_a_required_slot_keeps_its_own_message() -> None:
    assert "Dense: 'units' must be a positive integer, got \"relu\"" in error_of('Dense("relu")')


def test_transformer_doc_names_map_to_one_canonical_name() -> None:
    (encoder, decoder) = layers_of(
        "TransformerEncoder(num_heads=8, d_model=64, dff=128, dropout_rate=0.2, num_layers=2, "
        'activation="gelu", use_bias=false)\n'
        "    TransformerDecoder(num_heads=4, d_model=64, ff_dim=32, dropout=0.1, use_causal_mask=true)",
        "(10, 64)")
    assert encoder["params"] == {"num_heads": 8, "d_model": 64, "ff_dim": 128, "dropout": 0.2, "num_layers": 2,
                                 "activation": "gelu", "use_bias": False}
    assert decoder["type"] == "TransformerDecoder"
    assert decoder["params"] == {"num_heads": 4, "d_model": 64, "ff_dim": 32, "dropout": 0.1,
                                 "use_causal_mask": True}


def test_an_alias_and_its_name_together_is_one_message() -> None:
    message = error_of("TransformerEncoder(dff=128, ff_dim=64)")
    assert "TransformerEncoder: 'dff' and 'ff_dim' are the same parameter ('ff_dim'); give it once" in message


def test_embedding_doc_names() -> None:
    (spec,) = layers_of("Embedding(vocab_size=1000, embedding_dim=64, mask_zero=true)", "(20,)")
    assert spec["params"] == {"input_dim": 1000, "output_dim": 64, "mask_zero": True}


def test_attention_positional_encoding_and_activation_alpha() -> None:
    specs = layers_of('MultiHeadAttention(num_heads=4, key_dim=16, dropout_rate=0.1)\n'
                      '    PositionalEncoding(max_len=128, encoding_type="learned")\n'
                      '    Attention(use_causal_mask=true)\n'
                      '    Activation("leaky_relu", alpha=0.1)', "(10, 64)")
    assert [s["params"] for s in specs] == [
        {"num_heads": 4, "key_dim": 16, "dropout": 0.1},
        {"max_len": 128, "encoding_type": "learned"},
        {"use_causal_mask": True},
        {"activation": "leaky_relu", "alpha": 0.1},
    ]


def test_positional_encoding_type_is_checked() -> None:
    assert ("PositionalEncoding: 'encoding_type' must be \"sinusoidal\" or \"learned\", got \"cosine\""
            in error_of('PositionalEncoding(encoding_type="cosine")'))


def test_hpo_range_bounds_take_the_parameter_type() -> None:
    dense, dropout = layers_of("Dense(HPO(range(10, 100, step=10)))\n    Dropout(HPO(range(0, 0.5)))")
    units = dense["params"]["units"]
    assert units == {"kind": "range", "start": 10, "stop": 100, "step": 10}
    assert all(type(units[k]) is int for k in ("start", "stop", "step"))
    rate = dropout["params"]["rate"]
    assert type(rate["start"]) is float and type(rate["stop"]) is float


def test_hpo_integral_float_bounds_on_an_integer_parameter_become_ints() -> None:
    (dense,) = layers_of("Dense(HPO(range(16.0, 64.0)))")
    assert dense["params"]["units"] == {"kind": "range", "start": 16, "stop": 64, "step": None}
    assert type(dense["params"]["units"]["start"]) is int


@pytest.mark.parametrize("body,expected", [
    ("InstanceNormalization()", {"type": "InstanceNormalization", "params": {}}),
    ("LSTMCell(32)", {"type": "LSTMCell", "params": {"units": 32}}),
    ("GRUCell(units=16)", {"type": "GRUCell", "params": {"units": 16}}),
    ('SeparableConv2D(32, (3, 3), "relu")', {"type": "SeparableConv2D",
                                            "params": {"filters": 32, "kernel_size": [3, 3], "activation": "relu"}}),
    ("DepthwiseConv2D((3, 3), depth_multiplier=2)", {"type": "DepthwiseConv2D",
                                                      "params": {"kernel_size": [3, 3], "depth_multiplier": 2}}),
    ("UpSampling2D((2, 2))", {"type": "UpSampling2D", "params": {"size": [2, 2]}}),
    ("ZeroPadding2D(1)", {"type": "ZeroPadding2D", "params": {"padding": 1}}),
    ("Cropping2D((1, 2))", {"type": "Cropping2D", "params": {"cropping": [1, 2]}}),
    ("Reshape((4, 7))", {"type": "Reshape", "params": {"target_shape": [4, 7]}}),
    ("Permute((2, 1))", {"type": "Permute", "params": {"dims": [2, 1]}}),
    ("RepeatVector(3)", {"type": "RepeatVector", "params": {"n": 3}}),
    ("Concatenate(axis=-1)", {"type": "Concatenate", "params": {"axis": -1}}),
    ("Add()", {"type": "Add", "params": {}}),
])
def test_layers_the_docs_use(body: str, expected: dict) -> None:
    (spec,) = layers_of(body)
    assert {k: spec[k] for k in expected} == expected


def test_wrappers_hold_their_layer_as_the_child() -> None:
    bidirectional, distributed = layers_of('Bidirectional(LSTM(64, return_sequences=true), merge_mode="sum")\n'
                                           "    TimeDistributed(Dense(10, \"relu\"))", "(10, 8)")
    assert bidirectional["params"] == {"merge_mode": "sum"}
    assert [(c["type"], c["params"]) for c in bidirectional["children"]] == [
        ("LSTM", {"units": 64, "return_sequences": True})]
    assert [(c["type"], c["params"]) for c in distributed["children"]] == [
        ("Dense", {"units": 10, "activation": "relu"})]


def test_the_wrapped_layer_is_checked_like_any_other() -> None:
    assert "m.neural:4:27: Dense: 'units' must be a positive integer, got -1" in error_of("TimeDistributed(Dense(-1))")
    assert "unknown layer 'dens'; did you mean 'Dense'?" in error_of("TimeDistributed(dens(4))")
    assert "TimeDistributed: 'layer' must be a layer, e.g. TimeDistributed(LSTM(64))" in error_of("TimeDistributed(4)")
    assert "merge_mode' must be one of" in error_of('Bidirectional(LSTM(4), merge_mode="max")')
    assert ("m.neural:4:19: Bidirectional wraps a recurrent layer (LSTM, GRU, SimpleRNN), not Dense"
            in error_of("Bidirectional(Dense(4))"))


def test_a_custom_layer_is_kept_as_written() -> None:
    (spec,) = layers_of('MyBlock(64, 0.5, kind="fast")')
    assert (spec["type"], spec["params"], spec["children"]) == ("MyBlock", {"args": [64, 0.5], "kind": "fast"}, [])


def test_lambda_keeps_its_code_as_a_string() -> None:
    (spec,) = layers_of('Lambda("x: x * 2")')
    assert spec["params"] == {"function": "x: x * 2"}
    assert "Lambda: 'function' must be a quoted string" in error_of("Lambda(2)")


def test_neural_check_notes_a_custom_layer(tmp_path: Path) -> None:
    path = tmp_path / "m.neural"
    path.write_text("network N {\n  input: (4,)\n  layers:\n    Desne(4)\n    Dense(2)\n}\n")
    result = subprocess.run([sys.executable, "-m", "neural_dsl_tracking", "check", "--json", str(path)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert (f"note: {path}:4:5: 'Desne' is not a built-in layer: taken as a custom layer, which neural compile "
            "cannot build; did you mean 'Dense'?") in result.stderr
    assert json.loads(result.stdout)["networks"][0]["layers"][0]["type"] == "Desne"

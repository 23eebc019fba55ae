"""The run's model spec: layers with resolved parameters and shapes, exact parameter counts
and multiply-accumulates, checked against the same networks written by hand in PyTorch."""

from __future__ import annotations

import math

import torch
import yaml
from torch import nn

from neural_dsl_tracking.compiler import runtime
from neural_dsl_tracking.compiler.summary import describe_model

from .conftest import CORPUS, compile_text, import_program, model_spec
from .test_plugin_layers import NET, plugin_dir  # noqa: F401 - a real plugin providing layers

LENGTH = 16


def params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def by_name(spec: dict) -> dict[str, dict]:
    return {layer["name"]: layer for layer in spec["layers"]}


def test_mlp_matches_hand_written_linear_layers(tmp_path):
    spec = model_spec("""network M { input: (8, 8, 1)
      layers: Flatten() Dense(HPO(choice(32, 64)), activation="ReLU") Dropout(0.25) Output(10, "softmax")
      loss: "sparse_categorical_crossentropy" optimizer: Adam(learning_rate=0.01) }""", tmp_path)
    layers = spec["layers"]
    assert [layer["type"] for layer in layers] == ["Flatten", "Dense", "Dropout", "Output"]
    dense = layers[1]
    # canonical names, defaults filled, HPO resolved to the run's value, activation normalised
    assert dense["params"] == {"units": 32, "activation": "relu", "use_bias": True}
    assert (dense["input"], dense["output"]) == ([64], [32])
    assert layers[2]["params"] == {"rate": 0.25}
    assert [layer["param_count"] for layer in layers] == [0, params(nn.Linear(64, 32)), 0, params(nn.Linear(32, 10))]
    assert [layer["macs"] for layer in layers] == [0, 64 * 32, 0, 32 * 10]
    assert spec["params"] == 64 * 32 + 32 + 32 * 10 + 10
    assert spec["macs"] == 64 * 32 + 32 * 10
    assert (spec["input"], spec["output"]) == ([8, 8, 1], [10])


def test_run_values_reach_parameters_shapes_and_counts(tmp_path):
    spec = model_spec("""network M { input: (8, 8, 1)
      layers: Flatten() Dense(HPO(choice(32, 64))) Dropout(HPO(range(0.1, 0.5, step=0.1))) Output(10)
      loss: "sparse_categorical_crossentropy" optimizer: Adam() }""", tmp_path,
                   dense_1={"units": 128}, dropout_1={"rate": 0.4})
    layers = by_name(spec)
    assert layers["dense_1"]["params"]["units"] == 128
    assert layers["dense_1"]["output"] == [128]
    assert layers["dropout_1"]["params"]["rate"] == 0.4
    assert layers["output_1"]["input"] == [128]
    assert layers["dense_1"]["param_count"] == params(nn.Linear(64, 128))
    assert spec["macs"] == 64 * 128 + 128 * 10


def test_convolutions_match_hand_written_modules(tmp_path):
    spec = model_spec((CORPUS / "mnist.neural").read_text(), tmp_path)
    layers = by_name(spec)
    conv = nn.Conv2d(1, 32, 3)
    assert layers["conv2d_1"]["params"]["kernel_size"] == [3, 3]
    assert (layers["conv2d_1"]["input"], layers["conv2d_1"]["output"]) == ([28, 28, 1], [26, 26, 32])
    assert layers["conv2d_1"]["param_count"] == params(conv)
    assert layers["conv2d_1"]["macs"] == 26 * 26 * 32 * 1 * 3 * 3
    assert layers["dense_1"]["macs"] == 13 * 13 * 32 * 128
    hand = nn.Sequential(conv, nn.MaxPool2d(2), nn.Flatten(), nn.Linear(13 * 13 * 32, 128), nn.Linear(128, 10))
    assert spec["params"] == params(hand)


def test_grouped_strided_and_transposed_convolutions(tmp_path):
    spec = model_spec("""network C { input: (16, 16, 4)
      layers: Conv2D(8, (3, 3), strides=2, padding="same") DepthwiseConv2D((3, 3), padding="same")
              Conv2DTranspose(4, (2, 2), strides=2) GlobalAveragePooling2D() Output(3)
      loss: "mean_squared_error" optimizer: SGD() }""", tmp_path)
    layers = by_name(spec)
    assert layers["conv2d_1"]["output"] == [8, 8, 8]
    assert layers["conv2d_1"]["macs"] == 8 * 8 * 8 * 4 * 9
    depthwise = layers["depthwise_conv2d_1"]
    assert depthwise["param_count"] == params(nn.Conv2d(8, 8, 3, groups=8))
    assert depthwise["macs"] == 8 * 8 * 8 * 1 * 9
    transpose = layers["conv2d_transpose_1"]
    assert transpose["output"] == [16, 16, 4]
    assert transpose["param_count"] == params(nn.ConvTranspose2d(8, 4, 2, stride=2))
    assert transpose["macs"] == 8 * 8 * 8 * 4 * 2 * 2


def test_recurrent_layers_match_hand_written_lstms(tmp_path):
    spec = model_spec((CORPUS / "sentiment.neural").read_text(), tmp_path)
    layers = by_name(spec)
    steps = 100
    assert layers["embedding_1"]["param_count"] == 10000 * 300
    assert layers["embedding_1"]["macs"] == 0
    assert layers["lstm_1"]["param_count"] == params(nn.LSTM(300, 128))
    assert layers["lstm_1"]["macs"] == 4 * 128 * (300 + 128) * steps
    assert layers["lstm_1"]["output"] == [100, 128]
    assert layers["lstm_2"]["param_count"] == params(nn.LSTM(128, 64))
    assert layers["lstm_2"]["macs"] == 4 * 64 * (128 + 64) * steps
    assert layers["lstm_2"]["output"] == [64]


def test_bidirectional_gru_counts_both_directions(tmp_path):
    spec = model_spec("""network R { input: (12, 5)
      layers: Bidirectional(GRU(7, return_sequences=True)) Flatten() Output(2)
      loss: "mean_squared_error" optimizer: SGD() }""", tmp_path)
    wrapper, layer = spec["layers"][:2]
    assert (wrapper["type"], wrapper["params"], wrapper["output"]) == ("Bidirectional", {"merge_mode": "concat"}, [12, 14])
    assert (layer["type"], layer["depth"], layer["params"]["units"], layer["params"]["bidirectional"]) == ("GRU", 1, 7, True)
    assert layer["param_count"] == params(nn.GRU(5, 7, bidirectional=True))
    assert layer["macs"] == 2 * 3 * 7 * (5 + 7) * 12
    assert wrapper["param_count"] + layer["param_count"] == spec["params"] - params(nn.Linear(12 * 14, 2))


def test_transformer_encoder_matches_hand_written_layer(tmp_path):
    spec = model_spec((CORPUS / "examples_transformer.neural").read_text(), tmp_path)
    layers = by_name(spec)
    steps, width, ff = 100, 512, 2048
    encoder = layers["transformer_encoder_1"]
    assert encoder["param_count"] == params(nn.TransformerEncoderLayer(width, 8, ff))
    attention = 4 * steps * width * width + 2 * steps * steps * width
    assert encoder["macs"] == attention + 2 * steps * width * ff
    assert spec["params"] == params(nn.Embedding(10000, 512)) + encoder["param_count"] \
        + params(nn.Linear(512, 128)) + params(nn.Linear(128, 10))


def test_residual_block_nests_its_layers_and_owns_its_projection(tmp_path):
    spec = model_spec("""network Res { input: (8, 8, 3)
      layers:
        ResidualConnection { Conv2D(6, (3, 3), padding="same") Conv2D(6, (3, 3), padding="same") }
        GlobalAveragePooling2D() Output(2)
      loss: "mean_squared_error" optimizer: SGD() }""", tmp_path)
    layers = spec["layers"]
    assert [(layer["type"], layer["depth"]) for layer in layers[:3]] == [
        ("ResidualConnection", 0), ("Conv2D", 1), ("Conv2D", 1)]
    assert (layers[0]["input"], layers[0]["output"]) == ([8, 8, 3], [8, 8, 6])
    assert layers[0]["param_count"] == params(nn.Linear(3, 6))  # the 1x1 projection of the shortcut
    assert layers[1]["param_count"] == params(nn.Conv2d(3, 6, 3))
    assert spec["params"] == sum(layer["param_count"] for layer in layers)
    assert spec["macs"] == sum(layer["macs"] for layer in layers)
    assert layers[0]["macs"] == 8 * 8 * 6 * 3
    assert math.isclose(layers[2]["macs"], 8 * 8 * 6 * 6 * 9)


def test_describing_leaves_the_model_as_it_was(tmp_path):
    train_py = compile_text("""network B { input: (4,)
      layers: Dense(8) BatchNormalization() Dropout(0.5) Output(2)
      loss: "mean_squared_error" optimizer: SGD() }""", tmp_path)
    module = import_program(train_py)
    config = yaml.safe_load((train_py.parent / "conf" / "config.yaml").read_text())
    hp = runtime.hyperparameters(config["model"])
    model = module.B(hp)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    describe_model(model, module.model_layers(hp), LENGTH, None)
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert torch.backends.mha.get_fastpath_enabled()


def test_masked_sequences_count_their_real_steps(tmp_path):
    spec = model_spec("""network S { input: (10,)
      layers: Embedding(50, 8, mask_zero=true) LSTM(6) Output(2)
      loss: "mean_squared_error" optimizer: SGD() }""", tmp_path)
    lstm = by_name(spec)["lstm_1"]
    assert lstm["param_count"] == params(nn.LSTM(8, 6))
    assert lstm["macs"] == 4 * 6 * (8 + 6) * 10


def test_plugin_layers_have_their_defaults_and_counts(plugin_dir, tmp_path):
    spec = model_spec(NET.format(layers="Bottleneck(4)\n    Scale(0.5)"), tmp_path)
    layers = by_name(spec)
    bottleneck, scale = layers["bottleneck_1"], layers["scale_1"]
    assert bottleneck["params"] == {"units": 4, "activation": "relu"}
    assert bottleneck["param_count"] == params(nn.Linear(8, 4)) + params(nn.Linear(4, 8))
    assert bottleneck["macs"] == 8 * 4 + 4 * 8
    assert scale["params"] == {"factor": 0.5, "learned": False}

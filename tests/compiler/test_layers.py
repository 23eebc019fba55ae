"""Shape inference and the emitted modules: corpus networks, parameter counts, layer cases."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from neural_dsl_tracking.compiler import compile_program
from neural_dsl_tracking.errors import CompileError
from neural_dsl_tracking.language import parse_file, parse_text

from .conftest import CORPUS, compile_text, default_model, import_program

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CORPUS_FILES = sorted(p for p in [*CORPUS.glob("*"), *EXAMPLES.glob("*.neural")] if p.suffix in (".neural", ".nr"))
REJECTED = {("nested_layers.neural", "ViT"): "layer TransformerEncoder: expects a sequence (steps, features)"}
BIG = {"ResNet18", "DeepSeek1984"}  # ResNet at 224x224 and a 50k-token vocabulary: batch of 1


def _networks() -> list[tuple[Path, int]]:
    return [(path, index) for path in CORPUS_FILES for index, _ in enumerate(parse_file(path).networks)]


@pytest.mark.parametrize("path,index", _networks(), ids=lambda v: v.name if isinstance(v, Path) else str(v))
def test_corpus_network_compiles_and_runs_a_forward_pass(path: Path, index: int, tmp_path: Path) -> None:
    spec = parse_file(path).networks[index]
    expected_error = REJECTED.get((path.name, spec.name))
    if expected_error:
        with pytest.raises(CompileError) as caught:
            compile_program(spec, path.name)
        message = str(caught.value)
        assert expected_error in message and f"{path.name}:" in message
        return
    from neural_dsl_tracking.compiler import compile_network

    train_py = compile_network(spec, path, tmp_path / "out")
    module = import_program(train_py)
    model = default_model(module, train_py).eval()
    batch = 1 if spec.name in BIG else 2
    shape = tuple(7 if d is None else d for d in model.input_shape)
    if module.TOKENS is not None:
        x = torch.randint(0, module.TOKENS, (batch, *shape))
    else:
        x = torch.randn(batch, *shape)
    with torch.no_grad():
        y = model(x)
    expected = tuple(7 if d is None else d for d in model.output_shape)
    assert tuple(y.shape) == (batch, *expected)
    assert torch.isfinite(y).all()


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _build(text: str, tmp_path: Path) -> nn.Module:
    train_py = compile_text(text, tmp_path)
    return default_model(import_program(train_py), train_py)


def test_mlp_parameter_count_matches_hand_written(tmp_path: Path) -> None:
    model = _build("""network MLP {
      input: (None, 32)
      layers:
        Dense(64, "relu") * 3
        Dropout(0.5)
        Dense(10, "softmax")
      loss: categorical_crossentropy
      optimizer: Adam
    }""", tmp_path)
    reference = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64),
                              nn.ReLU(), nn.Dropout(0.5), nn.Linear(64, 10))
    assert _count(model) == _count(reference) == 32 * 64 + 64 + 2 * (64 * 64 + 64) + 64 * 10 + 10


def test_cnn_parameter_count_and_output_match_hand_written(tmp_path: Path) -> None:
    model = _build("""network CNN {
      input: (28, 28, 1)
      layers:
        Conv2D(32, (3,3), activation="relu")
        MaxPooling2D((2,2))
        Conv2D(64, (3,3), padding="same", activation="relu")
        BatchNormalization()
        Flatten()
        Dense(128, "relu")
        Output(10, "softmax")
      loss: "sparse_categorical_crossentropy"
    }""", tmp_path)
    reference = nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3, padding=1),
                              nn.ReLU(), nn.BatchNorm2d(64, eps=1e-3, momentum=0.01), nn.Flatten(), nn.Linear(64 * 13 * 13, 128), nn.ReLU(),
                              nn.Linear(128, 10))
    assert _count(model) == _count(reference)
    reference.load_state_dict(dict(zip(reference.state_dict(), model.state_dict().values())))
    model.eval(), reference.eval()
    x = torch.randn(3, 28, 28, 1)
    torch.testing.assert_close(model(x), reference(x.permute(0, 3, 1, 2)))


def test_lstm_parameter_count_matches_hand_written(tmp_path: Path) -> None:
    model = _build("""network Sentiment {
      input: (100, 300)
      layers:
        Embedding(input_dim=10000, output_dim=300)
        LSTM(units=128, return_sequences=true)
        LSTM(units=64)
        Dense(units=32, activation="relu")
        Output(units=2, activation="softmax")
      loss: "binary_crossentropy"
    }""", tmp_path)
    reference = [nn.Embedding(10000, 300), nn.LSTM(300, 128, batch_first=True), nn.LSTM(128, 64, batch_first=True),
                 nn.Linear(64, 32), nn.Linear(32, 2)]
    assert _count(model) == sum(_count(m) for m in reference)
    assert model.input_shape == (100,)  # the declared (100, 300) is the embedded sequence
    assert model(torch.randint(0, 10000, (2, 100))).shape == (2, 2)


def test_softmax_head_with_cross_entropy_returns_logits(tmp_path: Path) -> None:
    model = _build("""network Head {
      input: (4,)
      layers:
        Output(3, "softmax")
      loss: "categorical_crossentropy"
    }""", tmp_path).eval()
    x = torch.randn(5, 4)
    logits = model(x)
    assert not torch.allclose(logits.sum(-1), torch.ones(5))  # no softmax inside forward
    torch.testing.assert_close(model.predict(x), torch.softmax(logits, -1))
    assert model.head_activation == "softmax"


def test_softmax_is_kept_for_a_regression_loss(tmp_path: Path) -> None:
    model = _build("""network Probs {
      input: (4,)
      layers:
        Dense(3, "softmax")
      loss: "mse"
    }""", tmp_path).eval()
    torch.testing.assert_close(model(torch.randn(5, 4)).sum(-1), torch.ones(5))


def test_residual_block_gets_a_projection_when_shapes_differ(tmp_path: Path) -> None:
    model = _build("""network Res {
      input: (16, 16, 8)
      layers:
        ResidualConnection {
          Conv2D(filters=8, kernel_size=(3,3), padding="same", activation="relu")
          Conv2D(filters=8, kernel_size=(3,3), padding="same")
        }
        ResidualConnection {
          Conv2D(filters=16, kernel_size=(3,3), strides=(2,2), padding="same", activation="relu")
          Conv2D(filters=16, kernel_size=(3,3), padding="same")
        }
        GlobalAveragePooling2D()
        Output(4, "softmax")
    }""", tmp_path)
    names = dict(model.named_children())
    assert "residual_1_shortcut" not in names
    assert isinstance(names["residual_2_shortcut"], nn.Conv2d)
    assert names["residual_2_shortcut"].stride == (2, 2)
    assert model(torch.randn(2, 16, 16, 8)).shape == (2, 4)


@pytest.mark.parametrize("layers,input_shape,output_shape", [
    ('Conv1D(6, 3, padding="same")\n MaxPooling1D(2)\n GlobalMaxPooling1D()', "(20, 3)", (6,)),
    ('Conv3D(4, (3,3,3))\n AveragePooling3D(2)\n GlobalAveragePooling3D()', "(9, 9, 9, 2)", (4,)),
    ('Conv2DTranspose(5, (3,3), strides=(2,2), padding="same")', "(7, 7, 3)", (14, 14, 5)),
    ('Conv2DTranspose(5, (3,3), strides=(2,2))', "(7, 7, 3)", (15, 15, 5)),
    ('MaxPooling2D((2,2), padding="same")', "(7, 7, 3)", (4, 4, 3)),
    ('AveragePooling2D((3,3), strides=(2,2), padding="same")', "(9, 9, 3)", (5, 5, 3)),
    ('Conv2D(4, (2,2), strides=(2,2), padding="same")', "(7, 7, 3)", (4, 4, 4)),
    ('GroupNormalization(groups=2)\n LayerNormalization()\n Activation("softmax")', "(5, 5, 4)", (5, 5, 4)),
    ('Embedding(50, 8)\n GRU(6, return_sequences=true)\n SimpleRNN(5)', "(12,)", (5,)),
    ('TransformerEncoder(num_heads=2, ff_dim=16)\n GlobalAveragePooling1D()', "(None, 8)", (8,)),
    ('Dense(6)\n BatchNormalization()\n Activation("leaky_relu")', "(5,)", (6,)),
    ('Reshape((4, 4, 1))\n ZeroPadding2D(1)\n UpSampling2D((2, 2))\n ReLU()', "(16,)", (12, 12, 1)),
    ('LSTM(5, bidirectional=true)\n ELU()\n Softmax()', "(6, 3)", (10,)),
    ('TransformerEncoder(num_heads=2, ff_dim=8, activation="gelu", norm_first=true)', "(4, 6)", (4, 6)),
])
def test_layer_shapes(layers: str, input_shape: str, output_shape: tuple, tmp_path: Path) -> None:
    text = f"network Shapes {{\n input: {input_shape}\n layers:\n {layers}\n loss: \"mse\"\n}}"
    train_py = compile_text(text, tmp_path)
    module = import_program(train_py)
    model = default_model(module, train_py).eval()
    assert model.output_shape == output_shape
    shape = tuple(7 if d is None else d for d in model.input_shape)
    x = torch.randint(0, 50, (2, *shape)) if module.TOKENS else torch.randn(2, *shape)
    assert tuple(model(x).shape) == (2, *output_shape)


@pytest.mark.parametrize("layers,message", [
    ("Conv2D(8, (3,3))\n GaussianNoise(0.1)", "line 5"),
    ("Flatten()\n Conv2D(4, (3,3))", "expects 2 spatial axes and channels"),
    ("Dense(8)\n LSTM(4)", "expects a sequence"),
    ("MaxPooling2D((9,9))", "pool_size 9 is larger than its input (8, 8, 1)"),
    ("Dense(8, kernel_initializer=\"he_normal\")", "has no parameter 'kernel_initializer'; it takes units"),
    ("Reshape((3, 5))", "cannot reshape (8, 8, 1)"),
])
def test_compile_errors_name_layer_line_and_alternatives(layers: str, message: str) -> None:
    text = f"network Bad {{\n input: (8, 8, 1)\n layers:\n {layers}\n}}"
    with pytest.raises(CompileError) as caught:
        compile_program(parse_text(text, "bad.neural").networks[0], "bad.neural")
    text_message = str(caught.value)
    assert text_message.startswith("bad.neural:")
    if message == "line 5":
        assert "bad.neural:5:2: layer GaussianNoise: is not supported" in text_message
        assert "supported layers: " in text_message and "Conv2D" in text_message
    else:
        assert message in text_message


def test_hpo_defaults_and_search_space(tmp_path: Path) -> None:
    text = """network H {
      input: (28, 28, 1)
      layers:
        Flatten()
        Dense(HPO(choice(128, 256)))
        Dropout(HPO(range(0.3, 0.7, step=0.1)))
        Output(10, "softmax")
      optimizer: Adam(learning_rate=HPO(log_range(1e-4, 1e-2)))
      train { epochs: 3 batch_size: HPO(choice(32, 64)) search_method: "bayesian" }
    }"""
    program = compile_program(parse_text(text, "h.neural").networks[0], "h.neural")
    config = program.config
    assert config["model"]["dense_1"]["units"] == 128
    assert config["model"]["dropout_1"]["rate"] == pytest.approx(0.3)
    assert config["optimizer"]["lr"] == pytest.approx(math.sqrt(1e-4 * 1e-2))
    assert config["train"]["batch_size"] == 32
    space = config["hpo"]["space"]
    assert space["model.dense_1.units"]["values"] == [128, 256]
    assert space["model.dropout_1.rate"]["type"] == "range"
    assert space["optimizer.lr"] == {"type": "log_range", "low": 1e-4, "high": 1e-2,
                                     "sweep": "tag(log,interval(0.0001,0.01))"}
    assert config["hpo"]["search_method"] == "bayesian"


def test_an_integer_log_range_defaults_to_an_integer() -> None:
    # docs/sweeps.md searches log_range(8, 64) as IntDistribution(8, 64, log=True); the compiled
    # default was the geometric middle 22.627..., refused: "units must be a positive integer".
    text = """network L {
      input: (8, 8, 1)
      layers:
        Conv2D(filters=HPO(log_range(4, 32)), kernel_size=(3, 3))
        Flatten()
        Dense(HPO(log_range(8, 64)))
        Output(10, "softmax")
      optimizer: Adam(learning_rate=HPO(log_range(1e-4, 1e-2)))
      train { epochs: HPO(log_range(1, 4)) batch_size: HPO(log_range(16, 256)) }
    }"""
    config = compile_program(parse_text(text, "l.neural").networks[0], "l.neural").config
    assert config["model"]["conv2d_1"]["filters"] == 11  # sqrt(4 * 32) = 11.31
    assert config["model"]["dense_1"]["units"] == 23  # sqrt(8 * 64) = 22.63
    assert (config["train"]["epochs"], config["train"]["batch_size"]) == (2, 64)
    assert all(isinstance(value, int) for value in (config["model"]["conv2d_1"]["filters"],
                                                    config["model"]["dense_1"]["units"],
                                                    config["train"]["epochs"], config["train"]["batch_size"]))
    assert config["optimizer"]["lr"] == pytest.approx(1e-3)
    assert config["hpo"]["space"]["model.dense_1.units"]["low"] == 8


@pytest.mark.parametrize(("layer", "message"), [
    ("TransformerEncoder(num_heads=HPO(choice(2, 3)), ff_dim=16)",
     "num_heads=3 (a value of its search space) must divide its 8 input features"),
    ("TransformerEncoder(num_heads=HPO(range(2, 8, step=2)), ff_dim=16)",
     "num_heads=6 (a value of its search space) must divide its 8 input features"),
    ("MultiHeadAttention(num_heads=HPO(choice(4, 5)))",
     "num_heads=5 (a value of its search space) must divide its 8 input features"),
    ("MultiHeadAttention(num_heads=HPO(choice(2, 4)), key_dim=4)",
     "num_heads * key_dim = 4 * 4 (a value of its search space) must equal its 8 input features"),
])
def test_every_searched_number_of_heads_must_fit(layer: str, message: str) -> None:
    # Only the default was checked: a sweep's trials with num_heads=3 failed in training
    # ("embed_dim must be divisible by num_heads") although neural check said ok.
    text = f"network T {{\n input: (8, 8)\n layers:\n  {layer}\n  GlobalAveragePooling1D()\n  Output(10)\n}}\n"
    with pytest.raises(CompileError) as caught:
        compile_program(parse_text(text, "t.neural").networks[0], "t.neural")
    assert message in str(caught.value) and str(caught.value).startswith("t.neural:4:3:")


def test_searched_heads_that_all_fit_compile() -> None:
    text = ("network T {\n input: (8, 8)\n layers:\n  TransformerEncoder(num_heads=HPO(choice(2, 4, 8)), "
            "ff_dim=16)\n  MultiHeadAttention(num_heads=HPO(range(1, 2)))\n  GlobalAveragePooling1D()\n"
            "  Output(10)\n}\n")
    config = compile_program(parse_text(text, "t.neural").networks[0], "t.neural").config
    assert config["hpo"]["space"]["model.transformer_encoder_1.num_heads"]["values"] == [2, 4, 8]


def test_schedule_and_optimizer_parameters_reach_the_config() -> None:
    text = """network S {
      input: (4,)
      layers:
        Output(3, "softmax")
      optimizer: SGD(learning_rate=ExponentialDecay(0.1, 1000, 0.96), momentum=0.9)
    }"""
    config = compile_program(parse_text(text, "s.neural").networks[0], "s.neural").config
    assert config["optimizer"]["name"] == "SGD" and config["optimizer"]["lr"] == 0.1
    assert config["optimizer"]["momentum"] == 0.9
    assert config["schedule"] == {"name": "ExponentialDecay", "decay_steps": 1000, "decay_rate": 0.96,
                                  "staircase": False}


def test_program_without_tracking_has_no_tracking_code(tmp_path: Path) -> None:
    train_py = compile_text("network Plain {\n input: (8, 8, 1)\n layers:\n Flatten()\n Output(10, \"softmax\")\n}",
                            tmp_path)
    tree = ast.parse(train_py.read_text())
    names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    attributes = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
                for alias in node.names}
    modules = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not any("track" in item.lower() for item in names | attributes | imported)
    assert not any(module.startswith(("neural_dsl_tracking.tracking", "neural_dsl_tracking.plugins"))
                   for module in modules if module)
    assert "tracking" not in (train_py.parent / "conf" / "config.yaml").read_text().split("hpo:")[0]


def test_nested_residual_blocks_keep_their_own_shortcuts(tmp_path: Path) -> None:
    model = _build("""network Nested {
      input: (6,)
      layers:
        ResidualConnection {
          Dense(6, "relu")
          ResidualConnection {
            Dense(6)
          }
          Dense(4)
        }
        Output(2, "softmax")
    }""", tmp_path).eval()
    x = torch.randn(3, 6)
    hidden = torch.relu(model.dense_1(x))
    block = model.dense_3(model.dense_2(hidden) + hidden)
    expected = model.output_1(block + model.residual_1_shortcut(x))
    torch.testing.assert_close(model(x), expected)


def test_transformer_encoder_block_uses_its_nested_layers_as_feed_forward(tmp_path: Path) -> None:
    model = _build("""network Block {
      input: (5, 8)
      layers:
        TransformerEncoder(num_heads=2, dropout=0.0) {
          Dense(16, "relu")
          Dense(8)
        }
        GlobalAveragePooling1D()
        Output(3, "softmax")
    }""", tmp_path).eval()
    x = torch.randn(2, 5, 8)
    attended, _ = model.transformer_encoder_1_attention(x, x, x, need_weights=False)
    h = model.transformer_encoder_1_norm1(x + attended)
    h = model.transformer_encoder_1_norm2(h + model.dense_2(torch.relu(model.dense_1(h))))
    expected = model.output_1(h.mean(dim=1))
    torch.testing.assert_close(model(x), expected)


def test_transformer_encoder_block_must_keep_the_shape() -> None:
    text = "network B {\n input: (5, 8)\n layers:\n TransformerEncoder(num_heads=2) {\n Dense(4)\n }\n}"
    with pytest.raises(CompileError, match=r"b.neural:4:2: layer TransformerEncoder: its nested layers .* turn "
                                           r"\(5, 8\) into \(5, 4\); they must keep the shape"):
        compile_program(parse_text(text, "b.neural").networks[0], "b.neural")


def test_a_misspelt_loss_gets_a_did_you_mean() -> None:
    text = "network Bad {\n input: (8, 8, 1)\n layers:\n  Flatten()\n  Output(10)\n loss: categorial_crossentropy\n}"
    with pytest.raises(CompileError) as caught:
        compile_program(parse_text(text, "bad.neural").networks[0], "bad.neural")
    assert str(caught.value).startswith("bad.neural:6:8: loss 'categorial_crossentropy' is not supported; "
                                        "did you mean 'categorical_crossentropy'?; supported losses: ")

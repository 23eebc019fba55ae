"""The layers and parameter names of the original Neural DSL's docs, compiled: each network's
parameter count against a hand-written PyTorch model, a forward pass, and the layers that
cannot be built (merges, Lambda, custom layers) as compile errors that say why."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from neural_dsl_tracking.compiler import compile_program
from neural_dsl_tracking.errors import CompileError
from neural_dsl_tracking.language import parse_text

from .conftest import compile_text, default_model, import_program


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def build(layers: str, input_shape: str, tmp_path: Path, loss: str = "mse") -> tuple[nn.Module, object]:
    text = f"network N {{\n  input: {input_shape}\n  layers:\n    {layers}\n  loss: {loss}\n  optimizer: Adam\n}}\n"
    train_py = compile_text(text, tmp_path)
    module = import_program(train_py)
    return default_model(module, train_py).eval(), module


def forward(model: nn.Module, module: object, batch: int = 2) -> torch.Tensor:
    shape = tuple(7 if d is None else d for d in model.input_shape)
    tokens = getattr(module, "TOKENS")
    x = torch.randint(0, tokens, (batch, *shape)) if tokens else torch.randn(batch, *shape)
    with torch.no_grad():
        y = model(x)
    assert tuple(y.shape) == (batch, *model.output_shape)
    assert torch.isfinite(y).all()
    return y


CASES = {
    "conv_positional_activation": (
        'Conv2D(8, (3, 3), "relu")\n    Flatten()\n    Dense(3)', "(8, 8, 1)",
        lambda: [nn.Conv2d(1, 8, 3), nn.Linear(6 * 6 * 8, 3)]),
    "instance_norm": ("Conv2D(4, 3)\n    InstanceNormalization()\n    Flatten()", "(6, 6, 2)",
                      lambda: [nn.Conv2d(2, 4, 3), nn.InstanceNorm2d(4, affine=True)]),
    "lstm_cell": ("LSTMCell(16)\n    Dense(2)", "(8,)", lambda: [nn.LSTMCell(8, 16), nn.Linear(16, 2)]),
    "gru_cell": ("GRUCell(16)", "(8,)", lambda: [nn.GRUCell(8, 16)]),
    "bidirectional": ("Bidirectional(LSTM(16))\n    Dense(2)", "(10, 8)",
                      lambda: [nn.LSTM(8, 16, bidirectional=True), nn.Linear(32, 2)]),
    "bidirectional_sum": ('Bidirectional(GRU(16, return_sequences=true), merge_mode="sum")', "(10, 8)",
                          lambda: [nn.GRU(8, 16, bidirectional=True)]),
    "time_distributed": ('TimeDistributed(Dense(4, "relu"))', "(10, 8)", lambda: [nn.Linear(8, 4)]),
    "time_distributed_conv": ("TimeDistributed(Conv2D(4, (3, 3)))", "(5, 6, 6, 2)", lambda: [nn.Conv2d(2, 4, 3)]),
    "separable_conv": ('SeparableConv2D(8, (3, 3), "relu", depth_multiplier=2)\n    Flatten()', "(6, 6, 3)",
                       lambda: [nn.Conv2d(3, 6, 3, groups=3, bias=False), nn.Conv2d(6, 8, 1)]),
    "depthwise_conv": ("DepthwiseConv2D((3, 3), padding=\"same\")\n    Flatten()", "(6, 6, 3)",
                       lambda: [nn.Conv2d(3, 3, 3, groups=3, padding=1)]),
    "upsampling_padding_cropping": ("UpSampling2D((2, 2))\n    ZeroPadding2D(1)\n    Cropping2D((2, 1))\n"
                                    "    Conv2D(2, 1)\n    Flatten()", "(4, 4, 3)", lambda: [nn.Conv2d(3, 2, 1)]),
    "cropping_after_conv": ("Conv2D(4, 3)\n    Cropping2D(1)\n    Flatten()", "(8, 8, 2)",
                            lambda: [nn.Conv2d(2, 4, 3)]),
    "reshape_permute_repeat": ("Reshape((4, 6))\n    Permute((2, 1))\n    Flatten()\n    RepeatVector(3)\n"
                               "    LSTM(5)", "(24,)", lambda: [nn.LSTM(24, 5)]),
    "multi_head_attention": ("MultiHeadAttention(num_heads=4, key_dim=8)\n    GlobalAveragePooling1D()", "(10, 32)",
                             lambda: [nn.MultiheadAttention(32, 4)]),
    "attention": ("Attention(use_causal_mask=true)\n    Flatten()", "(5, 4)", lambda: []),
    "positional_sinusoidal": ("PositionalEncoding()\n    Flatten()", "(6, 8)", lambda: []),
    "positional_learned": ('PositionalEncoding(max_len=20, encoding_type="learned")\n    Flatten()', "(6, 8)",
                           lambda: [nn.Embedding(20, 8)]),
    "encoder_doc_names_stack": (
        "TransformerEncoder(num_heads=4, d_model=32, dff=64, dropout_rate=0.1, num_layers=3)\n"
        "    GlobalAveragePooling1D()", "(10, 32)",
        lambda: [nn.TransformerEncoderLayer(32, 4, 64) for _ in range(3)]),
    "encoder_without_bias": ("TransformerEncoder(num_heads=4, ff_dim=64, use_bias=false)", "(10, 32)",
                             lambda: [nn.TransformerEncoderLayer(32, 4, 64, bias=False)]),
    "decoder": ("TransformerDecoder(num_heads=4, d_model=32, dff=64) * 2\n    Dense(5)", "(10, 32)",
                lambda: [nn.TransformerEncoderLayer(32, 4, 64), nn.TransformerEncoderLayer(32, 4, 64),
                         nn.Linear(32, 5)]),
    "embedding_doc_names": ("Embedding(vocab_size=100, embedding_dim=16, mask_zero=true)\n"
                            "    GlobalAveragePooling1D()", "(12,)", lambda: [nn.Embedding(100, 16, padding_idx=0)]),
    "activation_alpha": ('Dense(4)\n    Activation("leaky_relu", alpha=0.3)', "(3,)", lambda: [nn.Linear(3, 4)]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_parameter_count_matches_hand_written_and_forward_runs(case: str, tmp_path: Path) -> None:
    layers, input_shape, reference = CASES[case]
    model, module = build(layers, input_shape, tmp_path)
    assert _count(model) == _count(nn.ModuleList(reference()))
    forward(model, module)


def test_decoder_is_causal(tmp_path: Path) -> None:
    """A later step never changes an earlier one's output."""
    model, _ = build("TransformerDecoder(num_heads=2, d_model=8, dff=16, dropout_rate=0.0)", "(6, 8)", tmp_path)
    x = torch.randn(1, 6, 8)
    changed = x.clone()
    changed[0, 4:] = torch.randn(2, 8)
    with torch.no_grad():
        assert torch.allclose(model(x)[0, :4], model(changed)[0, :4], atol=1e-5)
        assert not torch.allclose(model(x)[0, 4:], model(changed)[0, 4:], atol=1e-5)


def test_sinusoidal_encoding_is_added(tmp_path: Path) -> None:
    model, _ = build("PositionalEncoding()", "(4, 6)", tmp_path)
    with torch.no_grad():
        y = model(torch.zeros(1, 4, 6))[0]
    assert torch.allclose(y[0], torch.tensor([0.0, 1.0] * 3))  # sin(0), cos(0)
    assert torch.allclose(y[1, :2], torch.tensor([0.8414710, 0.5403023]))


def test_merge_modes_and_time_distributed_values(tmp_path: Path) -> None:
    model, _ = build('Bidirectional(LSTM(3, return_sequences=true), merge_mode="ave")', "(5, 2)", tmp_path)
    x = torch.randn(2, 5, 2)
    with torch.no_grad():
        both, _ = model.lstm_1(x)
        assert torch.allclose(model(x), (both[..., :3] + both[..., 3:]) / 2)


def test_a_final_time_distributed_softmax_is_the_head_the_loss_takes(tmp_path: Path) -> None:
    model, _ = build('LSTM(8, return_sequences=true)\n    TimeDistributed(Dense(5, "softmax"))', "(6, 4)", tmp_path,
                     loss="sparse_categorical_crossentropy")
    assert model.head_activation == "softmax"
    x = torch.randn(2, 6, 4)
    with torch.no_grad():
        assert not torch.allclose(model(x).sum(-1), torch.ones(2, 6))  # logits
        assert torch.allclose(model.predict(x).sum(-1), torch.ones(2, 6))


def test_hpo_range_on_a_layer_size_is_an_integer_space(tmp_path: Path) -> None:
    import yaml

    text = "network N {\n  input: (4,)\n  layers:\n    Dense(HPO(range(10, 100, step=10)))\n  loss: mse\n}\n"
    train_py = compile_text(text, tmp_path)
    config = yaml.safe_load((train_py.parent / "conf" / "config.yaml").read_text())
    assert config["model"]["dense_1"]["units"] == 10
    space = config["hpo"]["space"]["model.dense_1.units"]
    assert (space["start"], space["stop"], space["step"]) == (10, 100, 10)
    assert all(type(space[k]) is int for k in ("start", "stop", "step"))


def compile_error(layers: str, input_shape: str = "(10, 8)") -> str:
    text = f"network Bad {{\n input: {input_shape}\n layers:\n {layers}\n loss: mse\n}}"
    with pytest.raises(CompileError) as caught:
        compile_program(parse_text(text, "bad.neural").networks[0], "bad.neural")
    return str(caught.value)


@pytest.mark.parametrize("layers,message", [
    ('Lambda("__import__(\'os\').system(\'echo hi\')")',
     "bad.neural:4:2: layer Lambda: its code string is never run or copied into the generated program"),
    ("Add()", "bad.neural:4:2: layer Add: merges several branches, but a network here is one sequence of layers"),
    ("Concatenate()", "layer Concatenate: merges several branches"),
    ("Dense(4)\n MyBlock(3, k=2)", "bad.neural:5:2: layer MyBlock: is a custom layer (not a built-in one"),
    ("TransformerEncoder(num_heads=2, d_model=16)", "d_model=16, but its input has 8 features (put Dense(16) before it"),
    ("MultiHeadAttention(num_heads=2, key_dim=3)", "num_heads * key_dim = 2 * 3 must equal its 8 input features"),
    ("PositionalEncoding(max_len=4)", "max_len=4 is shorter than its input's 10 steps"),
    ('Activation("relu", alpha=0.2)', "alpha applies to leaky_relu and elu, not 'relu'"),
    ("LSTMCell(4)", "layer LSTMCell: expects one step (features,) (rank 1 per sample)"),
    ("Permute((1, 3))", "dims must order the axes 1 to 2"),
    ("Cropping1D(5)", "cropping (5,) leaves nothing of its input (10, 8)"),
    ("TransformerEncoder(num_heads=2, num_layers=2) { Dense(8) }", "num_layers does not apply to a block"),
])
def test_layers_that_cannot_be_built_say_why(layers: str, message: str) -> None:
    assert message in compile_error(layers)


def test_a_spec_wrapping_a_dense_in_bidirectional_is_refused() -> None:
    """The language refuses it; a spec built another way meets the compiler's own check."""
    from neural_dsl_tracking.language.spec import LayerSpec

    spec = parse_text("network N {\n input: (10, 8)\n layers:\n Bidirectional(LSTM(4))\n}", "bad.neural").networks[0]
    spec.layers[0].children = [LayerSpec(type="Dense", params={"units": 4})]
    with pytest.raises(CompileError, match="layer Bidirectional: wraps a recurrent layer .LSTM, GRU, SimpleRNN., not Dense"):
        compile_program(spec, "bad.neural")


def test_lambda_code_never_reaches_generated_code(tmp_path: Path) -> None:
    text = 'network N {\n input: (4,)\n layers:\n Lambda("SENTINEL_CODE")\n loss: mse\n}'
    with pytest.raises(CompileError):
        compile_text(text, tmp_path)
    assert not (tmp_path / "program" / "train.py").exists()

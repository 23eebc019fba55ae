"""Every file of the original Neural DSL corpus parses, with its real meaning."""

from __future__ import annotations

from pathlib import Path

import pytest

from neural_dsl_tracking.language import parse_file
from neural_dsl_tracking.language.spec import (
    CallValue,
    ChoiceHPO,
    LogRangeHPO,
    ModelSpec,
    NeuralFile,
    RangeHPO,
)

CORPUS_FILES = [
    "LayersMultiplication+NestedLayers.neural", "Newton.neural", "advanced_hpo_v0.2.5.neural",
    "example.neural", "examples_transformer.neural", "gpu.neural", "hist_deepseek1984.nr",
    "lambda-sec-models_transformer.neural", "layer_multiplication.neural", "macros.neural",
    "mnist.neural", "mnist_2.neural", "mnist_hpo.neural", "nested_layers.neural",
    "resnet.neural", "sample.neural", "sentiment.neural", "three_inputs_neuron.neural",
    "tiny.neural",
]


def parse(corpus: Path, name: str) -> NeuralFile:
    return parse_file(corpus / name)


def only(corpus: Path, name: str) -> ModelSpec:
    parsed = parse(corpus, name)
    assert len(parsed.networks) == 1
    return parsed.networks[0]


def types(net: ModelSpec) -> list[str]:
    return [layer.type for layer in net.layers]


def test_the_corpus_has_19_files_and_all_parse(corpus: Path) -> None:
    found = sorted(p.name for p in corpus.iterdir() if p.suffix in (".neural", ".nr"))
    assert found == sorted(CORPUS_FILES)
    for name in found:
        assert parse(corpus, name).networks, name


def test_layer_multiplication_nested_macro(corpus: Path) -> None:
    net = only(corpus, "LayersMultiplication+NestedLayers.neural")
    assert net.name == "MyNetwork"
    assert net.input.shape == [28, 28, 1]
    assert types(net) == ["Conv2D", "MaxPooling2D"] * 3
    assert net.layers[0].params == {"filters": 32, "kernel_size": [3, 3], "activation": "relu"}
    assert net.layers[1].params == {"pool_size": [2, 2]}
    assert net.layers[0] is not net.layers[2]  # repeats are copies, not aliases


def test_newton_upper_case_none_and_repeat(corpus: Path) -> None:
    net = only(corpus, "Newton.neural")
    assert net.input.shape == [None, 512]
    assert types(net) == ["TransformerEncoder"] * 3 + ["Dense", "Output"]
    assert net.layers[0].params == {"num_heads": 8, "ff_dim": 2048, "dropout": 0.1}
    assert net.layers[3].params == {"units": 512, "activation": "relu"}
    assert net.loss == "categorical_crossentropy"
    assert net.optimizer.type == "Adam" and net.optimizer.params == {"learning_rate": 0.0001}
    assert (net.train.epochs, net.train.batch_size, net.train.validation_split) == (50, 64, 0.2)


def test_advanced_hpo_with_exponential_decay(corpus: Path) -> None:
    net = only(corpus, "advanced_hpo_v0.2.5.neural")
    assert types(net) == ["Conv2D", "MaxPooling2D", "Conv2D", "MaxPooling2D", "Flatten",
                          "Dense", "Dropout", "Output"]
    assert net.layers[0].params["filters"] == ChoiceHPO(options=[32, 64])
    assert net.layers[0].params["kernel_size"] == [3, 3]
    assert net.layers[2].params["filters"] == ChoiceHPO(options=[64, 128])
    assert net.layers[5].params == {"units": ChoiceHPO(options=[128, 256, 512]), "activation": "relu"}
    rate = net.layers[6].params["rate"]
    assert isinstance(rate, RangeHPO) and (rate.start, rate.stop, rate.step) == (0.3, 0.7, 0.1)
    assert net.layers[7].params == {"units": 10, "activation": "softmax"}
    opt = net.optimizer
    assert opt.type == "SGD"
    schedule = opt.schedule
    assert schedule is not None and schedule.type == "ExponentialDecay"
    assert schedule.initial_learning_rate == RangeHPO(start=0.05, stop=0.2, step=0.05)
    assert schedule.decay_steps == 1000
    assert schedule.decay_rate == RangeHPO(start=0.9, stop=0.99, step=0.01)
    assert opt.params["learning_rate"] == schedule.initial_learning_rate
    assert opt.params["momentum"] == RangeHPO(start=0.8, stop=0.99, step=0.01)
    assert net.train.epochs == 20
    assert net.train.batch_size == ChoiceHPO(options=[32, 64, 128])
    assert net.train.search_method == "bayesian"
    assert net.execution.device == "auto"


def test_example_leading_none_and_quoted_optimizer(corpus: Path) -> None:
    net = only(corpus, "example.neural")
    assert net.name == "MyModel"
    assert net.input.shape == [None, 28, 28]
    assert types(net) == ["Dense", "Dropout", "Output"]
    assert net.layers[0].params == {"units": 128, "activation": "relu"}
    assert net.layers[1].params == {"rate": 0.2}
    assert net.optimizer.type == "Adam" and net.optimizer.params == {}


def test_transformer_with_embedding(corpus: Path) -> None:
    net = only(corpus, "examples_transformer.neural")
    assert types(net) == ["Embedding", "TransformerEncoder", "GlobalAveragePooling1D", "Dense", "Output"]
    assert net.layers[0].params == {"input_dim": 10000, "output_dim": 512}
    assert net.loss == "sparse_categorical_crossentropy"
    assert (net.train.epochs, net.train.batch_size) == (20, 64)


def test_gpu_execution_block(corpus: Path) -> None:
    net = only(corpus, "gpu.neural")
    assert net.execution.device == "gpu"
    assert net.optimizer.type == "adam"
    assert net.layers[0].params == {"filters": 64, "kernel_size": [3, 3], "activation": "relu"}
    assert types(net)[-1] == "Output"


def test_deepseek_one_line_train_block(corpus: Path) -> None:
    net = only(corpus, "hist_deepseek1984.nr")
    assert net.input.shape == [None, 512]
    assert types(net) == ["Embedding", "TransformerEncoder", "Dense"]
    assert net.layers[0].params == {"input_dim": 50000, "output_dim": 256}
    assert (net.train.epochs, net.train.batch_size) == (5, 32)
    assert net.execution.device == "gpu"


def test_transformer_repeat_and_trailing_semicolon(corpus: Path) -> None:
    net = only(corpus, "lambda-sec-models_transformer.neural")
    assert types(net) == ["TransformerEncoder"] * 6 + ["GlobalAveragePooling1D", "Dense", "Output"]
    assert net.layers[-1].params == {"units": 10, "activation": "softmax"}
    assert net.train.validation_split == 0.2


def test_layer_multiplication_bare_optimizer_and_loss(corpus: Path) -> None:
    net = only(corpus, "layer_multiplication.neural")
    assert types(net) == ["Dense"] * 3 + ["Dropout", "Dense"]
    assert all(layer.params == {"units": 64, "activation": "relu"} for layer in net.layers[:3])
    assert net.layers[3].params == {"rate": 0.5}
    assert net.loss == "categorical_crossentropy"
    assert net.optimizer.type == "Adam"
    assert net.execution.device == "cpu"
    assert (net.train.epochs, net.train.batch_size, net.train.validation_split) == (10, 32, 0.2)


def test_macros_bare_reference(corpus: Path) -> None:
    net = only(corpus, "macros.neural")
    assert types(net) == ["Conv2D", "BatchNormalization", "Dropout"]
    assert net.layers[0].params == {"filters": 32, "kernel_size": 3, "activation": "relu"}


def test_mnist(corpus: Path) -> None:
    net = only(corpus, "mnist.neural")
    assert net.name == "MNISTClassifier"
    assert net.input.shape == [None, 28, 28, 1]
    assert types(net) == ["Conv2D", "MaxPooling2D", "Flatten", "Dense", "Dropout", "Output"]
    assert net.optimizer.params == {"learning_rate": 0.001}
    assert (net.train.epochs, net.train.batch_size) == (15, 64)


def test_mnist_2_hpo_and_execute(corpus: Path) -> None:
    net = only(corpus, "mnist_2.neural")
    assert len(net.layers) == 6
    assert net.layers[3].params["units"] == ChoiceHPO(options=[128, 256, 512])
    assert net.optimizer.params["learning_rate"] == LogRangeHPO(low=1e-4, high=1e-2)
    assert net.train.batch_size == ChoiceHPO(options=[32, 64, 128])
    assert net.execution.device == "cuda"


def test_mnist_hpo(corpus: Path) -> None:
    net = only(corpus, "mnist_hpo.neural")
    assert net.layers[0].params == {"units": ChoiceHPO(options=[128, 256])}
    assert net.layers[1].params == {"rate": RangeHPO(start=0.3, stop=0.7, step=0.1)}
    assert net.layers[2].params == {"units": 10, "activation": "softmax"}
    assert net.loss is None
    assert net.train.epochs == 10 and net.train.search_method == "bayesian"


def test_nested_layers_repeat_device_and_quoted_call(corpus: Path) -> None:
    net = only(corpus, "nested_layers.neural")
    assert types(net) == ["Conv2D"] + ["TransformerEncoder"] * 12 + ["GlobalAveragePooling2D", "Dense"]
    first = net.layers[0]
    assert first.params == {"filters": 64, "kernel_size": [7, 7], "strides": 2}
    assert first.device == "cuda:0"
    for block in net.layers[1:13]:
        assert block.params == {"num_heads": 8, "ff_dim": 512}
        assert [c.type for c in block.children] == ["Conv2D", "Dense"]
        assert block.children[1].params == {"units": 128}
    assert net.layers[1].children[0] is not net.layers[2].children[0]
    assert net.optimizer.type == "Adam" and net.optimizer.params == {"learning_rate": 1e-4}
    assert net.train.epochs == 300
    assert net.train.batch_size == RangeHPO(start=128, stop=512, step=64)


def test_resnet_residual_blocks_and_metrics(corpus: Path) -> None:
    net = only(corpus, "resnet.neural")
    assert types(net) == ["Conv2D", "MaxPooling2D"] + ["ResidualConnection", "Activation"] * 4 + [
        "GlobalAveragePooling2D", "Dense"]
    assert net.layers[0].params == {"filters": 64, "kernel_size": [7, 7], "strides": [2, 2],
                                    "padding": "same", "activation": "relu"}
    residuals = [layer for layer in net.layers if layer.type == "ResidualConnection"]
    assert [len(r.children) for r in residuals] == [2, 2, 3, 2]
    assert residuals[2].children[2].params["kernel_size"] == [1, 1]
    assert net.layers[3].params == {"activation": "relu"}
    assert net.metrics == ["accuracy"]


def test_sample(corpus: Path) -> None:
    net = only(corpus, "sample.neural")
    assert net.name == "TestNet"
    assert net.layers[0].params == {"filters": 32, "kernel_size": 3, "activation": "relu"}
    assert net.optimizer.type == "adam"


def test_sentiment_lstm(corpus: Path) -> None:
    net = only(corpus, "sentiment.neural")
    assert types(net) == ["Embedding", "LSTM", "LSTM", "Dense", "Output"]
    assert net.layers[1].params == {"units": 128, "return_sequences": True}
    assert net.loss == "binary_crossentropy"


def test_two_networks_in_one_file(corpus: Path) -> None:
    parsed = parse(corpus, "three_inputs_neuron.neural")
    assert [n.name for n in parsed.networks] == ["ThreeInputNeuron", "ThreeInputNeuron"]
    first, second = parsed.networks
    assert first.input.shape == [3] and second.input.shape == [3]
    assert first.layers[0].params == {"units": 1, "activation": "linear"}
    assert second.layers[0].params == {"units": 1, "activation": "linear", "use_bias": True}


def test_tiny(corpus: Path) -> None:
    net = only(corpus, "tiny.neural")
    assert types(net) == ["Output"] and net.layers[0].params == {"units": 10}
    assert net.optimizer is None and net.plugins.get("tracking") is None
    assert (net.train.epochs, net.train.batch_size) == (10, 32)  # defaults


@pytest.mark.parametrize("name", CORPUS_FILES)
def test_corpus_specs_have_no_calls_left_unexplained(corpus: Path, name: str) -> None:
    """Every call in the corpus is understood (HPO or schedule), none left as a raw call."""

    def walk(value: object) -> None:
        assert not isinstance(value, CallValue), (name, value)
        if isinstance(value, list):
            for item in value:
                walk(item)

    for net in parse(corpus, name).networks:
        for layer in net.layers:
            for value in layer.params.values():
                walk(value)

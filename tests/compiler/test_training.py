"""Training loops of different network kinds on synthetic data (in-process, untracked)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from .conftest import compile_text, import_program

pytestmark = pytest.mark.slow


def _train(train_py: Path, *overrides: str) -> dict[str, float]:
    from hydra import compose, initialize_config_dir

    from neural_dsl_tracking.compiler import runtime
    from neural_dsl_tracking.resources import configs_dir

    module = import_program(train_py)
    with initialize_config_dir(config_dir=str(train_py.parent / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"hydra.searchpath=[{configs_dir().as_uri()}]",
                                                        "execution.threads=1", *overrides])
    config, composed = runtime.load_config(cfg, module.MODEL_KINDS, module.LOSS_FAMILY, module.PLUGIN_SECTIONS)
    return module.train(config, composed)


def test_token_classifier_with_lstm(tmp_path: Path) -> None:
    train_py = compile_text("""network Sentiment {
      input: (20, 16)
      layers:
        Embedding(input_dim=50, output_dim=16)
        LSTM(units=8, return_sequences=true)
        GRU(units=8)
        Output(units=2, activation="softmax")
      loss: "binary_crossentropy"
      optimizer: RMSprop(learning_rate=0.01)
      train { epochs: 2 batch_size: 16 }
    }""", tmp_path)
    defaults = yaml.safe_load((train_py.parent / "conf" / "config.yaml").read_text())["defaults"]
    assert {"data": "synthetic"} in defaults
    final = _train(train_py, "data.samples=96")
    assert 0.0 <= final["accuracy"] <= 1.0 and final["loss"] > 0


def test_per_step_outputs_of_a_dynamic_length_transformer(tmp_path: Path) -> None:
    train_py = compile_text("""network Tagger {
      input: (None, 8)
      layers:
        TransformerEncoder(num_heads=2, ff_dim=16, dropout=0.0)
        Dense(5, "softmax")
      loss: "sparse_categorical_crossentropy"
      optimizer: AdamW(learning_rate=0.01)
      train { epochs: 1 batch_size: 8 }
    }""", tmp_path)
    final = _train(train_py, "data.samples=32", "data.length=6")
    assert set(final) >= {"loss", "accuracy"}


def test_regression_with_an_exponential_decay_schedule(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    train_py = compile_text("""network Neuron {
      input: (3)
      layers:
        Dense(units=1, activation="linear", use_bias=true)
      optimizer: SGD(learning_rate=ExponentialDecay(0.1, 2, 0.5), momentum=0.9)
      train { epochs: 2 batch_size: 32 validation_split: 0.25 }
    }""", tmp_path)
    final = _train(train_py, "data.samples=128")
    assert "accuracy" not in final and final["loss"] > 0
    out = capsys.readouterr().out
    # 96 training samples / 32 = 3 batches per epoch: lr 0.1 * 0.5 ** (3 / 2) after epoch 1
    assert "epoch 1/2" in out and "lr 0.0354" in out

"""Padding masks: after ``Embedding(..., mask_zero=true)`` token id 0 is padding, and the
layers after it leave the padded steps out. A padded batch must give, for each sequence,
what the sequence alone gives without padding, wherever the padding is.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from tests.compiler.conftest import compile_text, default_model, import_program

STEPS = 10
HEAD = '    Output(3, "softmax")\n  loss: "categorical_crossentropy"\n  optimizer: Adam()\n}\n'


def _network(*layers: str) -> str:
    body = "".join(f"    {layer}\n" for layer in layers)
    return f"network Masked {{\n  input: ({STEPS})\n  layers:\n    Embedding(30, 8, mask_zero=true)\n{body}{HEAD}"


def _hand_written(*modules: nn.Module) -> int:
    """Parameters of the same network written by hand (embedding and head included)."""
    return sum(p.numel() for p in nn.ModuleList([nn.Embedding(30, 8, padding_idx=0), *modules]).parameters())


CASES = {
    "transformer_encoder": (
        _network("TimeDistributed(Dense(8, \"relu\"))", "TransformerEncoder(num_heads=2, ff_dim=16)",
                 "GlobalAveragePooling1D()"),
        _hand_written(nn.Linear(8, 8), nn.TransformerEncoderLayer(8, 2, 16, batch_first=True), nn.Linear(8, 3)),
    ),
    "decoder_and_attention": (
        _network("TransformerDecoder(num_heads=2, ff_dim=16, num_layers=2)", "MultiHeadAttention(2)",
                 "Attention(use_causal_mask=true)", "Attention()", "GlobalMaxPooling1D()"),
        _hand_written(nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16, batch_first=True), 2,
                                            enable_nested_tensor=False),
                      nn.MultiheadAttention(8, 2, batch_first=True), nn.Linear(8, 3)),
    ),
    "encoder_with_nested_layers": (
        _network("TransformerEncoder(num_heads=2) { Dense(8, \"relu\") }", "LayerNormalization()",
                 "GlobalAveragePooling1D()"),
        _hand_written(nn.MultiheadAttention(8, 2, batch_first=True), nn.LayerNorm(8), nn.LayerNorm(8),
                      nn.Linear(8, 8), nn.LayerNorm(8), nn.Linear(8, 3)),
    ),
    "recurrent": (
        _network("LSTM(6, return_sequences=true)", "Bidirectional(GRU(5))"),
        _hand_written(nn.LSTM(8, 6, batch_first=True), nn.GRU(6, 5, batch_first=True, bidirectional=True),
                      nn.Linear(10, 3)),
    ),
    "recurrent_sequences": (
        _network("Bidirectional(LSTM(4, return_sequences=true), merge_mode=\"ave\")", "SimpleRNN(5, return_sequences=true)",
                 "GlobalAveragePooling1D()"),
        _hand_written(nn.LSTM(8, 4, batch_first=True, bidirectional=True), nn.RNN(4, 5, batch_first=True),
                      nn.Linear(5, 3)),
    ),
}


def _compiled(text: str, tmp_path: Path) -> nn.Module:
    train_py = compile_text(text, tmp_path)
    model = default_model(import_program(train_py), train_py)
    return model.eval()


def _sequences(generator: torch.Generator) -> list[torch.Tensor]:
    lengths = [3, 7, 1, 5, STEPS]
    return [torch.randint(1, 30, (n,), generator=generator) for n in lengths]


def _padded(sequences: list[torch.Tensor], where: str, generator: torch.Generator) -> torch.Tensor:
    """The sequences padded with 0 to STEPS: after, before, or at random places among the tokens."""
    rows = []
    for tokens in sequences:
        row = torch.zeros(STEPS, dtype=torch.long)
        if where == "after":
            places = torch.arange(len(tokens))
        elif where == "before":
            places = torch.arange(STEPS - len(tokens), STEPS)
        else:
            places = torch.randperm(STEPS, generator=generator)[: len(tokens)].sort().values
        row[places] = tokens
        rows.append(row)
    return torch.stack(rows).float()  # the program feeds ids as the data's dtype


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_padded_batch_gives_each_sequence_its_unpadded_output(case: str, tmp_path: Path) -> None:
    text, hand_written_parameters = CASES[case]
    model = _compiled(text, tmp_path)
    assert sum(p.numel() for p in model.parameters()) == hand_written_parameters
    generator = torch.Generator().manual_seed(7)
    sequences = _sequences(generator)
    with torch.no_grad():
        alone = torch.cat([model(tokens[None].float()) for tokens in sequences])
        for where in ("after", "before", "between"):
            torch.testing.assert_close(model(_padded(sequences, where, generator)), alone, atol=1e-5, rtol=1e-4,
                                       msg=lambda text: f"padding {where}: {text}")


def test_training_mode_masks_too(tmp_path: Path) -> None:
    """Dropout off, training mode on: the masks apply in training as well (no fast path)."""
    text = _network("TransformerEncoder(num_heads=2, ff_dim=16, dropout=0.0)", "GlobalAveragePooling1D()")
    model = _compiled(text, tmp_path).train()
    sequences = _sequences(torch.Generator().manual_seed(3))
    alone = torch.cat([model(tokens[None].float()) for tokens in sequences])
    padded = model(_padded(sequences, "after", torch.Generator()))
    torch.testing.assert_close(padded, alone, atol=1e-5, rtol=1e-4)
    padded.sum().backward()  # gradients flow through the masked layers
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters()
               if p.requires_grad and p.grad is not None)


def test_a_sequence_of_padding_only_stays_finite(tmp_path: Path) -> None:
    model = _compiled(CASES["decoder_and_attention"][0], tmp_path)
    with torch.no_grad():
        out = model(torch.zeros(2, STEPS))
    assert torch.isfinite(out).all()


def test_without_mask_zero_padding_is_read_as_tokens(tmp_path: Path) -> None:
    """mask_zero=false (the default): id 0 is a token like any other, no mask is made."""
    text = _network("GlobalAveragePooling1D()").replace(", mask_zero=true", "")
    model = _compiled(text, tmp_path)
    sequences = _sequences(torch.Generator().manual_seed(5))
    with torch.no_grad():
        alone = torch.cat([model(tokens[None].float()) for tokens in sequences])
        padded = model(_padded(sequences, "after", torch.Generator()))
    assert not torch.allclose(padded[:4], alone[:4], atol=1e-4)  # the last sequence has no padding
    torch.testing.assert_close(padded[4], alone[4])

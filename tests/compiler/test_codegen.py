"""The safe builders: identifiers are checked, values only ever become literals."""

from __future__ import annotations

import ast

import pytest

from neural_dsl_tracking.compiler.codegen import CodeWriter, Expr, attr, call, dotted, ident, lit, mapping, product
from neural_dsl_tracking.errors import CompileError

HOSTILE_NAMES = ["os.system", "__import__", "a b", "x)\nimport os", "1abc", "class", "é", "", "a" * 65,
                 "__class__", "x;y", "x'", 'x"']


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_ident_rejects_unsafe_names(name: str) -> None:
    with pytest.raises(CompileError):
        ident(name)


def test_dotted_names_are_checked_part_by_part() -> None:
    assert dotted("torch.nn.Linear").code == "torch.nn.Linear"
    for bad in ("torch..nn", "torch.__class__", "torch.nn.Linear()", "os.system('x')"):
        with pytest.raises(CompileError):
            dotted(bad)


@pytest.mark.parametrize("value", [
    None, True, 0, -3, 1.5e-7, "plain", "quote ' and \" both", "new\nline", "__import__('os').system('rm -rf /')",
    [1, [2, "x"]], (3,), (1, 2), {"a": 1, "b": [None]}, "\\${oc.env:HOME}",
])
def test_literals_round_trip_and_stay_constants(value: object) -> None:
    code = lit(value).code
    assert ast.literal_eval(code) == value
    tree = ast.parse(code, mode="eval")
    assert not any(isinstance(node, (ast.Call, ast.Name, ast.Attribute)) for node in ast.walk(tree))


def test_non_literal_values_are_refused() -> None:
    for bad in (float("nan"), float("inf"), object(), {1.5: "x"}, {("a",): 1}):
        with pytest.raises(CompileError):
            lit(bad)


def test_call_and_attr_build_valid_code() -> None:
    expr = call("nn.Linear", 3, Expr("hp.dense_1.units"), bias=True)
    assert expr.code == "nn.Linear(3, hp.dense_1.units, bias=True)"
    assert attr("config", "tracking", "monitor").code == "config.tracking.monitor"
    with pytest.raises(CompileError):
        call("nn.Linear", **{"bias=True, x": 1})
    assert mapping({"epoch": Expr("epoch"), "x": "y"}).code == "{'epoch': epoch, 'x': 'y'}"


def test_product_folds_constants() -> None:
    assert product([2, 3, 4]).code == "24"
    assert product([Expr("hp.c.filters"), 3, 3]).code == "hp.c.filters * 9"


def test_writer_indents_blocks_and_refuses_multiline_comments() -> None:
    out = CodeWriter()
    with out.block("if x"):
        out.line("y = 1")
    assert out.text() == "if x:\n    y = 1\n"
    with pytest.raises(CompileError):
        out.comment("two\nlines")


def test_long_calls_are_wrapped_one_argument_per_line() -> None:
    out = CodeWriter(indent=2)
    statement = call("nn.Conv2d", 1, Expr("hp.conv2d_1.filters"), kernel_size=(3, 3), stride=(1, 1),
                     padding=(1, 1), bias=True, extra_argument_to_be_long="x" * 30)
    out.assign("self.conv2d_1", statement)
    text = out.text()
    assert all(len(line) <= 110 for line in text.splitlines())
    assert text.splitlines()[1] == "            1,"
    assert ast.dump(ast.parse(text.replace("\n        ", "\n").strip())) == \
        ast.dump(ast.parse(f"self.conv2d_1 = {statement.code}"))

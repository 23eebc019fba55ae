"""Bad input: one clear message with file:line:col, the source line, a caret, what was
expected and a "did you mean" where a known name is near."""

from __future__ import annotations

import re

import pytest

from neural_dsl_tracking.errors import NeuralError, NeuralSyntaxError, NeuralValidationError
from neural_dsl_tracking.language import parse_file, parse_text

HEAD = """network Net {
  input: (28, 28, 1)
  layers:
    Flatten()
    Output(10, "softmax")
"""


def error_of(text: str, kind: type[NeuralError] = NeuralError) -> NeuralError:
    with pytest.raises(kind) as info:
        parse_text(text, "model.neural")
    return info.value


def assert_points_at(error: NeuralError, line: int, column: int, width: int = 1) -> None:
    """The first diagnostic is at line:column and the caret sits under that column."""
    message = str(error)
    assert message.startswith(f"model.neural:{line}:{column}: "), message
    source_line, caret_line = message.splitlines()[1:3]
    prefix = f"  {line} | "
    assert source_line.startswith(prefix)
    caret = caret_line[len(prefix):]
    assert caret.index("^") == column - 1, message
    assert len(caret.strip()) == width, message
    first = error.diagnostics[0]
    assert (first.pos.line, first.pos.column) == (line, column)


def assert_no_internal_names(message: str) -> None:
    assert not re.search(r"__ANON|\bLBRACE\b|\bRPAR\b|\$END|Tree\(|Token\(", message), message
    assert "pydantic" not in message and "errors.pydantic.dev" not in message
    assert "Input should be" not in message  # no raw pydantic wording


def test_unknown_tracking_key_suggests_the_nearest() -> None:
    error = error_of(HEAD + "  tracking < visualise_every: 10 >\n}\n", NeuralValidationError)
    assert "unknown tracking key 'visualise_every'; did you mean 'visualize_every'?" in str(error)
    assert_points_at(error, 6, 14, width=len("visualise_every"))
    assert_no_internal_names(str(error))


def test_unknown_nested_key_suggests_the_dotted_name() -> None:
    error = error_of(HEAD + '  tracking <\n    mlflow.trackinguri: "x"\n  >\n}\n')
    assert "unknown tracking key 'mlflow.trackinguri'; did you mean 'mlflow.tracking_uri'?" in str(error)
    assert_points_at(error, 7, 5, width=len("mlflow.trackinguri"))


def test_bad_value_type_points_at_the_value() -> None:
    error = error_of(HEAD + "  tracking < backend: local; visualize_every: often >\n}\n")
    assert "'visualize_every' must be an integer, got \"often\"" in str(error)
    assert_points_at(error, 6, 47, width=len("often"))
    assert_no_internal_names(str(error))


def test_float_where_an_integer_is_needed() -> None:
    error = error_of(HEAD + "  tracking < log_every: 2.5 >\n}\n")
    assert "'log_every' must be an integer, got 2.5" in str(error)


def test_bool_type() -> None:
    error = error_of(HEAD + '  tracking < version_artifacts: "yes" >\n}\n')
    assert "'version_artifacts' must be true or false" in str(error)


def test_negative_visualize_every() -> None:
    error = error_of(HEAD + "  tracking < visualize_every: -1 >\n}\n", NeuralValidationError)
    assert "'visualize_every' must be >= 0, got -1" in str(error)
    assert_points_at(error, 6, 31, width=2)


def test_zero_log_every() -> None:
    assert "'log_every' must be >= 1, got 0" in str(error_of(HEAD + "  tracking < log_every: 0 >\n}\n"))


def test_unknown_backend_suggests_and_lists_the_known() -> None:
    error = error_of(HEAD + "  tracking < backend: [mlflow, tensorbord] >\n}\n")
    message = str(error)
    assert "unknown backend \"tensorbord\"; did you mean 'tensorboard'?" in message
    assert "(known: local, mlflow, wandb, tensorboard)" in message
    assert_points_at(error, 6, 32, width=len("tensorbord"))


def test_wandb_mode_must_be_known() -> None:
    message = str(error_of(HEAD + "  tracking < wandb.mode: ofline >\n}\n"))
    assert "'wandb.mode' cannot be \"ofline\"; did you mean 'offline'?" in message


def test_group_key_given_a_value() -> None:
    message = str(error_of(HEAD + '  tracking < mlflow: "sqlite:///m.db" >\n}\n'))
    assert "'mlflow' is a group of settings" in message and "mlflow.tracking_uri" in message


def test_duplicate_key() -> None:
    error = error_of(HEAD + "  tracking <\n backend: local\n backend: mlflow\n >\n}\n")
    assert "tracking key 'backend' is given twice (first at line 7)" in str(error)
    assert_points_at(error, 8, 2, width=len("backend"))


def test_value_and_group_conflict() -> None:
    message = str(error_of(HEAD + '  tracking < mlflow.experiment: "a"; mlflow: "b" >\n}\n'))
    assert "tracking key 'mlflow' has settings below it" in message


def test_call_as_tracking_value() -> None:
    message = str(error_of(HEAD + "  tracking < visualize_every: HPO(choice(1, 2)) >\n}\n"))
    assert "a tracking value must be a number, true/false, a quoted string, a name or a list" in message


def test_two_tracking_blocks_in_one_network() -> None:
    message = str(error_of(HEAD + "  tracking < backend: local >\n  tracking < tags: [a] >\n}\n"))
    assert "a second 'tracking' block in network 'Net' (first at line 6)" in message


def test_errors_of_a_top_level_block_are_reported_once() -> None:
    text = "tracking < visualize_every: -5 >\n" + HEAD + "}\n" + HEAD.replace("Net", "Two") + "}\n"
    error = error_of(text)
    assert len(error.diagnostics) == 1
    assert_points_at(error, 1, 29, width=2)


def test_unclosed_angle_bracket_at_the_end_of_the_network() -> None:
    error = error_of(HEAD + "  tracking < backend: mlflow; visualize_every: 10\n}\n", NeuralSyntaxError)
    message = str(error)
    assert "unexpected '}'; expected '>'" in message
    assert "('<' opened at line 6, column 12 is not closed)" in message
    assert_points_at(error, 7, 1)
    assert_no_internal_names(message)


def test_unclosed_angle_bracket_at_end_of_file() -> None:
    error = error_of("tracking < backend: mlflow\n\n", NeuralSyntaxError)
    message = str(error)
    assert "unexpected end of file" in message and "'>'" in message
    assert "'<' opened at line 1, column 10 is not closed" in message
    assert_points_at(error, 1, 27)


def test_unknown_layer_suggests_the_nearest() -> None:
    error = error_of("network N {\n  input: (4)\n  layers:\n    dens(10)\n}\n", NeuralValidationError)
    assert "unknown layer 'dens'; did you mean 'Dense'?" in str(error)
    assert_points_at(error, 4, 5, width=4)


def test_unknown_layer_suggests_a_macro() -> None:
    text = "define ConvBlock { Conv2D(8, 3) }\nnetwork N { input: (8, 8, 1) layers: convBlok }\n"
    assert "unknown layer 'convBlok'; did you mean 'ConvBlock'?" in str(error_of(text))


def test_unknown_layer_parameter_suggests_the_nearest() -> None:
    text = 'network N { input: (4) layers: Dense(10, activaton="relu") }'
    error = error_of(text)
    assert "Dense has no parameter 'activaton'; did you mean 'activation'?" in str(error)


def test_wrong_parameter_type() -> None:
    error = error_of('network N {\n input: (4)\n layers: Dense("relu")\n}')
    assert "Dense: 'units' must be a positive integer, got \"relu\"" in str(error)
    assert_points_at(error, 3, 16, width=len('"relu"'))


def test_dropout_rate_out_of_range_and_hpo_checked() -> None:
    message = str(error_of("network N { input: (4) layers: Dropout(HPO(range(0.5, 1.5))) }"))
    assert "Dropout: 'rate' must be a number from 0 up to (not including) 1" in message


def test_unknown_activation() -> None:
    message = str(error_of('network N { input: (4) layers: Dense(4, "rellu") }'))
    assert "Dense: 'activation' must be an activation name" in message


def test_missing_required_parameter_and_too_many_positionals() -> None:
    message = str(error_of("network N { input: (4) layers: Conv2D(32) Dropout(0.1, 2, 3) }"))
    assert "Conv2D needs 'kernel_size'" in message
    assert "Dropout takes at most 1 positional argument (rate)" in message


def test_several_problems_are_all_listed_in_source_order() -> None:
    text = "network N {\n input: (4)\n layers:\n  dens(1)\n  Dense(0)\n}\n"
    error = error_of(text)
    assert [(d.pos.line, d.pos.column) for d in error.diagnostics] == [(4, 3), (5, 9)]


def test_nested_block_on_a_plain_layer() -> None:
    message = str(error_of("network N { input: (4) layers: Dense(4) { Dense(2) } }"))
    assert "Dense does not take a nested { } block" in message


def test_repeat_count_must_be_positive() -> None:
    message = str(error_of("network N { input: (4) layers: Dense(4) * 0 }"))
    assert "a repeat count must be a positive integer, got 0" in message


def test_huge_repeat_is_refused_not_expanded() -> None:
    message = str(error_of("network N { input: (4) layers: Dense(4) * 100000000 }"))
    assert "more than 10000 layers" in message


def test_recursive_macros() -> None:
    message = str(error_of("define A { B }\ndefine B { A }\nnetwork N { input: (1) layers: A }"))
    assert "macro 'A' uses itself" in message or "macro 'B' uses itself" in message


def test_macro_with_the_name_of_a_layer() -> None:
    message = str(error_of("define Dense { Flatten() }\nnetwork N { input: (1) layers: Flatten() }"))
    assert "macro 'Dense' has the name of a built-in layer" in message


def test_unknown_hpo_expression() -> None:
    message = str(error_of("network N { input: (4) layers: Dense(HPO(uniform(1, 9))) }"))
    assert "unknown HPO expression 'uniform' (known: choice, range, log_range)" in message


def test_bad_hpo_bounds() -> None:
    message = str(error_of(
        "network N { input: (4) layers: Dense(4) optimizer: Adam(learning_rate=HPO(log_range(0, 1))) }"
    ))
    assert "log_range(...): needs 0 < low < high" in message


@pytest.mark.parametrize("option", ["range(8, 16, step=8)", "HPO(choice(8, 16))", "log_range(8, 64)"])
def test_a_search_space_inside_a_choice_is_refused_at_the_option(option: str) -> None:
    # It passed the check, then compile, run and sweep died with a YAML traceback.
    error = error_of(f"network N {{\n input: (4)\n layers: Dense(HPO(choice(32, {option})))\n}}\n")
    message = str(error)
    assert "choice(...): an option cannot be a search space itself" in message, message
    assert "RangeHPO" not in message and "ChoiceHPO" not in message and "LogRangeHPO" not in message
    assert len(error.diagnostics) == 1, message
    assert_points_at(error, 3, 31, width=len(option))


def test_a_search_space_inside_an_optimizer_choice_is_refused() -> None:
    error = error_of("network N { input: (4) layers: Dense(4)\n"
                     "optimizer: Adam(learning_rate=HPO(choice(0.1, log_range(0.01, 0.1)))) }")
    assert "choice(...): an option cannot be a search space itself" in str(error)
    assert_points_at(error, 2, 47, width=len("log_range(0.01, 0.1)"))


def test_a_search_space_inside_a_tuple_is_refused() -> None:
    # betas=(HPO(...), 0.999) passed the check, then compile died with a YAML traceback.
    error = error_of("network N { input: (4) layers: Dense(4)\n"
                     "optimizer: Adam(learning_rate=0.01, betas=(HPO(choice(0.9, 0.8)), 0.999)) }")
    message = str(error)
    assert "HPO(...) must be a setting's whole value, not an item of a tuple or list" in message, message
    assert len(error.diagnostics) == 1, message
    assert_points_at(error, 2, 44, width=len("HPO(choice(0.9, 0.8))"))


def test_unknown_optimizer_and_schedule() -> None:
    message = str(error_of("network N { input: (4) layers: Dense(4) optimizer: Adamw2 }"))
    assert "unknown optimizer 'Adamw2'; did you mean 'AdamW'?" in message
    message = str(error_of(
        "network N { input: (4) layers: Dense(4) optimizer: SGD(learning_rate=ExpDecay(0.1, 10, 0.9)) }"
    ))
    assert "unknown learning-rate schedule 'ExpDecay'; did you mean 'ExponentialDecay'?" in message


def test_error_inside_a_quoted_optimizer_points_into_the_string() -> None:
    error = error_of('network N {\n input: (4)\n layers: Dense(4)\n optimizer: "Adam(learning_rate=)"\n}')
    assert "unexpected ')'" in str(error) and "expected a value" in str(error)
    assert_points_at(error, 4, 33)


def test_train_typo_and_bad_values() -> None:
    message = str(error_of("network N { input: (4) layers: Dense(4) train { epoch: 3 } }"))
    assert "unknown train setting 'epoch'; did you mean 'epochs'?" in message
    message = str(error_of("network N { input: (4) layers: Dense(4) train { epochs: 0 validation_split: 1.5 } }"))
    assert "epochs must be a positive integer, got 0" in message
    assert "validation_split must be a number from 0 up to (not including) 1, got 1.5" in message


def test_unknown_device() -> None:
    message = str(error_of('network N { input: (4) layers: Dense(4) execution { device: "cuad" } }'))
    assert "unknown device 'cuad'; did you mean 'cuda'?" in message


def test_bad_input_dimension() -> None:
    message = str(error_of("network N { input: (28, 0) layers: Dense(4) }"))
    assert "an input dimension must be a positive integer or None, got 0" in message


def test_missing_sections() -> None:
    message = str(error_of("network N { loss: mse }"))
    assert "network 'N' has no input" in message and "network 'N' has no layers" in message


def test_duplicate_section() -> None:
    message = str(error_of("network N {\n input: (4)\n layers: Dense(4)\n loss: mse\n loss: mae\n}"))
    assert "'loss' is given twice in network 'N' (first at line 4)" in message


def test_file_without_a_network() -> None:
    assert "the file defines no network" in str(error_of("# nothing here\n"))
    assert "the file defines no network" in str(error_of(""))


def test_syntax_error_says_what_was_expected() -> None:
    error = error_of("network N {\n  input (4)\n}", NeuralSyntaxError)
    assert "unexpected '('; expected ':'" in str(error)
    assert_points_at(error, 2, 9)


def test_unexpected_character() -> None:
    error = error_of("network N { input: (4) layers: Dense(4) } $", NeuralSyntaxError)
    assert "unexpected character '$'; expected one of 'define', 'macro', 'network', 'sweep' or 'tracking'" in str(error)


def test_unterminated_string() -> None:
    error = error_of('network N {\n input: (4)\n layers: Dense(4)\n loss: "mse\n}', NeuralSyntaxError)
    assert "unterminated string" in str(error)
    assert_points_at(error, 4, 8)


def test_unclosed_parenthesis_names_the_opening() -> None:
    error = error_of("network N { input: (4) layers: Dense(10", NeuralSyntaxError)
    assert "'(' opened at line 1, column 37 is not closed" in str(error)


def test_deep_nesting_is_refused_cleanly() -> None:
    text = "network N { input: (4) layers: Dense(" + "(" * 5000 + "1" + ")" * 5000 + ") }"
    assert "nested more than 64 deep" in str(error_of(text, NeuralSyntaxError))


def test_tabs_keep_the_caret_aligned() -> None:
    error = error_of("network N {\n\tinput: (4)\n\tlayers:\n\t\tdens(1)\n}")
    caret_line = str(error).splitlines()[2]
    assert caret_line.endswith("| \t\t^~~~")


def test_missing_file_directory_and_binary(tmp_path) -> None:
    with pytest.raises(NeuralError, match="no such file"):
        parse_file(tmp_path / "absent.neural")
    with pytest.raises(NeuralError, match="is a directory"):
        parse_file(tmp_path)
    binary = tmp_path / "bin.neural"
    binary.write_bytes(b"network N {\n\xff\xfe }")
    with pytest.raises(NeuralSyntaxError, match=r"bin.neural:2: the file is not UTF-8 text"):
        parse_file(binary)


def test_misspelled_section_keyword() -> None:
    error = error_of("network N {\n  inpt: (4)\n  layers: Dense(2)\n}", NeuralValidationError)
    assert "unknown section 'inpt'; did you mean 'input'?" in str(error)
    assert "has no input" not in str(error)  # the misspelt section is not also missing
    assert_points_at(error, 2, 3, width=4)


def test_misspelled_section_after_the_layers_is_explained() -> None:
    error = error_of("network N {\n  input: (4)\n  layers: Dense(2)\n  optimiser: Adam\n}", NeuralValidationError)
    assert "unknown section 'optimiser'; did you mean 'optimizer'?" in str(error)
    assert_points_at(error, 4, 3, width=9)


def test_misspelled_block_keyword() -> None:
    message = str(error_of("network N { input: (4) layers: Dense(2) trackng < backend: local > }"))
    assert ("1:41: unknown block 'trackng < ... >': no installed plugin provides it; did you mean "
            "'tracking'? (plugin blocks: sweep, tracking)") in message
    message = str(error_of("netwrk N { input: (4) layers: Dense(2) }"))
    assert "did you mean 'network'?" in message


def test_bad_schedule_argument_is_reported_not_crashed() -> None:
    """Found by fuzzing: a fourth positional argument of ExponentialDecay is `staircase`."""
    text = ("network N { input: (4) layers: Dense(2)\n"
            " optimizer: Adam(learning_rate=ExponentialDecay(0.1, 1000, 0, .96)) }")
    message = str(error_of(text, NeuralValidationError))
    assert "ExponentialDecay: 'staircase' must be true or false, got 0.96" in message
    assert "ExponentialDecay: 'decay_rate' must be a positive number, got 0" in message

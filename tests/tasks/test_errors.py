import pytest

from blipdiff_plugins.tasks.errors import ArgumentError, InvalidArgumentError, ModelArgumentError, cli_flag, render


def test_message_for_renders_each_front_doors_names():
    error = InvalidArgumentError("`subject_model` and `subject_image` exclude each other; pass one of them.", argument="subject_model")
    assert error.argument == "subject_model"
    assert str(error) == "`subject_model` and `subject_image` exclude each other; pass one of them."
    assert error.message_for(cli_flag) == "`--subject-model` and `--subject-image` exclude each other; pass one of them."
    labels = {"subject_model": "Subject model", "subject_image": "Subject images"}
    assert error.message_for(labels) == "`Subject model` and `Subject images` exclude each other; pass one of them."


def test_unknown_keywords_and_values_stay_as_written():
    # A keyword the mapping lacks keeps its own name; quoted values ('x') are not keywords.
    assert render("`steps` is 0 and `other` 'x`y'", {"steps": "Steps"}) == "`Steps` is 0 and `other` 'x`y'"


def test_argument_errors_are_the_built_in_types_callers_already_catch():
    with pytest.raises(ValueError):
        raise InvalidArgumentError("`seed` bad", argument="seed")
    with pytest.raises(OSError):
        raise ModelArgumentError("`model` missing", argument="model")
    assert issubclass(InvalidArgumentError, ArgumentError)


def test_a_value_after_the_keyword_stays_inside_the_quotes():
    error = InvalidArgumentError("`device cuda`: no such CUDA GPU; pass `subject_model DIR`.", argument="device")
    assert error.message_for(cli_flag) == "`--device cuda`: no such CUDA GPU; pass `--subject-model DIR`."

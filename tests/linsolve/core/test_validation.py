"""The shared parameter checks (``linsolve.core.validation``): what each accepts and refuses
(bools, NaN, infinities, text, the ends of ranges), the value it returns, and the error type
and message (parameter, value, what is accepted)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from linsolve.core.errors import OptionError, ShapeError
from linsolve.core.validation import check_bool, check_choice, check_int, check_real, is_int, is_real


class CustomError(ValueError):
    pass


# --- check_int ------------------------------------------------------------------------------

@pytest.mark.parametrize("value", [0, 1, 7, np.int64(7), np.int8(3), np.uint16(9), 2 ** 70])
def test_int_accepts_python_and_numpy_integers_as_int(value):
    out = check_int("n", value, 0)
    assert out == value and type(out) is int


@pytest.mark.parametrize("value", [True, False, np.bool_(True), 3.0, 2.5, float("nan"), float("inf"),
                                   "3", None, [3], 3 + 0j])
def test_int_refuses_what_is_not_an_integer(value):
    with pytest.raises(OptionError) as exc:
        check_int("n", value)
    assert str(exc.value) == f"n must be an integer, got {value!r}"


@pytest.mark.parametrize("minimum,maximum,good,bad,what", [
    (1, None, [1, 2, 10 ** 9], [0, -1], "an integer >= 1"),
    (0, None, [0, 5], [-1], "an integer >= 0"),
    (None, 4, [-3, 4], [5], "an integer <= 4"),
    (2, 4, [2, 3, 4], [1, 5], "an integer in [2, 4]"),
])
def test_int_bounds_are_inclusive(minimum, maximum, good, bad, what):
    for v in good:
        assert check_int("restart", v, minimum, maximum) == v
    for v in bad:
        with pytest.raises(OptionError, match=rf"^restart must be {what}, got {v}$".replace("[", r"\[")):
            check_int("restart", v, minimum, maximum)


def test_int_none_only_when_allowed():
    assert check_int("maxiter", None, 1, allow_none=True) is None
    with pytest.raises(OptionError, match=r"^maxiter must be an integer >= 1, got None$"):
        check_int("maxiter", None, 1)
    with pytest.raises(OptionError, match=r"^maxiter must be an integer >= 1 or None, got 0$"):
        check_int("maxiter", 0, 1, allow_none=True)


def test_int_whole_floats_only_when_asked():
    assert check_int("nx", 32.0, 2, whole_floats=True) == 32
    assert type(check_int("nx", np.float32(8.0), whole_floats=True)) is int
    with pytest.raises(OptionError, match=r"^nx must be an integer >= 2, got 32.0$"):
        check_int("nx", 32.0, 2)
    for bad in (32.5, float("nan"), float("inf"), True, 1.0 + 0j):
        with pytest.raises(OptionError, match="nx must be an integer"):
            check_int("nx", bad, whole_floats=True)
    with pytest.raises(OptionError, match=r"^nx must be an integer >= 2, got 1.0$"):
        check_int("nx", 1.0, 2, whole_floats=True)


def test_int_raises_the_error_type_it_is_given():
    with pytest.raises(CustomError, match="seed must be an integer >= 0, got -1"):
        check_int("seed", -1, 0, error=CustomError)
    with pytest.raises(ShapeError):
        check_int("size", True, error=ShapeError)


# --- check_real -----------------------------------------------------------------------------

@pytest.mark.parametrize("value", [0, 0.5, 1, np.float32(0.25), np.int64(1), -0.0])
def test_real_accepts_numbers_in_a_closed_range_ends_included(value):
    out = check_real("x", value, 0, 1)
    assert out == float(value) and type(out) is float


@pytest.mark.parametrize("value", [True, False, np.bool_(False), "0.5", None, 1j, [0.5]])
def test_real_refuses_what_is_not_a_real_number(value):
    with pytest.raises(OptionError) as exc:
        check_real("x", value)
    assert str(exc.value) == f"x must be a finite number, got {value!r}"


@pytest.mark.parametrize("value", [float("nan"), np.nan, float("inf"), -float("inf"), np.float64("inf")])
def test_real_refuses_nan_and_infinities_by_default(value):
    with pytest.raises(OptionError, match="must be a finite number, got"):
        check_real("x", value)


def test_real_open_ends_exclude_the_end_itself():
    kw = dict(low_open=True, high_open=True)
    assert check_real("omega", 1e-12, 0, 2, **kw) == 1e-12
    assert check_real("omega", 2 - 1e-12, 0, 2, **kw) == 2 - 1e-12
    for v in (0, 0.0, 2, 2.0, -1, 3):
        with pytest.raises(OptionError, match=rf"^omega must be a finite number in \(0, 2\), got {v!r}$"):
            check_real("omega", v, 0, 2, **kw)
    with pytest.raises(OptionError, match=r"in \(0, 1\]"):
        check_real("drop", 0.0, 0, 1, low_open=True)
    assert check_real("drop", 1.0, 0, 1, low_open=True) == 1.0
    with pytest.raises(OptionError, match=r"in \[0, 1\)"):
        check_real("drop", 1.0, 0, 1, high_open=True)


@pytest.mark.parametrize("kw,what", [
    (dict(low=0, low_open=True), "> 0"),
    (dict(low=0), ">= 0"),
    (dict(high=1.5, high_open=True), "< 1.5"),
    (dict(high=1.5), "<= 1.5"),
])
def test_real_one_sided_range_message(kw, what):
    bad = -1.0 if "low" in kw else 2.0
    with pytest.raises(OptionError) as exc:
        check_real("dt", bad, **kw)
    assert str(exc.value) == f"dt must be a finite number {what}, got {bad!r}"


def test_real_infinity_only_when_allowed_and_in_range():
    assert check_real("rtol", math.inf, 0, finite=False) == math.inf
    with pytest.raises(OptionError, match=r"^rtol must be a number >= 0 \(inf allowed\), got -inf$"):
        check_real("rtol", -math.inf, 0, finite=False)
    with pytest.raises(OptionError, match="got nan"):
        check_real("rtol", math.nan, 0, finite=False)


def test_real_none_only_when_allowed_and_error_type_given():
    assert check_real("x", None, allow_none=True) is None
    with pytest.raises(CustomError, match=r"^x must be a finite number > 0 or None, got 0$"):
        check_real("x", 0, 0, low_open=True, allow_none=True, error=CustomError)


# --- check_choice / check_bool --------------------------------------------------------------

def test_choice_returns_a_listed_value():
    assert check_choice("side", "right", ("left", "right")) == "right"
    assert check_choice("dim", np.int64(3), (2, 3)) == 3


@pytest.mark.parametrize("value", ["up", "LEFT", None, ["left"], True, 1])
def test_choice_refuses_others_and_lists_the_choices(value):
    with pytest.raises(CustomError) as exc:
        check_choice("side", value, ["left", "right"], error=CustomError)
    assert str(exc.value) == f"side must be one of 'left', 'right', got {value!r}"


def test_choice_does_not_take_a_bool_for_an_integer():
    with pytest.raises(OptionError):
        check_choice("degree", True, (0, 1, 2))
    assert check_choice("flag", False, (False, True)) is False


@pytest.mark.parametrize("value", [True, False, np.bool_(True)])
def test_bool_accepts_bools(value):
    assert check_bool("compiled", value) is bool(value)


@pytest.mark.parametrize("value", [0, 1, "true", None, 1.0])
def test_bool_refuses_numbers_and_text(value):
    with pytest.raises(CustomError, match=rf"^compiled must be True or False, got {value!r}$"):
        check_bool("compiled", value, error=CustomError)


def test_predicates_exclude_bools():
    assert is_int(np.int32(1)) and not is_int(True) and not is_int(np.bool_(True)) and not is_int(1.0)
    assert is_real(1) and is_real(np.float16(1)) and not is_real(False) and not is_real("1")

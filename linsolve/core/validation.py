"""Checks of scalar parameters, shared by ``linsolve``, ``datagen`` and ``operators``.

Each check returns the value in its plain Python type or raises the ValueError subclass it is
given (``error``), with one message form: ``NAME must be WHAT, got VALUE``. A bool is never an
integer or a number here (``True`` is a flag, not 1), and text is never converted: an option
given as ``"8"`` or ``True`` is a mistake to report, not to guess at.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any

import numpy as np

from linsolve.core.errors import OptionError

_BOOLS = (bool, np.bool_)


def _fmt(x) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def _range_text(low, high, low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None:
        return f" in {'(' if low_open else '['}{_fmt(low)}, {_fmt(high)}{')' if high_open else ']'}"
    if low is not None:
        return f" {'>' if low_open else '>='} {_fmt(low)}"
    if high is not None:
        return f" {'<' if high_open else '<='} {_fmt(high)}"
    return ""


def _same(value, choice) -> bool:
    # == without hashing (a list is refused, not a TypeError); a bool matches only a bool (1 != True)
    if isinstance(value, _BOOLS) != isinstance(choice, _BOOLS):
        return False
    try:
        return bool(value == choice)
    except (TypeError, ValueError):
        return False


def is_int(value) -> bool:
    """Whether ``value`` is an integer (Python or NumPy) and not a bool.

    Parameters
    ----------
    value : object
        Anything.

    Returns
    -------
    bool
        True for ``3`` and ``np.int64(3)``; False for ``True``, ``3.0`` and ``"3"``.

    Examples
    --------
    >>> import numpy as np
    >>> from linsolve.core.validation import is_int
    >>> is_int(3), is_int(np.int32(3)), is_int(True), is_int(3.0)
    (True, True, False, False)
    """
    return isinstance(value, numbers.Integral) and not isinstance(value, _BOOLS)


def is_real(value) -> bool:
    """Whether ``value`` is a real number (Python or NumPy integer or float) and not a bool.

    Parameters
    ----------
    value : object
        Anything.

    Returns
    -------
    bool
        True for ``2``, ``2.5``, ``np.float32(2.5)`` and ``nan``; False for ``True``,
        ``"2.5"`` and complex numbers.

    Examples
    --------
    >>> from linsolve.core.validation import is_real
    >>> is_real(2.5), is_real(float("nan")), is_real(False), is_real(1j)
    (True, True, False, False)
    """
    return isinstance(value, numbers.Real) and not isinstance(value, _BOOLS)


def check_int(name: str, value: Any, minimum: int | None = None, maximum: int | None = None, *,
              allow_none: bool = False, whole_floats: bool = False,
              error: type[Exception] = OptionError) -> int | None:
    """``value`` as an ``int`` when it is an integer (not a bool) in ``[minimum, maximum]``.

    Parameters
    ----------
    name : str
        The parameter's name, for the message (it may carry context: ``"option restart of gcrodr"``).
    value : object
        What was given.
    minimum, maximum : int, optional
        The smallest and largest accepted value (``None``: unbounded).
    allow_none : bool, optional
        Whether ``None`` is accepted (and returned).
    whole_floats : bool, optional
        Whether a float with an integral value (``32.0``, as a config file may hold) is accepted
        as that integer; ``32.5``, NaN and infinities are refused either way.
    error : type, optional
        The ValueError subclass to raise (default ``linsolve.OptionError``).

    Returns
    -------
    int or None
        ``int(value)``.

    Raises
    ------
    OptionError
        (or ``error``) ``value`` is not an integer (a bool, a float, text) or out of range; the
        message names the parameter, the value and what is accepted.

    Examples
    --------
    >>> from linsolve.core.validation import check_int
    >>> check_int("restart", 40, 2)
    40
    >>> check_int("restart", True, 2)
    Traceback (most recent call last):
    ...
    linsolve.core.errors.OptionError: restart must be an integer >= 2, got True
    >>> check_int("start", 5, 0, 4)
    Traceback (most recent call last):
    ...
    linsolve.core.errors.OptionError: start must be an integer in [0, 4], got 5
    """
    if value is None and allow_none:
        return None
    v = value
    if whole_floats and is_real(v) and not is_int(v) and math.isfinite(v) and float(v).is_integer():
        v = int(v)
    if not is_int(v) or (minimum is not None and v < minimum) or (maximum is not None and v > maximum):
        what = "an integer" + _range_text(minimum, maximum, False, False) + (" or None" if allow_none else "")
        raise error(f"{name} must be {what}, got {value!r}")
    return int(v)


def check_real(name: str, value: Any, low: float | None = None, high: float | None = None, *,
               low_open: bool = False, high_open: bool = False, finite: bool = True,
               allow_none: bool = False, error: type[Exception] = OptionError) -> float | None:
    """``value`` as a ``float`` when it is a real number (not a bool, not text, never NaN) within
    the bounds, each end closed unless ``*_open``.

    Parameters
    ----------
    name : str
        The parameter's name, for the message.
    value : object
        What was given.
    low, high : float, optional
        The ends of the accepted range (``None``: unbounded).
    low_open, high_open : bool, optional
        Whether ``low`` / ``high`` itself is excluded.
    finite : bool, optional
        Whether ``inf`` and ``-inf`` are refused (default); with False they are accepted where
        the range holds them.
    allow_none : bool, optional
        Whether ``None`` is accepted (and returned).
    error : type, optional
        The ValueError subclass to raise (default ``linsolve.OptionError``).

    Returns
    -------
    float or None
        ``float(value)``.

    Raises
    ------
    OptionError
        (or ``error``) ``value`` is not a real number, is NaN, infinite (unless allowed) or out of
        range; the message names the parameter, the value and what is accepted.

    Examples
    --------
    >>> from linsolve.core.validation import check_real
    >>> check_real("omega", 1.5, 0, 2, low_open=True, high_open=True)
    1.5
    >>> check_real("omega", 2.0, 0, 2, low_open=True, high_open=True)
    Traceback (most recent call last):
    ...
    linsolve.core.errors.OptionError: omega must be a finite number in (0, 2), got 2.0
    >>> check_real("rtol", float("inf"), 0, finite=False)
    inf
    """
    if value is None and allow_none:
        return None
    ok = is_real(value)
    if ok:
        v = float(value)
        ok = not math.isnan(v) and (not finite or math.isfinite(v))
        if ok and low is not None:
            ok = v > low if low_open else v >= low
        if ok and high is not None:
            ok = v < high if high_open else v <= high
    if not ok:
        what = ("a finite number" if finite else "a number") + _range_text(low, high, low_open, high_open)
        what += ("" if finite else " (inf allowed)") + (" or None" if allow_none else "")
        raise error(f"{name} must be {what}, got {value!r}")
    return v


def check_choice(name: str, value: Any, choices: Iterable, *, error: type[Exception] = OptionError):
    """``value`` when it is one of ``choices``.

    Parameters
    ----------
    name : str
        The parameter's name, for the message.
    value : object
        What was given.
    choices : iterable
        The accepted values (usually names); listed in the message in the order given.
    error : type, optional
        The ValueError subclass to raise (default ``linsolve.OptionError``).

    Returns
    -------
    object
        ``value``.

    Raises
    ------
    OptionError
        (or ``error``) ``value`` is not one of ``choices``; the message lists them.

    Examples
    --------
    >>> from linsolve.core.validation import check_choice
    >>> check_choice("side", "left", ("left", "right"))
    'left'
    >>> check_choice("side", "up", ("left", "right"))
    Traceback (most recent call last):
    ...
    linsolve.core.errors.OptionError: side must be one of 'left', 'right', got 'up'
    """
    choices = list(choices)
    if not any(_same(value, c) for c in choices):
        raise error(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def check_bool(name: str, value: Any, *, error: type[Exception] = OptionError) -> bool:
    """``value`` as a ``bool`` when it is one (Python or NumPy); 0, 1 and text are refused.

    Parameters
    ----------
    name : str
        The parameter's name, for the message.
    value : object
        What was given.
    error : type, optional
        The ValueError subclass to raise (default ``linsolve.OptionError``).

    Returns
    -------
    bool
        ``bool(value)``.

    Raises
    ------
    OptionError
        (or ``error``) ``value`` is not a bool.

    Examples
    --------
    >>> from linsolve.core.validation import check_bool
    >>> check_bool("compiled", 1)
    Traceback (most recent call last):
    ...
    linsolve.core.errors.OptionError: compiled must be True or False, got 1
    """
    if not isinstance(value, _BOOLS):
        raise error(f"{name} must be True or False, got {value!r}")
    return bool(value)


__all__ = ["check_int", "check_real", "check_choice", "check_bool", "is_int", "is_real"]

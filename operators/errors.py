"""Exceptions raised by ``operators`` for bad input. Every one is a ``ValueError``; the option
and shape errors also derive from their ``linsolve`` counterparts, so code that already
catches ``linsolve.core.errors.OptionError`` / ``ShapeError`` keeps working."""
from __future__ import annotations

from linsolve.core import errors as _ls


class OperatorError(ValueError):
    """Base class for every input or configuration error raised by ``operators``."""


class OptionError(OperatorError, _ls.OptionError):
    """A bad configuration value: unknown key, wrong type, out of range, grid too small."""


class ShapeError(OperatorError, _ls.ShapeError):
    """A tensor whose shape does not fit the model (wrong rank, window length or channels)."""


class NonFiniteError(OperatorError, _ls.NonFiniteError):
    """NaN or Inf where finite numbers are required (e.g. normalisation statistics)."""


class UnknownModelError(OperatorError):
    """A model name that is not in the registry; the message lists the known names."""


class DuplicateModelError(OperatorError):
    """A second model registered under a name that is already taken."""

"""The interface every PDE problem family implements, and the family registry.

A family is built for one grid and one set of family parameters; it samples parameter
sets with a seeded generator, assembles each into a ``linsolve.LinearSystem`` (grid
metadata included), gives the feature vector used to order systems, and maps a solution
vector back to named fields on the grid.
"""
from __future__ import annotations

import importlib
import math
import pkgutil
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from linsolve import LinearSystem, OptionError, UnknownSolverError
from linsolve.core.errors import DuplicateNameError, UnknownNameError
from linsolve.core.registry import Registry
from linsolve.core.validation import is_int, is_real


class FamilyError(OptionError):
    """Bad family name, grid or parameter value."""


class UnknownFamilyError(FamilyError, UnknownNameError):
    """A family name that is not registered; the message lists the registered ones."""


class DuplicateFamilyError(FamilyError, DuplicateNameError):
    """A second family class registered under a name that is already taken."""


@dataclass(frozen=True)
class Interval:
    """The values a numeric family parameter may take: always finite, bounded by ``low`` /
    ``high`` where given (``None``: unbounded), each end closed unless ``*_open``."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    integer: bool = False

    def __contains__(self, v) -> bool:
        v = float(v)
        if not math.isfinite(v):
            return False
        if self.low is not None and (v <= self.low if self.low_open else v < self.low):
            return False
        return self.high is None or (v < self.high if self.high_open else v <= self.high)

    def __str__(self) -> str:
        lo = "(-inf" if self.low is None else ("(" if self.low_open else "[") + f"{self.low:g}"
        hi = "inf)" if self.high is None else f"{self.high:g}" + (")" if self.high_open else "]")
        return ("an integer in " if self.integer else "in ") + f"{lo}, {hi}"


FINITE = Interval()
POSITIVE = Interval(0.0, low_open=True)
NON_NEGATIVE = Interval(0.0)
COUNT = Interval(0, integer=True)  # an integer >= 0
POSITIVE_COUNT = Interval(1, integer=True)  # an integer >= 1


def check_range(name: str, value, low: float | None = None, high: float | None = None, *,
                low_open: bool = False, high_open: bool = False, allowed: Interval | None = None,
                family: str | None = None, why: str = "") -> None:
    """FamilyError naming the parameter, its value and the allowed range unless ``value``
    is finite and within ``allowed`` (or the interval the bounds give)."""
    allowed = allowed if allowed is not None else Interval(low, high, low_open, high_open)
    ok = is_real(value) and value in allowed
    if not ok:
        of = f" of family {family!r}" if family else ""
        raise FamilyError(f"parameter {name}={value!r}{of} must be {allowed}" + (f" ({why})" if why else ""))


def check_order(low_name: str, low, high_name: str, high, *, family: str | None = None) -> None:
    """FamilyError unless ``low <= high`` (the ends of a sampling range such as U(low, high))."""
    if not low <= high:
        of = f" of family {family!r}" if family else ""
        raise FamilyError(f"parameters {low_name}={low!r} and {high_name}={high!r}{of} must satisfy "
                          f"{low_name} <= {high_name}")


class Family:
    """Base class of a problem family.

    Class attributes: ``name``; ``dims`` (supported spatial dimensions); ``params``:
    ``{name: (default, help)}`` for family options given as ``--param key=value``;
    ``symmetric`` (whether the default discretisation is SPD) and ``shared_matrix``
    (one matrix, many right-hand sides). ``ranges``: ``{name: Interval}`` for numeric
    parameters and ``ordered``: ``((low_name, high_name), ...)`` pairs that must satisfy
    ``low <= high``; both are checked at construction, before ``validate``.

    A subclass implements ``sample``, ``assemble``, ``features``, ``input_fields``,
    ``solution_fields`` and ``coordinates`` (and may override ``validate`` and
    ``boundary_conditions``); :func:`register_family` makes it available by name.

    Parameters
    ----------
    grid : int or tuple of int, optional
        Cells per axis (an int: the same on every axis of ``dim``); each at least 2.
    dim : int, optional
        Spatial dimension, one of ``dims`` (default: ``len(grid)``, or ``dims[0]`` for an int).
    **params
        Family parameters, each a key of ``params``, converted to the type of its default.

    Raises
    ------
    FamilyError
        An unsupported ``dim``, a grid of the wrong length or below 2, an unknown parameter, a
        value of the wrong type or outside its range (the message names it and the range).

    Examples
    --------
    >>> import numpy as np
    >>> from datagen import get_family
    >>> family = get_family("poisson")(grid=8)
    >>> family.grid, family.p["degree"]
    ((8, 8), 5)
    >>> system = family.assemble(family.sample(1, np.random.default_rng(0))[0])
    >>> system.A.shape
    (64, 64)
    >>> get_family("darcy")(grid=8, alpha=-1.0)
    Traceback (most recent call last):
    ...
    datagen.family.FamilyError: parameter alpha=-1.0 of family 'darcy' must be in (0, inf)
    """

    name: ClassVar[str] = ""
    dims: ClassVar[tuple[int, ...]] = (2,)
    params: ClassVar[dict[str, tuple[Any, str]]] = {}
    symmetric: ClassVar[bool] = True
    shared_matrix: ClassVar[bool] = False
    description: ClassVar[str] = ""
    ranges: ClassVar[dict[str, Interval]] = {}
    ordered: ClassVar[tuple[tuple[str, str], ...]] = ()
    #: whether ``sample(1, rng)`` draws one sample on its own (not one step of a sequence, as
    #: ``heat`` does): the pipeline then draws sample i from its own stream,
    #: ``datagen.pipeline.sample_stream(seed, i)``, so it depends only on the seed and i, and a
    #: Dask task draws its chunk's samples itself instead of receiving them
    independent_samples: ClassVar[bool] = False

    def __init__(self, grid: tuple[int, ...] | int = 64, dim: int | None = None, **params):
        if dim is None:
            dim = len(grid) if isinstance(grid, (tuple, list)) else self.dims[0]
        if dim not in self.dims:
            raise FamilyError(f"family {self.name!r} supports dim {self.dims}, got {dim}")
        if isinstance(grid, (int, np.integer)):
            grid = (int(grid),) * dim
        grid = tuple(int(g) for g in grid)
        if len(grid) != dim:
            raise FamilyError(f"grid {grid} has {len(grid)} sizes but dim is {dim}")
        if any(g < 2 for g in grid):
            raise FamilyError(f"grid sizes must be at least 2, got {grid}")
        self.dim = dim
        self.grid = grid
        unknown = set(params) - set(self.params)
        if unknown:
            known = ", ".join(sorted(self.params)) or "none"
            raise FamilyError(f"unknown parameter(s) {', '.join(sorted(unknown))} for family "
                              f"{self.name!r}; known: {known}")
        self.p = {k: v[0] for k, v in self.params.items()}
        for k, v in params.items():
            self.p[k] = self._coerce(k, v, self.params[k][0])
        self.check_ranges()
        self.validate()

    def check_ranges(self) -> None:
        """The declared ``ranges`` and ``ordered`` pairs (FamilyError naming the parameter,
        its value and what is allowed)."""
        for k, allowed in self.ranges.items():
            check_range(k, self.p[k], allowed=allowed, family=self.name)
        for lo, hi in self.ordered:
            check_order(lo, self.p[lo], hi, self.p[hi], family=self.name)

    def _coerce(self, k: str, v, default):
        """``v`` as the type of ``default``; values the conversion would silently change
        (int(2.7) == 2, bool(2), int(1e308) beyond int64) or a NaN are a FamilyError."""
        bad = f"parameter {k}={v!r} of family {self.name!r} is not a valid {type(default).__name__}"
        if isinstance(default, bool) != isinstance(v, (bool, np.bool_)) and isinstance(default, (int, float)):
            raise FamilyError(bad)
        if is_int(default) and isinstance(v, (float, np.floating)):
            if not (math.isfinite(v) and float(v).is_integer() and abs(v) < 2.0 ** 63):
                raise FamilyError(bad)
        try:
            out = type(default)(v) if default is not None and not isinstance(v, type(default)) else v
        except (TypeError, ValueError, OverflowError) as exc:
            raise FamilyError(bad) from exc
        if is_int(out) and abs(out) >= 2 ** 63:
            raise FamilyError(bad + " (beyond 64-bit integers)")
        if isinstance(out, (float, np.floating)) and math.isnan(out):
            raise FamilyError(f"parameter {k} of family {self.name!r} is NaN")
        return out

    # --- to implement ---------------------------------------------------------------
    def validate(self) -> None:
        """Check ``self.p`` and ``self.grid``; raise FamilyError naming the bad value."""

    def sample(self, n: int, rng: np.random.Generator) -> list[dict]:
        """n parameter sets; each a dict of NumPy arrays / floats (stored as-is).

        Parameters
        ----------
        n : int
            How many.
        rng : numpy.random.Generator
            The only source of randomness (the pipeline seeds it).

        Returns
        -------
        list of dict
            One parameter set per sample; :meth:`assemble` builds its system.
        """
        raise NotImplementedError

    def assemble(self, params: dict) -> LinearSystem:
        """The linear system of one parameter set.

        Parameters
        ----------
        params : dict
            One entry of :meth:`sample`.

        Returns
        -------
        linsolve.LinearSystem
            A, b and the grid metadata.
        """
        raise NotImplementedError

    def features(self, params: dict) -> np.ndarray:
        """The vector whose distances decide which systems are neighbours when ordering.

        Parameters
        ----------
        params : dict
            One entry of :meth:`sample`.

        Returns
        -------
        ndarray
            The feature array (``linsolve.order_systems`` reads one per system).
        """
        raise NotImplementedError

    def input_fields(self, params: dict) -> dict[str, np.ndarray]:
        """Named input fields on the grid (what a neural operator is fed).

        Parameters
        ----------
        params : dict
            One entry of :meth:`sample`.

        Returns
        -------
        dict of str to ndarray
            Each field on the grid (shape ``grid``, or ``(*grid, D)`` for a vector field).
        """
        raise NotImplementedError

    def solution_fields(self, params: dict, x: np.ndarray) -> dict[str, np.ndarray]:
        """Named output fields on the grid from the solution vector.

        Parameters
        ----------
        params : dict
            One entry of :meth:`sample`.
        x : ndarray
            The solution of ``assemble(params)``.

        Returns
        -------
        dict of str to ndarray
            Each field on the grid.
        """
        raise NotImplementedError

    def coordinates(self) -> dict[str, np.ndarray]:
        """1-D coordinate arrays of the stored fields, one per axis (x, y[, z]).

        Returns
        -------
        dict of str to ndarray
            ``{"x": ..., "y": ...[, "z": ...]}``, cell centres.
        """
        raise NotImplementedError

    def boundary_conditions(self) -> dict[str, str]:
        """Per-edge boundary description for the store's /boundary_conditions group.

        Returns
        -------
        dict
            The family's boundary kinds by edge (empty by default); the store maps them onto
            The Well's vocabulary.
        """
        return {}

    def describe(self) -> dict:
        """The family's configuration: name, dimension, grid and every parameter.

        Returns
        -------
        dict
            JSON-friendly; the store writes it with the data.
        """
        return {"family": self.name, "dim": self.dim, "grid": list(self.grid), **self.p}


# numpydoc's validation takes a parameter named cls for a classmethod's and calls it unknown
def register_family(cls):  # numpydoc ignore=PR02
    """Class decorator that makes a :class:`Family` subclass available by its ``name``
    (``get_family``, ``datagen generate NAME``, ``datagen problems``).

    Parameters
    ----------
    cls : type
        A subclass of :class:`Family` with a non-empty ``name``.

    Returns
    -------
    type
        ``cls`` itself.

    Raises
    ------
    DuplicateFamilyError
        Another class is registered under ``cls.name`` (a :class:`FamilyError`).
    FamilyError
        ``cls`` is not a Family subclass or has no name.

    Examples
    --------
    >>> import datagen
    >>> from datagen import Family, register_family
    >>> @register_family
    ... class Shifted(Family):
    ...     name = "doc-example-shifted"
    >>> from datagen import get_family
    >>> get_family("doc-example-shifted") is Shifted
    True
    >>> _ = datagen.family.FAMILIES.remove("doc-example-shifted")   # (the example unregisters it)
    """
    if not (isinstance(cls, type) and issubclass(cls, Family)) or not getattr(cls, "name", ""):
        raise FamilyError(f"register_family takes a Family subclass with a name, got {cls!r}")
    return FAMILIES.add(cls.name, cls)


def _load_all():
    from . import families

    for info in pkgutil.iter_modules(families.__path__):
        importlib.import_module(f"{families.__name__}.{info.name}")


#: The family registry: every module under ``datagen/families/`` registers its families on import.
FAMILIES: Registry[type[Family]] = Registry("problem family", unknown=UnknownFamilyError,
                                            duplicate=DuplicateFamilyError, invalid=FamilyError,
                                            loader=_load_all)
_FAMILIES = FAMILIES.entries  # the same dict, for tests that patch a family in


def available_families() -> list[str]:
    """The names of the registered problem families, sorted.

    Returns
    -------
    list of str
        Every name :func:`get_family` accepts (the family modules under ``datagen/families/``
        are imported on the first call).

    Examples
    --------
    >>> import datagen
    >>> {"darcy", "helmholtz", "poisson"} <= set(datagen.available_families())
    True
    """
    return FAMILIES.names()


def get_family(name: str) -> type[Family]:
    """The family class registered under ``name``.

    Parameters
    ----------
    name : str
        A name of :func:`available_families`.

    Returns
    -------
    type
        The :class:`Family` subclass; build it as ``cls(grid=..., **params)``, its parameters
        being ``cls.params`` (defaults and help) within ``cls.ranges``.

    Raises
    ------
    UnknownFamilyError
        For an unknown name (a :class:`FamilyError`); the message lists the known ones.

    Examples
    --------
    >>> import numpy as np, datagen
    >>> family = datagen.get_family("darcy")(grid=16)
    >>> params = family.sample(2, np.random.default_rng(0))       # seeded
    >>> system = family.assemble(params[0])                        # a linsolve.LinearSystem
    >>> system.A.shape, system.grid.shape
    ((256, 256), (16, 16))
    """
    return FAMILIES.get(name)


__all__ = ["Family", "FamilyError", "UnknownFamilyError", "DuplicateFamilyError", "FAMILIES", "Interval", "FINITE", "POSITIVE", "NON_NEGATIVE", "COUNT", "POSITIVE_COUNT",
           "check_range", "check_order", "register_family", "get_family", "available_families",
           "UnknownSolverError"]

"""Things by name: the generic :class:`Registry` used by every registry of the repository
(solvers here, DCDM networks, ``datagen``'s problem families, ``operators``' surrogate
models), and the solver registry. Registering a solver class makes it available to
``make_solver``, adds a SciPy-compatible function ``linsolve.<name>`` and enrols it in the
contract suite."""
from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Generic, TypeVar

from linsolve.core.errors import DuplicateNameError, OptionError, UnknownNameError, UnknownSolverError

T = TypeVar("T")


def _qualname(obj) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


class Registry(Generic[T]):
    """Objects (usually classes) by name, with the same rules in every registry.

    A name is a non-empty string. Registering a second object under a taken name raises
    ``duplicate`` (registering the same object again is a no-op); looking up an unknown name
    raises ``unknown`` with a message that lists the registered names. ``loader``, when
    given, is called once before the first lookup to import the modules that register the
    built-in entries.

    Parameters
    ----------
    kind : str
        What the registry holds, for messages (``"solver"``, ``"problem family"``).
    unknown : type, optional
        The error for an unknown name (a ``ValueError`` subclass).
    duplicate : type, optional
        The error for a name registered twice.
    invalid : type, optional
        The error for a name that is not a non-empty string.
    loader : callable, optional
        Imports the built-in entries; called once, before the first :meth:`get` or :meth:`names`.

    Examples
    --------
    >>> from linsolve.core.registry import Registry
    >>> shapes = Registry("shape")
    >>> @shapes.register("square")
    ... class Square:
    ...     pass
    >>> shapes.get("square") is Square, shapes.names()
    (True, ['square'])
    >>> shapes.get("circle")
    Traceback (most recent call last):
    ...
    linsolve.core.errors.UnknownNameError: unknown shape 'circle'; available: square
    >>> shapes.add("square", int)
    Traceback (most recent call last):
    ...
    linsolve.core.errors.DuplicateNameError: shape name 'square' is already registered to linsolve.core.registry.Square
    """

    def __init__(self, kind: str, *, unknown: type[Exception] = UnknownNameError,
                 duplicate: type[Exception] = DuplicateNameError, invalid: type[Exception] = OptionError,
                 loader: Callable[[], object] | None = None):
        self.kind = kind
        self.unknown, self.duplicate, self.invalid = unknown, duplicate, invalid
        self._loader = loader
        self._loaded = loader is None
        #: the registered objects by name; tests may patch it (``monkeypatch.setitem``)
        self.entries: dict[str, T] = {}

    def _load(self) -> None:
        if not self._loaded:
            # set first: a module the loader imports may itself look names up
            self._loaded = True
            self._loader()

    def _check_name(self, name) -> None:
        if not isinstance(name, str) or not name:
            raise self.invalid(f"a {self.kind} name must be a non-empty string, got {name!r}")

    def add(self, name: str, obj: T) -> T:
        """Register ``obj`` under ``name`` and return it.

        Parameters
        ----------
        name : str
            A non-empty string not registered to another object.
        obj : object
            What :meth:`get` returns for ``name``.

        Returns
        -------
        object
            ``obj``.

        Raises
        ------
        DuplicateNameError
            (the registry's ``duplicate`` type) ``name`` is registered to another object.
        OptionError
            (the registry's ``invalid`` type) ``name`` is not a non-empty string.
        """
        self._check_name(name)
        old = self.entries.get(name)
        if old is not None and old is not obj:
            raise self.duplicate(f"{self.kind} name {name!r} is already registered to {_qualname(old)}")
        self.entries[name] = obj
        return obj

    def register(self, name: str, attribute: str | None = None) -> Callable[[T], T]:
        """Decorator form of :meth:`add`: ``@registry.register("name")``.

        Parameters
        ----------
        name : str
            As for :meth:`add` (a name that is not a non-empty string is refused at once).
        attribute : str, optional
            Where the decorated object keeps its name (``"name"``: ``cls.name = name``); set
            after registering succeeds.

        Returns
        -------
        callable
            The decorator; it registers its argument and returns it.

        Raises
        ------
        OptionError
            (the registry's ``invalid`` type) ``name`` is not a non-empty string.
        """
        self._check_name(name)

        def deco(obj: T) -> T:
            self.add(name, obj)
            if attribute is not None:
                setattr(obj, attribute, name)
            return obj

        return deco

    def remove(self, name: str) -> T:
        """Unregister ``name`` and return what it was registered to.

        Parameters
        ----------
        name : str
            A registered name.

        Returns
        -------
        object
            The object that was registered.

        Raises
        ------
        UnknownNameError
            (the registry's ``unknown`` type) ``name`` is not registered.
        """
        self.get(name)
        return self.entries.pop(name)

    def get(self, name: str) -> T:
        """The object registered under ``name``.

        Parameters
        ----------
        name : str
            A name of :meth:`names`.

        Returns
        -------
        object
            What was registered.

        Raises
        ------
        UnknownNameError
            (the registry's ``unknown`` type) ``name`` is not registered; the message lists
            the registered names.
        """
        self._load()
        try:
            return self.entries[name]
        except (KeyError, TypeError):  # TypeError: an unhashable name
            raise self.unknown(f"unknown {self.kind} {name!r}; available: {', '.join(self.names())}") from None

    def names(self) -> list[str]:
        """The registered names, sorted.

        Returns
        -------
        list of str
            Every name :meth:`get` accepts.
        """
        self._load()
        return sorted(self.entries)

    def __contains__(self, name) -> bool:
        self._load()
        try:
            return name in self.entries
        except TypeError:
            return False


#: The modules that register the built-in solvers, one per method family's solver module.
SOLVER_MODULES = (
    "linsolve.learned.dcdm.solver",
    "linsolve.krylov.direct",
    "linsolve.structured.fft_poisson",
    "linsolve.recycling.gcrodr",
    "linsolve.krylov.baselines",
    "linsolve.petsc_support.ksp",
    "linsolve.recycling.rcg",
    "linsolve.relaxation.sor",
)


def _load_all():
    # Every solver module registers its solvers on import (heavy imports such as torch
    # stay inside functions), so a new solver is one module named here.
    for module in SOLVER_MODULES:
        importlib.import_module(module)


#: The solver registry (``make_solver``, ``available_solvers``, ``solver_class``).
SOLVERS: Registry[type] = Registry("solver", unknown=UnknownSolverError, duplicate=DuplicateNameError,
                                   loader=_load_all)
_REGISTRY = SOLVERS.entries  # the same dict, for tests that patch a solver in


def register(name: str):
    """Class decorator that registers a :class:`~linsolve.Solver` subclass under ``name``.

    A registered solver is available to :func:`make_solver`, gets a SciPy-style function
    ``linsolve.<name>`` (``-`` becomes ``_``), appears in the solver reference and is enrolled in
    the contract suite. The built-in solvers register themselves in the modules of
    :data:`SOLVER_MODULES`.

    Parameters
    ----------
    name : str
        The registry name; stored on the class as ``cls.name``.

    Returns
    -------
    callable
        The decorator; it returns the class unchanged apart from ``cls.name``.

    Raises
    ------
    DuplicateNameError
        ``name`` is already registered to another class.
    OptionError
        ``name`` is not a non-empty string.

    Examples
    --------
    >>> import linsolve
    >>> from linsolve.core.registry import SOLVERS
    >>> @linsolve.register("doc-example-cg")
    ... class MyCG(linsolve.solver_class("cg")):
    ...     "CG under another name."
    >>> linsolve.make_solver("doc-example-cg").name
    'doc-example-cg'
    >>> _ = SOLVERS.remove("doc-example-cg")          # (the example unregisters it)
    """

    return SOLVERS.register(name, attribute="name")


def solver_class(name: str):
    """The solver class registered under ``name``.

    Parameters
    ----------
    name : str
        A name of :func:`available_solvers`.

    Returns
    -------
    type
        The :class:`~linsolve.Solver` subclass; its class attributes declare what it supports
        (``backends``, ``preconditioners``, ``supports``, ``complex_support``, ``options``).

    Raises
    ------
    UnknownSolverError
        For an unknown name; the message lists the registered ones.

    Examples
    --------
    >>> import linsolve
    >>> cls = linsolve.solver_class("gcrodr")
    >>> cls.options["restart"], cls.options["recycle"], cls.scipy_equivalent
    (40, 20, 'gmres')
    """
    return SOLVERS.get(name)


def make_solver(name: str, **options):
    """Build a registered solver by name.

    Parameters
    ----------
    name : str
        A name of :func:`available_solvers` (``"cg"``, ``"gmres"``, ``"gcrodr"``, ``"rcg"``, ...).
    **options
        The options every solver takes (``rtol=1e-5``, ``atol=0.0``, ``maxiter=None``,
        ``pc="none"``, ``pc_options=None``, ``backend=None`` (the solver's first),
        ``warm_start=False``, ``callback=None``) and the solver's own options (its ``options``
        class attribute; see the solver reference for each one's defaults).

    Returns
    -------
    Solver
        Call ``solve(A, b, x0=None, **context)`` on it as often as needed; a stateful solver
        (``gcrodr``, ``rcg``, ``bandit-sor``, ``warm_start=True``) carries what it learned from
        one solve to the next until ``reset()``.

    Raises
    ------
    UnknownSolverError
        ``name`` is not registered.
    OptionError
        An unknown option, or a value of the wrong type or range (the message names it).
    UnknownPreconditionerError
        A preconditioner name the chosen backend does not know.
    PetscUnavailableError
        ``backend="petsc"`` without petsc4py.

    Examples
    --------
    >>> import numpy as np, linsolve
    >>> A = linsolve.gallery.poisson2d(16)                 # 256 unknowns
    >>> solver = linsolve.make_solver("cg", rtol=1e-8, pc="jacobi")
    >>> res = solver.solve(A, np.ones(256))
    >>> res.converged, res.relative_residual <= 1e-8
    (True, True)
    >>> linsolve.make_solver("cg", restart=20)
    Traceback (most recent call last):
    ...
    linsolve.core.errors.OptionError: unknown option(s) restart for solver 'cg'; its own options are: history
    """
    return solver_class(name)(**options)


def available_solvers() -> list[str]:
    """The names of the registered solvers, sorted.

    Returns
    -------
    list of str
        Every name :func:`make_solver` accepts (the solver modules are imported on the first
        call).

    Examples
    --------
    >>> import linsolve
    >>> {"cg", "gmres", "gcrodr", "rcg", "bandit-sor", "dcdm"} <= set(linsolve.available_solvers())
    True
    """
    return SOLVERS.names()

"""Solvers by name. Registering a class makes it available to ``make_solver``, adds a
SciPy-compatible function ``linsolve.<name>`` and enrols it in the contract suite."""
from __future__ import annotations

import importlib

from linsolve.core.errors import UnknownSolverError

_REGISTRY: dict = {}

_loaded = False


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
    ValueError
        ``name`` is already registered to another class.

    Examples
    --------
    >>> import linsolve
    >>> from linsolve.core.registry import _REGISTRY
    >>> @linsolve.register("doc-example-cg")
    ... class MyCG(linsolve.solver_class("cg")):
    ...     "CG under another name."
    >>> linsolve.make_solver("doc-example-cg").name
    'doc-example-cg'
    >>> del _REGISTRY["doc-example-cg"]          # (the example unregisters it)
    """

    def deco(cls):
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"solver name {name!r} registered twice")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


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
    global _loaded
    if not _loaded:
        _loaded = True
        # Every solver module registers its solvers on import (heavy imports such as torch
        # stay inside functions), so a new solver is one module named here.
        for module in SOLVER_MODULES:
            importlib.import_module(module)


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
    _load_all()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownSolverError(
            f"unknown solver {name!r}; available: {', '.join(available_solvers())}"
        ) from None


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
    _load_all()
    return sorted(_REGISTRY)

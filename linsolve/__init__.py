"""linsolve: one ``Solver`` interface over SciPy, PETSc, PyAMG and the package's own
methods (sorted Krylov recycling, bandit-tuned SOR, deep conjugate directions).

    >>> import linsolve
    >>> solver = linsolve.make_solver("cg", rtol=1e-8, pc="amg")
    >>> result = solver.solve(A, b)            # doctest: +SKIP
    >>> x, info = linsolve.gmres(A, b, rtol=1e-8, restart=40)   # SciPy-style   # doctest: +SKIP
"""
from __future__ import annotations

import sys
import types

from .base import Outcome, SolveContext, Solver
from .errors import (
    NonFiniteError,
    OptionError,
    PetscUnavailableError,
    ShapeError,
    SolverError,
    UnknownPreconditionerError,
    UnknownSolverError,
    UnsupportedInputError,
)
from .operator import Operator
from .registry import available_solvers, make_solver, register, solver_class
from .result import SolveResult
from .system import AIR, FLUID, SOLID, Grid, LinearSystem

__version__ = "0.1.0"

__all__ = [
    "Solver", "SolveResult", "LinearSystem", "Grid", "make_solver", "available_solvers",
    "register", "solver_class", "Operator", "Outcome", "SolveContext", "SolverError",
    "ShapeError", "NonFiniteError", "OptionError", "UnknownSolverError",
    "UnknownPreconditionerError", "PetscUnavailableError", "UnsupportedInputError",
    "FLUID", "SOLID", "AIR", "scipy_function", "solver_function_names",
]
_LAZY = {"order_systems": ".ordering", "solve_sequence": ".sequence", "gallery": ".gallery"}


def solver_function_names() -> list[str]:
    """The names of the SciPy-style functions ``linsolve.<name>``, one per registered solver
    (``-`` in a registered name becomes ``_``: ``bandit-sor`` -> ``bandit_sor``).

    Examples
    --------
    >>> import linsolve
    >>> "gmres" in linsolve.solver_function_names() and "gmres" in linsolve.__all__
    True
    """
    return [name.replace("-", "_") for name in available_solvers()]


class _Module(types.ModuleType):
    """``linsolve.__all__`` as read at run time (``from linsolve import *``, ``help()``,
    autodoc): the literal ``__all__`` above (what static tools read) plus one function per
    registered solver and the lazily imported names. It is computed when read because
    listing the solvers imports every solver module (numba kernels, scipy.optimize), which
    would double the time of ``import linsolve``."""

    @property
    def __all__(self) -> list[str]:
        static = vars(self)["__all__"]
        return [*static, *(n for n in [*solver_function_names(), *_LAZY] if n not in static)]


sys.modules[__name__].__class__ = _Module


def __dir__() -> list[str]:
    return sorted({*globals(), *solver_function_names(), *_LAZY})


def scipy_function(name: str):
    """The SciPy-compatible function for registered solver ``name``:
    ``f(A, b, x0=None, *, rtol=1e-5, atol=0.0, maxiter=None, M=None, callback=None, **options)
    -> (x, info)`` with SciPy's ``info`` (0 converged, >0 not converged: the ``maxiter`` in
    force, <0 breakdown).

    A solver that names a ``scipy_equivalent`` follows that SciPy function's documented
    conventions: ``maxiter=None`` is 10 n; ``x0="Mb"`` starts from M^-1 b; ``M=None`` takes a
    LinearOperator A's ``psolve``; for GMRES-type methods (``gmres``, ``gcrodr``)
    ``callback_type`` is SciPy's (unset: "legacy" with a callback, when ``maxiter`` counts
    inner iterations, else restart cycles) and ``gmres``'s ``restart`` defaults to 20.

    Examples
    --------
    >>> import numpy as np, linsolve
    >>> x, info = linsolve.gmres(np.diag([2.0, 4.0]), np.ones(2), rtol=1e-10)
    >>> info, np.allclose(x, [0.5, 0.25])
    (0, True)
    """
    cls = solver_class(name)
    scipy_like = cls.scipy_equivalent is not None
    cycles_option = "callback_type" in cls.options

    def f(A, b, x0=None, *, rtol=1e-5, atol=0.0, maxiter=None, M=None, callback=None, **options):
        pc = M if M is not None else options.pop("pc", "none")
        if scipy_like and M is None and isinstance(pc, str) and pc == "none" and callable(getattr(A, "psolve", None)):
            pc = A.psolve  # SciPy's make_system reads a LinearOperator's psolve
        # geometry and a bandit policy's context are per-solve (solve(grid=..., meta=...,
        # context=...)), not solver options: context= was refused as an unknown option
        context = {k: options.pop(k) for k in ("grid", "meta", "context") if k in options}
        if cycles_option:
            ctype = options.pop("callback_type", None)
            if ctype is None:  # SciPy's gmres: "legacy" with a callback, maxiter in cycles without
                ctype = "legacy" if callback is not None else "pr_norm"
            options["callback_type"] = ctype
        if name == "gmres":
            options.setdefault("restart", 20)
        if "recycle" in cls.options and "restart" in options and "recycle" not in options:
            # a short restart given as to gmres: the recycled space shrinks to fit in it
            import numbers

            r = options["restart"]
            if isinstance(r, numbers.Integral) and not isinstance(r, bool):
                options["recycle"] = max(0, min(int(cls.options["recycle"]), int(r) - 2))
        if scipy_like and maxiter is None:
            maxiter = 10 * _size(A)
        res = cls(rtol=rtol, atol=atol, maxiter=maxiter, pc=pc, callback=callback, **options).solve(
            A, b, x0, **context)
        info = res.scipy_info
        if scipy_like and info > 0:
            info = int(maxiter)  # SciPy reports the maxiter in force (cycles or iterations)
        return res.x, info

    f.__name__ = name.replace("-", "_")
    f.__qualname__ = f.__name__
    f.__doc__ = f"SciPy-style wrapper of the registered solver {name!r}.\n\n" + (cls.__doc__ or "")
    return f


def _size(A) -> int:
    """n of an n x n A of any accepted kind (the default maxiter 10 n); 1 when unknown, so
    that the solver's own input check reports the bad A."""
    from .system import LinearSystem

    if isinstance(A, LinearSystem):
        A = A.A
    shape = getattr(A, "shape", None)
    if shape is None and hasattr(A, "getSize"):
        shape = A.getSize()
    try:
        return max(int(shape[0]), 1)
    except (TypeError, IndexError, ValueError):
        return 1


def __getattr__(attr: str):
    # linsolve.cg, linsolve.gmres, linsolve.bandit_sor, ...: one per registered solver.
    if attr.startswith("_"):
        raise AttributeError(attr)
    for name in available_solvers():
        if name.replace("-", "_") == attr:
            f = scipy_function(name)
            globals()[attr] = f
            return f
    if attr in _LAZY:
        import importlib

        mod = importlib.import_module(_LAZY[attr], __name__)
        value = mod if attr == "gallery" else getattr(mod, attr)
        globals()[attr] = value
        return value
    raise AttributeError(f"module 'linsolve' has no attribute {attr!r}")

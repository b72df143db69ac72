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

from linsolve.core.base import Outcome, SolveContext, Solver
from linsolve.core.errors import (
    DuplicateNameError,
    NonFiniteError,
    OptionError,
    PetscUnavailableError,
    ShapeError,
    SolverError,
    UnknownNameError,
    UnknownPreconditionerError,
    UnknownSolverError,
    UnsupportedInputError,
)
from linsolve.core.operator import Operator
from linsolve.core.registry import available_solvers, make_solver, register, solver_class
from linsolve.core.result import SolveResult
from linsolve.core.spec import parse_option_value, parse_solver_spec, split_solver_options
from linsolve.core.system import AIR, FLUID, SOLID, Grid, LinearSystem

__version__ = "0.1.0"

__all__ = [
    "Solver", "SolveResult", "LinearSystem", "Grid", "make_solver", "available_solvers",
    "register", "solver_class", "Operator", "Outcome", "SolveContext", "SolverError",
    "ShapeError", "NonFiniteError", "OptionError", "UnknownSolverError",
    "UnknownPreconditionerError", "PetscUnavailableError", "UnsupportedInputError",
    "UnknownNameError", "DuplicateNameError", "FLUID", "SOLID", "AIR", "scipy_function", "solver_function_names",
    "parse_solver_spec", "parse_option_value", "split_solver_options",
]
_LAZY = {"order_systems": ".recycling.ordering", "solve_sequence": ".recycling.sequence", "gallery": ".gallery"}


def solver_function_names() -> list[str]:
    """The names of the SciPy-style functions ``linsolve.<name>``, one per registered solver
    (``-`` in a registered name becomes ``_``: ``bandit-sor`` -> ``bandit_sor``).

    Returns
    -------
    list of str
        In the order of ``available_solvers()``.

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

    Parameters
    ----------
    name : str
        A registered solver name (``linsolve.available_solvers()``).

    Returns
    -------
    callable
        ``f(A, b, x0=None, *, rtol, atol, maxiter, M, callback, **options) -> (x, info)``; the
        same function as ``linsolve.<name>`` (``-`` replaced by ``_``).

    Raises
    ------
    UnknownSolverError
        ``name`` is not registered.

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
        # context=...)), not solver options: they go to each solve, not to make_solver
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
            from linsolve.core.validation import is_int

            r = options["restart"]
            if is_int(r):
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
    f.__doc__ = _function_doc(cls, name)
    return f


#: the papers behind the package's own methods, for the References of ``linsolve.<name>``
_REFERENCES = {
    "gcrodr": ["M. L. Parks, E. de Sturler, G. Mackey, D. D. Johnson, S. Maiti, \"Recycling Krylov "
               "subspaces for sequences of linear systems\", SIAM J. Sci. Comput. 28(5), 2006.",
               "H. Wang et al., \"Accelerating Data Generation for Neural Operators via Krylov Subspace "
               "Recycling\", ICLR 2024."],
    "rcg": ["A. Stathopoulos, K. Orginos, \"Computing and deflating eigenvalues while solving multiple "
            "right-hand side linear systems with an application to quantum chromodynamics\", SIAM J. Sci. "
            "Comput. 32(1), 2010.",
            "Y. Saad, M. Yeung, J. Erhel, F. Guyomarc'h, \"A deflated version of the conjugate gradient "
            "algorithm\", SIAM J. Sci. Comput. 21(5), 2000."],
    "bandit-sor": ["M. Khodak, E. Chow, M.-F. Balcan, A. Talwalkar, \"Learning to Relax: Setting Solver "
                   "Parameters Across a Sequence of Linear System Instances\", ICLR 2024."],
    "dcdm": ["A. Kaneda et al., \"A Deep Conjugate Direction Method for Iteratively Solving Linear "
             "Systems\", ICML 2023."],
}


def _function_doc(cls, name: str) -> str:
    """The numpydoc docstring of ``linsolve.<name>``, built from the solver's declarations."""
    import inspect

    fname = name.replace("-", "_")
    ref = f"``scipy.sparse.linalg.{cls.scipy_equivalent}``" if cls.scipy_equivalent else None
    head = f"SciPy-style wrapper of the registered solver {name!r}" + (f" (a drop-in for {ref})." if ref else ".")
    opts = ", ".join(f"``{k}={v!r}``" for k, v in cls.options.items()) or "none"
    maxiter = ("10 n (SciPy's default)" if cls.scipy_equivalent
               else "the solver's default (``Solver.default_maxiter``)")
    pcs = "none: a direct solver" if cls.direct else ", ".join(f"``{p!r}``" for p in cls.preconditioners)
    doc = f"""{head}

{inspect.cleandoc(cls.__doc__ or "")}

Parameters
----------
A : sparse matrix, ndarray, LinearOperator, petsc4py.PETSc.Mat or LinearSystem
    The n x n matrix (or a ``LinearSystem`` carrying it, its right-hand side and grid).
b : ndarray or petsc4py.PETSc.Vec
    The right-hand side, n entries.
x0 : ndarray, "Mb" or None, optional
    The starting vector; None starts from zero, ``"Mb"`` from the preconditioner applied to b.
rtol, atol : float, optional
    Stop when ``||b - A x|| <= max(rtol ||b||, atol)``; ``np.inf`` is accepted.
maxiter : int, optional
    Iteration limit; None gives {maxiter}.
M : str, LinearOperator, matrix or callable, optional
    The preconditioner: a name ({pcs}; see the preconditioners page) or an operator applying
    M^-1, as SciPy's ``M``.
callback : callable, optional
    Called as SciPy calls it (``callback(xk)``; for GMRES-type methods as ``callback_type`` says).
**options
    The solver's own options, with their defaults: {opts}. Also ``backend``, ``pc_options``,
    ``warm_start`` and per-solve context (``grid``, ``meta``, ``context``).

Returns
-------
x : ndarray or petsc4py.PETSc.Vec
    The approximate solution, of the kind of ``b``.
info : int
    0 converged; > 0 not converged (the ``maxiter`` in force); < 0 breakdown.

Raises
------
OptionError
    An unknown option or a bad option value (a ``ValueError``).
ShapeError
    A not square, or b or x0 of the wrong length.
UnsupportedInputError
    An input kind or dtype the solver does not take (e.g. complex with ``backend="petsc"``).

See Also
--------
make_solver : the same solver as an object that keeps its state between solves.
"""
    refs = _REFERENCES.get(name)
    if refs:
        doc += "\nReferences\n----------\n" + "".join(f".. [{i}] {r}\n" for i, r in enumerate(refs, 1))
    if not cls.needs_grid:
        doc += f"""
Examples
--------
>>> import numpy as np, linsolve
>>> A = linsolve.gallery.poisson2d(8)        # 64 unknowns, SPD
>>> x, info = linsolve.{fname}(A, np.ones(64), rtol=1e-8)
>>> info, bool(np.linalg.norm(np.ones(64) - A @ x) <= 1e-8 * 8.0)
(0, True)
"""
    return doc


def _size(A) -> int:
    """n of an n x n A of any accepted kind (the default maxiter 10 n); 1 when unknown, so
    that the solver's own input check reports the bad A."""
    from linsolve.core.system import LinearSystem

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

"""Solvers by name. Registering a class makes it available to ``make_solver``, adds a
SciPy-compatible function ``linsolve.<name>`` and enrols it in the contract suite."""
from __future__ import annotations

import importlib

from .errors import UnknownSolverError

_REGISTRY: dict = {}

_loaded = False


def register(name: str):
    """Class decorator: ``@register("gcrodr")``."""

    def deco(cls):
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"solver name {name!r} registered twice")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def _load_all():
    global _loaded
    if not _loaded:
        _loaded = True
        # Every module of linsolve.solvers registers its solvers on import, so a new
        # solver is one module there (heavy imports such as torch stay inside functions).
        import pkgutil

        from . import solvers

        for info in sorted(pkgutil.iter_modules(solvers.__path__), key=lambda m: m.name):
            importlib.import_module(f"{solvers.__name__}.{info.name}")


def solver_class(name: str):
    _load_all()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownSolverError(
            f"unknown solver {name!r}; available: {', '.join(available_solvers())}"
        ) from None


def make_solver(name: str, **options):
    """Build a registered solver: ``make_solver("gmres", restart=40, pc="ilu")``."""
    return solver_class(name)(**options)


def available_solvers() -> list[str]:
    _load_all()
    return sorted(_REGISTRY)

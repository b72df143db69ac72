"""The generated ``linsolve.<name>`` functions are part of the package's namespace: listed by
``dir()`` and ``__all__``, exported by ``import *``, documented by ``help()`` with their
signature, so that autodoc and IDEs see them."""
from __future__ import annotations

import importlib
import inspect
import pydoc
import types

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

import linsolve
from linsolve.core import registry


def _import_every_subpackage():
    """Importing a subpackage sets it as an attribute of its parent, so a subpackage named like a
    solver would hide that solver's function: import them all before looking."""
    import pkgutil

    for info in pkgutil.walk_packages(linsolve.__path__, "linsolve."):
        if info.ispkg:
            importlib.import_module(info.name)


def test_every_registered_solver_has_a_listed_function():
    names = linsolve.solver_function_names()
    assert {"cg", "gmres", "bicgstab", "minres", "gcrodr", "rcg", "bandit_sor", "dcdm"} <= set(names)
    assert len(names) == len(linsolve.available_solvers())
    _import_every_subpackage()
    listing, exported = set(dir(linsolve)), set(linsolve.__all__)
    for name in names:
        assert name in listing and name in exported, name
        f = getattr(linsolve, name)
        assert not isinstance(f, types.ModuleType), f"a subpackage hides linsolve.{name}"
        assert callable(f) and f.__name__ == name and f.__module__ == "linsolve"
    # everything __all__ promises exists, and dir() still lists the module's own names
    assert all(hasattr(linsolve, n) for n in linsolve.__all__)
    assert {"make_solver", "Solver", "scipy_function", "__version__", "order_systems"} <= listing
    assert len(linsolve.__all__) == len(set(linsolve.__all__))


def test_import_star_exports_the_solver_functions():
    ns: dict = {}
    exec("from linsolve import *", ns)
    assert {"cg", "gmres", "gcrodr", "rcg", "make_solver", "LinearSystem", "gallery"} <= set(ns)
    assert ns["gmres"] is linsolve.gmres


def test_signature_and_help_show_the_scipy_interface():
    sig = inspect.signature(linsolve.gmres)
    assert list(sig.parameters) == ["A", "b", "x0", "rtol", "atol", "maxiter", "M", "callback", "options"]
    assert sig.parameters["rtol"].kind is inspect.Parameter.KEYWORD_ONLY and sig.parameters["rtol"].default == 1e-5
    text = pydoc.render_doc(linsolve, renderer=pydoc.plaintext)
    for name in linsolve.solver_function_names():
        assert f"{name}(A, b, x0=None, *, rtol=1e-05" in text, name
    cg_doc = pydoc.render_doc(linsolve.cg, renderer=pydoc.plaintext)
    assert "SciPy-style wrapper of the registered solver 'cg'" in cg_doc


def test_listed_function_solves_like_scipy():
    n = 30
    A = sp.diags([-np.ones(n - 1), 2.5 * np.ones(n), -np.ones(n - 1)], [-1, 0, 1], format="csr")
    b = np.linspace(1.0, 2.0, n)
    f = linsolve.cg
    x, info = f(A, b, rtol=1e-10)
    assert info == 0
    np.testing.assert_allclose(x, spla.spsolve(A.tocsc(), b), rtol=1e-8)


def test_a_solver_registered_later_is_listed(monkeypatch):
    monkeypatch.setitem(registry._REGISTRY, "late-cg", registry.solver_class("cg"))
    try:
        assert "late_cg" in dir(linsolve) and "late_cg" in linsolve.__all__
        assert linsolve.late_cg.__name__ == "late_cg"
    finally:
        vars(linsolve).pop("late_cg", None)


def test_import_stays_light_until_the_list_is_read():
    """Listing the solvers imports every solver module: ``import linsolve`` must not."""
    import subprocess
    import sys

    code = ("import sys, linsolve\nfrom linsolve.core import registry\n"
            "loaded = lambda: any(m in sys.modules for m in registry.SOLVER_MODULES)\n"
            "a = loaded(); names = linsolve.__all__; print(a, loaded(), 'gmres' in names)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split() == ["False", "True", "True"]

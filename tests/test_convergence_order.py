"""Observed order of accuracy of every family's discretisation against manufactured solutions:
the slope of log(error) vs log(h) over three refinements must be within 0.1 of the design
order. Right-hand sides and boundary data are derived symbolically (SymPy) from the chosen
exact solution and coefficient, so the test is independent of the assembly code."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse.linalg as spla
import sympy

from datagen import get_family

x, y, t = sympy.symbols("x y t")
GRIDS = (16, 32, 64, 128)


def fn(expr, *args):
    return sympy.lambdify(args or (x, y), expr, "numpy")


def div_a_grad(a, u):
    return sympy.diff(a * sympy.diff(u, x), x) + sympy.diff(a * sympy.diff(u, y), y)


def observed_order(hs, errors) -> float:
    return float(np.polyfit(np.log(hs), np.log(errors), 1)[0])


def rms_error(fam, sysm, u_exact) -> float:
    uh = spla.spsolve(sysm.A.tocsc(), sysm.b)
    X, Y = np.meshgrid(*fam.coordinates().values(), indexing="ij")
    ref = sysm.grid.from_grid(fn(u_exact)(X, Y) * np.ones_like(X))
    return float(np.sqrt(np.mean((uh - ref) ** 2)))


A_SMOOTH = sympy.exp(sympy.sin(2 * sympy.pi * x) * sympy.cos(sympy.pi * y) / 2)


def test_darcy_fv_second_order():
    u = sympy.exp(x) * sympy.sin(2 * y) + x * y  # non-zero Dirichlet data on purpose
    f = -div_a_grad(A_SMOOTH, u)
    hs, errs = [], []
    for n in GRIDS:
        fam = get_family("darcy")(grid=n)
        errs.append(rms_error(fam, fam.assemble_fields(fn(A_SMOOTH), fn(f), g=fn(u)), u))
        hs.append(1.0 / n)
    assert observed_order(hs, errs) == pytest.approx(2.0, abs=0.1), errs


def test_darcy_skr_second_order_for_laplacian_of_product():
    u = x * sympy.sin(sympy.pi * x) * sympy.sin(sympy.pi * y)
    f = -(sympy.diff(A_SMOOTH * u, x, 2) + sympy.diff(A_SMOOTH * u, y, 2))
    hs, errs = [], []
    for n in GRIDS:
        fam = get_family("darcy")(grid=n, stencil="skr")
        errs.append(rms_error(fam, fam.assemble_fields(fn(A_SMOOTH), fn(f)), u))
        hs.append(1.0 / (n + 1))
    assert observed_order(hs, errs) == pytest.approx(2.0, abs=0.1), errs

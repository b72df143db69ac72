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


def test_helmholtz_indefinite_second_order():
    k = 8.0  # k^2 = 64 > lowest eigenvalue of -div(a grad) (~2 pi^2 a): indefinite on every grid
    u = sympy.sin(3 * x) * sympy.cos(2 * y) + x
    f = -div_a_grad(A_SMOOTH, u) - k**2 * u
    hs, errs = [], []
    for n in GRIDS:
        fam = get_family("helmholtz")(grid=n, k=k)
        sysm = fam.assemble_fields(fn(A_SMOOTH), k, fn(f), g=fn(u))
        if n == GRIDS[0]:
            assert np.linalg.eigvalsh(sysm.A.toarray()).min() < 0
        errs.append(rms_error(fam, sysm, u))
        hs.append(1.0 / n)
    assert observed_order(hs, errs) == pytest.approx(2.0, abs=0.1), errs


def test_helmholtz_skr_stencil_second_order():
    k = 0.7
    u = sympy.sin(sympy.pi * x) * sympy.sin(2 * sympy.pi * y)
    f = -(sympy.diff(A_SMOOTH * u, x, 2) + sympy.diff(A_SMOOTH * u, y, 2)) - k**2 * u
    hs, errs = [], []
    for n in GRIDS:
        fam = get_family("helmholtz")(grid=n, variant="skr")
        errs.append(rms_error(fam, fam.assemble_fields(fn(A_SMOOTH), k, fn(f)), u))
        hs.append(1.0 / (n + 1))
    assert observed_order(hs, errs) == pytest.approx(2.0, abs=0.1), errs


def test_poisson_second_order():
    u = sympy.exp(x + y / 2) * sympy.sin(3 * y) + x**3
    f = -(sympy.diff(u, x, 2) + sympy.diff(u, y, 2))
    hs, errs = [], []
    for n in GRIDS:
        fam = get_family("poisson")(grid=n)
        errs.append(rms_error(fam, fam.assemble_fields(fn(f), fn(u)), u))
        hs.append(1.0 / n)
    assert observed_order(hs, errs) == pytest.approx(2.0, abs=0.1), errs


def test_thermal_second_order_with_flux_and_wall_data():
    """Smooth exact temperature and conductivity on the slotted domain: Dirichlet data on the
    bottom, the exact normal flux K dT/dn on the top, the other edges and the slot walls."""
    K = 1 + x**2 / 2 + sympy.sin(y) / 4
    u = sympy.cos(2 * x + 1) * sympy.exp(y) + x * y
    f = -div_a_grad(K, u)
    Kux, Kuy = fn(K * sympy.diff(u, x)), fn(K * sympy.diff(u, y))
    hs, errs = [], []
    for nx, ny in ((20, 32), (40, 64), (80, 128), (160, 256)):  # slot on cell faces, square cells
        fam = get_family("thermal")(grid=(nx, ny))
        faces = fam.faces
        nrm = faces.normals()
        flux = Kux(*faces.centre.T) * nrm[:, 0] + Kuy(*faces.centre.T) * nrm[:, 1]
        sysm = fam.assemble_fields(fn(u), flux[fam.flux_mask], f=fn(f), K=fn(K),
                                   q_insulated=flux[fam.insulated_mask])
        assert faces.wall[fam.insulated_mask].any()
        errs.append(rms_error(fam, sysm, u))
        hs.append(1.0 / nx)
    assert observed_order(hs, errs) == pytest.approx(2.0, abs=0.1), errs


def test_heat_crank_nicolson_second_order_in_space_and_time():
    """Manufactured u = sin(pi x) sin(2 pi y) e^x cos(3t) with kappa(t) = 1 + sin(4t)/2,
    stepped to T = 0.25 with dt = h: space and time errors both O(h^2)."""
    kap = 1 + sympy.sin(4 * t) / 2
    u = sympy.sin(sympy.pi * x) * sympy.sin(2 * sympy.pi * y) * sympy.exp(x) * sympy.cos(3 * t)
    F = sympy.diff(u, t) - kap * (sympy.diff(u, x, 2) + sympy.diff(u, y, 2))
    U, Fn, kn = fn(u, x, y, t), fn(F, x, y, t), fn(kap, t)
    T_end = 0.25
    hs, errs = [], []
    for n in GRIDS:
        fam = get_family("heat")(grid=n)
        X, Y = fam.mesh.coords()
        steps = int(round(T_end * n))
        dt = T_end / steps
        uh = U(X, Y, 0.0).ravel()
        for k in range(1, steps + 1):
            t0, t1 = (k - 1) * dt, k * dt
            A, b = fam.crank_nicolson(uh, dt, kn(t0), kn(t1), Fn(X, Y, t0), Fn(X, Y, t1))
            uh = spla.splu(A.tocsc()).solve(b)
        errs.append(float(np.sqrt(np.mean((uh - U(X, Y, T_end).ravel()) ** 2))))
        hs.append(1.0 / n)
    assert observed_order(hs, errs) == pytest.approx(2.0, abs=0.1), errs

"""Problem families: shapes, grid metadata, symmetry/definiteness claims checked against dense
eigenvalues, reproducibility, bad parameters, and the vectorised assembly against a plain
Python loop ("gold") implementation of the same finite-volume scheme."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from datagen import available_families, get_family
from datagen.family import FamilyError
from datagen.stencils import Mesh, fv_diffusion
from linsolve import FLUID, SOLID, LinearSystem, gallery  # noqa: F401


def gold_fv(shape, h, K, active=None, dirichlet_edges=("left", "right", "bottom", "top")):
    """Cell-by-cell loop: harmonic face averages, Dirichlet faces 2K/h^2 on the named box
    edges, walls (inactive neighbours) and other edges insulated."""
    nx, ny = shape
    active = np.ones(shape, dtype=bool) if active is None else active
    num = -np.ones(shape, dtype=int)
    num[active] = np.arange(active.sum())
    A = np.zeros((active.sum(), active.sum()))
    edge_of = {(-1, 0): "left", (1, 0): "right", (0, -1): "bottom", (0, 1): "top"}
    for i in range(nx):
        for j in range(ny):
            if not active[i, j]:
                continue
            r = num[i, j]
            for (di, dj), edge in edge_of.items():
                hh = h[0] if di else h[1]
                ni, nj = i + di, j + dj
                if 0 <= ni < nx and 0 <= nj < ny:
                    if active[ni, nj]:
                        t = 2 * K[i, j] * K[ni, nj] / (K[i, j] + K[ni, nj]) / hh**2
                        A[r, r] += t
                        A[r, num[ni, nj]] -= t
                elif edge in dirichlet_edges:
                    A[r, r] += 2 * K[i, j] / hh**2
    return A


def test_registered():
    assert {"darcy", "helmholtz", "poisson", "thermal", "heat"} <= set(available_families())


# --- stencils ---------------------------------------------------------------------------

def test_fv_matches_gold_on_masked_rectangular_grid():
    rng = np.random.default_rng(0)
    shape = (7, 9)
    K = np.exp(rng.standard_normal(shape))
    active = np.ones(shape, dtype=bool)
    active[3:5, 2:6] = False
    mesh = Mesh(shape, lower=(0, 0), upper=(1.4, 1.8), active=active)
    faces = mesh.boundary_faces()
    A = fv_diffusion(mesh, K, faces, dirichlet=faces.on_edge("bottom") | faces.on_edge("left"))
    ref = gold_fv(shape, mesh.h, K, active, dirichlet_edges=("bottom", "left"))
    np.testing.assert_allclose(A.toarray(), ref, rtol=1e-13, atol=1e-10)
    assert A.has_sorted_indices
    A.check_format(full_check=True)


@pytest.mark.parametrize("seed", range(4))
def test_fv_matches_gold_on_random_masks(seed):
    rng = np.random.default_rng(seed)
    shape = tuple(rng.integers(3, 9, size=2))
    K = np.exp(2 * rng.standard_normal(shape))
    active = rng.random(shape) > 0.3
    edges = tuple(e for e in ("left", "right", "bottom", "top") if rng.random() < 0.6)
    mesh = Mesh(shape, upper=(2.0, 0.5), active=active)
    faces = mesh.boundary_faces()
    mask = np.zeros(len(faces), dtype=bool)
    for e in edges:
        mask |= faces.on_edge(e)
    A = fv_diffusion(mesh, K, faces, dirichlet=mask)
    np.testing.assert_allclose(A.toarray(), gold_fv(shape, mesh.h, K, active, edges), rtol=1e-13, atol=1e-10)
    A.check_format(full_check=True)
    assert A.has_sorted_indices


def test_cached_pattern_is_not_shared_between_matrices():
    fam = get_family("darcy")(grid=6)
    p1, p2 = fam.sample(2, np.random.default_rng(0))
    A1 = fam.assemble(p1).A
    ref = fam.assemble(p2).A.toarray()
    A1.indices[:] = 0
    A1.indptr[:] = 0
    A1.data[:] = 0
    np.testing.assert_array_equal(fam.assemble(p2).A.toarray(), ref)


def test_boundary_faces_geometry():
    active = np.ones((4, 4), dtype=bool)
    active[1, 1] = False
    faces = Mesh((4, 4), active=active).boundary_faces()
    assert len(faces) == 16 + 4 and faces.wall.sum() == 4
    left = faces.on_edge("left")
    np.testing.assert_allclose(faces.centre[left, 0], 0.0)
    np.testing.assert_allclose(np.sort(faces.centre[left, 1]), [0.125, 0.375, 0.625, 0.875])
    wall = faces.centre[faces.wall]
    # The hole is the cell [0.25, 0.5]^2: its four face centres.
    np.testing.assert_allclose(sorted(map(tuple, wall)), [(0.25, 0.375), (0.375, 0.25), (0.375, 0.5), (0.5, 0.375)])
    with pytest.raises(FamilyError, match="edge"):
        faces.on_edge("north")


# --- darcy ------------------------------------------------------------------------------

def _darcy(**kw):
    return get_family("darcy")(**kw)


def test_darcy_fv_system_shapes_and_spd():
    fam = _darcy(grid=8)
    (p,) = fam.sample(1, np.random.default_rng(0))
    sysm = fam.assemble(p)
    assert isinstance(sysm, LinearSystem) and sp.issparse(sysm.A) and sysm.A.format == "csr"
    assert sysm.A.shape == (64, 64) and sysm.b.shape == (64,)
    assert sysm.grid.shape == (8, 8) and sysm.grid.spacing == (0.125, 0.125)
    assert sysm.meta["family"] == "darcy" and sysm.meta["params"] is p
    A = sysm.A.toarray()
    np.testing.assert_array_equal(A, A.T)
    assert np.linalg.eigvalsh(A).min() > 0
    np.testing.assert_allclose(A, gold_fv((8, 8), (0.125, 0.125), p["a"]), rtol=1e-13)
    np.testing.assert_allclose(sysm.b, 1.0)
    assert fam.symmetric and not fam.shared_matrix


def test_darcy_skr_stencil_is_the_papers():
    fam = _darcy(grid=6, stencil="skr", f=2.0)
    (p,) = fam.sample(1, np.random.default_rng(1))
    sysm = fam.assemble(p)
    # diagonal 4 a_ij, off-diagonal -a_neighbour: the integer 5-point Laplacian times diag(a).
    ref = gallery.poisson2d(6).toarray() @ np.diag(p["a"].ravel())
    np.testing.assert_allclose(sysm.A.toarray(), ref, rtol=1e-14)
    np.testing.assert_allclose(sysm.b, (1 / 7) ** 2 * 2.0)
    A = sysm.A.toarray()
    assert np.abs(A - A.T).max() > 1e-3 and not fam.symmetric
    ev = np.linalg.eigvals(A)
    assert ev.real.min() > 0  # similar to D^1/2 L D^1/2, so real positive spectrum
    assert sysm.grid.spacing == pytest.approx((1 / 7, 1 / 7))
    np.testing.assert_allclose(fam.coordinates()["x"], np.arange(1, 7) / 7)


def test_darcy_3d_constant_coefficient_is_kronecker_laplacian():
    fam = _darcy(grid=(4, 3, 5))
    assert fam.dim == 3
    s = fam.assemble({"a": np.full((4, 3, 5), 2.0)})

    def lap1d(n):  # cell-centred Dirichlet: ends have 1 + 2 (half-cell distance to the face)
        T = sp.diags([-np.ones(n - 1), 2 * np.ones(n), -np.ones(n - 1)], [-1, 0, 1]).toarray()
        T[0, 0] = T[-1, -1] = 3
        return T * n**2

    I = [np.eye(n) for n in (4, 3, 5)]
    ref = (np.kron(np.kron(lap1d(4), I[1]), I[2]) + np.kron(np.kron(I[0], lap1d(3)), I[2])
           + np.kron(np.kron(I[0], I[1]), lap1d(5)))
    np.testing.assert_allclose(s.A.toarray(), 2.0 * ref, rtol=1e-13)
    assert len(fam.boundary_conditions()) == 6 and set(fam.coordinates()) == {"x", "y", "z"}
    assert fam.sample(1, np.random.default_rng(0))[0]["a"].shape == (4, 3, 5)
    sk = _darcy(grid=3, dim=3, stencil="skr").assemble({"a": np.ones((3, 3, 3))}).A.toarray()
    assert np.diag(sk) == pytest.approx(np.full(27, 6.0))


def test_darcy_reproducible_and_fields():
    fam = _darcy(grid=(10, 6))
    s1 = fam.sample(3, np.random.default_rng(5))
    s2 = fam.sample(3, np.random.default_rng(5))
    s3 = fam.sample(3, np.random.default_rng(6))
    for a, b in zip(s1, s2, strict=True):
        np.testing.assert_array_equal(a["a"], b["a"])
    assert not np.allclose(s1[0]["a"], s3[0]["a"])
    assert not np.allclose(s1[0]["a"], s1[1]["a"])
    p = s1[0]
    assert p["a"].shape == (10, 6) and np.all(p["a"] > 0)
    np.testing.assert_array_equal(fam.features(p), p["a"].ravel())
    assert fam.input_fields(p)["a"].shape == (10, 6)
    x = np.arange(60.0)
    np.testing.assert_array_equal(fam.solution_fields(p, x)["u"], x.reshape(10, 6))
    c = fam.coordinates()
    np.testing.assert_allclose(c["x"], (np.arange(10) + 0.5) / 10)
    np.testing.assert_allclose(c["y"], (np.arange(6) + 0.5) / 6)
    bcs = fam.boundary_conditions()
    assert set(bcs) == {"x_left", "x_right", "y_bottom", "y_top"}
    assert all(spec["bc_type"] == "dirichlet" for spec in bcs.values())
    A1 = fam.assemble(s1[0]).A
    A2 = fam.assemble(s2[0]).A
    assert (A1 != A2).nnz == 0


def test_darcy_solution_positive_and_matches_scipy():
    import scipy.sparse.linalg as spla

    fam = _darcy(grid=16)
    (p,) = fam.sample(1, np.random.default_rng(2))
    s = fam.assemble(p)
    u = spla.spsolve(s.A.tocsc(), s.b)
    assert np.all(u > 0)  # maximum principle: f = 1 > 0 with zero boundary data
    res = fam.solution_fields(p, u)["u"]
    assert res[8, 8] > res[0, 0]


@pytest.mark.parametrize("kw,word", [
    ({"stencil": "fd"}, "stencil"), ({"alpha": -1}, "alpha"), ({"tau": 0}, "tau"),
    ({"sigma": "big"}, "sigma"), ({"sigma": -1.0}, "sigma"), ({"f": "x"}, "f"),
    ({"f": float("inf")}, "f"), ({"bogus": 1}, "bogus"),
])
def test_darcy_bad_parameters(kw, word):
    with pytest.raises(FamilyError, match=word):
        _darcy(grid=8, **kw)


def test_darcy_bad_fields():
    fam = _darcy(grid=8)
    with pytest.raises(FamilyError, match="shape"):
        fam.assemble({"a": np.ones((7, 8))})
    with pytest.raises(FamilyError, match="positive"):
        fam.assemble({"a": -np.ones((8, 8))})
    with pytest.raises(FamilyError, match="homogeneous"):
        _darcy(grid=8, stencil="skr").assemble_fields(np.ones((8, 8)), 1.0, g=1.0)
    with pytest.raises(FamilyError, match="number of samples must be an integer >= 0, got -1"):
        fam.sample(-1, np.random.default_rng(0))
    assert issubclass(FamilyError, ValueError)


def test_darcy_sigma_changes_contrast():
    lo = _darcy(grid=16, sigma=1.0).sample(4, np.random.default_rng(0))
    hi = _darcy(grid=16, sigma=100.0).sample(4, np.random.default_rng(0))
    assert np.std(np.log(hi[0]["a"])) == pytest.approx(100 * np.std(np.log(lo[0]["a"])), rel=1e-9)


# --- helmholtz --------------------------------------------------------------------------

def _helm(**kw):
    return get_family("helmholtz")(**kw)


def test_helmholtz_indefinite_symmetric_with_negative_eigenvalues():
    fam = _helm(grid=16, k=8.0)  # k h = 0.5, the accuracy limit
    (p,) = fam.sample(1, np.random.default_rng(0))
    s = fam.assemble(p)
    A = s.A.toarray()
    np.testing.assert_array_equal(A, A.T)
    ev = np.linalg.eigvalsh(A)
    assert ev.min() < 0 < ev.max()
    assert (ev < 0).sum() >= 2
    # Same coefficient without the shift is the SPD Darcy operator.
    darcy = get_family("darcy")(grid=16).assemble(p).A.toarray()
    np.testing.assert_allclose(A, darcy - 64.0 * np.eye(256), rtol=1e-13, atol=1e-9)
    assert not fam.symmetric and fam.matrix_symmetric
    assert p["k"] == 8.0
    np.testing.assert_array_equal(fam.features(p), p["a"].ravel())


def test_helmholtz_default_is_indefinite_on_default_grid():
    fam = _helm()
    assert fam.grid == (64, 64) and fam.p["k"] * (1 / 64) <= 0.5
    (p,) = fam.sample(1, np.random.default_rng(3))
    A = fam.assemble(p).A
    # A + k^2 I is the SPD Darcy operator; A is indefinite iff its lowest eigenvalues lie below k^2.
    import scipy.sparse.linalg as spla

    lo = spla.eigsh(A + 256.0 * sp.identity(A.shape[0]), k=3, sigma=0, which="LM", return_eigenvectors=False)
    assert np.all(lo < 256.0)


def test_helmholtz_skr_variant():
    fam = _helm(grid=10, variant="skr")
    ps = fam.sample(20, np.random.default_rng(1))
    ks = np.array([p["k"] for p in ps])
    assert np.all((ks >= 0) & (ks < 1)) and np.std(ks) > 0.1
    p = ps[0]
    s = fam.assemble(p)
    h = 1 / 11
    ref = gallery.poisson2d(10).toarray() @ np.diag(p["a"].ravel()) - p["k"] ** 2 * h**2 * np.eye(100)
    np.testing.assert_allclose(s.A.toarray(), ref, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(s.b, h**2)
    f = fam.features(p)
    assert f.shape == (101,) and f[-1] == p["k"]
    assert fam.stencil == "skr" and not fam.matrix_symmetric
    assert _helm(grid=10, variant="skr", stencil="fv").stencil == "fv"


@pytest.mark.parametrize("kw,word", [
    ({"grid": 16}, "k="),  # default k = 16 on 16 cells: k h = 1
    ({"grid": 16, "k": 3.0}, "k="),  # k^2 < 2 pi^2: not indefinite
    ({"grid": 16, "k": -1.0}, "k="),
    ({"grid": 4, "variant": "skr", "k_max": 4.0}, "k_max"),
    ({"grid": 16, "k": 8.0, "variant": "shifted"}, "variant"),
    ({"grid": 16, "k": 8.0, "stencil": "fd"}, "stencil"),
    ({"grid": 16, "k": 8.0, "tau": -2.0}, "tau"),
])
def test_helmholtz_bad_parameters(kw, word):
    with pytest.raises(FamilyError, match=word):
        _helm(**kw)


def test_helmholtz_reproducible():
    a = _helm(grid=16, k=8.0).sample(2, np.random.default_rng(9))
    b = _helm(grid=16, k=8.0).sample(2, np.random.default_rng(9))
    np.testing.assert_array_equal(a[1]["a"], b[1]["a"])
    c = _helm(grid=16, variant="skr").sample(2, np.random.default_rng(9))
    d = _helm(grid=16, variant="skr").sample(2, np.random.default_rng(9))
    assert c[1]["k"] == d[1]["k"]


# --- poisson ----------------------------------------------------------------------------

def _cheb(n, s):
    return np.cos(n * np.arccos(np.clip(s, -1, 1)))


def test_poisson_shared_matrix_and_rhs_against_loops():
    fam = get_family("poisson")(grid=6)
    ps = fam.sample(3, np.random.default_rng(0))
    systems = [fam.assemble(p) for p in ps]
    assert systems[0].A is systems[1].A is systems[2].A and fam.shared_matrix
    A = systems[0].A.toarray()
    np.testing.assert_allclose(A, gold_fv((6, 6), (1 / 6, 1 / 6), np.ones((6, 6))), rtol=1e-13)
    assert np.linalg.eigvalsh(A).min() > 0
    p = ps[1]
    h = 1 / 6
    c = (np.arange(6) + 0.5) * h
    ref = np.zeros((6, 6))
    for i in range(6):
        for j in range(6):
            ref[i, j] = sum(p["f_coeffs"][m, n] * _cheb(m, 2 * c[i] - 1) * _cheb(n, 2 * c[j] - 1)
                            for m in range(6) for n in range(6))
            g = lambda e, s: sum(p["g_coeffs"][e, m] * _cheb(m, 2 * s - 1) for m in range(6))  # noqa: E731
            if i == 0:
                ref[i, j] += 2 / h**2 * g(0, c[j])
            if i == 5:
                ref[i, j] += 2 / h**2 * g(1, c[j])
            if j == 0:
                ref[i, j] += 2 / h**2 * g(2, c[i])
            if j == 5:
                ref[i, j] += 2 / h**2 * g(3, c[i])
    np.testing.assert_allclose(systems[1].b, ref.ravel(), rtol=1e-12, atol=1e-10)
    feats = fam.features(p)
    assert feats.shape == (60,) and np.all(np.abs(feats) <= 1)
    np.testing.assert_array_equal(feats[:36], p["f_coeffs"].ravel())


def test_poisson_fields_degree_and_errors():
    fam = get_family("poisson")(grid=(8, 5), degree=2)
    (p,) = fam.sample(1, np.random.default_rng(4))
    assert p["f_coeffs"].shape == (3, 3) and p["g_coeffs"].shape == (4, 3)
    fields = fam.input_fields(p)
    assert fields["f"].shape == (8, 5)
    bd = fields["boundary_value"]
    assert np.all(bd[1:-1, 1:-1] == 0) and np.all(bd[0, 1:-1] != 0)
    assert set(fam.boundary_conditions()) == {"x_left", "x_right", "y_bottom", "y_top"}
    with pytest.raises(FamilyError, match="degree"):
        get_family("poisson")(grid=8, degree=-1)
    with pytest.raises(FamilyError, match="degree"):
        get_family("poisson")(grid=8, degree="two")
    with pytest.raises(FamilyError, match="f_coeffs"):
        fam.assemble({"f_coeffs": np.zeros((2, 2)), "g_coeffs": p["g_coeffs"]})
    again = get_family("poisson")(grid=(8, 5), degree=2).sample(1, np.random.default_rng(4))[0]
    np.testing.assert_array_equal(again["g_coeffs"], p["g_coeffs"])


# --- thermal ----------------------------------------------------------------------------

def test_thermal_masked_grid_and_spd():
    fam = get_family("thermal")(grid=(20, 16))
    (p,) = fam.sample(1, np.random.default_rng(0))
    assert 0 <= p["T"] <= 100 and -100 <= p["q"] <= 0
    s = fam.assemble(p)
    g = s.grid
    assert g.shape == (20, 16) and g.spacing == pytest.approx((0.05, 0.1))
    assert (g.cell_type == SOLID).sum() == 2 * 8 and (g.cell_type == FLUID).sum() == 320 - 16
    assert g.unknowns.size == 304 == s.A.shape[0]
    assert g.origin == pytest.approx((-0.475, -0.75))
    solid = np.zeros((20, 16), dtype=bool)
    solid[9:11, 4:12] = True
    np.testing.assert_array_equal(g.cell_type == SOLID, solid)
    A = s.A.toarray()
    np.testing.assert_allclose(A, gold_fv((20, 16), (0.05, 0.1), np.ones((20, 16)), ~solid, ("bottom",)), rtol=1e-13)
    assert np.linalg.eigvalsh(A).min() > 0
    assert fam.assemble(fam.sample(1, np.random.default_rng(1))[0]).A is s.A


def test_thermal_physics():
    import scipy.sparse.linalg as spla

    fam = get_family("thermal")(grid=(40, 64))
    # No flux: the whole body sits at the Dirichlet temperature.
    s = fam.assemble({"T": 37.0, "q": 0.0})
    np.testing.assert_allclose(spla.spsolve(s.A.tocsc(), s.b), 37.0, rtol=1e-10)
    # Heat extracted at the top must all enter through the bottom (discrete conservation).
    q = -60.0
    s = fam.assemble({"T": 0.0, "q": q})
    u = spla.spsolve(s.A.tocsc(), s.b)
    assert np.all(u < 0)
    faces, hx, hy = fam.faces, 1 / 40, 1.6 / 64
    bottom = fam.dirichlet_mask
    inflow = np.sum(2 * (0.0 - u[faces.row[bottom]]) / hy * hx)
    assert inflow + q * 1.0 == pytest.approx(0.0, abs=1e-8 * abs(q))
    # Linear in the two boundary values.
    s1, s2 = fam.assemble({"T": 10.0, "q": 0.0}), fam.assemble({"T": 0.0, "q": -5.0})
    s12 = fam.assemble({"T": 10.0, "q": -5.0})
    np.testing.assert_allclose(s12.b, s1.b + s2.b)
    fields = fam.solution_fields({"T": 0.0, "q": q}, u)["temperature"]
    assert fields.shape == (40, 64) and np.all(fields[fam.mesh.grid().cell_type == SOLID] == 0)
    np.testing.assert_array_equal(fam.features({"T": 3.0, "q": -4.0}), [3.0, -4.0])
    assert fam.input_fields({"T": 3.0, "q": -4.0})["cell_type"].shape == (40, 64)


@pytest.mark.parametrize("kw,word", [
    ({"dirichlet_edge": "top"}, "differ"), ({"flux_edge": "north"}, "flux_edge"),
    ({"t_min": 5.0, "t_max": 1.0}, "t_min"), ({"conductivity": 0.0}, "conductivity"),
    ({"grid": (4, 4)}, "slot"),
])
def test_thermal_bad_parameters(kw, word):
    with pytest.raises(FamilyError, match=word):
        get_family("thermal")(**kw)


# --- heat -------------------------------------------------------------------------------

def _heat(**kw):
    return get_family("heat")(**{"grid": 12, **kw})


def test_heat_samples_are_time_steps():
    fam = _heat()
    ps = fam.sample(4, np.random.default_rng(0))
    assert [p["step"] for p in ps] == [1, 2, 3, 4]
    assert ps[2]["t"] == pytest.approx(3e-3) and ps[2]["t_prev"] == pytest.approx(2e-3)
    assert ps[0]["kappa"] == pytest.approx(0.1 * np.sin(2 * np.pi * 1e-3))
    assert ps == _heat().sample(4, np.random.default_rng(99))  # rng unused
    np.testing.assert_allclose(fam.features(ps[2]), [3e-3, ps[2]["kappa"]])
    from datagen.families.heat import kappa

    assert kappa(0.25) == pytest.approx(0.1) and kappa(0.75) == pytest.approx(10.0)
    assert kappa(0.0) == 0 and np.all(kappa(np.linspace(0, 2, 101)) >= 0)


def test_heat_step_one_and_spd():
    fam = _heat()
    (p,) = fam.sample(1, None)
    s = fam.assemble(p)
    L = gold_fv((12, 12), (1 / 12, 1 / 12), np.ones((12, 12)))
    A = s.A.toarray()
    np.testing.assert_allclose(A, np.eye(144) / 1e-3 + 0.5 * p["kappa"] * L, rtol=1e-13)
    assert np.linalg.eigvalsh(A).min() > 0
    F0, F1 = fam.forcing(0.0), fam.forcing(1e-3)
    np.testing.assert_allclose(s.b, 0.5 * (F0 + F1).ravel())
    assert F0.max() <= 32.0 and F0.max() > 20.0
    X, Y = fam.mesh.coords()
    far = np.hypot(X - 0.75, Y - 0.5) >= 0.125
    assert np.all(F0[far] == 0)


def test_heat_state_is_deterministic_reference_trajectory():
    fam = _heat(checkpoint=3)
    steps = fam.sample(7, None)
    direct = fam.assemble(steps[6])  # straight to step 7: marches the reference
    fresh = _heat()
    in_order = [fresh.assemble(p) for p in steps]
    np.testing.assert_allclose(direct.b, in_order[6].b, rtol=1e-12)
    assert set(fam._ref) <= {0, 3, 6}
    # Independent march with dense solves.
    L = gold_fv((12, 12), (1 / 12, 1 / 12), np.ones((12, 12)))
    u = np.zeros(144)
    for p in steps[:6]:
        A = np.eye(144) / 1e-3 + 0.5 * p["kappa"] * L
        b = u / 1e-3 - 0.5 * p["kappa_prev"] * L @ u + 0.5 * (fam.forcing(p["t_prev"]) + fam.forcing(p["t"])).ravel()
        u = np.linalg.solve(A, b)
    np.testing.assert_allclose(fam.previous_state(7), u, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(fam.input_fields(steps[6])["u_prev"], u.reshape(12, 12), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(fam.reference_state(4), fresh.reference_state(4), rtol=1e-12)


def test_heat_set_previous_feeds_the_next_step():
    fam = _heat()
    steps = fam.sample(4, None)
    fam.assemble(steps[2])
    x = np.random.default_rng(0).standard_normal(144)
    fam.set_previous(x)  # the solution of step 3
    s4 = fam.assemble(steps[3])
    L = fam.L
    ref = x / 1e-3 - 0.5 * steps[2]["kappa"] * (L @ x) + 0.5 * (fam.forcing(3e-3) + fam.forcing(4e-3)).ravel()
    np.testing.assert_allclose(s4.b, ref, rtol=1e-12)
    fam.clear_previous()
    assert not np.allclose(fam.assemble(steps[3]).b, ref)
    with pytest.raises(FamilyError, match="finite values"):
        fam.set_previous(np.ones(3), step=1)
    with pytest.raises(FamilyError, match="step"):
        _heat().set_previous(np.ones(144))


@pytest.mark.parametrize("kw,word", [({"dt": 0.0}, "dt"), ({"radius": -1.0}, "radius"),
                                     ({"checkpoint": 0}, "checkpoint"), ({"amplitude": "big"}, "amplitude")])
def test_heat_bad_parameters(kw, word):
    with pytest.raises(FamilyError, match=word):
        _heat(**kw)


def test_heat_bad_step():
    fam = _heat()
    for bad in (0, 1.5):
        with pytest.raises(FamilyError, match="step"):
            fam.assemble({"step": bad})

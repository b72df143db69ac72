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
    assert {"darcy"} <= set(available_families())


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
    assert set(fam.boundary_conditions()) == {"left", "right", "bottom", "top"}
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
    with pytest.raises(FamilyError, match="non-negative"):
        fam.sample(-1, np.random.default_rng(0))
    assert issubclass(FamilyError, ValueError)


def test_darcy_sigma_changes_contrast():
    lo = _darcy(grid=16, sigma=1.0).sample(4, np.random.default_rng(0))
    hi = _darcy(grid=16, sigma=100.0).sample(4, np.random.default_rng(0))
    assert np.std(np.log(hi[0]["a"])) == pytest.approx(100 * np.std(np.log(lo[0]["a"])), rel=1e-9)

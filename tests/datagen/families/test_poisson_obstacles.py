"""The poisson_obstacles family: SPD systems on fluid cells, boundary conditions as
documented, seeded and held-out sampling, and second-order convergence against a
manufactured solution."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse.linalg as spla

from datagen import get_family
from datagen.families.poisson_obstacles import frame_cells, pressure_matrix, seal_pockets
from datagen.family import FamilyError
from linsolve import AIR, FLUID, SOLID

Fam = get_family("poisson_obstacles")


def _dense_reference(ct):
    """Gold assembly cell by cell, written independently of the vectorised one."""
    fluid = np.argwhere(ct == FLUID)
    index = {tuple(c): i for i, c in enumerate(fluid)}
    A = np.zeros((len(fluid), len(fluid)))
    for i, c in enumerate(fluid):
        for a in range(ct.ndim):
            for s in (-1, 1):
                nb = list(c)
                nb[a] += s
                inside = all(0 <= nb[d] < ct.shape[d] for d in range(ct.ndim))
                t = ct[tuple(nb)] if inside else SOLID
                if t == SOLID:
                    continue
                A[i, i] += 1
                if t == FLUID:
                    A[i, index[tuple(nb)]] -= 1
    return A


@pytest.mark.parametrize("dim,n", [(2, 12), (3, 7)])
def test_matrix_matches_cellwise_gold_and_is_spd(dim, n):
    fam = Fam(n, dim=dim, n_obstacles=3)
    for p in fam.sample(3, np.random.default_rng(0)):
        s = fam.assemble(p)
        ct = p["cell_type"]
        A = s.A.toarray()
        np.testing.assert_array_equal(A, _dense_reference(ct))
        assert np.linalg.eigvalsh(A).min() > 1e-8
        assert s.grid.n_unknowns == s.A.shape[0] == np.count_nonzero(ct == FLUID)
        np.testing.assert_array_equal(s.grid.unknowns, np.flatnonzero(ct == FLUID))
        # the frame: walls on the sides and bottom, air on top
        assert np.all(ct[0] == SOLID) and np.all(ct[-1] == SOLID)
        assert np.all(ct[(slice(1, -1),) * (dim - 1) + (-1,)] == AIR)


def test_sealed_pockets_become_solid():
    ct = frame_cells((8, 8))
    ct[2:6, 2:6] = SOLID
    ct[3:5, 3:5] = FLUID  # a pocket enclosed by the obstacle, no air contact
    out = seal_pockets(ct)
    assert np.all(out[3:5, 3:5] == SOLID)
    assert np.count_nonzero(out == FLUID) == np.count_nonzero(ct == FLUID) - 4
    A, _ = pressure_matrix(out)
    assert np.linalg.eigvalsh(A.toarray()).min() > 0


def test_rhs_is_minus_divergence_with_no_flow_through_walls():
    fam = Fam(10, dim=2, n_obstacles=2)
    p = fam.sample(1, np.random.default_rng(3))[0]
    ct, b = p["cell_type"], p["rhs"]
    assert np.all(b[ct != FLUID] == 0)
    # Sum of -div over a region = net inflow; walls block flow, so only faces towards air
    # carry net flux out of the fluid: the total is generally non-zero but finite.
    assert np.isfinite(b).all() and np.linalg.norm(b) > 0
    s = fam.assemble(p)
    np.testing.assert_array_equal(s.b, b.reshape(-1)[s.grid.unknowns])


def test_seeded_and_splits_disjoint():
    a = Fam(16, split="train").sample(2, np.random.default_rng(7))
    b = Fam(16, split="train").sample(2, np.random.default_rng(7))
    c = Fam(16, split="test").sample(2, np.random.default_rng(7))
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x["cell_type"], y["cell_type"])
        np.testing.assert_array_equal(x["rhs"], y["rhs"])
    assert not any(np.array_equal(x["rhs"], z["rhs"]) for x in a for z in c)


def test_family_interface_and_bad_params():
    fam = Fam(12, dim=2)
    p = fam.sample(1, np.random.default_rng(0))[0]
    s = fam.assemble(p)
    x = spla.spsolve(s.A.tocsc(), s.b)
    fields = fam.solution_fields(p, x)
    assert fields["pressure"].shape == (12, 12)
    np.testing.assert_allclose(s.grid.from_grid(fields["pressure"]), x)
    assert set(fam.coordinates()) == {"x", "y"}
    assert fam.features(p).ndim == 1
    assert "air" in fam.boundary_conditions()["y_high"]
    with pytest.raises(FamilyError):
        Fam(12, shapes="triangles")
    with pytest.raises(FamilyError):
        Fam(12, split="valid")
    with pytest.raises(FamilyError):
        Fam(3)
    with pytest.raises(FamilyError):
        fam.assemble({"cell_type": np.zeros((5, 5)), "rhs": np.zeros((5, 5))})


@pytest.mark.parametrize("dim,sizes", [(2, (16, 32, 64)), (3, (8, 16, 32))])
def test_manufactured_solution_second_order(dim, sizes):
    """p = prod cos(pi x_a) * cos(pi y / 2L): zero normal derivative on the walls (faces at
    0 and 1) and p = 0 at the air cell centres y = L on top. The cell-centred scheme is
    designed second order; observed order over three refinements must be 2 +- 0.1."""
    errors = []
    for m in sizes:
        ct = frame_cells((m + 2,) * dim)
        A, unknowns = pressure_matrix(ct)
        h = 1.0 / m
        L = (m + 0.5) * h  # centre of the air cells
        c = np.meshgrid(*[(np.arange(m + 2) - 0.5) * h] * dim, indexing="ij")
        p = np.cos(np.pi * c[-1] / (2 * L))
        for a in range(dim - 1):
            p = p * np.cos(np.pi * c[a])
        f = np.pi**2 * ((dim - 1) + 1 / (4 * L**2)) * p  # -Laplacian of p
        # the integer stencil is h^2 times the discrete -Laplacian
        rhs = h**2 * f.reshape(-1)[unknowns]
        ph, info = spla.cg(A, rhs, rtol=1e-13, maxiter=5000)  # 3-D direct fill-in is slow
        assert info == 0
        errors.append(np.max(np.abs(ph - p.reshape(-1)[unknowns])))
    orders = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert np.all(np.abs(orders - 2.0) <= 0.1), orders

"""operators.projection: the divergence-free projection of coarse channel velocities through
linsolve's FFT/tridiagonal Poisson solver, against a plain loop divergence and a dense
least-squares projection."""
from __future__ import annotations

import numpy as np
import pytest

from linsolve.core.errors import ShapeError
from operators.projection import Projector, gauss_lobatto

GRIDS = [(8, 9, 4), (6, 10, 4), (4, 5, 2), (16, 17, 8)]


def loop_divergence(u, lx, lz):
    """Gold: central differences written out node by node (walls count as zero velocity)."""
    _, NX, NY, NZ = u.shape
    y = gauss_lobatto(NY)
    hx, hz = lx / NX, lz / NZ
    uu = u.copy()
    uu[:, :, [0, -1], :] = 0.0
    out = np.zeros((NX, NY - 2, NZ))
    for i in range(NX):
        for j in range(1, NY - 1):
            m = 0.5 * (y[j + 1] - y[j - 1])
            for k in range(NZ):
                out[i, j - 1, k] = ((uu[0, (i + 1) % NX, j, k] - uu[0, (i - 1) % NX, j, k]) / (2 * hx)
                                    + (uu[1, i, j + 1, k] - uu[1, i, j - 1, k]) / (2 * m)
                                    + (uu[2, i, j, (k + 1) % NZ] - uu[2, i, j, (k - 1) % NZ]) / (2 * hz))
    return out


def divergence_free_field(grid, lx, lz, seed=0):
    """Independent construction: u = h(y) d psi/dz, w = -h(y) d psi/dx (central differences of a
    random periodic psi(x, z)), v = 0, plus a mean flow U(y); h and U vanish on the walls."""
    NX, NY, NZ = grid
    rng = np.random.default_rng(seed)
    psi = rng.standard_normal((NX, NZ))
    y = gauss_lobatto(NY)
    h = 1 - y**2
    dpdz = (np.roll(psi, -1, 1) - np.roll(psi, 1, 1)) / (2 * lz / NZ)
    dpdx = (np.roll(psi, -1, 0) - np.roll(psi, 1, 0)) / (2 * lx / NX)
    u = np.zeros((3, NX, NY, NZ))
    u[0] = dpdz[:, None, :] * h[None, :, None] + 15 * h[None, :, None]
    u[2] = -dpdx[:, None, :] * h[None, :, None]
    return u


@pytest.mark.parametrize("grid", GRIDS)
def test_projected_field_is_divergence_free_to_round_off(grid):
    P = Projector(grid, 3.0, 1.5)
    u = np.random.default_rng(1).standard_normal((3, *grid)) * 5
    div0 = np.abs(loop_divergence(u, 3.0, 1.5)).max()
    pu = P(u)
    assert np.abs(P.divergence(u) - loop_divergence(u, 3.0, 1.5)).max() < 1e-12 * div0
    assert div0 > 1.0
    assert np.abs(loop_divergence(pu, 3.0, 1.5)).max() < 1e-12 * div0
    assert np.all(pu[:, :, [0, -1], :] == 0)  # no-slip walls


@pytest.mark.parametrize("grid", GRIDS)
def test_projection_is_idempotent(grid):
    P = Projector(grid, 2.0, 1.0)
    u = np.random.default_rng(2).standard_normal((2, 3, *grid))  # a batch
    pu = P(u)
    np.testing.assert_allclose(P(pu), pu, atol=1e-12 * np.abs(pu).max())
    assert np.abs(pu - u).max() > 0.1


@pytest.mark.parametrize("grid", GRIDS)
def test_divergence_free_field_is_unchanged(grid):
    u = divergence_free_field(grid, 3.0, 1.5)
    assert np.abs(loop_divergence(u, 3.0, 1.5)).max() < 1e-12 * np.abs(u).max()
    np.testing.assert_allclose(Projector(grid, 3.0, 1.5)(u), u, atol=1e-12 * np.abs(u).max())


def test_projection_equals_dense_least_squares_projection():
    """Gold: P = I - G (D G)^+ D with D and G assembled column by column and a dense pseudo-inverse."""
    grid, lx, lz = (4, 7, 4), 2.0, 1.0
    NX, NY, NZ = grid
    P = Projector(grid, lx, lz)
    nu = 3 * NX * (NY - 2) * NZ
    npr = NX * (NY - 2) * NZ

    def embed(vec):  # interior unknowns -> full field with zero walls
        u = np.zeros((3, NX, NY, NZ))
        u[:, :, 1:-1, :] = vec.reshape(3, NX, NY - 2, NZ)
        return u

    D = np.column_stack([loop_divergence(embed(e), lx, lz).ravel() for e in np.eye(nu)])
    G = np.column_stack([P.gradient(e.reshape(NX, NY - 2, NZ))[:, :, 1:-1, :].ravel() for e in np.eye(npr)])
    Pd = np.eye(nu) - G @ np.linalg.pinv(D @ G) @ D
    u = np.random.default_rng(3).standard_normal((3, *grid))
    got = P(u)[:, :, 1:-1, :].ravel()
    np.testing.assert_allclose(got, Pd @ u[:, :, 1:-1, :].ravel(), atol=1e-10)


def test_adjoint_is_the_transpose():
    P = Projector((8, 9, 4), 3.0, 1.5)
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((2, 3, 8, 9, 4))
    assert abs(np.sum(b * P(a)) - np.sum(P.adjoint(b) * a)) < 1e-10 * np.sum(np.abs(a * b))


def test_torch_projection_matches_numpy_and_has_the_right_gradient():
    torch = pytest.importorskip("torch")
    P = Projector((4, 5, 4), 2.0, 1.0)
    u = torch.randn(2, 3, 4, 5, 4, dtype=torch.float64, requires_grad=True)
    np.testing.assert_allclose(P(u).detach().numpy(), P(u.detach().numpy()), atol=1e-13)
    assert torch.autograd.gradcheck(lambda t: P(t), (u,), eps=1e-6, atol=1e-8)
    x = torch.randn(1, 3, 4, 5, 4)  # float32 in, float32 out
    assert P(x).dtype == torch.float32
    # the all-torch path (used for CUDA tensors: FFTs and sweeps on the device) gives the same field
    t = torch.randn(2, 3, 8, 9, 4, dtype=torch.float64)
    np.testing.assert_allclose(Projector((8, 9, 4), 2.0, 1.0).project_array(t).numpy(),
                               Projector((8, 9, 4), 2.0, 1.0)(t.numpy()), atol=1e-12)


def test_bad_grids_are_refused():
    with pytest.raises(ShapeError, match="even NX"):
        Projector((7, 9, 4), 1.0, 1.0)
    with pytest.raises(ShapeError, match="NY >= 3"):
        Projector((8, 2, 4), 1.0, 1.0)
    with pytest.raises(ShapeError, match="does not match"):
        Projector((8, 9, 4), 1.0, 1.0)(np.zeros((3, 8, 9, 6)))

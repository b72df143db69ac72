"""fft-poisson against independent references: SciPy's sparse LU on the assembled
matrix, CG, and the channel's own divergence/gradient operators."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla

import linsolve
from linsolve import Grid, LinearSystem, gallery
from linsolve.core.errors import OptionError, ShapeError, UnsupportedInputError
from linsolve.structured.fft_poisson import TensorPoisson


def _stretched(ny, seed=0):
    rng = np.random.default_rng(seed)
    yf = np.sort(rng.uniform(-1, 1, ny + 1))
    yf[0], yf[-1] = -1.0, 1.0
    dyc = np.diff(yf)
    dyf = np.diff(0.5 * (yf[1:] + yf[:-1]))
    t_diag = np.zeros(ny)
    t_diag[1:] += 1 / dyf
    t_diag[:-1] += 1 / dyf
    return dyc, t_diag, -1 / dyf


@pytest.mark.parametrize("periodic,pin", [((6, 5), 0), ((6, 5), 17), ((8,), 0), ((4, 3, 4), 5)])
def test_matches_sparse_lu(periodic, pin):
    dyc, td, to = _stretched(7)
    tp = TensorPoisson(dyc, td, to, periodic, [0.3 + 0.1 * i for i in range(len(periodic))], scale=0.7, pin=pin)
    A = tp.matrix()
    assert abs(A - A.T).max() == 0
    assert np.all(np.linalg.eigvalsh(A.toarray()) > 0)  # pinned: SPD
    b = np.random.default_rng(1).standard_normal(tp.n)
    x_ref = spla.spsolve(A.tocsc(), b)
    res = linsolve.make_solver("fft-poisson").solve(LinearSystem(A, b, grid=Grid(tp.shape), meta={"tensor_poisson": tp}))
    assert res.converged and res.iterations == 1
    assert np.linalg.norm(res.x - x_ref) <= 1e-11 * np.linalg.norm(x_ref)
    assert res.relative_residual < 1e-12


def test_nonsingular_wall_operator_without_pin():
    dyc, td, to = _stretched(9, seed=3)
    td = td + 2.0 / dyc  # Dirichlet-like walls: T is nonsingular
    tp = TensorPoisson(dyc, td, to, (6, 4), (0.5, 0.25), pin=None)
    A = tp.matrix()
    b = np.random.default_rng(2).standard_normal(tp.n)
    x = linsolve.make_solver("fft-poisson", structure=tp).solve(A, b, grid=Grid(tp.shape)).x
    assert np.allclose(x, spla.spsolve(A.tocsc(), b), rtol=0, atol=1e-11 * np.abs(x).max())


def test_agrees_with_cg_on_channel_pressure_matrix():
    from datagen.channel import ChannelConfig, ChannelDNS

    dns = ChannelDNS(ChannelConfig(grid=dict(nx=8, ny=12, nz=6)))
    A = dns.pressure_matrix()
    b = np.random.default_rng(4).standard_normal(A.shape[0])
    x_fft = linsolve.make_solver("fft-poisson", rtol=1e-12).solve(dns.pressure_system(b)).x
    r_cg = linsolve.make_solver("cg", rtol=1e-12, maxiter=5000).solve(A, b)
    assert r_cg.converged
    assert np.linalg.norm(x_fft - r_cg.x) <= 1e-8 * np.linalg.norm(x_fft)


def test_channel_matrix_is_minus_volume_div_grad():
    """The assembled matrix equals -V D G built from the DNS's own staggered operators."""
    from datagen.channel import ChannelConfig, ChannelDNS

    dns = ChannelDNS(ChannelConfig(grid=dict(nx=6, ny=8, nz=4, stretch=1.5)))
    ops, g = dns.ops, dns.grid
    p = np.random.default_rng(5).standard_normal(g.shape)
    p.flat[0] = 0.0  # the pinned cell
    gx, gy, gz = ops.gradient(p)
    v = np.zeros((g.ny + 1, g.nx, g.nz))
    v[1:-1] = gy
    ref = -(ops.vol * ops.divergence(gx, v, gz)).reshape(-1)
    got = dns.pressure_matrix() @ p.reshape(-1)
    assert np.allclose(got[1:], ref[1:], atol=1e-10 * np.abs(ref).max())


def test_dirichlet_box_from_grid():
    for A, shape in ((gallery.poisson2d(7), (7, 7)), (gallery.poisson2d(6, scaled=True), (6, 6)),
                     (gallery.poisson3d(4), (4, 4, 4))):
        b = np.random.default_rng(6).standard_normal(A.shape[0])
        res = linsolve.make_solver("fft-poisson").solve(A, b, grid=Grid(shape))
        assert np.allclose(res.x, spla.spsolve(A.tocsc(), b), atol=1e-10 * np.abs(res.x).max())


def test_torch_path_matches_numpy():
    torch = pytest.importorskip("torch")
    dyc, td, to = _stretched(6)
    tp = TensorPoisson(dyc, td, to, (4, 6), (0.3, 0.2), pin=0)
    b = np.random.default_rng(7).standard_normal(tp.shape)
    xt = tp.solve_grid(torch.tensor(b), torch).numpy()
    assert np.allclose(xt, tp.solve_grid(b), atol=1e-12)


def test_refuses_generic_or_mismatched_matrix():
    dyc, td, to = _stretched(5)
    tp = TensorPoisson(dyc, td, to, (4, 4), (0.3, 0.2))
    A = tp.matrix()
    b = np.ones(tp.n)
    s = linsolve.make_solver("fft-poisson")
    with pytest.raises(UnsupportedInputError, match="structure"):
        s.solve(A, b, grid=Grid((tp.n,)))  # a grid, but A is no Dirichlet Laplacian on it
    with pytest.raises(UnsupportedInputError, match="random product"):
        s.solve(A + sp.identity(tp.n), b, grid=Grid(tp.shape), meta={"tensor_poisson": tp})
    with pytest.raises(ShapeError, match="grid"):
        s.solve(A, b)  # no geometry at all
    with pytest.raises(OptionError):
        linsolve.make_solver("fft-poisson", structure="not a structure")
    with pytest.raises(ShapeError):
        TensorPoisson(dyc, td[:-1], to, (4, 4), (0.3, 0.2))

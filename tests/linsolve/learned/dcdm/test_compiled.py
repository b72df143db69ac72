"""The mg-cycle DCDM network compiled into sparse operators (``linsolve.learned.dcdm.compiled``):
equal to the PyTorch network's output to round-off on random residuals (2-D and 3-D,
several geometries with solid and air cells, odd sizes), and DCDM with it takes the same
iterations as with the torch network on held-out layouts."""
from __future__ import annotations

import copy

import numpy as np
import pytest

import linsolve
from linsolve import AIR, FLUID, SOLID, Grid, gallery

torch = pytest.importorskip("torch")

from datagen import get_family  # noqa: E402
from linsolve.core.errors import OptionError  # noqa: E402
from linsolve.learned.dcdm.compiled import compile_mg_cycle  # noqa: E402
from linsolve.learned.dcdm.loading import load_model  # noqa: E402
from linsolve.learned.dcdm.model import build_model  # noqa: E402
from linsolve.learned.dcdm.solver import _GridMap  # noqa: E402


def _random_geometry(shape, seed):
    """Cell types drawn at random (fluid 70%, solid 20%, air 10%): isolated cells, air
    pockets, walls touching the edge, everything the level construction must handle."""
    ct = np.random.default_rng(seed).choice([FLUID, SOLID, AIR], size=shape, p=[0.7, 0.2, 0.1])
    fluid = ct == FLUID
    return np.stack([fluid, ct == AIR]).astype(np.float64)


def _obstacle_geometry(n, dim, seed):
    fam = get_family("poisson_obstacles")(n, dim=dim, split="test")
    s = fam.assemble(fam.sample(1, np.random.default_rng(seed))[0])
    gmap = _GridMap(s.grid, s.A.shape[0])
    return gmap.geometry.astype(np.float64)


def _gallery_geometry(n, dim):
    A = gallery.poisson2d(n) if dim == 2 else gallery.poisson3d(n)
    return _GridMap(Grid((n,) * dim), A.shape[0]).geometry.astype(np.float64)


def _torch_output(model, geo, r, dtype):
    net = copy.deepcopy(model).to(dtype)
    with torch.no_grad():
        out = net(torch.from_numpy(r).to(dtype)[None, None], torch.from_numpy(geo).to(dtype)[None])
    return out[0, 0].double().numpy()


def _models(dim):
    """The shipped weights and an untrained cycle with other settings (V-cycle, two sweeps,
    a coarser coarsest level), so every branch of the compiled schedule is compared."""
    shipped = load_model(None, dim=dim)
    other = build_model({"arch": "mg-cycle", "dim": dim, "nu": 2, "gamma": 1, "coarsest_cells": 8,
                         "omega": 0.7, "coarse_scale": 1.3}).eval()
    with torch.no_grad():  # a kernel that is not a multiple of the identity
        other.kernel.add_(0.05 * torch.rand(other.kernel.shape, generator=torch.Generator().manual_seed(dim)))
    return [shipped, other]


GEOMETRIES = [
    ("obstacles", 2, 32, 0), ("obstacles", 2, 45, 1), ("obstacles", 2, 64, 2), ("random", 2, (37, 22), 3),
    ("gallery", 2, 15, None), ("obstacles", 3, 12, 0), ("obstacles", 3, 17, 1), ("random", 3, (9, 14, 11), 2),
    ("gallery", 3, 7, None),
]


def _geometry(kind, dim, n, seed):
    if kind == "obstacles":
        return _obstacle_geometry(n, dim, seed)
    if kind == "random":
        return _random_geometry(n, seed)
    return _gallery_geometry(n, dim)


@pytest.mark.parametrize("kind,dim,n,seed", GEOMETRIES)
def test_compiled_cycle_equals_torch_network_to_round_off(kind, dim, n, seed):
    geo = _geometry(kind, dim, n, seed)
    rng = np.random.default_rng(10 + dim)
    for model in _models(dim):
        cyc = compile_mg_cycle(model, geo)
        assert cyc.n_levels >= 2
        for _ in range(3):
            r = rng.standard_normal(geo.shape[1:])
            ours = cyc.apply(r)
            ref64 = _torch_output(model, geo, r, torch.float64)
            scale = np.linalg.norm(ref64)
            assert scale > 0
            assert np.linalg.norm(ours - ref64) <= 1e-12 * scale
            # the network as DCDM's torch path runs it (float32): float32 round-off
            ref32 = _torch_output(model, geo, r, torch.float32)
            assert np.linalg.norm(ours - ref32) <= 1e-5 * scale
            assert np.all(ours[geo[0] == 0] == 0.0)  # no output on solid or air cells


def test_compiled_cycle_on_unknown_vectors_matches_the_grid_form():
    geo = _obstacle_geometry(20, 2, 4)
    cyc = compile_mg_cycle(load_model(None, dim=2), geo)
    idx = np.flatnonzero(geo[0].ravel())
    r = np.random.default_rng(0).standard_normal(idx.size)
    grid = np.zeros(geo.shape[1:])
    grid.ravel()[idx] = r
    np.testing.assert_array_equal(cyc.apply_unknowns(r, idx), cyc.apply(grid).ravel()[idx])
    np.testing.assert_array_equal(cyc.apply_unknowns(r, idx), cyc.apply_unknowns(r, idx))  # no state left


@pytest.mark.parametrize("dim,n,seeds", [(2, 64, (0, 1, 2)), (2, 96, (3,)), (3, 16, (0, 1)), (3, 24, (2,))])
def test_dcdm_iterations_unchanged_against_the_torch_path(dim, n, seeds):
    fam = get_family("poisson_obstacles")(n, dim=dim, split="test")
    for seed in seeds:
        s = fam.assemble(fam.sample(1, np.random.default_rng(seed))[0])
        res = {}
        for engine in ("torch", "compiled"):
            res[engine] = linsolve.make_solver("dcdm", rtol=1e-6, n_orth=2, engine=engine).solve(s)
            assert res[engine].converged and res[engine].info["engine"] == engine
        assert res["compiled"].iterations == res["torch"].iterations
        assert res["compiled"].relative_residual <= 1e-6
        # the default on the CPU is the compiled cycle
        auto = linsolve.make_solver("dcdm", rtol=1e-6).solve(s)
        assert auto.info["engine"] == "compiled" and auto.iterations == res["compiled"].iterations


def test_engine_option_errors():
    with pytest.raises(OptionError, match="engine"):
        linsolve.make_solver("dcdm", engine="numba")
    A = gallery.poisson2d(8)
    s = linsolve.make_solver("dcdm", model=lambda r, ct: r, engine="compiled")
    with pytest.raises(OptionError, match="mg-cycle"):
        s.solve(A, np.ones(64), grid=Grid((8, 8)))
    s = linsolve.make_solver("dcdm", model="dcdm-2d-unet", engine="compiled")
    with pytest.raises(OptionError, match="mg-cycle"):
        s.solve(A, np.ones(64), grid=Grid((8, 8)))
    # a network that cannot be compiled still runs with torch under "auto"
    res = linsolve.make_solver("dcdm", model="dcdm-2d-unet", rtol=1e-3, n_orth=50, maxiter=100).solve(
        A, np.ones(64), grid=Grid((8, 8)))
    assert res.info["engine"] == "torch"


@pytest.mark.parametrize("n", [8, 20])
def test_singular_coarsest_level_keeps_the_cycle_spd(n):
    """All fluid and no air: the network sees a closed (pure Neumann) box, whose coarsest
    matrix is singular. The compiled cycle gives the null mode the gain of the smoothest
    regular mode, so it stays symmetric positive definite (the torch network's inverse of
    the singular matrix is rounding noise times 1/eps there)."""
    geo = np.stack([np.ones((n, n)), np.zeros((n, n))])
    cyc = compile_mg_cycle(load_model(None, dim=2), geo)
    B = np.stack([cyc.apply(e.reshape(n, n)).ravel() for e in np.eye(n * n)], axis=1)
    assert np.abs(B - B.T).max() <= 1e-12 * np.abs(B).max()
    w = np.linalg.eigvalsh(0.5 * (B + B.T))
    assert w[0] > 1e-6 * w[-1]
    # DCDM on the Dirichlet matrix with that blind geometry: PCG with an SPD preconditioner
    A = gallery.poisson2d(n)
    b = np.random.default_rng(0).standard_normal(n * n)
    res = linsolve.make_solver("dcdm", rtol=1e-8).solve(A, b, grid=Grid((n, n), cell_type=np.full((n, n), FLUID)))
    assert res.converged and res.info["fallback_steps"] == 0 and res.iterations <= 40

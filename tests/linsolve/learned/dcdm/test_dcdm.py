"""DCDM: exact-arithmetic facts of the iteration (oracle network: one step; identity
network: CG's iterates; A-orthogonality of the last n_orth directions), robustness to
degenerate networks, solid cells, the networks, training pieces, and weights loading."""
from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse.linalg as spla
from solver_problems import poisson_problem

import linsolve
from linsolve import FLUID, Grid, gallery

torch = pytest.importorskip("torch")

from datagen import get_family  # noqa: E402
from linsolve.learned.dcdm import loading  # noqa: E402
from linsolve.learned.dcdm.model import build_model  # noqa: E402
from linsolve.learned.dcdm.stencil import PressureStencil, geometry_channels  # noqa: E402

N = 8
A2 = gallery.poisson2d(N)
GRID = Grid((N, N))


def _b(n, seed=0):
    return np.random.default_rng(seed).standard_normal(n)


def _obstacle_system(n=12, dim=2, seed=0):
    fam = get_family("poisson_obstacles")(n, dim=dim, n_obstacles=3)
    return fam, fam.assemble(fam.sample(1, np.random.default_rng(seed))[0])


def test_oracle_network_converges_in_one_step():
    fam, s = _obstacle_system()
    lu = spla.splu(s.A.tocsc())

    def oracle(r_grid, cell_type):
        return s.grid.to_grid(lu.solve(s.grid.from_grid(r_grid)))

    res = linsolve.make_solver("dcdm", model=oracle, rtol=1e-10).solve(s)
    assert res.converged and res.iterations == 1
    np.testing.assert_allclose(res.x, lu.solve(s.b), rtol=1e-9, atol=1e-12)


def test_identity_network_reproduces_cg_iterates():
    b = _b(N * N, 1)
    ours, ref = [], []
    linsolve.make_solver("dcdm", model=lambda r, ct: r, rtol=1e-10, n_orth=2,
                         callback=lambda x: ours.append(x.copy())).solve(A2, b, grid=GRID)
    spla.cg(A2, b, rtol=1e-10, callback=lambda x: ref.append(x.copy()))
    k = min(len(ours), len(ref), 20)
    assert k >= 15
    for a, c in zip(ours[:k], ref[:k], strict=True):
        assert np.linalg.norm(a - c) <= 1e-8 * np.linalg.norm(c)


def _nonlinear(r, ct):
    # a fixed nonlinear map that is a poor but valid network
    return r + 0.5 * np.tanh(3 * np.roll(r, 1, axis=0)) * np.abs(r).max()


@pytest.mark.parametrize("n_orth", [1, 2, 3])
def test_directions_are_A_orthogonal_to_the_last_n_orth(n_orth):
    b = _b(N * N, 2)
    xs = [np.zeros(N * N)]
    res = linsolve.make_solver("dcdm", model=_nonlinear, n_orth=n_orth, rtol=1e-9, safeguard=0.0,
                               callback=lambda x: xs.append(x.copy())).solve(A2, b, grid=GRID)
    assert res.converged
    P = [xs[i + 1] - xs[i] for i in range(min(12, len(xs) - 1))]
    An = [np.sqrt(p @ (A2 @ p)) for p in P]
    worst_near = max(abs(P[i] @ (A2 @ P[j])) / (An[i] * An[j])
                     for i in range(len(P)) for j in range(max(0, i - n_orth), i))
    assert worst_near < 1e-8
    # the nonlinear network breaks conjugacy beyond the window (so the test can fail)
    far = [abs(P[i] @ (A2 @ P[j])) / (An[i] * An[j]) for i in range(len(P)) for j in range(0, i - n_orth)]
    assert max(far) > 1e-6


@pytest.mark.parametrize("bad,why", [
    (lambda r, ct: np.full_like(r, np.nan), "non-finite direction"),
    (lambda r, ct: np.zeros_like(r), "zero direction"),
])
def test_degenerate_network_falls_back_and_still_converges(bad, why):
    b = _b(N * N, 3)
    res = linsolve.make_solver("dcdm", model=bad, rtol=1e-8).solve(A2, b, grid=GRID)
    assert res.converged
    assert res.info["fallback_reasons"][why] == res.iterations == res.info["fallback_steps"]
    assert res.info["safeguard"] == 1.0  # an arbitrary callable keeps the safeguard
    assert np.linalg.norm(b - A2 @ res.x) <= 1e-8 * np.linalg.norm(b) * (1 + 1e-6)


def test_no_descent_direction_falls_back():
    def orthogonal(r, ct):  # a direction with q . r = 0 exactly: no descent possible
        v = np.roll(r, 3) + 1.0
        v = v - (v.ravel() @ r.ravel()) / (r.ravel() @ r.ravel()) * r
        return v

    b = _b(N * N, 4)
    res = linsolve.make_solver("dcdm", model=orthogonal, rtol=1e-8, safeguard=0.0).solve(A2, b, grid=GRID)
    assert res.converged and res.info["fallback_reasons"].get("no descent", 0) >= 1


def test_safeguard_never_slower_than_needed_on_a_misleading_network():
    # A network that returns -r everywhere with a sign flip pattern: valid but poor.
    b = _b(N * N, 5)
    poor = lambda r, ct: r * np.where(np.indices(r.shape).sum(0) % 2, 1.0, 0.05)  # noqa: E731
    guarded = linsolve.make_solver("dcdm", model=poor, rtol=1e-8, maxiter=400).solve(A2, b, grid=GRID)
    cg = linsolve.make_solver("cg", rtol=1e-8).solve(A2, b)
    assert guarded.converged
    assert guarded.iterations <= 3 * cg.iterations


def test_solid_cells_are_not_fed_as_fluid():
    fam, s = _obstacle_system(seed=4)
    seen = {}

    def spy(r_grid, ct):
        seen["r"], seen["ct"] = r_grid.copy(), ct.copy()
        return r_grid

    linsolve.make_solver("dcdm", model=spy, rtol=1e-3, maxiter=1).solve(s)
    ct = s.grid.cell_type
    assert seen["r"].shape == ct.shape
    assert np.all(seen["r"][ct != FLUID] == 0)
    np.testing.assert_array_equal(seen["ct"] == FLUID, ct == FLUID)
    assert np.any(seen["ct"] == linsolve.AIR) and np.any(seen["ct"] == linsolve.SOLID)


def test_bad_options_and_grid():
    with pytest.raises(linsolve.OptionError):
        linsolve.make_solver("dcdm", n_orth=-1)
    with pytest.raises(linsolve.OptionError):
        linsolve.make_solver("dcdm", safeguard=2.0)
    with pytest.raises(linsolve.OptionError):
        linsolve.make_solver("dcdm", model=42)
    with pytest.raises(linsolve.OptionError):
        linsolve.make_solver("dcdm", pc="jacobi")
    with pytest.raises(linsolve.ShapeError):
        linsolve.make_solver("dcdm").solve(A2, _b(N * N))  # no grid
    with pytest.raises(linsolve.ShapeError):
        linsolve.make_solver("dcdm").solve(A2, _b(N * N), grid=Grid((N, N + 1)))


# --- networks -----------------------------------------------------------------------

@pytest.mark.parametrize("dim", [2, 3])
def test_network_any_size_homogeneous_and_masked(dim):
    torch.manual_seed(0)
    net = build_model({"dim": dim, "channels": 4})
    for n in ((12, 20) if dim == 2 else (6, 10)):
        shape = (n,) * dim
        ct = torch.zeros(1, *shape, dtype=torch.int8)
        ct[0, 0] = linsolve.SOLID
        ct[(0,) + (slice(None),) * (dim - 1) + (-1,)] = linsolve.AIR
        geo = geometry_channels(ct)
        r = torch.randn(1, 1, *shape) * geo[:, :1]
        with torch.no_grad():
            q = net(r, geo)
            q3 = net(3 * r, geo)
            qz = net(torch.zeros_like(r), geo)
        assert q.shape == r.shape
        assert torch.all(q[0, 0][ct[0] != FLUID] == 0)
        torch.testing.assert_close(q3, 3 * q, rtol=1e-4, atol=1e-5)
        assert torch.all(qz == 0)
    assert net.levels((64,) * dim) > net.levels((16,) * dim)


@pytest.mark.parametrize("dim,n", [(2, 9), (3, 6)])
def test_stencil_matches_family_matrix(dim, n):
    fam, s = _obstacle_system(n, dim, seed=1)
    ct = torch.from_numpy(np.asarray(s.grid.cell_type)[None])
    q = _b(s.A.shape[0], 6)
    got = PressureStencil(ct, dtype=torch.float64)(torch.from_numpy(s.grid.to_grid(q))[None, None])
    np.testing.assert_allclose(s.grid.from_grid(got[0, 0].numpy()), s.A @ q, rtol=1e-12, atol=1e-12)


def test_lanczos_ritz_pairs():
    from linsolve.learned.dcdm.train import lanczos_ritz

    A = gallery.random_spd(30, seed=1, cond=50.0)  # distinct eigenvalues: Lanczos finds all
    lam, U = np.linalg.eigh(A)
    theta, V = lanczos_ritz(A, 30, np.random.default_rng(0))
    np.testing.assert_allclose(theta, lam, rtol=1e-8)
    np.testing.assert_allclose(np.abs(V.T @ U), np.eye(30), atol=1e-6)
    theta, V = lanczos_ritz(A, 10, np.random.default_rng(0))
    np.testing.assert_allclose(V.T @ V, np.eye(10), atol=1e-8)
    assert np.all(np.diff(theta) > 0) and lam[0] <= theta[0] and theta[-1] <= lam[-1]
    assert abs(theta[-1] - lam[-1]) <= 0.01 * lam[-1]  # the isolated top converges first


def test_training_reduces_loss_and_resumes(tmp_path):
    from typer.testing import CliRunner

    from datagen.dcdm_training import app

    args = ["--dim", "2", "--grid", "12", "--systems", "2", "--ritz", "20", "--steps", "30", "--batch", "4",
            "--channels", "4", "--pool-every", "10", "--pool-iters", "4", "--checkpoint-every", "10",
            "--threads", "1", "--workdir", str(tmp_path / "w")]
    full = CliRunner().invoke(app, args + ["--out", str(tmp_path / "full.pt")])
    assert full.exit_code == 0, full.output
    card = json.loads((tmp_path / "full.json").read_text())
    hist = card["loss_history_every_50"]
    assert card["final_loss"] < 1.0 and hist
    # interrupted at 20 steps then resumed: identical weights
    part = CliRunner().invoke(app, args + ["--workdir", str(tmp_path / "p"), "--stop-after", "20"])
    assert part.exit_code == 0, part.output
    assert "stopped after 20" in part.output
    res = CliRunner().invoke(app, args + ["--workdir", str(tmp_path / "p"), "--resume",
                                          "--out", str(tmp_path / "resumed.pt")])
    assert res.exit_code == 0, res.output
    a = loading.load_model(tmp_path / "full.pt").state_dict()
    b = loading.load_model(tmp_path / "resumed.pt").state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)



def _framed_laplacian_system(n, seed):
    """The 5-point Laplacian on n x n fluid cells framed by air (Dirichlet), with its grid
    geometry: a training system built without datagen."""
    from linsolve import AIR

    cells = np.full((n + 2, n + 2), AIR)
    cells[1:-1, 1:-1] = FLUID
    grid = Grid((n + 2, n + 2), cell_type=cells, unknowns=np.flatnonzero(cells == FLUID))
    return linsolve.LinearSystem(gallery.poisson2d(n), _b(n * n, seed), grid=grid)


def test_training_takes_given_systems_in_any_iterable_form():
    from linsolve.learned.dcdm.train import train

    systems = [_framed_laplacian_system(8, s) for s in range(2)]
    opts = dict(channels=4, ritz=12, steps=8, batch=3, pool_every=4, pool_iters=3, seed=3, progress=False)
    nested = train([systems], **opts)
    flat = train(iter(systems), **opts)  # a flat iterable of systems is one training set
    assert nested.steps_done == flat.steps_done == 8 and not nested.stopped
    assert nested.history == flat.history and len(nested.history) == 8
    for k, v in nested.model.state_dict().items():
        torch.testing.assert_close(v, flat.model.state_dict()[k], rtol=0, atol=0)
    assert nested.dim == 2 and nested.batches == [3] and np.isfinite(nested.final_loss)


def test_training_on_two_sizes_scales_the_batch_to_equal_cells():
    from linsolve.learned.dcdm.train import train

    run = train([[_framed_laplacian_system(6, 0)], [_framed_laplacian_system(14, 1)]], channels=4, ritz=8,
                steps=2, batch=16, pool_every=0, progress=False)
    # 8^2 and 16^2 cells: a quarter of the right-hand sides on the larger grid
    assert run.batches == [16, 4] and run.steps_done == 2


def test_training_needs_geometry_and_known_options():
    from linsolve.learned.dcdm.train import train

    good = _framed_laplacian_system(6, 0)
    plain = linsolve.LinearSystem(gallery.poisson2d(6), np.ones(36), grid=Grid((6, 6)))
    with pytest.raises(linsolve.ShapeError, match="no grid with cell types"):
        train([plain], steps=1, progress=False)
    with pytest.raises(linsolve.ShapeError, match="mixes grid shapes"):
        train([[good, _framed_laplacian_system(8, 0)]], steps=1, progress=False)
    with pytest.raises(linsolve.ShapeError, match="holds no systems"):
        train([[]], steps=1, progress=False)
    with pytest.raises(linsolve.ShapeError, match="expected a LinearSystem"):
        train([[good, gallery.poisson2d(6)]], steps=1, progress=False)
    with pytest.raises(linsolve.OptionError, match="loss must be one of 'paper', 'pcg'"):
        train([good], loss="nope", progress=False)
    with pytest.raises(linsolve.OptionError, match="arch must be one of"):
        train([good], arch="resnet", progress=False)
    with pytest.raises(linsolve.OptionError, match="steps must be an integer >= 1"):
        train([good], steps=0, progress=False)
    with pytest.raises(linsolve.OptionError, match="workdir"):
        train([good], resume=True, progress=False)


def test_measure_counts_iterations_on_held_out_systems():
    from linsolve.learned.dcdm.train import measure

    systems = [_framed_laplacian_system(16, s) for s in range(2)]
    row = measure("dcdm-2d", systems, rtol=1e-6)
    cg = [linsolve.make_solver("cg", rtol=1e-6).solve(s).iterations for s in systems]
    assert row["cg_iterations"] == float(np.median(cg)) and row["systems"] == 2
    assert 1 <= row["dcdm_iterations"] < row["cg_iterations"]  # the shipped multigrid network beats CG
    with pytest.raises(linsolve.ShapeError, match="at least one"):
        measure("dcdm-2d", [])


def test_training_command_refuses_bad_input_before_any_work(tmp_path):
    from typer.testing import CliRunner

    from datagen.dcdm_training import app

    for args, needle in ((["--loss", "nope"], "--loss"), (["--grid", "64,x"], "--grid"),
                         (["--measure-sizes", "0"], "--measure-sizes")):
        res = CliRunner().invoke(app, [*args, "--workdir", str(tmp_path / "w")])
        assert res.exit_code == 2 and needle in res.output, res.output
        assert not (tmp_path / "w").exists()


# --- weights ------------------------------------------------------------------------

def test_shipped_models_load_deterministically_with_cards():
    cards = loading.shipped_models()
    assert "dcdm-2d" in cards
    for name, card in cards.items():
        m1, m2 = loading.load_model(name), loading.load_model(name)
        for k, v in m1.state_dict().items():
            assert torch.equal(v, m2.state_dict()[k])
        assert card["sha256"] == loading.sha256(loading.WEIGHTS_DIR / f"{name}.pt")
        assert (loading.WEIGHTS_DIR / f"{name}.pt").stat().st_size < 2 * 2**20
        for key in ("training", "final_loss", "measured", "config"):
            assert key in card
        assert (loading.WEIGHTS_DIR / f"{name}.md").exists()


def test_default_model_solves_held_out_obstacle_system():
    fam = get_family("poisson_obstacles")(24, split="test")
    s = fam.assemble(fam.sample(1, np.random.default_rng(0))[0])
    res = linsolve.make_solver("dcdm", rtol=1e-6).solve(s)
    assert res.converged and res.relative_residual <= 1e-6
    assert res.info["model"] == "dcdm-2d"


def test_corrupt_and_wrong_weights_give_clear_errors(tmp_path):
    net = build_model({"dim": 2, "channels": 4})
    good = loading.save_model(net, tmp_path / "good.pt")
    assert loading.load_model(good).config["channels"] == 4
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a torch file at all")
    with pytest.raises(linsolve.SolverError, match="corrupt"):
        loading.load_model(junk)
    trunc = tmp_path / "trunc.pt"
    trunc.write_bytes(good.read_bytes()[:200])
    with pytest.raises(linsolve.SolverError, match="corrupt"):
        linsolve.make_solver("dcdm", model=str(trunc))
    blob = torch.load(good, weights_only=True)
    blob["state_dict"]["enc_in.weight"] = torch.zeros(4, 1, 5, 5)
    torch.save(blob, tmp_path / "shape.pt")
    with pytest.raises(linsolve.SolverError, match="enc_in.weight"):
        loading.load_model(tmp_path / "shape.pt")
    blob = torch.load(good, weights_only=True)
    del blob["state_dict"]["out.weight"]
    torch.save(blob, tmp_path / "missing.pt")
    with pytest.raises(linsolve.SolverError, match="missing"):
        loading.load_model(tmp_path / "missing.pt")
    torch.save({"format": "something-else"}, tmp_path / "other.pt")
    with pytest.raises(linsolve.SolverError, match="not a DCDM weights file"):
        loading.load_model(tmp_path / "other.pt")
    with pytest.raises(linsolve.SolverError, match="does not exist"):
        loading.load_model(tmp_path / "nope.pt")
    with pytest.raises(linsolve.SolverError, match="unknown DCDM model"):
        linsolve.make_solver("dcdm", model="no-such-model")
    three = loading.save_model(build_model({"dim": 3, "channels": 4}), tmp_path / "three.pt")
    with pytest.raises(linsolve.SolverError, match="3-D"):
        linsolve.make_solver("dcdm", model=str(three)).solve(A2, _b(N * N), grid=GRID)


def test_altered_shipped_weights_detected(tmp_path, monkeypatch):
    src = loading.WEIGHTS_DIR
    for f in src.glob("dcdm-2d.*"):
        (tmp_path / f.name).write_bytes(f.read_bytes())
    data = bytearray((tmp_path / "dcdm-2d.pt").read_bytes())
    data[-10] ^= 0xFF
    (tmp_path / "dcdm-2d.pt").write_bytes(bytes(data))
    monkeypatch.setattr(loading, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(linsolve.SolverError, match="SHA-256"):
        loading.load_model("dcdm-2d")


def test_sym_mg_network_is_spd_and_dcdm_with_it_is_pcg():
    """The sym-mg network is linear and symmetric positive semi-definite in the residual,
    so DCDM with it must reproduce preconditioned CG's iterates (SciPy cg with M = f)."""
    torch.manual_seed(0)
    fam, s = _obstacle_system(10, seed=2)
    net = build_model({"arch": "sym-mg", "dim": 2, "channels": 4}).double()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))  # away from the identity initialisation
    geo = geometry_channels(torch.from_numpy(np.asarray(s.grid.cell_type))[None], torch.float64)

    def M(v):
        with torch.no_grad():
            g = torch.from_numpy(s.grid.to_grid(np.asarray(v, dtype=np.float64).ravel()))[None, None]
            return s.grid.from_grid(net(g, geo)[0, 0].numpy())

    n = s.A.shape[0]
    Md = np.column_stack([M(e) for e in np.eye(n)])
    np.testing.assert_allclose(Md, Md.T, atol=1e-12 * np.abs(Md).max())
    assert np.linalg.eigvalsh(Md).min() > 0
    ours, ref = [], []
    linsolve.make_solver("dcdm", model=net, rtol=1e-10, safeguard=0.0,
                         callback=lambda x: ours.append(x.copy())).solve(s)
    spla.cg(s.A, s.b, rtol=1e-10, M=spla.LinearOperator((n, n), matvec=M),
            callback=lambda x: ref.append(x.copy()))
    k = min(len(ours), len(ref), 12)
    assert k >= 5
    for a, c in zip(ours[:k], ref[:k], strict=True):
        assert np.linalg.norm(a - c) <= 1e-7 * np.linalg.norm(c)


# --- the multigrid-cycle network (mg-cycle, the shipped default) ------------------------

def _dense(fn, shape, dtype=torch.float64):
    """Columns fn(e_j) over every cell of ``shape`` (batch 1)."""
    m = int(np.prod(shape))
    basis = torch.eye(m, dtype=dtype).reshape(m, 1, *shape)
    return fn(basis).reshape(m, m).T.numpy()


def _aggregation(shape):
    """Piecewise-constant P (fine cells x coarse cells) of 2^dim aggregation, odd sizes padded."""
    import scipy.sparse as sp

    coarse = tuple((s + 1) // 2 for s in shape)
    fine = np.indices(shape).reshape(len(shape), -1)
    cols = np.ravel_multi_index(tuple(fine // 2), coarse)
    return sp.csr_matrix((np.ones(fine.shape[1]), (np.arange(fine.shape[1]), cols)),
                         shape=(fine.shape[1], int(np.prod(coarse))))


@pytest.mark.parametrize("dim,n", [(2, 11), (3, 7)])
def test_mg_cycle_levels_are_the_family_matrix_and_exact_galerkin(dim, n):
    from linsolve.learned.dcdm.mgcycle import GridLevel

    fam, s = _obstacle_system(n, dim, seed=3)
    ct = np.asarray(s.grid.cell_type)
    geo = geometry_channels(torch.from_numpy(ct)[None], torch.float64)
    lev = GridLevel.from_geometry(geo)
    full = _dense(lambda u: lev.apply(u.reshape(-1, 1, *ct.shape)), ct.shape)
    fluid = np.flatnonzero(ct.reshape(-1) == FLUID)
    # level 0 is the assembled pressure matrix on the fluid cells and nothing elsewhere
    np.testing.assert_array_equal(full[np.ix_(fluid, fluid)], s.A.toarray())
    others = np.setdiff1d(np.arange(full.shape[0]), fluid)
    assert not full[others].any() and not full[:, others].any()
    for _ in range(2):  # two coarsenings: gold reference P^T A P with SciPy
        P = _aggregation(lev.shape)
        coarse = lev.coarsen()
        got = _dense(lambda u, c=coarse: c.apply(u.reshape(-1, 1, *c.shape)), coarse.shape)
        np.testing.assert_allclose(got, (P.T @ full @ P), rtol=0, atol=1e-12)
        np.testing.assert_array_equal(coarse.mask.reshape(-1).numpy() > 0, np.diag(got) > 0)
        lev, full = coarse, got


def _shipped_double(name):
    import copy

    return copy.deepcopy(loading.load_model(name)).double()


@pytest.mark.parametrize("name,dim,n", [("dcdm-2d", 2, 40), ("dcdm-3d", 3, 12)])
def test_shipped_mg_cycle_is_linear_symmetric_positive_definite(name, dim, n):
    net = _shipped_double(name)
    assert net.config["arch"] == "mg-cycle"
    fam, s = _obstacle_system(n, dim, seed=5)
    ct = np.asarray(s.grid.cell_type)
    geo = geometry_channels(torch.from_numpy(ct)[None], torch.float64)
    levels = net.geometry_gains(geo)
    assert len(levels) >= 3  # the W-cycle's inner recursion is exercised
    fluid = np.flatnonzero(ct.reshape(-1) == FLUID)
    with torch.no_grad():
        M = _dense(lambda u: net(u.reshape(-1, 1, *ct.shape), gains=levels), ct.shape)
        rng = np.random.default_rng(0)
        u, v = (torch.from_numpy(rng.standard_normal((1, 1, *ct.shape))) for _ in range(2))
        lhs = net(2.5 * u - 0.75 * v, gains=levels)
        rhs = 2.5 * net(u, gains=levels) - 0.75 * net(v, gains=levels)
    torch.testing.assert_close(lhs, rhs, rtol=1e-10, atol=1e-12)
    others = np.setdiff1d(np.arange(M.shape[0]), fluid)
    assert not M[others].any() and not M[:, others].any()  # no input from or output to non-fluid cells
    Mf = M[np.ix_(fluid, fluid)]
    np.testing.assert_allclose(Mf, Mf.T, rtol=0, atol=1e-12 * np.abs(Mf).max())
    assert np.linalg.eigvalsh(Mf).min() > 0
    # and a useful preconditioner: M A is far better conditioned than A
    Ad = s.A.toarray()
    L = np.linalg.cholesky(Ad)
    ev = np.linalg.eigvalsh(L.T @ Mf @ L)  # the spectrum of M A
    lam = np.linalg.eigvalsh(Ad)
    assert ev[0] > 0 and ev[-1] / ev[0] < 0.1 * lam[-1] / lam[0]


def test_dcdm_with_mg_cycle_is_pcg_with_n_orth_2():
    net = _shipped_double("dcdm-2d")
    fam, s = _obstacle_system(20, seed=6)
    geo = geometry_channels(torch.from_numpy(np.asarray(s.grid.cell_type))[None], torch.float64)
    levels = net.geometry_gains(geo)

    def M(v):
        with torch.no_grad():
            g = torch.from_numpy(s.grid.to_grid(np.asarray(v, dtype=np.float64).ravel()))[None, None]
            return s.grid.from_grid(net(g, gains=levels)[0, 0].numpy())

    n = s.A.shape[0]
    ours, ref = [], []
    res = linsolve.make_solver("dcdm", model=net, rtol=1e-10, n_orth=2,
                               callback=lambda x: ours.append(x.copy())).solve(s)
    spla.cg(s.A, s.b, rtol=1e-10, M=spla.LinearOperator((n, n), matvec=M),
            callback=lambda x: ref.append(x.copy()))
    # a linear SPD network switches the nonlinear-network safeguard off: DCDM is PCG
    assert res.converged and res.info["fallback_steps"] == 0 and res.info["safeguard"] == 0.0
    k = min(len(ours), len(ref))
    assert k >= 5 and abs(len(ours) - len(ref)) <= 1
    for a, c in zip(ours[:k], ref[:k], strict=True):
        # the network runs in float32 inside the solver: agreement to single precision
        assert np.linalg.norm(a - c) <= 1e-4 * np.linalg.norm(c)


@pytest.mark.parametrize("dim,sizes", [(2, (32, 64)), (3, (12, 24))])
def test_shipped_model_iterations_against_cg_and_size_independent(dim, sizes):
    its = []
    for n in sizes:
        fam = get_family("poisson_obstacles")(n, dim=dim, split="test")
        s = fam.assemble(fam.sample(1, np.random.default_rng(2))[0])
        res = linsolve.make_solver("dcdm", rtol=1e-6).solve(s)  # shipped default, n_orth=2
        cg = linsolve.make_solver("cg", rtol=1e-6).solve(s)
        assert res.converged and cg.converged and res.info["model"] == f"dcdm-{dim}d"
        assert res.iterations <= 0.3 * cg.iterations
        its.append(res.iterations)
    # doubling the grid roughly doubles CG's count; a multigrid preconditioner's barely moves
    assert its[1] <= 1.5 * its[0]


def test_mg_cycle_config_errors_and_training(tmp_path):
    from typer.testing import CliRunner

    from datagen.dcdm_training import app

    with pytest.raises(ValueError, match="gamma"):
        build_model({"arch": "mg-cycle", "gamma": 3})
    args = ["--arch", "mg-cycle", "--loss", "pcg", "--loss-steps", "3", "--dim", "2", "--grid", "16",
            "--systems", "2", "--ritz", "20", "--steps", "6", "--batch", "4", "--lr", "0.01", "--pool-every", "0",
            "--threads", "1", "--workdir", str(tmp_path / "w"), "--out", str(tmp_path / "m.pt")]
    out = CliRunner().invoke(app, args)
    assert out.exit_code == 0, out.output
    card = json.loads((tmp_path / "m.json").read_text())
    assert card["config"]["arch"] == "mg-cycle" and card["training"]["loss"] == "pcg (3 steps)"
    assert card["final_loss"] < 0  # log convergence factor: the cycle reduces the residual
    net = loading.load_model(tmp_path / "m.pt")
    assert set(net.state_dict()) == {"kernel", "log_coarse_scale"}
    bad = CliRunner().invoke(app, args + ["--loss", "nope"])
    assert bad.exit_code != 0 and "--loss" in bad.output


@pytest.mark.parametrize("dim", [2, 3])
def test_mg_cycle_correlation_equals_torch_convolution(dim):
    from torch.nn import functional as F

    from linsolve.learned.dcdm.mgcycle import MultigridCycle

    g = torch.Generator().manual_seed(dim)
    v = torch.randn(2, 1, *((7, 6, 5)[:dim]), generator=g, dtype=torch.float64)
    K = torch.randn((3,) * dim, generator=g, dtype=torch.float64)
    conv = F.conv2d if dim == 2 else F.conv3d
    torch.testing.assert_close(MultigridCycle._correlate(v, K), conv(v, K[None, None], padding=1),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("grid,match", [
    (linsolve.Grid((6, 7), unknowns=np.arange(36) + 7), "in \\[0, 42\\)"),
    (linsolve.Grid((6, 7), unknowns=np.r_[np.arange(35), -1]), "in \\[0, 42\\)"),
    (linsolve.Grid((6, 7), unknowns=np.r_[np.arange(35), 0]), "more than once"),
    (linsolve.Grid((6, 6), cell_type=np.full((6, 6), 7)), "cell types are"),
])
def test_dcdm_bad_grid_geometry_is_a_shape_error(grid, match):
    # out-of-range, negative or repeated unknowns and unknown cell types are ShapeErrors
    # (an unknown cell type taken for a wall would cost 641 iterations instead of 8 on a
    # 12 x 12 Dirichlet problem)
    pytest.importorskip("torch")
    with pytest.raises(linsolve.ShapeError, match=match):
        linsolve.make_solver("dcdm").solve(gallery.poisson2d(6), np.ones(36), grid=grid)


def test_dcdm_error_never_grows_with_a_geometry_blind_to_the_dirichlet_boundary():
    # cell_type without AIR tells the network the box is closed (pure Neumann) while the
    # matrix is Dirichlet: the network's directions carry a huge near-constant part. The
    # product with A is taken after the orthogonalisation, so the line search stays exact
    # and the A-norm of the error never grows.
    from linsolve import FLUID, Grid

    A, _, _ = poisson_problem(8)
    b = np.random.default_rng(0).standard_normal(A.shape[0])
    xref = np.linalg.solve(A.toarray(), b)
    grid = Grid((8, 8), cell_type=np.full((8, 8), FLUID))
    xs = []
    res = linsolve.make_solver("dcdm", rtol=1e-8, callback=xs.append).solve(A, b, grid=grid)
    assert res.converged, res
    assert np.linalg.norm(res.x - xref) <= 1e-6 * np.linalg.norm(xref)
    errs = [np.sqrt((x - xref) @ (A @ (x - xref))) for x in [np.zeros_like(b), *xs]]
    # an exact line search along any direction cannot raise the A-norm of the error
    assert all(e1 <= e0 * (1 + 1e-9) for e0, e1 in zip(errs, errs[1:], strict=False))
    # the recurrence residual is the true one
    for x, r in zip(xs, res.residual_norms, strict=True):
        assert r == pytest.approx(np.linalg.norm(b - A @ x), rel=1e-6, abs=1e-12)


def test_dcdm_device_torch_cannot_use_is_an_option_error_at_construction():
    # the device is checked when the solver is built, not by torch's RuntimeError or
    # AssertionError from inside the first network call
    torch = pytest.importorskip("torch")
    with pytest.raises(linsolve.OptionError, match="not a torch device"):
        linsolve.make_solver("dcdm", device="banana")
    with pytest.raises(linsolve.OptionError, match="CUDA"):
        linsolve.make_solver("dcdm", device="cuda:99")
    if not torch.cuda.is_available():
        with pytest.raises(linsolve.OptionError, match="CUDA is not available"):
            linsolve.make_solver("dcdm", device="cuda")
    from linsolve import Grid

    A, b, xref = poisson_problem(8)
    res = linsolve.make_solver("dcdm", device="cpu:0", rtol=1e-10).solve(A, b, grid=Grid((8, 8)))
    assert res.converged and np.linalg.norm(res.x - xref) <= 1e-8 * np.linalg.norm(xref)


@pytest.mark.parametrize("shape", [(8.5, 8), (8, 7.9), ("8", 8), (True, 8), (None, 8), 8])
def test_grid_shape_that_is_not_integers_is_a_shape_error(shape):
    # int() would truncate 8.5 to 8 and a DCDM solve run on a grid the caller never described
    from linsolve import Grid

    with pytest.raises(linsolve.ShapeError, match="grid shape"):
        Grid(shape)
    assert Grid((8.0, np.int64(8))).shape == (8, 8)

"""GCRO-DR against independent references: a dense GMRES(m) for k = 0, a dense
harmonic-Ritz eigen-solve, the recycled-space invariants B U = C, C^T C = I across matrix
and preconditioner changes, and the iteration savings recycling exists for."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg as sla
import scipy.sparse as sp
import scipy.sparse.linalg as spla

import linsolve
from linsolve import OptionError, gallery


def _dense_gmres(A, b, x0, m, cycles):
    """Textbook restarted GMRES(m) (MGS Arnoldi, dense least squares), the gold reference."""
    x = x0.copy()
    norms = []
    for _ in range(cycles):
        r = b - A @ x
        beta = np.linalg.norm(r)
        V = np.zeros((len(b), m + 1))
        H = np.zeros((m + 1, m))
        V[:, 0] = r / beta
        for j in range(m):
            w = A @ V[:, j]
            for i in range(j + 1):
                H[i, j] = V[:, i] @ w
                w = w - H[i, j] * V[:, i]
            H[j + 1, j] = np.linalg.norm(w)
            V[:, j + 1] = w / H[j + 1, j]
            e = np.zeros(j + 2)
            e[0] = beta
            y = np.linalg.lstsq(H[:j + 2, :j + 1], e, rcond=None)[0]
            norms.append(np.linalg.norm(e - H[:j + 2, :j + 1] @ y))
        x = x + V[:, :m] @ y
    return x, np.array(norms)


@pytest.fixture
def cd():
    return gallery.convection_diffusion2d(10, peclet=30.0)


def test_k0_reproduces_gmres_iterates(cd):
    A = cd.toarray()
    b = np.random.default_rng(0).standard_normal(A.shape[0])
    m, cycles = 12, 3
    s = linsolve.make_solver("gcrodr", restart=m, recycle=0, rtol=1e-15, maxiter=m * cycles)
    res = s.solve(cd, b)
    x_ref, norms_ref = _dense_gmres(A, b, np.zeros_like(b), m, cycles)
    assert not res.converged and res.iterations == m * cycles
    np.testing.assert_allclose(res.x, x_ref, rtol=1e-8, atol=1e-10 * np.linalg.norm(x_ref))
    np.testing.assert_allclose(res.residual_norms, norms_ref, rtol=1e-7)
    # and SciPy's GMRES after the same number of full cycles
    x_sp, _ = spla.gmres(cd, b, restart=m, maxiter=cycles, rtol=0.0, atol=0.0)
    np.testing.assert_allclose(res.x, x_sp, rtol=1e-7, atol=1e-9 * np.linalg.norm(x_sp))


def test_harmonic_ritz_values_match_dense_eigensolve(cd):
    A = cd.toarray()
    n = A.shape[0]
    b = np.random.default_rng(1).standard_normal(n)
    m, k = 10, 4
    s = linsolve.make_solver("gcrodr", restart=m, recycle=k, rtol=1e-15, maxiter=m)
    s.solve(cd, b)  # exactly one cycle: plain GMRES(m), then the harmonic Ritz step
    # Independent basis of K_m(A, b) by QR of the Krylov matrix.
    K = np.empty((n, m))
    K[:, 0] = b / np.linalg.norm(b)
    for j in range(1, m):
        K[:, j] = A @ K[:, j - 1]
        K[:, j] /= np.linalg.norm(K[:, j])
    V = np.linalg.qr(K)[0]
    AV = A @ V
    theta = sla.eigvals(AV.T @ AV, AV.T @ V)
    got = np.asarray(s.ritz_values)
    assert len(got) in (k, k + 1)  # a complex pair at the cut adds one vector
    ref = theta[np.argsort(np.abs(theta))][:len(got)]

    def key(z):  # conjugate pairs compare as (real part, |imaginary part|)
        return np.sort(z.real), np.sort(np.abs(z.imag))

    for a, r in zip(key(got), key(ref), strict=True):
        np.testing.assert_allclose(a, r, rtol=1e-6, atol=1e-8 * np.abs(ref).max())


def test_recycled_ritz_vectors_are_eigenvectors_for_full_space():
    """With the whole space in one cycle, harmonic Ritz values are the eigenvalues."""
    rng = np.random.default_rng(2)
    n = 12
    A = np.diag(np.arange(1.0, n + 1)) + 0.1 * np.triu(rng.standard_normal((n, n)), 1)
    s = linsolve.make_solver("gcrodr", restart=n + 2, recycle=3, rtol=1e-14)
    s.solve(A, rng.standard_normal(n))
    np.testing.assert_allclose(np.sort(np.abs(s.ritz_values)), [1.0, 2.0, 3.0], rtol=1e-6)


def test_repeated_system_converges_much_faster_second_time():
    A = gallery.poisson2d(24)
    b = np.random.default_rng(3).standard_normal(A.shape[0])
    s = linsolve.make_solver("gcrodr", restart=30, recycle=10, rtol=1e-8)
    first = s.solve(A, b)
    second = s.solve(A, b)
    assert first.converged and second.converged
    assert second.iterations <= 0.6 * first.iterations
    warm = linsolve.make_solver("gcrodr", restart=30, recycle=10, rtol=1e-8, warm_start=True)
    warm.solve(A, b)
    again = warm.solve(A, b)
    assert again.converged and again.iterations == 0


def _invariants(s, A, M_inv_rows):
    """C has orthonormal rows and B U = A M^-1 U = C for the current matrix and PC."""
    C, U = s._C, s._U
    np.testing.assert_allclose(C @ C.T, np.eye(C.shape[0]), atol=1e-10)
    BU = (A @ M_inv_rows(U).T).T
    np.testing.assert_allclose(BU, C, atol=1e-8 * np.abs(C).max())


@pytest.mark.parametrize("pc", ["jacobi", "ilu"])
def test_recycled_space_survives_matrix_and_preconditioner_change(pc):
    A1 = gallery.variable_diffusion2d(16, contrast=50.0, seed=0)
    A2 = gallery.variable_diffusion2d(16, contrast=50.0, seed=0) + sp.diags(
        np.random.default_rng(4).uniform(0, 50.0, A1.shape[0]))
    b = np.random.default_rng(5).standard_normal(A1.shape[0])
    s = linsolve.make_solver("gcrodr", restart=20, recycle=6, rtol=1e-10, pc=pc)
    assert s.solve(A1, b).converged
    r2 = s.solve(A2, b)  # new matrix, so a rebuilt preconditioner: C = QR(A2 M2^-1 U)
    assert r2.converged and r2.info["recycle_matvecs"] > 0
    M2 = s.preconditioner(linsolve.Operator(A2))
    assert np.linalg.norm(b - A2 @ r2.x) <= 1e-10 * np.linalg.norm(b) * (1 + 1e-6)
    _invariants(s, A2, lambda U: np.stack([M2.apply(u) for u in U]))
    cold = linsolve.make_solver("gcrodr", restart=20, recycle=6, rtol=1e-10, pc=pc).solve(A2, b)
    assert r2.iterations <= cold.iterations


def test_left_preconditioning_and_recycling():
    A = gallery.convection_diffusion2d(16, peclet=20.0)
    rng = np.random.default_rng(6)
    s = linsolve.make_solver("gcrodr", restart=20, recycle=6, rtol=1e-9, pc="ilu", pc_side="left")
    for _ in range(3):
        b = rng.standard_normal(A.shape[0])
        res = s.solve(A, b)
        assert res.converged
        assert np.linalg.norm(b - A @ res.x) <= 1e-9 * np.linalg.norm(b) * (1 + 1e-6)
    assert res.info["pc_side"] == "left" and res.info["recycled_dim"] >= 6


def test_recycling_beats_gmres_on_a_slowly_changing_sequence():
    base = gallery.convection_diffusion2d(20, peclet=10.0)
    rng = np.random.default_rng(7)
    n = base.shape[0]
    systems = [(base + sp.diags(rng.uniform(0, 0.2, n) * 400), rng.standard_normal(n)) for _ in range(6)]
    rec = linsolve.make_solver("gcrodr", restart=30, recycle=10, rtol=1e-8)
    plain = linsolve.make_solver("gmres", restart=30, rtol=1e-8)
    it_rec = [rec.solve(A, b).iterations for A, b in systems]
    it_gm = [plain.solve(A, b).iterations for A, b in systems]
    assert sum(it_rec[1:]) < 0.8 * sum(it_gm[1:])


def test_indefinite_helmholtz_sequence():
    A = gallery.helmholtz2d(16, k=12.0)
    rng = np.random.default_rng(8)
    s = linsolve.make_solver("gcrodr", restart=30, recycle=10, rtol=1e-8)
    its = []
    for _ in range(3):
        b = rng.standard_normal(A.shape[0])
        res = s.solve(A, b)
        assert res.converged
        its.append(res.iterations)
    assert its[-1] < its[0]


@pytest.mark.parametrize("opts", [{"orthog": "cgs2"}, {"orthog": "ifneeded"}, {"update": "solve"}, {"update_every": 1},
                                  {"which": "largest"}, {"recycle_across": False}])
def test_variants_converge_to_the_dense_solution(opts):
    A = gallery.convection_diffusion2d(14, peclet=25.0)
    rng = np.random.default_rng(11)
    s = linsolve.make_solver("gcrodr", restart=20, recycle=6, rtol=1e-10, **opts)
    for _ in range(2):
        b = rng.standard_normal(A.shape[0])
        res = s.solve(A, b)
        assert res.converged
        np.testing.assert_allclose(res.x, np.linalg.solve(A.toarray(), b), rtol=1e-7, atol=1e-9)


def test_options_validated():
    with pytest.raises(OptionError, match="recycle"):
        linsolve.make_solver("gcrodr", restart=10, recycle=9)
    with pytest.raises(OptionError, match="pc_side"):
        linsolve.make_solver("gcrodr", pc_side="middle")
    with pytest.raises(OptionError, match="restart"):
        linsolve.make_solver("gcrodr", restart=1)
    with pytest.raises(OptionError, match="which"):
        linsolve.make_solver("gcrodr", which="median")
    with pytest.raises(OptionError, match="orthog"):
        linsolve.make_solver("gcrodr", orthog="householder")
    with pytest.raises(OptionError, match="update"):
        linsolve.make_solver("gcrodr", update="never")
    for bad in (0, 1.5, True):
        with pytest.raises(OptionError, match="update_every"):
            linsolve.make_solver("gcrodr", update_every=bad)


def test_update_interval_grows_while_settled_and_resets_on_a_move():
    from linsolve.recycling.gcrodr import SETTLE

    s = linsolve.make_solver("gcrodr", update_every=8)
    base = np.array([0.1, 0.2 + 0.1j, 0.2 - 0.1j, 0.5])
    gaps = []
    for change in (0.0, 0.5 * SETTLE, 0.0, 0.0, 0.0, 3 * SETTLE, 0.0):
        s.ritz_values = base * (1 + change)
        s._reschedule(base, 8)
        gaps.append(s._gap)
    assert gaps == [2, 4, 8, 8, 8, 1, 2]
    s1 = linsolve.make_solver("gcrodr", update_every=1)
    s1.ritz_values = base
    s1._reschedule(base, 1)
    assert s1._gap == 1


def test_default_schedule_keeps_iterations_with_fewer_updates():
    """On a sorted sequence of similar systems the default schedule needs at most 5% more
    iterations than updating after every cycle, with at most 60% of the updates (here 20 of 43)."""
    from datagen.family import get_family
    from linsolve.recycling.ordering import order_systems

    fam = get_family("darcy")(grid=24, stencil="skr")
    ps = fam.sample(8, np.random.default_rng(3))
    systems = [fam.assemble(p) for p in ps]
    order = order_systems(np.stack([fam.features(p) for p in ps]), "greedy")
    out = {}
    for every in (1, 8):
        s = linsolve.make_solver("gcrodr", pc="jacobi", restart=20, recycle=8, rtol=1e-8, warm_start=True,
                                 update_every=every)
        its = updates = 0
        for i in order:
            res, marks = _update_schedule(s, systems[i].A, systems[i].b)
            assert res.converged
            its += res.iterations
            updates += sum(marks)
        out[every] = (its, updates)
    assert out[8][0] <= 1.05 * out[1][0] and out[8][1] <= 0.6 * out[1][1]


@pytest.mark.petsc
@pytest.mark.parametrize("pc", ["bjacobi", "asm", "ilu"])
def test_petsc_preconditioners_and_petsc_matrix(pc, petsc):
    from linsolve.petsc_support.utils import csr_to_aij

    A = gallery.convection_diffusion2d(16, peclet=20.0)
    b = np.random.default_rng(9).standard_normal(A.shape[0])
    s = linsolve.make_solver("gcrodr", restart=20, recycle=6, rtol=1e-9, backend="petsc", pc=pc)
    r1 = s.solve(csr_to_aij(A), b)
    r2 = s.solve(A, b + 0.1)
    for r, rhs in ((r1, b), (r2, b + 0.1)):
        assert r.converged
        assert np.linalg.norm(rhs - A @ r.x) <= 1e-9 * np.linalg.norm(rhs) * (1 + 1e-6)


@pytest.mark.petsc
def test_python_ksp_from_the_options_database(petsc):
    from linsolve.petsc_support.utils import csr_to_aij

    A = gallery.convection_diffusion2d(16, peclet=20.0)
    Am = csr_to_aij(A)
    ksp = petsc.KSP().create(comm=petsc.COMM_SELF)
    ksp.setOptionsPrefix("gcrodrtest_")
    opts = petsc.Options("gcrodrtest_")
    for k, v in {"ksp_type": "python", "ksp_python_type": "linsolve.petsc_support.python_ksp.GCRODR",
                 "ksp_gcrodr_restart": 20, "ksp_gcrodr_recycle": 6, "ksp_rtol": 1e-9, "pc_type": "jacobi",
                 "ksp_pc_side": "right"}.items():
        opts[k] = v
    ksp.setOperators(Am)
    ksp.setFromOptions()
    assert ksp.getType() == "python"
    seen = []
    ksp.setMonitor(lambda k, its, rnorm: seen.append((its, rnorm)))
    rng = np.random.default_rng(10)
    its = []
    for _ in range(2):
        b = rng.standard_normal(A.shape[0])
        bv, xv = petsc.Vec().createWithArray(b.copy()), Am.createVecRight()
        seen.clear()
        ksp.solve(bv, xv)
        assert ksp.getConvergedReason() > 0
        x = xv.getArray().copy()
        assert np.linalg.norm(b - A @ x) <= 1e-9 * np.linalg.norm(b) * (1 + 1e-6)
        n_it = ksp.getIterationNumber()
        assert [s[0] for s in seen] == list(range(n_it + 1))  # monitor called every iteration
        assert seen[-1][1] <= 1e-9 * np.linalg.norm(b) * (1 + 1e-6)
        its.append(n_it)
    assert its[1] < its[0]  # the context recycles across KSPSolve calls
    ksp.setTolerances(rtol=1e-14, max_it=3)
    ksp.solve(bv, xv)
    R = petsc.KSP.ConvergedReason
    assert ksp.getConvergedReason() == (getattr(R, "DIVERGED_MAX_IT", None) or R.DIVERGED_ITS)
    assert ksp.getIterationNumber() == 3
    # new values in the same Mat: the recycled space is re-fitted and the answer is right
    A2 = (A + sp.identity(A.shape[0]) * 5.0).tocsr()
    Am.setValuesCSR(A2.indptr, A2.indices, A2.data)
    Am.assemble()
    ksp.setOperators(Am)
    ksp.setTolerances(rtol=1e-9, max_it=10000)
    ksp.solve(bv, xv)
    assert ksp.getConvergedReason() > 0
    assert np.linalg.norm(b - A2 @ xv.getArray()) <= 1e-9 * np.linalg.norm(b) * (1 + 1e-6)


def test_orthonormalise_cholesky_and_rank_revealing_paths():
    from linsolve.recycling.gcrodr import _orthonormalise

    rng = np.random.default_rng(12)
    U = rng.standard_normal((5, 200))
    B = rng.standard_normal((200, 200)) + 20 * np.eye(200)
    for BU, rank in ((U @ B.T, 5), (np.vstack([(U @ B.T)[:4], (U @ B.T)[0]]), 4)):  # full, then rank 4
        C, Un = _orthonormalise(BU, U if rank == 5 else np.vstack([U[:4], U[0]]))
        assert C.shape[0] == rank
        np.testing.assert_allclose(C @ C.T, np.eye(rank), atol=1e-12)
        np.testing.assert_allclose(Un @ B.T, C, atol=1e-10)


def test_orthonormalise_one_pass_when_nearly_orthonormal():
    """A slightly changed matrix leaves B U nearly orthonormal: one Cholesky QR pass must
    already give C^T C = I to rounding, and B U = C must still hold."""
    from linsolve.recycling.gcrodr import _orthonormalise

    rng = np.random.default_rng(13)
    n, k = 400, 6
    C0 = np.linalg.qr(rng.standard_normal((n, k)))[0].T
    B = np.eye(n) + 1e-2 * rng.standard_normal((n, n)) / np.sqrt(n)
    BU = C0 + 0.05 * rng.standard_normal((k, n)) / np.sqrt(n)  # B U for some U0 with B U0 = BU
    U0 = np.linalg.solve(B, BU.T).T
    C, Un = _orthonormalise(BU.copy(), U0)
    np.testing.assert_allclose(C @ C.T, np.eye(k), atol=1e-14)
    np.testing.assert_allclose(Un @ B.T, C, atol=1e-12)
    _, R = np.linalg.qr(BU.T)
    np.testing.assert_allclose(np.abs(C), np.abs(np.linalg.solve(R.T, BU)), atol=1e-12)  # the same QR


def test_distributed_fallback_drops_dependent_directions():
    """The rank-revealing fallback for rows split over processes (Gram matrix of B U): for a
    B U with a dependent row it keeps the independent directions, orthonormal, with B U = C
    still holding. Run on one process, where the global sums are the local ones."""
    from linsolve.petsc_support.parallel import serial
    from linsolve.recycling.gcrodr import _orthonormalise, _orthonormalise_distributed

    rng = np.random.default_rng(14)
    n, k = 300, 5
    B = np.eye(n) + 0.3 * rng.standard_normal((n, n)) / np.sqrt(n)
    U0 = rng.standard_normal((k, n))
    U0[3] = 2.0 * U0[1] - U0[0]  # B U has rank k - 1
    BU = U0 @ B.T
    C, Un = _orthonormalise_distributed(BU, U0, serial(n))
    assert C.shape == (k - 1, n)
    np.testing.assert_allclose(C @ C.T, np.eye(k - 1), atol=1e-13)
    np.testing.assert_allclose(Un @ B.T, C, atol=1e-10)
    # the same span as the serial rank-revealing QR
    Cs, _ = _orthonormalise(BU, U0)
    np.testing.assert_allclose(np.linalg.svd(C @ Cs.T, compute_uv=False), np.ones(k - 1), atol=1e-10)


@pytest.mark.petsc
def test_block_products_and_placed_petsc_pc_match_references(petsc):
    """MatOps.block, apply_block and pc_into (Vecs placed on the caller's arrays) against
    SciPy products and PETSc's own PCApply on copies."""
    from linsolve.core.operator import Operator
    from linsolve.petsc_support.utils import csr_to_aij, vec_from_array
    from linsolve.recycling.recycle_ops import MatOps, PetscPC, apply_block, pc_into

    A = gallery.convection_diffusion2d(12, peclet=10.0)
    rng = np.random.default_rng(14)
    X = rng.standard_normal((5, A.shape[0]))
    X0 = X.copy()
    np.testing.assert_allclose(MatOps(Operator(A)).block(X), (A @ X.T).T, rtol=1e-13, atol=1e-13)
    # a PETSc matrix, and a Fortran-ordered block whose rows are not contiguous
    np.testing.assert_allclose(MatOps(Operator(csr_to_aij(A))).block(np.asfortranarray(X)), (A @ X.T).T,
                               rtol=1e-13, atol=1e-13)
    op = Operator(A)
    M = PetscPC(op, "ilu")
    ref = np.empty_like(X)
    for x, y in zip(X, ref, strict=True):  # PCApply on separate Vecs holding copies
        xv, yv = vec_from_array(x.copy()), vec_from_array(np.zeros_like(x))
        M.pc.apply(xv, yv)
        y[:] = yv.getArray()
    np.testing.assert_array_equal(apply_block(M, X), ref)
    out = np.empty(A.shape[0])
    ro = X[1].copy()
    ro.flags.writeable = False  # cannot be placed: goes through the PC's own buffer
    np.testing.assert_array_equal(pc_into(M, ro, out), ref[1])
    np.testing.assert_array_equal(M.apply(X[3]), ref[3])
    np.testing.assert_array_equal(X, X0)  # placed inputs are left as they were


def _textbook_gcrodr(A, b, m, k, cycles, schedule=None):
    """GCRO-DR(m, k) as written in Parks et al. (2006), Sec. 2, in dense NumPy with modified
    Gram-Schmidt: the gold reference for the solver's iterates with recycling. Returns x after
    each cycle and the projection of the residual on the new C that starts the next one. The
    recycled space is replaced after the cycles whose ``schedule`` entry is true (all by
    default) and kept in the others."""
    n = len(b)
    x = np.zeros(n)
    r = b.copy()
    out, C, U = [], None, None

    def arnoldi(v0, steps, C):
        V = np.zeros((n, steps + 1))
        H = np.zeros((steps + 1, steps))
        Bk = np.zeros((0 if C is None else C.shape[1], steps))
        V[:, 0] = v0 / np.linalg.norm(v0)
        for j in range(steps):
            w = A @ V[:, j]
            if C is not None:
                Bk[:, j] = C.T @ w
                w = w - C @ Bk[:, j]
            for i in range(j + 1):
                H[i, j] = V[:, i] @ w
                w = w - H[i, j] * V[:, i]
            H[j + 1, j] = np.linalg.norm(w)
            V[:, j + 1] = w / H[j + 1, j]
        return V, H, Bk

    def harmonic(Gm, WV):
        theta, Z = sla.eig(Gm.T @ Gm, Gm.T @ WV)
        assert np.allclose(theta.imag, 0)  # SPD A: real harmonic Ritz values
        return Z[:, np.argsort(np.abs(theta.real))[:k]].real

    for cyc in range(cycles):
        if C is None:
            V, H, _ = arnoldi(r, m, None)
            Vh, W, Gm = V[:, :m], V, H
            WV = np.eye(m + 1, m)
        else:
            V, H, Bk = arnoldi(r, m - k, C)
            D = np.diag(1.0 / np.linalg.norm(U, axis=0))
            Vh, W = np.hstack([U @ D, V[:, :m - k]]), np.hstack([C, V])
            Gm = np.block([[D, Bk], [np.zeros((m - k + 1, k)), H]])
            WV = W.T @ Vh
        rhs = W.T @ r
        y = np.linalg.lstsq(Gm, rhs, rcond=None)[0]
        x = x + Vh @ y
        r = b - A @ x
        if schedule is None or schedule[cyc]:
            P = harmonic(Gm, WV)
            Q, R = np.linalg.qr(Gm @ P)
            C, U = W @ Q, Vh @ P @ np.linalg.inv(R)
        c = C.T @ r  # start of the next cycle: r orthogonal to the new C
        x, r = x + U @ c, r - C @ c
        out.append(x.copy())
    return out


def _update_schedule(solver, A, b):
    """Solve and return, per restart cycle, whether the recycled space was replaced after it."""
    from linsolve.recycling import gcrodr as mod

    marks = []
    cycle, update = mod.GCRODR._cycle, mod.GCRODR._update

    def cycle_rec(self, *a, **kw):
        marks.append(False)
        return cycle(self, *a, **kw)

    def update_rec(self, *a, **kw):
        out = update(self, *a, **kw)
        marks[-1] = marks[-1] or out[0]
        return out

    mod.GCRODR._cycle, mod.GCRODR._update = cycle_rec, update_rec
    try:
        res = solver.solve(A, b)
    finally:
        mod.GCRODR._cycle, mod.GCRODR._update = cycle, update
    return res, marks


@pytest.mark.parametrize("every", [1, 8])
@pytest.mark.parametrize("matrix", ["operator", "csr"])
def test_recycling_iterates_match_textbook_gcrodr(every, matrix):
    """The solver's x after each of the first cycles of GCRO-DR(12, 4) (compiled Arnoldi,
    fused correction, deferred projection, LAPACK harmonic Ritz) equals the textbook
    algorithm's, with the recycled space replaced every cycle (``update_every=1``) and on
    the default schedule, which here keeps the settled space for some cycles; the textbook
    replaces it after the same cycles. A CSR matrix runs the whole cycle in one compiled
    call, a matrix-free operator the Python loop of compiled steps."""
    rng = np.random.default_rng(15)
    n, m, k = 80, 12, 4
    Qm = np.linalg.qr(rng.standard_normal((n, n)))[0]
    lam = np.concatenate([[0.03, 0.07, 0.15, 0.3], np.linspace(1.0, 20.0, n - 4)])
    A = (Qm * lam) @ Qm.T
    b = rng.standard_normal(n)
    cycles = 3 if every == 1 else 9  # (the space settles after cycle 6 here)
    Ain = sp.csr_matrix(A) if matrix == "csr" else spla.aslinearoperator(A)
    its = m + (cycles - 1) * (m - k)
    _, schedule = _update_schedule(linsolve.make_solver("gcrodr", restart=m, recycle=k, rtol=1e-15, maxiter=its,
                                                        update_every=every), Ain, b)
    assert len(schedule) == cycles and schedule[0]
    if every > 1:
        assert not all(schedule[:-1])  # the schedule kept the space through some cycle
    ref = _textbook_gcrodr(A, b, m, k, cycles, schedule)
    for cyc, xr in enumerate(ref):
        its = m + cyc * (m - k)
        s = linsolve.make_solver("gcrodr", restart=m, recycle=k, rtol=1e-15, maxiter=its, update_every=every)
        res = s.solve(Ain, b)
        assert res.iterations == its and not res.converged
        np.testing.assert_allclose(res.x, xr, rtol=1e-9, atol=1e-10 * np.linalg.norm(xr))


@pytest.mark.petsc
@pytest.mark.parametrize("change", ["setter", "pc_options", "ksp_options"])
def test_python_ksp_refits_the_recycled_space_when_pc_options_change(change, petsc, monkeypatch):
    """New options on the same PC type (ILU(0) -> ILU(2)) refit the recycled space like a
    new matrix (C = B U of the old preconditioner would be stale). With the PC unchanged
    nothing is refitted, although getOperators hands out a new wrapper per call, and a
    KSPSetFromOptions that leaves m and k alone keeps the recycled space."""
    from linsolve.petsc_support.python_ksp import GCRODR as KspGCRODR
    from linsolve.petsc_support.utils import csr_to_aij
    from linsolve.recycling.gcrodr import GCRODR as Solver

    refits = []
    adapt = Solver._adapt
    monkeypatch.setattr(Solver, "_adapt", lambda self, *a: refits.append(1) or adapt(self, *a))

    A = gallery.convection_diffusion2d(24, peclet=20.0)
    Am = csr_to_aij(A)

    def make(prefix, levels):
        ksp = petsc.KSP().create(comm=petsc.COMM_SELF)
        ksp.setOptionsPrefix(prefix)
        opts = petsc.Options(prefix)
        settings = {"ksp_rtol": 1e-9, "pc_type": "ilu", "pc_factor_levels": levels, "ksp_pc_side": "right"}
        if change == "ksp_options":
            # a context set in code: KSPSetFromOptions keeps it (-ksp_python_type would make
            # petsc4py create a new one, and with it a new recycled space)
            ksp.setType("python")
            ksp.setPythonContext(KspGCRODR(restart=30, recycle=10))
        else:
            settings.update({"ksp_type": "python", "ksp_python_type": "linsolve.petsc_support.python_ksp.GCRODR",
                             "ksp_gcrodr_restart": 30, "ksp_gcrodr_recycle": 10})
        for k, v in settings.items():
            opts[k] = v
        ksp.setOperators(Am)
        ksp.setFromOptions()
        return ksp, opts

    def solve(ksp, b):
        xv = Am.createVecRight()
        ksp.solve(petsc.Vec().createWithArray(b.copy()), xv)
        assert ksp.getConvergedReason() > 0
        np.testing.assert_allclose(xv.getArray(), spla.spsolve(A.tocsc(), b), rtol=1e-6, atol=1e-8)
        return ksp.getIterationNumber()

    rng = np.random.default_rng(4)
    bs = [rng.standard_normal(A.shape[0]) for _ in range(4)]

    def two_solves_then_change(prefix):
        ksp, opts = make(prefix, 0)
        ctx = ksp.getPythonContext()
        solve(ksp, bs[0])
        refits.clear()
        solve(ksp, bs[1])
        unchanged = len(refits)
        if change == "setter":
            ksp.getPC().setFactorLevels(2)
        else:
            opts["pc_factor_levels"] = 2
            (ksp.getPC() if change == "pc_options" else ksp).setFromOptions()
        assert ksp.getPythonContext() is ctx
        return ksp, ctx, unchanged

    ksp, ctx, unchanged = two_solves_then_change(f"gcrodr{change}_")
    assert unchanged == 0  # the same PC and matrix: C = B U still holds
    refits.clear()
    its = solve(ksp, bs[2])
    assert len(refits) == 1 and ctx.last_info["recycle_matvecs"] >= 10  # a QR of B U for the new B
    solve(ksp, bs[3])
    assert len(refits) == 1 and ctx.last_info["recycle_matvecs"] == 0
    # the same KSP and PC history, the recycled space dropped just before the solve
    ref, _, _ = two_solves_then_change(f"gcrodr{change}ref_")
    ref.setPythonContext(KspGCRODR(restart=30, recycle=10))
    assert its < solve(ref, bs[2])  # the recycled space, refitted, still saves iterations


def _singular_neumann(n=50):
    """1-D Neumann Laplacian: singular (constant null space); ILU(0)'s last pivot is 0."""
    L = sp.diags([-np.ones(n - 1), 2 * np.ones(n), -np.ones(n - 1)], [-1, 0, 1]).tolil()
    L[0, 0] = L[n - 1, n - 1] = 1.0
    return L.tocsr()


@pytest.mark.petsc
@pytest.mark.parametrize("side,update", [("right", "cycle"), ("left", "cycle"), ("right", "solve")])
def test_gcrodr_nan_from_the_preconditioner_is_reported_not_raised(petsc, side, update):
    # PETSc's ILU of a singular matrix applies as Inf/NaN: the Givens estimate must see the
    # NaN and the solve end in a reported breakdown, not numpy's LinAlgError
    L = _singular_neumann()
    b = 1.0 + np.arange(50.0)  # not in the range of L: no solution exists
    s = linsolve.make_solver("gcrodr", backend="petsc", pc="ilu", pc_side=side, update=update,
                             restart=20, recycle=8, rtol=1e-8, maxiter=500)
    for _ in range(2):  # and again with whatever the first solve left recycled
        res = s.solve(L, b)
        assert not res.converged and res.reason.startswith("breakdown")
        assert np.all(np.isfinite(res.x))
        assert res.relative_residual == pytest.approx(np.linalg.norm(b - L @ res.x) / np.linalg.norm(b))


@pytest.mark.parametrize("update", ["cycle", "solve"])
def test_gcrodr_nan_on_the_recycled_space_drops_it(update):
    # an operator returning NaN on the recycled vectors (here once, on the first product)
    # makes C = B U NaN: the recycled space is dropped, scipy's eig never sees the NaN
    import scipy.sparse.linalg as spla

    A = gallery.poisson2d(8)
    b = np.random.default_rng(5).standard_normal(64)
    calls = [0]

    def matvec(v):
        calls[0] += 1
        return A @ v + (np.nan if calls[0] == 1 else 0.0)

    s = linsolve.make_solver("gcrodr", restart=20, recycle=8, update=update, rtol=1e-9, maxiter=300)
    assert s.solve(A, b).converged
    res = s.solve(spla.LinearOperator((64, 64), matvec=matvec, dtype=float), b)
    assert np.all(np.isfinite(res.x)) and res.relative_residual == pytest.approx(
        np.linalg.norm(b - A @ res.x) / np.linalg.norm(b), rel=1e-6)
    assert s._U is None or np.all(np.isfinite(s._U))
    res = s.solve(A, b)
    assert res.converged
    np.testing.assert_allclose(res.x, np.linalg.solve(A.toarray(), b), rtol=1e-6)


@pytest.mark.petsc
@pytest.mark.parametrize("side", ["right", "left"])
def test_petsc_python_ksp_reports_nan_as_divergence(petsc, side):
    # with -ksp_type python and ILU of a singular matrix the iterate turns NaN: the KSP
    # reports divergence instead of passing NaN to KSPSetResidualNorm, which raises
    from linsolve.petsc_support.python_ksp import GCRODR
    from linsolve.petsc_support.utils import csr_to_aij

    ksp = petsc.KSP().create()
    ksp.setType("python")
    ksp.setPythonContext(GCRODR(restart=20, recycle=6))
    ksp.setTolerances(rtol=1e-9, max_it=500)
    ksp.getPC().setType("ilu")
    ksp.setPCSide(getattr(petsc.PC.Side, side.upper()))
    for A, diverges in ((_singular_neumann(64), True), (gallery.poisson2d(8), False)):
        M = csr_to_aij(A)
        ksp.setOperators(M)
        b, x = M.createVecLeft(), M.createVecRight()
        b.setArray(np.arange(1.0, 65.0))
        ksp.solve(b, x)
        assert np.all(np.isfinite(x.getArray()))
        if diverges:
            assert ksp.getConvergedReason() < 0
        else:  # and the context still solves the next system
            assert ksp.getConvergedReason() > 0
            np.testing.assert_allclose(x.getArray(), np.linalg.solve(A.toarray(), b.getArray()), rtol=1e-7)


def _tridiag(n):
    return sp.diags([-1.0, 2.2, -1.1], [-1, 0, 1], shape=(n, n)).tocsr()


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("case", ["nan_operator", "overflow"])
def test_gcrodr_non_finite_first_step_prints_nothing(capfd, case, side):
    # NaN/Inf at the first Arnoldi step with no recycled space ends the solve before LAPACK
    # sees an empty cycle (its xerbla would print "DGETRF parameter number 4" to the terminal)
    n = 20
    A = _tridiag(n)
    if case == "nan_operator":
        A = spla.LinearOperator((n, n), matvec=lambda v: np.full(n, np.nan), dtype=np.float64)
    else:
        A = A * 1e300  # finite entries, A v overflows
    s = linsolve.make_solver("gcrodr", restart=10, recycle=4, pc_side=side)
    r = s.solve(A, np.ones(n))
    out, err = capfd.readouterr()
    assert "DGETRF" not in out + err and out + err == ""
    assert not r.converged and r.iterations == 0
    assert "non-finite" in r.reason or "NaN" in r.reason
    # the solver is still usable and right afterwards
    A2 = _tridiag(n)
    b = np.arange(1.0, n + 1)
    r2 = s.solve(A2, b)
    assert r2.converged
    assert np.allclose(r2.x, np.linalg.solve(A2.toarray(), b), rtol=1e-4)


def _python_ksp(petsc, A, prefix):
    from linsolve.petsc_support.utils import csr_to_aij

    Am = csr_to_aij(A)
    ksp = petsc.KSP().create(comm=petsc.COMM_SELF)
    ksp.setOptionsPrefix(prefix)
    opts = petsc.Options(prefix)
    opts["ksp_type"] = "python"
    opts["ksp_python_type"] = "linsolve.petsc_support.python_ksp.GCRODR"
    ksp.setOperators(Am)
    ksp.setFromOptions()
    return ksp, Am


@pytest.mark.petsc
def test_python_ksp_nan_rhs_is_diverged_nanorinf_like_petsc(petsc):
    # a NaN right-hand side gives DIVERGED_NANORINF after 0 iterations, as PETSc's own KSPs
    # do, not PETSc error 101 out of KSPSolve
    A = gallery.convection_diffusion2d(8, peclet=5.0)
    n = A.shape[0]
    b = np.ones(n)
    b[3] = np.nan
    R = petsc.KSP.ConvergedReason
    reasons = {}
    for name in ("gmres", "python"):
        ksp, Am = _python_ksp(petsc, A, f"kspnan{name}_")
        if name == "gmres":
            ksp.setType("gmres")
        bv, xv = petsc.Vec().createWithArray(b.copy()), Am.createVecRight()
        ksp.solve(bv, xv)
        reasons[name] = (ksp.getConvergedReason(), ksp.getIterationNumber())
        assert not np.isfinite(ksp.getResidualNorm())
        assert np.all(xv.getArray() == 0.0)
    assert reasons["python"] == reasons["gmres"] == (R.DIVERGED_NANORINF, 0)
    # the same KSP then solves a good system
    bv, xv = petsc.Vec().createWithArray(np.where(np.isfinite(b), b, 1.0)), Am.createVecRight()
    ksp.solve(bv, xv)
    assert ksp.getConvergedReason() > 0
    assert np.linalg.norm(bv.getArray() - A @ xv.getArray()) <= 1e-5 * np.linalg.norm(bv.getArray()) * (1 + 1e-6)


@pytest.mark.petsc
@pytest.mark.parametrize("opts,needle", [({"ksp_gcrodr_restart": 1}, "restart must be"),
                                         ({"ksp_gcrodr_restart": 10, "ksp_gcrodr_recycle": 9}, "recycle=9")])
def test_python_ksp_bad_options_are_refused_at_set_from_options(petsc, opts, needle):
    # bad options are refused by KSPSetFromOptions, not inside the first KSPSolve
    A = gallery.convection_diffusion2d(6, peclet=5.0)
    from linsolve.petsc_support.utils import csr_to_aij

    ksp = petsc.KSP().create(comm=petsc.COMM_SELF)
    prefix = f"kspopt{len(opts)}{abs(hash(needle)) % 1000}_"
    ksp.setOptionsPrefix(prefix)
    o = petsc.Options(prefix)
    o["ksp_type"] = "python"
    o["ksp_python_type"] = "linsolve.petsc_support.python_ksp.GCRODR"
    for k, v in opts.items():
        o[k] = v
    ksp.setOperators(csr_to_aij(A))
    with pytest.raises(petsc.Error) as exc:
        ksp.setFromOptions()
    assert isinstance(exc.value.__cause__, linsolve.OptionError) and needle in str(exc.value.__cause__)


@pytest.mark.petsc
def test_python_ksp_symmetric_pc_side_is_refused(petsc):
    # PC_SYMMETRIC is refused, not run as left preconditioning
    from linsolve.petsc_support.python_ksp import GCRODR
    from linsolve.petsc_support.utils import csr_to_aij

    A = gallery.convection_diffusion2d(6, peclet=5.0)
    Am = csr_to_aij(A)
    ksp = petsc.KSP().create(comm=petsc.COMM_SELF)
    ksp.setType("python")
    ksp.setPythonContext(GCRODR(restart=10, recycle=4))
    ksp.setOperators(Am)
    ksp.getPC().setType("jacobi")
    ksp.setPCSide(petsc.PC.Side.SYMMETRIC)
    with pytest.raises(petsc.Error) as exc:
        ksp.solve(petsc.Vec().createWithArray(np.ones(A.shape[0])), Am.createVecRight())
    assert isinstance(exc.value.__cause__, linsolve.OptionError) and "PC_SYMMETRIC" in str(exc.value.__cause__)
    ksp.setPCSide(petsc.PC.Side.LEFT)
    b = np.ones(A.shape[0])
    x = Am.createVecRight()
    ksp.solve(petsc.Vec().createWithArray(b.copy()), x)
    assert ksp.getConvergedReason() > 0
    assert np.linalg.norm(b - A @ x.getArray()) <= 1e-5 * np.linalg.norm(b) * (1 + 1e-6)


@pytest.mark.parametrize("opts", [{}, {"pc_side": "left", "pc": "jacobi"}])
def test_recycled_space_is_rebuilt_for_a_matrix_changed_in_place(opts):
    # restarts within a solve (restart=20) carry C = A U across cycles as well as across
    # solves; after A changes in place, C is recomputed from U (else GCRO-DR stagnates),
    # also with the preconditioner on the left
    A = gallery.poisson2d(8).tocsr()
    b = np.random.default_rng(3).standard_normal(64)
    s = linsolve.make_solver("gcrodr", rtol=1e-9, restart=20, recycle=8, **opts)
    diagonal = A.indices == np.repeat(np.arange(64), np.diff(A.indptr))
    for _ in range(3):
        res = s.solve(A, b)
        assert res.converged, res.reason
        np.testing.assert_allclose(res.x, np.linalg.solve(A.toarray(), b), rtol=1e-6, atol=1e-9)
        A.data *= 2.0  # 2 A + I: new values, same object and pattern
        A.data[diagonal] += 1.0

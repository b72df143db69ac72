"""The PETSc backend: CSR input as PETSc receives it, preconditioner set-up failures as SolverErrors,
user preconditioners, systems of different sizes, and PETSc initialised quietly (no signal handler,
no unused-option warning)."""
from __future__ import annotations

import signal
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp
from solver_problems import missing_diagonal

import linsolve
from linsolve import gallery


def _with_duplicates(A: sp.csr_matrix, seed: int = 0) -> sp.csr_matrix:
    """A as a non-canonical CSR: every row gets an extra explicit zero on its diagonal
    (a duplicate entry) and its column order shuffled."""
    rng = np.random.default_rng(seed)
    n = A.shape[0]
    indptr, cols, vals = [0], [], []
    for i in range(n):
        c = np.r_[A.indices[A.indptr[i]:A.indptr[i + 1]], i]
        v = np.r_[A.data[A.indptr[i]:A.indptr[i + 1]], 0.0]
        p = rng.permutation(c.size)
        cols.append(c[p])
        vals.append(v[p])
        indptr.append(indptr[-1] + c.size)
    D = sp.csr_matrix((np.concatenate(vals), np.concatenate(cols), np.array(indptr)), shape=A.shape)
    assert not D.has_canonical_format
    return D


@pytest.mark.petsc
def test_csr_with_duplicate_entries_reaches_petsc_summed(petsc):
    # duplicate CSR entries are summed on the way to PETSc (as SciPy sums them): a zero
    # duplicate on the diagonal must not replace the real diagonal, or ILU(0) breaks down
    from linsolve.petsc_support.utils import aij_to_csr, csr_to_aij

    A = gallery.poisson2d(6)
    D = _with_duplicates(A)
    before = (D.indices.copy(), D.data.copy())
    np.testing.assert_array_equal(aij_to_csr(csr_to_aij(D)).toarray(), A.toarray())
    np.testing.assert_array_equal(D.indices, before[0])  # the caller's arrays are left as given
    np.testing.assert_array_equal(D.data, before[1])
    b = np.random.default_rng(1).standard_normal(36)
    res = linsolve.make_solver("gcrodr", backend="petsc", pc="ilu", restart=10, recycle=4, rtol=1e-10).solve(D, b)
    assert res.converged
    np.testing.assert_allclose(res.x, np.linalg.solve(A.toarray(), b), rtol=1e-8)


@pytest.mark.petsc
@pytest.mark.parametrize("name", ["rcg", "gcrodr"])
def test_petsc_factorization_pc_on_a_matrix_free_operator_is_a_clear_error(petsc, name):
    # PETSc has no ICC/ILU for a shell matrix (PCSetUp's "error code 92"): the user gets an
    # UnsupportedInputError naming the problem, not a petsc4py.PETSc.Error
    import scipy.sparse.linalg as spla

    op = spla.aslinearoperator(gallery.poisson2d(6))
    s = linsolve.make_solver(name, backend="petsc", pc="icc" if name == "rcg" else "ilu")
    with pytest.raises(linsolve.UnsupportedInputError, match="matrix-free"):
        s.solve(op, np.ones(36))


@pytest.mark.petsc
def test_petsc_pc_setup_failure_on_an_assembled_matrix_is_a_solver_error(petsc):
    # a diagonal matrix with an exact zero on it: CSR drops the entry, PETSc's ICC refuses
    # the matrix ("missing diagonal entries") with error code 73
    A = sp.diags(np.linspace(-1.0, 2.0, 64)).tocsr()
    assert A.nnz == 63
    with pytest.raises(linsolve.SolverError, match="'icc'"):
        linsolve.make_solver("rcg", backend="petsc", pc="icc").solve(A, np.ones(64))


_USER_PC_SCRIPT = """
import numpy as np, scipy.sparse as sp, scipy.sparse.linalg as spla, linsolve
from linsolve import gallery
A = gallery.variable_diffusion2d(12)
b = np.random.default_rng(0).standard_normal(A.shape[0])
xref = np.linalg.solve(A.toarray(), b)
ilu = spla.spilu(A.tocsc(), drop_tol=1e-2)
for name, M in [("gmres", spla.LinearOperator(A.shape, matvec=ilu.solve)), ("bicgstab", ilu.solve),
                ("cg", sp.diags(1.0 / A.diagonal())), ("petsc", spla.LinearOperator(A.shape, matvec=ilu.solve))]:
    opts = dict(rtol=1e-10, pc=M) if name == "petsc" else dict(rtol=1e-10, pc=M, backend="petsc")
    res = linsolve.make_solver(name, **opts).solve(A, b)
    ref = linsolve.make_solver(name if name != "petsc" else "gmres", rtol=1e-10, pc=M).solve(A, b)
    err = np.linalg.norm(res.x - xref) / np.linalg.norm(xref)
    print(name, int(res.converged), res.iterations, ref.iterations, err)
"""


@pytest.mark.petsc
def test_petsc_backend_applies_a_user_preconditioner(petsc):
    # a matrix, LinearOperator or callable as pc= with backend="petsc" is applied through
    # PCApply_Python; a fault there kills the process, so this runs in a child and fails
    # only this test
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-c", _USER_PC_SCRIPT], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    names = ("gmres", "bicgstab", "cg", "petsc")
    rows = [ln.split() for ln in p.stdout.splitlines() if ln.split()[:1] and ln.split()[0] in names]
    assert tuple(r[0] for r in rows) == names
    for name, conv, its, ref_its, err in rows:
        assert conv == "1" and float(err) < 1e-8, (name, its, err)
        # the preconditioner is applied: PETSc needs what SciPy needs with the same M
        assert abs(int(its) - int(ref_its)) <= 2, (name, its, ref_its)


@pytest.mark.petsc
@pytest.mark.parametrize("name,opts", [("gmres", {"backend": "petsc", "pc": "ilu"}), ("cg", {"backend": "petsc"}),
                                       ("direct", {"backend": "petsc"}), ("petsc", {"ksp_type": "bcgs"}),
                                       ("sor", {"backend": "petsc", "omega": 1.5}),
                                       ("bandit-sor", {"backend": "petsc", "method": "ssor-pcg"})])
def test_petsc_solver_object_solves_systems_of_different_sizes(petsc, name, opts):
    # one solver object takes systems of different sizes (KSPSetOperators alone refuses a
    # size change on one KSP: bare petsc4py "error code 60")
    solver = linsolve.make_solver(name, rtol=1e-10, **opts)
    for k in (4, 5, 4):
        A = gallery.poisson2d(k)
        b = np.arange(1.0, k * k + 1)
        res = solver.solve(A, b)
        assert res.converged, (k, res)
        xref = np.linalg.solve(A.toarray(), b)
        assert np.linalg.norm(res.x - xref) <= 1e-7 * np.linalg.norm(xref)


@pytest.mark.petsc
@pytest.mark.parametrize("name,opts", [("gmres", {"backend": "petsc", "pc": "ilu"}),
                                       ("bicgstab", {"backend": "petsc", "pc": "sor"}),
                                       ("direct", {"backend": "petsc"}),
                                       ("petsc", {"ksp_type": "preonly", "pc": "lu"})])
def test_petsc_failure_inside_kspsolve_is_a_solver_error(petsc, name, opts):
    # the PC is set up inside KSPSolve; its failure ("error code 73") is a SolverError (a
    # ValueError), not a bare petsc4py.PETSc.Error
    solver = linsolve.make_solver(name, **opts)
    with pytest.raises(linsolve.SolverError, match="diagonal"):
        solver.solve(missing_diagonal(), np.ones(4))
    # the solver object is still usable
    A = gallery.poisson2d(2)
    res = solver.solve(A, np.array([1.0, 2.0, 3.0, 4.0]))
    assert res.converged
    np.testing.assert_allclose(res.x, np.linalg.solve(A.toarray(), [1.0, 2.0, 3.0, 4.0]), rtol=1e-4)


@pytest.mark.petsc
def test_petsc_initialised_by_linsolve_leaves_sigterm_to_python(petsc):
    # linsolve initialises PETSc without its signal handler: SIGTERM stays Python's
    code = ("import os, signal; from linsolve.petsc_support.utils import petsc; petsc(); "
            "os.kill(os.getpid(), signal.SIGTERM)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == -signal.SIGTERM and "PETSC" not in p.stderr, p.stderr


@pytest.mark.petsc
def test_petsc_under_python_dash_c_prints_nothing_at_exit(petsc):
    # sys.argv[0] is "-c" there; it must not reach petsc4py.init, where it would become an
    # unused option that PETSc reports at exit
    code = "from linsolve.petsc_support.utils import petsc; print(sorted(petsc().Options().getAll()))"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and p.stderr == "" and p.stdout.strip() == "['no_signal_handler']", p.stdout


@pytest.mark.petsc
def test_ksp_preonly_lu_refactors_a_matrix_changed_in_place(petsc):
    # the KSP's PETSc copy is refreshed and its LU factors rebuilt: preonly takes the one
    # factorisation's answer, so stale factors would be the old matrix's solution
    A = gallery.poisson2d(8).tocsr()
    b = np.random.default_rng(3).standard_normal(64)
    solver = linsolve.make_solver("petsc", rtol=1e-9, pc="lu", ksp_type="preonly")
    rows = np.repeat(np.arange(64), np.diff(A.indptr))
    for step in range(3):
        res = solver.solve(A, b)
        x_ref = np.linalg.solve(A.toarray(), b)
        assert res.converged, (step, res)
        assert np.linalg.norm(res.x - x_ref) <= 1e-7 * np.linalg.norm(x_ref)
        d = np.random.default_rng(step).uniform(0.5, 2.0, 64)  # D A D: same object and pattern
        A.data *= d[rows] * d[A.indices]

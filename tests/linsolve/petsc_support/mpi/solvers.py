"""MPI worker of tests/linsolve/petsc_support/test_mpi.py: run under ``mpiexec -n 2``; every process takes part in
each case and process 0 prints one line ``RESULT <json>`` that the test reads.

Each case solves the same systems twice: with a matrix distributed over the processes
(PETSc's row distribution unless a case asks for another), and with the whole matrix on
every process (``COMM_SELF``, the serial solve). It records the iterations of both, the
relative difference of the solutions, the true relative residual of the distributed
solution (checked on the gathered vector against the SciPy matrix), and whether x came back
with b's row distribution.
"""
from __future__ import annotations

import json
import os
import sys
import traceback

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402

import linsolve  # noqa: E402
from linsolve import gallery  # noqa: E402
from linsolve.core.errors import UnsupportedInputError  # noqa: E402
from linsolve.petsc_support.utils import csr_to_aij, petsc  # noqa: E402

PETSc = petsc()
COMM = PETSc.COMM_WORLD
RANK, SIZE = COMM.getRank(), COMM.getSize()


def split(n: int, how: str) -> list[int]:
    """Rows per process: PETSc's default ("petsc"), 3/4 of them on process 0 ("uneven"), or
    none on the last process ("empty")."""
    if how == "petsc":
        return [n // SIZE + (1 if r < n % SIZE else 0) for r in range(SIZE)]
    if how == "uneven":
        first = (3 * n) // 4
        rest = n - first
        return [first] + [rest // (SIZE - 1) + (1 if r < rest % (SIZE - 1) else 0) for r in range(SIZE - 1)]
    if how == "empty":
        return [n // (SIZE - 1) + (1 if r < n % (SIZE - 1) else 0) for r in range(SIZE - 1)] + [0]
    raise ValueError(how)


def distribute(A: sp.csr_matrix, how: str = "petsc"):
    """A as an MPIAIJ Mat with the rows of ``split(n, how)``; returns (Mat, (start, end))."""
    n = A.shape[0]
    counts = split(n, how)
    start = sum(counts[:RANK])
    end = start + counts[RANK]
    loc = A[start:end].tocsr()
    loc.sort_indices()
    it = PETSc.IntType
    M = PETSc.Mat().createAIJ(size=((counts[RANK], n), (counts[RANK], n)),
                              csr=(loc.indptr.astype(it), loc.indices.astype(it), loc.data), comm=COMM)
    M.assemble()
    assert M.getOwnershipRange() == (start, end)
    return M, (start, end)


def dist_vec(M, v: np.ndarray):
    x = M.createVecLeft()
    s, e = M.getOwnershipRange()
    x.getArray()[:] = v[s:e]
    return x


def gather(x) -> np.ndarray:
    """The whole vector of a distributed Vec on every process."""
    sc, whole = PETSc.Scatter.toAll(x)
    sc.scatter(x, whole, addv=PETSc.InsertMode.INSERT_VALUES, mode=PETSc.ScatterMode.FORWARD)
    return whole.getArray().copy()


def compare(name, make, systems, how="petsc"):
    """Solve ``systems`` (list of (A csr, b)) in order with one distributed solver and one serial
    solver made by ``make()``; per solve: iterations, relative difference of x, residual."""
    par, ser = make(), make()
    rows = []
    mats = {}
    for A, b in systems:
        key = id(A)
        if key not in mats:
            mats[key] = (distribute(A, how)[0], csr_to_aij(A))
        Md, Ms = mats[key]
        bd = dist_vec(Md, b)
        rp = par.solve(Md, bd)
        rs = ser.solve(Ms, b)
        xp = gather(rp.x)
        xs = np.asarray(rs.x)
        rows.append({
            "its_par": int(rp.iterations), "its_ser": int(rs.iterations),
            "converged": bool(rp.converged and rs.converged),
            "x_diff": float(np.linalg.norm(xp - xs) / np.linalg.norm(xs)),
            "residual": float(np.linalg.norm(b - A @ xp) / np.linalg.norm(b)),
            "reported_residual": float(rp.relative_residual),
            "same_layout": bool(rp.x.getOwnershipRange() == bd.getOwnershipRange() and rp.x.getSize() == b.size),
            "reductions": rp.info.get("global_reductions"),
        })
    return {"case": name, "how": how, "rows": rows}


def sequence(A, n_sys, seed, shift=0.02):
    """A slowly changing sequence: A + t shift I with new right-hand sides."""
    rng = np.random.default_rng(seed)
    eye = sp.identity(A.shape[0], format="csr")
    return [((A + (t * shift) * eye).tocsr(), rng.standard_normal(A.shape[0])) for t in range(n_sys)]


def case_equal_serial(how):
    A = gallery.convection_diffusion2d(16, peclet=20.0)  # n = 256, nonsymmetric
    S = gallery.poisson2d(16)  # SPD
    rng = np.random.default_rng(3)
    b, bs = rng.standard_normal(A.shape[0]), rng.standard_normal(S.shape[0])
    rt = 1e-9
    out = []
    specs = [
        ("gmres/none", lambda: linsolve.make_solver("gmres", backend="petsc", rtol=rt, restart=30), [(A, b)]),
        ("gmres/jacobi", lambda: linsolve.make_solver("gmres", backend="petsc", pc="jacobi", rtol=rt), [(A, b)]),
        ("bicgstab/jacobi", lambda: linsolve.make_solver("bicgstab", backend="petsc", pc="jacobi", rtol=rt),
         [(A, b)]),
        ("cg/jacobi", lambda: linsolve.make_solver("cg", backend="petsc", pc="jacobi", rtol=rt), [(S, bs)]),
        ("minres/none", lambda: linsolve.make_solver("minres", backend="petsc", rtol=rt), [(S, bs)]),
        ("petsc/bcgs", lambda: linsolve.make_solver("petsc", ksp_type="bcgs", pc="jacobi", rtol=rt), [(A, b)]),
        ("gcrodr/none", lambda: linsolve.make_solver("gcrodr", backend="petsc", restart=20, recycle=6, rtol=rt),
         sequence(A, 3, 5)),
        ("gcrodr/jacobi-left", lambda: linsolve.make_solver("gcrodr", backend="petsc", pc="jacobi", restart=20,
                                                            recycle=6, pc_side="left", rtol=rt), sequence(A, 3, 6)),
        ("rcg/jacobi", lambda: linsolve.make_solver("rcg", backend="petsc", pc="jacobi", rtol=rt, recycle=6,
                                                    store=60), sequence(S, 3, 7, shift=0.05)),
        ("rcg/every", lambda: linsolve.make_solver("rcg", backend="petsc", deflation="every", rtol=rt, recycle=4,
                                                   store=40), sequence(S, 3, 8, shift=0.05)),
    ]
    if how == "petsc":
        specs.append(("gcrodr/ifneeded", lambda: linsolve.make_solver("gcrodr", backend="petsc", restart=20, recycle=6,
                                                                      orthog="ifneeded", rtol=rt), sequence(A, 2, 9)))
    for name, make, systems in specs:
        out.append(compare(name, make, systems, how))
    return out


def case_block_preconditioners():
    """bjacobi/asm: one block per process, so no serial twin; checked against SciPy's solve."""
    from scipy.sparse.linalg import spsolve

    A = gallery.convection_diffusion2d(16, peclet=20.0)
    b = np.random.default_rng(4).standard_normal(A.shape[0])
    ref = spsolve(A.tocsc(), b)
    Md, _ = distribute(A)
    out = []
    for name in ("gcrodr", "gmres"):
        for pc in ("bjacobi", "asm"):
            opts = {"restart": 20, "recycle": 6} if name == "gcrodr" else {}
            s = linsolve.make_solver(name, backend="petsc", pc=pc, rtol=1e-10, **opts)
            r = s.solve(Md, dist_vec(Md, b))
            x = gather(r.x)
            out.append({"solver": name, "pc": pc, "converged": bool(r.converged), "its": int(r.iterations),
                        "x_err": float(np.linalg.norm(x - ref) / np.linalg.norm(ref))})
    return out


def python_ksp(A_list, b_list, recycle, comm, how="petsc"):
    """The options-database Python KSP on ``comm`` through a sequence; iterations per solve."""
    ksp = PETSc.KSP().create(comm=comm)
    prefix = f"mpiksp{recycle}{comm.getSize()}{how}_"
    ksp.setOptionsPrefix(prefix)
    opts = PETSc.Options(prefix)
    for k, v in {"ksp_type": "python", "ksp_python_type": "linsolve.petsc_support.python_ksp.GCRODR",
                 "ksp_gcrodr_restart": 20, "ksp_gcrodr_recycle": recycle, "ksp_rtol": 1e-9, "pc_type": "jacobi",
                 "ksp_pc_side": "right"}.items():
        opts[k] = v
    its, res = [], []
    mat = None
    for A, b in zip(A_list, b_list, strict=True):
        if comm.getSize() > 1:
            Am, _ = distribute(A, how)
            bv = dist_vec(Am, b)
        else:
            Am = csr_to_aij(A)
            bv = PETSc.Vec().createWithArray(b.copy(), comm=PETSc.COMM_SELF)
        if mat is None:
            mat = Am
        else:  # new values in the same Mat, as a time-stepping code does
            mat.setValuesCSR(*_local_csr(A, mat))
            mat.assemble()
        ksp.setOperators(mat)
        ksp.setFromOptions()
        xv = mat.createVecRight()
        ksp.solve(bv, xv)
        assert ksp.getConvergedReason() > 0, ksp.getConvergedReason()
        x = gather(xv) if comm.getSize() > 1 else xv.getArray().copy()
        its.append(int(ksp.getIterationNumber()))
        res.append(float(np.linalg.norm(b - A @ x) / np.linalg.norm(b)))
    return its, res


def _local_csr(A, mat):
    s, e = mat.getOwnershipRange()
    loc = A[s:e].tocsr()
    loc.sort_indices()
    it = PETSc.IntType
    return loc.indptr.astype(it), loc.indices.astype(it), loc.data


def case_python_ksp():
    A = gallery.convection_diffusion2d(24, peclet=30.0)
    seq = sequence(A, 5, 11, shift=0.01)
    As, bs = [a for a, _ in seq], [b for _, b in seq]
    out = {}
    for recycle in (6, 0):
        its_p, res_p = python_ksp(As, bs, recycle, COMM)
        its_s, _ = python_ksp(As, bs, recycle, PETSc.COMM_SELF)
        out[f"recycle{recycle}"] = {"its_par": its_p, "its_ser": its_s, "residual": res_p}
    for how in ("uneven", "empty"):
        its_p, res_p = python_ksp(As[:3], bs[:3], 6, COMM, how)
        out[f"recycle6_{how}"] = {"its_par": its_p, "its_ser": out["recycle6"]["its_ser"][:3], "residual": res_p}
    return out


def case_python_ksp_pc_options():
    """One matrix, four right-hand sides, the Python KSP on both processes; between the 2nd
    and 3rd solve the PC's options change (-pc_jacobi_type, which leaves the PC's state
    counter alone): the recycled-space refits (recycle_matvecs) per solve."""
    A = gallery.convection_diffusion2d(24, peclet=30.0)
    rng = np.random.default_rng(3)
    Am, _ = distribute(A)
    from linsolve.petsc_support.python_ksp import GCRODR as KspGCRODR

    ksp = PETSc.KSP().create(comm=COMM)
    prefix = "mpipcopts_"
    ksp.setOptionsPrefix(prefix)
    # the context set in code: KSPSetFromOptions keeps it (-ksp_python_type would make
    # petsc4py create a new one, and with it a new recycled space)
    ksp.setType("python")
    ksp.setPythonContext(KspGCRODR(restart=20, recycle=6))
    opts = PETSc.Options(prefix)
    for k, v in {"ksp_rtol": 1e-9, "pc_type": "jacobi", "ksp_pc_side": "right"}.items():
        opts[k] = v
    ksp.setOperators(Am)
    ksp.setFromOptions()
    refits, residuals = [], []
    for i in range(4):
        if i == 2:
            opts["pc_jacobi_type"] = "rowmax"
            ksp.setFromOptions()
        b = rng.standard_normal(A.shape[0])
        xv = Am.createVecRight()
        ksp.solve(dist_vec(Am, b), xv)
        x = gather(xv)
        refits.append(int(ksp.getPythonContext().last_info.get("recycle_matvecs", 0)))
        residuals.append(float(np.linalg.norm(b - A @ x) / np.linalg.norm(b)))
    ksp.destroy()
    return {"recycle_matvecs": refits, "residual": residuals}


def case_unsupported():
    A = gallery.poisson2d(8)
    Md, _ = distribute(A)
    b = Md.createVecLeft()
    b.set(1.0)
    out = {}
    for name, opts in [("sor", {}), ("ssor-pcg", {}), ("sor", {"backend": "petsc"}), ("gmres", {}),
                       ("gcrodr", {}), ("rcg", {}), ("direct", {}), ("direct", {"backend": "petsc"}),
                       ("fft-poisson", {}), ("dcdm", {})]:
        key = name + ("/petsc" if opts else "")
        try:
            r = linsolve.make_solver(name, **opts).solve(Md, b)
            out[key] = {"error": None, "converged": bool(r.converged)}
        except UnsupportedInputError as exc:
            out[key] = {"error": "UnsupportedInputError", "message": str(exc)}
        except Exception as exc:  # noqa: BLE001 - any other kind is what the test rejects
            out[key] = {"error": type(exc).__name__, "message": str(exc)}
    return out


CASES = {
    "equal_serial": lambda: case_equal_serial("petsc"),
    "uneven": lambda: case_equal_serial("uneven"),
    "empty": lambda: case_equal_serial("empty"),
    "block_pcs": case_block_preconditioners,
    "python_ksp": case_python_ksp,
    "python_ksp_pc_options": case_python_ksp_pc_options,
    "unsupported": case_unsupported,
}


def main(names):
    results = {}
    for name in names:
        try:
            results[name] = CASES[name]()
        except Exception:  # noqa: BLE001 - reported to the test, which fails on it
            results[name] = {"exception": traceback.format_exc()}
            sys.stderr.write(f"[{RANK}] case {name} failed:\n{traceback.format_exc()}")
    if RANK == 0:
        print("RESULT " + json.dumps({"size": SIZE, "results": results}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:] or list(CASES))

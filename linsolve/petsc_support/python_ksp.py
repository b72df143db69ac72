"""GCRO-DR as a PETSc Python KSP, for existing PETSc codes:

    -ksp_type python -ksp_python_type linsolve.petsc_support.python_ksp.GCRODR
    -ksp_gcrodr_restart 40 -ksp_gcrodr_recycle 20 [-ksp_pc_side right]

or in petsc4py: ``ksp.setType("python"); ksp.setPythonContext(GCRODR())``.
The KSP's operator and PC are used as they are (any PC type); rtol, atol and max_it come
from ``KSPSetTolerances``/``-ksp_rtol``..., every iteration calls the KSP's monitors
(``-ksp_monitor``, ``KSPMonitorSet``) and records the convergence history, and the
converged reason is set (CONVERGED_RTOL/ATOL, DIVERGED_MAX_IT, DIVERGED_BREAKDOWN). The
context keeps its recycled subspace across ``KSPSolve`` calls, so a sequence of solves
with one KSP recycles, including when the operator's values change (detected through
the Mat object and its PETSc state counter) or the PC's options do (its PCView).

Stopping rule: ||r|| <= max(rtol ||b||, atol) on the unpreconditioned residual for right
preconditioning (the PC side comes from ``KSPSetPCSide``/``-ksp_pc_side``; PETSc's default,
left, monitors the preconditioned residual estimate and stops on the true residual).

In a parallel PETSc program (a KSP on a communicator of several processes) the context
works on each process's rows of the KSP's Vecs, with the global sums of
``linsolve.petsc_support.parallel``; nothing changes for the caller.
"""
from __future__ import annotations

import numpy as np

from linsolve.core.errors import OptionError
from linsolve.core.precond import Identity, Preconditioner
from linsolve.recycling.gcrodr import GCRODR as _GCRODRSolver
from linsolve.recycling.recycle_ops import pc_apply_placed


class _KspPC(Preconditioner):
    """The KSP's own PC applied to NumPy arrays."""

    symmetric = False

    def __init__(self, pc, mat):
        from linsolve.petsc_support.utils import vec_on

        n = int(mat.getLocalSize()[0])  # this process's rows
        super().__init__(n)
        self.pc = pc
        self._xb, self._yb = np.zeros(n), np.zeros(n)
        self._xv, self._yv = vec_on(mat, self._xb), vec_on(mat, self._yb)

    def apply(self, r):
        return self.apply_into(r, np.empty(self.n))

    def apply_into(self, r, out):
        return pc_apply_placed(self.pc, self._xv, self._yv, self._xb, r, out)


class _PCText:
    """PCView of a PC as text, through one ASCII viewer kept open on an unlinked file: a
    PC's state counter does not move when its options change (PCFactorSetLevels, or
    -pc_factor_levels and PCSetFromOptions), its description does. On one process about
    0.1 ms a call (0.35 ms for GAMG) against 0.2-0.8 ms for a viewer opened per call.

    On several processes the viewer lives on the PC's communicator and PETSc writes from
    process 0, which hashes what it wrote; the digest reaches the others through one global
    sum, so every process sees the same change and takes the same branch. The viewer stays
    open between calls there too: creating a file, a viewer and destroying both per call cost
    far more than the view itself."""

    _ROTATE = 1 << 20  # bytes written before the file is replaced by a fresh one

    def __init__(self):
        self._viewer = self._fd = self._comm = None
        self._pos = 0
        self._rotate = False

    def _open(self, comm):
        import os
        import tempfile

        from linsolve.petsc_support.utils import petsc

        self.close()
        PETSc = petsc()
        fd = path = None
        if comm.getRank() == 0:
            fd, path = tempfile.mkstemp(prefix="gcrodr-pcview-")
        try:
            # (the name matters on process 0 only, which opens the file)
            self._viewer = PETSc.Viewer().createASCII(path or os.devnull, comm=comm)
        finally:
            if path is not None:
                os.unlink(path)  # both handles stay valid; nothing is left behind
        self._fd, self._comm, self._pos, self._rotate = fd, comm, 0, False

    def __call__(self, pc) -> bytes:
        import hashlib
        import os

        comm = pc.getComm()
        if self._viewer is None or self._rotate or comm != self._comm:
            self._open(comm)
        pc.view(self._viewer)
        self._viewer.flush()
        text = b""
        if self._fd is not None:
            while chunk := os.pread(self._fd, 1 << 16, self._pos + len(text)):
                text += chunk
            self._pos += len(text)
        if comm.getSize() == 1:
            self._rotate = self._pos > self._ROTATE
            return text
        from linsolve.petsc_support.parallel import Layout

        # 8 numbers of the digest, then whether process 0's file has grown past _ROTATE (the
        # new viewer is collective, so every process must decide it together)
        msg = np.zeros(9)
        if self._fd is not None:
            digest = hashlib.blake2b(text, digest_size=16).digest()
            msg[:8] = np.frombuffer(digest, dtype=np.uint16).astype(np.float64)
            msg[8] = float(self._pos > self._ROTATE)
        msg = Layout(0, 0, comm).sum(msg)
        self._rotate = bool(msg[8])
        return msg[:8].tobytes()

    def close(self):
        import os

        if self._viewer is not None:
            self._viewer.destroy()
        if self._fd is not None:
            os.close(self._fd)
        self._viewer = self._fd = self._comm = None


class GCRODR:
    """PETSc ``KSPPYTHON`` context running the package's GCRO-DR."""

    def __init__(self, restart: int = 40, recycle: int = 20):
        self.restart, self.recycle = restart, recycle
        self.solver = None
        self._M = None
        self._pc_key = None
        self._src = None
        self._pc_text = _PCText()
        self.last_info: dict = {}  # the last solve's GCRO-DR info (recycle_matvecs: a refit)

    # --- PETSc KSP python interface -------------------------------------------------------
    def create(self, ksp):
        pass

    def destroy(self, ksp):
        self.solver = None
        self._M = None
        self._pc_text.close()

    def reset(self, ksp):
        pass

    def setFromOptions(self, ksp):
        from linsolve.petsc_support.utils import petsc

        opts = petsc().Options(ksp.getOptionsPrefix())
        self.restart = opts.getInt("ksp_gcrodr_restart", self.restart)
        self.recycle = opts.getInt("ksp_gcrodr_recycle", self.recycle)
        # bad values are refused here, at KSPSetFromOptions like PETSc's own options, not at
        # the first KSPSolve
        new = _GCRODRSolver(restart=int(self.restart), recycle=int(self.recycle))
        old = self.solver
        # the same m and k keep the recycled space: a KSPSetFromOptions that changes only the
        # PC's options (between solves) must not make recycling begin again from nothing
        if old is None or (old.opts["restart"], old.opts["recycle"]) != (new.opts["restart"], new.opts["recycle"]):
            self.solver = new

    def setUp(self, ksp):
        pass

    def view(self, ksp, viewer):
        viewer.printfASCII(f"  GCRO-DR (linsolve): restart {self.restart}, recycle {self.recycle}\n")

    def solve(self, ksp, b, x):
        from linsolve.core.base import SolveContext
        from linsolve.core.operator import Operator
        from linsolve.petsc_support.utils import petsc

        PETSc = petsc()
        A, _ = ksp.getOperators()
        pc = ksp.getPC()
        if ksp.getPCSide() == PETSc.PC.Side.SYMMETRIC:
            # (refused, not run silently as left preconditioning)
            raise OptionError("GCRODR supports left and right preconditioning, not PC_SYMMETRIC "
                              "(-ksp_pc_side left|right)")
        right = ksp.getPCSide() == PETSc.PC.Side.RIGHT
        side = "right" if right else "left"
        if self.solver is None or self.solver.opts["pc_side"] != side:
            self.solver = _GCRODRSolver(restart=int(self.restart), recycle=int(self.recycle), pc_side=side)
        s = self.solver
        self.last_info = {}
        op = Operator(A, check_finite=False)
        lay = op.layout
        n = lay.nlocal  # this process's rows
        # A new PC object, a PC rebuilt for new operator values, a new matrix, or new PC
        # options (seen in its description): new M (the recycled space is then re-fitted by
        # a QR of B U inside the solver; with the old M, C = B U would be stale after an option change).
        # Objects by PETSc id: getOperators/getPC hand out a new Python wrapper every call, so
        # id(A) and `is` would see a new matrix in every solve and refit each time (k products)
        state = A.stateGet() if hasattr(A, "stateGet") else 0
        pc.setUp()  # a no-op when set up; the description then holds what setup decided
        key = (pc.getId(), pc.getType(), A.getId(), state, self._pc_text(pc))
        if self._M is None or self._pc_key != key:
            self._M = Identity(n) if pc.getType() == "none" else _KspPC(pc, A)
            self._pc_key = key
        s.pc = self._M
        s._pc_cache = None
        if self._src is None or self._src[0] != A.getId() or self._src[1] != state:
            self._src = (A.getId(), state)  # changed values (state) re-fit the recycled space
        op.source = self._src
        rtol, atol, _, max_it = ksp.getTolerances()
        barr = b.getArray(readonly=True).copy()
        bnorm = lay.norm(barr)
        nonzero = ksp.getInitialGuessNonzero()
        x0 = x.getArray(readonly=True).copy() if nonzero else np.zeros(n)
        ksp.setIterationNumber(0)
        if bnorm == 0.0:
            x.set(0.0)
            ksp.setResidualNorm(0.0)
            ksp.monitor(0, 0.0)
            ksp.setConvergedReason(PETSc.KSP.ConvergedReason.CONVERGED_ATOL)
            return
        res0 = barr - _matvec(A, x0)
        r0 = lay.norm(res0)
        R = PETSc.KSP.ConvergedReason
        if not np.isfinite(r0):
            # NaN/Inf in b, the guess or the operator: PETSc's own KSPs stop at iteration 0 with
            # DIVERGED_NANORINF (no exception); KSPSetResidualNorm refuses NaN, so the norm is Inf
            x.setArray(x0)
            ksp.setResidualNorm(np.inf)
            ksp.setConvergedReason(R.DIVERGED_NANORINF)
            self.last_reason = "breakdown: b, the initial guess or A x0 contains NaN or Inf"
            return
        tol = max(rtol * bnorm, atol)
        # Monitors see the norm the iterations report: preconditioned for left PCs
        m0 = r0 if right or isinstance(self._M, Identity) else lay.norm(self._M.apply(res0))
        ksp.logConvergenceHistory(m0)
        ksp.monitor(0, m0)
        count = [0]

        def monitor(rel):
            count[0] += 1
            rn = rel * bnorm
            ksp.setIterationNumber(count[0])
            ksp.setResidualNorm(rn)
            ksp.logConvergenceHistory(rn)
            ksp.monitor(count[0], rn)

        ctx = SolveContext(grid=None, callback=monitor, extra={}, bnorm=bnorm)
        if r0 <= tol:
            out_x, its, converged, reason = x0, 0, True, "converged"
            rn = r0
        else:
            out = s._solve(op, barr, x0, tol, int(max_it), ctx)
            self.last_info = out.info
            out_x, its, converged, reason = out.x, out.iterations, out.converged, out.reason
            rn = lay.norm(barr - _matvec(A, out_x))
            if converged and rn > tol * (1 + 1e-8) and its < max_it:
                more = s._solve(op, barr, out_x, tol, int(max_it) - its, ctx)
                out_x, its, converged, reason = more.x, its + more.iterations, more.converged, more.reason
                rn = lay.norm(barr - _matvec(A, out_x))
            converged = converged and rn <= tol * (1 + 1e-8)
        nonfinite = not np.isfinite(rn)
        if nonfinite:
            # NaN/Inf (e.g. ILU of a singular matrix): KSPSetResidualNorm refuses a NaN norm,
            # and the initial guess is a better answer than NaN; PETSc's reason says what happened
            out_x, rn, converged = x0, r0, False
        x.setArray(out_x)
        ksp.setIterationNumber(its)
        ksp.setResidualNorm(rn)
        if converged:
            code = R.CONVERGED_ATOL if atol >= rtol * bnorm else R.CONVERGED_RTOL
        elif nonfinite:
            code = R.DIVERGED_NANORINF
        elif its >= max_it:
            code = getattr(R, "DIVERGED_MAX_IT", None) or R.DIVERGED_ITS  # renamed in PETSc 3.24
        else:
            code = R.DIVERGED_BREAKDOWN
        ksp.setConvergedReason(code)
        self.last_reason = reason


def _matvec(A, x):
    from linsolve.petsc_support.utils import vec_on

    y = A.createVecLeft()
    A.mult(vec_on(A, x), y)
    return y.getArray(readonly=True).copy()

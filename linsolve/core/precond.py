"""Preconditioners chosen by name.

SciPy backend names: ``none``, ``jacobi``, ``ilu`` (ILU(0) on the pattern of A, natural
ordering, applied by compiled code: the same factor as PETSc's default ILU), ``ilutp``
(SciPy ``spilu``, SuperLU's threshold ILU with fill and pivoting; ``pc_options`` go to
``spilu``: ``drop_tol``, ``fill_factor``), ``ic`` (no maintained SciPy-side incomplete
Cholesky exists, so it raises and points to ``backend="petsc"``, which uses PETSc ICC),
``ssor`` (compiled symmetric SOR sweep), ``amg`` (PyAMG smoothed aggregation, one
V-cycle). A ``LinearOperator``, matrix or callable applying M^-1 is accepted too, as in
SciPy. With ``backend="petsc"`` any PETSc PC type name works (``bjacobi``, ``asm``,
``gamg``, ``hypre`` if built, ...) and the portable names map to PETSc's: ilu->ilu
(ILU(0) unless ``pc_options={"factor_levels": k}``), ic->icc, ssor->sor (symmetric
sweep), amg->gamg; ``ilutp`` is SciPy's alone. docs/preconditioners.md has the table.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from linsolve.core.errors import OptionError, SolverError, UnknownPreconditionerError

SCIPY_PCS = ("none", "jacobi", "ilu", "ilutp", "ic", "ssor", "amg")
PETSC_ALIASES = {"none": "none", "jacobi": "jacobi", "ilu": "ilu", "ic": "icc", "ssor": "sor",
                 "amg": "gamg", "sor": "sor"}


def check_pc_name(pc, backend: str):
    if pc is None:
        return "none"
    if not isinstance(pc, str):
        return pc  # an operator; validated when built
    name = pc.lower()
    if backend == "petsc":
        if name == "ilutp":
            raise UnknownPreconditionerError(
                "preconditioner 'ilutp' is SciPy's spilu and has no PETSc counterpart; with backend='petsc' "
                "use pc='ilu' (ILU(k) with pc_options={'factor_levels': k}) or drop backend='petsc'")
        return name
    if name not in SCIPY_PCS:
        raise UnknownPreconditionerError(
            f"unknown preconditioner {pc!r} for the SciPy backend; known: {', '.join(SCIPY_PCS)} "
            "(any PETSc PC name works with backend='petsc')"
        )
    if name == "ic":
        raise UnknownPreconditionerError(
            "preconditioner 'ic' (incomplete Cholesky) has no maintained SciPy implementation; "
            "use backend='petsc' (PETSc ICC) or pc='ilu' (ILU(0), symmetric for a symmetric matrix)"
        )
    return name


def petsc_pc_type(pc: str) -> str:
    return PETSC_ALIASES.get(pc, pc)


class Preconditioner:
    """Applies M^-1 to NumPy vectors; ``linear_operator()`` gives SciPy's ``M``."""

    name = "none"
    symmetric = True

    def __init__(self, n: int):
        self.n = n

    def apply(self, r: np.ndarray) -> np.ndarray:
        return r

    def linear_operator(self):
        return spla.LinearOperator((self.n, self.n), matvec=self.apply, dtype=np.float64)


class Identity(Preconditioner):
    def linear_operator(self):
        return None


class Jacobi(Preconditioner):
    name = "jacobi"

    def __init__(self, op):
        super().__init__(op.n)
        d = op.diagonal()  # this process's rows of a distributed matrix
        layout = getattr(op, "layout", None)
        zero = bool(np.any(d == 0))
        if layout.any(zero) if layout is not None else zero:  # all processes raise together
            raise OptionError("Jacobi preconditioner needs a nonzero diagonal")
        self.inv_diag = 1.0 / d

    def apply(self, r):
        return self.inv_diag * r


class ILU0(Preconditioner):
    """ILU(0): A ~ L U on the sparsity pattern of A, natural ordering, no pivoting, applied
    by the compiled substitutions of ``linsolve.core.ilu_kernels`` (PETSc's default ILU; symmetric
    for a symmetric A, so CG and MINRES may use it)."""

    name = "ilu"
    symmetric = True

    def __init__(self, op):
        super().__init__(op.n)
        from linsolve.core.ilu_kernels import ILU0 as _Kernel
        from linsolve.core.ilu_kernels import ZeroPivotError

        try:
            self._ilu = _Kernel(op.csr("ILU"))
        except ZeroPivotError as exc:
            raise SolverError(f"ILU preconditioner could not be built on this matrix: ILU(0) {exc} (a singular "
                              "matrix, or one that needs pivoting: try pc='ilutp', SciPy's pivoting ILU)") from None

    def apply(self, r):
        return self._ilu.apply(r)


class ILUTP(Preconditioner):
    """SciPy's ``spilu`` (SuperLU's ILUTP: threshold dropping, fill, pivoting)."""

    name = "ilutp"
    symmetric = False

    def __init__(self, op, drop_tol=1e-4, fill_factor=10.0, symmetric=False):
        super().__init__(op.n)
        # SuperLU's defaults (COLAMD column order, row pivoting) treat a symmetric A as a
        # general one: CG with that ILU failed to converge on the 5-point Laplacian from 50^2
        # on (rel. residual 0.15 after 25000 iterations). For CG/MINRES: a symmetric ordering
        # without pivoting, as PETSc's ILU on a symmetric matrix (4/6/10 iterations at
        # 50^2/100^2/200^2, rtol 1e-8; only the threshold dropping is left unsymmetric).
        kw = dict(permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0, options={"SymmetricMode": True}) \
            if symmetric else {}
        self.symmetric = bool(symmetric)
        try:
            self.factor = spla.spilu(sp.csc_matrix(op.csr("ILU")), drop_tol=drop_tol, fill_factor=fill_factor, **kw)
        except RuntimeError as exc:  # SuperLU's "Factor is exactly singular", not a ValueError
            raise SolverError(f"ILUTP preconditioner could not be built on this matrix: {exc} (a singular matrix, "
                              "or drop_tol/fill_factor dropping too much; try pc_options or another pc)") from None

    def apply(self, r):
        return self.factor.solve(r)


class SSOR(Preconditioner):
    """M = (D/w + L) (D/w)^-1 (D/w + U) / (2-w) = (D + wL) D^-1 (D + wU) / (w(2-w)), the
    standard SSOR preconditioner (one symmetric SOR sweep from zero, as PETSc's PCSOR);
    applied by the compiled kernel (symmetric when A is)."""

    name = "ssor"

    def __init__(self, op, omega=1.0):
        super().__init__(op.n)
        if not 0 < omega < 2:
            raise OptionError(f"SSOR omega must lie in (0, 2), got {omega}")
        from linsolve.relaxation.sor_kernels import SSORApply

        self._apply = SSORApply(op.csr("SSOR"), omega)

    def apply(self, r):
        return self._apply(r)


class AMG(Preconditioner):
    name = "amg"

    def __init__(self, op, **kw):
        super().__init__(op.n)
        import pyamg

        A = op.csr("AMG")
        self.ml = pyamg.smoothed_aggregation_solver(A, **kw)
        self._M = self.ml.aspreconditioner(cycle="V")

    def apply(self, r):
        return self._M.matvec(r)


class UserPreconditioner(Preconditioner):
    name = "user"
    symmetric = True

    def __init__(self, M, n):
        super().__init__(n)
        if callable(M) and not hasattr(M, "shape"):
            self._f = M
        else:
            shape = getattr(M, "shape", None)
            if shape != (n, n):
                raise OptionError(f"preconditioner M has shape {shape}, expected {(n, n)}")
            lin = spla.aslinearoperator(M)
            self._f = lin.matvec

    def apply(self, r):
        # checked here, not left to NumPy: a wrong length would surface as a reshape or broadcast
        # ValueError, or as BLAS's _fblas.error (not a ValueError) in rcg; complex values
        # for a real vector would be cast to real with only a warning (complex systems, whose
        # vectors are complex, take a complex M)
        out = np.asarray(self._f(r))
        if out.dtype.kind not in "fiubc" or (out.dtype.kind == "c" and r.dtype.kind != "c"):
            raise OptionError(f"preconditioner M returned {out.dtype} values for a {r.dtype} vector; "
                              "it must return a vector of the system's kind (real for a real system)")
        if out.size != self.n:
            raise OptionError(f"preconditioner M returned {out.size} values for a vector of length {self.n}")
        return np.asarray(out, dtype=np.complex128 if out.dtype.kind == "c" else np.float64).reshape(-1)


def build_preconditioner(pc, op, options: dict | None = None, symmetric: bool = False) -> Preconditioner:
    """``symmetric``: the method needs a symmetric M^-1 (CG, MINRES)."""
    options = options or {}
    if not isinstance(pc, str):
        return UserPreconditioner(pc, op.n)
    if pc == "none":
        return Identity(op.n)
    if pc == "jacobi":
        return Jacobi(op)
    cls = {"ilu": ILU0, "ilutp": ILUTP, "ssor": SSOR, "amg": AMG}.get(pc)
    if cls is not None:
        try:
            return cls(op, **options, **({"symmetric": True} if cls is ILUTP and symmetric else {}))
        except SolverError:
            raise
        except (TypeError, ValueError) as exc:
            if not options:
                raise
            # an unknown key or a value of the wrong type (e.g. from the CLI's pc_options)
            raise OptionError(f"pc_options {options!r} rejected by preconditioner {pc!r}: {exc}") from None
    raise UnknownPreconditionerError(f"preconditioner {pc!r} is not available with the SciPy backend")

"""ILU(0), the incomplete LU factorisation with zero fill, in compiled code (numba,
``cache=True``, ``nogil``, no fastmath).

A ~ L U with L unit lower triangular and U upper triangular, both on the sparsity pattern
of A, natural ordering, no pivoting: the factor of PETSc's ``PCILU`` with its defaults
(``pc_factor_levels 0``, natural ordering, no shift). Row-oriented (the IKJ form): for
each row i and each stored column k < i in ascending order, l_ik = a_ik / u_kk and the
entries of row k right of k are subtracted from the entries of row i that exist in the
pattern; everything else is dropped. For a symmetric A this gives U = D L^T, so the
preconditioner is symmetric (usable with CG and MINRES).

``ilu0_factor`` works on a canonical CSR copy (sorted column indices, no duplicates) in
place and returns the position of each diagonal entry, or the first row whose pivot is
zero or not finite (or that stores no diagonal entry). ``ilu0_apply`` computes
z = (L U)^-1 r by the two triangular substitutions.
"""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def ilu0_factor(indptr, indices, data):
    """Factor in place; returns (diag_pos, bad) with bad = -1 on success, else the row of
    the first missing, zero or non-finite pivot."""
    n = indptr.shape[0] - 1
    diag_pos = np.full(n, -1, dtype=np.int64)
    where = np.full(n, -1, dtype=np.int64)  # column -> position in the current row
    for i in range(n):
        start, end = indptr[i], indptr[i + 1]
        for a in range(start, end):
            where[indices[a]] = a
            if indices[a] == i:
                diag_pos[i] = a
        if diag_pos[i] < 0:
            return diag_pos, i
        for a in range(start, diag_pos[i]):  # the columns k < i, ascending
            k = indices[a]
            lik = data[a] / data[diag_pos[k]]
            data[a] = lik
            for b in range(diag_pos[k] + 1, indptr[k + 1]):  # row k of U right of its pivot
                pos = where[indices[b]]
                if pos >= 0:
                    data[pos] -= lik * data[b]
        for a in range(start, end):
            where[indices[a]] = -1
        piv = data[diag_pos[i]]
        if not (abs(piv) > 0.0 and abs(piv) < np.inf):
            return diag_pos, i
    return diag_pos, -1


@njit(cache=True, nogil=True)
def ilu0_apply(indptr, indices, data, diag_pos, inv_diag, r, z):
    """z = U^-1 L^-1 r (L unit lower, U upper, both stored in ``data``)."""
    n = r.shape[0]
    for i in range(n):
        s = r[i]
        for a in range(indptr[i], diag_pos[i]):
            s -= data[a] * z[indices[a]]
        z[i] = s
    for i in range(n - 1, -1, -1):
        s = z[i]
        for a in range(diag_pos[i] + 1, indptr[i + 1]):
            s -= data[a] * z[indices[a]]
        z[i] = s * inv_diag[i]


class ILU0:
    """ILU(0) of a SciPy sparse matrix, applied by the compiled substitutions.

    Parameters
    ----------
    A : scipy.sparse matrix
        Square matrix; every diagonal entry must be stored.

    Raises
    ------
    ZeroPivotError
        When a pivot is zero or not finite, or a row stores no diagonal entry (PETSc's
        ILU(0) fails the same way; no shift is applied).

    Examples
    --------
    >>> from linsolve import gallery
    >>> M = ILU0(gallery.poisson2d(8))
    >>> z = M.apply(np.ones(64))
    """

    def __init__(self, A):
        import scipy.sparse as sp

        A = sp.csr_matrix(A, dtype=np.float64, copy=True)
        A.sum_duplicates()
        A.sort_indices()
        self.n = A.shape[0]
        self.indptr = A.indptr.astype(np.int64)
        self.indices = A.indices.astype(np.int64)
        self.data = A.data
        self.diag_pos, bad = ilu0_factor(self.indptr, self.indices, self.data)
        if bad >= 0:
            why = "stores no diagonal entry" if self.diag_pos[bad] < 0 else "has a zero or non-finite pivot"
            raise ZeroPivotError(bad, why)
        self.inv_diag = 1.0 / self.data[self.diag_pos]

    def apply(self, r: np.ndarray) -> np.ndarray:
        z = np.empty(self.n)
        ilu0_apply(self.indptr, self.indices, self.data, self.diag_pos, self.inv_diag,
                   np.ascontiguousarray(r, dtype=np.float64), z)
        return z

    def factors(self):
        """(L, U) as SciPy CSR matrices (L with its unit diagonal), for checks."""
        import scipy.sparse as sp

        M = sp.csr_matrix((self.data, self.indices, self.indptr), shape=(self.n, self.n))
        L = sp.tril(M, -1, format="csr") + sp.identity(self.n, format="csr")
        return L.tocsr(), sp.triu(M, 0, format="csr")


class ZeroPivotError(ArithmeticError):
    """ILU(0) met a zero, non-finite or missing pivot in row ``row``."""

    def __init__(self, row: int, why: str):
        super().__init__(f"row {row} {why}")
        self.row, self.why = int(row), why

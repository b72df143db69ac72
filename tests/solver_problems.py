"""Small linear systems shared by the solver test files."""
from __future__ import annotations

import numpy as np

from linsolve import gallery


def poisson_problem(n=8):
    A = gallery.poisson2d(n)
    b = np.arange(1.0, A.shape[0] + 1)
    return A, b, np.linalg.solve(A.toarray(), b)


def missing_diagonal():
    """Non-singular, but its diagonal entries are not stored: ILU/ICC/LU/SOR in PETSc refuse it."""
    import scipy.sparse as sp

    P = sp.csr_matrix(np.fliplr(np.eye(4)) + np.diag(np.ones(3), 1) * 0.1 - np.diag(np.ones(3), 1) * 0.1)
    P.eliminate_zeros()
    assert P.diagonal().tolist() == [0.0] * 4 and P.nnz == 4
    return P

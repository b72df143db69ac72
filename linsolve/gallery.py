"""Test matrices shared by the tests and the benchmarks (all SciPy CSR, float64)."""
from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp

from linsolve.core.errors import OptionError


# Sizes and coefficients are checked here: bad sizes would fail inside SciPy (n=0: "Diagonal length
# ...", n=-1: ZeroDivisionError), bad coefficients give NaN matrices (peclet=nan, k=nan) or NumPy errors.
def _size(n) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise OptionError(f"grid size n must be a positive integer, got {n!r}")
    return int(n)


def _number(name: str, value, least: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value) or value < least:
        bound = "" if least == -math.inf else f" >= {least:g}"
        raise OptionError(f"{name} must be a finite number{bound}, got {value!r}")
    return float(value)


def _lap1d(n: int, h: float) -> sp.csr_matrix:
    e = np.ones(n)
    return sp.diags([-e[:-1], 2 * e, -e[:-1]], [-1, 0, 1], format="csr") / h**2


def poisson2d(n: int, scaled: bool = False) -> sp.csr_matrix:
    """5-point Dirichlet Laplacian on an n x n interior grid (h = 1/(n+1)); SPD.
    ``scaled=False`` gives the integer stencil (4, -1) as in most solver papers.

    Parameters
    ----------
    n : int
        Interior points per axis (n^2 unknowns, row-major).
    scaled : bool, optional
        Divide by h^2 (the differential operator) instead of the integer stencil.

    Returns
    -------
    scipy.sparse.csr_matrix
        The n^2 x n^2 matrix, float64.

    Raises
    ------
    OptionError
        ``n`` is not a positive integer.

    Examples
    --------
    >>> from linsolve import gallery
    >>> A = gallery.poisson2d(3)
    >>> A.shape, A[4].toarray().ravel().tolist()
    ((9, 9), [0.0, -1.0, 0.0, -1.0, 4.0, -1.0, 0.0, -1.0, 0.0])
    """
    n = _size(n)
    h = 1.0 / (n + 1)
    T = _lap1d(n, h)
    I = sp.identity(n, format="csr")
    A = (sp.kron(I, T) + sp.kron(T, I)).tocsr()
    return A if scaled else (A * h**2).tocsr()


def poisson3d(n: int, scaled: bool = False) -> sp.csr_matrix:
    """7-point Dirichlet Laplacian on an n^3 interior grid; SPD.

    Parameters
    ----------
    n : int
        Interior points per axis (n^3 unknowns).
    scaled : bool, optional
        Divide by h^2 instead of the integer stencil (6, -1).

    Returns
    -------
    scipy.sparse.csr_matrix
        The n^3 x n^3 matrix.
    """
    n = _size(n)
    h = 1.0 / (n + 1)
    T = _lap1d(n, h)
    I = sp.identity(n, format="csr")
    A = (sp.kron(sp.kron(I, I), T) + sp.kron(sp.kron(I, T), I) + sp.kron(sp.kron(T, I), I)).tocsr()
    return A if scaled else (A * h**2).tocsr()


def convection_diffusion2d(n: int, peclet: float = 50.0) -> sp.csr_matrix:
    """-Δu + Pe (u_x + u_y) with first-order upwinding on an n x n grid; non-symmetric,
    an M-matrix (so ILU and Jacobi are well defined). The stencil upwinds for a positive
    velocity, so ``peclet`` >= 0.

    Parameters
    ----------
    n : int
        Interior points per axis.
    peclet : float, optional
        The cell-independent Péclet number Pe, >= 0.

    Returns
    -------
    scipy.sparse.csr_matrix
        The n^2 x n^2 matrix (scaled by 1/h^2).
    """
    n, peclet = _size(n), _number("peclet", peclet, 0.0)
    h = 1.0 / (n + 1)
    e = np.ones(n)
    T = sp.diags([-e[:-1], 2 * e, -e[:-1]], [-1, 0, 1]) / h**2
    D = sp.diags([-e[:-1], e], [-1, 0]) * (peclet / h)  # upwind for positive velocity
    I = sp.identity(n)
    return (sp.kron(I, T + D) + sp.kron(T + D, I)).tocsr()


def variable_diffusion2d(n: int, contrast: float = 100.0, seed: int = 0) -> sp.csr_matrix:
    """-div(k grad u) with a piecewise-constant random k in [1, contrast] (cell-centred,
    harmonic face averages); SPD.

    Parameters
    ----------
    n : int
        Interior points per axis.
    contrast : float, optional
        Ratio of the largest to the smallest coefficient, >= 1 (log-uniform in between).
    seed : int, optional
        Seed of the coefficient field.

    Returns
    -------
    scipy.sparse.csr_matrix
        The n^2 x n^2 matrix (scaled by 1/h^2).
    """
    n, contrast = _size(n), _number("contrast", contrast, 1.0)
    rng = np.random.default_rng(seed)
    k = np.exp(rng.uniform(0.0, np.log(contrast), size=(n + 2, n + 2)))
    h = 1.0 / (n + 1)
    idx = np.arange(n * n).reshape(n, n)
    rows, cols, vals = [], [], []
    diag = np.zeros((n, n))
    kc = k[1:-1, 1:-1]
    for di, dj in ((1, 0), (-1, 0), (0, 1), (0, -1)):
        kn = k[1 + di:n + 1 + di, 1 + dj:n + 1 + dj]
        kf = 2 * kc * kn / (kc + kn)
        diag += kf
        ii, jj = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
        ni, nj = ii + di, jj + dj
        inside = (ni >= 0) & (ni < n) & (nj >= 0) & (nj < n)
        rows.append(idx[inside])
        cols.append(idx[ni[inside], nj[inside]])
        vals.append(-kf[inside])
    rows.append(idx.ravel())
    cols.append(idx.ravel())
    vals.append(diag.ravel())
    A = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n * n, n * n))
    return (A / h**2).tocsr()


def helmholtz2d(n: int, k: float = 10.0) -> sp.csr_matrix:
    """Shifted Laplacian -Δ - k^2 I (Dirichlet); symmetric indefinite once k^2 exceeds the
    smallest Dirichlet eigenvalue 2π^2.

    Parameters
    ----------
    n : int
        Interior points per axis.
    k : float, optional
        The wavenumber.

    Returns
    -------
    scipy.sparse.csr_matrix
        The n^2 x n^2 matrix (the Laplacian scaled by 1/h^2).
    """
    n, k = _size(n), _number("k", k, -math.inf)
    return (poisson2d(n, scaled=True) - k**2 * sp.identity(n * n)).tocsr()


def random_spd(n: int, seed: int = 0, cond: float = 100.0) -> np.ndarray:
    """A dense random SPD matrix with eigenvalues geometrically spaced in [1, cond].

    Parameters
    ----------
    n : int
        Size.
    seed : int, optional
        Seed of the random orthogonal eigenvectors.
    cond : float, optional
        The 2-norm condition number, >= 1.

    Returns
    -------
    ndarray
        The n x n matrix.
    """
    n, cond = _size(n), _number("cond", cond, 1.0)
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    return (Q * np.geomspace(1.0, cond, n)) @ Q.T


GALLERY = {
    "poisson2d": poisson2d,
    "poisson3d": poisson3d,
    "convdiff2d": convection_diffusion2d,
    "vardiff2d": variable_diffusion2d,
    "helmholtz2d": helmholtz2d,
}

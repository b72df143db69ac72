"""The shared test matrices have the properties their names promise."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from linsolve import gallery


def _eig(A):
    return np.linalg.eigvalsh(A.toarray())


def test_poisson2d_eigenvalues_analytic():
    n = 7
    h = 1.0 / (n + 1)
    k = np.arange(1, n + 1)
    lam1 = 4 * np.sin(k * np.pi * h / 2) ** 2 / h**2
    expect = np.sort((lam1[:, None] + lam1[None, :]).ravel())
    np.testing.assert_allclose(_eig(gallery.poisson2d(n, scaled=True)), expect, rtol=1e-12)
    np.testing.assert_allclose(_eig(gallery.poisson2d(n)), expect * h**2, rtol=1e-12)


def test_poisson3d_is_kron_sum_and_spd():
    A = gallery.poisson3d(4)
    assert A.shape == (64, 64)
    assert abs(A - A.T).max() == 0
    assert _eig(A).min() > 0
    np.testing.assert_allclose(A.diagonal(), 6.0)


def test_convdiff_nonsymmetric_m_matrix():
    A = gallery.convection_diffusion2d(6, peclet=50.0)
    assert abs(A - A.T).max() > 0
    off = A - sp.diags(A.diagonal())
    assert off.max() <= 0 and np.all(A.diagonal() > 0)
    # weakly diagonally dominant rows (M-matrix): row sums non-negative
    assert np.all(np.asarray(A.sum(axis=1)).ravel() >= -1e-9)


def test_variable_diffusion_spd_and_seeded():
    A = gallery.variable_diffusion2d(6, contrast=100.0, seed=3)
    assert abs(A - A.T).max() < 1e-9 * abs(A).max()
    assert _eig(A).min() > 0
    assert abs(A - gallery.variable_diffusion2d(6, contrast=100.0, seed=3)).max() == 0
    assert abs(A - gallery.variable_diffusion2d(6, contrast=100.0, seed=4)).max() > 0


def test_helmholtz_indefinite_once_k2_exceeds_first_eigenvalue():
    n = 10
    lam_min = _eig(gallery.poisson2d(n, scaled=True)).min()
    assert _eig(gallery.helmholtz2d(n, k=0.9 * np.sqrt(lam_min))).min() > 0
    ev = _eig(gallery.helmholtz2d(n, k=1.5 * np.sqrt(lam_min)))
    assert ev.min() < 0 < ev.max()

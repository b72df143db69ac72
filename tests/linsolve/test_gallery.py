"""The shared test matrices have the properties their names promise."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from linsolve import OptionError, gallery


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


@pytest.mark.parametrize("make", ["poisson2d", "poisson3d", "convdiff2d", "vardiff2d", "helmholtz2d"])
@pytest.mark.parametrize("n", [0, -1, 2.5, "4", True])
def test_gallery_sizes_must_be_positive_integers(make, n):
    from linsolve import gallery

    with pytest.raises(OptionError, match="n must be an integer >= 1"):
        gallery.GALLERY[make](n)   # not SciPy's 'Diagonal length', ZeroDivisionError, TypeError


@pytest.mark.parametrize("call, needle", [
    (lambda g: g.convection_diffusion2d(4, peclet=float("nan")), "peclet"),   # a NaN matrix
    (lambda g: g.convection_diffusion2d(4, peclet=-5.0), "peclet"),   # downwind: not the M-matrix promised
    (lambda g: g.variable_diffusion2d(4, contrast=0.5), "contrast"),
    (lambda g: g.variable_diffusion2d(4, contrast=float("inf")), "contrast"),
    (lambda g: g.helmholtz2d(4, k=float("nan")), "k must"),   # a NaN matrix
    (lambda g: g.random_spd(4, cond=0.0), "cond"),
    (lambda g: g.random_spd(0), "n must"),
])
def test_gallery_coefficients_are_checked(call, needle):
    from linsolve import gallery

    with pytest.raises(OptionError, match=needle):
        call(gallery)


def test_gallery_smallest_sizes_against_dense_references():
    from linsolve import gallery

    assert gallery.poisson2d(1).toarray().tolist() == [[4.0]]
    assert gallery.poisson3d(np.int64(1)).toarray().tolist() == [[6.0]]
    C = gallery.convection_diffusion2d(3, peclet=0.0).toarray()
    assert np.allclose(C, gallery.poisson2d(3, scaled=True).toarray())
    S = gallery.random_spd(5, cond=1.0)
    assert np.allclose(S, np.eye(5))

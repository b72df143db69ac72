"""Young's SOR theory utilities against the analytic model problem."""
from __future__ import annotations

import math

import numpy as np
import pytest

from linsolve import gallery
from linsolve.core.errors import OptionError, SolverError
from linsolve.relaxation.young import (
    instance_optimal_omega,
    iteration_count,
    jacobi_spectral_radius,
    model_problem_omega,
    optimal_omega,
    young_omega,
)


@pytest.mark.parametrize("n", [5, 12])
def test_jacobi_radius_of_model_problem_is_cos_pi_h(n):
    A = gallery.poisson2d(n)
    assert jacobi_spectral_radius(A) == pytest.approx(math.cos(math.pi / (n + 1)), rel=1e-10)


def test_jacobi_radius_sparse_path_agrees_with_dense():
    A = gallery.poisson2d(24)  # 576 unknowns: the ARPACK path
    rho = jacobi_spectral_radius(A, dense_below=100)
    assert rho == pytest.approx(math.cos(math.pi / 25), rel=1e-8)
    B = gallery.variable_diffusion2d(10, contrast=20.0, seed=3)
    assert jacobi_spectral_radius(B, dense_below=10) == pytest.approx(jacobi_spectral_radius(B), rel=1e-8)


@pytest.mark.parametrize("n", [5, 10, 16])
def test_young_optimal_omega_on_model_problem(n):
    A = gallery.poisson2d(n)
    expected = 2.0 / (1.0 + math.sin(math.pi / (n + 1)))
    assert optimal_omega(A) == pytest.approx(expected, rel=1e-10)
    assert model_problem_omega(n) == pytest.approx(expected, rel=1e-15)
    # scaling A does not change the Jacobi matrix, hence not w*
    assert optimal_omega(gallery.poisson2d(n, scaled=True)) == pytest.approx(expected, rel=1e-10)


def test_young_omega_is_asymptotically_optimal():
    """rho(SOR_w) is minimised at w* with value w* - 1 (Young): check against the
    spectral radius of the dense SOR iteration matrix on a grid of w."""
    n = 6
    A = gallery.poisson2d(n).toarray()
    D, L, U = np.diag(np.diag(A)), np.tril(A, -1), np.triu(A, 1)

    def rho(w):
        G = np.linalg.solve(D + w * L, (1 - w) * D - w * U)
        return np.max(np.abs(np.linalg.eigvals(G)))

    ws = young_omega(math.cos(math.pi / (n + 1)))
    assert rho(ws) == pytest.approx(ws - 1, rel=1e-3)
    for w in np.linspace(1.0, 1.95, 12):
        assert rho(w) >= rho(ws) - 1e-6


def test_instance_optimal_search_beats_grid_and_young():
    A = gallery.poisson2d(10)
    b = np.random.default_rng(0).standard_normal(A.shape[0])
    w_opt, k_opt = instance_optimal_omega(A, b)
    grid = np.linspace(1.0, 1.95, 20)
    counts = [iteration_count(A, b, w) for w in grid]
    assert k_opt <= min(counts)
    assert k_opt == iteration_count(A, b, w_opt)
    assert k_opt <= iteration_count(A, b, optimal_omega(A))
    # and it lands near Young's w for the model problem
    assert abs(w_opt - model_problem_omega(10)) < 0.1


def test_instance_optimal_for_ssor_pcg():
    A = gallery.poisson2d(10)
    b = np.random.default_rng(1).standard_normal(A.shape[0])
    w, k = instance_optimal_omega(A, b, method="ssor-pcg", relative_to="b")
    assert 0 < w < 2
    assert k <= iteration_count(A, b, 1.0, method="ssor-pcg", relative_to="b")


def test_bad_inputs():
    with pytest.raises(OptionError, match="Jacobi spectral radius"):
        young_omega(1.0)
    A = gallery.poisson2d(3).tolil()
    A[0, 0] = 0
    with pytest.raises(SolverError, match="diagonal"):
        jacobi_spectral_radius(A.tocsr())
    with pytest.raises(OptionError, match="method"):
        iteration_count(gallery.poisson2d(3), np.ones(9), 1.0, method="gmres")

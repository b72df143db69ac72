"""Statistical tests of the periodic Gaussian random field sampler against the covariance
``sigma^2 (-Laplacian + tau^2)^(-alpha)`` it claims to sample."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from datagen.family import FamilyError
from datagen.grf import GaussianRandomField, sample_grf

SHAPE = (12, 20)  # rectangular on purpose
M = 600  # samples for the moment tests: per-mode relative std 1/sqrt(M) ~ 4 %


def _periodogram_ratio(grf: GaussianRandomField, samples: np.ndarray, spectrum: np.ndarray):
    """Per-mode mean of |fft(u)_k|^2 / (N^2 lambda_k) and its z-score under the model."""
    N = np.prod(grf.shape)
    axes = tuple(range(1, samples.ndim))
    P = np.abs(np.fft.fftn(samples, axes=axes)) ** 2 / N**2
    ratio = P.mean(axis=0) / spectrum
    # Self-conjugate modes (every index 0 or n/2) are real Gaussians: chi^2_1, variance 2.
    selfconj = np.ones(grf.shape, dtype=bool)
    for ax, n in enumerate(grf.shape):
        k = np.fft.fftfreq(n, 1.0 / n)
        ok = (k == 0) | (np.abs(k) == n / 2)
        selfconj &= ok.reshape([-1 if i == ax else 1 for i in range(len(grf.shape))])
    var = np.where(selfconj, 2.0, 1.0)
    z = (ratio - 1.0) / np.sqrt(var / samples.shape[0])
    return ratio, z


@pytest.fixture(scope="module")
def default_samples():
    grf = GaussianRandomField(SHAPE)
    return grf, grf.sample(np.random.default_rng(2024), n=M)


def test_spectrum_matches_prescribed_covariance(default_samples):
    grf, u = default_samples
    ratio, z = _periodogram_ratio(grf, u, grf.spectrum())
    assert np.max(np.abs(z)) < 5.0
    # Half the modes are conjugate duplicates, so about N/2 independent z-scores.
    assert abs(np.mean(z)) < 4.0 / np.sqrt(np.prod(SHAPE) / 2)
    assert 0.7 < np.std(z) < 1.3


def test_fitted_spectral_decay_is_alpha(default_samples):
    grf, u = default_samples
    P = (np.abs(np.fft.fftn(u, axes=(1, 2))) ** 2).mean(axis=0)
    kx = np.fft.fftfreq(SHAPE[0], 1.0 / SHAPE[0])[:, None]
    ky = np.fft.fftfreq(SHAPE[1], 1.0 / SHAPE[1])[None, :]
    q = 4 * np.pi**2 * (kx**2 + ky**2) + grf.tau**2
    slope = np.polyfit(np.log(q).ravel(), np.log(P).ravel(), 1)[0]
    assert slope == pytest.approx(-grf.alpha, abs=0.05)


def test_covariance_function_and_variance(default_samples):
    grf, u = default_samples
    N = np.prod(SHAPE)
    lam = grf.spectrum()
    # Stationary covariance C(d) = sum_k lambda_k exp(2 pi i k.d / n) = N ifft(lambda)(d).
    C = np.real(np.fft.ifftn(lam)) * N
    emp = np.real(np.fft.ifftn(np.abs(np.fft.fftn(u, axes=(1, 2))) ** 2, axes=(1, 2))).mean(axis=0) / N
    assert np.max(np.abs(emp - C)) < 0.08 * C[0, 0]
    assert C[0, 0] == pytest.approx(grf.pointwise_variance())
    assert u.var() == pytest.approx(grf.pointwise_variance(), rel=0.1)


def test_marginals_are_gaussian(default_samples):
    grf, u = default_samples
    z = u[:, 3, 7] / np.sqrt(grf.pointwise_variance())
    assert stats.kstest(z, "norm").pvalue > 1e-3


def test_wrong_spectrum_is_detected():
    """The spectrum test has power: alpha = 2 samples fail against the alpha = 2.5 model."""
    wrong = GaussianRandomField(SHAPE, alpha=2.0, sigma=7.0**1.5)
    model = GaussianRandomField(SHAPE)
    u = wrong.sample(np.random.default_rng(1), n=M)
    _, z = _periodogram_ratio(model, u, model.spectrum())
    assert np.max(np.abs(z)) > 5.0


def test_default_sigma_normalisation():
    g = GaussianRandomField((8, 8), alpha=2.5, tau=7.0)
    assert g.sigma == pytest.approx(7.0**1.5)  # tau^(alpha - d/2), d = 2
    lam = g.spectrum()
    assert lam[0, 0] == pytest.approx(g.sigma**2 * 7.0 ** (-5.0))
    assert lam[1, 0] == pytest.approx(g.sigma**2 * (4 * np.pi**2 + 49.0) ** (-2.5))
    g3 = GaussianRandomField((4, 4, 4), alpha=3.0, tau=2.0)
    assert g3.sigma == pytest.approx(2.0**1.5)


def test_lengths_scale_wavenumbers():
    g = GaussianRandomField((8, 8), lengths=(2.0, 0.5))
    lam = g.spectrum()
    assert lam[1, 0] == pytest.approx(g.sigma**2 * ((2 * np.pi / 2.0) ** 2 + g.tau**2) ** (-g.alpha))
    assert lam[0, 1] == pytest.approx(g.sigma**2 * ((2 * np.pi / 0.5) ** 2 + g.tau**2) ** (-g.alpha))


def test_seeded_and_shapes():
    a = sample_grf((9, 5), np.random.default_rng(7), n=3)
    b = sample_grf((9, 5), np.random.default_rng(7), n=3)
    c = sample_grf((9, 5), np.random.default_rng(8), n=3)
    assert a.shape == (3, 9, 5) and np.isrealobj(a)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    one = GaussianRandomField(6).sample(np.random.default_rng(0))
    assert one.shape == (6, 6)
    assert GaussianRandomField(7, dim=1).sample(np.random.default_rng(0), n=2).shape == (2, 7)


def test_zero_mean_drops_constant_mode():
    u = GaussianRandomField((10, 6), zero_mean=True).sample(np.random.default_rng(3), n=5)
    np.testing.assert_allclose(u.mean(axis=(1, 2)), 0.0, atol=1e-12)
    assert u.std() > 0


@pytest.mark.parametrize("kwargs,word", [
    ({"alpha": 0.0}, "alpha"), ({"alpha": np.nan}, "alpha"), ({"tau": -1.0}, "tau"),
    ({"sigma": -2.0}, "sigma"), ({"lengths": (1.0,)}, "lengths"), ({"lengths": (1.0, 0.0)}, "lengths"),
])
def test_bad_parameters(kwargs, word):
    with pytest.raises(FamilyError, match=word):
        GaussianRandomField((4, 4), **kwargs)


def test_bad_sample_arguments():
    g = GaussianRandomField((4, 4))
    with pytest.raises(FamilyError, match="rng"):
        g.sample(0)
    with pytest.raises(FamilyError, match="number of GRF samples must be an integer >= 0, got -1"):
        g.sample(np.random.default_rng(0), n=-1)
    with pytest.raises(FamilyError, match="shape"):
        GaussianRandomField((4, 0))
    assert issubclass(FamilyError, ValueError)

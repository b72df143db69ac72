"""Gaussian random fields on a periodic grid with covariance ``sigma^2 (-Laplacian + tau^2)^(-alpha)``.

This is the prior the FNO and SKR data generators put on Darcy/Helmholtz coefficients
(``a = exp(field)``). Normalisation, stated exactly because generators in the literature
differ by factors of 2 and of the grid size:

* The field lives on the periodic box ``[0, L_1) x ... x [0, L_d)`` (default unit lengths),
  sampled at ``n_i`` equispaced points per axis (any sizes, rectangular grids included).
* The covariance operator has eigenfunctions ``exp(2 pi i k.x / L)`` (integer ``k`` within the
  grid's Nyquist band) and eigenvalues
  ``lambda_k = sigma^2 (4 pi^2 |k / L|^2 + tau^2)^(-alpha)``.
* The sampled field is ``u(x_j) = sum_k sqrt(lambda_k) xi_k exp(2 pi i k.x_j / L)`` with
  ``xi_k`` standard complex Gaussians (Hermitian-symmetric so that ``u`` is real), hence
  ``Cov(u(x), u(y)) = sum_k lambda_k exp(2 pi i k.(x - y) / L)`` exactly (the truncated
  Karhunen-Loeve series, no extra factor) and ``E |fft(u)_k|^2 = N^2 lambda_k`` with
  ``N = prod(n_i)``.
* ``sigma`` defaults to ``tau^(alpha - d/2)`` (FNO's choice; ``sigma tau^(alpha-1)`` style
  scalings in 2-D), which makes the spectrum depend on ``|k| / tau`` only up to the factor
  ``tau^(-d)``; pass ``sigma`` to override.
* The k = 0 mode (the field's mean) is kept, as the covariance prescribes; ``zero_mean=True``
  drops it like FNO's generator does.

Defaults ``alpha = 2.5, tau = 7`` are the SKR setting.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from linsolve.core.validation import check_int, check_real

from .family import FamilyError


class GaussianRandomField:
    """Seeded sampler of a periodic Gaussian random field on a ``shape`` grid.

    >>> grf = GaussianRandomField((64, 48))
    >>> u = grf.sample(np.random.default_rng(0))          # one field, shape (64, 48)
    >>> us = grf.sample(np.random.default_rng(0), n=10)   # ten fields, shape (10, 64, 48)
    """

    def __init__(self, shape: Sequence[int] | int, alpha: float = 2.5, tau: float = 7.0,
                 sigma: float | None = None, lengths: Sequence[float] | None = None,
                 zero_mean: bool = False, dim: int = 2):
        if isinstance(shape, (int, np.integer)):
            shape = (int(shape),) * dim
        self.shape = tuple(int(s) for s in shape)
        d = len(self.shape)
        if d < 1 or any(s < 1 for s in self.shape):
            raise FamilyError(f"GRF grid shape must be positive sizes, got {shape}")
        self.lengths = (1.0,) * d if lengths is None else tuple(float(v) for v in lengths)
        if len(self.lengths) != d or any(not np.isfinite(v) or v <= 0 for v in self.lengths):
            raise FamilyError(f"GRF lengths must be {d} positive numbers, got {lengths}")
        check_real("GRF alpha", alpha, 0.0, low_open=True, error=FamilyError)
        check_real("GRF tau", tau, 0.0, low_open=True, error=FamilyError)
        if sigma is None:
            sigma = tau ** (alpha - d / 2.0)
        if not np.isfinite(sigma) or sigma < 0:
            raise FamilyError(f"GRF sigma must be non-negative, got {sigma}")
        self.alpha, self.tau, self.sigma = float(alpha), float(tau), float(sigma)
        self.zero_mean = bool(zero_mean)
        self._sqrt_half = np.sqrt(self._eigenvalues(rfft=True))

    def _wavenumbers(self, rfft: bool) -> np.ndarray:
        """|2 pi k / L|^2 on the FFT grid (last axis halved when ``rfft``)."""
        axes = []
        for i, (n, L) in enumerate(zip(self.shape, self.lengths, strict=True)):
            k = np.fft.rfftfreq(n, 1.0 / n) if (rfft and i == len(self.shape) - 1) else np.fft.fftfreq(n, 1.0 / n)
            axes.append((2.0 * np.pi * k / L) ** 2)
        return sum(np.meshgrid(*axes, indexing="ij", sparse=True))

    def _eigenvalues(self, rfft: bool) -> np.ndarray:
        lam = self.sigma**2 * (self._wavenumbers(rfft) + self.tau**2) ** (-self.alpha)
        lam = np.array(lam, dtype=float)
        if self.zero_mean:
            lam.flat[0] = 0.0
        return lam

    def spectrum(self) -> np.ndarray:
        """The covariance eigenvalues ``lambda_k`` on the full FFT grid (``np.fft.fftn`` order)."""
        return self._eigenvalues(rfft=False)

    def pointwise_variance(self) -> float:
        """``Var u(x) = sum_k lambda_k`` (the same at every grid point)."""
        return float(self.spectrum().sum())

    def sample(self, rng: np.random.Generator, n: int | None = None) -> np.ndarray:
        """``n`` independent fields, shape ``(n, *shape)``; one field of ``shape`` when n is None."""
        if not isinstance(rng, np.random.Generator):
            raise FamilyError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
        count = 1 if n is None else check_int("number of GRF samples", n, 0, whole_floats=True, error=FamilyError)
        # Colouring real white noise in Fourier space gives the Hermitian symmetry for free:
        # fft(w) has E|fft(w)_k|^2 = N, so sqrt(N) * ifft(sqrt(lambda) fft(w)) has the
        # covariance sum_k lambda_k e_k(x) conj(e_k(y)) stated in the module docstring.
        axes = tuple(range(1, len(self.shape) + 1))
        w = rng.standard_normal((count, *self.shape))
        u = np.fft.irfftn(np.fft.rfftn(w, axes=axes) * self._sqrt_half, s=self.shape, axes=axes)
        u *= np.sqrt(np.prod(self.shape))
        return u[0] if n is None else u


def sample_grf(shape, rng: np.random.Generator, n: int | None = None, **kwargs) -> np.ndarray:
    """Functional shortcut: ``GaussianRandomField(shape, **kwargs).sample(rng, n)``."""
    return GaussianRandomField(shape, **kwargs).sample(rng, n)


__all__ = ["GaussianRandomField", "sample_grf"]

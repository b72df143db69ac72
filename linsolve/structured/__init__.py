"""Solvers for structured (tensor-product) systems: FFT/tridiagonal Poisson, Thomas factors."""

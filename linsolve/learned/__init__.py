"""Learned solvers."""

"""Sorted Krylov recycling: GCRO-DR, recycled CG, their kernels, ordering, solve_sequence."""

"""The library baselines (SciPy, PETSc, PyAMG Krylov methods) and sparse direct solvers."""

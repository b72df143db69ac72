"""PETSc: utilities, the KSP driver solver, the Python KSP, MPI row layouts."""

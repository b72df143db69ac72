"""Sorted Krylov recycling: GCRO-DR (the compiled real path, the complex path and the rules they
share), recycled CG, their kernels, ordering, solve_sequence."""

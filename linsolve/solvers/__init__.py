"""One module per method; each registers its solvers with ``linsolve.registry.register``."""

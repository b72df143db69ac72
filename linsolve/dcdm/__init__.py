"""Deep conjugate direction method (Kaneda et al., ICML 2023): networks (``model``),
training (``python -m linsolve.dcdm.train``), shipped weights and their loading
(``loading``). The solver itself is ``make_solver("dcdm")``. Submodules import torch;
this package does not, so ``import linsolve`` stays light."""

"""Deep conjugate direction method (Kaneda et al., ICML 2023): the solver (``solver``,
``make_solver("dcdm")``), networks (``model``, ``mgcycle``; their registry ``networks``), training on given systems
(``train``; the command for ``datagen``'s obstacle geometries is ``python -m
datagen.dcdm_training``), shipped
weights and their loading (``loading``), and the ``mg-cycle`` network compiled into sparse
operators for the CPU (``compiled``: numba, no PyTorch in the solve loop). Submodules import
torch (``compiled`` only to read weights); this package does not, so ``import linsolve``
stays light. The SciPy-style function is ``linsolve.dcdm(A, b, rtol=1e-6, grid=grid)``.
"""

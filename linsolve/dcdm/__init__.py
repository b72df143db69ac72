"""Deep conjugate direction method (Kaneda et al., ICML 2023): networks (``model``),
training (``python -m linsolve.dcdm.train``), shipped weights and their loading
(``loading``), and the ``mg-cycle`` network compiled into sparse operators for the CPU
(``compiled``: numba, no PyTorch in the solve loop). The solver itself is
``make_solver("dcdm")``. Submodules import torch (``compiled`` only to read weights);
this package does not, so ``import linsolve`` stays light.

Every registered solver also has a SciPy-style function ``linsolve.<name>``; for this
solver that name is taken by this package, so the package itself is callable:
``x, info = linsolve.dcdm(A, b, rtol=1e-6, grid=grid)``.
"""
from __future__ import annotations

import sys
import types


class _CallablePackage(types.ModuleType):
    def __call__(self, *args, **kwargs):
        from .. import scipy_function

        return scipy_function("dcdm")(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage

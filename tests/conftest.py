"""Shared fixtures. Tests that need petsc4py take the ``petsc`` fixture: under `make test`
and in CI (LINSOLVE_REQUIRE_PETSC=1 or CI=true) a missing petsc4py fails loudly; a bare
`pytest` run without PETSc skips only those tests. The same holds for torch (DCDM, the
channel's torch backend): its ``importorskip`` calls would otherwise skip core tests in CI."""
from __future__ import annotations

import os

import numpy as np
import pytest


def _petsc_required() -> bool:
    return os.environ.get("CI", "").lower() == "true" or os.environ.get("LINSOLVE_REQUIRE_PETSC") == "1"


def pytest_sessionstart(session):
    if _petsc_required():
        try:
            import torch  # noqa: F401
        except ImportError as exc:  # pragma: no cover
            pytest.exit(f"torch is required here (CI or make test) but missing: {exc}", returncode=1)


@pytest.fixture(scope="session")
def petsc():
    try:
        from linsolve.petsc_support.utils import petsc as _petsc

        return _petsc()
    except ImportError as exc:  # pragma: no cover
        if _petsc_required():
            pytest.fail(f"petsc4py is required here (CI or make test) but missing: {exc}")
        return pytest.importorskip("petsc4py")
    except ValueError as exc:  # PetscUnavailableError
        if _petsc_required():
            pytest.fail(f"petsc4py is required here (CI or make test) but missing: {exc}")
        return pytest.importorskip("petsc4py")


@pytest.fixture
def rng():
    return np.random.default_rng(1234)

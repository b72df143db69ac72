"""The error of the HDF5 store."""
from __future__ import annotations

from linsolve import SolverError

__all__ = ["StoreError"]


class StoreError(SolverError):
    """A file that is missing, unreadable or not in the datagen layout."""

"""datagen: PDE problem families that produce sequences of linear systems, an ordered
generation pipeline over any ``linsolve`` solver, and an HDF5 store in The Well's layout."""
from __future__ import annotations

from .family import Family, available_families, get_family, register_family

__all__ = ["Family", "available_families", "get_family", "register_family"]


def __getattr__(attr):
    if attr == "open_dataset":
        from .store import open_dataset

        return open_dataset
    raise AttributeError(f"module 'datagen' has no attribute {attr!r}")

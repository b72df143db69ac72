"""The surrogate architectures; importing this package registers them with
:mod:`operators.registry` (:mod:`operators.factory` imports it before a lookup).
Model cards: ``operators/models/cards/``."""
from __future__ import annotations

from . import fno, ifactformer_m, ifactformer_o, ifno  # noqa: F401  (registration)
from .factorized import IFactFormer
from .fno import FNO3d
from .ifactformer_m import IFactFormerM
from .ifactformer_o import IFactFormerO
from .ifno import IFNO3d

__all__ = ["IFactFormer", "IFactFormerM", "IFactFormerO", "FNO3d", "IFNO3d"]

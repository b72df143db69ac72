"""``ifactformer-m``: the implicit factorized transformer with parallel factorized attention
(each axis kernel contracts the same values; the three results are concatenated)."""
from __future__ import annotations

from ..registry import register_model
from .factorized import IFactFormer


@register_model("ifactformer-m")
class IFactFormerM(IFactFormer):
    """IFactFormer-m (arXiv 2412.18840). Configuration keys and defaults: ``IFactFormer.DEFAULTS``;
    model card: ``operators/models/cards/ifactformer-m.md``."""

    parallel = True

"""``ifactformer-o``: the original implicit factorized transformer with chained factorized
attention (the values are contracted along x, then y, then z)."""
from __future__ import annotations

from ..registry import register_model
from .factorized import IFactFormer


@register_model("ifactformer-o")
class IFactFormerO(IFactFormer):
    """IFactFormer-o (arXiv 2412.18840). Configuration keys and defaults: ``IFactFormer.DEFAULTS``;
    model card: ``operators/models/cards/ifactformer-o.md``."""

    parallel = False

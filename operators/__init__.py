"""operators: neural-operator surrogates trained on ``datagen`` channel-flow trajectories.

    >>> import operators
    >>> operators.available_models()
    ['fno', 'ifactformer-m', 'ifactformer-o', 'ifno']
    >>> model = operators.make_model("ifactformer-m")          # doctest: +SKIP
    >>> model(x).shape        # x: (B, model.in_steps, 3, NX, NY, NZ)  # doctest: +SKIP

Every model has ``name``, ``config`` (``make_model(model.name, **model.config)`` rebuilds it),
``in_steps`` and ``set_normalization(mean, std)``; see ``operators/models/cards/``.
"""
from __future__ import annotations

from . import errors
from .errors import (
    DuplicateModelError,
    NonFiniteError,
    OperatorError,
    OptionError,
    ShapeError,
    UnknownModelError,
)
from .registry import available_models, make_model, model_class, register_model


def load_pretrained(name, directory=None, device="cpu"):
    """A shipped checkpoint by name, checked against its model card (``operators.pretrained``)."""
    from .pretrained import load_pretrained as _load

    return _load(name, directory, device)


__all__ = [
    "make_model", "load_pretrained", "available_models", "model_class", "register_model", "errors",
    "OperatorError", "OptionError", "ShapeError", "NonFiniteError", "UnknownModelError", "DuplicateModelError",
]

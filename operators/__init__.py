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
from .factory import available_models, make_model, model_class
from .registry import register_model


def load_pretrained(name, directory=None, device="cpu"):
    """Load a shipped checkpoint by name, checked against its model card.

    Parameters
    ----------
    name : str
        E.g. ``"ifactformer-m-cpu"``; ``operators.pretrained.available_pretrained()`` lists them.
    directory : str or pathlib.Path, optional
        Where to look (default ``operators/pretrained/``).
    device : str, optional
        Torch device to load onto.

    Returns
    -------
    torch.nn.Module
        In eval mode, with ``model.card`` (the model card: data and training commands, metrics,
        checksum) and ``model.checkpoint_meta`` (grid, box, normalisation, in_steps, project).

    Raises
    ------
    operators.pretrained.PretrainedError
        An unknown name (listing the known ones), a missing or malformed card, a checksum
        mismatch, a checkpoint of another format, weights that do not fit the model, or a
        parameter count that differs from the card.

    Examples
    --------
    >>> import operators
    >>> model = operators.load_pretrained("ifactformer-m-cpu")
    >>> model.name, model.checkpoint_meta["grid"], model.training
    ('ifactformer-m', [16, 17, 8], False)
    """
    from .pretrained import load_pretrained as _load

    return _load(name, directory, device)


__all__ = [
    "make_model", "load_pretrained", "available_models", "model_class", "register_model", "errors",
    "OperatorError", "OptionError", "ShapeError", "NonFiniteError", "UnknownModelError", "DuplicateModelError",
]

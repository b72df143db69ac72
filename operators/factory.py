"""Surrogate models by name: ``make_model``, ``available_models`` and ``model_class`` look the
name up in :data:`operators.registry.MODELS` after importing the built-in model modules.

    >>> import operators
    >>> operators.available_models()
    ['fno', 'ifactformer-m', 'ifactformer-o', 'ifno']
    >>> model = operators.make_model("ifactformer-m", iterations=2)   # doctest: +SKIP
"""
from __future__ import annotations

from .registry import MODELS


def _ensure_loaded() -> None:
    # importing the package registers the built-in models (and imports torch, hence not at the top)
    from . import models  # noqa: F401


def available_models() -> list[str]:
    """Names accepted by :func:`make_model`, sorted.

    Returns
    -------
    list of str

    Examples
    --------
    >>> "ifactformer-m" in available_models()
    True
    """
    _ensure_loaded()
    return MODELS.names()


def model_class(name: str) -> type:
    """The class registered under ``name``.

    Parameters
    ----------
    name : str
        One of :func:`available_models`.

    Returns
    -------
    type
        The model class (a ``torch.nn.Module`` subclass); ``DEFAULTS`` holds its configuration
        keys and defaults.

    Raises
    ------
    UnknownModelError
        If no model has that name; the message lists the known names.

    Examples
    --------
    >>> import operators
    >>> operators.model_class("fno").DEFAULTS["in_steps"]
    5
    """
    _ensure_loaded()
    return MODELS.get(name)


def make_model(name: str, **config):
    """Build a surrogate model by name.

    Parameters
    ----------
    name : str
        One of :func:`available_models`.
    **config
        Configuration keys of that model (see its model card); every key left out takes its
        default. ``model.config`` holds the full configuration, so
        ``make_model(model.name, **model.config)`` rebuilds the same architecture.

    Returns
    -------
    torch.nn.Module
        With ``name``, ``config``, ``in_steps`` and ``set_normalization(mean, std)``; called on a
        float32 tensor (B, in_steps, 3, NX, NY, NZ) it returns the next snapshot (B, 3, NX, NY, NZ).

    Raises
    ------
    UnknownModelError
        For an unknown name.
    OptionError
        For an unknown configuration key or a bad value.

    Examples
    --------
    >>> import torch, operators
    >>> _ = torch.manual_seed(0)
    >>> m = operators.make_model("ifactformer-m", dim=24, heads=2, dim_head=12, iterations=2)  # a tiny one
    >>> m(torch.zeros(1, m.in_steps, 3, 8, 9, 4)).shape
    torch.Size([1, 3, 8, 9, 4])
    >>> operators.make_model(m.name, **m.config).config == m.config
    True
    """
    return model_class(name)(**config)

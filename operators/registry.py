"""The model registry: one name per surrogate architecture. A leaf module: the model modules
under ``operators/models/`` register themselves here on import, and :mod:`operators.factory`
(``make_model``, ``available_models``, ``model_class``) imports them before a lookup.
"""
from __future__ import annotations

from collections.abc import Callable

from linsolve.core.registry import Registry

from .errors import DuplicateModelError, OptionError, UnknownModelError

#: The registered model classes by name (filled when ``operators.models`` is imported).
MODELS: Registry[type] = Registry("model", unknown=UnknownModelError, duplicate=DuplicateModelError,
                                  invalid=OptionError)


def register_model(name: str) -> Callable[[type], type]:
    """Class decorator that registers a model class under ``name``.

    Parameters
    ----------
    name : str
        The registry name (lower case, e.g. ``"ifactformer-m"``); stored on the class as ``name``.

    Returns
    -------
    callable
        The decorator; it returns the class unchanged apart from ``cls.name = name``.

    Raises
    ------
    DuplicateModelError
        If ``name`` is already registered to another class.
    OptionError
        If ``name`` is not a non-empty string.

    Examples
    --------
    >>> @register_model("my-model")          # doctest: +SKIP
    ... class MyModel(torch.nn.Module): ...
    """
    return MODELS.register(name, attribute="name")

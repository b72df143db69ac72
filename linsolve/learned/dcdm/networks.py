"""The registry of DCDM network architectures. A leaf module (no torch, no network module):
``model`` and ``mgcycle`` register their classes here on import, and
``model.build_model`` / ``model.available_models`` import both before a lookup."""
from __future__ import annotations

from collections.abc import Callable

from linsolve.core.errors import DuplicateNameError, UnknownNameError
from linsolve.core.registry import Registry


class UnknownNetworkError(UnknownNameError):
    """A DCDM architecture name that is not registered; the message lists the registered ones."""


#: The DCDM network classes by architecture name (``config["arch"]`` in weights files).
NETWORKS: Registry[type] = Registry("DCDM network", unknown=UnknownNetworkError, duplicate=DuplicateNameError)


def register_network(name: str) -> Callable[[type], type]:
    """Class decorator that registers a DCDM network class under ``name``.

    Parameters
    ----------
    name : str
        The architecture name; stored on the class as ``arch`` (and in its ``config``).

    Returns
    -------
    callable
        The decorator; it returns the class unchanged apart from ``cls.arch = name``.

    Raises
    ------
    DuplicateNameError
        ``name`` is already registered to another class.
    OptionError
        ``name`` is not a non-empty string.

    Examples
    --------
    >>> import torch
    >>> from linsolve.learned.dcdm.networks import NETWORKS, register_network
    >>> @register_network("doc-example-identity")
    ... class Identity(torch.nn.Module):
    ...     def forward(self, r, geo=None, gains=None):
    ...         return r
    >>> NETWORKS.get("doc-example-identity").arch
    'doc-example-identity'
    >>> _ = NETWORKS.remove("doc-example-identity")   # (the example unregisters it)
    """

    return NETWORKS.register(name, attribute="arch")

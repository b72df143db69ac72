"""Turbulent channel-flow DNS (datagen family ``channel``): a staggered second-order
finite-difference Navier-Stokes solver on NumPy or PyTorch, with the pressure equation
solved through ``linsolve`` (default ``fft-poisson``), statistics against Moser, Kim &
Mansour (1999), filtering onto coarse grids and dataset generation."""
from __future__ import annotations

from datagen.channel.checkpoint import load_checkpoint, save_checkpoint
from datagen.channel.dns import (
    ChannelBlowUp,
    ChannelConfig,
    ChannelDNS,
    dean_bulk_velocity,
    laminar_profile,
    perturbed_laminar,
)
from datagen.channel.grid import ChannelGrid

__all__ = ["PRESETS", "ChannelConfig", "ChannelDNS", "ChannelGrid", "ChannelBlowUp", "laminar_profile", "perturbed_laminar",
           "dean_bulk_velocity", "save_checkpoint", "load_checkpoint", "generate"]


def __getattr__(name):
    if name == "PRESETS":
        from datagen.channel.trajectories import PRESETS

        return PRESETS
    raise AttributeError(f"module 'datagen.channel' has no attribute {name!r}")


def generate(*args, **kwargs):
    """Write a channel-flow dataset (imported on first use).

    Parameters
    ----------
    *args, **kwargs
        Those of ``datagen.channel.trajectories.generate``.

    Returns
    -------
    Path
        The dataset written.
    """
    from datagen.channel.trajectories import generate as _generate

    return _generate(*args, **kwargs)

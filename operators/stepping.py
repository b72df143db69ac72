"""One step of a trained surrogate, as training, validation rollouts and ``operators rollout``
run it: the torch device, the divergence-free projection of the data's grid, and the predictor
(the model, followed by the projection when there is one)."""
from __future__ import annotations

from linsolve.core.errors import OptionError

__all__ = ["resolve_device", "make_projector", "predictor"]


def resolve_device(device: str):
    """``torch.device(device)`` for ``cpu``, ``cuda`` or ``cuda:N``; ``OptionError`` for another name or
    for CUDA where torch sees no CUDA device."""
    import torch

    if device not in ("cpu", "cuda") and not str(device).startswith("cuda:"):
        raise OptionError(f"device must be cpu or cuda, got {device!r}")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise OptionError("device cuda was asked for but torch sees no CUDA device")
    return torch.device(device)


def make_projector(data):
    """The divergence-free projection (``operators.projection.Projector``) on the grid and box of the
    channel data ``data`` (an ``operators.data.ChannelData``)."""
    from .projection import Projector

    return Projector(data.grid, float(data.attrs["Lx"]), float(data.attrs["Lz"]))


def predictor(model, projector=None):
    """x (B, in_steps, 3, NX, NY, NZ) -> next snapshot, projected when ``projector`` is given."""
    if projector is None:
        return model

    def step(x):
        return projector(model(x))

    return step

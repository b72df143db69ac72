"""Parts shared by every surrogate model: configuration checking, the per-channel
normalisation buffers, input validation and the grid coordinates derived from a shape."""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from linsolve.core import validation

from ..errors import NonFiniteError, OptionError, ShapeError

#: Box lengths (x, z) of the paper's Re_tau 180 channel, 4 pi x 2 x 4 pi / 3; used only to scale
#: the coordinates fed to positional encodings.
PAPER_BOX = [4 * math.pi, 4 * math.pi / 3]


# The shared checks (linsolve.core.validation) raising operators' OptionError.
def check_int(name: str, value: Any, minimum: int = 1) -> int:
    return validation.check_int(name, value, minimum, error=OptionError)


def check_float(name: str, value: Any, positive: bool = True) -> float:
    return validation.check_real(name, value, 0.0 if positive else None, low_open=True, error=OptionError)


def check_bool(name: str, value: Any) -> bool:
    return validation.check_bool(name, value, error=OptionError)


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    return validation.check_choice(name, value, choices, error=OptionError)


def check_ints(name: str, value: Any, length: int, minimum: int = 1) -> list[int]:
    if validation.is_int(value):
        value = [value] * length
    if not isinstance(value, (list, tuple)) or len(value) != length:
        raise OptionError(f"{name} must be an integer or a list of {length} integers, got {value!r}")
    return [check_int(f"{name}[{i}]", v, minimum) for i, v in enumerate(value)]


def check_floats(name: str, value: Any, length: int) -> list[float]:
    if not isinstance(value, (list, tuple)) or len(value) != length:
        raise OptionError(f"{name} must be a list of {length} positive numbers, got {value!r}")
    return [check_float(f"{name}[{i}]", v) for i, v in enumerate(value)]


def resolve_config(model: str, defaults: dict, given: dict) -> dict:
    """``defaults`` updated by ``given``; an unknown key is an OptionError naming the known ones."""
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise OptionError(f"{model}: unknown configuration key(s) {', '.join(map(repr, unknown))}; "
                          f"known keys: {', '.join(sorted(defaults))}")
    cfg = dict(defaults)
    cfg.update(given)
    return cfg


def axis_coordinates(nx: int, ny: int, nz: int, box: list[float], coords: str,
                     device=None, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """1-D coordinates of the three axes for a grid of shape (nx, ny, nz).

    ``coords="grid"``: the channel grid of the contract: x and z uniform and periodic
    (x_i = Lx i / nx), y the Gauss-Lobatto points shifted to [0, 2] (y_j = 1 - cos(pi j / (ny - 1))).
    ``coords="linspace"``: the authors' choice, ``linspace(0, L, n)`` on every axis (L_y = 2).
    """
    lx, lz = box
    if coords == "grid":
        x = torch.arange(nx, dtype=torch.float64) * (lx / nx)
        j = torch.arange(ny, dtype=torch.float64)
        y = 1.0 - torch.cos(math.pi * j / max(ny - 1, 1))
        z = torch.arange(nz, dtype=torch.float64) * (lz / nz)
    else:
        x = torch.linspace(0.0, lx, nx, dtype=torch.float64)
        y = torch.linspace(0.0, 2.0, ny, dtype=torch.float64)
        z = torch.linspace(0.0, lz, nz, dtype=torch.float64)
    return tuple(t.to(device=device, dtype=dtype) for t in (x, y, z))


class SurrogateModel(nn.Module):
    """Base class: ``name``, ``config``, ``in_steps``, normalisation buffers, input checks.

    Subclasses set ``DEFAULTS`` (the full configuration with default values) and implement
    ``_validate(cfg)`` (returns the checked configuration) and ``_forward(xn)``: ``xn`` the
    normalised input (B, in_steps, 3, NX, NY, NZ), returning the normalised prediction
    (B, 3, NX, NY, NZ).
    """

    name = "surrogate"
    DEFAULTS: dict = {}

    def __init__(self, **config):
        super().__init__()
        cfg = self._validate(resolve_config(self.name, self.DEFAULTS, config))
        self._config = cfg
        self.register_buffer("norm_mean", torch.zeros(3))
        self.register_buffer("norm_std", torch.ones(3))

    def _validate(self, cfg: dict) -> dict:  # pragma: no cover - every model overrides it
        return cfg

    @property
    def config(self) -> dict:
        """The full configuration (defaults included), JSON-serialisable."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self._config.items()}

    @property
    def in_steps(self) -> int:
        """Length of the input window (snapshots, oldest first)."""
        return int(self._config["in_steps"])

    def set_normalization(self, mean, std) -> None:
        """Set the per-velocity-channel statistics used to normalise input and de-normalise output.

        Parameters
        ----------
        mean, std : array_like of shape (3,)
            Mean and standard deviation of (u, v, w) over the training data; std > 0.

        Raises
        ------
        ShapeError
            If either is not of shape (3,).
        NonFiniteError
            If either holds NaN or Inf.
        OptionError
            If some std is not positive.

        Examples
        --------
        >>> model.set_normalization([0.8, 0.0, 0.0], [0.2, 0.05, 0.1])   # doctest: +SKIP
        """
        vals = []
        for what, a in (("mean", mean), ("std", std)):
            t = torch.as_tensor(np.asarray(a.detach().cpu() if isinstance(a, torch.Tensor) else a,
                                           dtype=np.float64))
            if t.shape != (3,):
                raise ShapeError(f"normalisation {what} must have shape (3,), got {tuple(t.shape)}")
            if not torch.isfinite(t).all():
                raise NonFiniteError(f"normalisation {what} holds NaN or Inf: {t.tolist()}")
            vals.append(t)
        if (vals[1] <= 0).any():
            raise OptionError(f"normalisation std must be positive, got {vals[1].tolist()}")
        with torch.no_grad():
            self.norm_mean.copy_(vals[0].to(self.norm_mean))
            self.norm_std.copy_(vals[1].to(self.norm_std))

    def min_grid(self) -> tuple[int, int, int]:
        """The smallest (NX, NY, NZ) this configuration accepts."""
        return (2, 2, 2)

    def check_input(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor):
            raise ShapeError(f"{self.name}: input must be a torch.Tensor, got {type(x).__name__}")
        if x.ndim != 6 or x.shape[1] != self.in_steps or x.shape[2] != 3:
            raise ShapeError(f"{self.name}: input must have shape (B, {self.in_steps}, 3, NX, NY, NZ) "
                             f"(in_steps={self.in_steps}), got {tuple(x.shape)}")
        small = [f"{ax}={n} < {m}" for ax, n, m in zip("xyz", x.shape[3:], self.min_grid(), strict=True) if n < m]
        if small:
            raise OptionError(f"{self.name}: grid {tuple(x.shape[3:])} is too small for this configuration "
                              f"({', '.join(small)})")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Predict the next snapshot.

        Parameters
        ----------
        x : torch.Tensor
            float (B, in_steps, 3, NX, NY, NZ), physical units, oldest snapshot first; other
            dtypes are converted to the model's (float32 unless the model was converted).

        Returns
        -------
        torch.Tensor
            (B, 3, NX, NY, NZ), physical units.
        """
        self.check_input(x)
        if x.dtype != self.norm_mean.dtype:
            x = x.to(self.norm_mean.dtype)
        shape = (1, 1, 3, 1, 1, 1)
        xn = (x - self.norm_mean.view(shape)) / self.norm_std.view(shape)
        y = self._forward(xn)
        return y * self.norm_std.view(1, 3, 1, 1, 1) + self.norm_mean.view(1, 3, 1, 1, 1)

    def _forward(self, xn: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"name={self.name!r}, config={self.config}"

"""The staggered channel grid: periodic and uniform in x and z, cell faces stretched
toward the walls y = -1, +1 with a tanh map. u sits on x-faces, v on y-faces, w on
z-faces, p at cell centres; arrays are laid out (y, x, z)."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from linsolve.core.errors import OptionError
from linsolve.core.validation import check_choice, check_int, check_real


@dataclass
class ChannelGrid:
    nx: int = 32
    ny: int = 64
    nz: int = 32
    lx: float = math.pi
    lz: float = math.pi / 2
    stretch: float = 1.8
    #: y faces: "tanh" (stretched by ``stretch``) or "lobatto": the ny + 1 Gauss-Lobatto points
    #: -cos(pi j / ny), so v sits exactly on the points of the coarse dataset grid (the LES grid)
    yfaces: str = "tanh"

    def __post_init__(self):
        for name in ("nx", "ny", "nz"):
            setattr(self, name, check_int(f"channel grid {name}", getattr(self, name), 2, whole_floats=True))
        for name in ("nx", "nz"):
            if getattr(self, name) % 2:
                raise OptionError(f"channel grid {name} must be even (FFT layout), got {getattr(self, name)}")
        # finite lengths only: an infinite box would give dx = inf and a NaN pressure matrix
        for name in ("lx", "lz"):
            check_real(f"box length {name}", getattr(self, name), 0.0, low_open=True)
        check_real("stretch", self.stretch, 0.0, 10.0, high_open=True)
        check_choice("yfaces", self.yfaces, ("tanh", "lobatto"))
        eta = np.linspace(-1.0, 1.0, self.ny + 1)
        if self.yfaces == "lobatto":
            self.yf = -np.cos(np.pi * np.arange(self.ny + 1) / self.ny)
        else:
            self.yf = np.tanh(self.stretch * eta) / math.tanh(self.stretch) if self.stretch > 0 else eta
        self.yf[0], self.yf[-1] = -1.0, 1.0
        self.yc = 0.5 * (self.yf[1:] + self.yf[:-1])
        self.dyc = np.diff(self.yf)  # cell heights (ny)
        # distances between neighbouring centres, with the half-cells to the walls at both ends (ny+1)
        self.dyf = np.concatenate([[self.yc[0] + 1.0], np.diff(self.yc), [1.0 - self.yc[-1]]])
        self.dx = self.lx / self.nx
        self.dz = self.lz / self.nz
        self.xf = np.arange(self.nx) * self.dx
        self.xc = self.xf + 0.5 * self.dx
        self.zf = np.arange(self.nz) * self.dz
        self.zc = self.zf + 0.5 * self.dz

    def params(self) -> dict:
        return {k: v for k, v in asdict(self).items()}

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.ny, self.nx, self.nz)


"""The staggered channel grid: periodic and uniform in x and z, cell faces stretched
toward the walls y = -1, +1 with a tanh map. u sits on x-faces, v on y-faces, w on
z-faces, p at cell centres; arrays are laid out (y, x, z)."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from linsolve.core.errors import OptionError


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
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) \
                    or not math.isfinite(v) or int(v) != v or v < 2:
                raise OptionError(f"channel grid {name} must be an integer >= 2, got {v!r}")
            setattr(self, name, int(v))
        for name in ("nx", "nz"):
            if getattr(self, name) % 2:
                raise OptionError(f"channel grid {name} must be even (FFT layout), got {getattr(self, name)}")
        # finite lengths only: an infinite box would give dx = inf and a NaN pressure matrix
        if not all(isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)
                   and 0 < x < math.inf for x in (self.lx, self.lz)):
            raise OptionError(f"box lengths must be positive and finite, got lx={self.lx}, lz={self.lz}")
        if isinstance(self.stretch, bool) or not isinstance(self.stretch, (int, float, np.integer, np.floating)) \
                or not (0 <= self.stretch < 10):
            raise OptionError(f"stretch must be in [0, 10), got {self.stretch}")
        if self.yfaces not in ("tanh", "lobatto"):
            raise OptionError(f"yfaces must be 'tanh' or 'lobatto', got {self.yfaces!r}")
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


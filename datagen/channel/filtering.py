"""Filtering DNS fields onto coarse grids, as the surrogate datasets need.

Fields are first brought to the cell centres (collocated). The coarse grid is uniform
and periodic in x and z (NX, NZ points, starting at the first fine centre) and has NY
Gauss-Lobatto points y_j = -cos(pi j / (NY - 1)) in y, walls included (so 33 points
resolve the wall layers of a 32x33x16 grid).

* ``box``: top-hat average over one coarse cell in every direction (in x and z applied
  as its transfer function sin(k D/2)/(k D/2) before Fourier resampling; in y an exact
  average of the piecewise-constant fine cells over [y_j - D_j/2, y_j + D_j/2] clipped
  to the walls; the two wall points keep the no-slip value of the velocity).
* ``spectral``: sharp cut-off at the coarse Nyquist wavenumber in x and z, linear
  interpolation in y (velocity zero on the walls).
"""
from __future__ import annotations

import numpy as np

from linsolve.core.errors import OptionError

FILTERS = ("box", "spectral")


def collocate(dns) -> dict:
    """Velocity (and the last pressure potential) at the cell centres, NumPy, (y, x, z)."""
    f = dns.fields()
    u = 0.5 * (f["u"] + np.roll(f["u"], -1, axis=1))
    v = 0.5 * (f["v"][1:] + f["v"][:-1])
    w = 0.5 * (f["w"] + np.roll(f["w"], -1, axis=2))
    out = {"u": u, "v": v, "w": w}
    phi = getattr(dns, "last_phi", None)
    if phi is not None:
        p = dns.B.to_numpy(phi)
        out["p"] = p - p.mean()
    return out


def coarse_y(ny: int) -> np.ndarray:
    return -np.cos(np.pi * np.arange(ny) / (ny - 1))


class CoarseFilter:
    def __init__(self, grid, coarse, kind: str = "box"):
        if kind not in FILTERS:
            raise OptionError(f"filter must be one of {', '.join(FILTERS)}, got {kind!r}")
        try:
            NX, NY, NZ = (int(c) for c in coarse)
            # refused, not truncated: (16.7, 17, 8) must not filter onto 16 x 17 x 8
            exact = all(not isinstance(c, bool) and int(c) == c for c in coarse)
        except (TypeError, ValueError, OverflowError) as exc:
            raise OptionError(f"coarse grid must be three integers NX,NY,NZ, got {coarse!r}") from exc
        if not exact:
            raise OptionError(f"coarse grid must be three integers NX,NY,NZ, got {coarse!r}")
        if NX < 2 or NZ < 2 or NY < 3 or NX % 2 or NZ % 2:
            raise OptionError(f"coarse grid needs even NX, NZ >= 2 and NY >= 3, got {coarse!r}")
        if NX > grid.nx or NZ > grid.nz:
            raise OptionError(f"coarse grid {coarse} is finer than the DNS grid ({grid.nx}, {grid.ny}, {grid.nz}) in x or z")
        self.g, self.kind = grid, kind
        self.NX, self.NY, self.NZ = NX, NY, NZ
        self.y = coarse_y(NY)
        self.x = grid.xc[0] + np.arange(NX) * grid.lx / NX
        self.z = grid.zc[0] + np.arange(NZ) * grid.lz / NZ

    def _xz(self, a):
        g = self.g
        ah = np.fft.rfftn(a, axes=(1, 2))
        kx = np.fft.fftfreq(g.nx) * g.nx  # integer wavenumbers
        kz = np.arange(g.nz // 2 + 1)
        keep_x = np.abs(kx) < self.NX / 2
        keep_z = kz < self.NZ / 2
        if self.kind == "box":
            dx, dz = g.lx / self.NX, g.lz / self.NZ
            tx = np.sinc(kx * 2 * np.pi / g.lx * dx / 2 / np.pi)
            tz = np.sinc(kz * 2 * np.pi / g.lz * dz / 2 / np.pi)
            ah = ah * tx[None, :, None] * tz[None, None, :]
        sub = ah[:, keep_x][:, :, keep_z]
        # reorder the kept x modes into the coarse FFT layout
        kxs = kx[keep_x].astype(int)
        out = np.zeros((a.shape[0], self.NX, self.NZ // 2 + 1), dtype=complex)
        out[:, kxs % self.NX, : sub.shape[2]] = sub
        return np.fft.irfftn(out, s=(self.NX, self.NZ), axes=(1, 2)) * (self.NX * self.NZ) / (g.nx * g.nz)

    def _y(self, a, wall_value_zero: bool):
        g = self.g
        if self.kind == "box":
            edges = np.concatenate([[-1.0], 0.5 * (self.y[1:] + self.y[:-1]), [1.0]])
            cum = np.concatenate([np.zeros((1,) + a.shape[1:]), np.cumsum(a * g.dyc[:, None, None], axis=0)])
            idx_lo = np.interp(edges[:-1], g.yf, np.arange(g.ny + 1))
            idx_hi = np.interp(edges[1:], g.yf, np.arange(g.ny + 1))

            def F(fidx):
                i0 = np.clip(np.floor(fidx).astype(int), 0, g.ny - 1)
                frac = (fidx - i0)[:, None, None]
                return cum[i0] + frac * (cum[i0 + 1] - cum[i0])

            avg = (F(idx_hi) - F(idx_lo)) / (edges[1:] - edges[:-1])[:, None, None]
            if wall_value_zero:  # the wall points carry the boundary value, not a half-cell mean
                avg[0] = avg[-1] = 0.0
            return avg
        if wall_value_zero:
            ys = np.concatenate([[-1.0], g.yc, [1.0]])
            a = np.concatenate([np.zeros((1,) + a.shape[1:]), a, np.zeros((1,) + a.shape[1:])])
        else:
            ys = g.yc
        j = np.clip(np.searchsorted(ys, self.y) - 1, 0, ys.size - 2)
        t = np.clip((self.y - ys[j]) / (ys[j + 1] - ys[j]), 0.0, 1.0)[:, None, None]
        return (1 - t) * a[j] + t * a[j + 1]

    def __call__(self, a, wall_value_zero=True) -> np.ndarray:
        """Fine (ny, nx, nz) centre field -> coarse (NX, NY, NZ) in The Well's (x, y, z) order."""
        return np.transpose(self._y(self._xz(a), wall_value_zero), (1, 0, 2))

"""Second-order staggered finite differences (Harlow & Welch 1965; Orlandi 2000) on the
channel grid: divergence, gradient, advection in divergence form, viscous terms, and
the pressure-Poisson matrix D G in the tensor-product form ``fft-poisson`` solves.

Layout (y, x, z). u: (ny, nx, nz) at (x_i, yc_j, zc_k); v: (ny+1, nx, nz) at
(xc_i, yf_j, zc_k) with v[0] = v[ny] = 0 on the walls; w: (ny, nx, nz) at (xc_i, yc_j, z_k).
"""
from __future__ import annotations

import numpy as np

from datagen.channel.grid import ChannelGrid
from linsolve.structured.fft_poisson import TensorPoisson

X, Z = 1, 2


class StaggeredOps:
    def __init__(self, grid: ChannelGrid, backend):
        self.g = grid
        self.B = backend
        B = backend
        self.dx, self.dz = grid.dx, grid.dz
        self.dyc = B.col(grid.dyc)                 # cell heights, at centres
        self.dyf_in = B.col(grid.dyf[1:-1])        # centre-to-centre, interior faces
        # linear interpolation weights from centres j-1, j to face j (interior faces)
        wlo = (grid.yc[1:] - grid.yf[1:-1]) / grid.dyf[1:-1]
        self.w_lo, self.w_hi = B.col(wlo), B.col(1.0 - wlo)
        self.vol = B.col(grid.dyc * grid.dx * grid.dz)

    # --- helpers ---------------------------------------------------------------------
    def _yface(self, a):
        """Centre field (ny) -> interior y-faces (ny-1) by linear interpolation."""
        return self.w_lo * a[:-1] + self.w_hi * a[1:]

    def _pad_faces(self, interior):
        """Interior-face array (ny-1) -> all faces (ny+1) with zero flux at the walls."""
        B = self.B
        z = B.zeros((1,) + tuple(interior.shape[1:]))
        if B.name == "numpy":
            return np.concatenate([z, interior, z], axis=0)
        return B.xp.cat([z, interior, z], dim=0)

    # --- operators ---------------------------------------------------------------------
    def divergence(self, u, v, w):
        B = self.B
        return ((B.next(u, X) - u) / self.dx + (v[1:] - v[:-1]) / self.dyc
                + (B.next(w, Z) - w) / self.dz)

    def gradient(self, p):
        """(Gx p, Gy p on interior faces, Gz p)."""
        B = self.B
        return ((p - B.prev(p, X)) / self.dx, (p[1:] - p[:-1]) / self.dyf_in,
                (p - B.prev(p, Z)) / self.dz)

    def advection(self, u, v, w):
        """Divergence-form convective terms d(u_j u_i)/dx_j at the u, v (interior), w points."""
        B = self.B
        dx, dz = self.dx, self.dz
        # fluxes on cell edges, shared by two momentum components each
        f_uv = self._pad_faces(self._yface(u) * 0.5 * (B.prev(v[1:-1], X) + v[1:-1]))  # (x face, y face)
        f_uw = 0.5 * (B.prev(u, Z) + u) * 0.5 * (B.prev(w, X) + w)                     # (x face, z face)
        f_vw = self._pad_faces(0.5 * (B.prev(v[1:-1], Z) + v[1:-1]) * self._yface(w))  # (y face, z face)
        uc = 0.5 * (u + B.next(u, X))
        uc2 = uc * uc
        hu = (uc2 - B.prev(uc2, X)) / dx + (f_uv[1:] - f_uv[:-1]) / self.dyc + (B.next(f_uw, Z) - f_uw) / dz
        vc = 0.5 * (v[1:] + v[:-1])
        vc2 = vc * vc
        hv = ((B.next(f_uv[1:-1], X) - f_uv[1:-1]) / dx + (vc2[1:] - vc2[:-1]) / self.dyf_in
              + (B.next(f_vw[1:-1], Z) - f_vw[1:-1]) / dz)
        wc = 0.5 * (w + B.next(w, Z))
        wc2 = wc * wc
        hw = (B.next(f_uw, X) - f_uw) / dx + (f_vw[1:] - f_vw[:-1]) / self.dyc + (wc2 - B.prev(wc2, Z)) / dz
        return hu, hv, hw

    def lap_xz(self, a):
        B = self.B
        return ((B.next(a, X) - 2 * a + B.prev(a, X)) / self.dx**2
                + (B.next(a, Z) - 2 * a + B.prev(a, Z)) / self.dz**2)

    # --- wall-normal second derivatives as tridiagonal coefficients ----------------------
    def ly_centre(self):
        """(lower, diag, upper) of d2/dy2 at centres with zero (no-slip) wall values."""
        if "_lyc" in self.__dict__:
            return self._lyc
        g = self.g
        lo = 1.0 / (g.dyf[:-1] * g.dyc)
        up = 1.0 / (g.dyf[1:] * g.dyc)
        diag = -(lo + up)
        lo, up = lo.copy(), up.copy()
        lo[0] = 0.0
        up[-1] = 0.0
        self._lyc = (lo, diag, up)
        return self._lyc

    def ly_face(self):
        """(lower, diag, upper) of d2/dy2 at interior faces with v = 0 on the walls."""
        if "_lyf" in self.__dict__:
            return self._lyf
        g = self.g
        dyf = g.dyf[1:-1]
        lo = 1.0 / (g.dyc[:-1] * dyf)
        up = 1.0 / (g.dyc[1:] * dyf)
        diag = -(lo + up)
        lo, up = lo.copy(), up.copy()
        lo[0] = 0.0
        up[-1] = 0.0
        self._lyf = (lo, diag, up)
        return self._lyf

    def apply_tri(self, coeffs, a):
        """Apply a tridiagonal y-operator (as from ly_centre / ly_face) to a."""
        key = id(coeffs[0]), id(coeffs[1]), id(coeffs[2])
        cache = self.__dict__.setdefault("_tri_cols", {})
        if key not in cache:
            cache[key] = (coeffs, tuple(self.B.col(c) for c in coeffs))
        lo, diag, up = cache[key][1]
        out = diag * a
        out[1:] = out[1:] + lo[1:] * a[:-1]
        out[:-1] = out[:-1] + up[:-1] * a[1:]
        return out

    # --- the pressure equation ------------------------------------------------------------
    def poisson_structure(self) -> TensorPoisson:
        """-(V D G) with V the cell volumes: symmetric positive semidefinite, pinned at cell 0."""
        g = self.g
        inv = 1.0 / g.dyf[1:-1]
        t_diag = np.zeros(g.ny)
        t_diag[1:] += inv
        t_diag[:-1] += inv
        return TensorPoisson(g.dyc, t_diag, -inv, (g.nx, g.nz), (g.dx, g.dz), scale=g.dx * g.dz, pin=0)

"""A multigrid-cycle DCDM network: linear and symmetric positive definite in the residual,
nonlinear only through the geometry, so DCDM with n_orth = 2 is preconditioned CG with a
learned multigrid preconditioner (short recurrences exact, no stalling) and iteration
counts do not grow with the grid.

Why this form: a fixed receptive field cannot see the global modes of a Poisson matrix,
and a ReLU U-Net of the residual (``mg-unet``) breaks the conjugacy DCDM's two-term
window relies on. A multigrid cycle sees every scale and, built symmetrically, is a
fixed SPD map.

Operator awareness comes from the cell types alone (fluid / solid / air channels), as in
``stencil.PressureStencil``: level 0 stores face weights (1 between two fluid cells, 0
across walls) and the diagonal (fluid and air face-neighbours; air is Dirichlet). Coarse
levels aggregate 2x2[x2] blocks (odd sizes padded with inactive cells) and carry the
EXACT Galerkin operator P^T A P of the piecewise-constant P: a coarse face weight is the
sum of the fine face weights crossing it, a coarse diagonal the sum of the block's fine
diagonals minus twice its internal face weights. The coarsest grid (at most
``coarsest_cells`` cells) is solved with a dense inverse computed once per geometry.

Learned parts, shared by every level so the weights run on any grid: the smoother
S v = K * (D^-1 v), a point-symmetric 3x3[x3] kernel K initialised to damped Jacobi
(omega delta); ``nu`` pre-smoothing sweeps with S and post-smoothing sweeps with S^T (so
the cycle is symmetric); and one coarse-correction scale (over-correction is the known
remedy for piecewise-constant aggregation). ``gamma`` = 1 gives a V-cycle, 2 a W-cycle
(still O(n) work in 2-D and 3-D with 2^dim-fold coarsening). The shipped models are
W-cycles: untrained, with coarse scale 1.7 and held-out obstacle systems, the V-cycle
needed 16 -> 31 PCG iterations from 64^2 to 512^2 and the W-cycle (scale 1.5) 11 -> 11.

The cycle is symmetric by construction. It is positive definite when the smoother
converges in the A-norm and the scaled coarse corrections do not overshoot by more than a
factor 2 (true at the damped-Jacobi initialisation; tests check the shipped weights on
grids with obstacles and several levels).
"""
from __future__ import annotations

import itertools
import math

import torch
from torch import nn
from torch.nn import functional as F

from linsolve.learned.dcdm.model import register_model


def _pad_axis(t: torch.Tensor, axis: int, lo: int, hi: int) -> torch.Tensor:
    pad = [0, 0] * (t.dim() - axis)
    pad[-2], pad[-1] = lo, hi  # F.pad lists the last axis first
    return F.pad(t, pad)


def _parity(t: torch.Tensor, axis: int, odd: int) -> torch.Tensor:
    n = t.shape[axis]
    shape = [1] * t.dim()
    shape[axis] = n
    return ((torch.arange(n, device=t.device) % 2) == odd).to(t.dtype).reshape(shape)


class GridLevel:
    """The operator of one level: diagonal, face weights per axis (weight between cell i and
    i + e_axis, zero past the end) and the mask of active cells; all (B, 1, *shape)."""

    def __init__(self, diag: torch.Tensor, faces: list[torch.Tensor]):
        self.diag, self.faces = diag, faces
        self.mask = (diag > 0.5).to(diag.dtype)  # entries are integer sums
        self.inv_diag = self.mask / diag.clamp_min(1e-30)
        self.shape = tuple(diag.shape[2:])
        self.dense_inverse = None
        # weight of the face below each cell along each axis, so that apply() reads both
        # neighbours as views of one padded copy of u (the cycle's hot loop)
        self._below = [_pad_axis(w.narrow(2 + a, 0, w.shape[2 + a] - 1), 2 + a, 1, 0) for a, w in enumerate(faces)]

    @classmethod
    def from_geometry(cls, geo: torch.Tensor) -> GridLevel:
        """Level 0 from (B, 2, *grid) fluid and air indicators; beyond the grid is wall."""
        fluid, air = geo[:, :1], geo[:, 1:2]
        nonsolid = (fluid + air).clamp(max=1.0)
        diag = torch.zeros_like(fluid)
        faces = []
        for ax in range(2, fluid.dim()):
            n = fluid.shape[ax]
            lo, hi = fluid.narrow(ax, 0, n - 1), fluid.narrow(ax, 1, n - 1)
            faces.append(_pad_axis(lo * hi, ax, 0, 1))
            # fluid cell counts each non-solid face neighbour on its diagonal
            diag = diag + _pad_axis(lo * nonsolid.narrow(ax, 1, n - 1), ax, 0, 1)
            diag = diag + _pad_axis(hi * nonsolid.narrow(ax, 0, n - 1), ax, 1, 0)
        return cls(diag, faces)

    def apply(self, u: torch.Tensor) -> torch.Tensor:
        dim = len(self.shape)
        up = F.pad(u, [1, 1] * dim)
        inner = [slice(None), slice(None)] + [slice(1, -1)] * dim
        out = self.diag * u
        for a in range(dim):
            nxt, prv = list(inner), list(inner)
            nxt[2 + a], prv[2 + a] = slice(2, None), slice(0, -2)
            out = torch.addcmul(out, self.faces[a], up[tuple(nxt)], value=-1.0)
            out = torch.addcmul(out, self._below[a], up[tuple(prv)], value=-1.0)
        return out

    def pad_even(self, t: torch.Tensor) -> torch.Tensor:
        for ax in range(2, t.dim()):
            if t.shape[ax] % 2:
                t = _pad_axis(t, ax, 0, 1)
        return t

    def restrict(self, r: torch.Tensor) -> torch.Tensor:
        """P^T r: sums over the 2^dim aggregates."""
        r = self.pad_even(r)
        pool = F.avg_pool2d if r.dim() == 4 else F.avg_pool3d
        return pool(r, 2) * 2 ** (r.dim() - 2)

    def prolong(self, e: torch.Tensor) -> torch.Tensor:
        """P e: the coarse value on every active cell of its aggregate."""
        up = F.interpolate(e, scale_factor=2, mode="nearest")
        return up[(slice(None), slice(None)) + tuple(slice(0, s) for s in self.shape)] * self.mask

    def coarsen(self) -> GridLevel:
        """The Galerkin level P^T A P of the piecewise-constant P."""
        diag = self.restrict(self.diag)
        faces = []
        for a, w in enumerate(self.faces):
            w = self.pad_even(w)
            ax = 2 + a
            diag = diag - 2 * self.restrict(w * _parity(w, ax, 0))  # faces inside an aggregate
            faces.append(self.restrict(w * _parity(w, ax, 1)))  # faces between aggregates
        return GridLevel(diag, faces)

    def factor_dense(self):
        """Dense inverse of this (small) level's matrix on its active cells."""
        shape = self.shape
        m = math.prod(shape)
        basis = torch.eye(m, dtype=self.diag.dtype, device=self.diag.device).reshape(1, m, *shape)
        cols = self.apply(basis).reshape(-1, m, m)  # (B, column j, row i); symmetric
        inactive = 1 - self.mask.reshape(-1, 1, m)
        mat = cols + torch.diag_embed(inactive[:, 0])  # identity on inactive cells keeps it SPD
        self.dense_inverse = torch.linalg.inv(mat.double()).to(self.diag.dtype)

    def solve_dense(self, r: torch.Tensor) -> torch.Tensor:
        b = r.shape[0]
        flat = r.reshape(b, -1, 1) * self.mask.reshape(self.mask.shape[0], -1, 1)
        x = torch.matmul(self.dense_inverse, flat)
        return x.reshape(r.shape) * self.mask


@register_model("mg-cycle")
class MultigridCycle(nn.Module):
    """``forward(residual, geometry)`` -> B residual, with B the symmetric multigrid cycle
    of the geometry's pressure operator (see the module docstring)."""

    linear_spd = True  # DCDM then skips its safeguard for nonlinear networks (it is PCG)

    def __init__(self, dim: int = 2, nu: int = 1, gamma: int = 1, coarsest_cells: int = 64,
                 omega: float = 0.8, coarse_scale: float = 1.0):
        super().__init__()
        if dim not in (2, 3):
            raise ValueError(f"dim must be 2 or 3, got {dim}")
        if nu < 1 or gamma not in (1, 2) or coarsest_cells < 1:
            raise ValueError(f"need nu >= 1, gamma 1 (V) or 2 (W), coarsest_cells >= 1; got {nu}, {gamma}, "
                             f"{coarsest_cells}")
        self.config = {"arch": self.arch, "dim": dim, "nu": nu, "gamma": gamma, "coarsest_cells": coarsest_cells,
                       "omega": omega, "coarse_scale": coarse_scale}
        self.dim, self.nu, self.gamma, self.coarsest_cells = dim, nu, gamma, coarsest_cells
        kernel = torch.zeros((3,) * dim)
        kernel[(1,) * dim] = omega
        self.kernel = nn.Parameter(kernel)
        self.log_coarse_scale = nn.Parameter(torch.tensor(math.log(coarse_scale)))

    def symmetric_kernel(self) -> torch.Tensor:
        k = self.kernel
        return 0.5 * (k + torch.flip(k, tuple(range(self.dim))))

    def geometry_gains(self, geo: torch.Tensor, shape=None) -> list[GridLevel]:
        """The level hierarchy of geometry ``geo`` (B, 2, *grid): computed once per system
        and reused for every residual (the name matches the other networks' interface)."""
        with torch.no_grad():
            levels = [GridLevel.from_geometry(geo)]
            while math.prod(levels[-1].shape) > self.coarsest_cells:
                levels.append(levels[-1].coarsen())
            levels[-1].factor_dense()
        return levels

    @staticmethod
    def _correlate(v: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
        """The 3x3[x3] cross-correlation of v with K (zero padding) as a sum of shifted views:
        on one channel this is several times faster than torch's (mkldnn) convolution."""
        dim = K.dim()
        vp = F.pad(v, [1, 1] * dim)
        out = None
        for offset in itertools.product(range(3), repeat=dim):
            view = vp[(slice(None), slice(None)) + tuple(slice(o, o + s) for o, s in zip(offset, v.shape[2:],
                                                                                          strict=True))]
            term = K[offset] * view
            out = term if out is None else out + term
        return out

    def _smooth(self, lev: GridLevel, v: torch.Tensor, K: torch.Tensor, transpose: bool) -> torch.Tensor:
        if transpose:  # S^T = D^-1 K^T; K is point-symmetric, so K^T = K
            return lev.inv_diag * self._correlate(lev.mask * v, K)
        return lev.mask * self._correlate(lev.inv_diag * v, K)

    def _cycle(self, levels, k: int, r: torch.Tensor, K, scale) -> torch.Tensor:
        lev = levels[k]
        if k == len(levels) - 1:
            return lev.solve_dense(r)
        x = self._smooth(lev, r, K, False)
        for _ in range(self.nu - 1):
            x = x + self._smooth(lev, r - lev.apply(x), K, False)
        rc = lev.restrict(r - lev.apply(x))
        ec = self._cycle(levels, k + 1, rc, K, scale)
        for _ in range(self.gamma - 1):
            ec = ec + self._cycle(levels, k + 1, rc - levels[k + 1].apply(ec), K, scale)
        x = x + scale * lev.prolong(ec)
        for _ in range(self.nu):
            x = x + self._smooth(lev, r - lev.apply(x), K, True)
        return x

    def forward(self, r: torch.Tensor, geo: torch.Tensor | None = None, gains=None) -> torch.Tensor:
        if gains is None:
            if geo is None:
                raise ValueError("the mg-cycle network needs the geometry channels (fluid, air)")
            gains = self.geometry_gains(geo)
        r = r.to(gains[0].diag.dtype) * gains[0].mask
        return self._cycle(gains, 0, r, self.symmetric_kernel(), torch.exp(self.log_coarse_scale))

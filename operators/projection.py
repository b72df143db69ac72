"""Projection of a coarse-grid velocity onto the discretely divergence-free fields, by one
pressure solve through ``linsolve``'s FFT/tridiagonal Poisson solver.

The coarse grid is collocated: u, v, w at the nodes (x_i, y_j, z_k), uniform and periodic in x and
z, Gauss-Lobatto in y (y_j = -cos(pi j / (NY - 1)), walls included). The discrete operators:

* no-slip: the wall nodes j = 0, NY-1 carry zero velocity; the unknowns are the interior nodes;
* divergence at each interior node, by central differences::

      (D u)_ijk = (u_i+1 - u_i-1) / 2hx + (v_j+1 - v_j-1) / 2m_j + (w_k+1 - w_k-1) / 2hz

  with m_j = (y_j+1 - y_j-1) / 2 (the node's control width) and v = 0 at the walls;
* gradient G = -D* (the adjoint in the inner product weighted by m_j), i.e. the same central
  differences of a pressure that vanishes outside the interior nodes.

Then P u = u - G phi with (D G) phi = D u is the orthogonal projection (in that inner product)
onto {u : D u = 0, u = 0 on the walls}: D(P u) = 0 to round-off, P(P u) = P u and P u = u for a
divergence-free u. Central differences couple nodes two apart, so D G splits into eight
independent problems, one per parity of (i, j, k); each is the tensor-product matrix
``scale * (diag(m) (x) K_p + T (x) I)`` of ``linsolve.structured.fft_poisson.TensorPoisson``
(K_p: the periodic second difference of spacing 2hx, 2hz on NX/2 x NZ/2 points; T: symmetric
tridiagonal in y, Neumann at an end whose neighbouring node is a wall, Dirichlet where it is the
last interior node), solved by FFTs in x, z and one Thomas sweep per wavenumber. The eight
sub-solves together cost one pressure solve on the full grid.

Checkerboard (Nyquist) modes are invisible to central differences and left as they are, the
well-known property of collocated projections.
"""
from __future__ import annotations

import numpy as np

from linsolve.core.errors import ShapeError
from linsolve.structured.fft_poisson import TensorPoisson


def gauss_lobatto(ny: int) -> np.ndarray:
    return -np.cos(np.pi * np.arange(ny) / (ny - 1))


class Projector:
    """Divergence-free projection on an NX x NY x NZ coarse channel grid of box Lx x 2 x Lz.

    Parameters
    ----------
    grid : (NX, NY, NZ)
        NX, NZ even, NY >= 3.
    lx, lz : float
        Box lengths in x and z.

    Examples
    --------
    >>> P = Projector((8, 9, 4), 3.0, 1.5)
    >>> u = np.random.default_rng(0).standard_normal((3, 8, 9, 4))
    >>> float(np.abs(P.divergence(P(u))).max()) < 1e-12
    True
    """

    def __init__(self, grid, lx: float, lz: float):
        NX, NY, NZ = (int(n) for n in grid)
        if NX < 2 or NZ < 2 or NX % 2 or NZ % 2 or NY < 3:
            raise ShapeError(f"projection needs even NX, NZ >= 2 and NY >= 3, got {tuple(grid)}")
        if not (np.isfinite(lx) and np.isfinite(lz) and lx > 0 and lz > 0):
            raise ShapeError(f"box lengths must be positive and finite, got {lx}, {lz}")
        self.grid = (NX, NY, NZ)
        self.lx, self.lz = float(lx), float(lz)
        self.hx, self.hz = self.lx / NX, self.lz / NZ
        y = gauss_lobatto(NY)
        self.m = 0.5 * (y[2:] - y[:-2])  # control widths of the interior nodes j = 1..NY-2
        ni = NY - 2
        # one TensorPoisson per parity of the interior index q = j - 1
        self.sub = []
        for q0 in (0, 1):
            q = np.arange(q0, ni, 2)
            if q.size == 0:
                self.sub.append(None)
                continue
            diag = np.zeros(q.size)
            off = np.zeros(max(q.size - 1, 0))
            for n, qq in enumerate(q):
                if qq + 1 < ni:  # node above is interior: its G couples to p at qq and qq + 2
                    diag[n] += 0.25 / self.m[qq + 1]
                    if qq + 2 < ni:
                        off[n] = -0.25 / self.m[qq + 1]
                if qq - 1 >= 0:
                    diag[n] += 0.25 / self.m[qq - 1]
            tp = TensorPoisson(self.m[q], diag, off, (NX // 2, NZ // 2), (2 * self.hx, 2 * self.hz), pin=None)
            self.sub.append((q0, tp))

    # --- the discrete operators (NumPy or torch, any leading batch axes) ------------------------
    def divergence(self, u):
        """D u at the interior nodes: (..., 3, NX, NY, NZ) -> (..., NX, NY-2, NZ); the wall nodes
        count as zero velocity."""
        xp = _xp(u)
        self._check(u)
        v = u[..., 1, :, :, :]
        du = (_roll(u[..., 0, :, 1:-1, :], -1, -3) - _roll(u[..., 0, :, 1:-1, :], 1, -3)) / (2 * self.hx)
        dw = (_roll(u[..., 2, :, 1:-1, :], -1, -1) - _roll(u[..., 2, :, 1:-1, :], 1, -1)) / (2 * self.hz)
        vp = xp.concatenate([v[..., :, 2:-1, :], 0 * v[..., :, :1, :]], axis=-2) if xp is np else \
            xp.cat([v[..., :, 2:-1, :], 0 * v[..., :, :1, :]], dim=-2)
        vm = xp.concatenate([0 * v[..., :, :1, :], v[..., :, 1:-2, :]], axis=-2) if xp is np else \
            xp.cat([0 * v[..., :, :1, :], v[..., :, 1:-2, :]], dim=-2)
        m = self._m_like(u)
        return du + (vp - vm) / (2 * m) + dw

    def gradient(self, p):
        """G p: (..., NX, NY-2, NZ) interior pressure -> (..., 3, NX, NY, NZ), zero at the walls."""
        xp = _xp(p)
        gx = (_roll(p, -1, -3) - _roll(p, 1, -3)) / (2 * self.hx)
        gz = (_roll(p, -1, -1) - _roll(p, 1, -1)) / (2 * self.hz)
        z1 = 0 * p[..., :, :1, :]
        cat = (lambda a, d: np.concatenate(a, axis=d)) if xp is np else (lambda a, d: xp.cat(a, dim=d))
        pp = cat([p[..., :, 1:, :], z1], -2)
        pm = cat([z1, p[..., :, :-1, :]], -2)
        gy = (pp - pm) / (2 * self._m_like(p))
        inner = (xp.stack([gx, gy, gz], axis=-4) if xp is np else xp.stack([gx, gy, gz], dim=-4))
        zw = 0 * inner[..., :1, :]
        return cat([zw, inner, zw], -2)

    def pressure(self, u):
        """phi with (D G) phi = D u, from the eight sub-solves (float64)."""
        xp = _xp(u)
        r = -self._m_like(u) * self.divergence(u)  # A phi = r with A = -W D G (symmetric, >= 0)
        phi = xp.zeros_like(r)
        lead = r.shape[:-3]
        for item in (np.ndindex(*lead) if lead else [()]):
            for q0, tp in (s for s in self.sub if s is not None):
                for a in (0, 1):
                    for c in (0, 1):
                        blk = r[item][a::2, q0::2, c::2]
                        if xp is np:
                            sol = tp.solve_grid(np.moveaxis(blk, 1, 0))
                            phi[item][a::2, q0::2, c::2] = np.moveaxis(sol, 0, 1)
                        else:
                            sol = tp.solve_grid(blk.permute(1, 0, 2).contiguous(), xp=xp)
                            phi[item][a::2, q0::2, c::2] = sol.permute(1, 0, 2)
        return phi

    def project_array(self, u):
        """P u for a float64 NumPy array or torch tensor of shape (..., 3, NX, NY, NZ)."""
        self._check(u)
        u = _zero_walls(u)
        return u - self.gradient(self.pressure(u))

    def __call__(self, u):
        """P u; float32 torch tensors are projected in float64 and differentiably (the backward
        pass is the adjoint projection W P W^-1, one more solve)."""
        if isinstance(u, np.ndarray):
            return self.project_array(np.asarray(u, dtype=np.float64)).astype(u.dtype, copy=False)
        return _ProjectFn.apply(u, self)

    def adjoint(self, g):
        """P^T g in the Euclidean inner product: W P W^-1 g (walls zero)."""
        m = self._m_like(g)
        inner = g[..., 1:-1, :] / m
        z = 0 * g[..., :1, :]
        cat = (lambda a: np.concatenate(a, axis=-2)) if _xp(g) is np else (lambda a: _xp(g).cat(a, dim=-2))
        h = self.project_array(cat([z, inner, z]))
        return cat([z, h[..., 1:-1, :] * m, z])

    # --- helpers ---------------------------------------------------------------------------------
    def _check(self, u):
        if tuple(u.shape[-3:]) not in (self.grid, (self.grid[0], self.grid[1] - 2, self.grid[2])):
            raise ShapeError(f"field of shape {tuple(u.shape)} does not match the projector's grid {self.grid}")

    def _m_like(self, a):
        m = self.m[:, None]
        if _xp(a) is np:
            return m
        import torch

        return torch.as_tensor(m, dtype=a.dtype, device=a.device)


def _xp(a):
    if isinstance(a, np.ndarray):
        return np
    import torch

    return torch


def _roll(a, shift, axis):
    if isinstance(a, np.ndarray):
        return np.roll(a, shift, axis=axis)
    return a.roll(shift, dims=axis)


def _zero_walls(u):
    u = u.copy() if isinstance(u, np.ndarray) else u.clone()
    u[..., 0, :] = 0
    u[..., -1, :] = 0
    return u


def _make_fn():
    import torch

    class ProjectFn(torch.autograd.Function):
        @staticmethod
        def forward(ctx, u, proj):
            ctx.proj = proj
            dtype = u.dtype
            if u.device.type == "cpu":
                out = torch.from_numpy(proj.project_array(u.detach().double().numpy()))
            else:
                out = proj.project_array(u.detach().double())
            return out.to(dtype=dtype, device=u.device)

        @staticmethod
        def backward(ctx, g):
            proj = ctx.proj
            if g.device.type == "cpu":
                out = torch.from_numpy(proj.adjoint(g.detach().double().numpy()))
            else:
                out = proj.adjoint(g.detach().double())
            return out.to(dtype=g.dtype, device=g.device), None

    return ProjectFn


class _Lazy:
    fn = None

    def apply(self, u, proj):
        if _Lazy.fn is None:
            _Lazy.fn = _make_fn()
        return _Lazy.fn.apply(u, proj)


_ProjectFn = _Lazy()

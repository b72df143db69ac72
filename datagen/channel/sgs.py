"""Sub-grid-scale (eddy-viscosity) models for large-eddy simulation on the channel grid.

Both models give an eddy viscosity nu_t at the cell centres; its stress
tau_ij = -2 nu_t S_ij enters the momentum equations in divergence form,
d/dx_j (2 nu_t S_ij), discretised conservatively on the staggered grid (normal stresses
at the centres, shear stresses on the cell edges where the advective fluxes live, nu_t
averaged onto the edges) and treated explicitly inside the RK3 substeps. Explicit is
practical here: the eddy viscosity is largest in the channel core, where the cells are
large, and vanishes at the walls, where they are thin; ``ChannelDNS.check`` reports the
explicit diffusion number dt nu_t (1/dx^2 + 1/dy^2 + 1/dz^2) and stops a run above
``SGS_DIFFUSION_LIMIT`` (RK3's stability interval on the negative real axis is 2.51).

* ``wale``: Nicoud & Ducros (1999), nu_t = (C_w D)^2 (Sd:Sd)^(3/2) / ((S:S)^(5/2) + (Sd:Sd)^(5/4))
  with Sd the traceless symmetric part of g.g (g_ij = du_i/dx_j) and ``C_WALE`` = 0.5. It
  vanishes in pure shear, so laminar Poiseuille flow is untouched, and decays like y^3
  at a wall without damping functions.
* ``dsm``: dynamic Smagorinsky, nu_t = C D^2 |S| with |S| = sqrt(2 S:S), C from the Germano
  identity (Germano et al. 1991) in Lilly's (1992) least-squares form
  C = <L_ij M_ij> / <M_ij M_ij>, L_ij = F(u_i u_j) - F(u_i) F(u_j),
  M_ij = 2 D^2 (F(|S| S_ij) - a^2 |F(S)| F(S_ij)), averaged <.> over the homogeneous x-z
  planes. The test filter F is Simpson's rule (1, 4, 1)/6 in x and in z (width twice the
  grid's in each; none in y), so the filter-width ratio is a = 4^(1/3). The total
  viscosity is kept non-negative: nu_t = max(C D^2 |S|, -nu).

The grid filter width is the cube root of the local cell volume, D = (dx dy_j dz)^(1/3),
which follows the wall-normal stretching. The velocity gradient is evaluated at the
cell centres: du/dx, dv/dy, dw/dz by the compact differences of the divergence (so its
trace is the discrete divergence, zero to round-off), the other components by central
differences of the centre-interpolated velocity (second order on the stretched y grid,
no-slip values on the walls). Everything is written against ``Backend``, so NumPy and
PyTorch run the same code.
"""
from __future__ import annotations

import numpy as np

from linsolve.core.errors import OptionError

MODELS = ("wale", "dsm")
C_WALE = 0.5
#: test-to-grid filter width ratio of the dynamic model: Simpson's filter doubles the width in x and z
DSM_WIDTH_RATIO = 4.0 ** (1.0 / 3.0)
SGS_DIFFUSION_LIMIT = 0.6
X, Z = 1, 2
_TINY = 1e-300


def check_model(name):
    """``name`` if it is a known model or None, else an OptionError listing the models."""
    if name is None or (isinstance(name, str) and name in MODELS):
        return name
    raise OptionError(f"sgs must be one of {', '.join(MODELS)} or None, got {name!r}")


class EddyViscosity:
    """The sub-grid model ``kind`` on the grid of ``ops`` (a ``StaggeredOps``).

    Parameters
    ----------
    kind : {"wale", "dsm"}
        The model.
    ops : StaggeredOps
        Grid operators (and their backend).
    nu : float
        Molecular viscosity (the clipping bound of the dynamic model).

    Examples
    --------
    >>> from datagen.channel import ChannelConfig, ChannelDNS
    >>> dns = ChannelDNS(ChannelConfig(grid=dict(nx=8, ny=12, nz=8), sgs="wale"))
    >>> float(dns.sgs.viscosity(dns.u, dns.v, dns.w).max())   # fluid at rest
    0.0
    """

    def __init__(self, kind: str, ops, nu: float):
        check_model(kind)
        if kind is None:
            raise OptionError("EddyViscosity needs a model name")
        self.kind, self.ops, self.B, self.nu = kind, ops, ops.B, float(nu)
        g = ops.g
        self.delta2 = self.B.col((g.dx * g.dyc * g.dz) ** (2.0 / 3.0))
        # three-point first derivative at the centres on the stretched grid; the wall
        # (no-slip, value 0) is the outer neighbour of the first and last centres
        ym = np.concatenate([[-1.0], g.yc[:-1]])
        yp = np.concatenate([g.yc[1:], [1.0]])
        h1, h2 = g.yc - ym, yp - g.yc
        self._cm = self.B.col(-h2 / (h1 * (h1 + h2)))
        self._c0 = self.B.col((h2 - h1) / (h1 * h2))
        self._cp = self.B.col(h1 / (h2 * (h1 + h2)))
        self._inv_d2 = self.B.col(1.0 / g.dx**2 + 1.0 / g.dyc**2 + 1.0 / g.dz**2)
        self.last_nu_t = None
        self.last_coefficient = None
        # on NumPy the WALE viscosity and the stress divergence run as fused numba kernels
        # (kernels.sgs_kernels; the array code below is the reference and the torch path)
        self.use_numba = False
        if self.B.name == "numpy":
            from datagen.channel.kernels import sgs_kernels

            self.use_numba = sgs_kernels() is not None
            wlo = (g.yc[1:] - g.yf[1:-1]) / g.dyf[1:-1]
            self._nb = dict(dyc=np.ascontiguousarray(g.dyc), dyf_in=np.ascontiguousarray(g.dyf[1:-1]), wlo=wlo,
                            whi=1.0 - wlo, cm=-h2 / (h1 * (h1 + h2)), c0=(h2 - h1) / (h1 * h2),
                            cp=h1 / (h2 * (h1 + h2)), coef=C_WALE**2 * (g.dx * g.dyc * g.dz) ** (2.0 / 3.0))

    # --- differences at the centres -----------------------------------------------------
    def _ddy(self, a):
        out = self._c0 * a
        out[1:] = out[1:] + self._cm[1:] * a[:-1]
        out[:-1] = out[:-1] + self._cp[:-1] * a[1:]
        return out

    def _ddx(self, a):
        return (self.B.next(a, X) - self.B.prev(a, X)) / (2.0 * self.ops.dx)

    def _ddz(self, a):
        return (self.B.next(a, Z) - self.B.prev(a, Z)) / (2.0 * self.ops.dz)

    def centre_velocity(self, u, v, w):
        B = self.B
        return 0.5 * (u + B.next(u, X)), 0.5 * (v[1:] + v[:-1]), 0.5 * (w + B.next(w, Z))

    def gradient(self, u, v, w):
        """g[i][j] = du_i/dx_j at the cell centres (a 3 x 3 nested list of arrays)."""
        B, o = self.B, self.ops
        uc, vc, wc = self.centre_velocity(u, v, w)
        return [[(B.next(u, X) - u) / o.dx, self._ddy(uc), self._ddz(uc)],
                [self._ddx(vc), (v[1:] - v[:-1]) / o.dyc, self._ddz(vc)],
                [self._ddx(wc), self._ddy(wc), (B.next(w, Z) - w) / o.dz]]

    @staticmethod
    def strain(g):
        """The six independent components S_11, S_22, S_33, S_12, S_13, S_23."""
        return (g[0][0], g[1][1], g[2][2], 0.5 * (g[0][1] + g[1][0]), 0.5 * (g[0][2] + g[2][0]),
                0.5 * (g[1][2] + g[2][1]))

    @staticmethod
    def contract(a, b):
        """a_ij b_ij for symmetric tensors given by their six components."""
        return a[0] * b[0] + a[1] * b[1] + a[2] * b[2] + 2.0 * (a[3] * b[3] + a[4] * b[4] + a[5] * b[5])

    # --- the models ------------------------------------------------------------------------
    def wale(self, g):
        """WALE eddy viscosity from the gradient g (Nicoud & Ducros 1999, C_w = ``C_WALE``)."""
        S = self.strain(g)
        g2 = [[g[i][0] * g[0][j] + g[i][1] * g[1][j] + g[i][2] * g[2][j] for j in range(3)] for i in range(3)]
        tr = (g2[0][0] + g2[1][1] + g2[2][2]) / 3.0
        Sd = (g2[0][0] - tr, g2[1][1] - tr, g2[2][2] - tr, 0.5 * (g2[0][1] + g2[1][0]),
              0.5 * (g2[0][2] + g2[2][0]), 0.5 * (g2[1][2] + g2[2][1]))
        sdsd = self.contract(Sd, Sd)
        ss = self.contract(S, S)
        return (C_WALE**2 * self.delta2) * sdsd**1.5 / (ss**2.5 + sdsd**1.25 + _TINY)

    def test_filter(self, a):
        """Simpson's rule (1, 4, 1)/6 in x, then in z."""
        B = self.B
        a = (B.prev(a, X) + 4.0 * a + B.next(a, X)) / 6.0
        return (B.prev(a, Z) + 4.0 * a + B.next(a, Z)) / 6.0

    def dynamic_coefficient(self, u, v, w, g=None):
        """C(y) of the dynamic Smagorinsky model, (ny, 1, 1): Lilly's least squares over each x-z plane."""
        F, B = self.test_filter, self.B
        g = self.gradient(u, v, w) if g is None else g
        uc, vc, wc = self.centre_velocity(u, v, w)
        S = self.strain(g)
        mag = (2.0 * self.contract(S, S)) ** 0.5
        Sh = tuple(F(s) for s in S)
        magh = (2.0 * self.contract(Sh, Sh)) ** 0.5
        a2 = DSM_WIDTH_RATIO**2
        M = tuple(2.0 * self.delta2 * (F(mag * s) - a2 * magh * sh) for s, sh in zip(S, Sh, strict=True))
        vel = (uc, vc, wc)
        fv = tuple(F(c) for c in vel)
        pairs = ((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2))
        L = tuple(F(vel[i] * vel[j]) - fv[i] * fv[j] for i, j in pairs)
        lm = B.plane_mean(self.contract(L, M))
        mm = B.plane_mean(self.contract(M, M))
        return lm / (mm + _TINY)

    def smagorinsky(self, g, coefficient):
        """C D^2 |S|, |S| = sqrt(2 S_ij S_ij): the Smagorinsky form with the coefficient C = C_s^2."""
        S = self.strain(g)
        return coefficient * self.delta2 * (2.0 * self.contract(S, S)) ** 0.5

    def dsm(self, g, u, v, w):
        C = self.dynamic_coefficient(u, v, w, g)
        self.last_coefficient = C
        nt = self.smagorinsky(g, C)
        # max(nt, -nu): the total viscosity nu + nu_t never goes negative
        return 0.5 * (nt - self.nu + abs(nt + self.nu))

    def viscosity(self, u, v, w, g=None):
        """Eddy viscosity nu_t at the cell centres, shape (ny, nx, nz)."""
        if self.kind == "wale" and g is None and self.use_numba:
            from datagen.channel.kernels import sgs_kernels

            nb = self._nb
            out = np.empty(u.shape)
            sgs_kernels()[0](*(np.ascontiguousarray(a) for a in (u, v, w)), self.ops.dx, self.ops.dz, nb["dyc"],
                             nb["cm"], nb["c0"], nb["cp"], nb["coef"], out)
            return out
        g = self.gradient(u, v, w) if g is None else g
        return self.wale(g) if self.kind == "wale" else self.dsm(g, u, v, w)

    def diffusion_number(self, dt: float) -> float:
        """max dt |nu_t| (1/dx^2 + 1/dy^2 + 1/dz^2) of the last evaluated eddy viscosity."""
        if self.last_nu_t is None:
            return 0.0
        return float(self.B.amax_abs(self.last_nu_t * self._inv_d2)) * dt

    # --- the stress divergence -------------------------------------------------------------
    def forcing(self, u, v, w):
        """d/dx_j (2 nu_t S_ij) at the u points, the interior v faces and the w points."""
        B, o = self.B, self.ops
        nt = self.viscosity(u, v, w)
        self.last_nu_t = nt
        if self.use_numba:
            from datagen.channel.kernels import sgs_kernels

            nb = self._nb
            u, v, w, nt = (np.ascontiguousarray(a) for a in (u, v, w, nt))
            fu, fv, fw = np.empty(u.shape), np.empty((u.shape[0] - 1,) + u.shape[1:]), np.empty(w.shape)
            sgs_kernels()[1](u, v, w, nt, o.dx, o.dz, nb["dyc"], nb["dyf_in"], nb["wlo"], nb["whi"], fu, fv, fw)
            return fu, fv, fw
        dx, dz = o.dx, o.dz
        # normal stresses at the centres
        t11 = 2.0 * nt * (B.next(u, X) - u) / dx
        t22 = 2.0 * nt * (v[1:] - v[:-1]) / o.dyc
        t33 = 2.0 * nt * (B.next(w, Z) - w) / dz
        # shear stresses on the edges; nu_t on an edge is the mean of its four cells, and the
        # stress on the walls is the molecular one alone (nu_t = 0 there)
        vi = v[1:-1]
        t12 = o._pad_faces(o._yface(0.5 * (nt + B.prev(nt, X)))
                           * ((u[1:] - u[:-1]) / o.dyf_in + (vi - B.prev(vi, X)) / dx))
        ntxz = 0.25 * (nt + B.prev(nt, X) + B.prev(nt, Z) + B.prev(B.prev(nt, X), Z))
        t13 = ntxz * ((u - B.prev(u, Z)) / dz + (w - B.prev(w, X)) / dx)
        t23 = o._pad_faces(o._yface(0.5 * (nt + B.prev(nt, Z)))
                           * ((vi - B.prev(vi, Z)) / dz + (w[1:] - w[:-1]) / o.dyf_in))
        fu = (t11 - B.prev(t11, X)) / dx + (t12[1:] - t12[:-1]) / o.dyc + (B.next(t13, Z) - t13) / dz
        fv = ((B.next(t12[1:-1], X) - t12[1:-1]) / dx + (t22[1:] - t22[:-1]) / o.dyf_in
              + (B.next(t23[1:-1], Z) - t23[1:-1]) / dz)
        fw = (B.next(t13, X) - t13) / dx + (t23[1:] - t23[:-1]) / o.dyc + (t33 - B.prev(t33, Z)) / dz
        return fu, fv, fw

"""Numba kernel for the CPU hot spot: the explicit right-hand side (divergence-form
advection plus x, z viscous terms) fused into one pass over the grid. It computes
exactly what ``StaggeredOps.advection`` and ``lap_xz`` compute with whole-array
operations (the tests compare the two); on NumPy it is several times faster because
it does not materialise ~60 temporary arrays per substep."""
from __future__ import annotations

import numpy as np

_K = None


def explicit_kernel():
    global _K
    if _K is not None:
        return _K or None
    try:
        import numba
    except ImportError:  # pragma: no cover
        _K = False
        return None

    @numba.njit(cache=True)
    def rhs(u, v, w, dx, dz, dyc, dyf_in, wlo, whi, nu, ou, ov, ow):
        ny, nx, nz = u.shape
        idx2, idz2 = 1.0 / dx**2, 1.0 / dz**2
        for j in range(ny):
            for i in range(nx):
                ip = i + 1 if i + 1 < nx else 0
                im = i - 1 if i > 0 else nx - 1
                for k in range(nz):
                    kp = k + 1 if k + 1 < nz else 0
                    km = k - 1 if k > 0 else nz - 1
                    # ---- u at (x face i, y centre j, z centre k)
                    a = 0.5 * (u[j, i, k] + u[j, ip, k])
                    b = 0.5 * (u[j, im, k] + u[j, i, k])
                    duu = (a * a - b * b) / dx
                    ftop = 0.0
                    if j + 1 < ny:
                        ftop = (wlo[j] * u[j, i, k] + whi[j] * u[j + 1, i, k]) * 0.5 * (v[j + 1, im, k] + v[j + 1, i, k])
                    fbot = 0.0
                    if j > 0:
                        fbot = (wlo[j - 1] * u[j - 1, i, k] + whi[j - 1] * u[j, i, k]) * 0.5 * (v[j, im, k] + v[j, i, k])
                    duv = (ftop - fbot) / dyc[j]
                    fp = 0.5 * (u[j, i, k] + u[j, i, kp]) * 0.5 * (w[j, im, kp] + w[j, i, kp])
                    fm = 0.5 * (u[j, i, km] + u[j, i, k]) * 0.5 * (w[j, im, k] + w[j, i, k])
                    duw = (fp - fm) / dz
                    lap = (u[j, ip, k] - 2 * u[j, i, k] + u[j, im, k]) * idx2 \
                        + (u[j, i, kp] - 2 * u[j, i, k] + u[j, i, km]) * idz2
                    ou[j, i, k] = -(duu + duv + duw) + nu * lap
                    # ---- w at (x centre i, y centre j, z face k)
                    fp = 0.5 * (u[j, ip, km] + u[j, ip, k]) * 0.5 * (w[j, i, k] + w[j, ip, k])
                    fm = 0.5 * (u[j, i, km] + u[j, i, k]) * 0.5 * (w[j, im, k] + w[j, i, k])
                    duw = (fp - fm) / dx
                    ftop = 0.0
                    if j + 1 < ny:
                        ftop = 0.5 * (v[j + 1, i, km] + v[j + 1, i, k]) * (wlo[j] * w[j, i, k] + whi[j] * w[j + 1, i, k])
                    fbot = 0.0
                    if j > 0:
                        fbot = 0.5 * (v[j, i, km] + v[j, i, k]) * (wlo[j - 1] * w[j - 1, i, k] + whi[j - 1] * w[j, i, k])
                    dvw = (ftop - fbot) / dyc[j]
                    a = 0.5 * (w[j, i, k] + w[j, i, kp])
                    b = 0.5 * (w[j, i, km] + w[j, i, k])
                    dww = (a * a - b * b) / dz
                    lap = (w[j, ip, k] - 2 * w[j, i, k] + w[j, im, k]) * idx2 \
                        + (w[j, i, kp] - 2 * w[j, i, k] + w[j, i, km]) * idz2
                    ow[j, i, k] = -(duw + dvw + dww) + nu * lap
                    # ---- v at interior face jf = j + 1 (x centre i, z centre k)
                    if j + 1 < ny:
                        jf = j + 1
                        m = j
                        fp = (wlo[m] * u[jf - 1, ip, k] + whi[m] * u[jf, ip, k]) * 0.5 * (v[jf, i, k] + v[jf, ip, k])
                        fm = (wlo[m] * u[jf - 1, i, k] + whi[m] * u[jf, i, k]) * 0.5 * (v[jf, im, k] + v[jf, i, k])
                        duv = (fp - fm) / dx
                        a = 0.5 * (v[jf, i, k] + v[jf + 1, i, k])
                        b = 0.5 * (v[jf - 1, i, k] + v[jf, i, k])
                        dvv = (a * a - b * b) / dyf_in[m]
                        fp = 0.5 * (v[jf, i, k] + v[jf, i, kp]) * (wlo[m] * w[jf - 1, i, kp] + whi[m] * w[jf, i, kp])
                        fm = 0.5 * (v[jf, i, km] + v[jf, i, k]) * (wlo[m] * w[jf - 1, i, k] + whi[m] * w[jf, i, k])
                        dvw = (fp - fm) / dz
                        lap = (v[jf, ip, k] - 2 * v[jf, i, k] + v[jf, im, k]) * idx2 \
                            + (v[jf, i, kp] - 2 * v[jf, i, k] + v[jf, i, km]) * idz2
                        ov[m, i, k] = -(duv + dvv + dvw) + nu * lap

    _K = rhs
    return _K


def explicit_rhs_numba(ops, u, v, w, nu):
    """(-N(u) + nu Lxz u, same for v interior faces, same for w) via the fused kernel."""
    k = explicit_kernel()
    g = ops.g
    if not hasattr(ops, "_nb"):
        wlo = (g.yc[1:] - g.yf[1:-1]) / g.dyf[1:-1]
        ops._nb = (np.ascontiguousarray(g.dyc), np.ascontiguousarray(g.dyf[1:-1]), wlo, 1.0 - wlo)
    dyc, dyf_in, wlo, whi = ops._nb
    u, v, w = (np.ascontiguousarray(a) for a in (u, v, w))
    ou = np.empty_like(u)
    ov = np.empty((u.shape[0] - 1,) + u.shape[1:])
    ow = np.empty_like(w)
    k(u, v, w, ops.dx, ops.dz, dyc, dyf_in, wlo, whi, nu, ou, ov, ow)
    return ou, ov, ow

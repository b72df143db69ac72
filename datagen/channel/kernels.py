"""Numba kernel for the CPU hot spot: the explicit right-hand side (divergence-form
advection plus x, z viscous terms) fused into one pass over the grid. It computes
exactly what ``StaggeredOps.advection`` and ``lap_xz`` compute with whole-array
operations (the tests compare the two); on NumPy it is several times faster because
it does not materialise ~60 temporary arrays per substep."""
from __future__ import annotations

import math

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



_SGS = None


def sgs_kernels():
    """Fused numba kernels of the sub-grid model (``sgs.EddyViscosity``) for NumPy: the
    WALE viscosity from the velocity gradient at the centres, and the divergence of the
    eddy-viscosity stress. They compute what the array code computes (the tests compare
    the two) without its ~100 temporary arrays per call. None without numba."""
    global _SGS
    if _SGS is not None:
        return _SGS or None
    try:
        import numba
    except ImportError:  # pragma: no cover
        _SGS = False
        return None

    @numba.njit(cache=True)
    def wale(u, v, w, dx, dz, dyc, cm, c0, cp, coef, out):
        ny, nx, nz = u.shape
        g = np.empty((3, 3))
        g2 = np.empty((3, 3))
        for j in range(ny):
            for i in range(nx):
                ip = i + 1 if i + 1 < nx else 0
                im = i - 1 if i > 0 else nx - 1
                for k in range(nz):
                    kp = k + 1 if k + 1 < nz else 0
                    km = k - 1 if k > 0 else nz - 1
                    g[0, 0] = (u[j, ip, k] - u[j, i, k]) / dx
                    g[1, 1] = (v[j + 1, i, k] - v[j, i, k]) / dyc[j]
                    g[2, 2] = (w[j, i, kp] - w[j, i, k]) / dz
                    du = c0[j] * 0.5 * (u[j, i, k] + u[j, ip, k])
                    dw = c0[j] * 0.5 * (w[j, i, k] + w[j, i, kp])
                    if j > 0:
                        du += cm[j] * 0.5 * (u[j - 1, i, k] + u[j - 1, ip, k])
                        dw += cm[j] * 0.5 * (w[j - 1, i, k] + w[j - 1, i, kp])
                    if j < ny - 1:
                        du += cp[j] * 0.5 * (u[j + 1, i, k] + u[j + 1, ip, k])
                        dw += cp[j] * 0.5 * (w[j + 1, i, k] + w[j + 1, i, kp])
                    g[0, 1] = du
                    g[2, 1] = dw
                    g[0, 2] = (0.5 * (u[j, i, kp] + u[j, ip, kp]) - 0.5 * (u[j, i, km] + u[j, ip, km])) / (2.0 * dz)
                    g[1, 0] = (0.5 * (v[j + 1, ip, k] + v[j, ip, k]) - 0.5 * (v[j + 1, im, k] + v[j, im, k])) / (2.0 * dx)
                    g[1, 2] = (0.5 * (v[j + 1, i, kp] + v[j, i, kp]) - 0.5 * (v[j + 1, i, km] + v[j, i, km])) / (2.0 * dz)
                    g[2, 0] = (0.5 * (w[j, ip, k] + w[j, ip, kp]) - 0.5 * (w[j, im, k] + w[j, im, kp])) / (2.0 * dx)
                    for a in range(3):
                        for b in range(3):
                            g2[a, b] = g[a, 0] * g[0, b] + g[a, 1] * g[1, b] + g[a, 2] * g[2, b]
                    tr = (g2[0, 0] + g2[1, 1] + g2[2, 2]) / 3.0
                    ss = 0.0
                    sdsd = 0.0
                    for a in range(3):
                        for b in range(3):
                            s_ab = 0.5 * (g[a, b] + g[b, a])
                            d_ab = 0.5 * (g2[a, b] + g2[b, a]) - (tr if a == b else 0.0)
                            ss += s_ab * s_ab
                            sdsd += d_ab * d_ab
                    rd, rs = math.sqrt(sdsd), math.sqrt(ss)  # square roots: pow() would dominate the kernel
                    out[j, i, k] = coef[j] * sdsd * rd / (ss * ss * rs + sdsd * math.sqrt(rd) + 1e-300)

    @numba.njit(cache=True)
    def stress_divergence(u, v, w, nt, dx, dz, dyc, dyf_in, wlo, whi, fu, fv, fw):
        ny, nx, nz = u.shape
        t11 = np.empty((ny, nx, nz))
        t22 = np.empty((ny, nx, nz))
        t33 = np.empty((ny, nx, nz))
        t13 = np.empty((ny, nx, nz))
        t12 = np.zeros((ny + 1, nx, nz))  # the wall rows stay zero: no sub-grid stress on the walls
        t23 = np.zeros((ny + 1, nx, nz))
        for j in range(ny):
            for i in range(nx):
                ip = i + 1 if i + 1 < nx else 0
                im = i - 1 if i > 0 else nx - 1
                for k in range(nz):
                    kp = k + 1 if k + 1 < nz else 0
                    km = k - 1 if k > 0 else nz - 1
                    n = nt[j, i, k]
                    t11[j, i, k] = 2.0 * n * (u[j, ip, k] - u[j, i, k]) / dx
                    t22[j, i, k] = 2.0 * n * (v[j + 1, i, k] - v[j, i, k]) / dyc[j]
                    t33[j, i, k] = 2.0 * n * (w[j, i, kp] - w[j, i, k]) / dz
                    ne = 0.25 * (n + nt[j, im, k] + nt[j, i, km] + nt[j, im, km])
                    t13[j, i, k] = ne * ((u[j, i, k] - u[j, i, km]) / dz + (w[j, i, k] - w[j, im, k]) / dx)
                    if j > 0:
                        m = j - 1
                        ne = wlo[m] * 0.5 * (nt[j - 1, i, k] + nt[j - 1, im, k]) + whi[m] * 0.5 * (n + nt[j, im, k])
                        t12[j, i, k] = ne * ((u[j, i, k] - u[j - 1, i, k]) / dyf_in[m] + (v[j, i, k] - v[j, im, k]) / dx)
                        ne = wlo[m] * 0.5 * (nt[j - 1, i, k] + nt[j - 1, i, km]) + whi[m] * 0.5 * (n + nt[j, i, km])
                        t23[j, i, k] = ne * ((v[j, i, k] - v[j, i, km]) / dz + (w[j, i, k] - w[j - 1, i, k]) / dyf_in[m])
        for j in range(ny):
            for i in range(nx):
                ip = i + 1 if i + 1 < nx else 0
                im = i - 1 if i > 0 else nx - 1
                for k in range(nz):
                    kp = k + 1 if k + 1 < nz else 0
                    km = k - 1 if k > 0 else nz - 1
                    fu[j, i, k] = ((t11[j, i, k] - t11[j, im, k]) / dx + (t12[j + 1, i, k] - t12[j, i, k]) / dyc[j]
                                   + (t13[j, i, kp] - t13[j, i, k]) / dz)
                    fw[j, i, k] = ((t13[j, ip, k] - t13[j, i, k]) / dx + (t23[j + 1, i, k] - t23[j, i, k]) / dyc[j]
                                   + (t33[j, i, k] - t33[j, i, km]) / dz)
                    if j > 0:
                        fv[j - 1, i, k] = ((t12[j, ip, k] - t12[j, i, k]) / dx
                                           + (t22[j, i, k] - t22[j - 1, i, k]) / dyf_in[j - 1]
                                           + (t23[j, i, kp] - t23[j, i, k]) / dz)

    _SGS = (wale, stress_divergence)
    return _SGS

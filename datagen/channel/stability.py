"""Linear stability of plane Poiseuille flow: a Chebyshev collocation Orr-Sommerfeld
solver (Trefethen, Spectral Methods in MATLAB, program 40, generalised to any alpha)
and the DNS check that a tiny Tollmien-Schlichting wave grows at the predicted rate.

Orszag (1971): Re = 10000, alpha = 1 gives c = 0.23752649 + 0.00373967 i, i.e. a
temporal growth rate alpha * c_i of the amplitude (2 alpha c_i for the energy)."""
from __future__ import annotations

import math

import numpy as np
from numpy.polynomial import chebyshev as C
from scipy.linalg import eig

ORSZAG_1971 = {"re": 10000.0, "alpha": 1.0, "c": complex(0.23752649, 0.00373967)}


def cheb(n: int):
    """Chebyshev differentiation matrix and points x_j = cos(pi j / n) (Trefethen)."""
    x = np.cos(np.pi * np.arange(n + 1) / n)
    c = np.hstack([2.0, np.ones(n - 1), 2.0]) * (-1) ** np.arange(n + 1)
    X = np.tile(x, (n + 1, 1)).T
    dX = X - X.T
    D = np.outer(c, 1 / c) / (dX + np.eye(n + 1))
    D -= np.diag(D.sum(axis=1))
    return D, x


def orr_sommerfeld(re: float, alpha: float, n: int = 100):
    """Least stable eigenvalue c (complex phase speed) of plane Poiseuille flow U = 1 - y^2
    and its eigenfunction: returns (c, x, phi) with phi = v-hat at the n+1 Chebyshev points."""
    D, x = cheb(n)
    D2 = D @ D
    S = np.diag(np.hstack([0.0, 1.0 / (1 - x[1:-1] ** 2), 0.0]))
    D3 = D2 @ D
    D4 = (np.diag(1 - x**2) @ (D3 @ D) - 8 * np.diag(x) @ D3 - 12 * D2) @ S  # clamped: phi = (1-x^2) f
    D2i, D4i = D2[1:-1, 1:-1], D4[1:-1, 1:-1]
    I = np.eye(n - 1)
    a2 = alpha**2
    U = np.diag(1 - x[1:-1] ** 2)
    # (U - c)(D2 - a2) phi - U'' phi = (D2 - a2)^2 phi / (i alpha Re), U'' = -2, written as A phi = c B phi
    A = U @ (D2i - a2 * I) + 2 * I - (D4i - 2 * a2 * D2i + a2**2 * I) / (1j * alpha * re)
    B = D2i - a2 * I
    w, V = eig(A, B)
    ok = np.isfinite(w)
    k = np.argmax(np.where(ok, w.imag, -np.inf))
    phi = np.zeros(n + 1, dtype=complex)
    phi[1:-1] = V[:, k]
    return complex(w[k]), x, phi


def eigenmode_on(y, x, phi):
    """(u-hat, v-hat) at positions y from the collocation eigenfunction, by Chebyshev
    interpolation; u-hat = i D phi / alpha follows from continuity (divide by alpha outside)."""
    coef = C.chebfit(x, phi, len(x) - 1)
    return C.chebval(y, C.chebder(coef)), C.chebval(y, coef)


def ts_growth_rate(nx: int = 16, ny: int = 96, stretch: float = 1.8, dt: float = 0.05, t_end: float = 30.0,
                   t_fit: float = 10.0, re: float = 1e4, alpha: float = 1.0, eps: float = 1e-5, n_os: int = 80,
                   device: str = "cpu") -> dict:
    """Run the 2-D DNS from laminar flow plus a tiny TS eigenmode and fit the growth rate
    of the perturbation energy over t in [t_fit, t_end] (earlier times let the discrete
    mode settle). Returns measured and predicted amplitude growth rates alpha * c_i."""
    from datagen.channel.dns import ChannelConfig, ChannelDNS, laminar_profile

    c, xs, phi = orr_sommerfeld(re, alpha, n_os)
    lx = 2 * math.pi / alpha
    cfg = ChannelConfig(re_tau=re, grid=dict(nx=nx, ny=ny, nz=2, lx=lx, lz=1.0, stretch=stretch), dt=dt,
                        drive="pressure_gradient", dpdx=2.0 / re, device=device)
    dns = ChannelDNS(cfg)
    g = dns.grid
    U = laminar_profile(g, cfg.nu, None, cfg.dpdx)
    du_c, _ = eigenmode_on(g.yc, xs, phi)
    _, v_f = eigenmode_on(g.yf, xs, phi)
    u_hat = 1j * du_c / alpha
    scale = eps / np.abs(v_f).max()
    ex_f = np.exp(1j * alpha * g.xf)[None, :, None]
    ex_c = np.exp(1j * alpha * g.xc)[None, :, None]
    u = U.reshape(-1, 1, 1) + scale * np.real(u_hat.reshape(-1, 1, 1) * ex_f) * np.ones((1, 1, 2))
    v = scale * np.real(v_f.reshape(-1, 1, 1) * ex_c) * np.ones((1, 1, 2))
    dns.set_fields(u, v, np.zeros_like(u))
    B = dns.B
    dns.u, dns.v, dns.w = dns._project(dns.u, dns.v, dns.w, 1.0)
    Ub = B.col(U)
    vol_c = g.dyc.reshape(-1, 1, 1)
    vol_f = g.dyf[1:-1].reshape(-1, 1, 1)
    ts, es = [], []
    nsteps = int(round(t_end / dt))
    for _ in range(nsteps):
        dns.step()
        du = B.to_numpy(dns.u - Ub)
        vv = B.to_numpy(dns.v)[1:-1]
        ts.append(dns.t)
        es.append(float((du**2 * vol_c).sum() + (vv**2 * vol_f).sum()))
    ts, es = np.array(ts), np.array(es)
    sel = ts >= t_fit
    slope = np.polyfit(ts[sel], np.log(es[sel]), 1)[0]
    return {"measured": slope / 2, "predicted": alpha * c.imag, "c_os": c, "div_max": dns.divergence_max(),
            "rel_err": abs(slope / 2 - alpha * c.imag) / abs(alpha * c.imag)}

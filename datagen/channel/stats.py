"""Turbulence statistics: plane- and time-averaged profiles at the cell centres, folded
over the two channel halves and expressed in wall units, and the comparison with
Moser, Kim & Mansour (1999) that the validation uses."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from datagen.storage.atomic import atomic_path
from linsolve.core.errors import OptionError

QUANTITIES = ("U", "V", "W", "UU", "VV", "WW", "UV")


def plane_sample(dns) -> dict:
    """Plane averages of the velocity moments at cell centres (y profiles, NumPy)."""
    B = dns.B
    uc = 0.5 * (dns.u + B.next(dns.u, 1))
    vc = 0.5 * (dns.v[1:] + dns.v[:-1])
    wc = 0.5 * (dns.w + B.next(dns.w, 2))
    ax = (1, 2)

    def mean(a):
        return B.to_numpy(a.mean(axis=ax) if B.name == "numpy" else a.mean(dim=ax))

    return {"U": mean(uc), "V": mean(vc), "W": mean(wc), "UU": mean(uc * uc), "VV": mean(vc * vc),
            "WW": mean(wc * wc), "UV": mean(uc * vc)}


class StatsAccumulator:
    """Sums of plane samples, kept per block of simulated time so that the averaging
    window can be chosen afterwards (e.g. only once the flow is statistically steady)."""

    def __init__(self, ny: int):
        self.ny = ny
        self.blocks: list[dict] = []
        self._new_block(0.0)

    def _new_block(self, t):
        self.cur = {q: np.zeros(self.ny) for q in QUANTITIES}
        self.cur.update(n=0, t0=t, t1=t)

    def add(self, dns):
        s = plane_sample(dns)
        for q in QUANTITIES:
            self.cur[q] += s[q]
        self.cur["n"] += 1
        if self.cur["n"] == 1:
            self.cur["t0"] = dns.t
        self.cur["t1"] = dns.t

    def close_block(self, t):
        if self.cur["n"]:
            self.blocks.append(self.cur)
        self._new_block(t)

    def save(self, path):
        data = {"n": np.array([b["n"] for b in self.blocks]), "t0": np.array([b["t0"] for b in self.blocks]),
                "t1": np.array([b["t1"] for b in self.blocks])}
        for q in QUANTITIES:
            data[q] = np.array([b[q] for b in self.blocks]).reshape(len(self.blocks), self.ny)
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:  # a file object: savez adds no .npz suffix
            np.savez(fh, **data)

    @classmethod
    def load(cls, path, ny):
        acc = cls(ny)
        if Path(path).exists():
            d = np.load(path)
            # profiles of another grid are refused: the next add() would fail to broadcast
            # (or a resumed average mix two grids)
            if len(d["n"]) and d["U"].shape[1] != ny:
                raise OptionError(f"{path} holds statistics on {d['U'].shape[1]} cells in y, not {ny}")
            for i in range(len(d["n"])):
                blk = {q: d[q][i].copy() for q in QUANTITIES}
                blk.update(n=int(d["n"][i]), t0=float(d["t0"][i]), t1=float(d["t1"][i]))
                acc.blocks.append(blk)
        return acc


def wall_units(sums: dict, n: int, yc: np.ndarray, nu: float) -> dict:
    """Profiles in wall units from summed samples: folded over both halves; u_tau from the
    mean wall shear (first cell centre, whose y+ is well inside the viscous sublayer)."""
    if not n >= 1:  # n = 0 would give NaN profiles with a RuntimeWarning
        raise OptionError(f"wall_units needs at least one sample, got n={n!r}")
    m = {q: sums[q] / n for q in QUANTITIES}
    ny = yc.size
    half = ny // 2
    yw = 1.0 + yc[:half]  # distance from the nearer wall
    fold = lambda a, sign=1.0: 0.5 * (a[:half] + sign * a[::-1][:half])  # noqa: E731
    U = fold(m["U"])
    uu = fold(m["UU"] - m["U"] ** 2)
    vv = fold(m["VV"] - m["V"] ** 2)
    ww = fold(m["WW"] - m["W"] ** 2)
    uv = fold(m["UV"] - m["U"] * m["V"], -1.0)
    tau_w = nu * U[0] / yw[0]
    ut = math.sqrt(max(tau_w, 0.0))
    return {"u_tau": ut, "re_tau": ut / nu, "y_plus": yw * ut / nu, "y_over_h": yw, "U_plus": U / ut,
            "u_rms_plus": np.sqrt(np.maximum(uu, 0)) / ut, "v_rms_plus": np.sqrt(np.maximum(vv, 0)) / ut,
            "w_rms_plus": np.sqrt(np.maximum(ww, 0)) / ut, "uv_plus": uv / ut**2,
            "U_centre_plus": float(0.5 * (m["U"][half - 1] + m["U"][-half]) / ut) if ny % 2 == 0
            else float(m["U"][half] / ut)}


# --- comparison with the reference DNS ------------------------------------------------------------
TARGETS = {"mean_rms_rel": 0.05, "centre_rel": 0.05, "urms_peak": (2.4, 2.9), "urms_peak_yplus": (10.0, 20.0),
           "uv_peak": 0.71, "uv_peak_rel": 0.10}


def load_reference(path=None) -> dict:
    path = path or Path(__file__).resolve().parents[2] / "tests" / "data" / "channel_re180_mean_profile.json"
    return json.loads(Path(path).read_text())


def compare_with_reference(prof: dict, ref: dict) -> dict:
    """The issue's acceptance numbers for a profile dict as from ``wall_units``."""
    yp_ref = np.asarray(ref["y_plus"], dtype=float)
    U_ref = np.asarray(ref["U_plus"], dtype=float)
    yp = np.asarray(prof["y_plus"], dtype=float)
    U = np.asarray(prof["U_plus"], dtype=float)
    sel = (yp_ref >= 5) & (yp_ref <= 150)
    U_at = np.interp(yp_ref[sel], yp, U)
    mean_rms_rel = float(np.sqrt(np.mean((U_at - U_ref[sel]) ** 2)) / np.sqrt(np.mean(U_ref[sel] ** 2)))
    centre_ref = float(U_ref[-1])
    centre_rel = abs(prof["U_centre_plus"] - centre_ref) / centre_ref
    out = {"mean_U_rms_rel_err_5_150": mean_rms_rel, "centre_U_plus": prof["U_centre_plus"],
           "centre_U_plus_ref": centre_ref, "centre_rel_err": centre_rel}
    checks = {"mean_U": mean_rms_rel <= TARGETS["mean_rms_rel"], "centre_U": centre_rel <= TARGETS["centre_rel"]}
    if "u_rms_plus" in prof:
        urms = np.asarray(prof["u_rms_plus"])
        i = int(np.argmax(urms))
        uv = -np.asarray(prof["uv_plus"])
        k = int(np.argmax(uv))
        out.update(u_rms_peak=float(urms[i]), u_rms_peak_yplus=float(yp[i]), uv_peak=float(uv[k]),
                   uv_peak_yplus=float(yp[k]), uv_peak_rel_err=abs(float(uv[k]) - TARGETS["uv_peak"]) / TARGETS["uv_peak"])
        lo, hi = TARGETS["urms_peak"]
        ylo, yhi = TARGETS["urms_peak_yplus"]
        checks["u_rms_peak"] = bool(lo <= urms[i] <= hi and ylo <= yp[i] <= yhi)
        checks["uv_peak"] = out["uv_peak_rel_err"] <= TARGETS["uv_peak_rel"]
    out["checks"] = checks
    out["all_met"] = all(checks.values())
    return out


# --- statistics of stored coarse trajectories (filtered DNS, LES, surrogate rollouts) ----------------
def _snapshots(vel, y) -> tuple[np.ndarray, np.ndarray]:
    """``vel`` as (T, NX, NY, NZ, 3) (a view where it can be) and ``y`` as float64, checked."""
    y = np.asarray(y, dtype=np.float64)
    vel = vel if hasattr(vel, "shape") and hasattr(vel, "reshape") else np.asarray(vel)
    if vel.ndim < 4 or vel.shape[-1] != 3 or vel.shape[-3] != y.size:
        raise OptionError(f"velocity of shape {vel.shape} is not (..., NX, {y.size}, NZ, 3)")
    return vel.reshape((-1,) + tuple(vel.shape[-4:])), y


def _chunks(v, size: int = 64):
    """Snapshots in float64 a block at a time: a paper-sized trajectory is GBs in float64."""
    for i in range(0, v.shape[0], size):
        yield np.asarray(v[i:i + size], dtype=np.float64)


def coarse_profiles(vel, y, nu: float, u_tau: float = 1.0) -> dict:
    """Mean and rms profiles of collocated velocity snapshots on a coarse grid.

    The one implementation of these statistics for stored coarse trajectories: the LES
    benchmark and ``operators evaluate`` both use it. Fluctuations are taken about the mean
    over every snapshot and the x-z plane.

    Parameters
    ----------
    vel : array (..., NX, NY, NZ, 3)
        Snapshots (any leading axes: time, trajectories), averaged over them and over x-z;
        a channels-first array can be passed as ``np.moveaxis(u, 1, -1)`` (a view, no copy).
    y : array (NY,)
        The wall-normal points, symmetric about the centre (e.g. Gauss-Lobatto, walls included).
    nu : float
        Kinematic viscosity.
    u_tau : float
        The velocity scale of the ``_plus`` quantities (default 1: the nominal friction
        velocity of the channel's units, the same for every run compared).

    Returns
    -------
    dict
        Profiles over the lower half folded with the upper one (centre included): ``y_over_h``,
        ``y_plus``, ``U_plus``, ``u_rms_plus``, ``v_rms_plus``, ``w_rms_plus``, ``uv_plus``
        (<u'v'>/u_tau^2 with the sign of the lower half, negative there, as in ``wall_units``),
        and ``u_tau_wall`` / ``re_tau_wall`` from the mean wall gradient (first point off the wall).

    Raises
    ------
    OptionError
        ``vel`` is not (..., NX, NY, NZ, 3) with NY = ``y.size``.

    Examples
    --------
    >>> import numpy as np
    >>> y = -np.cos(np.pi * np.arange(9) / 8)
    >>> vel = np.zeros((2, 4, 9, 4, 3)); vel[..., 0] = 1 - y[None, None, :, None] ** 2
    >>> round(float(coarse_profiles(vel, y, 1 / 180)["U_plus"][-1]), 12)
    1.0
    """
    v, y = _snapshots(vel, y)
    NY = y.size
    count = v.shape[0] * v.shape[1] * v.shape[3]
    mean = sum(c.sum(axis=(0, 1, 3)) for c in _chunks(v)) / count          # (NY, 3)
    cov = np.zeros((NY, 4))                                                # uu, vv, ww, uv
    for c in _chunks(v):
        fl = c - mean[None, None, :, None, :]
        cov[:, :3] += (fl**2).sum(axis=(0, 1, 3))
        cov[:, 3] += (fl[..., 0] * fl[..., 1]).sum(axis=(0, 1, 3))
    cov /= count
    half = (NY + 1) // 2
    fold = lambda a, sign=1.0: 0.5 * (a[:half] + sign * a[::-1][:half])  # noqa: E731
    yw = 1.0 + y[:half]
    dudy = 0.5 * ((mean[1, 0] - mean[0, 0]) / (y[1] - y[0]) + (mean[-2, 0] - mean[-1, 0]) / (y[-1] - y[-2]))
    ut_wall = math.sqrt(max(nu * dudy, 0.0))
    rms = lambda i: np.sqrt(np.maximum(fold(cov[:, i]), 0)) / u_tau  # noqa: E731
    return {"y_over_h": yw, "y_plus": yw * u_tau / nu, "U_plus": fold(mean[:, 0]) / u_tau,
            "u_rms_plus": rms(0), "v_rms_plus": rms(1), "w_rms_plus": rms(2),
            "uv_plus": fold(cov[:, 3], -1.0) / u_tau**2, "u_tau_wall": ut_wall, "re_tau_wall": ut_wall / nu}


def coarse_spectra(vel, y, nu: float, lx: float, lz: float, y_plus: float = 15.0, u_tau: float = 1.0) -> dict:
    """One-dimensional energy spectra of the fluctuations at the plane nearest ``y_plus``
    (both walls; the wall itself excluded) and at the centre plane, averaged over snapshots
    and the other periodic direction: E_ii(k_x) and E_ii(k_z) for i = u, v, w, one-sided,
    summing to the variance, and the spectra of the fluctuating kinetic energy
    E(k) = (E_uu + E_vv + E_ww) / 2. Fluctuations are about the mean over every snapshot and
    the plane (so only the k = 0 bin depends on how the mean is taken).

    Parameters
    ----------
    vel : array (..., NX, NY, NZ, 3)
        Snapshots, as for ``coarse_profiles``.
    y : array (NY,)
        The wall-normal points.
    nu, lx, lz : float
        Kinematic viscosity and the periodic box lengths.
    y_plus : float
        Wall distance (in units of nu / u_tau) of the near-wall plane.
    u_tau : float
        Velocity scale (the spectra are divided by u_tau^2).

    Returns
    -------
    dict
        ``kx``, ``kz`` (wavenumbers 2 pi m / L, m = 0..N/2), ``y_plus_near`` and ``j_near`` (the
        plane used and its index), ``j_centre``, and for each of ``near``, ``centre`` the arrays
        ``Euu_x``, ``Evv_x``, ``Eww_x``, ``Euu_z``, ``Evv_z``, ``Eww_z``, ``E_x``, ``E_z``.

    Raises
    ------
    OptionError
        ``vel`` is not (..., NX, NY, NZ, 3) with NY = ``y.size``.

    Examples
    --------
    >>> import numpy as np
    >>> y = -np.cos(np.pi * np.arange(9) / 8); x = np.arange(8) * 2 * np.pi / 8
    >>> vel = np.zeros((1, 8, 9, 4, 3)); vel[..., 0] = np.cos(2 * x)[:, None, None]
    >>> s = coarse_spectra(vel, y, 0.1, 2 * np.pi, 1.0)
    >>> round(float(s["centre"]["Euu_x"][2]), 12), round(float(s["centre"]["E_x"].sum()), 12)
    (0.5, 0.25)
    """
    v, y = _snapshots(vel, y)
    NX, NY, NZ = v.shape[1:4]
    half = (NY + 1) // 2
    yp = (1.0 + y) * u_tau / nu
    j = 1 + int(np.argmin(np.abs(yp[1:half] - y_plus)))
    jc = (NY - 1) // 2
    planes = {"near": [j, NY - 1 - j], "centre": [jc, NY - 1 - jc]}

    def one_sided(a, axis, n):
        p = np.abs(np.fft.rfft(a, axis=axis) / n) ** 2
        p = np.moveaxis(p, axis, -1)
        p[..., 1:(n + 1) // 2] *= 2.0  # the negative wavenumbers folded in (not the Nyquist mode)
        return p

    out = {"kx": 2 * np.pi * np.arange(NX // 2 + 1) / lx, "kz": 2 * np.pi * np.arange(NZ // 2 + 1) / lz,
           "y_plus_near": float(yp[j]), "j_near": j, "j_centre": jc}
    for name, js in planes.items():
        sl = np.concatenate([c[:, :, js] for c in _chunks(v)])    # (T, NX, 2, NZ, 3)
        fl = (sl - sl.mean(axis=(0, 1, 3), keepdims=True)) / u_tau
        d = {}
        for c, comp in enumerate("uvw"):
            d[f"E{comp}{comp}_x"] = one_sided(fl[..., c], 1, NX).mean(axis=(0, 1, 2))
            d[f"E{comp}{comp}_z"] = one_sided(fl[..., c], 3, NZ).mean(axis=(0, 1, 2))
        for ax in "xz":
            d[f"E_{ax}"] = 0.5 * (d[f"Euu_{ax}"] + d[f"Evv_{ax}"] + d[f"Eww_{ax}"])
        out[name] = d
    return out

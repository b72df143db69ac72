"""Large-eddy simulation on the coarse grid of a channel dataset.

The LES grid is the staggered solver's grid built on the stored coarse grid
(``les_grid``): NX x NZ cells in the same box, whose centres are the stored x and z
points (uniform and periodic; the solver is translation invariant, so its origin is
put there), and NY - 1 cells in y whose faces are the NY stored Gauss-Lobatto points
-cos(pi j / (NY - 1)), walls included (``ChannelGrid(yfaces="lobatto")``). So v lives
on the stored points, u and w at the cell centres between them, and the filter width
(dx dy_j dz)^(1/3) follows the Gauss-Lobatto spacing.

``CoarseMap`` carries fields between the stored layout (collocated, (NX, NY, NZ, 3))
and the staggered one: in x and z by trigonometric interpolation (a half-cell shift,
exact for every resolved Fourier mode), in y by polynomial (barycentric) interpolation
between the Gauss-Lobatto points and the cell centres, with the no-slip value on the
walls. A stored state becomes an LES state by that map and one projection onto
discretely divergence-free fields at the file's bulk velocity; the LES state goes back
to the stored grid by the inverse map, so the output sits on exactly the file's grid.

``run_les`` starts from the first snapshot of one trajectory of a channel file and
writes the channel trajectory layout (one trajectory, S snapshots at the file's snapshot
interval), which ``datagen inspect`` and ``operators evaluate`` read like a rollout.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import h5py
import numpy as np

from datagen.channel.checkpoint import _fourier_resample
from datagen.channel.dns import ChannelBlowUp, ChannelConfig, ChannelDNS
from datagen.channel.filtering import coarse_y
from datagen.channel.sgs import check_model
from linsolve.core.errors import OptionError
from linsolve.core.validation import check_int


def _interp_matrix(x_in, x_out) -> np.ndarray:
    """Barycentric polynomial interpolation from the points x_in to x_out, as a matrix."""
    x_in, x_out = np.asarray(x_in, float), np.asarray(x_out, float)
    d = x_in[:, None] - x_in[None, :]
    np.fill_diagonal(d, 1.0)
    wts = 1.0 / d.prod(axis=1)
    wts /= np.abs(wts).max()
    diff = x_out[:, None] - x_in[None, :]
    exact = np.isclose(diff, 0.0, atol=1e-14)
    diff[exact] = 1.0
    P = wts[None, :] / diff
    P /= P.sum(axis=1, keepdims=True)
    rows = exact.any(axis=1)
    P[rows] = exact[rows].astype(float)
    return P


def les_grid(NX: int, NY: int, NZ: int, lx: float, lz: float) -> dict:
    """The LES grid (a ``ChannelGrid`` dict) on the stored coarse grid NX x NY x NZ."""
    return dict(nx=int(NX), ny=int(NY) - 1, nz=int(NZ), lx=float(lx), lz=float(lz), yfaces="lobatto")


class CoarseMap:
    """Stored coarse fields <-> staggered LES fields on ``les_grid`` (see the module text)."""

    def __init__(self, grid):
        if getattr(grid, "yfaces", None) != "lobatto":
            raise OptionError("CoarseMap needs an LES grid with Gauss-Lobatto y faces (les_grid)")
        self.g = grid
        self.NX, self.NY, self.NZ = grid.nx, grid.ny + 1, grid.nz
        y = coarse_y(self.NY)
        self.to_centres = _interp_matrix(y, grid.yc)                                   # (ny, NY)
        self.to_points = _interp_matrix(np.concatenate([[-1.0], grid.yc, [1.0]]), y[1:-1])  # (NY-2, ny+2)

    def to_staggered(self, vel) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(NX, NY, NZ, 3) collocated velocity -> staggered (u, v, w), (y, x, z) layout."""
        g = self.g
        vel = np.asarray(vel, dtype=np.float64)
        if vel.shape != (self.NX, self.NY, self.NZ, 3):
            raise OptionError(f"velocity of shape {vel.shape} does not fit the coarse grid "
                              f"{(self.NX, self.NY, self.NZ, 3)}")
        a = np.transpose(vel, (1, 0, 2, 3))  # (NY, NX, NZ, 3)
        uc = np.tensordot(self.to_centres, a[..., 0], axes=1)
        wc = np.tensordot(self.to_centres, a[..., 2], axes=1)
        u = _fourier_resample(uc, 1, g.nx, 0.5 * g.dx, 0.0, g.lx)
        w = _fourier_resample(wc, 2, g.nz, 0.5 * g.dz, 0.0, g.lz)
        v = a[..., 1].copy()
        v[0] = v[-1] = 0.0
        return u, v, w

    def to_coarse(self, fields: dict) -> np.ndarray:
        """Staggered fields (``ChannelDNS.fields()``) -> (NX, NY, NZ, 3) at the stored points."""
        g = self.g
        out = np.zeros((self.NY, self.NX, self.NZ, 3))
        zero = np.zeros((1, g.nx, g.nz))
        for c, (name, axis, d, length) in enumerate((("u", 1, g.dx, g.lx), (None, 0, 0, 0), ("w", 2, g.dz, g.lz))):
            if name is None:
                out[..., 1] = fields["v"]
                continue
            n = g.nx if axis == 1 else g.nz
            centred = _fourier_resample(fields[name], axis, n, 0.0, 0.5 * d, length)
            col = np.concatenate([zero, centred, zero], axis=0)
            out[1:-1, ..., c] = np.tensordot(self.to_points, col, axes=1)
        out[[0, -1]] = 0.0
        return np.transpose(out, (1, 0, 2, 3))


def start_les(vel0, x, y, z, lx, lz, re_tau, ub, sgs, dt, device="cpu", solver="fft-poisson") -> tuple:
    """An LES (``ChannelDNS`` with ``sgs``) on the coarse grid of ``x, y, z`` at the stored state
    ``vel0`` (NX, NY, NZ, 3), projected onto divergence-free fields at bulk velocity ``ub``.
    Returns (dns, CoarseMap)."""
    NX, NY, NZ = len(x), len(y), len(z)
    if not np.allclose(y, coarse_y(NY), atol=1e-6):
        raise OptionError("the file's y points are not the Gauss-Lobatto points -cos(pi j / (NY - 1))")
    cfg = ChannelConfig(re_tau=float(re_tau), grid=les_grid(NX, NY, NZ, lx, lz), dt=float(dt), ub=float(ub),
                        sgs=check_model(sgs), device=device, solver=solver)
    dns = ChannelDNS(cfg)
    cmap = CoarseMap(dns.grid)
    u, v, w = cmap.to_staggered(vel0)
    dns.set_fields(u, v, w)
    dns.u, dns.v, dns.w = dns._project(dns.u, dns.v, dns.w, 1.0)
    dns.u = dns.u + (cfg.ub - dns.bulk_velocity())
    return dns, cmap


def read_source(path, trajectory: int = -1) -> dict:
    """What an LES needs from a channel trajectory file: grid, box, Re_tau, bulk velocity,
    snapshot interval, the trajectory's first snapshot and its seed."""
    path = Path(path)
    if not path.is_file():
        raise OptionError(f"{str(path)!r} does not exist")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise OptionError(f"{str(path)!r} is not an HDF5 file: {exc}") from None
    with f:
        if f.attrs.get("problem") != "channel" or "t1_fields/velocity" not in f:
            raise OptionError(f"{str(path)!r} is not a channel trajectory file (datagen generate channel)")
        vel = f["t1_fields/velocity"]
        K = vel.shape[0]
        # -1 is the last
        k = check_int(f"trajectory (of the {K} in {str(path)!r})", trajectory, -K, K - 1, whole_floats=True) % K
        src = {"path": str(path), "trajectory": k, "vel0": vel[k, 0].astype(np.float64),
               "S": vel.shape[1], "x": f["dimensions/x"][()].astype(np.float64),
               "y": f["dimensions/y"][()].astype(np.float64), "z": f["dimensions/z"][()].astype(np.float64),
               "attrs": {a: f.attrs[a] for a in f.attrs}}
        for name in ("Re_tau", "Lx", "Lz", "U_bulk", "dt", "snapshot_dt"):
            if name not in f.attrs:
                raise OptionError(f"{str(path)!r} lacks the attribute {name!r} of a channel file")
            src[name] = float(f.attrs[name])
        seeds = f["trajectory_seeds"][()] if "trajectory_seeds" in f else np.arange(K)
        src["seed"] = int(seeds[k])
    if not np.isfinite(src["vel0"]).all():
        raise OptionError(f"{str(path)!r}: trajectory {k} has non-finite values in its first snapshot")
    return src


def choose_dt(dns: ChannelDNS, snapshot_dt: float, cfl: float = 0.5) -> int:
    """Steps per snapshot interval so that the starting CFL number is at most ``cfl``."""
    rate = dns.cfl() / dns.cfg.dt
    return max(1, math.ceil(snapshot_dt * rate / cfl - 1e-9))


def run_les(source, out, trajectory: int = -1, sgs: str | None = "wale", snapshots: int | None = None,
            steps_per_snapshot: int | None = None, device: str = "cpu", progress=None) -> dict:
    """Run an LES from the first snapshot of ``trajectory`` of the channel file ``source``
    and write ``out`` in the channel trajectory layout.

    Parameters
    ----------
    source : path
        A channel trajectory file (``datagen generate channel``).
    out : path
        The output HDF5 file (written atomically: nothing appears unless the run finishes).
    trajectory : int
        Which trajectory starts the run (-1: the last, the held-out one by convention).
    sgs : {"wale", "dsm", None}
        The sub-grid model; None runs the coarse grid without a model (coarse DNS).
    snapshots : int, optional
        Snapshots to write, the first being the mapped start (default: as many as the file has).
    steps_per_snapshot : int, optional
        LES steps per snapshot interval (default: the fewest that keep the starting CFL <= 0.5).
    device : str
        "cpu", "torch" or "cuda".
    progress : callable, optional
        Called with (snapshot index, seconds that snapshot interval took).

    Returns
    -------
    dict
        ``seconds_per_snapshot`` (list), ``dt``, ``steps_per_snapshot``, ``path``.

    Raises
    ------
    OptionError
        Bad input (not a channel file, trajectory out of range, bad counts).
    ChannelBlowUp
        The LES became unstable; nothing is written. Its ``snapshot`` attribute says where.

    Examples
    --------
    >>> run_les("train.h5", "les.h5", trajectory=-1, sgs="wale", snapshots=8)  # doctest: +SKIP
    """
    for name, value in (("snapshots", snapshots), ("steps_per_snapshot", steps_per_snapshot)):
        check_int(name, value, 1, allow_none=True, whole_floats=True)
    check_model(sgs)
    src = read_source(source, trajectory)
    S = int(snapshots or src["S"])
    dns, cmap = start_les(src["vel0"], src["x"], src["y"], src["z"], src["Lx"], src["Lz"], src["Re_tau"],
                          src["U_bulk"], sgs, src["dt"], device=device)
    n = int(steps_per_snapshot or choose_dt(dns, src["snapshot_dt"]))
    dns.cfg.dt = src["snapshot_dt"] / n
    vel = np.empty((S, cmap.NX, cmap.NY, cmap.NZ, 3), dtype=np.float32)
    seconds = []
    vel[0] = cmap.to_coarse(dns.fields())
    for s in range(1, S):
        t0 = time.perf_counter()
        try:
            dns.run(n, check_every=min(10, n))
        except ChannelBlowUp as exc:
            err = ChannelBlowUp(f"the LES ({sgs or 'no model'}) blew up before snapshot {s} "
                                f"(step {dns.step_count}): {exc}")
            err.snapshot, err.step = s, dns.step_count
            raise err from None
        seconds.append(time.perf_counter() - t0)
        vel[s] = cmap.to_coarse(dns.fields())
        if progress:
            progress(s, seconds[-1])
    write_trajectory(out, vel, src, sgs, dns, n)
    return {"path": str(out), "seconds_per_snapshot": seconds, "dt": dns.cfg.dt, "steps_per_snapshot": n}


def write_trajectory(out, vel, src: dict, sgs, dns: ChannelDNS, steps_per_snapshot: int) -> Path:
    """One LES trajectory ``vel`` (S, NX, NY, NZ, 3) in the layout of its source file, through
    the writer of every derived channel file (``datagen.storage.write_trajectory_file``), with
    the LES settings as root attributes."""
    from datagen.storage import write_trajectory_file

    S = vel.shape[0]
    cfg = json.loads(src["attrs"].get("config", "{}") or "{}")
    cfg.update(trajectories=1, snapshots=S, les=True, sgs=sgs)
    attrs = {"config": json.dumps(cfg), "les_model": sgs or "none", "les_source": src["path"],
             "les_source_trajectory": src["trajectory"], "les_dt": dns.cfg.dt,
             "les_steps_per_snapshot": steps_per_snapshot, "les_grid": json.dumps(dns.grid.params())}
    return write_trajectory_file(out, src["path"], vel[None], np.arange(S) * src["snapshot_dt"], attrs=attrs,
                                 trajectories=[src["trajectory"]])

"""Channel-flow datasets for neural-operator surrogates (IFactFormer-style): developed
turbulence, K trajectories from different seeds, S snapshots every E DNS steps, filtered
onto a coarse grid, written as time-varying fields in The Well's HDF5 layout.

The steady-systems layout of ``datagen.storage`` has no time axis, so the time-varying
layout is written here: t1_fields/velocity is float32 (K, S, NX, NY, NZ, 3),
t0_fields/pressure (K, S, NX, NY, NZ) when asked for, with dimensions/time (S,), x, y, z,
boundary_conditions (x, z periodic; y walls) and scalars (Re_tau, nu, dt, ...). Generation
is resumable: the spun-up flow is a checkpoint next to the output (reused, or given with
``restart``), every trajectory is its own shard committed atomically
(``datagen.storage.atomic``), and a rerun skips finished shards.
"""
from __future__ import annotations

import functools
import json
import math
from pathlib import Path

import h5py
import numpy as np

from datagen.channel.checkpoint import load_checkpoint, save_checkpoint
from datagen.channel.dns import ChannelBlowUp, ChannelConfig, ChannelDNS, perturbed_laminar
from datagen.channel.filtering import CoarseFilter, collocate
from datagen.channel.sgs import check_model as check_sgs_model
from datagen.channel.states import resolve_restart
from datagen.storage.atomic import atomic_h5, atomic_write_text
from linsolve.core.errors import OptionError
from linsolve.core.validation import check_int, check_real

#: ready-made configurations: a few CPU minutes, the surrogates' CPU training set (about an hour),
#: and the paper's setting (for a GPU)
PRESETS = {
    "small": dict(re_tau=180.0, grid=(32, 64, 32), box=(math.pi, math.pi / 2), coarse_grid=(16, 17, 8),
                  trajectories=2, snapshots=8, every=20, spinup=1500, dt=2e-3),
    "paper": dict(re_tau=180.0, grid=(192, 128, 160), box=(4 * math.pi, 4 * math.pi / 3), coarse_grid=(32, 33, 16),
                  trajectories=20, snapshots=400, every=200, spinup=40000, dt=1e-3, device="cuda"),
    # the CPU training set of the surrogates: from the shipped developed state (no spin-up),
    # snapshots 100 x 2e-3 = 0.2 h/u_tau (36 viscous times) apart as in "paper"; the last
    # trajectory is the held-out one, decorrelated like the others by its own seeded
    # perturbation and 2500 steps (5 h/u_tau) before its first snapshot
    "surrogate": dict(re_tau=180.0, grid=(32, 64, 48), box=(math.pi, math.pi / 2), coarse_grid=(16, 17, 8),
                      trajectories=6, snapshots=200, every=100, spinup=0, dt=2e-3, restart="re180-reduced",
                      decorrelate=2500),
}


def _perturb(dns: ChannelDNS, amplitude: float, seed: int):
    """Small divergence-free random perturbation (so trajectories from one developed
    state decorrelate through the flow's own chaos)."""
    rng = np.random.default_rng(seed)
    g = dns.grid
    f = dns.fields()
    scale = amplitude * dns.cfg.ub
    u = f["u"] + scale * rng.standard_normal(g.shape) * (1 - g.yc**2)[:, None, None]
    v = f["v"] + scale * rng.standard_normal(f["v"].shape) * (1 - g.yf**2)[:, None, None]
    w = f["w"] + scale * rng.standard_normal(g.shape) * (1 - g.yc**2)[:, None, None]
    dns.set_fields(u, v, w, dns.t, dns.step_count)
    dns.u, dns.v, dns.w = dns._project(dns.u, dns.v, dns.w, 1.0)
    if dns.cfg.drive == "flow_rate":
        dns.u = dns.u + (dns.cfg.ub - dns.bulk_velocity())


DEFAULTS = dict(PRESETS["small"], filter="box", restart=None, seed=0, device="cpu", solver="fft-poisson",
                pressure=False, decorrelate=None, perturbation=0.02)


def _triple(v, name, cast=int, length=3):
    raw = v
    if isinstance(v, str):
        v = v.split(",")
    try:
        out = tuple(cast(x) for x in v)
        # refused, not truncated: generate(grid=(32.5, 64, 32)) must not run on 32 x 64 x 32
        exact = cast is not int or all(isinstance(x, str) or (not isinstance(x, bool) and x == int(x)) for x in v)
    except (TypeError, ValueError, OverflowError) as exc:
        raise OptionError(f"{name} must be comma-separated numbers, got {raw!r}") from exc
    if not exact:
        raise OptionError(f"{name} must be {length} comma-separated integers, got {raw!r}")
    if len(out) != length or not all(math.isfinite(x) and x > 0 for x in out):
        raise OptionError(f"{name} must be {length} comma-separated positive numbers, got {raw!r}")
    return out


def generate(out, re_tau=None, trajectories=None, snapshots=None, every=None, spinup=None, coarse_grid=None,
             filter=None, restart=None, seed=None, device=None, solver=None, grid=None, box=None, dt=None,
             pressure=None, decorrelate=None, perturbation=None, preset: str | None = None, progress=None,
             solver_options: dict | None = None, sgs: str | None = None, tasks=None) -> Path:
    """Write ``out`` (HDF5) and return its path. Every argument left as None takes its value
    from ``PRESETS[preset]`` (``"small"``, ``"surrogate"`` or ``"paper"``), else from ``DEFAULTS``.
    Rerunning with the same arguments resumes: finished trajectories are kept.

    Parameters
    ----------
    out : str or Path
        The dataset file (channel trajectory layout).
    re_tau : float
        Friction Reynolds number.
    trajectories, snapshots : int
        Trajectories, and snapshots stored per trajectory.
    every : int
        DNS steps between stored snapshots.
    spinup : int
        Steps from a perturbed laminar profile to developed flow (without ``restart``).
    coarse_grid : sequence of int
        (NX, NY, NZ) of the stored (filtered) fields.
    filter : {"box", "spectral"}
        How the DNS fields are brought onto the coarse grid (``datagen.channel.filtering``).
    restart : str or Path
        A checkpoint of developed flow (``save_checkpoint``, or the ``longrun`` driver's), or the
        name of a shipped state (``"re180-reduced"``, see ``datagen.channel.states``), to start
        from instead of a spin-up (its grid, and its time step unless ``dt`` is given, are then
        used).
    seed : int
        Seeds every trajectory's perturbation.
    device : {"cpu", "torch", "cuda"}
        Backend of the DNS.
    solver : str
        linsolve solver of the pressure equation (default the exact ``fft-poisson``).
    grid : sequence of int
        The DNS grid (nx, ny, nz).
    box : sequence of float
        (lx, lz).
    dt : float
        DNS time step.
    pressure : bool
        Also store the filtered pressure (``t0_fields/pressure``).
    decorrelate : int
        Steps run after each trajectory's seeded perturbation before its first snapshot
        (default ``every``).
    perturbation : float
        That perturbation's amplitude, in units of U_b.
    preset : str, optional
        Where the arguments left as None come from.
    progress : callable, optional
        ``progress(k, s)`` after snapshot s of trajectory k (with ``tasks``: for every snapshot of
        trajectory k when that trajectory completes).
    solver_options : dict, optional
        Options of ``solver``.
    sgs : {"wale", "dsm"}, optional
        A sub-grid model (see ``sgs.py``), to run an LES instead of a DNS.
    tasks : callable, optional
        Run the trajectories elsewhere, e.g. ``datagen.cluster.Session.run`` (one Dask task per
        trajectory, each reading the spin-up checkpoint and committing its own shard, so
        ``out``'s directory must be shared with the workers).

    Returns
    -------
    Path
        ``out``.

    Raises
    ------
    OptionError
        An unknown preset or a bad argument.
    """
    if preset is not None and preset not in PRESETS:
        raise OptionError(f"unknown channel preset {preset!r}; known: {', '.join(PRESETS)}")
    given = dict(re_tau=re_tau, trajectories=trajectories, snapshots=snapshots, every=every, spinup=spinup,
                 coarse_grid=coarse_grid, filter=filter, restart=restart, seed=seed, device=device, solver=solver,
                 grid=grid, box=box, dt=dt, pressure=pressure, decorrelate=decorrelate, perturbation=perturbation)
    base_vals = {**DEFAULTS, **(PRESETS[preset] if preset else {})}
    a = {k: (v if v is not None else base_vals.get(k)) for k, v in given.items()}
    out = Path(out)
    # counts may come from a config file as whole floats (32.0); a seed must be an integer, since
    # seed=1.5 run as seed 1 would be the same data under another name
    trajectories, snapshots, every = (check_int(k, a[k], 1, whole_floats=True)
                                      for k in ("trajectories", "snapshots", "every"))
    check_int("spinup", a["spinup"], 0, whole_floats=True)
    seed = check_int("seed", a["seed"], 0)
    decorrelate = check_int("decorrelate (steps)", a["decorrelate"], 0, allow_none=True, whole_floats=True)
    decorrelate = every if decorrelate is None else decorrelate
    perturbation = check_real("perturbation (a fraction of U_b)", a["perturbation"], 0.0)
    coarse_grid = _triple(a["coarse_grid"], "coarse_grid")
    grid = _triple(a["grid"], "grid")
    box = _triple(a["box"], "box", float, length=2)
    device, solver, pressure = a["device"], a["solver"], bool(a["pressure"])
    filter, restart = a["filter"], a["restart"]
    check_sgs_model(sgs)
    restart_path = resolve_restart(restart) if restart else None  # a shipped state's name or a path
    parts = out.with_name(out.name + ".parts")
    parts.mkdir(parents=True, exist_ok=True)
    # a resumed run must be the same run: refuse to mix shards of different configurations
    fingerprint = {k: (list(v) if isinstance(v, tuple) else v) for k, v in
                   dict(a, coarse_grid=coarse_grid, grid=grid, box=box, restart=str(restart) if restart else None,
                        decorrelate=decorrelate, device=None).items() if k != "trajectories"}
    if sgs:  # only then: runs fingerprinted before the option existed still resume
        fingerprint["sgs"] = sgs
    fp_path = parts / "config.json"
    if fp_path.exists():
        try:
            old = json.loads(fp_path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError):
            old = None
        if not isinstance(old, dict):
            raise OptionError(f"{fp_path} (the configuration of the run kept in {parts}) is damaged; start again "
                              f"with --overwrite (or by deleting {parts})")
        new = json.loads(json.dumps(fingerprint))
        if old != new:
            differ = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            raise OptionError(f"{parts} holds a run with a different configuration (differs in: "
                              f"{', '.join(differ)}); use another output path, or start again with "
                              f"--overwrite (or by deleting {parts})")
    if not fp_path.exists():
        atomic_write_text(fp_path, json.dumps(fingerprint))
    base_ckpt = restart_path or parts / "spinup.npz"
    # a dt given explicitly overrides a restart checkpoint's own
    load_kw = dict(device=device, solver=solver, solver_options=solver_options, sgs=sgs,
                   dt=float(dt) if restart and dt is not None else None)
    if restart or base_ckpt.exists():
        base = load_checkpoint(base_ckpt, **load_kw)
    else:
        nx, ny, nz = grid
        cfg = ChannelConfig(re_tau=float(a["re_tau"]), grid=dict(nx=nx, ny=ny, nz=nz, lx=box[0], lz=box[1]),
                            dt=float(a["dt"]), device=device, solver=solver, solver_options=dict(solver_options or {}),
                            sgs=sgs)
        dns0 = ChannelDNS(cfg)
        # a coarse grid the DNS grid cannot be filtered onto is bad input: refuse it before the
        # spin-up (minutes to hours), not after it with a spin-up checkpoint left behind
        CoarseFilter(dns0.grid, coarse_grid, filter)
        base = perturbed_laminar(dns0, amplitude=0.15, seed=seed)
        # transition's velocity transients need a CFL-controlled step; the snapshots then
        # use the fixed dt asked for, so their spacing is exactly ``every`` x dt
        base.run(int(a["spinup"]), check_every=5, cfl_target=0.8, dt_max=float(a["dt"]))
        base.cfg.dt = float(a["dt"])
        try:
            base.check()  # never keep an unstable state as the base of the trajectories
        except ChannelBlowUp as exc:
            raise ChannelBlowUp(f"after spin-up the flow is too fast for dt = {a['dt']}: {exc}") from None
        save_checkpoint(base, base_ckpt)
    filt = CoarseFilter(base.grid, coarse_grid, filter)
    todo = []
    for k in range(int(trajectories)):
        shard = parts / f"traj_{k:04d}.h5"
        if shard.exists():
            if _shard_ok(shard, (snapshots, filt.NX, filt.NY, filt.NZ, 3), pressure):
                continue
            shard.unlink()  # unreadable or of another shape (e.g. damaged on disk): compute it again
        todo.append(k)
    one = functools.partial(_trajectory, parts=str(parts), base_ckpt=str(base_ckpt), load_kw=load_kw, perturbation=perturbation, seed=seed,
                            decorrelate=decorrelate, snapshots=snapshots, every=every, pressure=pressure,
                            coarse_grid=coarse_grid, filter=filter)
    if tasks is None:
        for k in todo:
            one(k, progress=progress)
    else:
        tasks(one, {k: (k,) for k in todo},
              lambda k, _: [progress(k, s) for s in range(snapshots)] if progress else None, name="trajectory")
    _join(out, parts, base, filt, int(trajectories), pressure, filter, every, seed)
    return out


def _trajectory(k: int, *, parts, base_ckpt, load_kw, perturbation, seed, decorrelate,
                snapshots, every, pressure, coarse_grid, filter, progress=None) -> None:
    """Trajectory ``k`` from the developed flow in ``base_ckpt``, committed as its shard (the
    unit of work of a parallel run: it needs only the checkpoint and its arguments;
    ``load_kw`` go to ``load_checkpoint``)."""
    from datagen.cluster import limit_threads

    limit_threads()
    shard = Path(parts) / f"traj_{k:04d}.h5"
    dns = load_checkpoint(base_ckpt, **load_kw)
    filt = CoarseFilter(dns.grid, coarse_grid, filter)
    _perturb(dns, perturbation, seed + 1 + k)
    dns.run(decorrelate, check_every=10) if decorrelate else None
    vel = np.empty((snapshots, filt.NX, filt.NY, filt.NZ, 3), dtype=np.float32)
    prs = np.empty((snapshots, filt.NX, filt.NY, filt.NZ), dtype=np.float32) if pressure else None
    times = np.empty(snapshots)
    for s in range(int(snapshots)):
        if s:
            dns.run(every, check_every=10)
        dns.check()  # a blown-up state raises ChannelBlowUp here; nothing of it is written
        c = collocate(dns)
        for d, comp in enumerate("uvw"):
            vel[s, ..., d] = filt(c[comp])
        if pressure:
            prs[s] = filt(c["p"], wall_value_zero=False)
        times[s] = dns.t
        if progress:
            progress(k, s)
    # a shard may be written by two processes at once (a Dask task run again while the first is alive)
    with atomic_h5(shard, unique_tmp=True) as f:
        f["velocity"] = vel
        if pressure:
            f["pressure"] = prs
        f["time"] = times
        f.attrs["seed"] = seed + 1 + k


def _shard_ok(path: Path, shape: tuple, pressure: bool) -> bool:
    """Whether a trajectory shard opens and holds what this run would write."""
    try:
        with h5py.File(path, "r") as f:
            return (f["velocity"].shape == shape and f["time"].shape == shape[:1]
                    and (not pressure or f["pressure"].shape == shape[:-1]))
    except (OSError, KeyError):
        return False


def _join(out: Path, parts: Path, base: ChannelDNS, filt: CoarseFilter, K: int, pressure: bool, kind: str,
          every: int, seed: int):
    cfg = base.cfg
    with atomic_h5(out) as f:
        shards = [h5py.File(parts / f"traj_{k:04d}.h5", "r") for k in range(K)]
        try:
            S = shards[0]["velocity"].shape[0]
            params = {"Re_tau": cfg.re_tau, "nu": cfg.nu, "dt": cfg.dt, "snapshot_interval_steps": every,
                      "snapshot_dt": every * cfg.dt, "Lx": base.grid.lx, "Lz": base.grid.lz, "U_bulk": cfg.ub}
            f.attrs.update(dataset_name="channel_flow", grid_type="cartesian", n_spatial_dims=3, n_trajectories=K,
                           simulation_parameters=list(params), format="datagen-well", format_version=1,
                           problem="channel", filter=kind,
                           dns_grid=json.dumps(base.grid.params()), config=json.dumps({
                               "re_tau": cfg.re_tau, "trajectories": K, "snapshots": S, "every": every,
                               "coarse_grid": [filt.NX, filt.NY, filt.NZ], "filter": kind, "seed": seed,
                               "solver": cfg.solver, "drive": cfg.drive, "sgs": cfg.sgs}),
                           input_fields=["velocity"], output_fields=["velocity"])
            for k, v in params.items():
                f.attrs[k] = v
            dims = f.create_group("dimensions")
            dims.attrs["spatial_dims"] = ["x", "y", "z"]
            t = np.stack([s["time"][()] for s in shards])
            dims["time"] = (t[0] - t[0, 0]).astype(np.float32)
            for name, arr in (("x", filt.x), ("y", filt.y), ("z", filt.z)):
                dims[name] = arr.astype(np.float32)
                dims[name].attrs.update(sample_varying=False, time_varying=False)
            dims["time"].attrs.update(sample_varying=False, time_varying=True)
            bcs = f.create_group("boundary_conditions")
            for name, axis, kind_, own in (("x_periodic", "x", "PERIODIC", "periodic"), ("y_wall", "y", "WALL", "no-slip"),
                                           ("z_periodic", "z", "PERIODIC", "periodic")):
                g = bcs.create_group(name)
                n = {"x": filt.NX, "y": filt.NY, "z": filt.NZ}[axis]
                mask = np.zeros(n, dtype=bool)
                mask[[0, -1]] = True  # The Well reads an axis end's type where the mask is set
                g.attrs.update(associated_dims=[axis], associated_fields=[], bc_type=kind_, datagen_bc_type=own,
                               sample_varying=False, time_varying=False)
                g["mask"] = mask
                if kind_ == "WALL":
                    g["values"] = np.zeros(2, dtype=np.float32)
            sc = f.create_group("scalars")
            sc.attrs["field_names"] = list(params)
            for k, v in params.items():
                sc[k] = np.float32(v)
                sc[k].attrs.update(sample_varying=False, time_varying=False)
            t0, t1, t2 = (f.create_group(n) for n in ("t0_fields", "t1_fields", "t2_fields"))
            t2.attrs["field_names"] = []
            t1.attrs["field_names"] = ["velocity"]
            vel = t1.create_dataset("velocity", shape=(K, S, filt.NX, filt.NY, filt.NZ, 3), dtype=np.float32)
            for k, s in enumerate(shards):
                vel[k] = s["velocity"][()]
            vel.attrs.update(dim_varying=[True, True, True], sample_varying=True, time_varying=True)
            t0.attrs["field_names"] = ["pressure"] if pressure else []
            if pressure:
                p = t0.create_dataset("pressure", shape=(K, S, filt.NX, filt.NY, filt.NZ), dtype=np.float32)
                for k, s in enumerate(shards):
                    p[k] = s["pressure"][()]
                p.attrs.update(dim_varying=[True, True, True], sample_varying=True, time_varying=True)
            f["trajectory_seeds"] = np.array([s.attrs["seed"] for s in shards])
            f["trajectory_start_time"] = t[:, 0]
        finally:
            for s in shards:
                s.close()

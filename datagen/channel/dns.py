"""Direct numerical simulation of incompressible channel flow.

Scheme (Kim & Moin 1985; Rai & Moin 1991; Orlandi 2000): second-order finite differences
on a staggered grid stretched toward the walls; low-storage three-substep Runge-Kutta
(gamma = 8/15, 5/12, 3/4; zeta = 0, -17/60, -5/12) for advection and the x, z viscous
terms, Crank-Nicolson for wall-normal diffusion (one tridiagonal solve per column), and
a fractional-step projection per substep whose pressure-Poisson system goes through a
``linsolve`` solver (default ``fft-poisson``). Units: half-height h = 1, nu = 1/Re_tau,
so u_tau = 1 at the nominal Re_tau. The flow is driven at constant flow rate (bulk
velocity ``ub``) or constant pressure gradient (-dP/dx = ``dpdx``).
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np

import linsolve
from datagen.channel.backend import Backend
from datagen.channel.grid import ChannelGrid
from datagen.channel.sgs import SGS_DIFFUSION_LIMIT, EddyViscosity
from datagen.channel.sgs import check_model as check_sgs_model
from datagen.channel.staggered import StaggeredOps
from datagen.channel.tridiag import TriFactor
from linsolve.core.errors import OptionError, SolverError

RK3 = ((8 / 15, 0.0), (5 / 12, -17 / 60), (3 / 4, -5 / 12))


class ChannelBlowUp(SolverError, FloatingPointError):
    """The run became unstable (non-finite field or CFL above the limit); nothing was written."""


def dean_bulk_velocity(re_tau: float) -> float:
    """Bulk velocity in wall units from Dean's (1978) correlation Re_tau = 0.09 Re_b^0.88,
    Re_b = 2 h U_b / nu (U_b+ = 15.7 at Re_tau 180, 17.5 at 395, 18.6 at 590)."""
    re_b = (re_tau / 0.09) ** (1 / 0.88)
    return re_b / (2 * re_tau)


def _real(x) -> bool:
    """A finite real number (bool excluded: dt=True would run with dt = 1)."""
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool) and math.isfinite(x)


@dataclass
class ChannelConfig:
    """What determines a channel-flow run (stored with every checkpoint and dataset).

    Parameters
    ----------
    re_tau : float
        Friction Reynolds number u_tau h / nu (sets nu with u_tau = h = 1).
    grid : dict
        ``ChannelGrid`` arguments: ``nx, ny, nz`` (cells), ``lx, lz`` (box) and ``stretch``.
    dt : float
        Time step (RK3 with Crank-Nicolson wall-normal diffusion).
    drive : {"flow_rate", "pressure_gradient"}
        Constant bulk velocity ``ub``, or constant pressure gradient ``dpdx``.
    ub : float, optional
        Bulk velocity for the flow-rate drive (Dean's correlation if None).
    dpdx : float
        -dP/dx for the pressure-gradient drive, in u_tau^2 / h.
    cfl_limit : float
        A step whose CFL number exceeds it raises ``ChannelBlowUp`` (RK3's advective bound is
        sqrt(3)).
    solver : str
        linsolve solver of the pressure equation (the exact ``fft-poisson`` by default).
    solver_options : dict
        Its options.
    device : {"cpu", "torch", "cuda"}
        NumPy on the CPU, or the PyTorch path on the CPU or a GPU.
    sgs : {"wale", "dsm", None}
        Sub-grid model for a large-eddy simulation; None for a DNS.

    Raises
    ------
    OptionError
        A value of the wrong type or outside its range.
    """

    re_tau: float = 180.0
    grid: dict = field(default_factory=dict)
    dt: float = 2e-3
    drive: str = "flow_rate"        # or "pressure_gradient"
    ub: float | None = None         # bulk velocity for flow_rate drive (Dean's value if None)
    dpdx: float = 1.0               # -dP/dx for pressure_gradient drive (u_tau^2 / h)
    cfl_limit: float = 1.6          # RK3's advective stability bound is sqrt(3)
    solver: str = "fft-poisson"
    solver_options: dict = field(default_factory=dict)
    device: str = "cpu"
    sgs: str | None = None          # sub-grid model for LES: "wale", "dsm" (see sgs.py) or None (DNS)

    def __post_init__(self):
        for name in ("re_tau", "dt", "cfl_limit"):
            if not (_real(getattr(self, name)) and getattr(self, name) > 0):
                raise OptionError(f"{name} must be positive and finite, got {getattr(self, name)!r}")
        # a NaN cfl_limit would switch the CFL check off (c > nan is never true); a NaN ub or
        # dpdx would surface as a NonFiniteError or SciPy's ValueError from the first step
        for name in ("ub", "dpdx"):
            value = getattr(self, name)
            if not (value is None and name == "ub") and not _real(value):
                raise OptionError(f"{name} must be a finite number, got {value!r}")
        if self.drive not in ("flow_rate", "pressure_gradient"):
            raise OptionError(f"drive must be 'flow_rate' or 'pressure_gradient', got {self.drive!r}")
        if not isinstance(self.grid, dict):
            raise OptionError(f"grid must be a dict of ChannelGrid fields, got {type(self.grid).__name__}")
        unknown = sorted(set(self.grid) - set(ChannelGrid.__dataclass_fields__))
        if unknown:
            raise OptionError(f"unknown channel grid field(s) {', '.join(map(str, unknown))}; known: "
                              f"{', '.join(ChannelGrid.__dataclass_fields__)}")
        ChannelGrid(**self.grid)  # bad sizes and box lengths fail here, not at ChannelDNS
        if self.ub is None:
            self.ub = dean_bulk_velocity(self.re_tau)
        linsolve.solver_class(self.solver)  # unknown names fail here, with the list
        check_sgs_model(self.sgs)

    @property
    def nu(self) -> float:
        return 1.0 / self.re_tau

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, s: str) -> ChannelConfig:
        return cls(**json.loads(s))


class ChannelDNS:
    """The time stepper. ``u, v, w`` are backend arrays (see ``operators`` for layout).

    Parameters
    ----------
    config : ChannelConfig
        The run's configuration; the fields start at rest (see :func:`perturbed_laminar`).
    """

    def __init__(self, config: ChannelConfig):
        self.cfg = config
        self.B = Backend(config.device)
        self.grid = ChannelGrid(**config.grid)
        self.ops = StaggeredOps(self.grid, self.B)
        self.nu = config.nu
        g = self.grid
        self.u = self.B.zeros(g.shape)
        self.v = self.B.zeros((g.ny + 1, g.nx, g.nz))
        self.w = self.B.zeros(g.shape)
        self.t = 0.0
        self.step_count = 0
        self.last_dpdx = config.dpdx
        self.structure = self.ops.poisson_structure()
        self.pressure_grid = linsolve.Grid(g.shape, (float(g.dyc.mean()), g.dx, g.dz))
        self._matrix = None
        self._solver = None
        self._factors: dict = {}
        self.timing = {"step": 0.0, "pressure": 0.0, "steps": 0, "solves": 0, "iterations": 0}
        self.pressure_hook = None   # called with (b, x) of every pressure solve (benchmarks)
        self.monitor: dict = {}
        self.sgs = EddyViscosity(config.sgs, self.ops, self.nu) if config.sgs else None
        #: CFL number that ``run`` steers the step size toward when given no ``cfl_target``
        #: (None: a fixed step); ``perturbed_laminar`` sets it for the transition
        self.cfl_target = None
        self.dt_max = None
        self.use_numba = self.B.name == "numpy"
        if self.use_numba:
            from datagen.channel.kernels import explicit_kernel

            self.use_numba = explicit_kernel() is not None

    # --- set-up -------------------------------------------------------------------------
    def pressure_matrix(self):
        if self._matrix is None:
            self._matrix = self.structure.matrix()
        return self._matrix

    def pressure_system(self, b) -> linsolve.LinearSystem:
        return linsolve.LinearSystem(self.pressure_matrix(), b, grid=self.pressure_grid,
                                     meta={"tensor_poisson": self.structure})

    def _pressure_solver(self):
        if self._solver is None:
            opts = {"rtol": 1e-10, **self.cfg.solver_options}
            if self.cfg.solver != "fft-poisson":
                opts.setdefault("warm_start", True)
            self._solver = linsolve.make_solver(self.cfg.solver, **opts)
        return self._solver

    def _cn_factors(self, alpha_dt: float):
        key = round(alpha_dt, 15)
        if key not in self._factors:
            beta = 0.5 * alpha_dt * self.nu
            fs = []
            for lo, d, up in (self.ops.ly_centre(), self.ops.ly_face()):
                fs.append(TriFactor(-beta * lo, 1.0 - beta * d, -beta * up, self.B))
            self._factors[key] = tuple(fs)
        return self._factors[key]

    def set_fields(self, u, v, w, t: float = 0.0, step: int = 0):
        B, g = self.B, self.grid
        u, v, w = (np.asarray(a, dtype=np.float64) for a in (u, v, w))
        if u.shape != g.shape or w.shape != g.shape or v.shape != (g.ny + 1, g.nx, g.nz):
            raise OptionError(f"fields do not match the grid {g.shape}: got {u.shape}, {v.shape}, {w.shape}")
        # checked here: NaN fields would surface steps later as a ChannelBlowUp advising a smaller dt
        if not all(np.isfinite(a).all() for a in (u, v, w)):
            raise OptionError("fields contain NaN or Inf")
        v = v.copy()
        v[0] = v[-1] = 0.0
        self.u, self.v, self.w = B.asarray(u), B.asarray(v), B.asarray(w)
        self.t, self.step_count = float(t), int(step)

    def fields(self) -> dict:
        B = self.B
        return {"u": B.to_numpy(self.u).copy(), "v": B.to_numpy(self.v).copy(), "w": B.to_numpy(self.w).copy()}

    # --- diagnostics ----------------------------------------------------------------------
    def bulk_of(self, u) -> float:
        g = self.grid
        return float((u * self.ops.dyc).sum()) / (2.0 * g.nx * g.nz)

    def bulk_velocity(self) -> float:
        return self.bulk_of(self.u)

    def _unit_response(self, alpha_dt, cen):
        key = ("q", round(alpha_dt, 15))
        if key not in self._factors:
            q = self.B.col(np.ones(self.grid.ny))
            q = cen.solve(self.B.copy(q))
            self._factors[key] = (q, float((q * self.ops.dyc).sum()) / 2.0)
        return self._factors[key]

    def cfl(self) -> float:
        o, B = self.ops, self.B
        uc = abs(0.5 * (self.u + B.next(self.u, 1)))
        vc = abs(0.5 * (self.v[1:] + self.v[:-1]))
        wc = abs(0.5 * (self.w + B.next(self.w, 2)))
        return float((uc / o.dx + vc / o.dyc + wc / o.dz).max()) * self.cfg.dt

    def divergence_max(self) -> float:
        return self.B.amax_abs(self.ops.divergence(self.u, self.v, self.w))

    def wall_shear(self) -> float:
        """Mean wall shear stress nu dU/dy averaged over both walls.

        Returns
        -------
        float
            tau_w / rho (u_tau^2 in a developed flow).
        """
        g = self.grid
        U = self.B.to_numpy(self.u.mean(axis=(1, 2)) if self.B.name == "numpy" else self.u.mean(dim=(1, 2)))
        return float(self.nu * 0.5 * (U[0] / g.dyf[0] + U[-1] / g.dyf[-1]))

    # --- one time step ----------------------------------------------------------------------
    def _project(self, u, v, w, alpha_dt):
        o, B = self.ops, self.B
        div = o.divergence(u, v, w)
        rhs = -(o.vol * div) / alpha_dt
        t0 = time.perf_counter()
        if self.cfg.solver == "fft-poisson" and B.name == "torch":
            # native path on the device: same structure, same algorithm, no host round trip
            rhs.reshape(-1)[0] = 0.0
            phi = self.structure.solve_grid(rhs, B.xp)
            its = 1
        else:
            b = B.to_numpy(rhs).reshape(-1).copy()
            b[0] = 0.0  # pinned cell: the pinned system then equals the consistent singular one
            res = self._pressure_solver().solve(self.pressure_matrix(), b, grid=self.pressure_grid,
                                                meta={"tensor_poisson": self.structure})
            if not res.converged:
                raise ChannelBlowUp(f"pressure solve with {self.cfg.solver!r} failed at step "
                                    f"{self.step_count}: {res.reason}")
            its = res.iterations
            if self.pressure_hook is not None:
                self.pressure_hook(b, res.x)
            phi = res.x.reshape(self.grid.shape) if B.name == "numpy" else B.asarray(res.x.reshape(self.grid.shape))
        self.timing["pressure"] += time.perf_counter() - t0
        self.timing["solves"] += 1
        self.timing["iterations"] += its
        self.last_phi = phi  # projection potential of the last substep: the pressure to O(dt)
        gx, gy, gz = o.gradient(phi)
        u = u - alpha_dt * gx
        v = B.copy(v)
        v[1:-1] = v[1:-1] - alpha_dt * gy
        w = w - alpha_dt * gz
        return u, v, w

    def _explicit(self, u, v, w):
        o = self.ops
        if self.B.name == "numpy" and self.use_numba:
            from datagen.channel.kernels import explicit_rhs_numba

            out = explicit_rhs_numba(o, u, v, w, self.nu)
        else:
            hu, hv, hw = o.advection(u, v, w)
            nu = self.nu
            out = -hu + nu * o.lap_xz(u), -hv + nu * o.lap_xz(v[1:-1]), -hw + nu * o.lap_xz(w)
        if self.sgs is not None:
            fu, fv, fw = self.sgs.forcing(u, v, w)
            out = out[0] + fu, out[1] + fv, out[2] + fw
        return out

    def step(self):
        t0 = time.perf_counter()
        dt, nu, o = self.cfg.dt, self.nu, self.ops
        u, v, w = self.u, self.v, self.w
        old = None
        for gamma, zeta in RK3:
            alpha = gamma + zeta
            cen, fac = self._cn_factors(alpha * dt)
            beta = 0.5 * alpha * dt * nu
            new = self._explicit(u, v, w)
            ru = u + dt * gamma * new[0] + beta * o.apply_tri(o.ly_centre(), u)
            rv = v[1:-1] + dt * gamma * new[1] + beta * o.apply_tri(o.ly_face(), v[1:-1])
            rw = w + dt * gamma * new[2] + beta * o.apply_tri(o.ly_centre(), w)
            if old is not None:
                ru = ru + dt * zeta * old[0]
                rv = rv + dt * zeta * old[1]
                rw = rw + dt * zeta * old[2]
            old = new
            if self.cfg.drive == "pressure_gradient":
                ru = ru + alpha * dt * self.cfg.dpdx
                us = cen.solve(ru)
            else:
                # Constant flow rate: the uniform body force (mean pressure gradient) that makes
                # the predicted bulk velocity exact, using that the solve is linear in it.
                us = cen.solve(ru)
                q, qb = self._unit_response(alpha * dt, cen)
                force = (self.cfg.ub - self.bulk_of(us)) / (alpha * dt * qb)
                us = us + (alpha * dt * force) * q
                self.last_dpdx = force
            vs = self.B.copy(v)
            vs[1:-1] = fac.solve(rv)
            ws = cen.solve(rw)
            u, v, w = self._project(us, vs, ws, alpha * dt)
        self.u, self.v, self.w = u, v, w
        self.t += dt
        self.step_count += 1
        self.timing["step"] += time.perf_counter() - t0
        self.timing["steps"] += 1

    def check(self):
        """Raise ChannelBlowUp on a non-finite field or a CFL above the limit.

        Returns
        -------
        dict
            The monitor: step, time, CFL number, maximum divergence, bulk velocity, wall shear
            (and the eddy-viscosity diffusion number of an LES).

        Raises
        ------
        ChannelBlowUp
            Non-finite velocity, or a CFL (or explicit diffusion) number above its limit.
        """
        if not self.B.all_finite(self.u, self.v, self.w):
            raise ChannelBlowUp(f"non-finite velocity at step {self.step_count} (t = {self.t:.4g}); "
                                f"the run is unstable: lower dt (now {self.cfg.dt}) or refine the grid")
        c = self.cfl()
        self.monitor = {"step": self.step_count, "t": self.t, "cfl": c, "div_max": self.divergence_max(),
                        "ub": self.bulk_velocity(), "tau_w": self.wall_shear()}
        if c > self.cfg.cfl_limit:
            raise ChannelBlowUp(f"CFL {c:.3f} above the limit {self.cfg.cfl_limit} at step {self.step_count} "
                                f"(t = {self.t:.4g}): the run is unstable; lower dt (now {self.cfg.dt})")
        if self.sgs is not None:
            d = self.monitor["sgs_diffusion"] = self.sgs.diffusion_number(self.cfg.dt)
            if d > SGS_DIFFUSION_LIMIT:
                raise ChannelBlowUp(f"explicit eddy-viscosity diffusion number {d:.3f} above {SGS_DIFFUSION_LIMIT} "
                                    f"at step {self.step_count} (t = {self.t:.4g}); lower dt (now {self.cfg.dt})")
        return self.monitor

    def run(self, nsteps: int, check_every: int = 10, callback=None, cfl_target: float | None = None,
            dt_max: float | None = None):
        """``nsteps`` steps, checked every ``check_every``.

        Parameters
        ----------
        nsteps : int
            Steps to take.
        check_every : int
            Steps between checks (:meth:`check`) and ``callback`` calls.
        callback : callable, optional
            ``callback(dns)`` after every check.
        cfl_target : float, optional
            The step size follows the CFL number toward this value (for spin-up through
            transition, whose velocity transients would break a fixed step). Without it the step
            follows ``self.cfl_target`` (set by ``perturbed_laminar``; None, the default elsewhere,
            keeps the configured dt fixed).
        dt_max : float, optional
            The largest adapted step (default ``self.dt_max`` or the current dt).

        Returns
        -------
        dict
            The monitor of the last check (see :meth:`check`).

        Raises
        ------
        OptionError, ChannelBlowUp
            Bad arguments; an unstable run.
        """
        # integers only: check_every=0 would divide by zero after the first step, nsteps=2.7 run 2 steps
        for name, value, least in (("nsteps", nsteps, 0), ("check_every", check_every, 1)):
            if not (_real(value) and int(value) == value and value >= least):
                raise OptionError(f"{name} must be an integer >= {least}, got {value!r}")
        nsteps, check_every = int(nsteps), int(check_every)
        # a negative cfl_target or a NaN dt_max would fail in adapt_dt's log10/floor (ValueError)
        for name, value in (("cfl_target", cfl_target), ("dt_max", dt_max)):
            if value is not None and not (_real(value) and value > 0):
                raise OptionError(f"{name} must be positive and finite, got {value!r}")
        cfl_target = cfl_target or self.cfl_target
        dt_max = dt_max or self.dt_max or self.cfg.dt
        # an unstable run is found by check() and the pressure solve (ChannelBlowUp); NumPy's
        # overflow warnings on the way there would be stray lines beside that one error
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            if cfl_target and nsteps:
                self.monitor = {**self.monitor, "cfl": self.cfl()}
                adapt_dt(self, cfl_target, dt_max)
            for _ in range(nsteps):
                self.step()
                if self.step_count % check_every == 0:
                    self.check()
                    if cfl_target:
                        adapt_dt(self, cfl_target, dt_max)
                if callback is not None:
                    callback(self)
            return self.check()


def adapt_dt(dns: ChannelDNS, cfl_target: float, dt_max: float):
    """Step size toward the CFL target, on a coarse ladder so the implicit-diffusion
    factors are reused (each distinct dt costs one factorisation)."""
    c = dns.monitor.get("cfl") or dns.cfl()
    want = min(dt_max, dns.cfg.dt * cfl_target / max(c, 1e-12))
    rung = 10 ** (math.floor(math.log10(want) * 20) / 20)  # 20 rungs per decade, rounded down
    if abs(rung - dns.cfg.dt) > 1e-15 and (c > 1.15 * cfl_target or rung > 1.12 * dns.cfg.dt):
        dns.cfg.dt = rung
        if len(dns._factors) > 40:
            dns._factors.clear()


# --- initial conditions -----------------------------------------------------------------------
def laminar_profile(grid: ChannelGrid, nu: float, ub: float | None = None, dpdx: float = 1.0) -> np.ndarray:
    """The discrete Poiseuille profile at the u points: the exact steady solution of the
    scheme (nu d2U/dy2 = -dpdx with the same stencil), rescaled to bulk velocity ``ub``."""
    from scipy.linalg import solve_banded

    ops = StaggeredOps(grid, Backend("cpu"))
    lo, d, up = ops.ly_centre()
    ab = np.zeros((3, grid.ny))
    ab[0, 1:] = up[:-1]
    ab[1] = d
    ab[2, :-1] = lo[1:]
    U = solve_banded((1, 1), nu * ab, -dpdx * np.ones(grid.ny))
    if ub is not None:
        U *= ub / (U @ grid.dyc / 2.0)
    return U


def perturbed_laminar(dns: ChannelDNS, amplitude: float = 0.3, seed: int = 0, kmax: int = 4,
                      cfl_target: float | None = 0.8):
    """Laminar profile at the configured bulk velocity plus a divergence-free random
    perturbation confined to wavenumbers ``|k_x|, |k_z| <= kmax`` (rms ``amplitude`` * U_b),
    vanishing at the walls; the usual route to transition at Re_tau 180.

    The transition's velocity transients exceed what the configured step allows, so the
    DNS's ``run`` then steers the step toward ``cfl_target`` (at most the configured dt;
    ``dns.cfl_target = None`` fixes it again, ``cfl_target=None`` here never adapts).

    Parameters
    ----------
    dns : ChannelDNS
        Set in place.
    amplitude : float
        The perturbation's rms in units of the bulk velocity.
    seed : int
        Seeds the perturbation.
    kmax : int
        Largest streamwise and spanwise wavenumber index of the perturbation.
    cfl_target : float, optional
        The CFL number the step follows during transition (None: a fixed step).

    Returns
    -------
    ChannelDNS
        ``dns``.
    """
    g, cfg = dns.grid, dns.cfg
    U = laminar_profile(g, cfg.nu, cfg.ub if cfg.drive == "flow_rate" else None, cfg.dpdx)
    rng = np.random.default_rng(seed)

    def smooth(shape, env):
        a = rng.standard_normal(shape)
        ah = np.fft.rfftn(a, axes=(1, 2))
        mx = np.abs(np.fft.fftfreq(g.nx) * g.nx)[None, :, None]
        mz = np.arange(g.nz // 2 + 1)[None, None, :]
        ah[:, (mx[0, :, 0] > kmax), :] = 0
        ah[:, :, mz[0, 0, :] > kmax] = 0
        a = np.fft.irfftn(ah, s=(g.nx, g.nz), axes=(1, 2))
        return a * env.reshape(-1, 1, 1)

    u = smooth(g.shape, 1 - g.yc**2)
    v = smooth((g.ny + 1, g.nx, g.nz), 1 - g.yf**2)
    w = smooth(g.shape, 1 - g.yc**2)
    rms = math.sqrt((np.mean(u**2) + np.mean(v**2) + np.mean(w**2)) / 3)
    scale = amplitude * (cfg.ub if cfg.ub else U.mean()) / max(rms, 1e-300)
    u, v, w = U.reshape(-1, 1, 1) + scale * u, scale * v, scale * w
    dns.set_fields(u, v, w)
    B = dns.B
    uu, vv, ww = dns._project(B.asarray(u), B.asarray(v), B.asarray(w), 1.0)
    dns.u, dns.v, dns.w = uu, vv, ww
    if cfg.drive == "flow_rate":
        dns.u = dns.u + (cfg.ub - dns.bulk_velocity())
    dns.cfl_target, dns.dt_max = cfl_target, (cfg.dt if cfl_target else None)
    return dns

"""``channel-pressure``: the pressure-Poisson systems of a turbulent channel-flow DNS.

One matrix (the staggered -V D G of the channel grid, pinned at one cell; SPD) and a
real CFD sequence of right-hand sides: the scaled divergence of the predicted velocity
at consecutive Runge-Kutta substeps of ``datagen.channel``, after ``spinup`` steps from
a perturbed laminar profile. This is the sequence on which warm starts, Krylov
recycling, bandit-tuned SOR and learned solvers can be compared against the exact
``fft-poisson`` solve; the time-varying velocity datasets themselves are written by
``datagen.channel.generate``.
"""
from __future__ import annotations

import math

import numpy as np

from linsolve import LinearSystem
from linsolve.core.validation import check_int

from ..family import COUNT, POSITIVE, POSITIVE_COUNT, Family, FamilyError, Interval, register_family

_SEQUENCES: dict = {}


@register_family
class ChannelPressure(Family):
    name = "channel-pressure"
    dims = (3,)
    symmetric = True
    shared_matrix = True
    description = "pressure-Poisson systems of consecutive RK3 substeps of a turbulent channel DNS"
    params = {
        "re_tau": (180.0, "friction Reynolds number (nu = 1/re_tau, half-height 1)"),
        "lx": (math.pi, "streamwise box length"),
        "lz": (math.pi / 2, "spanwise box length"),
        "stretch": (1.6, "tanh wall-normal stretching"),
        "dt": (2e-3, "DNS time step"),
        "spinup": (300, "DNS steps before the first recorded system"),
        "stride": (1, "RK substeps between recorded systems"),
    }
    # Checked here, at construction, rather than when the DNS is first built (at the first
    # sample); the stretch bound is ChannelGrid's.
    ranges = {"re_tau": POSITIVE, "lx": POSITIVE, "lz": POSITIVE,
              "stretch": Interval(0.0, 10.0, high_open=True), "dt": POSITIVE,
              "spinup": COUNT, "stride": POSITIVE_COUNT}

    def validate(self):
        nx, ny, nz = self.grid
        if nx % 2 or nz % 2:
            raise FamilyError(f"channel grid needs even nx and nz, got {self.grid}")

    def _dns(self, seed):
        from datagen.channel import ChannelConfig, ChannelDNS, perturbed_laminar

        nx, ny, nz = self.grid
        cfg = ChannelConfig(re_tau=self.p["re_tau"], dt=self.p["dt"],
                            grid=dict(nx=nx, ny=ny, nz=nz, lx=self.p["lx"], lz=self.p["lz"], stretch=self.p["stretch"]))
        return perturbed_laminar(ChannelDNS(cfg), amplitude=0.15, seed=seed, cfl_target=None)  # the family's dt stays fixed

    def _sequence(self, seed: int, upto: int):
        """(dns, list of recorded right-hand sides) for this configuration and seed,
        extended on demand so every system is reproducible from (seed, index)."""
        key = (tuple(self.grid), tuple(sorted(self.p.items())), int(seed))
        if key not in _SEQUENCES:
            dns = self._dns(int(seed))
            dns.run(self.p["spinup"], check_every=20)
            rec = {"count": 0, "rhs": [], "t": []}

            def hook(b, x, dns=dns, rec=rec):
                if rec["count"] % self.p["stride"] == 0:
                    rec["rhs"].append(b.copy())
                    rec["t"].append(dns.t)
                rec["count"] += 1

            dns.pressure_hook = hook
            _SEQUENCES[key] = (dns, rec)
        dns, rec = _SEQUENCES[key]
        while len(rec["rhs"]) <= upto:
            dns.step()
        return dns, rec

    def sample(self, n: int, rng: np.random.Generator | None = None) -> list[dict]:
        n = check_int("number of samples", n, 0, whole_floats=True, error=FamilyError)
        seed = int((rng or np.random.default_rng(0)).integers(2**31 - 1))
        return [{"index": i, "dns_seed": seed} for i in range(int(n))]

    def assemble(self, params: dict) -> LinearSystem:
        dns, rec = self._sequence(int(params["dns_seed"]), int(params["index"]))
        b = rec["rhs"][int(params["index"])]
        return dns.pressure_system(b.copy())

    def features(self, params: dict) -> np.ndarray:
        _, rec = self._sequence(int(params["dns_seed"]), int(params["index"]))
        return np.array([rec["t"][int(params["index"])]])

    def _to_well(self, v):
        ny, nx, nz = self.grid[1], self.grid[0], self.grid[2]
        return np.transpose(np.asarray(v).reshape(ny, nx, nz), (1, 0, 2))

    def input_fields(self, params: dict) -> dict[str, np.ndarray]:
        return {"divergence_rhs": self._to_well(self.assemble(params).b)}

    def solution_fields(self, params: dict, x: np.ndarray) -> dict[str, np.ndarray]:
        return {"pressure": self._to_well(x)}

    def coordinates(self) -> dict[str, np.ndarray]:
        from datagen.channel import ChannelGrid

        nx, ny, nz = self.grid
        g = ChannelGrid(nx=nx, ny=ny, nz=nz, lx=self.p["lx"], lz=self.p["lz"], stretch=self.p["stretch"])
        return {"x": g.xc, "y": g.yc, "z": g.zc}

    def boundary_conditions(self) -> dict:
        per = {"bc_type": "periodic", "associated_fields": ["pressure"]}
        wall = {"bc_type": "neumann", "values": np.zeros(1), "associated_fields": ["pressure"]}
        return {"x_left": per, "x_right": dict(per), "y_bottom": wall, "y_top": dict(wall),
                "z_back": dict(per), "z_front": dict(per)}

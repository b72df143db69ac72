"""2-D heat equation ``u_t = kappa(t) Laplacian u + F(x, t)`` on ``[0, 1]^2``, ``u = 0`` on the
boundary, ``u(., 0) = 0``, stepped with Crank-Nicolson (``dt = 1e-3``): a sequence of related
SPD systems ordered by time (the bandit-SOR paper's set-up, Khodak et al., ICLR 2024).

* diffusion ``kappa(t) = max(0.1 sin 2 pi t, -10 sin 2 pi t)`` (>= 0; slow in the first half
  period, fast in the second);
* forcing ``F = 32 * bump(|x - c(t)| / r)``, ``r = 1/8``, centre circling as
  ``c(t) = (1/2 + cos(16 pi t) / 4, 1/2 + sin(16 pi t) / 4)``; ``bump(s) = exp(1 - 1/(1 - s^2))``
  for ``s < 1`` and 0 beyond (smooth, peak 1).

Step ``k`` (``t_k = k dt``, k >= 1) solves
``(I/dt + kappa_k L / 2) u_k = (I/dt - kappa_{k-1} L / 2) u_{k-1} + (F_{k-1} + F_k) / 2``
with ``L`` the cell-centred finite-volume ``-Laplacian`` (``n x n`` cells, Dirichlet faces).

A *sample* is a time step: ``sample(n, rng)`` returns steps 1..n (``rng`` is not used) with
``params = {"step", "t", "kappa", "t_prev", "kappa_prev"}``; the context of a step is
``kappa`` (``features`` = ``(t, kappa)``).

Carrying the state. Step k's right-hand side needs ``u_{k-1}``; it is taken from

1. the field given with ``set_previous(x, step=k-1)`` (e.g. the caller's own solution of step
   k-1; ``step`` defaults to the last assembled step), else
2. the family's reference trajectory: steps solved exactly (to rounding) from ``u_0 = 0``
   and cached at checkpoints. ``L`` is diagonalised by the 2-D type-II discrete sine
   transform (the Dirichlet face condition is an antisymmetric ghost cell), so a reference
   step costs two FFT-sized transforms instead of a sparse factorization.

So ``assemble`` is deterministic for any call order: with no ``set_previous`` every system
is exactly the reference time stepping (this is what a store re-assembling sample i from its
parameters gets), and a caller that solves steps in order and feeds its solutions back gets
the classic time stepping with its own solver.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy import fft

from linsolve import LinearSystem
from linsolve.core.validation import check_int

from ..family import FINITE, POSITIVE, POSITIVE_COUNT, Family, FamilyError, register_family
from ..stencils import Mesh, box_bcs, fv_diffusion


def kappa(t):
    s = np.sin(2 * np.pi * np.asarray(t, dtype=float))
    return np.maximum(0.1 * s, -10.0 * s)


def bump(s):
    s = np.asarray(s, dtype=float)
    inside = s < 1.0
    out = np.zeros_like(s)
    out[inside] = np.exp(1.0 - 1.0 / (1.0 - s[inside] ** 2))
    return out


@register_family
class Heat(Family):
    name = "heat"
    description = "Crank-Nicolson steps of u_t = kappa(t) Laplacian u + F with a circling heat source"
    dims = (2,)
    symmetric = True
    shared_matrix = False
    params = {
        "dt": (1e-3, "time step"),
        "amplitude": (32.0, "forcing amplitude"),
        "radius": (0.125, "forcing bump radius"),
        "checkpoint": (50, "keep every checkpoint-th reference state (memory vs recomputation)"),
    }
    # the forcing may heat or cool (either sign); Crank-Nicolson is stable for any dt > 0
    ranges = {"dt": POSITIVE, "amplitude": FINITE, "radius": POSITIVE, "checkpoint": POSITIVE_COUNT}

    def validate(self) -> None:
        self.mesh = Mesh(self.grid)
        self.L = fv_diffusion(self.mesh, np.ones(self.grid))
        self.I = sp.identity(self.mesh.n, format="csr")
        # Eigenvalues of L in the DST-II basis sin(pi m (j + 1/2) / n), m = 1..n per axis.
        self._eig = sum(np.meshgrid(*[(2.0 / h * np.sin(np.pi * np.arange(1, n + 1) / (2 * n))) ** 2
                                      for n, h in zip(self.grid, self.mesh.h, strict=True)],
                                    indexing="ij", sparse=True))
        self._ref = {0: np.zeros(self.mesh.n)}
        self._given: dict[int, np.ndarray] = {}
        self._last_step: int | None = None

    # --- model ----------------------------------------------------------------------------
    def kappa(self, t):
        return kappa(t)

    def forcing(self, t: float) -> np.ndarray:
        """``F(., t)`` at the cell centres (grid-shaped)."""
        X, Y = self.mesh.coords()
        cx = 0.5 + np.cos(16 * np.pi * t) / 4
        cy = 0.5 + np.sin(16 * np.pi * t) / 4
        return self.p["amplitude"] * bump(np.hypot(X - cx, Y - cy) / self.p["radius"])

    def crank_nicolson(self, u_prev, dt: float, kappa_prev: float, kappa_next: float, F_prev, F_next):
        """``(A, b)`` of one Crank-Nicolson step from explicit data (fields grid-shaped or
        flat); the manufactured-solution tests call it with their own kappa and forcing."""
        u_prev = np.asarray(u_prev, dtype=float).reshape(-1)
        A = (self.I / dt + (0.5 * kappa_next) * self.L).tocsr()
        b = u_prev / dt - (0.5 * kappa_prev) * (self.L @ u_prev)
        b += 0.5 * (np.asarray(F_prev, dtype=float).reshape(-1) + np.asarray(F_next, dtype=float).reshape(-1))
        return A, b

    def _step(self, k: int, u_prev):
        dt = self.p["dt"]
        t0, t1 = (k - 1) * dt, k * dt
        return self.crank_nicolson(u_prev, dt, float(kappa(t0)), float(kappa(t1)), self.forcing(t0), self.forcing(t1))

    # --- state ----------------------------------------------------------------------------
    def reference_state(self, step: int) -> np.ndarray:
        """``u_step`` of the reference trajectory (exact solves from ``u_0 = 0``)."""
        step = int(step)
        if step < 0:
            raise FamilyError(f"time step index must be non-negative, got {step}")
        start = max(j for j in self._ref if j <= step)
        u = self._ref[start]
        dt = self.p["dt"]
        for k in range(start + 1, step + 1):
            _, b = self._step(k, u)
            bhat = fft.dstn(b.reshape(self.grid), type=2, norm="ortho")
            bhat /= 1.0 / dt + 0.5 * float(kappa(k * dt)) * self._eig
            u = fft.idstn(bhat, type=2, norm="ortho").reshape(-1)
            if k % self.p["checkpoint"] == 0:
                self._ref[k] = u
        # Keep the last computed state too (the common in-order access), dropping the previous one.
        for j in [j for j in self._ref if j % self.p["checkpoint"] and j != step]:
            del self._ref[j]
        self._ref[step] = u
        return u

    def set_previous(self, x, step: int | None = None) -> None:
        """Use ``x`` as ``u_step`` when assembling step ``step + 1`` (default: the last step
        assembled, i.e. pass the solution of the system just solved)."""
        if step is None:
            if self._last_step is None:
                raise FamilyError("set_previous needs step= before any step has been assembled")
            step = self._last_step
        x = np.asarray(x, dtype=float).reshape(-1)
        if x.size != self.mesh.n or not np.all(np.isfinite(x)):
            raise FamilyError(f"previous state must be {self.mesh.n} finite values, got {x.size}")
        self._given[int(step)] = x.copy()

    def clear_previous(self) -> None:
        """Forget every field given with ``set_previous``."""
        self._given.clear()

    def previous_state(self, step: int) -> np.ndarray:
        """The ``u_{step-1}`` that step ``step``'s right-hand side is built from."""
        j = int(step) - 1
        return self._given[j] if j in self._given else self.reference_state(j)

    # --- family interface -----------------------------------------------------------------
    def sample(self, n: int, rng: np.random.Generator | None = None) -> list[dict]:
        n = check_int("number of samples", n, 0, whole_floats=True, error=FamilyError)
        dt = self.p["dt"]
        return [{"step": k, "t": k * dt, "kappa": float(kappa(k * dt)), "t_prev": (k - 1) * dt,
                 "kappa_prev": float(kappa((k - 1) * dt))} for k in range(1, int(n) + 1)]

    def _step_of(self, params: dict) -> int:
        return check_int("heat parameter step", params["step"], 1, whole_floats=True, error=FamilyError)

    def assemble(self, params: dict) -> LinearSystem:
        k = self._step_of(params)
        A, b = self._step(k, self.previous_state(k))
        self._last_step = k
        return LinearSystem(A, b, grid=self.mesh.grid(), meta={"family": self.name, "params": params})

    def features(self, params: dict) -> np.ndarray:
        k = self._step_of(params)
        t = k * self.p["dt"]
        return np.array([t, float(kappa(t))])

    def input_fields(self, params: dict) -> dict[str, np.ndarray]:
        k = self._step_of(params)
        return {"u_prev": self.previous_state(k).reshape(self.grid),
                "forcing": self.forcing(k * self.p["dt"])}

    def solution_fields(self, params: dict, x: np.ndarray) -> dict[str, np.ndarray]:
        return {"u": np.asarray(x).reshape(self.grid)}

    def coordinates(self) -> dict[str, np.ndarray]:
        return dict(zip("xy", self.mesh.axes, strict=True))

    def boundary_conditions(self) -> dict:
        return box_bcs({"bc_type": "dirichlet", "values": np.zeros(1), "associated_fields": ["u", "u_prev"]})


__all__ = ["Heat", "kappa", "bump"]

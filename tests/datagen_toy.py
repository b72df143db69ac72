"""A tiny problem family for the pipeline, store and CLI tests, independent of the real
families: -div(k grad u) = f on the unit square/cube, homogeneous Dirichlet, cell-centred
finite volumes, k = exp(a cos(pi x) + b sin(pi y)) with sampled a, b and a sampled random
source. Importing this module registers it as ``toy``."""
from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp

from datagen.family import Family, FamilyError, register_family
from linsolve import Grid, LinearSystem


def _diff(n: int, h: float) -> sp.csr_matrix:
    # (n+1) x n face-from-cell differences; the boundary rows see a zero ghost value
    # half a cell away, hence the factor 2 there.
    D = sp.diags([np.ones(n), -np.ones(n)], [0, -1], shape=(n + 1, n), format="lil")
    D[0, 0], D[n, n - 1] = 2.0, -2.0
    return (D / h).tocsr()


@register_family
class ToyPoisson(Family):
    name = "toy"
    dims = (2, 3)
    params = {"amplitude": (1.0, "range of the log-permeability coefficients a, b"),
              "delay": (0.0, "seconds to sleep in assemble (lets tests kill a run mid-way)"),
              "vector": (False, "also store the gradient of the solution (a t1 field)"),
              "holes": (False, "cut a random box of cells out of the domain (unknown count varies)")}
    description = "variable-coefficient Poisson (test family)"

    def validate(self):
        if self.p["amplitude"] < 0:
            raise FamilyError(f"amplitude must be non-negative, got {self.p['amplitude']}")

    def coordinates(self):
        return {ax: (np.arange(g) + 0.5) / g for ax, g in zip("xyz", self.grid, strict=False)}

    def _mesh(self):
        return np.meshgrid(*self.coordinates().values(), indexing="ij")

    def sample(self, n, rng):
        amp = self.p["amplitude"]
        out = []
        for _ in range(n):
            p = {"a": float(rng.uniform(-amp, amp)), "b": float(rng.uniform(-amp, amp)),
                 "source": rng.standard_normal(self.grid)}
            if self.p["holes"]:
                lo = np.array([rng.integers(1, g - 2) for g in self.grid])
                p["hole"] = np.stack([lo, lo + np.array([rng.integers(1, g - lo_) for g, lo_ in zip(
                    self.grid, lo, strict=True)])])
            out.append(p)
        return out

    def _keep(self, params):
        keep = np.ones(self.grid, dtype=bool)
        if "hole" in params:
            lo, hi = params["hole"]
            keep[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))] = False
        return keep.reshape(-1)

    def _k(self, params):
        X = self._mesh()
        return np.exp(params["a"] * np.cos(np.pi * X[0]) + params["b"] * np.sin(np.pi * X[1]))

    def assemble(self, params):
        if self.p["delay"]:
            time.sleep(self.p["delay"])
        k = self._k(params)
        n = int(np.prod(self.grid))
        A = sp.csr_matrix((n, n))
        for ax, g in enumerate(self.grid):
            h = 1.0 / g
            eye = [sp.identity(m, format="csr") for m in self.grid]
            ops = [*eye[:ax], _diff(g, h), *eye[ax + 1:]]
            D = ops[0]
            for o in ops[1:]:
                D = sp.kron(D, o, format="csr")
            # face coefficient: harmonic mean inside, the cell value on the boundary
            kp = np.concatenate([np.take(k, [0], axis=ax), k, np.take(k, [-1], axis=ax)], axis=ax)
            lo = np.take(kp, range(0, g + 1), axis=ax)
            hi = np.take(kp, range(1, g + 2), axis=ax)
            kf = 2 * lo * hi / (lo + hi)
            A = A + D.T @ sp.diags(kf.reshape(-1)) @ D
        b = 1.0 + 0.5 * params["source"].reshape(-1)
        keep = self._keep(params)
        if keep.all():
            return LinearSystem(A.tocsr(), b, grid=Grid(self.grid), meta={"params": params})
        # cells of the hole are held at zero: drop their rows and columns
        A = A.tocsr()[keep][:, keep]
        return LinearSystem(A, b[keep], grid=Grid(self.grid, unknowns=np.flatnonzero(keep)))

    def features(self, params):
        return np.array([params["a"], params["b"]])

    def input_fields(self, params):
        return {"permeability": self._k(params), "source": 1.0 + 0.5 * params["source"]}

    def solution_fields(self, params, x):
        u = np.zeros(int(np.prod(self.grid)))
        u[self._keep(params)] = np.asarray(x).reshape(-1)
        u = u.reshape(self.grid)
        out = {"pressure": u}
        if self.p["vector"]:
            out["gradient"] = np.stack(np.gradient(u, *(1.0 / g for g in self.grid)), axis=-1)
        return out

    def boundary_conditions(self):
        return {f"{ax}_{end}": "dirichlet" for ax in "xyz"[:self.dim] for end in ("lo", "hi")}

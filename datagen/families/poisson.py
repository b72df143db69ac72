"""Poisson ``-Laplacian u = f`` on the unit square with Dirichlet data on the four edges; ``f``
and each edge's data are Chebyshev series of degree 5 (default) with coefficients
``~ U(-1, 1)``, in the variable ``2 s - 1`` mapping ``[0, 1]`` to ``[-1, 1]``:

    f(x, y) = sum_{i,j <= d} c_ij T_i(2x - 1) T_j(2y - 1),    g_e(s) = sum_{i <= d} c_e,i T_i(2s - 1)

with ``s`` the coordinate along the edge (y on left/right, x on bottom/top).

One matrix, many right-hand sides (``shared_matrix = True``): cell-centred finite volumes on
``n x n`` cells with Dirichlet data at boundary-face centres, and ``assemble`` returns the SAME
CSR object for every sample so solvers can keep factorizations and preconditioners.
Corners are never used, so edge data need not agree there.
"""
from __future__ import annotations

import numpy as np
from numpy.polynomial import chebyshev

from linsolve import LinearSystem
from linsolve.core.validation import check_int

from ..family import COUNT, Family, FamilyError, register_family
from ..stencils import Mesh, bc_name, fv_boundary_rhs, fv_diffusion

EDGE_ORDER = ("left", "right", "bottom", "top")


@register_family
class Poisson(Family):
    name = "poisson"
    description = "-Laplacian u = f on the unit square; f and Dirichlet edge data are random Chebyshev series"
    dims = (2,)
    symmetric = True
    shared_matrix = True
    params = {"degree": (5, "degree of the Chebyshev series of f (in x and y) and of each edge's data")}
    ranges = {"degree": COUNT}

    def validate(self) -> None:
        self.mesh = Mesh(self.grid)
        self.faces = self.mesh.boundary_faces()
        self._edge = {e: self.faces.on_edge(e) for e in EDGE_ORDER}
        # Coordinate along each edge of its boundary faces (y on left/right, x on bottom/top).
        self._along = {e: self.faces.centre[self._edge[e], 1 if e in ("left", "right") else 0] for e in EDGE_ORDER}
        self._ones = np.ones(self.grid)
        self._A = None

    @property
    def matrix(self):
        """The shared matrix (built once, then the same object for every sample)."""
        if self._A is None:
            self._A = fv_diffusion(self.mesh, self._ones, self.faces)
        return self._A

    def sample(self, n: int, rng: np.random.Generator) -> list[dict]:
        n = check_int("number of samples", n, 0, whole_floats=True, error=FamilyError)
        d = self.p["degree"] + 1
        out = []
        for _ in range(int(n)):
            f = rng.uniform(-1.0, 1.0, size=(d, d))
            g = rng.uniform(-1.0, 1.0, size=(len(EDGE_ORDER), d))
            out.append({"f_coeffs": f, "g_coeffs": g})
        return out

    def _coeffs(self, params):
        d = self.p["degree"] + 1
        f = np.asarray(params["f_coeffs"], dtype=float)
        g = np.asarray(params["g_coeffs"], dtype=float)
        if f.shape != (d, d) or g.shape != (len(EDGE_ORDER), d):
            raise FamilyError(f"poisson coefficients must have shapes f_coeffs {(d, d)} and g_coeffs "
                              f"{(len(EDGE_ORDER), d)}, got {f.shape} and {g.shape}")
        if not (np.all(np.isfinite(f)) and np.all(np.isfinite(g))):
            raise FamilyError("poisson coefficients f_coeffs/g_coeffs must be finite")
        return f, g

    def source(self, params: dict) -> np.ndarray:
        f, _ = self._coeffs(params)
        x, y = self.mesh.axes
        return chebyshev.chebgrid2d(2 * x - 1, 2 * y - 1, f)

    def face_values(self, params: dict) -> np.ndarray:
        """Dirichlet value on every boundary face (in ``self.faces`` order)."""
        _, g = self._coeffs(params)
        vals = np.zeros(len(self.faces))
        for e, c in zip(EDGE_ORDER, g, strict=True):
            vals[self._edge[e]] = chebyshev.chebval(2 * self._along[e] - 1, c)
        return vals

    def assemble(self, params: dict) -> LinearSystem:
        return self.assemble_fields(self.source(params), self.face_values(params), params=params)

    def assemble_fields(self, f, g, params: dict | None = None) -> LinearSystem:
        """System for an explicit source ``f`` (array/callable/scalar on the cells) and
        Dirichlet data ``g`` (callable of face-centre coordinates, scalar, or one value per
        boundary face); the matrix is the shared one."""
        b = self.mesh.evaluate(f).reshape(-1) + fv_boundary_rhs(self.faces, self._ones, g=g)
        meta = {"family": self.name, "params": params if params is not None else {}}
        return LinearSystem(self.matrix, b, grid=self.mesh.grid(), meta=meta)

    def features(self, params: dict) -> np.ndarray:
        f, g = self._coeffs(params)
        return np.concatenate([f.ravel(), g.ravel()])

    def input_fields(self, params: dict) -> dict[str, np.ndarray]:
        # Dirichlet data as a grid field: each boundary cell holds the mean of its boundary
        # faces' values (corner cells average two edges), interior cells 0.
        vals = self.face_values(params)
        total = np.bincount(self.faces.cell, weights=vals, minlength=self.mesh.size)
        count = np.bincount(self.faces.cell, minlength=self.mesh.size)
        bd = np.divide(total, count, out=np.zeros_like(total), where=count > 0).reshape(self.grid)
        return {"f": self.source(params), "boundary_value": bd}

    def solution_fields(self, params: dict, x: np.ndarray) -> dict[str, np.ndarray]:
        return {"u": np.asarray(x).reshape(self.grid)}

    def coordinates(self) -> dict[str, np.ndarray]:
        return dict(zip("xy", self.mesh.axes, strict=True))

    def boundary_conditions(self) -> dict:
        return {bc_name(e): {"bc_type": "dirichlet", "associated_fields": ["u"],
                             "data": f"Chebyshev series g_coeffs[{i}] in 2s-1"} for i, e in enumerate(EDGE_ORDER)}


__all__ = ["Poisson", "EDGE_ORDER"]

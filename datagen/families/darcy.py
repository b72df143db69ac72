"""Darcy flow ``-div(a grad u) = f`` on the unit square (or cube: ``dim=3``), ``u = 0`` on the
boundary, ``f = 1``, permeability ``a = exp(GRF)`` (GRF defaults alpha = 2.5, tau = 7: the SKR
setting).

Two discretisations (``--param stencil=...``):

* ``fv`` (default): cell-centred finite volumes on ``n x n`` cells (``h = 1/n``), harmonic
  face averages of ``a``, Dirichlet data at boundary faces. Conservative, SPD, second order.
* ``skr``: the stencil of the SKR paper (Wang et al., ICLR 2024) on the ``n x n`` interior
  nodes (``h = 1/(n+1)``): diagonal ``4 a_ij``, off-diagonals ``-a_neighbour``, rhs
  ``h^2 f``. It is ``h^2 L diag(a)`` (``L`` the 5-point Laplacian), a second-order scheme for
  ``-Laplacian(a u) = f`` rather than for Darcy's equation, and non-symmetric. Use it to
  reproduce the paper's numbers (grid 80 x 80, n = 6400).
"""
from __future__ import annotations

import numpy as np

from linsolve import LinearSystem

from ..family import Family, FamilyError, register_family
from ..grf import GaussianRandomField
from ..stencils import Mesh, box_bcs, fv_boundary_rhs, fv_diffusion, nodal_scaled_laplacian_of_product

STENCILS = ("fv", "skr")


def parse_sigma(value) -> float | None:
    """``"auto"`` -> None (the GRF default ``tau^(alpha - d/2)``), else a non-negative float."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "auto"):
        return None
    try:
        s = float(value)
    except (TypeError, ValueError):
        raise FamilyError(f"parameter sigma={value!r} must be a non-negative number or 'auto'") from None
    if not np.isfinite(s) or s < 0:
        raise FamilyError(f"parameter sigma={value!r} must be a non-negative number or 'auto'")
    return s


def check_positive(name: str, value: float) -> None:
    if not np.isfinite(value) or value <= 0:
        raise FamilyError(f"parameter {name}={value!r} must be a positive finite number")


def check_coefficient(a, shape, name: str = "a") -> np.ndarray:
    """A positive finite coefficient field of the grid's shape (FamilyError otherwise)."""
    a = np.asarray(a, dtype=float)
    if a.shape != tuple(shape):
        raise FamilyError(f"coefficient field {name!r} has shape {a.shape}, the grid is {tuple(shape)}")
    if not np.all(np.isfinite(a)) or np.any(a <= 0):
        raise FamilyError(f"coefficient field {name!r} must be finite and positive")
    return a


class GRFCoefficientFamily(Family):
    """Shared part of the families whose sample is a log-normal coefficient ``a = exp(GRF)``
    on the unknowns' grid (darcy, helmholtz)."""

    grf_params = {
        "alpha": (2.5, "GRF smoothness: covariance sigma^2 (-Laplacian + tau^2)^(-alpha)"),
        "tau": (7.0, "GRF inverse length scale"),
        "sigma": ("auto", "GRF amplitude; 'auto' = tau^(alpha - d/2)"),
    }

    def validate(self) -> None:
        check_positive("alpha", self.p["alpha"])
        check_positive("tau", self.p["tau"])
        self.grf = GaussianRandomField(self.grid, alpha=self.p["alpha"], tau=self.p["tau"],
                                       sigma=parse_sigma(self.p["sigma"]))

    def sample_coefficients(self, n: int, rng: np.random.Generator) -> np.ndarray:
        if int(n) < 0:
            raise FamilyError(f"number of samples must be non-negative, got {n}")
        return np.exp(self.grf.sample(rng, int(n)))

    def _build_mesh(self) -> None:
        """Mesh and boundary faces of the chosen stencil, built once per family (assembly
        then costs only the coefficient-dependent work)."""
        self.mesh = Mesh(self.grid, centering="cell" if self.stencil == "fv" else "node")
        self.faces = self.mesh.boundary_faces() if self.stencil == "fv" else None

    def coordinates(self) -> dict[str, np.ndarray]:
        return dict(zip("xyz", self.mesh.axes, strict=False))

    def input_fields(self, params: dict) -> dict[str, np.ndarray]:
        return {"a": np.asarray(params["a"], dtype=float)}

    def solution_fields(self, params: dict, x: np.ndarray) -> dict[str, np.ndarray]:
        return {"u": np.asarray(x).reshape(self.grid)}

    def boundary_conditions(self) -> dict[str, str]:
        return box_bcs({"bc_type": "dirichlet", "values": np.zeros(1), "associated_fields": ["u"]}, self.dim)


@register_family
class Darcy(GRFCoefficientFamily):
    name = "darcy"
    description = "-div(a grad u) = f on the unit square, u = 0 on the boundary, a = exp(GRF)"
    dims = (2, 3)
    symmetric = True
    shared_matrix = False
    params = {
        "stencil": ("fv", "fv: symmetric finite volume (SPD); skr: the SKR paper's non-symmetric stencil"),
        **GRFCoefficientFamily.grf_params,
        "f": (1.0, "constant source term"),
    }

    def validate(self) -> None:
        if self.p["stencil"] not in STENCILS:
            raise FamilyError(f"parameter stencil={self.p['stencil']!r} must be one of {STENCILS}")
        if not np.isfinite(self.p["f"]):
            raise FamilyError(f"parameter f={self.p['f']!r} must be finite")
        super().validate()
        self.stencil = self.p["stencil"]
        self.symmetric = self.stencil == "fv"
        self._build_mesh()

    def sample(self, n: int, rng: np.random.Generator) -> list[dict]:
        return [{"a": a} for a in self.sample_coefficients(n, rng)]

    def assemble(self, params: dict) -> LinearSystem:
        return self.assemble_fields(params["a"], self.p["f"], params=params)

    def assemble_fields(self, a, f, g=None, params: dict | None = None) -> LinearSystem:
        """System for explicit fields: ``a`` (array on the grid, or callable ``a(x, y)``),
        source ``f`` (scalar, array or callable) and Dirichlet data ``g`` (fv only: scalar,
        callable of the boundary-face centres, or None for 0). Used by ``assemble`` and by
        the manufactured-solution convergence tests."""
        mesh, faces = self.mesh, self.faces
        a = check_coefficient(mesh.evaluate(a) if callable(a) else a, self.grid)
        f = mesh.evaluate(f)
        if self.stencil == "fv":
            A = fv_diffusion(mesh, a, faces)
            b = f.reshape(-1) + (0.0 if g is None else fv_boundary_rhs(faces, a, g=g))
        else:
            if g is not None:
                raise FamilyError("the skr stencil supports only homogeneous Dirichlet data (g=None)")
            A = nodal_scaled_laplacian_of_product(mesh, a)
            b = mesh.h[0] ** 2 * f.reshape(-1)
        meta = {"family": self.name, "stencil": self.stencil, "params": params if params is not None else {}}
        return LinearSystem(A, b, grid=mesh.grid(), meta=meta)

    def features(self, params: dict) -> np.ndarray:
        return np.asarray(params["a"], dtype=float).reshape(-1)


__all__ = ["Darcy", "GRFCoefficientFamily", "check_coefficient", "check_positive", "parse_sigma"]

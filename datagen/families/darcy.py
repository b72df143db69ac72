"""Darcy flow ``-div(a grad u) = f`` on the unit square (or cube: ``dim=3``), ``u = 0`` on the
boundary, ``f = 1``, permeability ``a = exp(GRF)`` (GRF defaults alpha = 2.5, tau = 7: the SKR
setting).

Three discretisations (``--param stencil=...``):

* ``fv`` (default): cell-centred finite volumes on ``n x n`` cells (``h = 1/n``), harmonic
  face averages of ``a``, Dirichlet data at boundary faces. Conservative, SPD, second order.
* ``skr``: the stencil of the SKR paper (Wang et al., ICLR 2024) on the ``n x n`` interior
  nodes (``h = 1/(n+1)``): diagonal ``4 a_ij``, off-diagonals ``-a_neighbour``, rhs
  ``h^2 f``. It is ``h^2 L diag(a)`` (``L`` the 5-point Laplacian), a second-order scheme for
  ``-Laplacian(a u) = f`` rather than for Darcy's equation, and non-symmetric. It is the
  stencil the published generator means to build, without its indexing slip (below).
* ``skr_published``: the matrices the paper's published generator
  (github.com/wanghong1700/NO-DataGen-SKR, ``build_darcy`` in ``code_dracy/``) actually
  builds, i.e. the instances behind its Table 1. It differs from ``skr`` in three ways:
  the GRF is FNO's zero-mean field sampled on the ``(n+2) x (n+2)`` node grid boundary
  included (a sample's ``a`` has that shape; ``input_fields`` gives its interior), the
  scale is ``h = 1/(n-1)``, and the sub-diagonal at offset ``-n`` (the coupling to the
  neighbour in the previous row) reads the coefficient two places earlier in row-major
  order: for the node at padded position ``(I, J)`` it is ``-a[I-1, J-2]`` instead of
  ``-a[I-1, J]``, wrapping to the end of an earlier row when ``J < 3``. The generator
  hands ``scipy.sparse.diags`` a vector two entries too long, which it truncates at the end.
  That slip makes the matrix far from normal and, for GRF coefficients, often slightly indefinite;
  unpreconditioned GMRES(40) then needs 10-20x more iterations than on ``skr``. With a
  constant coefficient it coincides with ``skr`` (up to the scale). 2-D square grids only.
"""
from __future__ import annotations

import contextlib

import numpy as np
import scipy.sparse as sp

from linsolve import LinearSystem
from linsolve.core.validation import check_int

from ..family import FINITE, NON_NEGATIVE, POSITIVE, Family, FamilyError, check_range, register_family
from ..grf import GaussianRandomField
from ..stencils import Mesh, box_bcs, fv_boundary_rhs, fv_diffusion, nodal_scaled_laplacian_of_product

STENCILS = ("fv", "skr", "skr_published")
PUBLISHED = "skr_published"


def published_h(n: int) -> float:
    """The published generator's grid step ``1/(s-1)`` for ``s = n`` interior nodes per side."""
    return 1.0 / (n - 1)


def published_skr_matrix(a_full: np.ndarray, shift: float = 0.0) -> sp.csr_matrix:
    """The matrix of the SKR paper's published ``build_darcy`` / ``build_helmholtz`` (shift =
    ``h^2 k^2``) from the coefficient on the padded ``(n+2) x (n+2)`` node grid.

    Rows are the ``n^2`` interior nodes in row-major order. Diagonal ``4 a - shift``;
    couplings to the neighbours at ``j-1``, ``j+1`` and ``i+1`` are ``-a`` at that
    neighbour; the coupling to ``i-1`` is ``-a_up[R - 2]`` where ``a_up`` is the
    row-major flattening of ``a_full[:-2, 1:-1]`` and R the row, the value the
    published code's over-long diagonal leaves there (the correct one is ``a_up[R]``)."""
    a_full = np.asarray(a_full, dtype=float)
    n = a_full.shape[0] - 2
    inner = a_full[1:-1, 1:-1]
    A = nodal_scaled_laplacian_of_product(Mesh((n, n), centering="node"), inner.copy(), shift=0.0)
    up = a_full[:-2, 1:-1].reshape(-1)
    # column c = R - n of the offset -n diagonal: replace -up[R] by -up[R - 2]
    fix = sp.diags(up[n:] - up[n - 2:-2], -n, shape=A.shape)
    return (A + fix - shift * sp.identity(n * n)).tocsr()


def parse_sigma(value, family: str | None = None) -> float | None:
    """``"auto"`` -> None (the GRF default ``tau^(alpha - d/2)``), else a non-negative float."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "auto"):
        return None
    with contextlib.suppress(TypeError, ValueError):
        value = float(value)  # the parameter is a string (it may be 'auto'); show the number
    check_range("sigma", value, allowed=NON_NEGATIVE, family=family, why="a non-negative number, or 'auto'")
    return value


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

    # alpha, tau > 0 keep the covariance operator positive definite; f only needs to be finite
    ranges = {"alpha": POSITIVE, "tau": POSITIVE, "f": FINITE}
    # each coefficient field is drawn on its own (see Family.independent_samples)
    independent_samples = True

    def validate(self) -> None:
        published = getattr(self, "stencil", None) == PUBLISHED
        if published and (self.dim != 2 or self.grid[0] != self.grid[1] or self.grid[0] < 3):
            raise FamilyError(f"stencil={PUBLISHED!r} is the published 2-D generator on a square grid of at "
                              f"least 3 x 3 unknowns, got grid {self.grid}")
        # the published generator samples FNO's zero-mean field on the padded node grid
        shape = tuple(g + 2 for g in self.grid) if published else self.grid
        self.grf = GaussianRandomField(shape, alpha=self.p["alpha"], tau=self.p["tau"],
                                       sigma=parse_sigma(self.p["sigma"], self.name), zero_mean=published)

    def coefficient_shape(self) -> tuple[int, ...]:
        """Shape of a sample's ``a``: the grid, or the padded node grid for ``skr_published``."""
        return self.grf.shape

    def interior(self, a) -> np.ndarray:
        """The coefficient at the unknowns (drops the padded boundary ring of ``skr_published``)."""
        a = np.asarray(a, dtype=float)
        return a[1:-1, 1:-1] if self.stencil == PUBLISHED else a

    def published_system(self, a, f, shift: float, params: dict | None, meta: dict) -> LinearSystem:
        """``skr_published`` assembly shared by darcy and helmholtz: ``a`` an array on the
        padded grid or a callable of the padded node coordinates, ``f`` on the interior."""
        n = self.grid[0]
        if callable(a):
            x = np.arange(n + 2) / (n + 1.0)
            a = a(*np.meshgrid(x, x, indexing="ij"))
        a = check_coefficient(a, self.coefficient_shape())
        f = self.mesh.evaluate(f)
        A = published_skr_matrix(a, shift=shift)
        b = published_h(n) ** 2 * f.reshape(-1)
        meta = {**meta, "params": params if params is not None else {}}
        return LinearSystem(A, b, grid=self.mesh.grid(), meta=meta)

    def sample_coefficients(self, n: int, rng: np.random.Generator) -> np.ndarray:
        n = check_int("number of samples", n, 0, whole_floats=True, error=FamilyError)
        return np.exp(self.grf.sample(rng, int(n)))

    def _build_mesh(self) -> None:
        """Mesh and boundary faces of the chosen stencil, built once per family (assembly
        then costs only the coefficient-dependent work)."""
        self.mesh = Mesh(self.grid, centering="cell" if self.stencil == "fv" else "node")
        self.faces = self.mesh.boundary_faces() if self.stencil == "fv" else None

    def coordinates(self) -> dict[str, np.ndarray]:
        return dict(zip("xyz", self.mesh.axes, strict=False))

    def input_fields(self, params: dict) -> dict[str, np.ndarray]:
        return {"a": self.interior(params["a"])}

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
        "stencil": ("fv", "fv: symmetric finite volume (SPD); skr: the SKR paper's non-symmetric stencil; "
                          "skr_published: the matrices of the paper's published generator (Table 1)"),
        **GRFCoefficientFamily.grf_params,
        "f": (1.0, "constant source term"),
    }

    def validate(self) -> None:
        if self.p["stencil"] not in STENCILS:
            raise FamilyError(f"parameter stencil={self.p['stencil']!r} must be one of {STENCILS}")
        self.stencil = self.p["stencil"]
        super().validate()
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
        if self.stencil == PUBLISHED:
            if g is not None:
                raise FamilyError(f"the {PUBLISHED} stencil supports only homogeneous Dirichlet data (g=None)")
            return self.published_system(a, f, 0.0, params, {"family": self.name, "stencil": self.stencil})
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
        # skr_published: the whole padded field, which the published code sorts on
        return np.asarray(params["a"], dtype=float).reshape(-1)


__all__ = ["Darcy", "GRFCoefficientFamily", "PUBLISHED", "check_coefficient", "parse_sigma",
           "published_h", "published_skr_matrix"]

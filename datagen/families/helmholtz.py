"""Helmholtz ``-div(a grad u) - k^2 u = f`` on the unit square, ``u = 0`` on the boundary,
``f = 1``, ``a = exp(GRF)`` (alpha = 2.5, tau = 7 by default).

Variants (``--param variant=...``):

* ``indefinite`` (default): a fixed wavenumber ``k`` (default 16) large enough that the
  operator is genuinely indefinite: ``k^2`` exceeds the lowest eigenvalues of
  ``-div(a grad)`` (about ``2 pi^2`` for ``a ~ 1``; k = 16 leaves about 20 negative
  eigenvalues). Accuracy is kept by requiring ``k h <= 0.5`` (about 12 cells per
  wavelength); a coarser grid raises FamilyError. Discretised with the symmetric
  finite-volume stencil: the matrix is symmetric but indefinite (``symmetric`` is False
  because the family flag means SPD; ``matrix_symmetric`` is True).
* ``absorbing``: the same equation at a fixed wavenumber ``k`` (default 16) with the
  first-order absorbing (Sommerfeld/impedance) condition ``a du/dn - i k u = 0`` on the whole
  boundary instead of ``u = 0``: waves leave the square instead of resonating in it. The
  matrix is complex symmetric (``A^T = A``, not Hermitian) and indefinite: its real part is
  the Neumann operator minus ``k^2`` (indefinite for any ``k > 0``), its imaginary part
  ``-k`` times the boundary mass (negative semidefinite), which makes it nonsingular for
  ``k > 0``. Finite volumes as ``fv``; at a boundary face the face value is eliminated from
  the two-point flux ``a_P (u_f - u_P) / (h/2) = i k u_f``, which puts
  ``-i k a_P / (h (a_P - i k h / 2))`` on the diagonal. ``k h <= 0.5`` is required as for
  ``indefinite``. The systems are complex: solve them with a solver that takes complex
  input (``gmres``, ``bicgstab``, ``gcrodr``, ``direct``); the datagen store holds real
  fields, so ``datagen generate`` refuses this variant.
* ``skr``: the SKR paper's set-up (Wang et al., ICLR 2024; grid 100 x 100): ``k ~ U(0, k_max)``
  per sample with ``k_max = 1``, a negligible shift, with the paper's nodal stencil
  (as for ``darcy`` with ``stencil=skr``: ``h^2 [-Laplacian(a u) - k^2 u]``, non-symmetric).

``--param stencil=fv|skr`` overrides the variant's stencil. ``stencil=skr_published`` (with
``variant=skr``) builds the matrices of the paper's published generator (``build_helmholtz``
in github.com/wanghong1700/NO-DataGen-SKR ``code_hmh/``; see ``darcy``'s docstring for how
they differ from ``skr``): the padded zero-mean GRF, diagonal ``4 a - h^2 k^2`` with
``h = 1/(n-1)``, and the shifted ``-n`` sub-diagonal. Its features are the padded
coefficient field alone, as the published ordering uses (``k`` is left out).
"""
from __future__ import annotations

import numpy as np

from linsolve import LinearSystem

from ..family import NON_NEGATIVE, FamilyError, register_family
from ..stencils import fv_boundary_rhs, fv_diffusion, nodal_scaled_laplacian_of_product
from .darcy import PUBLISHED, STENCILS, GRFCoefficientFamily, check_coefficient, published_h

VARIANTS = ("indefinite", "absorbing", "skr")
KH_MAX = 0.5
LOWEST_LAPLACE_EIGENVALUE = 2.0 * np.pi**2  # -Laplacian with Dirichlet data on the unit square


@register_family
class Helmholtz(GRFCoefficientFamily):
    name = "helmholtz"
    description = "-div(a grad u) - k^2 u = f on the unit square, u = 0 on the boundary, a = exp(GRF)"
    dims = (2,)
    symmetric = False
    shared_matrix = False
    params = {
        "variant": ("indefinite", "indefinite: fixed large k (symmetric indefinite); absorbing: fixed k, "
                    "absorbing boundary (complex symmetric indefinite); skr: k ~ U(0, k_max)"),
        "k": (16.0, "wavenumber of the indefinite and absorbing variants (k h <= 0.5 required)"),
        "k_max": (1.0, "upper end of k ~ U(0, k_max) in the skr variant"),
        "stencil": ("auto", "fv | skr | skr_published | auto (fv for indefinite, skr for the skr variant)"),
        **GRFCoefficientFamily.grf_params,
        "f": (1.0, "constant source term"),
    }

    # both wavenumbers are checked whichever variant is chosen: a negative k_max is meaningless
    # even where it is unused (and would become used with variant=skr)
    ranges = {**GRFCoefficientFamily.ranges, "k": NON_NEGATIVE, "k_max": NON_NEGATIVE}

    def validate(self) -> None:
        p = self.p
        if p["variant"] not in VARIANTS:
            raise FamilyError(f"parameter variant={p['variant']!r} must be one of {VARIANTS}")
        if p["stencil"] not in (*STENCILS, "auto"):
            raise FamilyError(f"parameter stencil={p['stencil']!r} must be one of {(*STENCILS, 'auto')}")
        fixed_k = p["variant"] in ("indefinite", "absorbing")
        self.stencil = p["stencil"] if p["stencil"] != "auto" else ("fv" if fixed_k else "skr")
        if p["variant"] == "absorbing" and self.stencil != "fv":
            raise FamilyError(f"variant='absorbing' is discretised with the fv stencil, got stencil={self.stencil!r}")
        if p["variant"] == "absorbing" and not p["k"] > 0:
            raise FamilyError(f"parameter k={p['k']:g} must be positive for the absorbing variant "
                              "(k = 0 leaves the pure Neumann problem, which is singular)")
        if self.stencil == PUBLISHED and p["variant"] != "skr":
            raise FamilyError(f"stencil={PUBLISHED!r} reproduces the published generator of the skr variant; "
                              "use variant=skr")
        h = 1.0 / np.asarray(self.grid, dtype=float) if self.stencil == "fv" else 1.0 / (np.asarray(self.grid) + 1.0)
        k_top = p["k"] if fixed_k else p["k_max"]
        name = "k" if fixed_k else "k_max"
        if k_top * h.max() > KH_MAX:
            raise FamilyError(f"parameter {name}={k_top:g} gives k h = {k_top * h.max():.3g} > {KH_MAX} on grid "
                              f"{self.grid}: under-resolved waves; refine the grid to at least "
                              f"{int(np.ceil(k_top / KH_MAX))} cells per side or lower {name}")
        if p["variant"] == "indefinite" and k_top**2 <= LOWEST_LAPLACE_EIGENVALUE:
            raise FamilyError(f"parameter k={k_top:g} is too small for the indefinite variant: k^2 must exceed "
                              f"2 pi^2 = {LOWEST_LAPLACE_EIGENVALUE:.1f} (use variant=skr for small k)")
        super().validate()
        self.symmetric = False
        self.matrix_symmetric = self.stencil == "fv"  # (complex symmetric for absorbing: A^T = A)
        #: the systems are complex (the absorbing variant)
        self.complex_valued = p["variant"] == "absorbing"
        self._build_mesh()

    def sample(self, n: int, rng: np.random.Generator) -> list[dict]:
        a = self.sample_coefficients(n, rng)
        if self.p["variant"] in ("indefinite", "absorbing"):
            ks = np.full(len(a), self.p["k"])
        else:
            ks = rng.uniform(0.0, self.p["k_max"], size=len(a))
        return [{"a": ai, "k": float(ki)} for ai, ki in zip(a, ks, strict=True)]

    def assemble(self, params: dict) -> LinearSystem:
        return self.assemble_fields(params["a"], params["k"], self.p["f"], params=params)

    def assemble_fields(self, a, k: float, f, g=None, params: dict | None = None) -> LinearSystem:
        """System for explicit fields: coefficient ``a`` (array or callable), wavenumber ``k``,
        source ``f`` and Dirichlet data ``g`` (fv only); used by ``assemble`` and the
        manufactured-solution tests."""
        mesh, faces = self.mesh, self.faces
        if not np.isfinite(k) or k < 0:
            raise FamilyError(f"wavenumber k={k!r} must be a non-negative finite number")
        if self.stencil == PUBLISHED:
            if g is not None:
                raise FamilyError(f"the {PUBLISHED} stencil supports only homogeneous Dirichlet data (g=None)")
            return self.published_system(a, f, published_h(self.grid[0]) ** 2 * k**2, params,
                                         {"family": self.name, "variant": self.p["variant"], "stencil": self.stencil})
        a = check_coefficient(mesh.evaluate(a) if callable(a) else a, self.grid)
        f = mesh.evaluate(f)
        if self.stencil == "fv" and self.complex_valued:
            if g is not None:
                raise FamilyError("the absorbing variant has no Dirichlet data (g=None)")
            A = absorbing_helmholtz(mesh, faces, a, k)
            b = f.reshape(-1).astype(np.complex128)
        elif self.stencil == "fv":
            A = fv_diffusion(mesh, a, faces, shift=k**2)
            b = f.reshape(-1) + (0.0 if g is None else fv_boundary_rhs(faces, a, g=g))
        else:
            if g is not None:
                raise FamilyError("the skr stencil supports only homogeneous Dirichlet data (g=None)")
            A = nodal_scaled_laplacian_of_product(mesh, a, shift=k**2)
            b = mesh.h[0] ** 2 * f.reshape(-1)
        meta = {"family": self.name, "variant": self.p["variant"], "stencil": self.stencil,
                "params": params if params is not None else {}}
        return LinearSystem(A, b, grid=mesh.grid(), meta=meta)

    def features(self, params: dict) -> np.ndarray:
        # The SKR ordering compares coefficient fields; in the skr variant k varies too, so
        # it is appended (its weight is negligible next to the field, as is the shift).
        a = np.asarray(params["a"], dtype=float).reshape(-1)
        return a if self.p["variant"] != "skr" or self.stencil == PUBLISHED else np.append(a, params["k"])


def absorbing_helmholtz(mesh, faces, a: np.ndarray, k: float):
    """The complex matrix of ``-div(a grad u) - k^2 u`` with ``a du/dn - i k u = 0`` on every
    box-edge face: the finite-volume operator with no Dirichlet faces (Neumann) plus, per
    boundary face of cell P, ``-i k a_P / (h (a_P - i k h / 2))`` on P's diagonal (the face
    value eliminated from the two-point flux ``a_P (u_f - u_P) / (h / 2) = i k u_f``)."""
    import scipy.sparse as sp

    A = fv_diffusion(mesh, a, faces, dirichlet=np.zeros(len(faces), dtype=bool), shift=k**2)
    edge = ~faces.wall
    h = mesh.h[faces.axis[edge]]
    aP = np.asarray(a, dtype=float).reshape(-1)[faces.cell[edge]]
    robin = -1j * k * aP / (h * (aP - 0.5j * k * h))
    diag = np.bincount(faces.row[edge], weights=robin.real, minlength=mesh.n) \
        + 1j * np.bincount(faces.row[edge], weights=robin.imag, minlength=mesh.n)
    return (A.astype(np.complex128) + sp.diags(diag)).tocsr()


__all__ = ["Helmholtz"]

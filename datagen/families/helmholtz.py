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

VARIANTS = ("indefinite", "skr")
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
        "variant": ("indefinite", "indefinite: fixed large k (symmetric indefinite); skr: k ~ U(0, k_max)"),
        "k": (16.0, "wavenumber of the indefinite variant (k h <= 0.5 required)"),
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
        self.stencil = p["stencil"] if p["stencil"] != "auto" else ("fv" if p["variant"] == "indefinite" else "skr")
        if self.stencil == PUBLISHED and p["variant"] != "skr":
            raise FamilyError(f"stencil={PUBLISHED!r} reproduces the published generator of the skr variant; "
                              "use variant=skr")
        h = 1.0 / np.asarray(self.grid, dtype=float) if self.stencil == "fv" else 1.0 / (np.asarray(self.grid) + 1.0)
        k_top = p["k"] if p["variant"] == "indefinite" else p["k_max"]
        name = "k" if p["variant"] == "indefinite" else "k_max"
        if k_top * h.max() > KH_MAX:
            raise FamilyError(f"parameter {name}={k_top:g} gives k h = {k_top * h.max():.3g} > {KH_MAX} on grid "
                              f"{self.grid}: under-resolved waves; refine the grid to at least "
                              f"{int(np.ceil(k_top / KH_MAX))} cells per side or lower {name}")
        if p["variant"] == "indefinite" and k_top**2 <= LOWEST_LAPLACE_EIGENVALUE:
            raise FamilyError(f"parameter k={k_top:g} is too small for the indefinite variant: k^2 must exceed "
                              f"2 pi^2 = {LOWEST_LAPLACE_EIGENVALUE:.1f} (use variant=skr for small k)")
        super().validate()
        self.symmetric = False
        self.matrix_symmetric = self.stencil == "fv"
        self._build_mesh()

    def sample(self, n: int, rng: np.random.Generator) -> list[dict]:
        a = self.sample_coefficients(n, rng)
        if self.p["variant"] == "indefinite":
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
        if self.stencil == "fv":
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
        return a if self.p["variant"] == "indefinite" or self.stencil == PUBLISHED else np.append(a, params["k"])


__all__ = ["Helmholtz"]

"""Steady heat conduction ``-div(K grad T) = 0`` on the rectangle ``[-0.5, 0.5] x [-0.8, 0.8]``
minus the slot ``[-0.05, 0.05] x [-0.4, 0.4]`` (the SKR paper's thermal problem).

Boundary conditions: a temperature ``T_D ~ U(0, 100)`` on one edge (``dirichlet_edge``,
default bottom), a heat flux ``q ~ U(-100, 0)`` on another (``flux_edge``, default top), and
insulation on the other edges and the slot walls. ``q`` is ``K dT/dn`` with ``n`` the outward
normal, i.e. the heat flux *into* the body: ``q < 0`` extracts heat.

Cell-centred finite volumes on a masked grid: cells whose centres lie inside the slot are
SOLID in ``Grid.cell_type`` and carry no unknowns (``Grid.unknowns`` lists the others, C
order); their faces are insulated walls. The matrix is SPD and the same for every sample
(only the boundary values change), so ``shared_matrix = True``. The slot edges fall on cell
faces when ``nx`` is a multiple of 20 and ``ny`` of 4 (e.g. the default 40 x 64 grid, square
cells); other grids staircase the slot.
"""
from __future__ import annotations

import numpy as np

from linsolve import LinearSystem
from linsolve.core.validation import check_int

from ..family import FINITE, POSITIVE, Family, FamilyError, register_family
from ..stencils import EDGES, Mesh, bc_name, fv_boundary_rhs, fv_diffusion

LOWER, UPPER = (-0.5, -0.8), (0.5, 0.8)
SLOT = ((-0.05, 0.05), (-0.4, 0.4))


def slot_mask(mesh: Mesh) -> np.ndarray:
    X, Y = mesh.coords()
    return (np.abs(X) < SLOT[0][1]) & (np.abs(Y) < SLOT[1][1])


@register_family
class Thermal(Family):
    name = "thermal"
    description = ("steady heat conduction on a rectangle with a slot; Dirichlet temperature and flux edges "
                   "(grids 20k x 32k, e.g. --grid 40,64, put the slot on cell faces)")
    dims = (2,)
    symmetric = True
    shared_matrix = True
    params = {
        "dirichlet_edge": ("bottom", "edge with the prescribed temperature (left/right/bottom/top)"),
        "flux_edge": ("top", "edge with the prescribed heat flux (left/right/bottom/top)"),
        "conductivity": (1.0, "thermal conductivity K"),
        "t_min": (0.0, "T_D ~ U(t_min, t_max)"),
        "t_max": (100.0, "T_D ~ U(t_min, t_max)"),
        "q_min": (-100.0, "q ~ U(q_min, q_max) (flux into the body)"),
        "q_max": (0.0, "q ~ U(q_min, q_max) (flux into the body)"),
    }

    # temperatures and fluxes may have either sign (q < 0 extracts heat); each U(lo, hi) needs lo <= hi
    ranges = {"conductivity": POSITIVE, "t_min": FINITE, "t_max": FINITE, "q_min": FINITE, "q_max": FINITE}
    ordered = (("t_min", "t_max"), ("q_min", "q_max"))

    def __init__(self, grid=(40, 64), dim=None, **params):
        super().__init__(grid, dim, **params)

    def validate(self) -> None:
        p = self.p
        edges = [e for e in EDGES if EDGES[e][0] < 2]
        for key in ("dirichlet_edge", "flux_edge"):
            if p[key] not in edges:
                raise FamilyError(f"parameter {key}={p[key]!r} must be one of {edges}")
        if p["dirichlet_edge"] == p["flux_edge"]:
            raise FamilyError(f"parameters dirichlet_edge and flux_edge must differ, both are {p['flux_edge']!r}")
        solid = slot_mask(Mesh(self.grid, LOWER, UPPER))
        if not solid.any():
            raise FamilyError(f"grid {self.grid} is too coarse to resolve the slot (no cell centre inside it)")
        self.mesh = Mesh(self.grid, LOWER, UPPER, active=~solid)
        self.faces = self.mesh.boundary_faces()
        self.dirichlet_mask = self.faces.on_edge(p["dirichlet_edge"])
        self.flux_mask = self.faces.on_edge(p["flux_edge"])
        self.insulated_mask = ~(self.dirichlet_mask | self.flux_mask)
        self.K = np.full(self.grid, float(p["conductivity"]))
        self._A = None

    @property
    def matrix(self):
        if self._A is None:
            self._A = fv_diffusion(self.mesh, self.K, self.faces, dirichlet=self.dirichlet_mask)
        return self._A

    def sample(self, n: int, rng: np.random.Generator) -> list[dict]:
        n = check_int("number of samples", n, 0, whole_floats=True, error=FamilyError)
        T = rng.uniform(self.p["t_min"], self.p["t_max"], size=int(n))
        q = rng.uniform(self.p["q_min"], self.p["q_max"], size=int(n))
        return [{"T": float(a), "q": float(b)} for a, b in zip(T, q, strict=True)]

    def assemble(self, params: dict) -> LinearSystem:
        T, q = float(params["T"]), float(params["q"])
        if not (np.isfinite(T) and np.isfinite(q)):
            raise FamilyError(f"thermal parameters T={T!r} and q={q!r} must be finite")
        return self.assemble_fields(T, q, params=params)

    def assemble_fields(self, T, q, f=0.0, K=None, q_insulated=None, params: dict | None = None) -> LinearSystem:
        """System for explicit data: temperature ``T`` on the Dirichlet edge and flux ``q`` on
        the flux edge (scalars, callables of face-centre coordinates, or one value per face of
        ``dirichlet_mask`` / ``flux_mask``), heat source ``f`` on the cells, conductivity ``K``
        (None: the family's constant, giving the shared matrix) and flux data on the faces of
        ``insulated_mask`` (None: insulated). Used by the manufactured-solution tests."""
        if K is None:
            K, A = self.K, self.matrix
        else:
            K = self.mesh.evaluate(K)
            if not np.all(np.isfinite(K)) or np.any(K <= 0):
                raise FamilyError("conductivity field K must be finite and positive")
            A = fv_diffusion(self.mesh, K, self.faces, dirichlet=self.dirichlet_mask)
        b = self.mesh.restrict(self.mesh.evaluate(f))
        b = b + fv_boundary_rhs(self.faces, K, dirichlet=self.dirichlet_mask, g=T, neumann=self.flux_mask, q=q)
        if q_insulated is not None:
            b = b + fv_boundary_rhs(self.faces, K, neumann=self.insulated_mask, q=q_insulated)
        meta = {"family": self.name, "params": params if params is not None else {}}
        return LinearSystem(A, b, grid=self.mesh.grid(), meta=meta)

    def features(self, params: dict) -> np.ndarray:
        return np.array([float(params["T"]), float(params["q"])])

    def input_fields(self, params: dict) -> dict[str, np.ndarray]:
        grid = self.mesh.grid()
        return {"cell_type": grid.cell_type.astype(np.float64),
                "boundary_temperature": np.full(self.grid, float(params["T"])),
                "boundary_flux": np.full(self.grid, float(params["q"]))}

    def solution_fields(self, params: dict, x: np.ndarray) -> dict[str, np.ndarray]:
        # Slot cells hold 0; cell_type marks them.
        return {"temperature": self.mesh.grid().to_grid(np.asarray(x, dtype=float), fill=0.0)}

    def coordinates(self) -> dict[str, np.ndarray]:
        return dict(zip("xy", self.mesh.axes, strict=True))

    def boundary_conditions(self) -> dict:
        out = {}
        for e in ("left", "right", "bottom", "top"):
            if e == self.p["dirichlet_edge"]:
                spec = {"bc_type": "dirichlet", "data": "T (sample parameter)"}
            elif e == self.p["flux_edge"]:
                spec = {"bc_type": "neumann", "data": "q = K dT/dn, heat flux into the body (sample parameter)"}
            else:
                spec = {"bc_type": "neumann", "data": "insulated (zero flux)"}
            out[bc_name(e)] = {**spec, "associated_fields": ["temperature"]}
        return out


__all__ = ["Thermal", "slot_mask", "LOWER", "UPPER", "SLOT"]

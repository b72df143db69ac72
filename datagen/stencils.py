"""Vectorised assembly of compact (2d+1)-point stencils on structured, optionally masked grids.

Shared by the problem families: the conservative cell-centred finite-volume diffusion
operator (harmonic face averages, Dirichlet/Neumann data on boundary faces) and the
nodal stencils some papers use. Matrices are built straight into CSR with sorted column
indices: no Python loop over cells and no COO duplicate summation.

Conventions: arrays on a grid of ``shape = (n_0, n_1[, n_2])`` are indexed ``[i, j(, k)]``
with axis 0 = x, axis 1 = y (``indexing="ij"``); unknowns are the active cells in C order.
The finite-volume equations are scaled like the differential operator (entries ~ 1/h^2),
so ``A u = f`` approximates ``-div(K grad u) = f`` pointwise.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from linsolve import FLUID, SOLID, Grid

from .family import FamilyError

EDGES = {"left": (0, -1), "right": (0, 1), "bottom": (1, -1), "top": (1, 1), "back": (2, -1), "front": (2, 1)}
"""Edge name -> (axis, side) of its outward normal."""


def bc_name(edge: str) -> str:
    """Store name of a box edge: the axis first (``x_left``, ``y_top``), which is how the
    HDF5 store tells which coordinate a boundary condition sits on."""
    return f"{'xyz'[EDGES[edge][0]]}_{edge}"


def box_bcs(spec: dict | str, dim: int = 2) -> dict[str, dict | str]:
    """The same boundary condition on every edge of a ``dim``-D box, keyed by ``bc_name``."""
    return {bc_name(e): (dict(spec) if isinstance(spec, dict) else spec) for e in list(EDGES)[:2 * dim]}


class Mesh:
    """A box ``[lower, upper]`` split into ``shape`` cells (``centering="cell"``: unknowns at
    cell centres, ``h = (upper - lower) / n``) or its interior nodes (``centering="node"``:
    ``h = (upper - lower) / (n + 1)``, boundary nodes excluded). ``active`` (bool, ``shape``)
    marks cells that carry unknowns; inactive cells are holes whose faces are walls."""

    def __init__(self, shape: Sequence[int], lower: Sequence[float] | None = None,
                 upper: Sequence[float] | None = None, active: np.ndarray | None = None,
                 centering: str = "cell"):
        self.shape = tuple(int(s) for s in shape)
        d = len(self.shape)
        self.lower = np.zeros(d) if lower is None else np.asarray(lower, dtype=float)
        self.upper = np.ones(d) if upper is None else np.asarray(upper, dtype=float)
        if centering not in ("cell", "node"):
            raise FamilyError(f"mesh centering must be 'cell' or 'node', got {centering!r}")
        self.centering = centering
        n = np.asarray(self.shape, dtype=float)
        self.h = (self.upper - self.lower) / (n if centering == "cell" else n + 1)
        offset = 0.5 if centering == "cell" else 1.0
        self.axes = [self.lower[a] + (np.arange(self.shape[a]) + offset) * self.h[a] for a in range(d)]
        self.size = int(np.prod(self.shape))
        if active is None:
            self.active = None
            self.unknowns = None
            self.index = np.arange(self.size)
        else:
            active = np.asarray(active, dtype=bool)
            if active.shape != self.shape:
                raise FamilyError(f"active mask has shape {active.shape}, mesh is {self.shape}")
            self.active = active
            self.unknowns = np.flatnonzero(active)
            self.index = np.full(self.size, -1, dtype=np.int64)
            self.index[self.unknowns] = np.arange(self.unknowns.size)
        self.n = self.size if self.unknowns is None else int(self.unknowns.size)
        self._stencil_pattern = None

    @property
    def dim(self) -> int:
        return len(self.shape)

    def coords(self) -> tuple[np.ndarray, ...]:
        """Full coordinate arrays (``indexing="ij"``) of the cell centres / nodes."""
        return tuple(np.meshgrid(*self.axes, indexing="ij"))

    def evaluate(self, fn: Callable | float | np.ndarray) -> np.ndarray:
        """A field on the grid from a callable ``fn(x, y[, z])``, a scalar or an array."""
        if callable(fn):
            out = np.asarray(fn(*self.coords()), dtype=float)
            return np.broadcast_to(out, self.shape).copy()
        return np.broadcast_to(np.asarray(fn, dtype=float), self.shape).copy()

    def restrict(self, field: np.ndarray) -> np.ndarray:
        """Grid field -> unknown vector (values of the active cells in unknown order)."""
        flat = np.asarray(field, dtype=float).reshape(-1)
        return flat if self.unknowns is None else flat[self.unknowns]

    def grid(self) -> Grid:
        cell_type = None
        if self.active is not None:
            cell_type = np.where(self.active, FLUID, SOLID).astype(np.int8)
        return Grid(self.shape, spacing=tuple(self.h), cell_type=cell_type, unknowns=self.unknowns,
                    origin=tuple(float(a[0]) for a in self.axes))

    def _is_active(self) -> np.ndarray:
        return np.ones(self.shape, dtype=bool) if self.active is None else self.active

    def boundary_faces(self) -> BoundaryFaces:
        """Faces of active cells whose other side is outside the box or an inactive cell."""
        act = self._is_active()
        flat = np.arange(self.size).reshape(self.shape)
        parts = []
        for axis in range(self.dim):
            for side in (-1, 1):
                # Neighbour across this face; cells on the box edge see "outside" (False).
                nb_active = np.zeros(self.shape, dtype=bool)
                src = [slice(None)] * self.dim
                dst = [slice(None)] * self.dim
                if side < 0:
                    dst[axis], src[axis] = slice(1, None), slice(None, -1)
                else:
                    dst[axis], src[axis] = slice(None, -1), slice(1, None)
                nb_active[tuple(dst)] = act[tuple(src)]
                at_edge = np.zeros(self.shape, dtype=bool)
                edge = [slice(None)] * self.dim
                edge[axis] = 0 if side < 0 else -1
                at_edge[tuple(edge)] = True
                sel = act & ~nb_active
                cells = flat[sel]
                centre = np.stack([c[sel] for c in self.coords()], axis=1)
                centre[:, axis] += side * 0.5 * self.h[axis]
                parts.append((cells, np.full(cells.size, axis), np.full(cells.size, side), centre,
                              ~at_edge[sel]))
        cells, axis, side, centre, wall = (np.concatenate(p) for p in zip(*parts, strict=True))
        return BoundaryFaces(mesh=self, cell=cells, row=self.index[cells], axis=axis, side=side,
                             centre=centre, wall=wall)


@dataclass(frozen=True)
class BoundaryFaces:
    """Boundary faces of a cell mesh, one entry per face, in a fixed deterministic order.

    ``row``: unknown index of the owning cell; ``axis``/``side``: outward normal
    ``side * e_axis``; ``centre``: face-centre coordinates (m, d); ``wall``: the face borders
    an inactive cell rather than the box edge."""

    mesh: Mesh
    cell: np.ndarray
    row: np.ndarray
    axis: np.ndarray
    side: np.ndarray
    centre: np.ndarray
    wall: np.ndarray

    def __len__(self) -> int:
        return int(self.row.size)

    def on_edge(self, name: str) -> np.ndarray:
        """Mask of the faces on box edge ``name`` (left/right/bottom/top[/back/front])."""
        if name not in EDGES or EDGES[name][0] >= self.mesh.dim:
            raise FamilyError(f"unknown edge {name!r}; known: {', '.join(list(EDGES)[:2 * self.mesh.dim])}")
        axis, side = EDGES[name]
        return (self.axis == axis) & (self.side == side) & ~self.wall

    def normals(self) -> np.ndarray:
        nrm = np.zeros((len(self), self.mesh.dim))
        nrm[np.arange(len(self)), self.axis] = self.side
        return nrm

    def evaluate(self, fn: Callable | float | np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """Values on the (masked) faces from ``fn(x, y[, z])`` evaluated at face centres, a
        scalar, or an array with one value per masked face."""
        mask = np.ones(len(self), dtype=bool) if mask is None else mask
        if callable(fn):
            pts = self.centre[mask]
            return np.broadcast_to(np.asarray(fn(*pts.T), dtype=float), (int(mask.sum()),)).copy()
        return np.broadcast_to(np.asarray(fn, dtype=float), (int(mask.sum()),)).copy()

    def dirichlet_weight(self, K: np.ndarray) -> np.ndarray:
        """Two-point transmissibility cell centre -> face (distance h/2): ``2 K_P / h_axis^2``."""
        return 2.0 * np.asarray(K).reshape(-1)[self.cell] / self.mesh.h[self.axis] ** 2

    def scatter(self, values: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Sum per-face values (one per masked face) into an unknown vector."""
        return np.bincount(self.row[mask], weights=values, minlength=self.mesh.n)


def _shift(field: np.ndarray, axis: int, side: int) -> np.ndarray:
    """``out[P] = field[P + side e_axis]`` (zero where the neighbour is outside the box)."""
    out = np.zeros_like(field)
    d = field.ndim
    src = [slice(None)] * d
    dst = [slice(None)] * d
    if side > 0:
        dst[axis], src[axis] = slice(None, -1), slice(1, None)
    else:
        dst[axis], src[axis] = slice(1, None), slice(None, -1)
    out[tuple(dst)] = field[tuple(src)]
    return out


def _slots(d: int) -> list:
    # Column order lower-x, lower-y, ..., diag, ..., upper-y, upper-x is ascending in the
    # flat index and so in the unknown numbering (monotone in the flat index).
    return [(a, -1) for a in range(d)] + [None] + [(a, 1) for a in reversed(range(d))]


def _pattern(mesh: Mesh):
    """Sparsity pattern of a compact stencil on ``mesh`` (cached on the mesh: it depends on
    the geometry only): positions of the kept entries in the (rows, 2d+1) value table, and
    the CSR ``indices``/``indptr``."""
    if mesh._stencil_pattern is not None:
        return mesh._stencil_pattern
    d, shape = mesh.dim, mesh.shape
    flat = np.arange(mesh.size).reshape(shape)
    strides = [int(np.prod(shape[a + 1:])) for a in range(d)]
    slots = _slots(d)
    cols = np.empty((mesh.size, len(slots)), dtype=np.int64)
    for j, slot in enumerate(slots):
        if slot is None:
            cols[:, j] = flat.reshape(-1)
            continue
        axis, side = slot
        edge = [slice(None)] * d
        edge[axis] = -1 if side > 0 else 0
        nb = flat + side * strides[axis]
        nb[tuple(edge)] = -1
        cols[:, j] = nb.reshape(-1)
    if mesh.unknowns is not None:
        cols = cols[mesh.unknowns]
    valid = cols >= 0
    if mesh.unknowns is not None:
        valid &= mesh.index[np.where(valid, cols, 0)] >= 0
    take = np.flatnonzero(valid.reshape(-1))
    indices = mesh.index[cols.reshape(-1)[take]]
    indptr = np.concatenate([[0], np.cumsum(valid.sum(axis=1))])
    itype = np.int32 if max(mesh.n, take.size) < 2**31 - 1 else np.int64
    mesh._stencil_pattern = (take, indices.astype(itype), indptr.astype(itype))
    return mesh._stencil_pattern


def stencil_csr(mesh: Mesh, diag: np.ndarray, off: dict[tuple[int, int], np.ndarray]) -> sp.csr_matrix:
    """CSR matrix of a compact stencil: row P has ``diag[P]`` on the diagonal and
    ``off[(axis, side)][P]`` in the column of neighbour ``P + side e_axis``; neighbours
    outside the box or inactive are dropped (their coupling belongs in the rhs)."""
    take, indices, indptr = _pattern(mesh)
    slots = _slots(mesh.dim)
    vals = np.zeros((mesh.size, len(slots)))
    for j, slot in enumerate(slots):
        v = diag if slot is None else off.get(slot)
        if v is not None:
            vals[:, j] = np.asarray(v, dtype=float).reshape(-1)
    if mesh.unknowns is not None:
        vals = vals[mesh.unknowns]
    data = np.take(vals.reshape(-1), take)
    # Own copies of the (cached) pattern: callers may modify a returned matrix in place.
    return sp.csr_matrix((data, indices.copy(), indptr.copy()), shape=(mesh.n, mesh.n))


def harmonic_mean(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return 2.0 * a * b / (a + b)


def fv_diffusion(mesh: Mesh, K: np.ndarray, faces: BoundaryFaces | None = None,
                 dirichlet: np.ndarray | None = None, shift: float = 0.0) -> sp.csr_matrix:
    """Cell-centred two-point-flux finite-volume matrix of ``-div(K grad u) - shift u``.

    Interior faces use the harmonic mean of the two cell values of ``K`` (exact flux
    continuity for layered media, second order for smooth K). Boundary faces flagged in
    ``dirichlet`` (a mask over ``faces``; default all box-edge faces) couple to a face value at
    distance h/2 with weight ``2 K_P / h^2``; all other boundary faces are Neumann and add
    nothing to the matrix. SPD for ``shift <= 0`` whenever at least one Dirichlet face exists.
    """
    if mesh.centering != "cell":
        raise FamilyError("fv_diffusion needs a cell-centred mesh")
    K = np.asarray(K, dtype=float)
    if K.shape != mesh.shape:
        raise FamilyError(f"coefficient has shape {K.shape}, mesh is {mesh.shape}")
    act = mesh._is_active()
    diag = np.zeros(mesh.shape)
    off = {}
    for axis in range(mesh.dim):
        lo = [slice(None)] * mesh.dim
        hi = [slice(None)] * mesh.dim
        lo[axis], hi[axis] = slice(None, -1), slice(1, None)
        lo, hi = tuple(lo), tuple(hi)
        T = harmonic_mean(K[lo], K[hi]) / mesh.h[axis] ** 2
        T = np.where(act[lo] & act[hi], T, 0.0)
        up = np.zeros(mesh.shape)
        down = np.zeros(mesh.shape)
        up[lo] = T
        down[hi] = T
        diag += up + down
        off[(axis, 1)] = -up
        off[(axis, -1)] = -down
    if faces is None:
        faces = mesh.boundary_faces()
    if dirichlet is None:
        dirichlet = ~faces.wall
    extra = np.bincount(faces.cell[dirichlet], weights=faces.dirichlet_weight(K)[dirichlet],
                        minlength=mesh.size)
    diag = diag + extra.reshape(mesh.shape) - shift
    return stencil_csr(mesh, diag, off)


def fv_boundary_rhs(faces: BoundaryFaces, K: np.ndarray, dirichlet: np.ndarray | None = None,
                    g=None, neumann: np.ndarray | None = None, q=None) -> np.ndarray:
    """Right-hand-side contribution of boundary data for ``fv_diffusion``.

    ``g``: Dirichlet values on the ``dirichlet`` faces (callable of face-centre coordinates,
    scalar, or one value per face). ``q``: Neumann data ``K du/dn`` (outward normal, i.e. the
    flux *into* the domain) on the ``neumann`` faces, added as ``q / h``.
    """
    b = np.zeros(faces.mesh.n)
    if g is not None:
        mask = ~faces.wall if dirichlet is None else dirichlet
        b += faces.scatter(faces.dirichlet_weight(K)[mask] * faces.evaluate(g, mask), mask)
    if q is not None:
        if neumann is None:
            raise FamilyError("Neumann data q given without the mask of Neumann faces")
        b += faces.scatter(faces.evaluate(q, neumann) / faces.mesh.h[faces.axis[neumann]], neumann)
    return b


def nodal_scaled_laplacian_of_product(mesh: Mesh, a: np.ndarray, shift: float = 0.0) -> sp.csr_matrix:
    """The SKR paper's stencil on interior nodes: row P reads
    ``sum_axis (h_0/h_axis)^2 (2 a_P u_P - a_{P-e} u_{P-e} - a_{P+e} u_{P+e}) - shift h_0^2 u_P``,
    i.e. ``h_0^2 [-Laplacian(a u) - shift u]`` with homogeneous Dirichlet data (for a square
    grid: diagonal ``4 a_ij``, off-diagonals ``-a_neighbour``). Non-symmetric unless ``a`` is
    constant: it equals ``L diag(a)`` with ``L`` the 5-point Laplacian."""
    if mesh.centering != "node":
        raise FamilyError("the SKR stencil lives on interior nodes (centering='node')")
    a = np.asarray(a, dtype=float)
    if a.shape != mesh.shape:
        raise FamilyError(f"coefficient has shape {a.shape}, mesh is {mesh.shape}")
    w = (mesh.h[0] / mesh.h) ** 2
    diag = 2.0 * sum(w) * a - shift * mesh.h[0] ** 2
    off = {}
    for axis in range(mesh.dim):
        for side in (-1, 1):
            off[(axis, side)] = -w[axis] * _shift(a, axis, side)
    return stencil_csr(mesh, diag, off)


__all__ = ["Mesh", "BoundaryFaces", "EDGES", "bc_name", "box_bcs", "stencil_csr", "fv_diffusion", "fv_boundary_rhs",
           "harmonic_mean", "nodal_scaled_laplacian_of_product"]

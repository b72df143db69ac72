"""Pressure-Poisson systems of the kind a grid-based fluid solver builds at its projection
step, in 2-D and 3-D, with random obstacles.

Every grid cell is FLUID, SOLID or AIR. The grid includes a one-cell frame: walls (SOLID)
on every side except the top (last axis, high end), which is AIR, like an open tank.
Random boxes and spheres (sizes relative to the domain, so a geometry looks alike at any
resolution) turn cells SOLID. The cell-centred 5-/7-point stencil has integer
coefficients, as in fluid solvers (the h^2/dt/rho factors live in the right-hand side):

* FLUID-FLUID face: the usual -1 / +1 coupling;
* FLUID-AIR face: Dirichlet p = 0 at the air cell centre (+1 on the diagonal);
* FLUID-SOLID face: Neumann, zero flux (nothing).

Unknowns are fluid cells only (``Grid.unknowns``). A fluid pocket that touches no air
would make the matrix singular (pressure defined up to a constant there); such pockets are
filled in as SOLID, as a fluid solver would treat fluid sealed inside an obstacle, so every
system is SPD. Right-hand sides are b = -div(u) of a random smooth face velocity field u
with u = 0 on solid faces (no flow through walls).

``split`` ("train" or "test") selects disjoint random streams, so held-out geometries are
never those a model was trained on even when the same seed is used.
"""
from __future__ import annotations

import numpy as np
import scipy.ndimage as ndi
import scipy.sparse as sp

from linsolve import AIR, FLUID, SOLID, Grid, LinearSystem

from ..family import COUNT, POSITIVE, Family, FamilyError, Interval, register_family

_SPLITS = {"train": 0, "test": 1}


def frame_cells(shape: tuple[int, ...]) -> np.ndarray:
    """Cell types of an empty tank: a fluid interior, walls on all sides, air on top."""
    ct = np.full(shape, SOLID, dtype=np.int8)
    inner = tuple(slice(1, s - 1) for s in shape)
    ct[inner] = FLUID
    top = (slice(1, -1),) * (len(shape) - 1) + (-1,)
    ct[top] = AIR
    return ct


def seal_pockets(cell_type: np.ndarray) -> np.ndarray:
    """Turn fluid components without a face-neighbour AIR cell into SOLID."""
    ct = cell_type.copy()
    fluid = ct == FLUID
    labels, count = ndi.label(fluid)  # face connectivity
    if count == 0:
        return ct
    air_nb = ndi.binary_dilation(ct == AIR) & fluid
    keep = np.zeros(count + 1, dtype=bool)
    keep[np.unique(labels[air_nb])] = True
    keep[0] = False
    ct[fluid & ~keep[labels]] = SOLID
    return ct


def pressure_matrix(cell_type: np.ndarray) -> tuple[sp.csr_matrix, np.ndarray]:
    """The integer-stencil pressure matrix on the fluid cells of ``cell_type`` and the flat
    indices of those cells (the unknown order). Cells beyond the array count as SOLID."""
    ct = np.asarray(cell_type)
    fluid = ct == FLUID
    unknowns = np.flatnonzero(fluid)
    index = np.full(ct.size, -1, dtype=np.int64)
    index[unknowns] = np.arange(unknowns.size)
    index = index.reshape(ct.shape)
    diag = np.zeros(ct.shape)
    rows, cols = [], []
    for axis in range(ct.ndim):
        for step in (1, -1):
            # neighbour type of every cell along this direction; beyond the edge: SOLID
            nb = np.full(ct.shape, SOLID, dtype=ct.dtype)
            src = [slice(None)] * ct.ndim
            dst = [slice(None)] * ct.ndim
            if step == 1:
                dst[axis], src[axis] = slice(0, -1), slice(1, None)
            else:
                dst[axis], src[axis] = slice(1, None), slice(0, -1)
            nb[tuple(dst)] = ct[tuple(src)]
            diag += fluid & (nb != SOLID)
            nb_index = np.full(ct.shape, -1, dtype=np.int64)
            nb_index[tuple(dst)] = index[tuple(src)]
            both = fluid & (nb == FLUID)
            rows.append(index[both])
            cols.append(nb_index[both])
    n = unknowns.size
    r = np.concatenate(rows + [np.arange(n)])
    c = np.concatenate(cols + [np.arange(n)])
    v = np.concatenate([-np.ones(sum(x.size for x in rows)), diag.reshape(-1)[unknowns]])
    A = sp.csr_matrix((v, (r, c)), shape=(n, n))
    A.sum_duplicates()
    return A, unknowns


def divergence_rhs(cell_type: np.ndarray, velocity: list[np.ndarray]) -> np.ndarray:
    """-div(u) per cell (flux units) with u zeroed on faces that touch a SOLID cell.
    ``velocity[a]`` holds the faces normal to axis a: shape[a] + 1 along that axis."""
    ct = np.asarray(cell_type)
    div = np.zeros(ct.shape)
    solid = np.pad(ct == SOLID, 1, constant_values=True)
    for a, u in enumerate(velocity):
        lo = [slice(1, -1)] * ct.ndim
        hi = [slice(1, -1)] * ct.ndim
        lo[a], hi[a] = slice(0, -1), slice(1, None)
        # a face is blocked when the cell on either side is solid
        blocked = solid[tuple(lo)] | solid[tuple(hi)]
        uf = np.where(blocked, 0.0, u)
        hi_f = [slice(None)] * ct.ndim
        lo_f = [slice(None)] * ct.ndim
        hi_f[a], lo_f[a] = slice(1, None), slice(0, -1)
        div += uf[tuple(hi_f)] - uf[tuple(lo_f)]
    return np.where(ct == FLUID, -div, 0.0)


def smooth_field(shape: tuple[int, ...], rng: np.random.Generator, scale: float) -> np.ndarray:
    """A Gaussian random field with correlation length ``scale`` (fraction of the domain)
    by filtering white noise: resolution independent in character."""
    noise = rng.standard_normal(shape)
    sigma = [max(scale * s, 0.5) for s in shape]
    f = ndi.gaussian_filter(noise, sigma, mode="wrap")
    return f / max(float(np.std(f)), 1e-300)


@register_family
class PoissonObstacles(Family):
    name = "poisson_obstacles"
    dims = (2, 3)
    symmetric = True
    shared_matrix = False
    description = ("Pressure-Poisson projection systems of a fluid solver: fluid/solid/air cells, "
                   "Neumann at walls and obstacles, p = 0 at air on top, random boxes and spheres")
    params = {
        "n_obstacles": (4, "mean number of obstacles per sample (Poisson distributed)"),
        "shapes": ("mixed", "obstacle shapes: boxes, spheres or mixed"),
        "size_min": (0.05, "smallest obstacle half-width/radius, fraction of the domain"),
        "size_max": (0.18, "largest obstacle half-width/radius, fraction of the domain"),
        "velocity_scale": (0.1, "correlation length of the random velocity field, fraction of the domain"),
        "split": ("train", "random stream: train or test (disjoint geometries)"),
    }
    # Obstacle sizes are half-widths/radii as fractions of the domain: at 0.5 or more one
    # obstacle could span it. The velocity correlation length is a (positive) fraction too.
    _SIZE = Interval(0.0, 0.5, low_open=True, high_open=True)
    ranges = {"n_obstacles": COUNT, "size_min": _SIZE, "size_max": _SIZE, "velocity_scale": POSITIVE}
    ordered = (("size_min", "size_max"),)

    def validate(self):
        p = self.p
        if p["shapes"] not in ("boxes", "spheres", "mixed"):
            raise FamilyError(f"shapes must be boxes, spheres or mixed, got {p['shapes']!r}")
        if p["split"] not in _SPLITS:
            raise FamilyError(f"split must be train or test, got {p['split']!r}")
        if min(self.grid) < 4:
            raise FamilyError(f"grid sizes must be at least 4 (a wall frame plus fluid), got {self.grid}")

    # --- geometry ---------------------------------------------------------------------
    def _stream(self, rng: np.random.Generator) -> np.random.Generator:
        # Mix the split into the caller's stream so train and test never coincide.
        seed = rng.integers(0, 2**63 - 1)
        return np.random.default_rng([int(seed), _SPLITS[self.p["split"]], 0x0B57])

    def cell_types(self, rng: np.random.Generator) -> np.ndarray:
        shape = self.grid
        ct = frame_cells(shape)
        centres = np.meshgrid(*[(np.arange(s) + 0.5) / s for s in shape], indexing="ij")
        k = int(rng.poisson(self.p["n_obstacles"]))
        for _ in range(k):
            kind = self.p["shapes"]
            if kind == "mixed":
                kind = "boxes" if rng.random() < 0.5 else "spheres"
            c = rng.uniform(0.1, 0.9, size=self.dim)
            if kind == "boxes":
                half = rng.uniform(self.p["size_min"], self.p["size_max"], size=self.dim)
                inside = np.all([np.abs(centres[a] - c[a]) <= half[a] for a in range(self.dim)], axis=0)
            else:
                rad = rng.uniform(self.p["size_min"], self.p["size_max"])
                inside = sum((centres[a] - c[a]) ** 2 for a in range(self.dim)) <= rad**2
            ct[inside & (ct == FLUID)] = SOLID
        ct = seal_pockets(ct)
        if not np.any(ct == FLUID):  # pragma: no cover - obstacles cannot cover the air row
            ct = frame_cells(shape)
        return ct

    def sample(self, n: int, rng: np.random.Generator) -> list[dict]:
        rng = self._stream(rng)
        out = []
        for _ in range(int(n)):
            ct = self.cell_types(rng)
            vel = []
            for a in range(self.dim):
                fshape = list(self.grid)
                fshape[a] += 1
                vel.append(smooth_field(tuple(fshape), rng, self.p["velocity_scale"]))
            out.append({"cell_type": ct, "rhs": divergence_rhs(ct, vel)})
        return out

    def assemble(self, params: dict) -> LinearSystem:
        ct = np.asarray(params["cell_type"])
        if ct.shape != self.grid:
            raise FamilyError(f"cell_type has shape {ct.shape}, family grid is {self.grid}")
        A, unknowns = pressure_matrix(ct)
        h = 1.0 / (min(self.grid) - 2)
        grid = Grid(self.grid, spacing=(h,) * self.dim, cell_type=ct, unknowns=unknowns)
        b = np.asarray(params["rhs"], dtype=np.float64).reshape(-1)[unknowns]
        return LinearSystem(A, b, grid=grid, meta={"family": self.name, **self.describe()})

    def features(self, params: dict) -> np.ndarray:
        # Coarse fluid fraction (geometry) plus the rhs energy: nearby systems share both.
        ct = np.asarray(params["cell_type"])
        f = (ct == FLUID).astype(float)
        coarse = ndi.zoom(f, [8 / s for s in f.shape], order=1)
        return np.concatenate([coarse.ravel(), [float(np.linalg.norm(params["rhs"]))]])

    def input_fields(self, params: dict) -> dict[str, np.ndarray]:
        return {"cell_type": np.asarray(params["cell_type"]), "rhs": np.asarray(params["rhs"])}

    def solution_fields(self, params: dict, x: np.ndarray) -> dict[str, np.ndarray]:
        ct = np.asarray(params["cell_type"])
        p = np.zeros(ct.size)
        p[np.flatnonzero(ct == FLUID)] = np.asarray(x).reshape(-1)
        return {"pressure": p.reshape(ct.shape)}

    def coordinates(self) -> dict[str, np.ndarray]:
        h = 1.0 / (min(self.grid) - 2)
        names = "xyz"[: self.dim]
        # cell centres; the frame's first cell is centred at -h/2 so the fluid starts at 0
        return {names[a]: (np.arange(s) - 0.5) * h for a, s in enumerate(self.grid)}

    def boundary_conditions(self) -> dict[str, str]:
        names = "xyz"[: self.dim]
        bc = {}
        for a, ax in enumerate(names):
            bc[f"{ax}_low"] = "wall (Neumann dp/dn = 0)"
            bc[f"{ax}_high"] = "air (Dirichlet p = 0)" if a == self.dim - 1 else "wall (Neumann dp/dn = 0)"
        bc["obstacles"] = "wall (Neumann dp/dn = 0)"
        return bc

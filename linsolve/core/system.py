"""A linear system plus the optional structured-grid description some solvers need."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from linsolve.core.errors import ShapeError

FLUID, SOLID, AIR = 0, 1, 2
"""Cell types used by ``Grid.cell_type`` (pressure-Poisson systems of fluid solvers)."""


def _grid_shape(shape) -> tuple[int, ...]:
    """Integers (an integral float too); a fractional size is refused, not truncated, since a
    truncated grid would describe other cells than the caller asked for."""
    bad = ShapeError(f"grid shape must be a tuple of integers, got {shape!r}")
    try:
        items = list(shape)
    except TypeError:
        raise bad from None
    dims = []
    for s in items:
        if isinstance(s, (int, np.integer)) and not isinstance(s, (bool, np.bool_)):
            dims.append(int(s))
        elif isinstance(s, (float, np.floating)) and float(s).is_integer():
            dims.append(int(s))
        else:
            raise bad
    return tuple(dims)


@dataclass
class Grid:
    """Structured-grid metadata.

    ``shape`` is the grid of unknown-carrying cells (nx, ny[, nz]) in C order, so an
    unknown vector of length prod(shape) reshapes to ``shape`` when ``unknowns`` is None.
    ``spacing`` is (hx, hy[, hz]). ``cell_type`` (same shape, values FLUID/SOLID/AIR)
    marks cells outside the fluid domain; ``unknowns`` (flat indices into the grid, in
    the order of the unknown vector) says which grid cells carry unknowns when that is a
    subset (e.g. only fluid cells).

    Parameters
    ----------
    shape : tuple of int
        Cells per axis, C order.
    spacing : tuple of float, optional
        Cell sizes per axis (default ``1 / (s + 1)``: the unit box with Dirichlet ends).
    cell_type : ndarray, optional
        Array of ``shape`` with values ``FLUID``, ``SOLID``, ``AIR``.
    unknowns : ndarray of int, optional
        Flat indices of the cells that carry unknowns, in the order of the unknown vector.
    origin : tuple of float, optional
        Coordinates of the first cell.

    Raises
    ------
    ShapeError
        A shape that is not positive integers, or spacing / cell_type that do not match it.

    Examples
    --------
    >>> import numpy as np
    >>> from linsolve import Grid, FLUID, SOLID
    >>> cells = np.full((4, 4), FLUID); cells[0, :] = SOLID
    >>> g = Grid((4, 4), cell_type=cells, unknowns=np.flatnonzero(cells == FLUID))
    >>> g.n_unknowns, g.to_grid(np.ones(12))[0].tolist()
    (12, [0.0, 0.0, 0.0, 0.0])
    """

    shape: tuple[int, ...]
    spacing: tuple[float, ...] | None = None
    cell_type: np.ndarray | None = None
    unknowns: np.ndarray | None = None
    origin: tuple[float, ...] | None = None

    def __post_init__(self):
        self.shape = _grid_shape(self.shape)
        if any(s <= 0 for s in self.shape):
            raise ShapeError(f"grid shape must be positive, got {self.shape}")
        if self.spacing is None:
            self.spacing = tuple(1.0 / (s + 1) for s in self.shape)
        self.spacing = tuple(float(h) for h in self.spacing)
        if len(self.spacing) != len(self.shape):
            raise ShapeError(f"grid spacing {self.spacing} does not match shape {self.shape}")
        if self.cell_type is not None:
            self.cell_type = np.asarray(self.cell_type)
            if self.cell_type.shape != self.shape:
                raise ShapeError(f"cell_type has shape {self.cell_type.shape}, grid is {self.shape}")
        if self.unknowns is not None:
            self.unknowns = np.asarray(self.unknowns, dtype=np.int64)

    @property
    def ndim(self) -> int:
        """The number of axes."""
        return len(self.shape)

    @property
    def n_unknowns(self) -> int:
        """The number of unknowns: all cells, or ``unknowns.size``."""
        return int(np.prod(self.shape)) if self.unknowns is None else int(self.unknowns.size)

    def to_grid(self, v: np.ndarray, fill: float = 0.0) -> np.ndarray:
        """Scatter an unknown vector onto the full grid (cells without unknowns get ``fill``).

        Parameters
        ----------
        v : ndarray
            The unknown vector (``n_unknowns`` entries).
        fill : float, optional
            The value of cells without an unknown.

        Returns
        -------
        ndarray
            Array of ``shape``.
        """
        v = np.asarray(v)
        if self.unknowns is None:
            return v.reshape(self.shape)
        out = np.full(int(np.prod(self.shape)), fill, dtype=v.dtype)
        out[self.unknowns] = v
        return out.reshape(self.shape)

    def from_grid(self, g: np.ndarray) -> np.ndarray:
        """Gather the unknown vector from a full-grid array.

        Parameters
        ----------
        g : ndarray
            Array of ``shape`` (or its flattening).

        Returns
        -------
        ndarray
            The ``n_unknowns`` entries of the cells that carry unknowns.
        """
        g = np.asarray(g).reshape(-1)
        return g if self.unknowns is None else g[self.unknowns]


@dataclass
class LinearSystem:
    """``A x = b`` with optional grid metadata and free-form ``meta`` (parameters, names).

    Every solver's ``solve`` takes one in place of ``(A, b)``; solvers that need geometry
    (``dcdm``, ``fft-poisson``) read ``grid``, and ``datagen`` families return these.

    Parameters
    ----------
    A : sparse matrix, ndarray, LinearOperator or petsc4py.PETSc.Mat
        The n x n matrix.
    b : ndarray or petsc4py.PETSc.Vec
        The right-hand side.
    grid : Grid, optional
        Geometry of the unknowns (``grid.n_unknowns`` must be n).
    meta : dict, optional
        Free-form metadata (the parameters that made the system, structure for direct solvers).

    Raises
    ------
    ShapeError
        A not square, or a grid with another number of unknowns.

    Examples
    --------
    >>> import numpy as np, linsolve
    >>> A = linsolve.gallery.poisson2d(8)
    >>> system = linsolve.LinearSystem(A, np.ones(64), grid=linsolve.Grid((8, 8)))
    >>> system.n, linsolve.make_solver("cg").solve(system).converged
    (64, True)
    """

    A: Any
    b: Any
    grid: Grid | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.meta is None:
            self.meta = {}
        shape = getattr(self.A, "shape", None)
        if shape is None and hasattr(self.A, "getSize"):
            shape = self.A.getSize()
        if shape is not None and len(shape) == 2 and shape[0] != shape[1]:
            raise ShapeError(f"A must be square, got shape {tuple(shape)}")
        if self.grid is not None and shape is not None and self.grid.n_unknowns != shape[0]:
            raise ShapeError(
                f"grid carries {self.grid.n_unknowns} unknowns but A has {shape[0]} rows"
            )

    @property
    def n(self) -> int:
        """The number of unknowns (rows of A)."""
        shape = getattr(self.A, "shape", None)
        if shape is None:
            shape = self.A.getSize()
        return int(shape[0])

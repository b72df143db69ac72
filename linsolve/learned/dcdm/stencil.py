"""The fluid-solver pressure operator applied on the grid in PyTorch, batched over
geometries: the loss of training needs A q for a batch of directions q on different
obstacle layouts, which a stencil does without assembling one sparse matrix per sample.
It equals ``datagen.families.poisson_obstacles.pressure_matrix`` (a test checks this):
integer 5-/7-point stencil, Neumann at SOLID, p = 0 at AIR, cells beyond the grid SOLID."""
from __future__ import annotations

import torch
from torch.nn import functional as F

from linsolve.core.system import AIR, FLUID, SOLID


def _neighbour_kernel(dim: int, dtype) -> torch.Tensor:
    k = torch.zeros((3,) * dim, dtype=dtype)
    centre = (1,) * dim
    for a in range(dim):
        for s in (0, 2):
            idx = list(centre)
            idx[a] = s
            k[tuple(idx)] = 1.0
    return k.reshape(1, 1, *k.shape)


class PressureStencil:
    """``apply(q)`` for q of shape (B, 1, *grid), with cell types (B, *grid)."""

    def __init__(self, cell_type: torch.Tensor, dtype=torch.float32):
        self.dim = cell_type.dim() - 1
        self.conv = F.conv2d if self.dim == 2 else F.conv3d
        self.kernel = _neighbour_kernel(self.dim, dtype)
        ct = cell_type.unsqueeze(1)
        self.fluid = (ct == FLUID).to(dtype)
        nonsolid = (ct != SOLID).to(dtype)
        self.diag = self.fluid * self.conv(nonsolid, self.kernel, padding=1)

    def apply(self, q: torch.Tensor) -> torch.Tensor:
        q = q * self.fluid
        return self.fluid * (self.diag * q - self.conv(q, self.kernel, padding=1))

    __call__ = apply


def geometry_channels(cell_type: torch.Tensor, dtype=torch.float32) -> torch.Tensor:
    """Fluid and air indicator channels (B, 2, *grid) from cell types (B, *grid)."""
    return torch.stack([(cell_type == FLUID).to(dtype), (cell_type == AIR).to(dtype)], 1)

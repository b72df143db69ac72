"""The ``mg-cycle`` network compiled for the CPU: no PyTorch in the solve loop.

The shipped DCDM network (``mgcycle.MultigridCycle``) is linear in the residual. Per
geometry it is a fixed sequence of sparse linear maps: on every level the operator A_k
(a 5-/7-point stencil from the cell types, then exact Galerkin coarsening), the smoother
S_k v = mask * (K * (D^-1 v)) and its transpose (K the learned point-symmetric
3x3[x3] kernel), the 2x2[x2] aggregation R_k = P_k^T and the dense inverse of the
coarsest level. ``compile_mg_cycle`` builds these operators once per geometry in NumPy
(float64) and ``CompiledCycle.apply`` runs the whole W- (or V-) cycle in one compiled
call (numba): the recursion is unrolled in Python into a schedule of level operations,
and a compiled loop executes it. The operators are kept in stencil form (per level the
diagonal, the face weights per axis, the mask and D^-1 on the grid padded by one zero
cell on each side, plus the kernel's taps): that is the same sparse operator as a CSR
matrix, applied without reading an index per entry.

``CompiledCycle.apply`` equals the network's forward pass in float64 to round-off (tests
compare with the torch network in float64 and float32). PyTorch is only used to read
the weights (``from_model``); the solve loop runs without it.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

OP_PRE, OP_RESTRICT, OP_DENSE, OP_SAVE, OP_CORRECT, OP_ACCUMULATE, OP_POST = range(7)


# ----------------------------------------------------------------------------- set-up (NumPy)
def _level0(fluid: np.ndarray, air: np.ndarray):
    """Diagonal and face weights of level 0 from the fluid/air indicators (as
    ``GridLevel.from_geometry``): faces between two fluid cells weigh 1; a fluid cell's
    diagonal counts its non-solid face neighbours; beyond the grid is wall."""
    nonsolid = np.minimum(fluid + air, 1.0)
    diag = np.zeros_like(fluid)
    faces = []
    for a in range(fluid.ndim):
        n = fluid.shape[a]
        lo = [slice(None)] * fluid.ndim
        hi = [slice(None)] * fluid.ndim
        lo[a], hi[a] = slice(0, n - 1), slice(1, n)
        lo, hi = tuple(lo), tuple(hi)
        f = np.zeros_like(fluid)
        f[lo] = fluid[lo] * fluid[hi]
        faces.append(f)
        diag[lo] += fluid[lo] * nonsolid[hi]
        diag[hi] += fluid[hi] * nonsolid[lo]
    return diag, faces


def _pad_even(t: np.ndarray) -> np.ndarray:
    pad = [(0, s % 2) for s in t.shape]
    return np.pad(t, pad) if any(p[1] for p in pad) else t


def _restrict(t: np.ndarray) -> np.ndarray:
    """Sums over the 2^dim aggregates (odd sizes padded with zeros)."""
    t = _pad_even(t)
    shape = []
    for s in t.shape:
        shape += [s // 2, 2]
    return t.reshape(shape).sum(axis=tuple(range(1, 2 * t.ndim, 2)))


def _coarsen(diag: np.ndarray, faces: list):
    """The Galerkin level P^T A P of the piecewise-constant P (as ``GridLevel.coarsen``)."""
    cdiag = _restrict(diag)
    cfaces = []
    for a, w in enumerate(faces):
        w = _pad_even(w)
        inside, between = w.copy(), w.copy()
        idx = [slice(None)] * w.ndim
        idx[a] = slice(1, None, 2)
        inside[tuple(idx)] = 0.0  # faces from an even cell stay inside its aggregate
        idx[a] = slice(0, None, 2)
        between[tuple(idx)] = 0.0
        cdiag = cdiag - 2.0 * _restrict(inside)
        cfaces.append(_restrict(between))
    return cdiag, cfaces


def _dense_inverse(diag: np.ndarray, faces: list, mask: np.ndarray) -> np.ndarray:
    """Inverse of the coarsest level's matrix on all its cells, with the identity on the
    inactive ones (as ``GridLevel.factor_dense``)."""
    m = diag.size
    idx = np.arange(m).reshape(diag.shape)
    M = np.diag(diag.reshape(-1) + (1.0 - mask.reshape(-1)))
    for a, w in enumerate(faces):
        n = diag.shape[a]
        lo = [slice(None)] * diag.ndim
        hi = [slice(None)] * diag.ndim
        lo[a], hi[a] = slice(0, n - 1), slice(1, n)
        i, j, v = idx[tuple(lo)].ravel(), idx[tuple(hi)].ravel(), w[tuple(lo)].ravel()
        M[i, j] -= v
        M[j, i] -= v
    return np.linalg.inv(M)


class CompiledCycle:
    """The multigrid cycle of one geometry, as compiled linear operators.

    Build it with ``compile_mg_cycle`` (or ``from_model``); ``apply(r_grid)`` maps a
    residual on the network's grid to the cycle's output on the grid,
    ``apply_unknowns(r, index)`` works on unknown vectors directly (``index``: flat cell
    positions of the unknowns in the grid).
    """

    def __init__(self, geometry: np.ndarray, kernel: np.ndarray, scale: float, nu: int, gamma: int,
                 coarsest_cells: int):
        geometry = np.asarray(geometry, dtype=np.float64)
        dim = geometry.ndim - 1
        if dim not in (2, 3) or geometry.shape[0] != 2:
            raise ValueError(f"geometry must be (2, *grid) with a 2-D or 3-D grid, got shape {geometry.shape}")
        if gamma not in (1, 2) or nu < 1:
            raise ValueError(f"need nu >= 1 and gamma 1 or 2, got nu={nu}, gamma={gamma}")
        kernel = np.asarray(kernel, dtype=np.float64)
        if kernel.shape != (3,) * dim:
            raise ValueError(f"kernel must be {(3,) * dim}, got {kernel.shape}")
        self.dim, self.shape = dim, tuple(geometry.shape[1:])
        diag, faces = _level0(geometry[0], geometry[1])
        levels = [(diag, faces)]
        while math.prod(levels[-1][0].shape) > coarsest_cells:
            levels.append(_coarsen(*levels[-1]))
        pz = 1 if dim == 3 else 0
        meta, blocks, off = [], [], 0
        for d, fs in levels:
            mask = (d > 0.5).astype(np.float64)
            invd = mask / np.maximum(d, 1e-30)
            grid3 = d.shape if dim == 3 else (1,) + d.shape
            padded = (grid3[0] + 2 * pz, grid3[1] + 2, grid3[2] + 2)
            pad = [(pz, pz), (1, 1), (1, 1)]
            arrs = [d, invd, mask] + list(fs)
            if dim == 2:
                arrs.append(np.zeros_like(d))  # no z faces
                arrs = [arrs[0], arrs[1], arrs[2], arrs[4], arrs[3], arrs[5]]  # fx, fy, fz order below
            else:
                arrs = [arrs[0], arrs[1], arrs[2], arrs[5], arrs[4], arrs[3]]
            blocks.append([np.pad(a.reshape(grid3), pad).ravel() for a in arrs])
            meta.append((off, grid3[0], grid3[1], grid3[2], pz))
            off += math.prod(padded)
        self.total = off
        # stacked: diag, inv_diag, mask, fx (axis -1), fy (axis -2), fz (axis -3)
        self.ops = np.stack([np.concatenate([b[i] for b in blocks]) for i in range(6)])
        self.meta = np.array(meta, dtype=np.int64)
        dl, fl = levels[-1]
        self.dense_inv = _dense_inverse(dl, fl, (dl > 0.5).astype(np.float64))
        taps = [(o if dim == 3 else (1,) + o) for o in np.ndindex(*kernel.shape) if kernel[o] != 0.0]
        self.taps = np.array([[t[0] - 1, t[1] - 1, t[2] - 1] for t in taps], dtype=np.int64).reshape(-1, 3)
        self.weights = np.array([kernel[o] for o in np.ndindex(*kernel.shape) if kernel[o] != 0.0], dtype=np.float64)
        self.scale, self.nu = float(scale), int(nu)
        schedule: list[tuple[int, int]] = []

        def cycle(k):
            if k == len(levels) - 1:
                schedule.append((OP_DENSE, k))
                return
            schedule.extend([(OP_PRE, k), (OP_RESTRICT, k)])
            cycle(k + 1)
            schedule.append((OP_SAVE, k + 1))
            if gamma == 2:
                schedule.append((OP_CORRECT, k + 1))
                cycle(k + 1)
                schedule.append((OP_ACCUMULATE, k + 1))
            schedule.append((OP_POST, k))

        cycle(0)
        self.schedule = np.array(schedule, dtype=np.int64)
        self.n_levels = len(levels)
        self.work = np.zeros((5, self.total))  # X, R, E, T, C
        # padded flat position of every grid cell of level 0 (C order)
        _, nz, ny, nx, _ = meta[0]
        zz, yy, xx = np.meshgrid(np.arange(nz) + pz, np.arange(ny) + 1, np.arange(nx) + 1, indexing="ij")
        self.cell_pos = ((zz * (ny + 2) + yy) * (nx + 2) + xx).ravel()

    @classmethod
    def from_model(cls, model, geometry: np.ndarray) -> CompiledCycle:
        """Compile ``model`` (a ``MultigridCycle``) for ``geometry`` (2, *grid) fluid/air."""
        import torch

        with torch.no_grad():
            k = model.kernel.detach().to("cpu", torch.float64)  # symmetrised in float64 (round-off)
            kernel = (0.5 * (k + torch.flip(k, tuple(range(k.dim()))))).numpy()
            scale = float(torch.exp(model.log_coarse_scale.detach().to("cpu", torch.float64)))
        return cls(geometry, kernel, scale, model.nu, model.gamma, model.coarsest_cells)

    def _run(self):
        _run_schedule(self.schedule, self.meta, self.ops, self.taps, self.weights, self.work, self.dense_inv,
                      self.nu, self.scale)

    def apply(self, r_grid: np.ndarray) -> np.ndarray:
        """The cycle applied to a residual on the grid (shape ``self.shape``)."""
        r = np.asarray(r_grid, dtype=np.float64)
        if r.shape != self.shape:
            raise ValueError(f"residual grid has shape {r.shape}, the cycle was compiled for {self.shape}")
        return self.apply_unknowns(r.reshape(-1), None).reshape(self.shape)

    def apply_unknowns(self, r: np.ndarray, index: np.ndarray | None) -> np.ndarray:
        """The cycle applied to values ``r`` on the cells ``index`` (flat C-order positions
        in the grid; None: every cell), returned on the same cells."""
        pos = self.cell_pos if index is None else self.cell_pos[index]
        R0 = self.work[1]
        R0[pos] = r * self.ops[2][pos]  # the mask; every other cell of level 0 stays zero
        self._run()
        out = self.work[0][pos].copy()
        R0[pos] = 0.0
        return out


def compile_mg_cycle(model, geometry: np.ndarray) -> CompiledCycle:
    """Compile an ``mg-cycle`` network for one geometry.

    Parameters
    ----------
    model : linsolve.dcdm.mgcycle.MultigridCycle
        The network (its weights are read once, in float64).
    geometry : ndarray, shape (2, *grid)
        Fluid and air indicators of every cell (as the network's geometry input).

    Returns
    -------
    CompiledCycle
        ``apply(r_grid)`` equals ``model(r_grid[None, None], geometry[None])`` in float64.

    Examples
    --------
    >>> from linsolve.dcdm.loading import load_model
    >>> geo = np.stack([np.ones((16, 16)), np.zeros((16, 16))])
    >>> cyc = compile_mg_cycle(load_model("dcdm-2d"), geo)
    >>> cyc.apply(np.ones((16, 16))).shape
    (16, 16)
    """
    return CompiledCycle.from_model(model, geometry)


# ----------------------------------------------------------------------------- kernels
@njit(cache=True, nogil=True)
def _residual(m, ops, u, r, out, masked):
    """out = r - A u on the interior of level ``m`` (times the mask when ``masked``)."""
    off, nz, ny, nx, pz = m[0], m[1], m[2], m[3], m[4]
    sy = nx + 2
    sz = (ny + 2) * sy
    diag, mask, fx, fy, fz = ops[0], ops[2], ops[3], ops[4], ops[5]
    for z in range(nz):
        for y in range(ny):
            b = off + (z + pz) * sz + (y + 1) * sy + 1
            if pz:
                for x in range(b, b + nx):
                    v = (r[x] - diag[x] * u[x] + fx[x] * u[x + 1] + fx[x - 1] * u[x - 1] + fy[x] * u[x + sy]
                         + fy[x - sy] * u[x - sy] + fz[x] * u[x + sz] + fz[x - sz] * u[x - sz])
                    out[x] = v * mask[x] if masked else v
            else:
                for x in range(b, b + nx):
                    v = (r[x] - diag[x] * u[x] + fx[x] * u[x + 1] + fx[x - 1] * u[x - 1] + fy[x] * u[x + sy]
                         + fy[x - sy] * u[x - sy])
                    out[x] = v * mask[x] if masked else v


@njit(cache=True, nogil=True)
def _correlate(m, taps, weights, t, out):
    """out = K * t (cross-correlation, zero outside the grid) on the interior."""
    off, nz, ny, nx, pz = m[0], m[1], m[2], m[3], m[4]
    sy = nx + 2
    sz = (ny + 2) * sy
    for z in range(nz):
        for y in range(ny):
            b = off + (z + pz) * sz + (y + 1) * sy + 1
            for x in range(b, b + nx):
                out[x] = 0.0
            for j in range(weights.shape[0]):
                o = taps[j, 0] * sz + taps[j, 1] * sy + taps[j, 2]
                w = weights[j]
                for x in range(b, b + nx):
                    out[x] += w * t[x + o]


@njit(cache=True, nogil=True)
def _scale_into(m, a, src, dst, accumulate):
    """dst = a * src (or dst += a * src) on the interior."""
    off, nz, ny, nx, pz = m[0], m[1], m[2], m[3], m[4]
    sy = nx + 2
    sz = (ny + 2) * sy
    for z in range(nz):
        for y in range(ny):
            b = off + (z + pz) * sz + (y + 1) * sy + 1
            if accumulate:
                for x in range(b, b + nx):
                    dst[x] += a[x] * src[x]
            else:
                for x in range(b, b + nx):
                    dst[x] = a[x] * src[x]


@njit(cache=True, nogil=True)
def _copy_add(m, src, dst, sign, accumulate):
    off, nz, ny, nx, pz = m[0], m[1], m[2], m[3], m[4]
    sy = nx + 2
    sz = (ny + 2) * sy
    for z in range(nz):
        for y in range(ny):
            b = off + (z + pz) * sz + (y + 1) * sy + 1
            if accumulate:
                for x in range(b, b + nx):
                    dst[x] += sign * src[x]
            else:
                for x in range(b, b + nx):
                    dst[x] = sign * src[x]


@njit(cache=True, nogil=True)
def _run_schedule(schedule, meta, ops, taps, weights, work, dense_inv, nu, scale):
    X, R, E, T, C = work[0], work[1], work[2], work[3], work[4]
    diag, invd, mask = ops[0], ops[1], ops[2]
    for s in range(schedule.shape[0]):
        op, k = schedule[s, 0], schedule[s, 1]
        m = meta[k]
        if op == OP_PRE:  # x = S r, then nu - 1 more sweeps x += S (r - A x); S v = mask K (D^-1 v)
            _scale_into(m, invd, R, T, False)
            _correlate(m, taps, weights, T, C)
            _scale_into(m, mask, C, X, False)
            for _ in range(nu - 1):
                _residual(m, ops, X, R, T, False)
                _scale_into(m, invd, T, T, False)
                _correlate(m, taps, weights, T, C)
                _scale_into(m, mask, C, X, True)
        elif op == OP_RESTRICT:  # R[k+1] = P^T (r - A x)
            _residual(m, ops, X, R, T, False)
            mc = meta[k + 1]
            off, nz, ny, nx, pz = m[0], m[1], m[2], m[3], m[4]
            coff, cnz, cny, cnx = mc[0], mc[1], mc[2], mc[3]
            sy, csy = nx + 2, cnx + 2
            sz, csz = (ny + 2) * sy, (cny + 2) * csy
            for zc in range(cnz):
                for yc in range(cny):
                    cb = coff + (zc + pz) * csz + (yc + 1) * csy + 1
                    if pz:
                        f0 = off + (2 * zc + 1) * sz + (2 * yc + 1) * sy + 1
                        for xc in range(cnx):
                            f = f0 + 2 * xc
                            R[cb + xc] = (T[f] + T[f + 1] + T[f + sy] + T[f + sy + 1]
                                          + T[f + sz] + T[f + sz + 1] + T[f + sz + sy] + T[f + sz + sy + 1])
                    else:
                        f0 = off + zc * sz + (2 * yc + 1) * sy + 1
                        for xc in range(cnx):
                            f = f0 + 2 * xc
                            R[cb + xc] = T[f] + T[f + 1] + T[f + sy] + T[f + sy + 1]
        elif op == OP_DENSE:  # x = mask A_c^-1 (mask r) on the coarsest level
            off, nz, ny, nx, pz = m[0], m[1], m[2], m[3], m[4]
            sy = nx + 2
            sz = (ny + 2) * sy
            cells = nz * ny * nx
            pos = np.empty(cells, dtype=np.int64)
            i = 0
            for z in range(nz):
                for y in range(ny):
                    b = off + (z + pz) * sz + (y + 1) * sy + 1
                    for x in range(nx):
                        pos[i] = b + x
                        i += 1
            for i in range(cells):
                acc = 0.0
                for j in range(cells):
                    acc += dense_inv[i, j] * (mask[pos[j]] * R[pos[j]])
                X[pos[i]] = mask[pos[i]] * acc
        elif op == OP_SAVE:
            _copy_add(m, X, E, 1.0, False)
        elif op == OP_CORRECT:  # the second coarse cycle solves for rc - A_c ec
            _residual(m, ops, E, R, R, False)
        elif op == OP_ACCUMULATE:
            _copy_add(m, X, E, 1.0, True)
        else:  # OP_POST: x += scale P ec, then nu sweeps x += S^T (r - A x); S^T v = D^-1 K (mask v)
            mc = meta[k + 1]
            off, nz, ny, nx, pz = m[0], m[1], m[2], m[3], m[4]
            coff, cny, cnx = mc[0], mc[2], mc[3]
            sy, csy = nx + 2, cnx + 2
            sz, csz = (ny + 2) * sy, (cny + 2) * csy
            for z in range(nz):
                zc = (z // 2) if pz else z
                for y in range(ny):
                    b = off + (z + pz) * sz + (y + 1) * sy + 1
                    cb = coff + (zc + pz) * csz + (y // 2 + 1) * csy + 1
                    for x in range(nx):
                        X[b + x] += scale * mask[b + x] * E[cb + x // 2]
            for _ in range(nu):
                _residual(m, ops, X, R, T, True)
                _correlate(m, taps, weights, T, C)
                _scale_into(m, invd, C, X, True)
    return diag.shape[0]

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


# ----------------------------------------------------------------------------- set-up
def _dense_inverse(diag: np.ndarray, faces: list, mask: np.ndarray) -> np.ndarray:
    """Inverse of the coarsest level's matrix on all its cells (C order), with the identity
    on the inactive ones (as ``GridLevel.factor_dense``); ``faces[a]`` couples a cell with
    its neighbour along axis ``a``."""
    m = diag.size
    idx = np.arange(m).reshape(diag.shape)
    M = np.diag(diag.reshape(-1) + (1.0 - mask.reshape(-1)))
    for a, w in enumerate(faces):
        n = diag.shape[a]
        if n < 2:
            continue
        lo = [slice(None)] * diag.ndim
        hi = [slice(None)] * diag.ndim
        lo[a], hi[a] = slice(0, n - 1), slice(1, n)
        i, j, v = idx[tuple(lo)].ravel(), idx[tuple(hi)].ravel(), w[tuple(lo)].ravel()
        M[i, j] -= v
        M[j, i] -= v
    w, V = np.linalg.eigh(M)
    if w[0] > 1e-10 * w[-1]:
        return np.linalg.inv(M)
    # A fluid region without an air neighbour is a pure Neumann block: singular. The torch
    # network's inverse of it is rounding noise amplified by 1/eps (its outputs carry a huge
    # near-constant part that DCDM must then discard). Here the null modes get the gain of
    # the smoothest regular mode, so the cycle stays symmetric positive definite and DCDM
    # (PCG) still reaches those modes.
    null = w <= 1e-10 * w[-1]
    w = np.where(null, w[~null].min() if (~null).any() else 1.0, w)
    return (V / w) @ V.T


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
        pz = 1 if dim == 3 else 0
        grid3 = self.shape if dim == 3 else (1,) + self.shape
        meta, off = [], 0
        while True:  # level shapes: 2x2[x2] aggregation, odd sizes padded, until few cells are left
            meta.append((off, grid3[0], grid3[1], grid3[2], pz))
            off += (grid3[0] + 2 * pz) * (grid3[1] + 2) * (grid3[2] + 2)
            if math.prod(grid3) <= coarsest_cells:
                break
            grid3 = ((grid3[0] + 1) // 2 if pz else 1, (grid3[1] + 1) // 2, (grid3[2] + 1) // 2)
        self.total = off
        self.meta = np.array(meta, dtype=np.int64)
        # rows: diag, inv_diag, mask, fx (last axis), fy, fz (first axis of a 3-D grid); zero pad ring
        self.ops = np.zeros((6, self.total))
        _level0_kernel(np.ascontiguousarray(geometry[0]).reshape(-1) > 0.5,
                       np.ascontiguousarray(geometry[1]).reshape(-1) > 0.5, self.meta[0], self.ops)
        for k in range(1, len(meta)):
            _coarsen_kernel(self.meta[k - 1], self.meta[k], self.ops)
        _mask_kernel(self.ops)
        last = self.meta[-1]
        lo, hi = last[0], last[0] + (last[1] + 2 * pz) * (last[2] + 2) * (last[3] + 2)
        inner = (slice(pz, pz + last[1]), slice(1, 1 + last[2]), slice(1, 1 + last[3]))
        view = [self.ops[i, lo:hi].reshape(last[1] + 2 * pz, last[2] + 2, last[3] + 2)[inner] for i in range(6)]
        self.dense_inv = _dense_inverse(view[0], [view[5], view[4], view[3]], view[2])
        taps = [(o if dim == 3 else (1,) + o) for o in np.ndindex(*kernel.shape) if kernel[o] != 0.0]
        self.taps = np.array([[t[0] - 1, t[1] - 1, t[2] - 1] for t in taps], dtype=np.int64).reshape(-1, 3)
        self.weights = np.array([kernel[o] for o in np.ndindex(*kernel.shape) if kernel[o] != 0.0], dtype=np.float64)
        self.scale, self.nu = float(scale), int(nu)
        schedule: list[tuple[int, int]] = []

        def cycle(k):
            if k == len(meta) - 1:
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
        self.n_levels = len(meta)
        self.work = np.zeros((5, self.total))  # X, R, E, T, C
        self._pz = pz

    def positions(self, index: np.ndarray | None) -> np.ndarray:
        """Padded flat positions in level 0 of the grid cells ``index`` (flat C order;
        None: every cell)."""
        _, nz, ny, nx, pz = self.meta[0]
        index = np.arange(nz * ny * nx) if index is None else np.asarray(index, dtype=np.int64)
        z, rest = np.divmod(index, ny * nx)
        y, x = np.divmod(rest, nx)
        return ((z + pz) * (ny + 2) + y + 1) * (nx + 2) + x + 1

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
        pos = self.positions(index)
        return self.apply_positions(r, pos)

    def apply_positions(self, r: np.ndarray, pos: np.ndarray) -> np.ndarray:
        """As ``apply_unknowns`` with the cells given by ``positions(index)`` (computed once
        per system by the solver)."""
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
    model : linsolve.learned.dcdm.mgcycle.MultigridCycle
        The network (its weights are read once, in float64).
    geometry : ndarray, shape (2, *grid)
        Fluid and air indicators of every cell (as the network's geometry input).

    Returns
    -------
    CompiledCycle
        ``apply(r_grid)`` equals ``model(r_grid[None, None], geometry[None])`` in float64.

    Examples
    --------
    >>> from linsolve.learned.dcdm.loading import load_model
    >>> geo = np.stack([np.ones((16, 16)), np.zeros((16, 16))])
    >>> cyc = compile_mg_cycle(load_model("dcdm-2d"), geo)
    >>> cyc.apply(np.ones((16, 16))).shape
    (16, 16)
    """
    return CompiledCycle.from_model(model, geometry)


# ----------------------------------------------------------------------------- kernels
@njit(cache=True, nogil=True)
def _level0_kernel(fluid, air, m, ops):
    """Level 0 from the cell types (as ``GridLevel.from_geometry``): faces between two fluid
    cells weigh 1; a fluid cell's diagonal counts its non-solid face neighbours; beyond the
    grid is wall."""
    off, nz, ny, nx, pz = m[0], m[1], m[2], m[3], m[4]
    sy = nx + 2
    sz = (ny + 2) * sy
    diag, fx, fy, fz = ops[0], ops[3], ops[4], ops[5]
    for z in range(nz):
        for y in range(ny):
            for x in range(nx):
                i = (z * ny + y) * nx + x
                if not fluid[i]:
                    continue
                p = off + (z + pz) * sz + (y + 1) * sy + x + 1
                d = 0.0
                if x + 1 < nx:
                    d += fluid[i + 1] or air[i + 1]
                    fx[p] = 1.0 if fluid[i + 1] else 0.0
                if x > 0:
                    d += fluid[i - 1] or air[i - 1]
                if y + 1 < ny:
                    d += fluid[i + nx] or air[i + nx]
                    fy[p] = 1.0 if fluid[i + nx] else 0.0
                if y > 0:
                    d += fluid[i - nx] or air[i - nx]
                if z + 1 < nz:
                    d += fluid[i + nx * ny] or air[i + nx * ny]
                    fz[p] = 1.0 if fluid[i + nx * ny] else 0.0
                if z > 0:
                    d += fluid[i - nx * ny] or air[i - nx * ny]
                diag[p] = d


@njit(cache=True, nogil=True)
def _coarsen_kernel(mf, mc, ops):
    """The Galerkin level P^T A P of the piecewise-constant P (as ``GridLevel.coarsen``): a
    coarse face weight is the sum of the fine face weights crossing it, a coarse diagonal
    the sum of the aggregate's fine diagonals minus twice its internal face weights. Fine
    cells past an odd edge are the zero pad ring."""
    off, pz = mf[0], mf[4]
    sy = mf[3] + 2
    sz = (mf[2] + 2) * sy
    coff, cnz, cny, cnx = mc[0], mc[1], mc[2], mc[3]
    csy = cnx + 2
    csz = (cny + 2) * csy
    diag, fx, fy, fz = ops[0], ops[3], ops[4], ops[5]
    nzb = 2 if pz else 1
    for zc in range(cnz):
        for yc in range(cny):
            for xc in range(cnx):
                z0 = 2 * zc if pz else zc
                d = 0.0
                cx = 0.0
                cy = 0.0
                cz = 0.0
                for dz in range(nzb):
                    for dy in range(2):
                        for dx in range(2):
                            p = off + (z0 + dz + pz) * sz + (2 * yc + dy + 1) * sy + 2 * xc + dx + 1
                            d += diag[p]
                            if dx == 0:
                                d -= 2.0 * fx[p]
                            else:
                                cx += fx[p]
                            if dy == 0:
                                d -= 2.0 * fy[p]
                            else:
                                cy += fy[p]
                            if pz:
                                if dz == 0:
                                    d -= 2.0 * fz[p]
                                else:
                                    cz += fz[p]
                q = coff + (zc + pz) * csz + (yc + 1) * csy + xc + 1
                diag[q], fx[q], fy[q], fz[q] = d, cx, cy, cz


@njit(cache=True, nogil=True)
def _mask_kernel(ops):
    diag, invd, mask = ops[0], ops[1], ops[2]
    for p in range(diag.shape[0]):
        if diag[p] > 0.5:  # entries are integer sums
            mask[p] = 1.0
            invd[p] = 1.0 / diag[p]


# The level kernels run over contiguous spans (one per z-plane, the whole grid in 2-D) that
# include the pad cells at the row ends: every value written there is zero (D^-1, the mask
# and the face weights vanish on the pad ring, R is zero there) or scratch only read
# through a zero factor, and one long unit-stride loop per span is what LLVM vectorises.
@njit(cache=True, nogil=True, inline="always")
def _span(m, z):
    off, ny, nx, pz = m[0], m[2], m[3], m[4]
    sy = nx + 2
    lo = off + (z + pz) * (ny + 2) * sy + sy + 1
    return lo, lo + (ny - 1) * sy + nx


@njit(cache=True, nogil=True)
def _residual(m, ops, u, r, out, masked):
    """out = r - A u on level ``m`` (times the mask when ``masked``)."""
    sy = m[3] + 2
    sz = (m[2] + 2) * sy
    for z in range(m[1]):
        lo, hi = _span(m, z)
        n = hi - lo
        d, mk = ops[0][lo:hi], ops[2][lo:hi]
        fx, fxm = ops[3][lo:hi], ops[3][lo - 1:hi - 1]
        fy, fym = ops[4][lo:hi], ops[4][lo - sy:hi - sy]
        u0, uxp, uxm = u[lo:hi], u[lo + 1:hi + 1], u[lo - 1:hi - 1]
        uyp, uym = u[lo + sy:hi + sy], u[lo - sy:hi - sy]
        rv, ov = r[lo:hi], out[lo:hi]
        if m[4]:
            fz, fzm = ops[5][lo:hi], ops[5][lo - sz:hi - sz]
            uzp, uzm = u[lo + sz:hi + sz], u[lo - sz:hi - sz]
            for i in range(n):
                v = (rv[i] - d[i] * u0[i] + fx[i] * uxp[i] + fxm[i] * uxm[i] + fy[i] * uyp[i] + fym[i] * uym[i]
                     + fz[i] * uzp[i] + fzm[i] * uzm[i])
                ov[i] = v * mk[i] if masked else v
        else:
            for i in range(n):
                v = rv[i] - d[i] * u0[i] + fx[i] * uxp[i] + fxm[i] * uxm[i] + fy[i] * uyp[i] + fym[i] * uym[i]
                ov[i] = v * mk[i] if masked else v


@njit(cache=True, nogil=True)
def _correlate(m, taps, weights, t, out):
    """out = K * t (cross-correlation, zero outside the grid)."""
    sy = m[3] + 2
    sz = (m[2] + 2) * sy
    for z in range(m[1]):
        lo, hi = _span(m, z)
        ov = out[lo:hi]
        ov[:] = 0.0
        for j in range(weights.shape[0]):
            o = taps[j, 0] * sz + taps[j, 1] * sy + taps[j, 2]
            w = weights[j]
            tv = t[lo + o:hi + o]
            for i in range(hi - lo):
                ov[i] += w * tv[i]


@njit(cache=True, nogil=True)
def _scale_into(m, a, src, dst, accumulate):
    """dst = a * src (or dst += a * src)."""
    for z in range(m[1]):
        lo, hi = _span(m, z)
        av, sv, dv = a[lo:hi], src[lo:hi], dst[lo:hi]
        if accumulate:
            for i in range(hi - lo):
                dv[i] += av[i] * sv[i]
        else:
            for i in range(hi - lo):
                dv[i] = av[i] * sv[i]


@njit(cache=True, nogil=True)
def _copy_add(m, src, dst, sign, accumulate):
    for z in range(m[1]):
        lo, hi = _span(m, z)
        sv, dv = src[lo:hi], dst[lo:hi]
        if accumulate:
            for i in range(hi - lo):
                dv[i] += sign * sv[i]
        else:
            for i in range(hi - lo):
                dv[i] = sign * sv[i]


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

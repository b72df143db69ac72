"""Compiled kernels of the deflated (recycled) preconditioned CG on CSR matrices (numba,
``cache=True``, ``nogil``, no fastmath).

* ``csr_matvec``: y = A x; ``csr_to_dia`` / ``dia_matvec``: the same by diagonals for
  matrices with at most 16 distinct diagonals (grid stencils), about twice as fast.
* ``ic0_factor``: incomplete Cholesky with zero fill, A ~ L L^T with L on the pattern of
  the lower triangle of A (natural ordering): the factor of PETSc's ``PCICC`` with its
  defaults (levels 0, natural ordering; its positive-definite shift only acts on a
  non-positive pivot, and then this kernel reports failure so the caller can fall back
  to PETSc itself). Row-oriented: L_ik = (a_ik - sum_j<k L_ij L_kj) / L_kk, the sum over
  the columns the two rows share.
* ``ic0_apply``: z = (L L^T)^-1 r in the unit form L L^T = U D U^T (U = L diag(L)^-1,
  D = diag(L)^2) as PETSc's ICC solve does: the substitutions then carry no division on
  their dependency chain, which is what bounds their speed.
* ``dpcg``: the whole deflated PCG solve of Saad, Yeung, Erhel and Guyomarc'h (2000):
  x0 <- x0 + W E^-1 W^T r0, then p = z + beta p - W E^-1 (AW)^T z every iteration, with
  E = W^T A W (its inverse is passed in); or, with ``drop`` > 0, init-CG with deflated
  restarts (plain PCG, the Galerkin correction repeated each time the residual has
  fallen by ``drop``). It also records what the Ritz update of the
  recycled space needs (the first ``s`` directions, alpha_j, rho_j = r_j^T z_j and
  t_j = (AW) z_j), so no Python runs per iteration.

Per iteration of the deflated mode (see ``dpcg``: the direction is kept as pt - W^T c so that only A W is
read): pt = z + beta pt, q = A pt with pt^T q, the deflation products t = (AW) z and
(AW)^T c as BLAS GEMVs on the (k, n) block, then x += alpha pt and r -= alpha q ride
along the forward substitution (whose dependency chain bounds that pass) with ||r||^2,
and r^T z along the backward one. Fusing the GEMVs into the substitution loops was
measured slower: the compiler must then assume that the accumulators alias the vectors
being scattered.

Preconditioner codes: 0 none, 1 Jacobi (``dinv`` = 1/diag), 2 IC(0) (``IC0.unit``:
the unit-form factors and ``dinv``). Status codes: 0 converged, 1 iteration cap reached,
2 breakdown (p^T A p <= 0 or a non-finite residual), 3 r^T z = 0 short of the tolerance.
"""
from __future__ import annotations

import numpy as np
from numba import njit

CONVERGED, MAXITER, BREAKDOWN, RZ_ZERO = 0, 1, 2, 3
PC_NONE, PC_JACOBI, PC_IC0 = 0, 1, 2

# Unsigned positions (np.uint64) spare numba's negative-index wraparound test on every
# access; in these memory-light loops that halves the time (as in ``sor_kernels``).


@njit(cache=True, nogil=True)
def csr_matvec(indptr, indices, data, x, y):
    n = y.shape[0]
    one = np.uint64(1)
    for ii in range(n):
        i = np.uint64(ii)
        s = 0.0
        a, end = np.uint64(indptr[i]), np.uint64(indptr[i + one])
        while a < end:
            s += data[a] * x[np.uint64(indices[a])]
            a += one
        y[i] = s


@njit(cache=True, nogil=True)
def csr_to_dia(indptr, indices, data, max_diagonals):
    """The diagonals of a CSR matrix with at most ``max_diagonals`` distinct offsets
    j - i (a stencil on a grid): (offsets ascending, D) with D[d, i] = A[i, i + offsets[d]];
    empty offsets when there are more. The product then streams contiguous arrays with
    no index loads, about twice as fast as CSR for a 5-point stencil."""
    n = indptr.shape[0] - 1
    offs = np.empty(max_diagonals, dtype=np.int64)
    nd = 0
    for i in range(n):
        for a in range(indptr[i], indptr[i + 1]):
            o = indices[a] - i
            found = False
            for d in range(nd):
                if offs[d] == o:
                    found = True
                    break
            if not found:
                if nd == max_diagonals:
                    return np.empty(0, dtype=np.int64), np.empty((0, n))
                offs[nd] = o
                nd += 1
    offs = np.sort(offs[:nd])
    D = np.zeros((nd, n))
    for i in range(n):
        d = 0
        for a in range(indptr[i], indptr[i + 1]):  # sorted columns: offsets ascend along the row
            o = indices[a] - i
            while offs[d] != o:
                d += 1
            D[d, i] += data[a]
    return offs, D


@njit(cache=True, nogil=True)
def dia_matvec(offs, D, x, y):
    n = x.shape[0]
    y[:] = 0.0
    for d in range(offs.shape[0]):
        o = offs[d]
        lo, hi = max(0, -o), min(n, n - o)
        # slices: the compiler sees plain unit-stride streams and vectorises
        yv, xv, dv = y[lo:hi], x[lo + o:hi + o], D[d, lo:hi]
        for i in range(hi - lo):
            yv[i] += dv[i] * xv[i]


@njit(cache=True, nogil=True)
def ic0_factor(indptr, indices, data):
    """IC(0) of a canonical CSR matrix (sorted column indices, no duplicates). Returns
    (lptr, lind, ldata, bad): L by rows with the diagonal last in each row, and bad = -1,
    or the first row whose pivot is not positive (or that has no diagonal entry)."""
    n = indptr.shape[0] - 1
    lptr = np.zeros(n + 1, dtype=np.int64)
    for i in range(n):
        c = 0
        for a in range(indptr[i], indptr[i + 1]):
            if indices[a] <= i:
                c += 1
        lptr[i + 1] = lptr[i] + c
    nnz = lptr[n]
    lind = np.empty(nnz, dtype=np.int64)
    ldata = np.empty(nnz, dtype=np.float64)
    for i in range(n):
        pos = lptr[i]
        for a in range(indptr[i], indptr[i + 1]):
            if indices[a] <= i:
                lind[pos] = indices[a]
                ldata[pos] = data[a]
                pos += 1
        last = lptr[i + 1] - 1
        if last < lptr[i] or lind[last] != i:
            return lptr, lind, ldata, i
        for a in range(lptr[i], last):
            kcol = lind[a]
            s = ldata[a]
            # sum over j < kcol of L_ij L_kj: merge row i (positions before a) with row kcol
            ia, ib = lptr[i], lptr[kcol]
            bend = lptr[kcol + 1] - 1  # row kcol without its diagonal
            while ia < a and ib < bend:
                ca, cb = lind[ia], lind[ib]
                if ca == cb:
                    s -= ldata[ia] * ldata[ib]
                    ia += 1
                    ib += 1
                elif ca < cb:
                    ia += 1
                else:
                    ib += 1
            ldata[a] = s / ldata[lptr[kcol + 1] - 1]
        d = ldata[last]
        for a in range(lptr[i], last):
            d -= ldata[a] * ldata[a]
        if not d > 0.0:
            return lptr, lind, ldata, i
        ldata[last] = np.sqrt(d)
    return lptr, lind, ldata, -1


@njit(cache=True, nogil=True)
def ic0_unit_form(lptr, lind, ldata):
    """From L (diagonal last per row) to the unit form L L^T = U D U^T, U = L diag(L)^-1:
    the strictly lower part of U by rows (lower_ptr, lower_ind, lower_val; columns
    ascending), the strictly upper part of U^T by rows (upper_ptr, upper_ind, upper_val;
    columns ascending) and dinv = 1 / L_ii^2."""
    n = lptr.shape[0] - 1
    diag = np.empty(n)
    for i in range(n):
        diag[i] = ldata[lptr[i + 1] - 1]
    sptr = np.zeros(n + 1, dtype=np.int64)
    cnt = np.zeros(n + 1, dtype=np.int64)
    for i in range(n):
        sptr[i + 1] = sptr[i] + (lptr[i + 1] - lptr[i] - 1)
        for a in range(lptr[i], lptr[i + 1] - 1):
            cnt[lind[a] + 1] += 1
    m = sptr[n]
    sind = np.empty(m, dtype=np.int32)
    sval = np.empty(m)
    uptr = np.cumsum(cnt)
    uind = np.empty(m, dtype=np.int32)
    uval = np.empty(m)
    fill = uptr[:-1].copy()
    for i in range(n):  # rows ascending, so each row of U^T gets its columns ascending
        pos = sptr[i]
        for a in range(lptr[i], lptr[i + 1] - 1):
            j = lind[a]
            sind[pos] = j
            sval[pos] = ldata[a] / diag[j]
            pos += 1
            uind[fill[j]] = i
            uval[fill[j]] = ldata[a] / diag[j]
            fill[j] += 1
    return sptr, sind, sval, uptr, uind, uval, 1.0 / (diag * diag)


@njit(cache=True, nogil=True)
def ic0_apply(sptr, sind, sval, uptr, uind, uval, dinv, r, z):
    """z = (U D U^T)^-1 r (the kernel's own pass, with a zero step)."""
    zero = np.zeros(r.shape[0])
    _step_and_precondition(PC_IC0, sptr, sind, sval, uptr, uind, uval, dinv, zero.copy(), r.copy(), zero, zero,
                           zero, 0.0, z)


@njit(cache=True, nogil=True)
def _direction(z, p, beta):
    """p = z + beta p."""
    for ii in range(z.shape[0]):
        i = np.uint64(ii)
        p[i] = z[i] + beta * p[i]


@njit(cache=True, nogil=True)
def _product(indptr, indices, data, offs, D, p, q):
    """q = A p (by diagonals when ``offs`` is not empty); returns p^T q (by BLAS: a
    running sum in the loop would be a serial chain of additions, slower than the
    product itself)."""
    if offs.shape[0] > 0:
        dia_matvec(offs, D, p, q)
    else:
        csr_matvec(indptr, indices, data, p, q)
    return np.dot(p, q)


@njit(cache=True, nogil=True)
def _step_and_precondition(pctype, sptr, sind, sval, uptr, uind, uval, dinv, x, r, p, q, corr, alpha, z):
    """x += alpha p, r -= alpha (q - corr), z = M^-1 r; returns (||r||^2, r^T z).

    IC(0): the vector updates ride along the forward substitution, whose dependency chain
    bounds the pass, and both substitutions keep the neighbour of the previous row (the
    last lower / first upper entry, i -+ 1 on a grid) in a register, so the chain is one
    multiply-add per row instead of a store, a reload and a multiply-add."""
    n = r.shape[0]
    one = np.uint64(1)
    rr = 0.0
    rz = 0.0
    if pctype == 2:
        prev = 0.0
        for ii in range(n):
            i = np.uint64(ii)
            x[i] += alpha * p[i]
            ri = r[i] - alpha * (q[i] - corr[i])
            r[i] = ri
            rr += ri * ri
            s = ri
            a, end = np.uint64(sptr[i]), np.uint64(sptr[i + one])
            if a < end:
                last = end - one
                while a < last:
                    s -= sval[a] * z[np.uint64(sind[a])]
                    a += one
                if ii > 0 and sind[last] == ii - 1:
                    s -= sval[last] * prev
                else:
                    s -= sval[last] * z[np.uint64(sind[last])]
            z[i] = s
            prev = s
        nxt = 0.0
        for ii in range(n - 1, -1, -1):
            i = np.uint64(ii)
            s = dinv[i] * z[i]
            a, end = np.uint64(uptr[i]), np.uint64(uptr[i + one])
            if a < end:
                first = a
                a += one
                while a < end:
                    s -= uval[a] * z[np.uint64(uind[a])]
                    a += one
                if uind[first] == ii + 1:
                    s -= uval[first] * nxt
                else:
                    s -= uval[first] * z[np.uint64(uind[first])]
            z[i] = s
            nxt = s
            rz += r[i] * s
    else:
        # no dependency chain to hide the sums behind: BLAS dots after the update
        jac = pctype == 1
        for ii in range(n):
            i = np.uint64(ii)
            x[i] += alpha * p[i]
            ri = r[i] - alpha * (q[i] - corr[i])
            r[i] = ri
            z[i] = dinv[i] * ri if jac else ri
        rr = np.dot(r, r)
        rz = np.dot(r, z) if jac else rr
    return rr, rz


@njit(cache=True, nogil=True)
def _galerkin(W, AW, Einv, x, r):
    """x += W^T E^-1 W^T r, r -= (AW)^T E^-1 W^T r: the Galerkin correction on span W."""
    c0 = np.dot(Einv, np.dot(W, r))
    x += np.dot(c0, W)
    r -= np.dot(c0, AW)


@njit(cache=True, nogil=True)
def dpcg(indptr, indices, data, offs, D, pctype, sptr, sind, sval, uptr, uind, uval, dinv, b, x, W, AW, Einv, drop, tol,
         maxiter, norms, P, C, alphas, rhos, T):
    """Deflated PCG from x (updated in place); W, AW of shape (k, n), Einv = (W^T A W)^-1;
    A as CSR, and by diagonals (``csr_to_dia``) unless ``offs`` is empty.

    ``drop`` = 0: deflation in every iteration (Saad et al.). The direction is kept as
    p_j = pt_j - W^T c_j, pt_j = z_j + beta pt_j-1 and c_j = E^-1 (AW) z_j + beta c_j-1, so
    A p_j = A pt_j - (AW)^T c_j and the iterate as x = xt - W^T cx: every iteration reads
    AW twice and W never (W is read once at the start and once at the end), which halves
    the block data that must stay in cache against two GEMVs over W and AW.
    p^T A p = pt^T A p as W^T A p = 0 by construction.

    0 < ``drop`` < 1: init-CG with deflated restarts (Stathopoulos and Orginos 2010): plain
    PCG (W is not read inside the iteration) from the Galerkin-corrected x; once the
    residual has fallen by ``drop`` since the (re)start, the true residual b - A x (one
    product), the Galerkin correction again, and PCG restarts with beta = 0. Only the
    first run is stored (its directions are mutually A-conjugate and the Lanczos
    identities of the Ritz update hold for it), and while ``P`` has room that run is not
    cut short, so the update sees ``s`` directions. C and T are not written.

    norms[j] = ||r_j+1|| (recurrence) while norms has room. For j < stored stores P[j] = pt_j, C[j] = c_j,
    alphas[j]; rhos[j] = r_j^T z_j and T[j] = (AW) z_j for j <= stored.
    Returns (iterations, status, restarts, stored)."""
    n = b.shape[0]
    k = W.shape[0]
    restart = drop > 0.0 and k > 0
    kd = 0 if restart else k  # the block the iteration deflates with
    s_store = P.shape[0]
    r = np.empty(n)
    z = np.empty(n)
    p = np.zeros(n)
    q = np.empty(n)
    t = np.zeros(k)
    mu = np.zeros(k)
    c = np.zeros(k)
    cx = np.zeros(k)
    corr = np.zeros(n)
    _product(indptr, indices, data, offs, D, x, q)
    for i in range(n):
        r[i] = b[i] - q[i]
    if k > 0:
        _galerkin(W, AW, Einv, x, r)
    # alpha = 0: only z_0 = M^-1 r_0, ||r_0||^2 and rho_0
    rr, rz = _step_and_precondition(pctype, sptr, sind, sval, uptr, uind, uval, dinv, x, r, p, q, corr, 0.0, z)
    if np.sqrt(rr) <= tol:
        return 0, CONVERGED, 0, 0
    if kd > 0:
        np.dot(AW, z, t)
    if s_store > 0:
        rhos[0] = rz
        if kd > 0:
            T[0] = t
    beta = 0.0
    its = 0
    restarts = 0
    stored = 0  # directions of the first run kept; frozen by the first restart
    frozen = False
    start_norm = np.sqrt(rr)
    status = MAXITER
    while its < maxiter:
        _direction(z, p, beta)
        pq = _product(indptr, indices, data, offs, D, p, q)
        if kd > 0:
            np.dot(Einv, t, mu)
            for j in range(k):
                c[j] = mu[j] + beta * c[j]
            np.dot(c, AW, corr)
            pq -= np.dot(p, corr)  # p^T (A pt - AW^T c); the step subtracts corr from q
        keep = not frozen and its < s_store
        if keep:
            P[its] = p
            if kd > 0:
                C[its] = c
        if not (pq > 0.0 and np.isfinite(pq)):
            status = BREAKDOWN
            break
        alpha = rz / pq
        if keep:
            alphas[its] = alpha
        if kd > 0:
            for j in range(k):
                cx[j] += alpha * c[j]
        rr, rz_new = _step_and_precondition(pctype, sptr, sind, sval, uptr, uind, uval, dinv, x, r, p, q, corr,
                                            alpha, z)
        its += 1
        rnorm = np.sqrt(rr)
        if its <= norms.shape[0]:  # a history shorter than maxiter (``history_length``)
            norms[its - 1] = rnorm
        if not np.isfinite(rnorm):
            status = BREAKDOWN
            break
        if kd > 0:
            np.dot(AW, z, t)
        if keep:
            stored = its
            rhos[its] = rz_new
            if kd > 0:
                T[its] = t
        if rnorm <= tol:
            status = CONVERGED
            break
        if restart and rnorm <= drop * start_norm and (frozen or stored >= s_store):
            frozen = True
            restarts += 1
            _product(indptr, indices, data, offs, D, x, q)
            for i in range(n):
                r[i] = b[i] - q[i]
            _galerkin(W, AW, Einv, x, r)
            rr, rz_new = _step_and_precondition(pctype, sptr, sind, sval, uptr, uind, uval, dinv, x, r, p, q, corr,
                                                0.0, z)
            start_norm = np.sqrt(rr)
            if start_norm <= tol:
                status = CONVERGED
                break
            beta = 0.0
            rz = rz_new
            continue
        if rz_new == 0.0:  # beta would divide by zero next time (numba raises ZeroDivisionError)
            status = RZ_ZERO
            break
        beta = rz_new / rz
        rz = rz_new
    if kd > 0:
        x -= np.dot(cx, W)
    return its, status, restarts, stored


@njit(cache=True, nogil=True)
def block_product(indptr, indices, data, X, Y):
    """Y[m] = A X[m] for the rows of X (k, n); returns X Y^T."""
    for m in range(X.shape[0]):
        csr_matvec(indptr, indices, data, X[m], Y[m])
    return np.dot(X, Y.T)


@njit(cache=True, nogil=True)
def block_product_dia(offs, D, X, Y):
    """``block_product`` by diagonals (``csr_to_dia``)."""
    for m in range(X.shape[0]):
        dia_matvec(offs, D, X[m], Y[m])
    return np.dot(X, Y.T)


@njit(cache=True, nogil=True)
def ic0_apply_rows(sptr, sind, sval, uptr, uind, uval, dinv, R, Z):
    """Z[m] = M^-1 R[m] for the rows of R (k, n), the k substitutions interleaved row by
    row so that their independent dependency chains overlap."""
    k, n = R.shape
    for i in range(n):
        for m in range(k):
            Z[m, i] = R[m, i]
        for a in range(sptr[i], sptr[i + 1]):
            j, v = sind[a], sval[a]
            for m in range(k):
                Z[m, i] -= v * Z[m, j]
    for i in range(n - 1, -1, -1):
        for m in range(k):
            Z[m, i] *= dinv[i]
        for a in range(uptr[i], uptr[i + 1]):
            j, v = uind[a], uval[a]
            for m in range(k):
                Z[m, i] -= v * Z[m, j]


class IC0:
    """IC(0) preconditioner of a CSR matrix, applied by the compiled kernels. ``IC0.build``
    returns None when a pivot is not positive (PETSc would shift; the caller then uses
    PETSc's PCICC itself)."""

    name = "ic0"
    symmetric = True

    def __init__(self, lptr, lind, ldata):
        self.lptr, self.lind, self.ldata = lptr, lind, ldata
        self.unit = ic0_unit_form(lptr, lind, ldata)  # (sptr, sind, sval, uptr, uind, uval, dinv)
        self.n = lptr.shape[0] - 1

    @classmethod
    def build(cls, indptr, indices, data):
        """From canonical CSR arrays (sorted indices, no duplicates)."""
        lptr, lind, ldata, bad = ic0_factor(indptr, indices, data)
        return None if bad >= 0 else cls(lptr, lind, ldata)

    def apply(self, r):
        z = np.empty(self.n)
        ic0_apply(*self.unit, np.ascontiguousarray(r, dtype=np.float64), z)
        return z

    def apply_rows(self, R):
        """M^-1 applied to every row of R (k, n)."""
        Z = np.empty_like(R)
        ic0_apply_rows(*self.unit, np.ascontiguousarray(R, dtype=np.float64), Z)
        return Z

    def lower(self):
        """The factor L (A ~ L L^T) as a SciPy CSR matrix, for checks and references."""
        import scipy.sparse as sp

        return sp.csr_matrix((self.ldata, self.lind, self.lptr), shape=(self.n, self.n))

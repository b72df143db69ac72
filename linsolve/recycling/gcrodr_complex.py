"""GCRO-DR in complex arithmetic: the NumPy path ``gcrodr`` takes for complex systems.

The compiled kernels of ``linsolve.recycling.gcrodr`` are real. Running GMRES-type methods on
the real form of a complex system minimises over a real Krylov space of half the dimension
and can stall where complex GMRES converges (measured on the absorbing Helmholtz variant of
datagen, 32^2 cells, k = 16: complex GMRES(40) 521 iterations, GCRO-DR on the real form not
converged after 20000), so complex systems run this method instead: the algorithm of the
real path (Parks, de Sturler, Mackey, Johnson, Maiti, SIAM J. Sci. Comput. 28(5), 2006)
with conjugate transposes in every inner product and projection, in plain NumPy/LAPACK
(column-major bases, modified Gram-Schmidt with one reorthogonalisation pass).

Notation as in the real path: B = A M^-1 (right) or M^-1 A (left preconditioning); the
recycled space is U (n x k) with C = B U, C^H C = I. A cycle runs m - k Arnoldi steps of
(I - C C^H) B, solves the small least-squares problem over span[U, V] and replaces U by the
k harmonic Ritz vectors of smallest (or largest) magnitude,
G^H G z = theta G^H (W^H V) z. The space is kept across solves and refitted (C = B U by
QR) when the matrix or preconditioner changes. Options as the real path (``restart``,
``recycle``, ``pc_side``, ``which``, ``update``, ``recycle_across``, ``callback_type``);
``orthog`` and ``update_every`` do not apply (modified Gram-Schmidt with a second pass, and
with ``update="cycle"`` a new space after every cycle). The recycled
space of complex solves is kept apart from that of real ones.
"""
from __future__ import annotations

import numpy as np
import scipy.linalg as sla

from linsolve.core.base import Outcome
from linsolve.recycling.gcrodr_rules import (
    NON_FINITE,
    cycle_budget,
    end_of_cycle,
    is_last_cycle,
    needs_refit,
    qr_rank,
    solve_info,
)
from linsolve.recycling.recycle_ops import build_pc, is_identity


def _pc(M, ident):
    """v -> M^-1 v for complex v (a real preconditioner is applied to both parts)."""
    if ident:
        return lambda v: v

    def apply(v):
        try:
            out = np.asarray(M.apply(v))
        except TypeError:  # a real factorisation (SuperLU) refuses complex input
            return np.asarray(M.apply(np.ascontiguousarray(v.real))) + 1j * np.asarray(
                M.apply(np.ascontiguousarray(v.imag)))
        if out.dtype.kind != "c" and np.iscomplexobj(v) and np.any(v.imag):
            return out + 1j * np.asarray(M.apply(np.ascontiguousarray(v.imag)))
        return out.astype(np.complex128, copy=False)

    return apply


def _harmonic_ritz(G, WV, k, which):
    """The k harmonic Ritz vectors (columns) of G^H G z = theta G^H WV z."""
    vals, vecs = sla.eig(G.conj().T @ G, G.conj().T @ WV)
    ok = np.flatnonzero(np.isfinite(vals))
    mag = np.abs(vals[ok])
    order = ok[np.argsort(mag if which == "smallest" else -mag, kind="stable")][:k]
    return vals[order], vecs[:, order]


def _orthonormalise(BU, U):
    """QR of B U: (C, U R^-1) with orthonormal C; directions B cannot tell apart dropped."""
    Q, R, piv = sla.qr(BU, mode="economic", pivoting=True)
    rank = qr_rank(R)
    if rank == 0:
        return None, None
    Q, R = Q[:, :rank], R[:rank, :rank]
    Up = U[:, piv[:rank]]
    return Q, sla.solve_triangular(R, Up.T, trans="T").T


def solve_complex(solver, op, b, x0, tol, maxiter, ctx):
    """One ``_solve`` of ``solver`` (a GCRODR) on a complex system."""
    opts = solver.opts
    m, k = int(opts["restart"]), int(opts["recycle"])
    right = opts["pc_side"] == "right"
    M = build_pc(solver, op)
    ident = is_identity(M)
    Minv = _pc(M, ident)

    def A(v):
        return np.asarray(op.matvec(v), dtype=np.complex128)

    def B(v):
        return A(Minv(v)) if right else Minv(A(v))

    to_x = Minv if (right and not ident) else (lambda v: v)
    st = solver.__dict__.setdefault("_complex_state", {})
    if not opts["recycle_across"] or (st.get("U") is not None and st["U"].shape[0] != b.shape[0]):
        st.clear()
    key = (op.source, M, opts["pc_side"])
    adapt_mv = 0
    if st.get("U") is not None and needs_refit(st.get("key"), op.source, M, opts["pc_side"]):
        U = st["U"]
        BU = np.column_stack([B(U[:, i]) for i in range(U.shape[1])])
        adapt_mv = U.shape[1]
        st["C"], st["U"] = _orthonormalise(BU, U) if np.all(np.isfinite(BU)) else (None, None)
    st["key"] = key

    x = np.array(x0, dtype=np.complex128)
    r = b - A(x) if np.any(x) else b.astype(np.complex128)
    rp = r if (right or ident) else Minv(r)
    rnorm = float(np.linalg.norm(r))
    bnorm = ctx.bnorm
    ctype = opts["callback_type"]
    per_step = ctx.callback if ctype != "x" else None
    max_cycles = cycle_budget(ctype, maxiter, m)
    norms: list[float] = []
    its = cycles = stalls = 0
    converged = rnorm <= tol
    reason = "converged" if converged else "maxiter reached"
    true_rnorm = None
    while not converged and its < maxiter and (max_cycles is None or cycles < max_cycles):
        cycles += 1
        C, U = st.get("C"), st.get("U")
        kc = 0 if C is None else C.shape[1]
        if kc:  # r orthogonal to C: the U-part of the correction is pending in x
            c = C.conj().T @ rp
            rp = rp - C @ c
            x = x + to_x(U @ c)
            if not (right or ident):
                r = b - A(x)
                rp = Minv(r)
        ratio = float(np.linalg.norm(rp)) / rnorm if not (right or ident) else 1.0
        beta = float(np.linalg.norm(rp))
        if not np.isfinite(beta) or beta == 0.0:
            reason = NON_FINITE if not np.isfinite(beta) else reason
            break
        steps = min(m - kc, maxiter - its)
        V = np.zeros((b.shape[0], steps + 1), dtype=np.complex128)
        H = np.zeros((steps + 1, steps), dtype=np.complex128)
        E = np.zeros((kc, steps), dtype=np.complex128)
        V[:, 0] = rp / beta
        g = np.zeros(steps + 1, dtype=np.complex128)
        g[0] = beta
        cs = np.zeros(steps, dtype=np.complex128)
        sn = np.zeros(steps, dtype=np.complex128)
        R = np.zeros((steps + 1, steps), dtype=np.complex128)
        p = 0
        breakdown = False
        for j in range(steps):
            w = B(V[:, j])
            if not np.all(np.isfinite(w)):
                breakdown = "non-finite"
                break
            h0 = np.linalg.norm(w)
            for _ in range(2):  # MGS against C and V, with one reorthogonalisation pass
                if kc:
                    e = C.conj().T @ w
                    w = w - C @ e
                    E[:, j] += e
                for i in range(j + 1):
                    hij = np.vdot(V[:, i], w)
                    H[i, j] += hij
                    w = w - hij * V[:, i]
            hn = np.linalg.norm(w)
            H[j + 1, j] = hn
            if hn > 1e-14 * h0:
                V[:, j + 1] = w / hn
            else:
                breakdown = True
            # Givens rotations on the Hessenberg part: the least-squares residual estimate
            col = H[:j + 2, j].copy()
            for i in range(j):
                t = cs[i] * col[i] + sn[i] * col[i + 1]
                col[i + 1] = -np.conj(sn[i]) * col[i] + np.conj(cs[i]) * col[i + 1]
                col[i] = t
            c_, s_, rr = _givens(col[j], col[j + 1])
            cs[j], sn[j] = c_, s_
            col[j], col[j + 1] = rr, 0.0
            R[:j + 2, j] = col
            g[j + 1] = -np.conj(s_) * g[j]
            g[j] = c_ * g[j]
            est = float(abs(g[j + 1]))
            norms.append(est)
            p = j + 1
            if per_step is not None:
                per_step(np.float64(est / bnorm))
            if est <= tol * ratio or breakdown:
                break
        its += p
        if p == 0:
            reason = NON_FINITE
            break
        y2 = sla.lstsq(H[:p + 1, :p], np.eye(p + 1, 1, dtype=np.complex128)[:, 0] * beta)[0]
        corr = V[:, :p] @ y2
        if kc:
            d = 1.0 / np.linalg.norm(U, axis=0)
            y1 = -(E[:, :p] @ y2)  # coefficients of U~ = U D: D^-1 y1 as coefficients of U
            corr = corr + U @ y1
        x = x + to_x(corr)
        if ctype == "x" and ctx.callback is not None:
            ctx.callback(x)
        r = b - A(x)
        new = float(np.linalg.norm(r))
        stalls, stop = end_of_cycle(new, rnorm, stalls, tol, breakdown)
        rnorm = new
        # update="cycle": a new space after every cycle; "solve": after the first cycle (no
        # space yet) and the last one, as the real path
        last = is_last_cycle(rnorm, tol, its, maxiter, breakdown)
        if k > 0 and breakdown != "non-finite" and (opts["update"] == "cycle" or kc == 0 or last):
            vals = _update(st, V, H, E, p, kc, k, opts["which"], d if kc else None)
            if vals is not None:
                solver.ritz_values = vals
        if stop is not None:
            reason, converged = stop, stop == "converged"
            if converged:
                true_rnorm = rnorm
            break
        rp = r if (right or ident) else Minv(r)
    U = st.get("U")
    info = solve_info(right, ident, 0 if U is None else U.shape[1], adapt_mv, opts["pc_side"], true_rnorm,
                      kernel="numpy (complex)")
    return Outcome(x, its, norms, converged, reason, info)


def _givens(a, b):
    """(c, s, r) with [c s; -conj(s) c] [a; b] = [r; 0], c real."""
    if b == 0:
        return 1.0, 0.0, a
    if a == 0:
        return 0.0, np.conj(b) / abs(b), abs(b)
    t = np.hypot(abs(a), abs(b))
    c = abs(a) / t
    s = (a / abs(a)) * np.conj(b) / t
    return c, s, (a / abs(a)) * t


def _update(st, V, H, E, p, kc, k, which, d):
    """Replace (U, C) by k harmonic Ritz vectors over span[U~, V_p] (U~ = U D); returns the
    harmonic Ritz values, or None where the space is kept."""
    C, U = st.get("C"), st.get("U")
    dim = kc + p
    G = np.zeros((dim + 1, dim), dtype=np.complex128)
    WV = np.zeros((dim + 1, dim), dtype=np.complex128)
    G[kc:, kc:] = H[:p + 1, :p]
    WV[np.arange(kc, dim), np.arange(kc, dim)] = 1.0
    if kc:
        Ut = U * d[None, :]
        G[np.arange(kc), np.arange(kc)] = d
        G[:kc, kc:] = E[:, :p]
        WV[:kc, :kc] = C.conj().T @ Ut
        WV[kc:, :kc] = V[:, :p + 1].conj().T @ Ut
        Vhat = np.hstack([Ut, V[:, :p]])
        What = np.hstack([C, V[:, :p + 1]])
    else:
        Vhat, What = V[:, :p], V[:, :p + 1]
    if not (np.all(np.isfinite(G)) and np.all(np.isfinite(WV))):
        return None
    try:
        vals, P = _harmonic_ritz(G, WV, min(k, dim), which)
    except (np.linalg.LinAlgError, ValueError):
        return None
    if P.shape[1] == 0:
        return None
    Q, Rq = np.linalg.qr(G @ P)
    dq = np.abs(np.diag(Rq))
    if dq.size == 0 or dq.min() <= 1e-12 * dq.max():
        return None
    st["C"] = What @ Q
    st["U"] = Vhat @ sla.solve_triangular(Rq, P.T, trans="T").T
    return vals

"""Orderings of a set of systems so that neighbours in the order are similar, the first
half of sorted Krylov recycling (SKR): a recycling solver carries its subspace from each
system to the next, so similar neighbours mean a useful subspace.

Methods (``order_systems(features, method)``):

- ``none``: the given order.
- ``greedy``: the SKR paper's: start at system ``start``, repeatedly append the nearest
  unvisited system in Frobenius (Euclidean) distance of the features. The distance matrix
  is built with GEMM when it fits in ``memory`` bytes; otherwise each step is one GEMV
  over the features, so memory stays O(N d) either way. O(N^2 d).
- ``fft`` (alias ``scalable``): for 10^5 systems and more. Low-frequency Fourier
  coefficients of each feature field (``fft_modes`` per axis), PCA to ``n_components``
  dimensions, a Hilbert space-filling-curve order of the leading ``curve_dims``
  components, then greedy ordering inside consecutive cells of ``cell_size`` systems of
  that order, each cell starting next to where the previous one ended. O(N log N) for the
  sort plus O(N cell_size n_components) for the refinement; features are streamed in
  chunks so the raw fields are never copied as a whole.

``path_length(features, order)`` is the total distance along an order, the quantity the
orderings try to make small.
"""
from __future__ import annotations

import math

import numpy as np

from linsolve.core.errors import OptionError, ShapeError
from linsolve.core.validation import check_int

METHODS = ("none", "greedy", "fft", "scalable")


def _check_dtype(X) -> None:
    if X.dtype == object or X.dtype.kind not in "fiub":
        raise ShapeError(f"features must be a numeric array, got dtype {X.dtype}")


def _asarray(features) -> np.ndarray:
    try:
        return np.asarray(features)
    except ValueError as exc:  # ragged rows: NumPy's own ValueError
        raise ShapeError(f"features must be one array of shape (N, ...), not ragged rows: {exc}") from exc


def _as_matrix(features) -> np.ndarray:
    X = _asarray(features)
    _check_dtype(X)
    if X.ndim == 0 or X.shape[0] == 0:
        raise ShapeError("features must hold at least one system (shape (N, ...))")
    X = X.reshape(X.shape[0], -1)
    if not np.all(np.isfinite(X)):
        raise ShapeError("features contain NaN or Inf")
    return X


def path_length(features, order=None) -> float:
    """Sum of Euclidean distances between consecutive systems in ``order``."""
    X = _as_matrix(features)
    order = np.arange(X.shape[0]) if order is None else _check_perm(order, X.shape[0])
    total = 0.0
    e = int(np.frexp(float(np.max(np.abs(X), initial=0.0)))[1])
    step = max(1, (1 << 24) // max(X.shape[1], 1))
    for s in range(0, len(order) - 1, step):
        a = np.ldexp(X[order[s:s + step]].astype(np.float64), -e)
        b = np.ldexp(X[order[s + 1:s + 1 + step]].astype(np.float64), -e)
        m = min(len(a), len(b))
        total += float(np.sum(np.linalg.norm(a[:m] - b[:m], axis=1)))
    return math.ldexp(total, e)


def _pow2_scaled(X: np.ndarray, inplace: bool = False) -> np.ndarray:
    """X times the power of two that brings its largest entry to [0.5, 1): squares of
    features near 1e300 overflowed (greedy returned -1s, path_length inf) and near 1e-300
    underflowed to ties; a power of two leaves every comparison of ordinary data exact.
    ``inplace``: scale X itself (a float array) instead of a copy, with the same values."""
    # max |X| from the extremes: no |X| temporary, the same value (NaN propagates as before)
    top = max(float(X.max(initial=0.0)), -float(X.min(initial=0.0)))
    if np.isnan(top) or not top > 0:
        return X
    e = int(np.frexp(top)[1])
    out = X if inplace else None
    if -1022 <= -e <= 1023:
        # a product with a normal power of two is exact, and rounded as ldexp rounds where it
        # is subnormal: np.ldexp(X, -e)'s values, in one pass that can write in place
        return np.multiply(X, math.ldexp(1.0, -e), out=out)
    return np.ldexp(X, -e, out=out)


def _check_perm(order, n) -> np.ndarray:
    order = np.asarray(order)
    if order.shape != (n,) or order.dtype.kind not in "iu" or not np.array_equal(np.sort(order), np.arange(n)):
        raise ShapeError(f"order must be a permutation of 0..{n - 1}")
    return order.astype(np.intp)


def order_systems(features, method: str = "greedy", *, start: int = 0, memory: int = 1 << 28,
                  fft_modes: int = 8, n_components: int = 16, curve_dims: int = 4,
                  cell_size: int = 64, seed: int = 0) -> np.ndarray:
    """A permutation of the N systems described by ``features`` (shape (N, ...): one
    feature array per system, e.g. the coefficient field). See the module docstring for
    the methods; unknown names raise ``OptionError`` listing the known ones.

    Parameters
    ----------
    features : array_like, shape (N, ...)
        One feature array per system; neighbours in feature space become neighbours in the order.
    method : {"greedy", "fft", "scalable", "none"}, optional
        ``greedy``: the SKR paper's nearest-neighbour chain (memory bounded by ``memory`` bytes);
        ``fft`` (alias ``scalable``): low-frequency FFT features, PCA, Hilbert-curve order and
        greedy refinement within cells of ``cell_size``, O(N log N); ``none``: as given.
    start : int, optional
        The system the order starts from.
    memory, fft_modes, n_components, curve_dims, cell_size : int, optional
        Tuning of the greedy and FFT methods.
    seed : int or None, optional
        Seed of the FFT method's randomised PCA.

    Returns
    -------
    ndarray of int, shape (N,)
        The solve order: ``order[0]`` is solved first.

    Raises
    ------
    OptionError
        An unknown method or a bad tuning value.
    ShapeError
        No systems, or features that are not numeric.

    References
    ----------
    .. [1] H. Wang et al., "Accelerating Data Generation for Neural Operators via Krylov Subspace
       Recycling", ICLR 2024 (the greedy order).

    Examples
    --------
    >>> import numpy as np, linsolve
    >>> features = np.array([[0.0], [3.0], [1.0], [2.0]])
    >>> linsolve.order_systems(features, "greedy").tolist()
    [0, 2, 3, 1]
    """
    if not isinstance(method, str) or method.lower() not in METHODS:
        raise OptionError(f"unknown ordering method {method!r}; known: {', '.join(METHODS)}")
    method = method.lower()
    F = _asarray(features)
    N = F.shape[0] if F.ndim else 0
    if N == 0:
        raise ShapeError("features must hold at least one system (shape (N, ...))")
    # start indexes a system: True, 1.5 and "1" are not indices
    start = check_int("start", start, 0, N - 1)
    # a size below 1 would leave entries of the order unset
    for name, value in (("fft_modes", fft_modes), ("n_components", n_components), ("cell_size", cell_size)):
        check_int(name, value, 1)
    check_int("curve_dims", curve_dims, 1, 63)  # the 64-bit Hilbert key needs a bit per dimension
    check_int("seed", seed, 0, allow_none=True)
    if method == "none":
        _as_matrix(F[:1])
        return np.arange(N)
    if method == "greedy":
        return greedy_order(_as_matrix(F), start=start, memory=memory)
    return fft_order(F, start=start, fft_modes=fft_modes, n_components=n_components,
                     curve_dims=curve_dims, cell_size=cell_size, seed=seed)


def greedy_order(X: np.ndarray, start: int = 0, memory: int = 1 << 28) -> np.ndarray:
    """Nearest-unvisited-neighbour path from ``start`` (the SKR paper's sorting); ties go
    to the lowest index."""
    N = X.shape[0]
    X = np.asarray(X, dtype=np.float64).reshape(N, -1)
    # Distances do not change under a shift; centring keeps |x|^2 at the spread of the
    # features, so |x|^2 - 2 x.y + |y|^2 does not cancel the gaps away (features offset by
    # 10^6 with gaps of 10^-3 would be ordered by rounding noise).
    X = X - X.mean(axis=0)
    X = _pow2_scaled(X, inplace=True)  # X is this function's own copy
    sq = np.einsum("ij,ij->i", X, X)
    # Rounding bound of the expanded form; every system within it of the smallest value is
    # measured again directly, so the choice is the true nearest one (the gold walk's).
    slack = 8.0 * (X.shape[1] + 2) * np.finfo(np.float64).eps * (sq + float(sq.max(initial=0.0)))
    order = np.empty(N, dtype=np.intp)
    order[0] = cur = start

    def nearest(row, cur):
        cand = np.flatnonzero(row <= row.min() + slack[cur])
        if cand.size == 1:
            return int(cand[0])
        best, best_d = -1, np.inf
        step = max(1, (1 << 22) // max(X.shape[1], 1))
        for s in range(0, cand.size, step):
            c = cand[s:s + step]
            diff = X[c] - X[cur]
            d = np.einsum("ij,ij->i", diff, diff)
            j = int(np.argmin(d))
            if d[j] < best_d:
                best, best_d = int(c[j]), d[j]
        return best

    if N * N * 8 <= memory:
        # All squared distances at once through GEMM (BLAS-3), then an O(N) argmin per step;
        # visited systems are masked by setting their column to +inf.
        # in place: the expression form held three N x N temporaries, twice ``memory``
        D = X @ X.T
        D *= -2.0
        D += sq[:, None]
        D += sq[None, :]
        D[:, cur] = np.inf
        for i in range(1, N):
            cur = nearest(D[cur], cur)
            order[i] = cur
            D[:, cur] = np.inf
        return order
    dist = np.empty(N)
    visited = np.zeros(N, dtype=bool)
    visited[cur] = True
    for i in range(1, N):
        np.subtract(sq, 2.0 * (X @ X[cur]), out=dist)
        dist += sq[cur]
        dist[visited] = np.inf
        cur = nearest(dist, cur)
        order[i] = cur
        visited[cur] = True
    return order


def fourier_features(F, fft_modes: int = 8, chunk: int = 2048) -> np.ndarray:
    """Real and imaginary parts of the lowest ``fft_modes`` Fourier modes per axis of each
    system's field (fields of shape (N, *grid)); 1-D feature vectors are used as given."""
    F = _asarray(F)
    _check_dtype(F)  # complex fields lost their imaginary part below (a ComplexWarning only)
    if F.ndim <= 2:
        X = _as_matrix(F).astype(np.float64)
        return _pow2_scaled(X - X.mean(axis=0), inplace=True).astype(np.float32)
    axes = tuple(range(1, F.ndim))
    shape = F.shape[1:]
    sel = []
    for ax, size in enumerate(shape):
        m = min(fft_modes, size // 2 if ax < len(shape) - 1 else size // 2 + 1)
        if ax < len(shape) - 1:
            sel.append(np.r_[0:m, size - m + 1:size] if m > 1 else np.r_[0:1])
        else:
            sel.append(np.r_[0:m])
    # The features are kept in float32: the mean field is taken out first (an offset of 10^6
    # would leave nothing of variations of 10^-3) and a power of two brings the largest value near
    # 1 (fields near 1e300 would become inf, near 1e-300 zeros). One streamed pass finds both.
    mean = np.zeros(shape)
    top = 0.0
    for s in range(0, F.shape[0], chunk):
        block = np.asarray(F[s:s + chunk], dtype=np.float64)
        if not np.all(np.isfinite(block)):
            raise ShapeError("features contain NaN or Inf")
        mean += block.sum(axis=0) / F.shape[0]
        top = max(top, float(np.max(np.abs(block))))
    e = int(np.frexp(top)[1])
    out = []
    for s in range(0, F.shape[0], chunk):
        block = np.ldexp(np.asarray(F[s:s + chunk], dtype=np.float64) - mean, -e)
        spec = np.fft.rfftn(block, axes=axes, norm="ortho")
        spec = spec[(slice(None),) + np.ix_(*sel)].reshape(block.shape[0], -1)
        out.append(np.concatenate([spec.real, spec.imag], axis=1).astype(np.float32))
    return np.concatenate(out)


def pca(X: np.ndarray, n_components: int, chunk: int = 65536) -> np.ndarray:
    """Scores on the leading principal components (covariance accumulated in chunks)."""
    mean = X.mean(axis=0, dtype=np.float64)
    d = X.shape[1]
    cov = np.zeros((d, d))
    for s in range(0, X.shape[0], chunk):
        B = X[s:s + chunk].astype(np.float64) - mean
        cov += B.T @ B
    w, V = np.linalg.eigh(cov)
    V = V[:, ::-1][:, :min(n_components, d)]
    return np.concatenate([(X[s:s + chunk].astype(np.float64) - mean) @ V
                           for s in range(0, X.shape[0], chunk)])


def hilbert_index(coords: np.ndarray, bits: int) -> np.ndarray:
    """Position along the d-dimensional Hilbert curve of integer points in [0, 2^bits)^d
    (Skilling's transpose algorithm, AIP Conf. Proc. 707, 2004, vectorised over points)."""
    X = np.array(coords, dtype=np.uint64)
    N, d = X.shape
    if d * bits > 64:
        raise OptionError(f"Hilbert index of {d} dims x {bits} bits does not fit in 64 bits")
    one = np.uint64(1)
    Q = 1 << (bits - 1)
    while Q > 1:
        P = np.uint64(Q - 1)
        q = np.uint64(Q)
        for i in range(d):
            hit = (X[:, i] & q) != 0
            X[hit, 0] ^= P
            miss = ~hit
            t = (X[miss, 0] ^ X[miss, i]) & P
            X[miss, 0] ^= t
            X[miss, i] ^= t
        Q >>= 1
    for i in range(1, d):
        X[:, i] ^= X[:, i - 1]
    t = np.zeros(N, dtype=np.uint64)
    Q = 1 << (bits - 1)
    while Q > 1:
        hit = (X[:, d - 1] & np.uint64(Q)) != 0
        t[hit] ^= np.uint64(Q - 1)
        Q >>= 1
    X ^= t[:, None]
    h = np.zeros(N, dtype=np.uint64)
    for b in range(bits - 1, -1, -1):
        for i in range(d):
            h = (h << one) | ((X[:, i] >> np.uint64(b)) & one)
    return h


def fft_order(F, start: int = 0, fft_modes: int = 8, n_components: int = 16, curve_dims: int = 4,
              cell_size: int = 64, seed: int = 0) -> np.ndarray:
    """The scalable ordering (see the module docstring). ``seed`` breaks ties only."""
    feats = fourier_features(F, fft_modes)
    N = feats.shape[0]
    Y = pca(feats, n_components)
    c = min(curve_dims, Y.shape[1])
    bits = min(16, 63 // max(c, 1))
    lead = Y[:, :c]
    lo, span = lead.min(axis=0), float(np.ptp(lead, axis=0).max()) or 1.0
    # One scale for every axis keeps the curve's notion of closeness Euclidean.
    q = np.floor((lead - lo) / span * ((1 << bits) - 1)).astype(np.int64)
    key = hilbert_index(q, bits)
    tie = np.random.default_rng(seed).permutation(N)
    coarse = np.lexsort((tie, key))
    # Start the curve walk at the requested system by rotating the cyclic order.
    pos = int(np.flatnonzero(coarse == start)[0])
    coarse = np.concatenate([coarse[pos:], coarse[:pos]])
    order = np.empty(N, dtype=np.intp)
    prev = None
    for s in range(0, N, cell_size):
        cell = coarse[s:s + cell_size]
        Z = Y[cell]
        first = 0 if prev is None else int(np.argmin(np.sum((Z - prev) ** 2, axis=1)))
        local = greedy_order(Z, start=first)
        order[s:s + len(cell)] = cell[local]
        prev = Z[local[-1]]
    return order

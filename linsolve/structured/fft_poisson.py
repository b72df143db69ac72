"""Fast direct solver for Poisson matrices on tensor-product grids: FFT in the periodic
directions, one tridiagonal solve per wavenumber in the remaining direction.

This is the standard pressure solver of channel-flow codes (Kim, Moin & Moser 1987;
Orlandi 2000, ch. 4): the second-order Laplacian on a grid periodic in x (and z) and
stretched in y is diagonalised by the discrete Fourier transform in x and z (eigenvalues
are the *modified* wavenumbers (2 - 2 cos(k h)) / h^2, so the discrete divergence is
removed exactly, not only to truncation error), leaving an independent symmetric
tridiagonal system in y for every wavenumber pair. Cost O(N log N), no iterations.

The matrix handed to the solver must be the one ``TensorPoisson.matrix()`` assembles;
the structure travels as ``LinearSystem.meta["tensor_poisson"]`` or as the ``structure``
option, and the solver checks on the first solve with each matrix that the two agree
(one product with a random vector), so a generic matrix gives a clear error instead of
a wrong answer.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from linsolve.core.base import Outcome, Solver
from linsolve.core.errors import OptionError, ShapeError, UnsupportedInputError
from linsolve.core.registry import register
from linsolve.structured.tridiag import thomas_factor


def _periodic_eigs(n: int, h: float, last: bool) -> np.ndarray:
    # Eigenvalues of the periodic second difference -(x[i+1] - 2x[i] + x[i-1]) / h^2 for the
    # FFT layout used: full fft on leading periodic axes, rfft (n//2 + 1 modes) on the last.
    m = np.arange(n // 2 + 1) if last else np.arange(n)
    return (2.0 - 2.0 * np.cos(2.0 * np.pi * m / n)) / h**2


class TensorPoisson:
    """The SPD matrix ``A = scale * (diag(mass) (x) K_p + T (x) I)`` with one optional pin.

    Axis 0 (length ``ny``) is the non-periodic direction with symmetric tridiagonal ``T``
    (``t_diag`` length ny, ``t_off`` length ny-1) and positive ``mass`` (cell widths);
    the trailing axes are periodic with uniform spacings ``periodic_spacing`` and
    ``K_p`` = the sum of their negated second differences. Unknowns are in C order of
    ``shape = (ny, *periodic_shape)``. ``T`` may be singular (pure Neumann): then ``A`` is
    singular with the constant null vector, and ``pin`` (default 0) turns it into an SPD
    matrix by replacing row and column ``pin`` with ``pin_value`` on the diagonal; use
    ``pin=None`` for a nonsingular ``T``.
    """

    def __init__(self, mass, t_diag, t_off, periodic_shape, periodic_spacing, scale=1.0,
                 pin: int | None = 0, pin_value: float | None = None):
        self.mass = np.asarray(mass, dtype=np.float64)
        self.t_diag = np.asarray(t_diag, dtype=np.float64)
        self.t_off = np.asarray(t_off, dtype=np.float64)
        ny = self.mass.size
        if self.t_diag.shape != (ny,) or self.t_off.shape != (ny - 1,):
            raise ShapeError(f"TensorPoisson: t_diag must have length {ny} and t_off {ny - 1}")
        if np.any(self.mass <= 0):
            raise OptionError("TensorPoisson: mass (cell widths) must be positive")
        self.periodic_shape = tuple(int(s) for s in periodic_shape)
        self.periodic_spacing = tuple(float(h) for h in periodic_spacing)
        if len(self.periodic_shape) != len(self.periodic_spacing) or not self.periodic_shape:
            raise ShapeError("TensorPoisson needs at least one periodic axis, with one spacing each")
        self.shape = (ny, *self.periodic_shape)
        self.n = int(np.prod(self.shape))
        self.scale = float(scale)
        self.pin = pin
        self.singular = abs(self.t_diag.sum() + 2 * self.t_off.sum()) <= 1e-12 * np.abs(self.t_diag).sum()
        if pin is not None:
            if not 0 <= int(pin) < self.n:
                raise ShapeError(f"TensorPoisson: pin {pin} is outside 0..{self.n - 1}")
            j = int(pin) // int(np.prod(self.periodic_shape))  # the pinned cell's row in y
            # default: the diagonal entry the pinned row had, so conditioning is unchanged
            self.pin_value = float(pin_value) if pin_value is not None else float(
                self.scale * (self.t_diag[j] + self.mass[j] * sum(2 / h**2 for h in self.periodic_spacing)))
        self._factors: dict = {}

    # --- assembly -----------------------------------------------------------------
    def matrix(self) -> sp.csr_matrix:
        """The sparse matrix this structure describes (for iterative or generic solvers)."""
        ny = self.shape[0]
        T = sp.diags([self.t_off, self.t_diag, self.t_off], [-1, 0, 1], shape=(ny, ny))
        Kp = None
        for ax, (n, h) in enumerate(zip(self.periodic_shape, self.periodic_spacing, strict=False)):
            K1 = sp.diags([2.0 * np.ones(n), -np.ones(n - 1), -np.ones(n - 1)], [0, -1, 1], format="lil")
            K1[0, n - 1] -= 1.0
            K1[n - 1, 0] -= 1.0
            K1 = K1.tocsr() / h**2
            left = sp.identity(int(np.prod(self.periodic_shape[:ax])))
            right = sp.identity(int(np.prod(self.periodic_shape[ax + 1:])))
            term = sp.kron(sp.kron(left, K1), right)
            Kp = term if Kp is None else Kp + term
        Ip = sp.identity(int(np.prod(self.periodic_shape)))
        A = (self.scale * (sp.kron(sp.diags(self.mass), Kp) + sp.kron(T, Ip))).tocsr()
        if self.pin is not None:
            A = A.tolil()
            A[self.pin, :] = 0.0
            A[:, self.pin] = 0.0
            A[self.pin, self.pin] = self.pin_value
            A = A.tocsr()
        A.eliminate_zeros()
        A.sort_indices()
        return A

    def matvec(self, x: np.ndarray) -> np.ndarray:
        """Apply A matrix-free (used to check that a given matrix has this structure)."""
        g = np.asarray(x, dtype=np.float64).reshape(self.shape)
        if self.pin is not None:
            g = g.copy()
            pinned = g.flat[self.pin]
            g.flat[self.pin] = 0.0
        out = self.t_diag[:, None] * g.reshape(self.shape[0], -1)
        out[1:] += self.t_off[:, None] * g.reshape(self.shape[0], -1)[:-1]
        out[:-1] += self.t_off[:, None] * g.reshape(self.shape[0], -1)[1:]
        out = out.reshape(self.shape)
        mg = self.mass.reshape((-1,) + (1,) * len(self.periodic_shape)) * g
        for ax, h in enumerate(self.periodic_spacing, start=1):
            out += (2 * mg - np.roll(mg, 1, axis=ax) - np.roll(mg, -1, axis=ax)) / h**2
        out = self.scale * out.reshape(-1)
        if self.pin is not None:
            out[self.pin] = self.pin_value * pinned
        return out

    # --- the fast solve ---------------------------------------------------------------
    def _factor(self, xp_name: str, device=None):
        """Thomas-algorithm factors per wavenumber: (lower, 1/pivot, upper) as arrays
        broadcasting over the transformed periodic axes."""
        key = (xp_name, str(device))
        if key in self._factors:
            return self._factors[key]
        lam = None
        nper = len(self.periodic_shape)
        for ax, (n, h) in enumerate(zip(self.periodic_shape, self.periodic_spacing, strict=False)):
            e = _periodic_eigs(n, h, last=(ax == nper - 1))
            e = e.reshape((1,) * ax + (-1,) + (1,) * (nper - ax - 1))
            lam = e if lam is None else lam + e
        ny = self.shape[0]
        diag = self.t_diag.reshape((ny,) + (1,) * nper) + self.mass.reshape((ny,) + (1,) * nper) * lam[None]
        diag = np.broadcast_to(diag, (ny,) + lam.shape).copy()
        lower = np.zeros(ny)
        lower[1:] = self.t_off
        upper = np.zeros(ny)
        upper[:-1] = self.t_off
        upper = np.broadcast_to(upper.reshape((ny,) + (1,) * nper), diag.shape).copy()
        zero_mode = (0,) * nper
        if self.singular:
            # The (0, 0) wavenumber carries the constant null vector; fix its gauge by
            # replacing the first equation with p_0 = 0 (the rest stay consistent).
            diag[(0,) + zero_mode] = 1.0
            upper[(0,) + zero_mode] = 0.0
        inv, cp = thomas_factor(lower.reshape((ny,) + (1,) * nper), diag, upper)
        lower_b = lower.reshape((ny,) + (1,) * nper)
        if xp_name == "torch":
            import torch

            f = tuple(torch.as_tensor(a, dtype=torch.float64, device=device) for a in (lower_b, inv, cp))
        else:
            f = (lower_b, inv, cp)
        self._factors[key] = f
        return f

    def solve_grid(self, rhs, xp=np):
        """Solve ``A p = rhs`` with rhs (and the result) shaped ``self.shape``; ``xp`` is
        numpy or torch (the same algorithm runs on a GPU)."""
        torch_mode = xp is not np
        nper = len(self.periodic_shape)
        axes = tuple(range(1, nper + 1))
        if torch_mode:
            rhs = rhs.to(dtype=xp.float64)
            device = rhs.device
        else:
            rhs = np.asarray(rhs, dtype=np.float64).reshape(self.shape)
            device = None
        b = rhs.clone() if torch_mode else rhs.copy()
        if self.pin is not None:
            # Pinned system == singular system with b'_pin = -(sum of the other entries),
            # shifted so that p_pin = 0, then p_pin = b_pin / pin_value.
            flat = b.reshape(-1)
            b_pin = flat[self.pin].clone() if torch_mode else flat[self.pin].copy()
            flat[self.pin] = 0.0
            flat[self.pin] = -flat.sum()
        b = b / self.scale
        lower, inv, cp = self._factor("torch" if torch_mode else "numpy", device)
        if torch_mode:
            bh = xp.fft.rfftn(b, dim=axes)
        else:
            import scipy.fft as sfft

            bh = sfft.rfftn(b, axes=axes)
        if self.singular:
            bh[(0,) + (0,) * nper] = 0.0
        ny = self.shape[0]
        kernel = None if torch_mode else _thomas_kernel()
        if kernel is not None:
            kernel(lower.reshape(-1), inv.reshape(ny, -1), cp.reshape(ny, -1), bh.reshape(ny, -1))
        else:
            bh[0] = bh[0] * inv[0]
            for j in range(1, ny):
                bh[j] = (bh[j] - lower[j] * bh[j - 1]) * inv[j]
            for j in range(ny - 2, -1, -1):
                bh[j] = bh[j] - cp[j] * bh[j + 1]
        if torch_mode:
            p = xp.fft.irfftn(bh, s=self.periodic_shape, dim=axes)
        else:
            p = sfft.irfftn(bh, s=self.periodic_shape, axes=axes)
        if self.pin is not None:
            flat = p.reshape(-1)
            p = (p - flat[self.pin]).reshape(self.shape)
            p.reshape(-1)[self.pin] = b_pin / self.pin_value
        elif self.singular:
            p = p - p.mean()
        return p


class DirichletBox:
    """``scale`` times the standard (2d+1)-point Dirichlet Laplacian on a box grid (all
    cells unknown, spacings from ``Grid``), solved with the type-I sine transform."""

    def __init__(self, shape, spacing, scale=1.0):
        self.shape = tuple(int(s) for s in shape)
        self.spacing = tuple(float(h) for h in spacing)
        self.n = int(np.prod(self.shape))
        self.scale = float(scale)

    def unscaled_matvec(self, x):
        g = np.asarray(x, dtype=np.float64).reshape(self.shape)
        out = np.zeros_like(g)
        for ax, h in enumerate(self.spacing):
            pad = np.pad(g, [(1, 1) if a == ax else (0, 0) for a in range(g.ndim)])
            lo = np.take(pad, np.arange(0, g.shape[ax]), axis=ax)
            hi = np.take(pad, np.arange(2, g.shape[ax] + 2), axis=ax)
            out += (2 * g - lo - hi) / h**2
        return out.reshape(-1)

    def matvec(self, x):
        return self.scale * self.unscaled_matvec(x)

    def solve_grid(self, b):
        import scipy.fft as sfft

        lam = 0.0
        for ax, (n, h) in enumerate(zip(self.shape, self.spacing, strict=False)):
            e = (2.0 - 2.0 * np.cos(np.pi * np.arange(1, n + 1) / (n + 1))) / h**2
            lam = lam + e.reshape([-1 if a == ax else 1 for a in range(len(self.shape))])
        bh = sfft.dstn(np.asarray(b, dtype=np.float64).reshape(self.shape), type=1)
        return sfft.idstn(bh / (self.scale * lam), type=1)


_THOMAS = None


def _thomas_kernel():
    """Numba loop for the per-wavenumber Thomas sweeps (NumPy path); None without numba,
    in which case the same sweeps run as whole-array NumPy operations."""
    global _THOMAS
    if _THOMAS is None:
        try:
            import numba
        except ImportError:  # pragma: no cover
            _THOMAS = False
            return None

        @numba.njit(cache=True)
        def sweep(lower, inv, cp, d):
            n, m = d.shape
            for c in range(m):
                d[0, c] *= inv[0, c]
            for j in range(1, n):
                lj = lower[j]
                for c in range(m):
                    d[j, c] = (d[j, c] - lj * d[j - 1, c]) * inv[j, c]
            for j in range(n - 2, -1, -1):
                for c in range(m):
                    d[j, c] -= cp[j, c] * d[j + 1, c]

        _THOMAS = sweep
    return _THOMAS or None


def _structure_of(solver, op, ctx):
    s = solver.opts.get("structure") or (ctx.meta or {}).get("tensor_poisson")
    if s is None and ctx.grid is not None and ctx.grid.unknowns is None and ctx.grid.n_unknowns == op.n:
        # No periodic structure given: the grid's Dirichlet Laplacian, up to a scalar
        # factor that is read off one product (the gallery scales its stencil by h^2).
        box = DirichletBox(ctx.grid.shape, ctx.grid.spacing)
        z = np.random.default_rng(0).standard_normal(op.n)
        k, a = box.unscaled_matvec(z), op.matvec(z)
        box.scale = float(a @ k / (k @ k))
        if box.scale > 0 and np.linalg.norm(a - box.scale * k) <= 1e-10 * np.linalg.norm(a):
            return box
        raise UnsupportedInputError(
            "fft-poisson: the matrix is neither a scaled Dirichlet Laplacian on the given grid nor "
            "described by a TensorPoisson structure (meta['tensor_poisson'] or structure=...); "
            "use an iterative or sparse direct solver"
        )
    if s is None:
        raise UnsupportedInputError(
            "solver 'fft-poisson' needs the tensor-product structure of the Poisson matrix: pass a "
            "LinearSystem whose meta['tensor_poisson'] is a linsolve.structured.fft_poisson.TensorPoisson "
            "(or make_solver('fft-poisson', structure=...)), or a Grid for a Dirichlet Laplacian; "
            "it cannot solve a generic matrix"
        )
    if not isinstance(s, TensorPoisson):
        raise OptionError(f"fft-poisson structure must be a TensorPoisson, got {type(s).__name__}")
    return s


@register("fft-poisson")
class FFTPoisson(Solver):
    """Direct FFT + tridiagonal solver for the tensor-product Poisson matrices of
    ``TensorPoisson`` (channel-flow pressure equations: periodic x, z; stretched y), and
    sine-transform solver for a (scaled) Dirichlet Laplacian on a ``Grid`` box. Exact to
    round-off in one pass; ``iterations`` is 1. Needs a ``Grid`` (and, for the periodic
    case, the structure); raises ``UnsupportedInputError`` for a matrix without that
    structure (checked once per matrix object with a random product)."""

    supports = frozenset({"spd"})
    needs_assembled = False
    needs_grid = True
    direct = True
    options = {"structure": None, "check": True}

    def _validate_options(self):
        s = self.opts["structure"]
        if s is not None and not isinstance(s, TensorPoisson):
            raise OptionError(f"fft-poisson option structure must be a TensorPoisson, got {type(s).__name__}")
        self._checked: tuple | None = None

    def _reset(self):
        self._checked = None

    def _distributed_what(self):
        return "its transforms need the whole grid in one process"

    def _solve(self, op, b, x0, tol, maxiter, ctx):
        s = _structure_of(self, op, ctx)
        if isinstance(s, DirichletBox):
            x = s.solve_grid(b).reshape(-1)
            return Outcome(x, 1, [], True, "direct solve (fft-poisson, sine transform)", {})
        if op.n != s.n:
            raise ShapeError(f"fft-poisson: the matrix has {op.n} rows but the structure describes {s.n}")
        if self.opts["check"] and (self._checked is None or self._checked[0] is not op.source
                                   or self._checked[1] is not s):
            z = np.random.default_rng(0).standard_normal(s.n)
            ref = s.matvec(z)
            got = op.matvec(z)
            if np.linalg.norm(got - ref) > 1e-10 * np.linalg.norm(ref):
                raise UnsupportedInputError(
                    "fft-poisson: the matrix is not the tensor-product Poisson matrix its structure "
                    "describes (a random product differs); use an iterative or sparse direct solver"
                )
            self._checked = (op.source, s)
        x = s.solve_grid(b).reshape(-1)
        # no iteration history: the base class computes the true residual once
        return Outcome(x, 1, [], True, "direct solve (fft-poisson)", {})

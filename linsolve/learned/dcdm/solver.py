"""DCDM, the deep conjugate direction method (Kaneda et al., ICML 2023).

Each step feeds the normalised residual, laid out on the system's grid, to a network
f (trained to approximate A^-1 r), A-orthogonalises the output against the last
``n_orth`` directions and takes the exact line-search step alpha = p^T r / p^T A p.
With f = identity and n_orth >= 1 this is CG; with f = A^-1 it converges in one step.

The network never decides convergence: a direction that is degenerate (non-finite, zero,
p^T A p <= 0, or orthogonal to the residual so it gives no descent) is replaced by the
residual direction (A-orthogonalised the same way) for that step, and
``info["fallback_steps"]`` counts those steps by reason. A nonlinear network with
truncated orthogonalisation can also stall without being degenerate: its direction keeps
pointing along what the last steps already removed. ``safeguard`` therefore also treats
as "no descent" a network step that lowers the A-norm of the error by less than
``safeguard`` times what the residual direction would (one extra product with A per
step); then the worst case is conjugate-gradient-like progress. ``safeguard=0`` gives the
paper's method with only the degenerate fallbacks. The default (None) is 1.0 for a
nonlinear network and 0 for one that declares itself linear and SPD in the residual
(``linear_spd = True``, as ``mg-cycle`` does): then DCDM is PCG, which minimises the
A-norm of the error over the whole Krylov space, and a greedy per-step comparison with
the residual direction would only break its conjugacy (measured: 46 instead of 10
iterations at 64^3).

Geometry: with ``Grid.cell_type`` given, cells that carry an unknown are fluid, AIR cells
are Dirichlet neighbours, everything else (and everything beyond the grid) is a wall.
Without cell types (plain Dirichlet matrices such as the gallery's), all grid cells are
fluid and the grid is framed by a layer of AIR, the Dirichlet exterior.
"""
from __future__ import annotations

import math
import os

import numpy as np

from linsolve.core.base import Outcome, Solver
from linsolve.core.errors import OptionError, ShapeError
from linsolve.core.registry import register
from linsolve.core.system import AIR, FLUID, SOLID


def _check_device(name: str) -> None:
    """An OptionError at construction for a device torch cannot use: the first solve raised
    torch's RuntimeError (unknown name) or AssertionError (CUDA missing) from deep inside."""
    try:
        import torch
    except ImportError:  # reported where the network is built
        return
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise OptionError(f"device {name!r} is not a torch device name (e.g. 'cpu', 'cuda', 'cuda:1'): {exc}") from None
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise OptionError(f"device {name!r}: CUDA is not available to this PyTorch "
                              f"({torch.__version__}); use device='cpu'")
        if dev.index is not None and dev.index >= count:
            raise OptionError(f"device {name!r}: this machine has {count} CUDA device(s)")


class _GridMap:
    """Scatter unknown vectors onto the network's grid and gather them back."""

    def __init__(self, grid, n: int):
        if grid.n_unknowns != n:
            raise ShapeError(f"grid carries {grid.n_unknowns} unknowns but A is {n} x {n}")
        shape = grid.shape
        size = int(np.prod(shape))
        unknowns = np.arange(size) if grid.unknowns is None else grid.unknowns
        if grid.unknowns is not None:
            # NumPy would wrap a negative index and fail with an IndexError on a large one;
            # a repeated cell would feed the network one value for two unknowns
            if unknowns.size and (unknowns.min() < 0 or unknowns.max() >= size):
                raise ShapeError(f"grid.unknowns must be flat cell indices in [0, {size}) for grid {shape}, "
                                 f"got values from {unknowns.min()} to {unknowns.max()}")
        fluid = np.zeros(size, dtype=bool)
        fluid[unknowns] = True
        if grid.unknowns is not None and np.count_nonzero(fluid) != unknowns.size:
            raise ShapeError("grid.unknowns lists a cell more than once")
        if grid.cell_type is not None:
            ct = np.asarray(grid.cell_type).reshape(-1)
            bad = ~np.isin(ct, (FLUID, SOLID, AIR))
            if bad.any():
                # an unknown code would silently become a wall (a Neumann boundary the matrix may not have)
                raise ShapeError(f"grid.cell_type holds {np.unique(ct[bad])[:5].tolist()}; "
                                 f"the cell types are FLUID={FLUID}, SOLID={SOLID}, AIR={AIR}")
            air = (ct == AIR) & ~fluid
            pad = 0
        else:
            air = np.zeros(size, dtype=bool)
            pad = 1
        fluid, air = fluid.reshape(shape), air.reshape(shape)
        if pad:
            fluid = np.pad(fluid, pad)
            air = np.pad(np.zeros(shape, dtype=bool), pad, constant_values=True)
        self.shape = fluid.shape
        # flat positions of the unknowns in the (possibly framed) network grid
        coords = np.unravel_index(unknowns, shape)
        self.index = np.ravel_multi_index(tuple(c + pad for c in coords), self.shape)
        self.geometry = np.stack([fluid, air]).astype(np.float32)
        self.cell_type = np.where(fluid, 0, np.where(air, AIR, 1)).astype(np.int8)
        self.dim = len(shape)

    def to_grid(self, v: np.ndarray) -> np.ndarray:
        g = np.zeros(int(np.prod(self.shape)), dtype=v.dtype)
        g[self.index] = v
        return g.reshape(self.shape)

    def from_grid(self, g: np.ndarray) -> np.ndarray:
        return np.asarray(g).reshape(-1)[self.index]


class _TorchDirection:
    """Runs a torch network on residual grids; geometry gains computed once per grid."""

    def __init__(self, model, gmap: _GridMap, device: str):
        import torch

        self.torch, self.model, self.device = torch, model, device
        self.dtype = next(model.parameters()).dtype if any(True for _ in model.parameters()) else torch.float32
        geo = torch.from_numpy(gmap.geometry).to(device, self.dtype).unsqueeze(0)
        self.geo = geo
        self.gains = None
        if hasattr(model, "geometry_gains"):
            with torch.no_grad():
                self.gains = model.geometry_gains(geo)

    def __call__(self, r_grid: np.ndarray, cell_type) -> np.ndarray:
        torch = self.torch
        r = torch.from_numpy(np.ascontiguousarray(r_grid, dtype=np.float32)).to(self.device, self.dtype)
        with torch.no_grad():
            if self.gains is not None:
                q = self.model(r[None, None], gains=self.gains)
            else:
                q = self.model(r[None, None], self.geo)
        return q[0, 0].to("cpu", torch.float64).numpy()


class _CompiledDirection:
    """The ``mg-cycle`` network compiled for one geometry (``linsolve.learned.dcdm.compiled``):
    applied to unknown vectors by one compiled call, no PyTorch per iteration."""

    def __init__(self, model, gmap: _GridMap):
        from linsolve.learned.dcdm.compiled import CompiledCycle

        self.model = model
        self.cycle = CompiledCycle.from_model(model, gmap.geometry)
        self.pos = self.cycle.positions(gmap.index)

    def unknowns(self, r: np.ndarray) -> np.ndarray:
        return self.cycle.apply_positions(r, self.pos)


def _compilable(model) -> bool:
    return getattr(model, "arch", None) == "mg-cycle" and hasattr(model, "symmetric_kernel")


@register("dcdm")
class DCDM(Solver):
    """Deep conjugate direction method for SPD pressure-Poisson systems on a grid.

    ``make_solver("dcdm", model=None, n_orth=2)``: ``model`` is None (the shipped model
    for the grid's dimension), a shipped model name, a path to a weights file, a
    ``torch.nn.Module`` taking ``(residual (B,1,*grid), geometry (B,2,*grid))``, or a
    callable ``f(residual_grid, cell_type_grid) -> direction_grid`` on NumPy arrays.
    ``device`` is the torch device of the network (``"cpu"``, ``"cuda"``).
    ``engine``: ``"auto"`` (default) runs an ``mg-cycle`` network on the CPU as compiled
    sparse operators (``linsolve.learned.dcdm.compiled``, float64, no PyTorch in the solve loop)
    and every other network, or any network on a GPU, with PyTorch; ``"torch"`` always
    uses PyTorch; ``"compiled"`` requires the compiled path.
    """

    supports = frozenset({"spd"})
    needs_grid = True
    backends = ("torch",)
    preconditioners = ("none",)
    options = {"model": None, "n_orth": 2, "device": "cpu", "safeguard": None, "engine": "auto"}
    descent_tol = 1e-12

    def _distributed_what(self):
        return "its network reads the whole grid in one process"

    def _validate_options(self):
        n_orth = self.opts["n_orth"]
        if isinstance(n_orth, bool) or not isinstance(n_orth, (int, np.integer)) or n_orth < 0:
            raise OptionError(f"n_orth must be a non-negative integer, got {n_orth!r}")
        if not isinstance(self.pc, str) or self.pc != "none":
            raise OptionError("dcdm takes no preconditioner: the network is its preconditioner")
        sg = self.opts["safeguard"]
        if sg is not None and (isinstance(sg, bool) or not isinstance(sg, (int, float, np.floating))
                               or not 0 <= sg <= 1):
            raise OptionError(f"safeguard must be None (automatic) or a number in [0, 1], got {sg!r}")
        if self.opts["engine"] not in ("auto", "torch", "compiled"):
            raise OptionError(f"engine must be 'auto', 'torch' or 'compiled', got {self.opts['engine']!r}")
        if self.opts["engine"] == "compiled" and str(self.opts["device"]).split(":")[0] != "cpu":
            raise OptionError("engine='compiled' runs on the CPU; use device='cpu' or engine='torch'/'auto'")
        if not isinstance(self.opts["device"], str):
            raise OptionError(f"device must be a torch device name, got {self.opts['device']!r}")
        _check_device(self.opts["device"])
        model = self.opts["model"]
        self._models: dict = {}
        if isinstance(model, (str, os.PathLike)):
            from linsolve.learned.dcdm.loading import load_model

            m = load_model(model)  # fail at construction on a bad name or file
            self._models[getattr(m, "dim", None)] = m
        elif model is not None and not callable(model):
            raise OptionError(f"model must be None, a name, a path, a torch Module or a callable, "
                              f"got {type(model).__name__}")

    def _direction_fn(self, gmap: _GridMap):
        model = self.opts["model"]
        if model is not None and not isinstance(model, (str, os.PathLike)):
            import sys

            torch = sys.modules.get("torch")
            if torch is None or not isinstance(model, torch.nn.Module):
                if self.opts["engine"] == "compiled":
                    raise OptionError("engine='compiled' needs an mg-cycle network; model is a plain callable")
                return model, "callable"
            return self._wrap(model, gmap), type(model).__name__
        from linsolve.learned.dcdm.loading import DEFAULT_MODELS, ModelError, load_model

        if gmap.dim not in self._models:
            if isinstance(model, (str, os.PathLike)) and self._models:
                have = next(iter(self._models))
                raise ModelError(f"DCDM model {str(model)!r} is {have}-D but the grid is {gmap.dim}-D")
            self._models[gmap.dim] = load_model(model, dim=gmap.dim)
        name = str(model) if model is not None else DEFAULT_MODELS[gmap.dim]
        return self._wrap(self._models[gmap.dim], gmap), name

    def _wrap(self, net, gmap: _GridMap):
        engine = self.opts["engine"]
        on_cpu = self.opts["device"].split(":")[0] == "cpu"
        if engine != "torch" and on_cpu and _compilable(net):
            return _CompiledDirection(net, gmap)
        if engine == "compiled":
            raise OptionError(f"engine='compiled' needs an mg-cycle network, got {type(net).__name__}")
        return _TorchDirection(net.to(self.opts["device"]).eval(), gmap, self.opts["device"])

    def _solve(self, op, b, x0, tol, maxiter, ctx):
        gmap = _GridMap(ctx.grid, op.n)
        f, model_name = self._direction_fn(gmap)
        n_orth = int(self.opts["n_orth"])
        safeguard = self.opts["safeguard"]
        if safeguard is None:
            net = getattr(f, "model", f)
            safeguard = 0.0 if getattr(net, "linear_spd", False) else 1.0
        safeguard = float(safeguard)
        x = np.array(x0, dtype=np.float64)
        r = b - op.matvec(x)
        rnorm = float(np.linalg.norm(r))
        norms: list[float] = []
        dirs: list[tuple[np.ndarray, np.ndarray, float]] = []
        fallbacks: dict[str, int] = {}
        engine = ("compiled" if isinstance(f, _CompiledDirection) else
                  "torch" if isinstance(f, _TorchDirection) else "callable")
        info = {"model": model_name, "engine": engine, "n_orth": n_orth, "safeguard": safeguard, "norm": "recurrence residual (true one checked at the end)"}

        def finish(converged, reason, its):
            info["fallback_steps"] = sum(fallbacks.values())
            info["fallback_reasons"] = dict(fallbacks)
            return Outcome(x, its, norms, converged, reason, info)

        if rnorm <= tol:
            return finish(True, "converged", 0)
        for k in range(1, maxiter + 1):
            q, why = self._network_direction(f, gmap, r, rnorm)
            step = None
            if why is None:
                step, why = self._conjugate(op, q, r, dirs)
            if step is not None and safeguard > 0:
                alt, _ = self._conjugate(op, r.copy(), r, dirs)
                # gain = (p^T r)^2 / p^T A p: the drop of the squared A-norm of the error
                if alt is not None and step[3] * (step[0] @ r) < safeguard * alt[3] * (alt[0] @ r):
                    step, why = alt, "weaker than the residual direction"
                    fallbacks[why] = fallbacks.get(why, 0) + 1
            if step is None:
                fallbacks[why] = fallbacks.get(why, 0) + 1
                step, why2 = self._conjugate(op, r.copy(), r, dirs)
                if step is None:
                    return finish(False, f"breakdown: residual direction is degenerate ({why2}); "
                                         "A is not SPD", k - 1)
            p, Ap, pAp, alpha = step
            x += alpha * p
            r -= alpha * Ap
            rnorm = float(np.linalg.norm(r))
            norms.append(rnorm)
            if n_orth:
                dirs.append((p, Ap, pAp))
                if len(dirs) > n_orth:
                    dirs.pop(0)
            if ctx.callback is not None:
                ctx.callback(x.copy())
            if not math.isfinite(rnorm):
                return finish(False, "breakdown: non-finite residual", k)
            if rnorm <= tol:
                return finish(True, "converged", k)
        return finish(False, "maxiter reached", maxiter)

    @staticmethod
    def _network_direction(f, gmap, r, rnorm):
        if isinstance(f, _CompiledDirection):
            q = f.unknowns(r / rnorm)
        else:
            q = DCDM._grid_direction(f, gmap, r, rnorm)
        if not np.all(np.isfinite(q)):
            return None, "non-finite direction"
        if not np.any(q):
            return None, "zero direction"
        return q, None

    @staticmethod
    def _grid_direction(f, gmap, r, rnorm):
        try:
            g = f(gmap.to_grid(r / rnorm), gmap.cell_type)
            q = gmap.from_grid(np.asarray(g, dtype=np.float64).reshape(gmap.shape))
        except (ValueError, TypeError) as exc:
            raise ShapeError(f"the DCDM network returned an unusable direction: {exc}") from exc
        return q

    def _conjugate(self, op, q, r, dirs):
        """A-orthogonalise q against ``dirs`` (modified Gram-Schmidt) and compute the exact
        line-search step with one product with A; (None, reason) when degenerate."""
        for p, Ap, pAp in dirs:
            q -= (float(q @ Ap) / pAp) * p
        # The product is taken after the orthogonalisation, not updated alongside it: when
        # q is large next to its orthogonalised part (a network blind to a Dirichlet
        # boundary returns a huge near-nullspace component) the updated product keeps
        # rounding errors of q's original size, the line search stops being exact and the
        # recurrence residual drifts from the true one (the error grew to 1e11 instead of
        # falling). Same cost: one product with A.
        Aq = op.matvec(q)
        qAq = float(q @ Aq)
        if not math.isfinite(qAq) or qAq <= 0.0:
            return None, "p^T A p <= 0"
        qr = float(q @ r)
        if not math.isfinite(qr) or abs(qr) <= self.descent_tol * float(np.linalg.norm(q)) * float(np.linalg.norm(r)):
            return None, "no descent"
        return (q, Aq, qAq, qr / qAq), None

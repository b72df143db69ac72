"""Train a DCDM network on given systems with grid geometry (``train``) and measure it on
held-out ones (``measure``). This module takes its systems as input and knows no problem family:
the command that trains the shipped networks on ``datagen``'s ``poisson_obstacles`` family is
``python -m datagen.dcdm_training`` (``datagen/dcdm_training.py``).

Training data follow the paper: for each training matrix, m Lanczos steps with full
reorthogonalisation give Ritz vectors v_1..v_m (ascending Ritz values); right-hand sides
are b = sum_i c_i v_i / ||.|| with c_i ~ N(0, 1), multiplied by ``low_weight`` (9) for the
lowest ``low_fraction`` of the spectrum, where a network (and CG) struggles most. The loss
is the paper's ||b - (q^T b / q^T A q) A q||^2 with q = f(b), the residual after one exact
line-search step along the network's direction, or (``loss="pcg"``) the log convergence
factor of a few DCDM steps, which measured better for the shipped ``mg-cycle`` networks
(``arch="mg-cycle", loss="pcg"``); minimised with Adam. Directions are
applied with the batched stencil (``stencil.PressureStencil``), so one batch mixes
geometries. Progress bar (tqdm), checkpoints every ``checkpoint_every`` steps to
``workdir``, ``resume=True`` continues from the last checkpoint bit for bit (model,
optimiser and random state are all saved).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from linsolve.core.errors import OptionError, ShapeError
from linsolve.core.system import LinearSystem
from linsolve.core.validation import check_choice, check_int


def lanczos_ritz(A, m: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Ritz values (ascending) and Ritz vectors (columns) of m Lanczos steps on SPD ``A``
    from a random start, with full reorthogonalisation (m is small beside n)."""
    n = A.shape[0]
    m = int(min(m, n))
    Q = np.zeros((n, m))
    alpha, beta = np.zeros(m), np.zeros(m)
    q = rng.standard_normal(n)
    q /= np.linalg.norm(q)
    k_done = m
    for k in range(m):
        Q[:, k] = q
        w = A @ q
        alpha[k] = q @ w
        w -= Q[:, : k + 1] @ (Q[:, : k + 1].T @ w)
        w -= Q[:, : k + 1] @ (Q[:, : k + 1].T @ w)  # twice is enough (Kahan)
        beta[k] = np.linalg.norm(w)
        if beta[k] < 1e-10 * abs(alpha[k]) or k == m - 1:
            k_done = k + 1
            break
        q = w / beta[k]
    T = np.diag(alpha[:k_done]) + np.diag(beta[: k_done - 1], 1) + np.diag(beta[: k_done - 1], -1)
    theta, S = np.linalg.eigh(T)
    return theta, Q[:, :k_done] @ S


class RitzData:
    """Random right-hand sides from the Ritz vectors of several training systems."""

    def __init__(self, systems, m: int, low_fraction: float, low_weight: float, rng: np.random.Generator):
        self.shape = systems[0].grid.shape
        self.cell_types = np.stack([np.asarray(s.grid.cell_type, dtype=np.int8) for s in systems])
        # grid.unknowns None: every cell carries an unknown, in C order
        self.unknowns = [np.arange(int(np.prod(self.shape))) if s.grid.unknowns is None else s.grid.unknowns
                         for s in systems]
        self.bases, self.ritz_values = [], []
        for s in systems:
            theta, V = lanczos_ritz(s.A, m, rng)
            self.bases.append(V.astype(np.float32))
            self.ritz_values.append(theta)
        self.low_fraction, self.low_weight = low_fraction, low_weight

        self.systems = systems
        self.pool: list[tuple[int, np.ndarray]] = []

    def ritz_rhs(self, k: int, rng: np.random.Generator) -> np.ndarray:
        V = self.bases[k]
        c = rng.standard_normal(V.shape[1]).astype(np.float32)
        c[: int(self.low_fraction * V.shape[1])] *= self.low_weight
        b = V @ c
        return b / np.linalg.norm(b)

    def refresh_pool(self, model, iters: int, rng: np.random.Generator):
        """Residuals met by DCDM itself with the current network: after the first steps
        the residual loses its smooth part, and a network trained only on the paper's
        low-weighted data then meets inputs it never saw. Iterating from Ritz
        right-hand sides on each training matrix gives those inputs."""
        import linsolve

        pool = []
        for k, s in enumerate(self.systems):
            b = self.ritz_rhs(k, rng).astype(np.float64)
            seen = []
            solver = linsolve.make_solver("dcdm", model=model, rtol=1e-8, maxiter=iters,
                                          callback=lambda x, b=b, A=s.A, seen=seen: seen.append(b - A @ x))
            solver.solve(s.A, b, grid=s.grid)
            for r in seen:
                nr = np.linalg.norm(r)
                if nr > 0 and np.isfinite(nr):
                    pool.append((k, (r / nr).astype(np.float32)))
        self.pool = pool

    def batch(self, size: int, rng: np.random.Generator, pool_fraction: float = 0.0):
        which = rng.integers(0, len(self.bases), size=size)
        out = np.zeros((size, int(np.prod(self.shape))), dtype=np.float32)
        n_pool = int(round(pool_fraction * size)) if self.pool else 0
        for i in range(size):
            if i < n_pool:
                which[i], r = self.pool[int(rng.integers(len(self.pool)))]
            else:
                r = self.ritz_rhs(which[i], rng)
            out[i, self.unknowns[which[i]]] = r
        return out.reshape(size, 1, *self.shape), self.cell_types[which]


def dcdm_loss(model, b, cell_type):
    """Mean of ||b - (q^T b / q^T A q) A q||^2 over the batch, q = model(b)."""
    from linsolve.learned.dcdm.stencil import PressureStencil, geometry_channels

    A = PressureStencil(cell_type)
    q = model(b, geometry_channels(cell_type))
    Aq = A(q)
    dims = tuple(range(1, b.dim()))
    alpha = (q * b).sum(dims, keepdim=True) / (q * Aq).sum(dims, keepdim=True).clamp_min(1e-30)
    return ((b - alpha * Aq) ** 2).sum(dims).mean()


def pcg_loss(model, b, cell_type, steps: int = 4):
    """Mean log convergence factor per step, log(||r_k|| / ||b||) / k, of ``steps`` steps of
    DCDM with n_orth = 1 from x = 0 (for a linear SPD network, that is PCG). Why: for a
    network that is a preconditioner what matters is the conditioning of f A over the whole
    spectrum; the paper's one-step loss only measures the first step."""
    import torch

    from linsolve.learned.dcdm.stencil import PressureStencil, geometry_channels

    A = PressureStencil(cell_type)
    gains = model.geometry_gains(geometry_channels(cell_type))
    dims = tuple(range(1, b.dim()))

    def dot(u, v):
        return (u * v).sum(dims, keepdim=True)

    r, p_old, Ap_old = b, None, None
    for _ in range(steps):
        q = model(r, gains=gains)
        if p_old is not None:
            q = q - dot(q, Ap_old) / dot(p_old, Ap_old).clamp_min(1e-30) * p_old
        Aq = A(q)
        r = r - dot(q, r) / dot(q, Aq).clamp_min(1e-30) * Aq
        p_old, Ap_old = q, Aq
    ratio = dot(r, r).sqrt() / dot(b, b).sqrt()
    return (torch.log(ratio.clamp_min(1e-30)) / steps).mean()


LOSSES = {"paper": dcdm_loss, "pcg": pcg_loss}


ARCHITECTURES = ("mg-cycle", "mg-unet", "sym-mg")


@dataclass
class TrainingRun:
    """What :func:`train` returns.

    Attributes
    ----------
    model : torch.nn.Module
        The network, in eval mode (save it with ``loading.save_model``).
    history : list of float
        The loss of every step from the first (a resumed run includes the steps before).
    steps_done : int
        Steps taken in all; fewer than asked where ``stop_after`` stopped the run.
    stopped : bool
        Whether ``stop_after`` stopped the run early (continue with ``resume=True``).
    batches : list of int
        Right-hand sides per step on each training set.
    data_seconds, wall_seconds : float
        Time spent on the Ritz vectors, and in all (this call).
    dim : int
        Spatial dimension of the training geometries.
    """

    model: object
    history: list = field(default_factory=list)
    steps_done: int = 0
    stopped: bool = False
    batches: list = field(default_factory=list)
    data_seconds: float = 0.0
    wall_seconds: float = 0.0
    dim: int = 2

    @property
    def final_loss(self) -> float:
        """The mean loss of the last 50 steps (NaN before any step)."""
        return float(np.mean(self.history[-50:])) if self.history else float("nan")

    def loss_history(self, every: int = 50) -> list[float]:
        """The mean loss over each run of ``every`` steps, for a model card."""
        return [float(np.mean(self.history[i:i + every])) for i in range(0, len(self.history), every)]


def _training_set(systems, which: int) -> list[LinearSystem]:
    """The systems of one training set as a list, each checked to carry the grid geometry
    the stencil and the network need, all on one grid shape."""
    systems = [systems] if isinstance(systems, LinearSystem) else list(systems)
    if not systems:
        raise ShapeError(f"training set {which} holds no systems")
    shape = None
    for i, s in enumerate(systems):
        if not isinstance(s, LinearSystem):
            raise ShapeError(f"training set {which}, item {i}: expected a LinearSystem, got {type(s).__name__}")
        if s.grid is None or s.grid.cell_type is None:
            raise ShapeError(f"training set {which}, system {i} has no grid with cell types "
                             "(LinearSystem(A, b, grid=Grid(shape, cell_type=..., unknowns=...)))")
        if len(s.grid.shape) not in (2, 3):
            raise ShapeError(f"training set {which}, system {i}: DCDM trains on 2-D or 3-D grids, "
                             f"got shape {tuple(s.grid.shape)}")
        if shape is None:
            shape = tuple(s.grid.shape)
        elif tuple(s.grid.shape) != shape:
            raise ShapeError(f"training set {which} mixes grid shapes {shape} and {tuple(s.grid.shape)}; "
                             "give one set per grid size")
    return systems


def train(training_sets, *, arch: str = "mg-unet", nu: int = 1, gamma: int = 2, channels: int = 16,
          blocks: int = 1, ritz: int = 300, low_fraction: float = 0.55, low_weight: float = 9.0,
          steps: int = 1500, batch: int = 16, lr: float = 2e-3, loss: str = "paper", loss_steps: int = 4,
          seed: int = 0, workdir=None, resume: bool = False, checkpoint_every: int = 100,
          pool_every: int = 100, pool_iters: int = 30, pool_fraction: float = 0.5, stop_after: int = 0,
          progress: bool = True) -> TrainingRun:
    """Train a DCDM network on the given systems.

    Parameters
    ----------
    training_sets : sequence of sequences of LinearSystem, or sequence of LinearSystem
        One set per grid size, each an iterable of SPD systems on one grid shape with grid
        geometry (``LinearSystem(A, b, grid=Grid(shape, cell_type=..., unknowns=...))``); a
        flat sequence of systems is one set. Steps go round the sets in turn, so several
        sizes train the shared levels at several depths; a set's batch is scaled so that
        every step sees about as many cells as one of ``batch`` right-hand sides on the first set.
    arch : {"mg-unet", "mg-cycle", "sym-mg"}
        The network (``linsolve.learned.dcdm.model.build_model``); ``nu``, ``gamma``
        configure ``mg-cycle``, ``channels`` the others, ``blocks`` ``mg-unet``.
    ritz : int
        Lanczos steps (Ritz vectors) per training matrix.
    low_fraction, low_weight : float
        The lowest ``low_fraction`` of the Ritz vectors get weight ``low_weight``.
    steps, batch, lr : int, int, float
        Adam steps, right-hand sides per step, learning rate (cosine decay to 5% of it).
    loss : {"paper", "pcg"}
        The paper's one-step loss, or the log convergence factor of ``loss_steps`` DCDM steps.
    seed : int
        Seed of the Lanczos starts, the batches and the weights.
    workdir : path, optional
        Checkpoints go to ``workdir/checkpoint.pt`` every ``checkpoint_every`` steps, at the
        end and at ``stop_after``; None: no checkpoints.
    resume : bool
        Continue from ``workdir/checkpoint.pt`` where it exists (the same systems and
        options continue bit for bit).
    pool_every, pool_iters, pool_fraction
        Every ``pool_every`` steps (0: never) the residuals DCDM meets in ``pool_iters``
        iterations with the current network on each training matrix are pooled, and a
        ``pool_fraction`` of each batch is drawn from that pool.
    stop_after : int
        Checkpoint and return after this many steps (0: run all ``steps``).
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    TrainingRun
        The network (eval mode), the loss history and the timings.

    Raises
    ------
    ShapeError
        An empty set, an item that is not a LinearSystem, a system without grid cell types,
        or grid shapes that differ within a set or in dimension between sets.
    OptionError
        An unknown ``arch`` or ``loss``, a non-positive count, ``resume`` without ``workdir``.

    Examples
    --------
    The 5-point Laplacian on 8 x 8 fluid cells framed by Dirichlet (air) cells:

    >>> import numpy as np, linsolve
    >>> from linsolve import AIR, FLUID
    >>> from linsolve.learned.dcdm.train import train
    >>> cells = np.full((10, 10), AIR); cells[1:-1, 1:-1] = FLUID
    >>> grid = linsolve.Grid((10, 10), cell_type=cells, unknowns=np.flatnonzero(cells == FLUID))
    >>> system = linsolve.LinearSystem(linsolve.gallery.poisson2d(8), np.ones(64), grid=grid)
    >>> run = train([system], channels=4, ritz=10, steps=3, batch=2, pool_every=0, progress=False)
    >>> run.steps_done, len(run.history), run.model.config["arch"]
    (3, 3, 'mg-unet')
    """
    import torch

    check_choice("arch", arch, ARCHITECTURES)
    check_choice("loss", loss, LOSSES)
    steps = check_int("steps", steps, 1)
    batch = check_int("batch", batch, 1)
    ritz = check_int("ritz", ritz, 1)
    checkpoint_every = check_int("checkpoint_every", checkpoint_every, 1)
    pool_every = check_int("pool_every", pool_every, 0)
    stop_after = check_int("stop_after", stop_after, 0)
    if resume and workdir is None:
        raise OptionError("resume=True needs the workdir holding the checkpoint")
    items = [training_sets] if isinstance(training_sets, LinearSystem) else list(training_sets)
    if items and all(isinstance(s, LinearSystem) for s in items):
        items = [items]  # a flat sequence of systems is one set
    sets = [_training_set(s, i) for i, s in enumerate(items)]
    if not sets:
        raise ShapeError("no training sets given")
    shapes = [tuple(s[0].grid.shape) for s in sets]
    dim = len(shapes[0])
    if any(len(sh) != dim for sh in shapes):
        raise ShapeError(f"training sets mix dimensions: grid shapes {shapes}")

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    t0 = time.time()
    datasets = [RitzData(s, ritz, low_fraction, low_weight, rng) for s in sets]
    # equal cells per step at every size: smaller batches on the larger grids
    cells = [int(np.prod(sh)) for sh in shapes]
    batches = [max(2, int(round(batch * cells[0] / c))) for c in cells]
    t_data = time.time() - t0
    from linsolve.learned.dcdm.model import build_model

    if arch == "mg-cycle":
        config = {"arch": arch, "dim": dim, "nu": nu, "gamma": gamma}
    else:
        config = {"arch": arch, "dim": dim, "channels": channels}
    if arch == "mg-unet":
        config["blocks"] = blocks
    model = build_model(config)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps, eta_min=0.05 * lr)
    ckpt = None
    if workdir is not None:
        Path(workdir).mkdir(parents=True, exist_ok=True)
        ckpt = Path(workdir) / "checkpoint.pt"
    start, history = 0, []
    if resume and ckpt.exists():
        state = torch.load(ckpt, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        start, history = state["step"], state["history"]
        for data, pool in zip(datasets, state.get("pools", []), strict=False):
            data.pool = [(int(k), r.numpy()) for k, r in pool]
    run = TrainingRun(model=model, history=history, steps_done=start, batches=batches, data_seconds=t_data,
                      dim=dim)
    from tqdm import tqdm

    bar = tqdm(range(start, steps), initial=start, total=steps, desc=f"DCDM {dim}-D", unit="step",
               disable=not progress)
    running = None
    for step in bar:
        which = step % len(sets)
        data = datasets[which]
        if pool_every and step >= pool_every and (step % pool_every < len(sets) or not data.pool):
            model.eval()
            data.refresh_pool(model, pool_iters, rng)
            model.train()
        b, ct = data.batch(batches[which], rng, pool_fraction if pool_every else 0.0)
        if loss == "pcg":
            value = pcg_loss(model, torch.from_numpy(b), torch.from_numpy(ct), loss_steps)
        else:
            value = dcdm_loss(model, torch.from_numpy(b), torch.from_numpy(ct))
        opt.zero_grad()
        value.backward()
        opt.step()
        sched.step()
        v = value.item()
        running = v if running is None else 0.95 * running + 0.05 * v
        history.append(v)
        run.steps_done = step + 1
        bar.set_postfix(loss=f"{running:.4f}")
        stopping = bool(stop_after) and step + 1 >= stop_after and step + 1 < steps
        if ckpt is not None and ((step + 1) % checkpoint_every == 0 or step + 1 == steps or stopping):
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                        "rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
                        "step": step + 1, "history": history,
                        "pools": [[(k, torch.from_numpy(r)) for k, r in d.pool] for d in datasets]}, ckpt)
        if stopping:
            run.stopped = True
            break
    bar.close()
    model.eval()
    run.wall_seconds = time.time() - t0
    return run


def measure(model, systems, *, rtol: float = 1e-6, n_orth: int = 300, maxiter: int = 300) -> dict:
    """DCDM and CG iterations on held-out systems (the medians), for a model card.

    Parameters
    ----------
    model : torch.nn.Module or str
        The network, or a shipped model's name or a weights file.
    systems : iterable of LinearSystem
        Systems with grid geometry, not seen in training.
    rtol, n_orth, maxiter
        DCDM's tolerance, orthogonalisation window and iteration budget (CG: the same
        ``rtol``).

    Returns
    -------
    dict
        ``dcdm_iterations`` (NaN for a system DCDM did not solve within ``maxiter``),
        ``cg_iterations``, ``systems`` and the settings.

    Raises
    ------
    ShapeError
        No systems.
    """
    import linsolve

    its, cg_its = [], []
    for system in systems:
        res = linsolve.make_solver("dcdm", model=model, rtol=rtol, maxiter=maxiter, n_orth=n_orth,
                                   safeguard=0.0).solve(system)
        cg = linsolve.make_solver("cg", rtol=rtol, history=False).solve(system)
        its.append(res.iterations if res.converged else float("nan"))
        cg_its.append(cg.iterations)
    if not its:
        raise ShapeError("measure() needs at least one held-out system")
    return {"dcdm_iterations": float(np.median(its)), "cg_iterations": float(np.median(cg_its)),
            "systems": len(its), "rtol": rtol, "n_orth": n_orth, "maxiter": maxiter}

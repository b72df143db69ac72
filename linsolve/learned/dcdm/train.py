"""Train a DCDM network: ``python -m linsolve.learned.dcdm.train --dim 2 --grid 64 --steps 1500``.

Training data follow the paper: for each training matrix (here several obstacle layouts
of ``datagen poisson_obstacles``, split "train"), m Lanczos steps with full
reorthogonalisation give Ritz vectors v_1..v_m (ascending Ritz values); right-hand sides
are b = sum_i c_i v_i / ||.|| with c_i ~ N(0, 1), multiplied by ``low_weight`` (9) for the
lowest ``low_fraction`` of the spectrum, where a network (and CG) struggles most. The loss
is the paper's ||b - (q^T b / q^T A q) A q||^2 with q = f(b), the residual after one exact
line-search step along the network's direction, or (``--loss pcg``) the log convergence
factor of a few DCDM steps, which measured better for the shipped ``mg-cycle`` networks
(``--arch mg-cycle --loss pcg``); minimised with Adam. Directions are
applied with the batched stencil (``stencil.PressureStencil``), so one batch mixes
geometries. Progress bar (tqdm), checkpoints every ``--checkpoint-every`` steps to
``--workdir``, ``--resume`` continues from the last checkpoint bit for bit (model,
optimiser and random state are all saved).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import typer

app = typer.Typer(add_completion=False, help=__doc__.split("\n\n")[0])


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
        self.unknowns = [s.grid.unknowns for s in systems]
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


def training_systems(dim: int, grid: int, n_systems: int, seed: int, n_obstacles: float):
    from datagen import get_family

    fam = get_family("poisson_obstacles")(grid, dim=dim, split="train", n_obstacles=n_obstacles)
    params = fam.sample(n_systems, np.random.default_rng(seed))
    return [fam.assemble(p) for p in params]


def measure(model, dim: int, sizes: list[int], n_systems: int, seed: int, rtol: float = 1e-6,
            n_orth: int = 300, maxiter: int = 300):
    """DCDM and CG iterations on held-out (split "test") systems at each size (NaN: DCDM
    did not converge within ``maxiter``)."""
    import linsolve
    from datagen import get_family

    rows = []
    for n in sizes:
        fam = get_family("poisson_obstacles")(n, dim=dim, split="test")
        its, cg_its = [], []
        for p in fam.sample(n_systems, np.random.default_rng(seed)):
            system = fam.assemble(p)
            res = linsolve.make_solver("dcdm", model=model, rtol=rtol, maxiter=maxiter, n_orth=n_orth,
                                       safeguard=0.0).solve(system)
            cg = linsolve.make_solver("cg", rtol=rtol, history=False).solve(system)
            its.append(res.iterations if res.converged else float("nan"))
            cg_its.append(cg.iterations)
        rows.append({"grid": f"{n}^{dim}", "dcdm_iterations": float(np.median(its)),
                     "cg_iterations": float(np.median(cg_its)), "systems": n_systems, "rtol": rtol,
                     "n_orth": n_orth, "maxiter": maxiter, "held_out": f"split=test seed {seed}"})
    return rows


@app.command()
def main(
    dim: int = typer.Option(2, help="spatial dimension (2 or 3)"),
    grid: str = typer.Option("64", help="training grid size(s) per axis (frame included), comma-separated: "
                                       "several sizes train the shared levels at several depths"),
    systems: int = typer.Option(12, help="number of training geometries"),
    ritz: int = typer.Option(300, help="Lanczos steps (Ritz vectors) per training matrix"),
    low_fraction: float = typer.Option(0.55, help="fraction of the Ritz vectors (lowest) weighted up"),
    low_weight: float = typer.Option(9.0, help="weight of the low end of the spectrum"),
    n_obstacles: float = typer.Option(4.0, help="mean number of obstacles per training geometry"),
    steps: int = typer.Option(1500, help="Adam steps"),
    batch: int = typer.Option(16, help="right-hand sides per step"),
    lr: float = typer.Option(2e-3, help="Adam learning rate (cosine decay to 5% of it)"),
    arch: str = typer.Option("mg-unet", help="network: mg-cycle (learned multigrid cycle, SPD in the residual), "
                                             "mg-unet (ReLU U-Net) or sym-mg (additive multilevel)"),
    nu: int = typer.Option(1, help="mg-cycle: smoothing sweeps before and after the coarse correction"),
    gamma: int = typer.Option(2, help="mg-cycle: 1 for a V-cycle, 2 for a W-cycle"),
    loss: str = typer.Option("paper", help="paper (one exact line-search step) or pcg (log convergence factor "
                                           "of a few DCDM steps)"),
    loss_steps: int = typer.Option(4, help="DCDM steps of the pcg loss"),
    channels: int = typer.Option(16, help="channels of the convolutions"),
    blocks: int = typer.Option(1, help="residual blocks per encoder and decoder"),
    seed: int = typer.Option(0, help="seed of geometries, Lanczos starts, batches and weights"),
    workdir: Path = typer.Option(Path("runs/dcdm"), help="checkpoints go here"),
    out: Path = typer.Option(None, help="final weights file (.pt); card written beside it"),
    resume: bool = typer.Option(False, help="continue from workdir/checkpoint.pt"),
    checkpoint_every: int = typer.Option(100, help="steps between checkpoints"),
    measure_sizes: str = typer.Option("", help="comma-separated held-out grid sizes for the card"),
    threads: int = typer.Option(0, help="torch threads (0: leave torch's default)"),
    pool_every: int = typer.Option(100, help="steps between refreshes of the DCDM-iterate residual pool (0: off)"),
    pool_iters: int = typer.Option(30, help="DCDM iterations per training matrix when refreshing the pool"),
    pool_fraction: float = typer.Option(0.5, help="share of each batch drawn from the residual pool"),
    stop_after: int = typer.Option(0, help="checkpoint and stop after this many steps (train in slices; "
                                           "continue with --resume)"),
):
    import torch
    from tqdm import tqdm

    from linsolve.learned.dcdm.loading import save_model
    from linsolve.learned.dcdm.model import build_model

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    t0 = time.time()
    grids = [int(g) for g in str(grid).split(",") if g.strip()]
    datasets = [RitzData(training_systems(dim, g, systems, seed + i, n_obstacles), ritz, low_fraction,
                         low_weight, rng) for i, g in enumerate(grids)]
    # equal cells per step at every size: smaller batches on the larger grids
    batches = [max(2, int(round(batch * (grids[0] / g) ** dim))) for g in grids]
    t_data = time.time() - t0
    if loss not in LOSSES:
        raise typer.BadParameter(f"--loss must be one of {', '.join(LOSSES)}, got {loss!r}")
    if arch == "mg-cycle":
        config = {"arch": arch, "dim": dim, "nu": nu, "gamma": gamma}
    else:
        config = {"arch": arch, "dim": dim, "channels": channels}
    if arch == "mg-unet":
        config["blocks"] = blocks
    model = build_model(config)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps, eta_min=0.05 * lr)
    workdir.mkdir(parents=True, exist_ok=True)
    ckpt = workdir / "checkpoint.pt"
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
    bar = tqdm(range(start, steps), initial=start, total=steps, desc=f"DCDM {dim}-D", unit="step")
    running = None
    for step in bar:
        which = step % len(grids)
        data = datasets[which]
        if pool_every and step >= pool_every and (step % pool_every < len(grids) or not data.pool):
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
        bar.set_postfix(loss=f"{running:.4f}")
        stopping = bool(stop_after) and step + 1 >= stop_after and step + 1 < steps
        if (step + 1) % checkpoint_every == 0 or step + 1 == steps or stopping:
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                        "rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
                        "step": step + 1, "history": history,
                        "pools": [[(k, torch.from_numpy(r)) for k, r in d.pool] for d in datasets]}, ckpt)
        if stopping:
            bar.close()
            typer.echo(f"stopped after {step + 1} steps; continue with --resume")
            return
    train_time = time.time() - t0
    model.eval()
    final = float(np.mean(history[-50:])) if history else float("nan")
    card = {
        "summary": (f"{dim}-D DCDM network ({arch}, weights shared across levels) for "
                    "pressure-Poisson systems with fluid/solid/air cells."),
        "training": {"family": "poisson_obstacles", "split": "train", "grids": [[g] * dim for g in grids], "batches": batches,
                     "matrices_per_grid": systems, "n_obstacles": n_obstacles, "ritz_vectors": ritz,
                     "low_fraction": low_fraction, "low_weight": low_weight, "steps": steps,
                     "pool_every": pool_every, "pool_iters": pool_iters, "pool_fraction": pool_fraction,
                     "batch": batch, "lr": lr, "optimizer": "Adam, cosine decay", "seed": seed,
                     "loss": loss if loss == "paper" else f"pcg ({loss_steps} steps)",
                     "data_seconds": round(t_data, 1), "wall_seconds": round(train_time, 1),
                     "torch_threads": torch.get_num_threads()},
        "final_loss": final,
        "loss_history_every_50": [float(np.mean(history[i:i + 50])) for i in range(0, len(history), 50)],
    }
    sizes = [int(s) for s in measure_sizes.split(",") if s.strip()]
    if sizes:
        card["measured"] = measure(model, dim, sizes, 3, seed + 1)
    out = out or workdir / f"dcdm-{dim}d.pt"
    save_model(model, out, card)
    typer.echo(json.dumps({"weights": str(out), "final_loss": final, "seconds": round(train_time, 1),
                           "measured": card.get("measured")}, default=float))


if __name__ == "__main__":
    app()

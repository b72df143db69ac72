"""Train a DCDM network on ``poisson_obstacles`` geometries:
``python -m datagen.dcdm_training --arch mg-cycle --loss pcg --dim 2 --grid 64 --steps 300``.

The command behind the shipped ``linsolve`` DCDM networks and their model cards: it samples
the training systems (split "train") from datagen's ``poisson_obstacles`` family, one set per
grid size, trains with ``linsolve.learned.dcdm.train.train`` (Lanczos Ritz-vector right-hand
sides, the paper's or the ``pcg`` loss, Adam, checkpoints and ``--resume``), measures DCDM and
CG iterations on held-out systems (split "test") at ``--measure-sizes`` and writes the weights
with their model card (``.json`` and ``.md`` beside ``--out``). Bad input exits 2 with one line.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import typer

from datagen import get_family

FAMILY = "poisson_obstacles"

app = typer.Typer(add_completion=False, help=__doc__.split("\n\n")[0])


def obstacle_systems(dim: int, grid: int, n_systems: int, seed: int, split: str = "train", **params):
    """``n_systems`` seeded ``poisson_obstacles`` systems on a ``grid``-per-axis grid (frame
    included) of split "train" or "test" (disjoint geometries); ``params`` go to the family
    (``n_obstacles``, ...)."""
    fam = get_family(FAMILY)(grid, dim=dim, split=split, **params)
    return [fam.assemble(p) for p in fam.sample(n_systems, np.random.default_rng(seed))]


def _sizes(text: str, option: str) -> list[int]:
    try:
        sizes = [int(g) for g in str(text).split(",") if g.strip()]
    except ValueError:
        raise typer.BadParameter(f"{option} takes comma-separated integers, got {text!r}") from None
    if any(g < 1 for g in sizes):
        raise typer.BadParameter(f"{option} sizes must be positive, got {text!r}")
    return sizes


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
    """Train a DCDM network on poisson_obstacles geometries and write weights with a model card."""
    import torch

    from linsolve.learned.dcdm.loading import save_model
    from linsolve.learned.dcdm.train import LOSSES, measure, train

    # checked before the minutes of Lanczos runs
    if loss not in LOSSES:
        raise typer.BadParameter(f"--loss must be one of {', '.join(LOSSES)}, got {loss!r}")
    grids = _sizes(grid, "--grid")
    if not grids:
        raise typer.BadParameter("--grid names no size")
    sizes = _sizes(measure_sizes, "--measure-sizes")
    if threads:
        torch.set_num_threads(threads)
    t0 = time.time()
    training_sets = [obstacle_systems(dim, g, systems, seed + i, n_obstacles=n_obstacles)
                     for i, g in enumerate(grids)]
    t_assemble = time.time() - t0
    run = train(training_sets, arch=arch, nu=nu, gamma=gamma, channels=channels, blocks=blocks, ritz=ritz,
                low_fraction=low_fraction, low_weight=low_weight, steps=steps, batch=batch, lr=lr, loss=loss,
                loss_steps=loss_steps, seed=seed, workdir=workdir, resume=resume,
                checkpoint_every=checkpoint_every, pool_every=pool_every, pool_iters=pool_iters,
                pool_fraction=pool_fraction, stop_after=stop_after)
    if run.stopped:
        typer.echo(f"stopped after {run.steps_done} steps; continue with --resume")
        return
    card = {
        "summary": (f"{dim}-D DCDM network ({arch}, weights shared across levels) for "
                    "pressure-Poisson systems with fluid/solid/air cells."),
        "training": {"family": FAMILY, "split": "train", "grids": [[g] * dim for g in grids],
                     "batches": run.batches, "matrices_per_grid": systems, "n_obstacles": n_obstacles,
                     "ritz_vectors": ritz, "low_fraction": low_fraction, "low_weight": low_weight, "steps": steps,
                     "pool_every": pool_every, "pool_iters": pool_iters, "pool_fraction": pool_fraction,
                     "batch": batch, "lr": lr, "optimizer": "Adam, cosine decay", "seed": seed,
                     "loss": loss if loss == "paper" else f"pcg ({loss_steps} steps)",
                     "data_seconds": round(t_assemble + run.data_seconds, 1),
                     "wall_seconds": round(t_assemble + run.wall_seconds, 1),
                     "torch_threads": torch.get_num_threads()},
        "final_loss": run.final_loss,
        "loss_history_every_50": run.loss_history(50),
    }
    if sizes:
        held_out = 3
        card["measured"] = [{"grid": f"{n}^{dim}",
                             **measure(run.model, obstacle_systems(dim, n, held_out, seed + 1, split="test")),
                             "held_out": f"split=test seed {seed + 1}"} for n in sizes]
    out = out or workdir / f"dcdm-{dim}d.pt"
    save_model(run.model, out, card)
    typer.echo(json.dumps({"weights": str(out), "final_loss": run.final_loss,
                           "seconds": round(t_assemble + run.wall_seconds, 1), "measured": card.get("measured")},
                          default=float))


if __name__ == "__main__":
    from linsolve.cli_support import run_app

    run_app(app, "python -m datagen.dcdm_training")

"""The ``operators`` command: list the surrogate models, train one on channel trajectories, roll
it out autoregressively, evaluate a rollout against the filtered DNS.

Exit status: 0 success; 2 bad input (unknown model, bad option value, a file that is not a channel
trajectory file, NaN in the data, a checkpoint of another model or grid, a trajectory index out of
range, an output that exists without --resume/--overwrite), one line on stderr and nothing
written; 1 a run that failed: a rollout that went non-finite or left the energy band (the file is
written up to that step and records it), a training loss that became non-finite; 130/143 on
Ctrl-C/SIGTERM (a training run keeps its last epoch's checkpoint; --resume continues it).
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import typer
from typer.core import TyperGroup

from linsolve.cli_support import check_output_path, print_table, report_interrupt, run_app
from linsolve.core.errors import OptionError, SolverError
from linsolve.core.spec import parse_option_pairs

PROG = "operators"


class _Group(TyperGroup):
    """Standalone invocations report bad input as one line and exit 2 (linsolve's shared runner)."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args=args, prog_name=prog_name, complete_var=complete_var,
                                standalone_mode=False, **extra)

        def call(args=None, prog_name=None, standalone_mode=False):
            from .errors import OperatorError

            try:
                rv = super(_Group, self).main(args=args, prog_name=prog_name, complete_var=complete_var,
                                              standalone_mode=standalone_mode, **extra)
            except OperatorError as exc:  # the models' bad-input errors (UnknownModelError, ...)
                if isinstance(exc, SolverError):
                    raise
                raise CLIError(str(exc)) from None
            if isinstance(rv, int) and not isinstance(rv, bool) and rv != 0:
                sys.exit(rv)
            return rv

        run_app(call, PROG, args)


app = typer.Typer(cls=_Group, add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  help="Neural-operator surrogates of turbulent channel flow: train, roll out, evaluate.",
                  epilog="Exit status: 0 success, 1 a failed run (rollout left the energy band or went "
                         "non-finite), 2 bad input (one line on stderr).")


class CLIError(SolverError):
    pass


def _err(msg: str) -> None:
    print(f"{PROG}: error: {msg}", file=sys.stderr)


def _want_progress(quiet: bool) -> bool:
    """Bars for people at a terminal only; OPERATORS_PROGRESS=1/0 forces them on or off."""
    if quiet:
        return False
    env = os.environ.get("OPERATORS_PROGRESS")
    if env is not None:
        return env.strip().lower() not in ("", "0", "false", "no", "off")
    return sys.stderr.isatty()


class _Bar:
    def __init__(self, enabled: bool, what: str):
        self.enabled, self.what, self.p, self.task = enabled, what, None, None

    def __enter__(self):
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self.p = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                              TimeRemainingColumn(), transient=True, console=Console(stderr=True))
            self.p.__enter__()
        return self

    def update(self, desc: str, done: int, total: int):
        if self.p is None:
            return
        if self.task is None:
            self.task = self.p.add_task(desc, total=total)
        self.p.update(self.task, description=desc, completed=done, total=total)

    def __exit__(self, *exc):
        if self.p is not None:
            self.p.__exit__(*exc)
        return False


def _writable(out: Path) -> None:
    """Refuse an output that cannot be written, before any work and without creating anything
    (missing parent directories are made only when the output is written)."""
    anc = Path(out).parent
    while not anc.exists() and anc != anc.parent:
        anc = anc.parent
    if not anc.is_dir():
        raise CLIError(f"cannot write --out {str(out)!r}: {str(anc)!r} is not a directory")
    if not Path(out).exists():
        check_output_path(anc / Path(out).name, "--out", error=CLIError)


def _existing_file(path: Path, what: str) -> Path:
    if not Path(path).exists():
        raise CLIError(f"{what} {str(path)!r} does not exist")
    return Path(path)


@app.command()
def models():
    """List the registered models with their parameter counts and input windows."""
    import torch

    import operators

    rows = []
    for name in operators.available_models():
        torch.manual_seed(0)
        m = operators.make_model(name)
        n = sum(p.numel() for p in m.parameters())
        rows.append((name, f"{n:,}", str(m.in_steps), json.dumps(m.config, sort_keys=True)))
    print_table("models", ("name", "parameters", "in_steps", "default config"), rows, width=160)


@app.command()
def train(
    model: str = typer.Option("ifactformer-m", "--model", help="registry name (operators models)"),
    data: Path = typer.Option(..., "--data", help="channel trajectory file (datagen generate channel)"),
    out: Path = typer.Option(..., "--out", help="run directory (last.pt, best.pt, metrics.csv/json)"),
    epochs: int = typer.Option(30, "--epochs"),
    batch: int = typer.Option(5, "--batch"),
    lr: float = typer.Option(5e-4, "--lr", help="AdamW learning rate"),
    weight_decay: float = typer.Option(0.01, "--weight-decay", help="AdamW weight decay"),
    step_size: int = typer.Option(5, "--step-size", help="StepLR: epochs between decays"),
    gamma: float = typer.Option(0.7, "--gamma", help="StepLR: decay factor"),
    rollout_steps: int = typer.Option(1, "--rollout-steps", help="K > 1 adds a K-step autoregressive loss"),
    project: bool = typer.Option(False, "--project", help="project predictions onto divergence-free fields"),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda"),
    seed: int = typer.Option(0, "--seed", help="seeds the weights and the data order"),
    noise: float = typer.Option(0.0, "--noise", help="training-input noise, in units of each component's std"),
    stats_weight: float = typer.Option(0.0, "--stats-weight",
                                       help="weight of the plane-statistics loss (mean, rms, u'v' profiles)"),
    select: str = typer.Option("val-loss", "--select", help="what picks best.pt: val-loss or rollout "
                               "(statistics of validation rollouts)"),
    select_steps: int | None = typer.Option(None, "--select-steps", help="with --select rollout: steps of "
                                            "each validation rollout (default: the trajectory's length)"),
    init: Path | None = typer.Option(None, "--init", help="start from this checkpoint's weights (fine-tuning)"),
    ema: float = typer.Option(0.0, "--ema", help="decay of a moving average of the weights per optimiser step "
                              "(e.g. 0.99); the average is validated and saved; 0: off"),
    test_trajectories: int = typer.Option(1, "--test-trajectories", help="trajectories held out (the last ones)"),
    threads: int | None = typer.Option(None, "--threads", help="torch threads"),
    model_opt: list[str] = typer.Option(None, "--model-opt", help="model config override key=value (repeatable)"),
    resume: bool = typer.Option(False, "--resume", help="continue the run in --out"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace the run in --out"),
    quiet: bool = typer.Option(False, "--quiet", help="print only errors"),
):
    """Train a surrogate (AdamW, StepLR, per-sample relative L2 loss); a checkpoint per epoch."""
    from .train import train as run_train

    _existing_file(data, "--data")
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {str(out)!r} exists and is not a directory")
    _writable(out / "last.pt") if out.is_dir() else _writable(out)
    cfg = parse_option_pairs(model_opt, "--model-opt")
    bar = _Bar(_want_progress(quiet), "train")
    def log(line):  # rich's live bar moves printed lines above itself
        if not quiet:
            print(line, flush=True)

    try:
        with bar:
            summary = run_train(data, out, model, cfg, epochs=epochs, batch=batch, lr=lr, weight_decay=weight_decay,
                                step_size=step_size, gamma=gamma, rollout_steps=rollout_steps, project=project,
                                device=device, seed=seed, test=test_trajectories, noise=noise,
                                stats_weight=stats_weight, select=select, select_steps=select_steps, init=init,
                                ema=ema, threads=threads, resume=resume,
                                overwrite=overwrite, log=log,
                                progress=lambda e, b, n: bar.update(f"epoch {e}", b, n))
    except FloatingPointError as exc:
        _err(f"{exc}; the last good epoch's checkpoint is in {str(out)!r}")
        raise typer.Exit(1) from None
    except KeyboardInterrupt as exc:
        if (out / "last.pt").exists():
            exc.add_note(f"the last finished epoch is saved in {str(out / 'last.pt')!r}: the same command with "
                         "--resume continues from there")
        raise typer.Exit(report_interrupt(PROG, exc)) from None
    if not quiet:
        print(f"test (held-out trajectories {summary['test_trajectories']}) one-step relative L2: "
              f"{summary['test_one_step_rel_l2']:.4g}; best epoch {summary['best_epoch']}; {summary['parameters']:,} "
              f"parameters; wrote {out}/best.pt")


@app.command()
def rollout(
    checkpoint: Path = typer.Option(..., "--checkpoint", help="a checkpoint of operators train"),
    data: Path = typer.Option(..., "--data", help="channel trajectory file giving the initial window"),
    trajectory: int = typer.Option(0, "--trajectory", help="trajectory index in --data"),
    steps: int = typer.Option(1000, "--steps", help="predicted snapshots"),
    out: Path = typer.Option(..., "--out", help="rollout file (HDF5, the channel trajectory layout)"),
    project: bool | None = typer.Option(None, "--project/--no-project",
                                        help="project onto divergence-free fields (default: as trained)"),
    band: str = typer.Option("0.5,2", "--band", help="stop when the energy leaves LO,HI x the reference's mean"),
    energy: str = typer.Option("tke", "--energy", help="tke (fluctuations) or total kinetic energy"),
    start: int = typer.Option(0, "--start", help="first snapshot of the initial window"),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda"),
    threads: int | None = typer.Option(None, "--threads", help="torch threads"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace --out"),
    quiet: bool = typer.Option(False, "--quiet", help="print only errors"),
):
    """Roll a trained surrogate out autoregressively; exit 1 if it leaves the energy band."""
    from .rollout import rollout as run_rollout

    _existing_file(checkpoint, "--checkpoint")
    _existing_file(data, "--data")
    if out.exists() and not overwrite:
        raise CLIError(f"--out {str(out)!r} exists; use --overwrite")
    _writable(out)
    bar = _Bar(_want_progress(quiet), "rollout")
    with bar:
        r = run_rollout(checkpoint, data, trajectory, steps, out, project=project, band=band, energy=energy,
                        start=start, device=device, threads=threads,
                        progress=lambda n, total: bar.update("rollout", n, total))
    if r.stopped_at_step is not None:
        _err(f"rollout stopped at step {r.stopped_at_step}: {r.reason}; {r.steps_completed} steps written to "
             f"{str(out)!r}")
        raise typer.Exit(1)
    if not quiet:
        print(f"wrote {out}: {r.steps_completed} steps inside the energy band, {r.seconds_per_step:.3g} s/step")


@app.command()
def evaluate(
    rollout_file: Path = typer.Argument(..., help="rollout, LES or DNS file in the channel trajectory layout"),
    reference: Path = typer.Option(..., "--reference", help="filtered DNS trajectories (same coarse grid)"),
    out: Path = typer.Option(..., "--out", help="report directory (JSON, Markdown, PNG)"),
    late: float = typer.Option(0.5, "--late", help="fraction of the predicted snapshots averaged for statistics"),
    trajectory: int | None = typer.Option(None, "--trajectory", help="reference trajectory (files that name none)"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace --out"),
    quiet: bool = typer.Option(False, "--quiet", help="print only errors"),
):
    """Per-step error, late-rollout statistics and spectra against the filtered DNS."""
    from .evaluate import evaluate as run_evaluate

    _existing_file(rollout_file, "rollout file")
    _existing_file(reference, "--reference")
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {str(out)!r} exists and is not a directory")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise CLIError(f"--out {str(out)!r} exists and is not empty; use --overwrite")
    _writable(out)
    rep = run_evaluate(rollout_file, reference, out, late=late, trajectory=trajectory, overwrite=overwrite)
    if not quiet:
        e = rep["statistics"]["errors"]
        step = rep["per_step"]["rel_l2"]
        print(f"wrote {out}/report.md: step-1 error {step[0]:.4g}" if step else f"wrote {out}/report.md",
              "; late statistics rel. L2: " + ", ".join(f"{k} {v:.3g}" for k, v in e.items()))


def main(argv=None):
    typer.main.get_command(app).main(args=argv, prog_name=PROG)


if __name__ == "__main__":
    main()


__all__ = ["app", "main", "OptionError"]

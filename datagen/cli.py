"""The ``datagen`` command: list problem families, generate a dataset, inspect, validate
and plot a generated file.

Exit status: 0 success; 2 bad input (unknown family or solver, bad option values,
malformed config, an output that exists without --resume/--overwrite, an unreadable
file), one line on stderr naming the problem; 1 a run that failed: with --strict a
sample that did not converge, or ``validate`` finding a sample whose stored solution does
not meet its tolerance; 130/143 on Ctrl-C/SIGTERM. A generate run that stops early writes
no final file; the chunks it finished stay under OUT.parts/ and its one error line says so
and that the same command with --resume continues (with none finished, nothing is left).
"""
from __future__ import annotations

import contextlib
import json
import os
import shlex
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import typer
from typer.core import TyperGroup

from linsolve import OptionError, SolverError, parse_solver_spec
from linsolve.cli_support import check_output_path, one_line, print_table, report_interrupt, run_app
from linsolve.core.spec import parse_option_pairs

PROG = "datagen"


class _Group(TyperGroup):
    """Standalone invocations (the entry point and CliRunner alike) report bad input as
    one line and exit 2, via linsolve's shared runner."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args=args, prog_name=prog_name, complete_var=complete_var,
                                standalone_mode=False, **extra)

        def call(args=None, prog_name=None, standalone_mode=False):
            rv = super(_Group, self).main(args=args, prog_name=prog_name, complete_var=complete_var,
                                          standalone_mode=standalone_mode, **extra)
            # click hands back typer.Exit(code) as the return value outside standalone mode
            if isinstance(rv, int) and not isinstance(rv, bool) and rv != 0:
                sys.exit(rv)
            return rv

        global _ARGV
        _ARGV = list(sys.argv[1:] if args is None else args)
        run_app(call, PROG, args)


_ARGV: list[str] = []


app = typer.Typer(cls=_Group, add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  help="Generate PDE training data by solving ordered sequences of linear systems; "
                       "store it in The Well's HDF5 layout.",
                  epilog="Exit status: 0 success, 1 a failed run (--strict non-convergence, validation "
                         "failure), 2 bad input (one line on stderr).")


class CLIError(SolverError):
    pass


def _err(msg: str) -> None:
    print(f"{PROG}: error: {msg}", file=sys.stderr)


def _out_file(raw, example: str = "data.h5") -> Path | None:
    """--out names a file; one ending with a path separator means a directory (which the
    CLI has no form for) and, through Path(), would become a file of the directory's name."""
    if raw is None:
        return None
    text = os.fspath(raw)
    if text.endswith(os.sep) or (os.altsep and text.endswith(os.altsep)):
        raise CLIError(f"--out {text!r} ends with a path separator; it names the output file, "
                       f"e.g. {os.path.join(text, example)!r}")
    return Path(text)


def _want_progress(console, quiet: bool) -> bool:
    """The bar is for people at a terminal; logs and pipes get the summary only (so an error
    stays one line). DATAGEN_PROGRESS=1/0 forces it on or off."""
    if quiet:
        return False
    env = os.environ.get("DATAGEN_PROGRESS")
    if env is not None:
        return env.strip().lower() not in ("", "0", "false", "no", "off")
    return console.is_terminal


def _console(quiet: bool = False):
    from rich.console import Console

    return Console(stderr=True, quiet=quiet)


# --- problems --------------------------------------------------------------------------
#: problems `generate` runs itself instead of through a registered family, with their row
#: of `datagen problems` (name -> dims, kind, description, options); `problem_names` and
#: the listing both read it, so a problem `generate` accepts cannot be left out
CLI_PROBLEMS = {
    "channel": ("3", "time-varying fields", "filtered coarse trajectories of a turbulent channel-flow DNS "
                "(velocity, optionally pressure)",
                "options, not --param: --preset, --re-tau, --trajectories, --snapshots, --every, --spinup, "
                "--coarse-grid, --filter, --restart, --device, --dt, --box, --pressure"),
}


def problem_names() -> list[str]:
    """Every PROBLEM `datagen generate` accepts: the registered families and CLI_PROBLEMS."""
    from .family import available_families

    return sorted({*available_families(), *CLI_PROBLEMS})


@app.command()
def problems():
    """List the problem families and their parameters (give them as --param key=value)."""
    from .family import get_family

    rows = []
    for name in problem_names():
        if name in CLI_PROBLEMS:
            rows.append((name, *CLI_PROBLEMS[name]))
            continue
        cls = get_family(name)
        params = "\n".join(f"{k} ({v[0]!r}): {v[1]}" for k, v in cls.params.items()) or "-"
        kind = ("SPD" if cls.symmetric else "nonsymmetric") + (", shared matrix" if cls.shared_matrix else "")
        rows.append((name, ",".join(map(str, cls.dims)), kind,
                     cls.description or (cls.__doc__ or "").strip().split("\n")[0], params))
    print_table("datagen problem families", ("name", "dims", "matrix", "description", "parameters (default: help)"),
                rows, width=160)


# --- generate --------------------------------------------------------------------------
class _Bar:
    """rich progress bar with systems/s, ETA and the running mean iteration count."""

    def __init__(self, console, title: str):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[rate]} systems/s"), TextColumn("ETA"),
                                 TimeRemainingColumn(), TextColumn("mean its {task.fields[its]}"),
                                 console=console)
        self.title = title
        self.its: list[int] = []

    def start(self, total, done):
        self.t0 = time.perf_counter()
        self.progress.start()
        self.task = self.progress.add_task(self.title, total=total, completed=done, rate="-", its="-")

    def sample(self, iterations, converged):
        self.chunk([iterations], [converged])

    def chunk(self, iterations, converged):
        self.its.extend(iterations)
        rate = len(self.its) / max(time.perf_counter() - self.t0, 1e-9)
        self.progress.update(self.task, advance=len(iterations), rate=f"{rate:.1f}",
                             its=f"{statistics.fmean(self.its):.1f}")

    def finish(self):
        self.progress.stop()


def _summary_table(s, cfg):
    from rich.table import Table

    t = Table(title=f"{cfg.problem}: {s.n} samples on grid {'x'.join(map(str, cfg.grid))} with {cfg.solver}")
    t.add_column("quantity")
    t.add_column("value", justify="right")
    its = np.asarray(s.iterations)
    rows = [("output", str(s.out)),
            ("run on", s.workers),
            ("samples solved in this run", str(s.solved_now)),
            ("chunks resumed from disk", f"{s.resumed_chunks} of {s.n_chunks}"),
            ("wall time, s (incl. I/O)", f"{s.wall_time:.3f}"),
            ("systems/s (this run)", f"{s.systems_per_s:.2f}" if s.solved_now else "-"),
            ("solve time, s", f"{s.solve_time:.3f}"),
            ("iterations mean / median / max", f"{its.mean():.1f} / {np.median(its):.0f} / {its.max()}"),
            ("non-converged samples", str(s.non_converged))]
    for k, v in rows:
        t.add_row(k, v)
    return t


@app.command()
def generate(
    problem: str | None = typer.Argument(None, help="problem family (see `datagen problems`)"),
    n: int | None = typer.Option(None, "--n", help="number of samples"),
    grid: str | None = typer.Option(None, "--grid", help="G (square/cube) or GX,GY[,GZ]; default 64"),
    dim: int | None = typer.Option(None, "--dim", help="2 or 3 where the family has both (default 2)"),
    solver: str | None = typer.Option(None, "--solver", help="registered linsolve solver, optionally with "
                                      "options NAME:key=value:... (cg:pc=amg:rtol=1e-8); default cg"),
    solver_opt: list[str] | None = typer.Option(None, "--solver-opt", help="solver option key=value "
                                                "(int/float/bool/str, JSON for dicts); repeatable"),
    order: str | None = typer.Option(None, "--order", help="ordering method: none, greedy, ...; default greedy"),
    chunk: int | None = typer.Option(None, "--chunk", help="systems per chunk (solver state carried "
                                     "within a chunk, reset between chunks); default 32"),
    seed: int | None = typer.Option(None, "--seed", help="random seed; default 0"),
    # str, not Path: Path() drops the trailing separator of a directory-like "newdir/"
    out: str | None = typer.Option(None, "--out", help="output HDF5 file"),
    param: list[str] | None = typer.Option(None, "--param", help="family parameter key=value; repeatable"),
    config: Path | None = typer.Option(None, "--config", help="JSON or TOML file with the same keys "
                                       "(problem, n, grid, dim, solver, solver_opt, order, chunk, seed, "
                                       "param, out); command-line options win"),
    resume: bool = typer.Option(False, "--resume", help="continue an interrupted run from its last complete chunk"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace an existing output or unfinished run"),
    quiet: bool = typer.Option(False, "--quiet", help="print only errors"),
    strict: bool = typer.Option(False, "--strict", help="a non-converged sample fails the run (exit 1)"),
    re_tau: float | None = typer.Option(None, "--re-tau", help="channel: friction Reynolds number"),
    trajectories: int | None = typer.Option(None, "--trajectories", help="channel: trajectories (seeds)"),
    snapshots: int | None = typer.Option(None, "--snapshots", help="channel: snapshots per trajectory"),
    every: int | None = typer.Option(None, "--every", help="channel: DNS steps between snapshots"),
    spinup: int | None = typer.Option(None, "--spinup", help="channel: DNS steps of spin-up"),
    coarse_grid: str | None = typer.Option(None, "--coarse-grid", help="channel: stored grid NX,NY,NZ"),
    filter_: str | None = typer.Option(None, "--filter", help="channel: box or spectral"),
    restart: str | None = typer.Option(None, "--restart", help="channel: checkpoint of developed flow, or a "
                                       "shipped state's name (re180-reduced)"),
    device: str | None = typer.Option(None, "--device", help="channel: cpu, torch or cuda"),
    preset: str | None = typer.Option(None, "--preset", help="channel: small (CPU minutes), surrogate (the CPU "
                                      "training set, about an hour) or paper (GPU)"),
    dt: float | None = typer.Option(None, "--dt", help="channel: DNS time step"),
    box: str | None = typer.Option(None, "--box", help="channel: box lengths LX,LZ (wall-normal is 2)"),
    pressure: bool = typer.Option(False, "--pressure", help="channel: store the pressure too"),
    sgs: str | None = typer.Option(None, "--sgs", help="channel: sub-grid model wale or dsm (an LES)"),
    workers: int | None = typer.Option(None, "--workers", help="solve on a local Dask cluster of N single-threaded "
                                       "worker processes (one task per chunk or channel trajectory)"),
    scheduler: str | None = typer.Option(None, "--scheduler", help="submit to the running Dask scheduler at this "
                                         "address (default $DASK_SCHEDULER_ADDRESS); OUT must be on a filesystem "
                                         "the workers share"),
):
    """Sample, order, solve in chunks and store a dataset.

    Exit status: 0 done; 2 bad input (nothing written that looks complete); 1 with
    --strict when a sample does not converge; 130/143 on Ctrl-C/SIGTERM. A run that fails
    or is killed keeps its finished chunks under OUT.parts/ (the error line says how many)
    and the same command with --resume continues from its last complete chunk; one that
    fails before finishing a chunk leaves nothing behind."""
    from .cluster import WorkerLostError
    from .pipeline import GenerateConfig, NonConvergedError, PipelineError, load_config_file
    from .pipeline import generate as run

    channel_opts = {"re_tau": re_tau, "trajectories": trajectories, "snapshots": snapshots, "every": every,
                    "spinup": spinup, "coarse_grid": coarse_grid, "filter": filter_, "restart": restart,
                    "device": device, "preset": preset, "dt": dt, "box": box, "pressure": pressure or None,
                    "sgs": sgs}
    out = _out_file(out)
    # --solver NAME:key=value:... names the solver and options; --solver-opt wins over them
    spec_opt = {}
    if solver is not None:
        solver, spec_opt = parse_solver_spec(solver)
    solver_opts = {**spec_opt, **parse_option_pairs(solver_opt, "--solver-opt")}
    if problem == "channel":
        ignored = {"--n": n, "--dim": dim, "--order": order, "--chunk": chunk, "--param": param or None,
                   "--config": config, "--strict": strict or None}
        stray = [k for k, v in ignored.items() if v is not None]
        if stray:  # the channel problem reads none of them: refused, not ignored
            raise CLIError(f"{stray[0]} does not apply to the channel problem (it takes --trajectories, "
                           "--snapshots, --coarse-grid, ...; see --help)")
        _generate_channel(channel_opts, grid=grid, solver=solver, solver_opt=solver_opts, seed=seed, out=out,
                          resume=resume, overwrite=overwrite, quiet=quiet, workers=workers, scheduler=scheduler)
        return
    stray = [k for k, v in channel_opts.items() if v is not None]
    if stray:
        raise CLIError(f"--{stray[0].replace('_', '-')} applies only to the channel problem")

    data = load_config_file(config) if config is not None else {}
    data = {k.replace("-", "_"): v for k, v in data.items()}
    for key, alias in (("solver_opt", "solver_opts"), ("param", "params")):
        if alias in data:
            data[key] = data.pop(alias)
        if isinstance(data.get(key), list):
            data[key] = parse_option_pairs(data[key], key.replace("_", "-"))
    given = {"problem": problem, "n": n, "grid": grid, "dim": dim, "solver": solver, "order": order,
             "chunk": chunk, "seed": seed}
    data.update({k: v for k, v in given.items() if v is not None})
    if solver_opts:
        data["solver_opt"] = {**(data.get("solver_opt") or {}), **solver_opts}
    if param:
        data["param"] = {**(data.get("param") or {}), **parse_option_pairs(param, "--param")}
    out = out if out is not None else data.get("out")
    if out is not None and not isinstance(out, (str, Path)):
        raise CLIError(f"out must be a file path, got {out!r}")
    out = _out_file(out)
    resume = resume or _config_flag(data, "resume")
    overwrite = overwrite or _config_flag(data, "overwrite")
    quiet = quiet or _config_flag(data, "quiet")
    strict = strict or _config_flag(data, "strict")
    workers = workers if workers is not None else data.get("workers")
    scheduler = scheduler if scheduler is not None else data.get("scheduler")
    if data.get("problem") is None:
        raise CLIError("missing PROBLEM (a family name; see `datagen problems`)")
    if data["problem"] in CLI_PROBLEMS:  # only from --config: the argument was dispatched above
        raise CLIError(f"the {data['problem']} problem takes no --config; give its options on the command line")
    if isinstance(data["problem"], str) and data["problem"] not in problem_names():
        raise CLIError(f"unknown problem family {data['problem']!r}; available: {', '.join(problem_names())}")
    if data.get("n") is None:
        raise CLIError("missing --n (number of samples)")
    if out is None:
        raise CLIError("missing --out (output HDF5 file)")
    data.setdefault("grid", 64)
    cfg = GenerateConfig.from_mapping(data)
    console = _console(quiet)
    bar = _Bar(console, f"{cfg.problem} {'x'.join(map(str, cfg.grid))}") if _want_progress(console, quiet) else None
    command = shlex.join([PROG, *_ARGV])
    try:
        summary = run(cfg, Path(out), resume=resume, overwrite=overwrite, strict=strict, command=command,
                      progress=bar, workers=workers, scheduler=scheduler)
    except (NonConvergedError, WorkerLostError) as exc:
        _err(one_line(exc))
        raise typer.Exit(1) from None
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM: say where the resumable state is
        raise typer.Exit(report_interrupt(PROG, exc)) from None
    except PipelineError:
        raise
    except OSError as exc:
        _err(f"writing {str(out)!r} failed: {one_line(exc)}")
        raise typer.Exit(1) from None
    if not quiet:
        from rich.console import Console

        if summary.already_complete:
            console.print(f"{out} is already complete; nothing to do")
        Console().print(_summary_table(summary, cfg))


def _config_flag(data: dict, key: str) -> bool:
    """A true/false key of a config file (bool("no") would be True)."""
    v = data.get(key, False)
    if not isinstance(v, bool):
        raise CLIError(f"config key {key!r} must be true or false, got {v!r}")
    return v


def _generate_channel(opts: dict, *, grid, solver, solver_opt: dict, seed, out, resume, overwrite, quiet, workers=None,
                      scheduler=None):
    """`datagen generate channel ...`: filtered coarse trajectories of the channel DNS
    (datagen.channel.generate); resumable per trajectory like every other family. With
    --workers/--scheduler each trajectory is one Dask task (the spin-up runs here)."""
    import shutil

    from . import cluster
    from .channel import trajectories as channel_trajectories
    from .channel.dns import ChannelBlowUp
    from .pipeline import add_note

    if out is None:
        raise CLIError("missing --out (output HDF5 file)")
    out = Path(out)
    kw = {k: v for k, v in opts.items() if v is not None}
    if kw.get("filter") not in (None, "box", "spectral"):
        raise CLIError(f"--filter must be box or spectral, got {kw['filter']!r}")
    if kw.get("restart") is not None:
        from .channel.states import resolve_restart

        try:
            resolve_restart(kw["restart"])
        except OptionError as exc:
            raise CLIError(str(exc)) from None
    check_output_path(out, "output", make_parents=True, error=CLIError)
    parts = out.with_name(out.name + ".parts")
    if parts.exists() and not parts.is_dir():
        raise CLIError(f"{str(parts)!r} (where an unfinished run is kept) exists and is not a directory")
    if out.exists() or parts.exists():
        if not (overwrite or resume):
            raise CLIError(f"{str(out)!r} exists (or an unfinished run does); use --resume or --overwrite")
        if overwrite and parts.exists() and not (parts / "config.json").exists():
            raise CLIError(f"{parts} was not written by datagen; refusing to delete it")
    if grid is not None:
        kw["grid"] = grid
    if solver is not None:
        kw["solver"] = solver
    if solver_opt:
        kw["solver_options"] = dict(solver_opt)
    if seed is not None:
        kw["seed"] = seed
    session = cluster.connect(workers, scheduler)  # an unreachable scheduler fails here, before any work
    if overwrite:
        out.unlink(missing_ok=True)
        shutil.rmtree(parts, ignore_errors=True)
    console = _console(quiet)
    state = {"n": 0}
    # at a terminal one line rewritten in place; elsewhere whole lines, only when asked for
    # (DATAGEN_PROGRESS=1); with workers a trajectory's snapshots are reported when it completes
    show = _want_progress(console, quiet)
    end = "\r" if console.is_terminal else "\n"

    def progress(k, s):
        state["n"] += 1
        if show:
            console.print(f"trajectory {k} snapshot {s}", end=end)

    existed = parts.exists()
    try:
        with session:
            tasks = session.run if session.client is not None else None
            path = channel_trajectories.generate(out, progress=progress, tasks=tasks, **kw)
    except BaseException as exc:
        saved = sorted(parts.glob("traj_*.h5")) if parts.is_dir() else []
        # bad input (e.g. a configuration that differs from the saved run's) and a blow-up
        # (deterministic: the same command blows up again) are not fixed by --resume
        if saved and not isinstance(exc, (OptionError, ChannelBlowUp)):
            add_note(exc, f"{len(saved)} trajectories are saved in {str(parts)!r}: the same command with "
                          "--resume continues from there")
        elif not saved and not existed and parts.is_dir() and not (parts / "spinup.npz").exists():
            # bad input found inside, or a spin-up that blew up: leave nothing behind
            shutil.rmtree(parts, ignore_errors=True)
        if isinstance(exc, (ChannelBlowUp, cluster.WorkerLostError)):
            _err(f"the DNS blew up: {exc}" if isinstance(exc, ChannelBlowUp) else one_line(exc))
            raise typer.Exit(1) from None
        if isinstance(exc, KeyboardInterrupt):
            raise typer.Exit(report_interrupt(PROG, exc)) from None
        raise
    if not quiet:
        console.print(f"wrote {path} ({state['n']} snapshots computed in this run, {session.description})")


@app.command("les")
def les(
    source: Path = typer.Option(..., "--from", help="channel trajectory file (datagen generate channel)"),
    trajectory: int = typer.Option(-1, "--trajectory", help="trajectory whose first snapshot starts the LES "
                                   "(-1: the last, the held-out one)"),
    sgs: str = typer.Option("wale", "--sgs", help="sub-grid model: wale, dsm, or none (coarse DNS)"),
    snapshots: int | None = typer.Option(None, "--snapshots", help="snapshots to write (default: the file's)"),
    steps: int | None = typer.Option(None, "--steps-per-snapshot", help="LES steps per snapshot interval "
                                     "(default: the fewest keeping the starting CFL <= 0.5)"),
    device: str = typer.Option("cpu", "--device", help="cpu, torch or cuda"),
    out: str | None = typer.Option(None, "--out", help="output HDF5 file (channel trajectory layout)"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace an existing output"),
    quiet: bool = typer.Option(False, "--quiet", help="print only errors"),
):
    """Large-eddy simulation on the coarse grid of a channel file, started from the first
    snapshot of one trajectory; written in the channel trajectory layout (like a rollout).

    Exit status: 0 done; 2 bad input; 1 the LES blew up (nothing written)."""
    from .channel.dns import ChannelBlowUp
    from .channel.les import run_les

    out = _out_file(out)
    if out is None:
        raise CLIError("missing --out (output HDF5 file)")
    model = None if sgs == "none" else sgs
    if model not in ("wale", "dsm", None):
        raise CLIError(f"--sgs must be wale, dsm or none, got {sgs!r}")
    if not source.is_file():
        raise CLIError(f"--from {str(source)!r} does not exist")
    check_output_path(out, "output", make_parents=True, error=CLIError)
    if out.exists() and not overwrite:
        raise CLIError(f"{str(out)!r} exists; use --overwrite")
    console = _console(quiet)

    def progress(s, sec):
        # at a terminal one line rewritten in place; in a log, a whole line every 10th snapshot
        if quiet:
            return
        if console.is_terminal:
            console.print(f"snapshot {s} ({sec:.2f} s)", end="\r")
        elif s % 10 == 0:
            console.print(f"snapshot {s} ({sec:.2f} s)")

    try:
        res = run_les(source, out, trajectory=trajectory, sgs=model, snapshots=snapshots, steps_per_snapshot=steps,
                      device=device, progress=progress)
    except ChannelBlowUp as exc:
        _err(one_line(exc))
        raise typer.Exit(1) from None
    if not quiet:
        sec = res["seconds_per_snapshot"]
        console.print(f"wrote {out}: {len(sec) + 1} snapshots, dt {res['dt']:.4g} ({res['steps_per_snapshot']} steps "
                      f"per snapshot), {statistics.median(sec) if sec else 0:.3f} s per snapshot interval")


# --- inspect / validate / plot ------------------------------------------------------------
def _tree(f) -> list[tuple[str, str]]:
    rows = []

    def visit(name, obj):
        import h5py

        kind = f"{obj.dtype} {obj.shape}" if isinstance(obj, h5py.Dataset) else "group"
        attrs = ", ".join(sorted(obj.attrs))
        rows.append((name, f"{kind}" + (f"  @{attrs}" if attrs else "")))

    f.visititems(visit)
    return rows


def inspect_summary(path: Path) -> dict:
    from . import storage

    with storage.open_file(path) as f:
        if storage.is_trajectory_file(f):
            return _trajectory_summary(path, f)
        stats = storage.read_stats(f)
        ins, outs = storage.field_names(f)
        fields = {}
        for name in ins + outs:
            ds = storage.field_dataset(f, name)
            arr = ds[()]
            fields[name] = {"role": "input" if name in ins else "output", "group": ds.parent.name.strip("/"),
                            "shape": list(ds.shape), "min": float(arr.min()), "max": float(arr.max()),
                            "mean": float(arr.mean())}
        its = stats["iterations"]
        return {
            "path": str(path), "dataset_name": str(f.attrs["dataset_name"]),
            "n_trajectories": int(f.attrs["n_trajectories"]),
            "grid": [int(f["dimensions"][ax].shape[0]) for ax in f["dimensions"].attrs["spatial_dims"]],
            "fields": fields, "config": storage.read_config(f), "command": str(f.attrs["command"]),
            "solver": json.loads(f["solver_stats"].attrs["solver"]),
            "order_method": str(f["ordering"].attrs["method"]), "chunk_size": int(f["ordering"].attrs["chunk_size"]),
            "stats": {"converged": int(stats["converged"].sum()),
                      "non_converged": int((~stats["converged"]).sum()),
                      "iterations_mean": float(its.mean()), "iterations_min": int(its.min()),
                      "iterations_max": int(its.max()),
                      "relative_residual_max": float(stats["relative_residual"].max()),
                      "solve_time_total": float(stats["wall_time"].sum())},
            "schema_problems": storage.check_schema(f), "tree": _tree(f),
        }


def _trajectory_fields(f) -> dict:
    fields = {}
    for grp in ("t0_fields", "t1_fields", "t2_fields"):
        for name, ds in (f[grp].items() if grp in f else []):
            arr = ds[()]
            fields[name] = {"role": "field", "group": grp, "shape": list(ds.shape),
                            "min": float(np.nanmin(arr)), "max": float(np.nanmax(arr)),
                            "mean": float(np.nanmean(arr)), "finite": bool(np.all(np.isfinite(arr)))}
    return fields


def _trajectory_summary(path: Path, f) -> dict:
    """Time-dependent datasets (the channel family) have trajectories, not solver statistics."""
    scalars = {k: (v[()].item() if getattr(v, "shape", None) == () else None) for k, v in f.get("scalars", {}).items()}
    return {"path": str(path), "dataset_name": str(f.attrs["dataset_name"]),
            "n_trajectories": int(f.attrs["n_trajectories"]),
            "grid": [int(f["dimensions"][ax].shape[0]) for ax in f["dimensions"].attrs["spatial_dims"]],
            "fields": _trajectory_fields(f), "command": str(f.attrs.get("command", "")),
            "scalars": {k: v for k, v in scalars.items() if v is not None}, "stats": {},
            "schema_problems": [], "tree": _tree(f), "kind": "trajectories"}


@contextlib.contextmanager
def _readable(path: Path):
    """A datagen file missing a part the command reads is bad input named in one line."""
    try:
        yield
    except SolverError:
        raise
    except (KeyError, ValueError, IndexError) as exc:
        from . import storage

        with storage.open_file(path) as f:
            problems = storage.check_schema(f) if not storage.is_trajectory_file(f) else []
        if not problems and not isinstance(exc, KeyError):
            raise  # not the file's fault
        why = "; ".join(problems) or " ".join(str(exc).split())
        raise CLIError(f"{str(path)!r} is damaged or not in the datagen layout: {why}") from None


@app.command()
def inspect(
    file: Path = typer.Argument(..., help="a file written by `datagen generate`"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
):
    """Show a generated file's schema, fields and solver statistics."""
    from rich.console import Console
    from rich.table import Table

    with _readable(file):
        s = inspect_summary(file)
    if as_json:
        print(json.dumps(s, indent=1))
        return
    con = Console(width=140)
    if s.get("kind") == "trajectories":
        con.print(f"[bold]{s['path']}[/bold]: {s['dataset_name']}, {s['n_trajectories']} trajectories, grid "
                  f"{'x'.join(map(str, s['grid']))}")
        con.print(f"scalars: {json.dumps(s['scalars'], sort_keys=True, default=str)}")
    else:
        con.print(f"[bold]{s['path']}[/bold]: {s['dataset_name']}, {s['n_trajectories']} samples, grid "
                  f"{'x'.join(map(str, s['grid']))}, ordering {s['order_method']} in chunks of {s['chunk_size']}")
        con.print(f"command: {s['command']}")
        con.print(f"solver: {json.dumps(s['solver'], sort_keys=True)}")
    t = Table(title="schema")
    t.add_column("path")
    t.add_column("type / attributes")
    for row in s["tree"]:
        t.add_row(*row)
    con.print(t)
    t = Table(title="fields")
    for c in ("field", "role", "group", "shape", "min", "max", "mean"):
        t.add_column(c)
    for name, d in s["fields"].items():
        t.add_row(name, d["role"], d["group"], str(tuple(d["shape"])), f"{d['min']:.4g}", f"{d['max']:.4g}",
                  f"{d['mean']:.4g}")
    con.print(t)
    st = s["stats"]
    if not st:
        return
    t = Table(title="solver statistics")
    t.add_column("quantity")
    t.add_column("value", justify="right")
    for k, v in st.items():
        t.add_row(k.replace("_", " "), f"{v:.4g}" if isinstance(v, float) else str(v))
    con.print(t)
    if s["schema_problems"]:
        con.print("[red]schema problems:[/red] " + "; ".join(s["schema_problems"]))


@app.command()
def validate(
    file: Path = typer.Argument(..., help="a file written by `datagen generate`"),
    samples: int = typer.Option(8, "--samples", min=0, help="how many random samples to re-assemble and check"),
    seed: int = typer.Option(0, "--seed", min=0, help="seed choosing the samples"),
):
    """Check the schema, then re-assemble a random subset of systems from the stored
    parameters and verify ||b - A x|| / ||b|| of the stored (fp32) solution against the
    stored tolerance, allowing the worst-case effect of fp32 rounding. Exit 1 on failure."""
    from . import storage
    from .pipeline import validate_file

    with storage.open_file(file) as f:
        if storage.is_trajectory_file(f):  # no systems to re-assemble; check the fields
            fields = _trajectory_fields(f)
            bad = [n for n, d in fields.items() if not d["finite"]]
            for n, d in fields.items():
                print(f"  field {n} {tuple(d['shape'])}: {'finite' if d['finite'] else 'NON-FINITE values'}")
            print("OK: trajectory dataset, every field finite" if fields and not bad else "FAILED")
            if bad or not fields:
                raise typer.Exit(1)
            return
    with _readable(file):
        report = validate_file(file, samples=samples, seed=seed)
    for line in report.lines():
        print(line)
    if not report.ok:
        raise typer.Exit(1)


@app.command()
def plot(
    file: Path = typer.Argument(..., help="a file written by `datagen generate`"),
    index: int | None = typer.Option(None, "--index", help="sample files: sample index (sample order; default 0)"),
    trajectory: int | None = typer.Option(None, "--trajectory", help="trajectory files (channel DNS, LES, "
                                          "rollouts): which trajectory (default 0)"),
    snapshot: int | None = typer.Option(None, "--snapshot", help="trajectory files: which snapshot (default 0)"),
    out: str = typer.Option(..., "--out", help="PNG file to write"),
):
    """Plot one sample (its input fields, its solution and the solver's residual history), or
    one snapshot of a channel trajectory file (x-z slices of u at y+ ~ 15 and on the centre
    line, an x-y slice, and the mean profile U+(y+))."""
    from . import storage
    from .plotting import plot_sample, plot_trajectory

    with storage.open_file(file) as f:
        trajectories = storage.is_trajectory_file(f)
    if trajectories and index is not None:
        raise CLIError(f"{str(file)!r} holds trajectories: choose the snapshot with --trajectory and --snapshot, "
                       "not --index")
    if not trajectories and (trajectory is not None or snapshot is not None):
        raise CLIError(f"{str(file)!r} holds samples of solved systems: choose one with --index "
                       "(--trajectory and --snapshot are for trajectory files)")
    out = _out_file(out, "sample.png")
    # the trajectory figure is written atomically (temporary file + rename)
    check_output_path(out, "--out", replaces=trajectories, error=CLIError)
    try:
        with _readable(file):
            if trajectories:
                plot_trajectory(file, trajectory or 0, snapshot or 0, out)
            else:
                plot_sample(file, index or 0, out)
    except OSError as exc:  # e.g. the disk filling up while matplotlib writes
        raise CLIError(f"writing --out {str(out)!r} failed: {exc.strerror or exc}") from None


def main(argv=None):
    typer.main.get_command(app).main(args=argv, prog_name=PROG)


if __name__ == "__main__":
    main()

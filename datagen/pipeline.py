"""The generation pipeline: sample -> features -> order -> chunk -> solve -> store.

``generate(config, out)`` samples ``n`` parameter sets with a seeded generator (a family
with ``independent_samples``, such as darcy and helmholtz, draws sample i from its own
stream ``sample_stream(seed, i)``, so it depends only on the seed and i), computes
each sample's feature vector, orders the samples (``linsolve.order_systems`` when
``linsolve.recycling.ordering`` exists, else the built-in ``none``/``greedy``), splits the solve
order into contiguous chunks and solves each chunk in sequence with one registered solver,
``reset()`` at the start of every chunk: state such as a recycled subspace or a warm start
flows within a chunk and never across, so every chunk is independent of the others. That
is what makes a killed run resumable with results equal to an uninterrupted run's.

Each finished chunk is committed as a shard under ``<out>.parts/``; the final file is
joined from the shards (samples back in sample order) and committed only when all exist.

With ``workers=N`` or ``scheduler=ADDRESS`` each chunk is one Dask task (``datagen.cluster``):
the worker builds the family and solver from the configuration, draws the chunk's samples
(families with ``independent_samples``; the others' parameters travel with the task), solves
the chunk and commits its shard; the client counts chunks as they complete and joins each
shard into the final file as it arrives, while the other chunks still run. Chunks are
independent, so the data and solver statistics do not depend on where or in which order they
ran (wall times aside), and ``resume`` works whatever ran the interrupted run.
"""
from __future__ import annotations

import contextlib
import contextvars
import importlib.util
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from linsolve import Operator, OptionError, SolverError, make_solver, split_solver_options
from linsolve.cli_support import check_output_path
from linsolve.core.validation import check_int, is_int

from . import cluster as _cluster
from . import storage
from .family import get_family

ORDER_FALLBACK = ("none", "greedy")
CONFIG_KEYS = ("problem", "n", "grid", "dim", "solver", "solver_opt", "order", "chunk", "seed", "param")
RUN_KEYS = ("out", "resume", "overwrite", "quiet", "strict", "workers", "scheduler")
_ALIASES = {"solver_opts": "solver_opt", "solver-opt": "solver_opt", "params": "param"}


class PipelineError(OptionError):
    """Bad generation settings: values, output path, an incompatible partial run."""


class NonConvergedError(RuntimeError):
    """Raised under ``strict=True`` when a sample does not converge."""


# --- configuration -------------------------------------------------------------------------
def parse_grid(value) -> tuple[int, ...]:
    """``32`` -> (32,), ``"32,64"`` or ``[32, 64]`` -> (32, 64)."""
    if is_int(value):
        parts = [value]
    elif isinstance(value, str):
        parts = [p.strip() for p in value.replace("x", ",").split(",")]
    elif isinstance(value, (list, tuple)):
        parts = list(value)
    else:
        raise PipelineError(f"grid must be G or GX,GY[,GZ], got {value!r}")
    try:
        # text is parsed; a number must be integral (8.0 is 8; 8.7 and True are refused, not truncated)
        sizes = tuple(check_int("grid size", int(p) if isinstance(p, str) else p, whole_floats=True)
                      for p in parts)
    except (TypeError, ValueError):
        raise PipelineError(f"grid must be G or GX,GY[,GZ] with integer sizes, got {value!r}") from None
    if not 1 <= len(sizes) <= 3:
        raise PipelineError(f"grid takes 1 to 3 sizes, got {len(sizes)} in {value!r}")
    if any(s <= 0 for s in sizes):
        raise PipelineError(f"grid sizes must be positive, got {value!r}")
    return sizes


def _count(name: str, v, minimum: int = 1) -> int:
    """An integer >= ``minimum`` (digits given as text, as from a config file, included) that
    fits the int64 it is stored as; checked now, not after the solves."""
    if isinstance(v, str) and v.strip().lstrip("-").isdigit():
        v = int(v)
    v = check_int(name, v, minimum, error=PipelineError)
    if v >= 2 ** 63:
        raise PipelineError(f"{name} must be below 2**63, got {v}")
    return v


@dataclass
class GenerateConfig:
    """What determines the data. Its ``to_dict()`` is stored in the file and is a valid
    ``--config`` file for ``datagen generate``.

    Parameters
    ----------
    problem : str
        A registered family (``datagen.available_families()``) or ``channel``.
    n : int
        Number of samples (systems).
    grid : int or sequence of int
        Grid points per direction (one number for every direction).
    dim : int, optional
        Spatial dimension (1, 2 or 3); by default the grid's length, else the family's default.
    solver : str
        A registered solver name (``linsolve.available_solvers()``).
    solver_opt : dict
        The solver's options (``linsolve.make_solver(solver, **solver_opt)``); for a
        PETSc-backed solver, keys it does not know go to PETSc (``linsolve.split_solver_options``).
    order : str
        Ordering method of ``linsolve.order_systems`` (``none``, ``greedy``, ``fft``).
    chunk : int
        Systems per chunk: one solver object solves a chunk in order, a Dask task is one chunk.
    seed : int
        Seeds every random draw of the run.
    param : dict
        The family's parameters (``Family.params``), within its ``ranges``.

    Raises
    ------
    PipelineError
        A value of the wrong type or outside its range.
    """

    problem: str
    n: int
    grid: Any = 64
    dim: int | None = None
    solver: str = "cg"
    solver_opt: dict = field(default_factory=dict)
    order: str = "greedy"
    chunk: int = 32
    seed: int = 0
    param: dict = field(default_factory=dict)

    def __post_init__(self):
        if not isinstance(self.problem, str) or not self.problem:
            raise PipelineError(f"problem must be a family name, got {self.problem!r}")
        self.n = _count("n", self.n)
        self.chunk = _count("chunk", self.chunk)
        self.seed = _count("seed", self.seed, minimum=0)
        self.grid = parse_grid(self.grid)
        if self.dim is not None:
            self.dim = check_int("dim", _count("dim", self.dim), 1, 3, error=PipelineError)
        if not isinstance(self.solver, str) or not self.solver:
            raise PipelineError(f"solver must be a registered solver name, got {self.solver!r}")
        if not isinstance(self.order, str) or not self.order:
            raise PipelineError(f"order must be an ordering method name, got {self.order!r}")
        for name in ("solver_opt", "param"):
            if not isinstance(getattr(self, name), dict):
                raise PipelineError(f"{name} must be a mapping of key to value, got {getattr(self, name)!r}")

    @classmethod
    def from_mapping(cls, data: dict) -> GenerateConfig:
        data = {_ALIASES.get(k, k).replace("-", "_"): v for k, v in data.items()}
        unknown = sorted(set(data) - set(CONFIG_KEYS) - set(RUN_KEYS))
        if unknown:
            raise PipelineError(f"unknown configuration key(s) {', '.join(unknown)}; known: "
                                f"{', '.join(CONFIG_KEYS + RUN_KEYS)}")
        for k in ("problem", "n"):
            if data.get(k) is None:
                raise PipelineError(f"configuration is missing {k!r}")
        return cls(**{k: v for k, v in data.items() if k in CONFIG_KEYS and v is not None})

    def to_dict(self) -> dict:
        d = asdict(self)
        d["grid"] = list(self.grid)
        return d

    def build_family(self, cls=None):
        """The family instance.

        Parameters
        ----------
        cls : type, optional
            The family class; by default the one registered as ``problem``.

        Returns
        -------
        Family
            Built on this config's grid and dimension with ``param``.
        """
        cls = cls or get_family(self.problem)
        dim = self.dim
        if dim is None:
            dim = len(self.grid) if len(self.grid) > 1 else (2 if 2 in cls.dims else cls.dims[0])
        grid = self.grid[0] if len(self.grid) == 1 else self.grid
        return cls(grid=grid, dim=dim, **self.param)

    def build_solver(self):
        # PETSc-backed solvers take any other key as a PETSc option, like `linsolve bench`
        return make_solver(self.solver, **split_solver_options(self.solver, self.solver_opt))


def load_config_file(path) -> dict:
    """A JSON or TOML file with the keys of ``datagen generate`` (``.toml`` is read as TOML,
    anything else as JSON)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise PipelineError(f"cannot read config file {str(path)!r}: {exc.strerror or exc}") from None
    if path.suffix.lower() == ".toml":
        try:
            import tomllib
        except ImportError:  # Python 3.10
            try:
                import tomli as tomllib
            except ImportError:
                raise PipelineError(f"reading TOML config {str(path)!r} needs Python 3.11+ or the tomli "
                                    "package; use a JSON config instead") from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise PipelineError(f"malformed TOML in config file {str(path)!r}: {exc}") from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise PipelineError(f"malformed JSON in config file {str(path)!r}: {exc.msg} at line "
                                f"{exc.lineno} column {exc.colno}") from None
    if not isinstance(data, dict):
        raise PipelineError(f"config file {str(path)!r} must hold a mapping of option to value")
    return data


# --- ordering ------------------------------------------------------------------------------
def _greedy_order(features: np.ndarray) -> np.ndarray:
    """Nearest-neighbour tour on standardised features, from the sample farthest from the
    centroid (an end of the cloud, so the tour does not start in the middle)."""
    n = features.shape[0]
    F = features.reshape(n, -1).astype(np.float64)
    scale = F.std(axis=0)
    F = (F - F.mean(axis=0)) / np.where(scale > 0, scale, 1.0)
    start = int(np.argmax(np.einsum("ij,ij->i", F, F)))
    order = np.empty(n, dtype=np.int64)
    visited = np.zeros(n, dtype=bool)
    cur = start
    for k in range(n):
        order[k] = cur
        visited[cur] = True
        if k == n - 1:
            break
        d = np.einsum("ij,ij->i", F - F[cur], F - F[cur])
        d[visited] = np.inf
        cur = int(np.argmin(d))
    return order


def order_samples(features: np.ndarray, method: str) -> np.ndarray:
    """The solve order (a permutation of the samples) by ``method``."""
    features = np.asarray(features, dtype=np.float64)
    n = features.shape[0]
    if importlib.util.find_spec("linsolve.recycling.ordering") is not None:
        from linsolve.recycling.ordering import order_systems

        perm = order_systems(features, method)
        perm = getattr(perm, "permutation", getattr(perm, "order", perm))
    elif method == "none":
        perm = np.arange(n)
    elif method == "greedy":
        perm = _greedy_order(features)
    else:
        raise PipelineError(f"unknown ordering method {method!r}; available: {', '.join(ORDER_FALLBACK)}")
    perm = np.asarray(perm, dtype=np.int64).reshape(-1)
    if not np.array_equal(np.sort(perm), np.arange(n)):
        raise PipelineError(f"ordering {method!r} did not return a permutation of the {n} samples")
    return perm


# --- sampling -------------------------------------------------------------------------------
def sample_stream(seed: int, index: int) -> np.random.Generator:
    """The random stream of sample ``index`` of a run with ``seed`` (for a family with
    ``independent_samples``): NumPy's ``SeedSequence(seed).spawn(n)[index]``, independent of
    the other samples' streams and of ``n``.

    Examples
    --------
    >>> a = sample_stream(0, 5).standard_normal(3)
    >>> bool((a == np.random.default_rng(np.random.SeedSequence(0).spawn(6)[5]).standard_normal(3)).all())
    True
    """
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(int(index),)))


def sampling_scheme(family) -> str:
    """How the run's samples are drawn (stored as the file's ``@sampling``)."""
    if getattr(family, "independent_samples", False):
        return "sample i = family.sample(1, default_rng(SeedSequence(seed, spawn_key=(i,))))[0]"
    return "family.sample(n, default_rng(seed))"


def sample_fingerprint(params: dict) -> tuple[float, ...]:
    """Sums of a sample's numeric parameters: a task that draws its own samples compares them
    with the client's, so a worker whose NumPy draws other values (another version on a
    cluster) stops the run instead of storing fields that do not match ``/parameters``."""
    out = []
    for k in sorted(params):
        a = np.asarray(params[k])
        if a.dtype.kind in "biuf":
            out.append(float(np.sum(a, dtype=np.float64)))
    return tuple(out)


def draw_samples(cfg: GenerateConfig, family, indices=None, threads: int = 1) -> list[dict]:
    """The parameters of the samples ``indices`` (default all ``cfg.n``) of the run ``cfg``.

    A family with ``independent_samples`` draws sample i from ``sample_stream(cfg.seed, i)``,
    so any subset can be drawn anywhere (a Dask task draws its own chunk's) and gives the
    same values; any other family draws all ``n`` from one stream, ``default_rng(cfg.seed)``.
    ``threads`` > 1 draws the former in that many threads (NumPy's generators, FFTs and ufuncs
    release the GIL), each sample still from its own stream, so the values do not change.

    Examples
    --------
    >>> cfg = GenerateConfig(problem="darcy", n=6, grid=8)
    >>> family = cfg.build_family()
    >>> one, three = draw_samples(cfg, family), draw_samples(cfg, family, threads=3)
    >>> all((p["a"] == q["a"]).all() for p, q in zip(one, three, strict=True))
    True
    """
    if getattr(family, "independent_samples", False):
        indices = list(range(cfg.n) if indices is None else indices)
        threads = min(check_int("threads", threads, 1), len(indices))
        if threads == 1:
            return _draw_by_index(cfg, family, indices)
        from concurrent.futures import ThreadPoolExecutor

        step = -(-len(indices) // (4 * threads))  # a few blocks per thread even out their speeds
        with ThreadPoolExecutor(threads, thread_name_prefix="datagen-sample") as pool:
            # each block runs in a copy of this context, so the caller's np.errstate holds there too
            futures = [pool.submit(contextvars.copy_context().run, _draw_by_index, cfg, family, indices[s:s + step])
                       for s in range(0, len(indices), step)]
            try:
                return [p for fut in futures for p in fut.result()]
            except BaseException:
                for fut in futures:
                    fut.cancel()
                raise
    if indices is not None:
        raise PipelineError(f"family {cfg.problem!r} draws its samples as one sequence, not by index")
    return family.sample(cfg.n, np.random.default_rng(cfg.seed))


def _draw_by_index(cfg: GenerateConfig, family, indices) -> list[dict]:
    out = []
    for i in indices:
        got = family.sample(1, sample_stream(cfg.seed, i))
        if len(got) != 1:
            raise PipelineError(f"family {cfg.problem!r} returned {len(got)} samples, asked for 1")
        out.append(got[0])
    return out


# --- running --------------------------------------------------------------------------------
@contextlib.contextmanager
def family_errors(cfg: GenerateConfig, what: str):
    """A family failing on extreme settings (an overflow, an allocation of 37 GiB, NumPy
    refusing a size) is bad input to report in one line, not a traceback."""
    try:
        # extreme parameters overflow inside the family (a GRF variance of 1e20 for tau=1e-10):
        # the results are checked (non-finite samples here, matrices by the solver) and reported
        # in one line, so NumPy's RuntimeWarnings would only be stray output
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            yield
    except SolverError:
        raise
    except (ArithmeticError, MemoryError, ValueError) as exc:
        why = " ".join(f"{type(exc).__name__}: {exc}".split())
        raise PipelineError(f"family {cfg.problem!r} could not {what} on grid {'x'.join(map(str, cfg.grid))} "
                            f"with parameters {cfg.param or 'default'} ({why}); check --grid and --param") from exc


@dataclass
class RunSummary:
    out: Path
    n: int
    solved_now: int
    resumed_chunks: int
    n_chunks: int
    wall_time: float
    solve_time: float
    iterations: np.ndarray
    converged: np.ndarray
    already_complete: bool = False
    workers: str = "in-process"

    @property
    def non_converged(self) -> int:
        return int((~self.converged).sum())

    @property
    def systems_per_s(self) -> float:
        return self.solved_now / self.wall_time if self.wall_time > 0 else math.nan


class Progress:
    """Receives the run's progress; the CLI's bar subclasses it."""

    def start(self, total: int, done: int) -> None:
        pass

    def sample(self, iterations: int, converged: bool) -> None:
        pass

    def chunk(self, iterations: list[int], converged: list[bool]) -> None:
        """A chunk solved by a worker (reported when it completes, not sample by sample)."""
        for its, conv in zip(iterations, converged, strict=True):
            self.sample(its, conv)

    def finish(self) -> None:
        pass


def parts_dir(out: Path) -> Path:
    return out.with_name(out.name + ".parts")


def _shard(parts: Path, k: int) -> Path:
    return parts / f"chunk-{k:05d}.h5"


def _clear_parts(parts: Path) -> None:
    """Remove a partial run's directory, refusing if it holds files we did not write."""
    if not parts.exists():
        return
    ours = [p for p in parts.iterdir() if p.name == "manifest.json" or p.name.endswith((".h5", ".tmp"))]
    if len(ours) != len(list(parts.iterdir())):
        raise PipelineError(f"{str(parts)!r} holds files datagen did not write; remove it by hand")
    for p in ours:
        p.unlink()
    parts.rmdir()


def _holds_chunks(parts: Path) -> bool:
    """Whether an unfinished run saved any chunk (one with only its manifest has nothing to keep)."""
    return parts.is_dir() and any(parts.glob("chunk-*.h5"))


def add_note(exc: BaseException, note: str) -> None:
    """``exc.add_note`` (shown under a traceback; the CLIs append notes to their one line)."""
    if hasattr(exc, "add_note"):
        exc.add_note(note)
    else:  # Python 3.10
        exc.__notes__ = [*getattr(exc, "__notes__", []), note]


def check_output(out: Path, *, resume: bool, overwrite: bool) -> None:
    if resume and overwrite:
        raise PipelineError("--resume and --overwrite exclude each other")
    check_output_path(out, "output", make_parents=True, error=PipelineError)
    if parts_dir(out).exists() and not parts_dir(out).is_dir():
        raise PipelineError(f"{str(parts_dir(out))!r} (where an unfinished run is kept) exists and is not a "
                            "directory")
    if out.exists() and not (resume or overwrite):
        raise PipelineError(f"output {str(out)!r} exists; pass --overwrite to replace it or --resume")
    if _holds_chunks(parts_dir(out)) and not (resume or overwrite):
        raise PipelineError(f"an unfinished run exists at {str(parts_dir(out))!r}; pass --resume to "
                            "continue it or --overwrite to start again")


def generate(cfg: GenerateConfig, out, *, resume: bool = False, overwrite: bool = False,
             strict: bool = False, command: str | None = None,
             progress: Progress | None = None, workers: int | None = None,
             scheduler: str | None = None) -> RunSummary:
    """Run the pipeline for ``cfg`` into ``out``. See the module docstring.

    Parameters
    ----------
    cfg : GenerateConfig
        What determines the data.
    out : str or Path
        The HDF5 file to write (atomically: it appears complete or not at all).
    resume : bool
        Continue an interrupted run of the same config from its shards in ``OUT.parts/``.
    overwrite : bool
        Replace an existing ``out``.
    strict : bool
        Stop at the first system that does not converge (otherwise it is stored and counted).
    command : str, optional
        The command line, stored in the file's ``@command``.
    progress : Progress, optional
        Receives progress events (the CLI's bar); by default none.
    workers : int, optional
        Solve the chunks on a local Dask cluster of that many single-threaded worker processes.
    scheduler : str, optional
        Solve them on the running Dask cluster at this address (also taken from
        ``DASK_SCHEDULER_ADDRESS``). With neither, the run stays in this process.

    Returns
    -------
    RunSummary
        Samples written, iterations, convergence and timings of the run.

    Raises
    ------
    PipelineError, ClusterError
        Bad configuration or output; an unreachable scheduler (before any work).
    """
    t_start = time.perf_counter()
    out = Path(out)
    progress = progress or Progress()
    _cluster.check_options(workers, scheduler)
    with family_errors(cfg, "be set up"):
        family = cfg.build_family()
        if getattr(family, "complex_valued", False):
            raise PipelineError(f"family {cfg.problem!r} with parameters {cfg.param} has complex systems, and the "
                                "store holds real fields; assemble and solve them with linsolve directly")
        storage.check_boundary_conditions(family.boundary_conditions())  # before any solve, not at the end
    solver = cfg.build_solver()
    check_output(out, resume=resume, overwrite=overwrite)
    config = cfg.to_dict()
    if resume and out.exists():
        with storage.open_file(out) as f:
            problems = storage.check_schema(f)  # a missing group or attribute is named, not a KeyError
            if problems:
                raise PipelineError(f"output {str(out)!r} is damaged or not in the datagen layout ({problems[0]}); "
                                    "use --overwrite to replace it")
            if storage.read_config(f) != json.loads(json.dumps(config)):
                raise PipelineError(f"output {str(out)!r} was made with a different configuration; "
                                    "use --overwrite to replace it")
            stats = storage.read_stats(f)
        _clear_parts(parts_dir(out))  # left behind when a run died between its final commit and cleanup
        return RunSummary(out, cfg.n, 0, 0, 0, time.perf_counter() - t_start, 0.0, stats["iterations"],
                          stats["converged"], already_complete=True)

    with _cluster.connect(workers, scheduler) as session:
        return _generate(cfg, out, family, solver, session, resume=resume, overwrite=overwrite, strict=strict,
                         command=command, progress=progress, t_start=t_start)


def _generate(cfg: GenerateConfig, out: Path, family, solver, session, *, resume, overwrite, strict, command,
              progress: Progress, t_start: float) -> RunSummary:
    config = cfg.to_dict()
    with family_errors(cfg, "sample"):
        # the workers wait for the order, which needs every sample: the client draws them on
        # the cores it may use (in-process: one thread, as the solves)
        samples = draw_samples(cfg, family, threads=session.client_threads)
    if len(samples) != cfg.n:
        raise PipelineError(f"family {cfg.problem!r} returned {len(samples)} samples, asked for {cfg.n}")
    with family_errors(cfg, "compute features"):
        features = np.stack([np.asarray(family.features(p), dtype=np.float64).reshape(-1) for p in samples])
    # an overflow while sampling would surface as the ordering's "features contain NaN or Inf"; values
    # beyond float32 would become inf in the stored fields (or break a solve after chunks were saved)
    bad = next((i for i, p in enumerate(samples) if not _storable_sample(p, features[i])), None)
    if bad is not None:
        raise PipelineError(f"family {cfg.problem!r} sampled NaN or Inf values, or values beyond the float32 "
                            f"range of the stored fields (sample {bad}), on grid {'x'.join(map(str, cfg.grid))} "
                            f"with parameters {cfg.param or 'default'}: extreme parameters; check --param")
    perm = order_samples(features, cfg.order)
    chunks = [perm[s:s + cfg.chunk] for s in range(0, cfg.n, cfg.chunk)]

    parts = parts_dir(out)
    manifest = {"format_version": storage.FORMAT_VERSION, "config": config, "n_chunks": len(chunks)}
    if getattr(family, "independent_samples", False):  # a partial run sampled otherwise is not resumed
        manifest["sampling"] = sampling_scheme(family)
    if overwrite or not _holds_chunks(parts):
        _clear_parts(parts)
    if resume and (parts / "manifest.json").exists():
        try:
            old = json.loads((parts / "manifest.json").read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            old = None
        if not (isinstance(old, dict) and isinstance(old.get("config"), dict)):
            # unreadable, or JSON of another shape: not a configuration to compare with
            raise PipelineError(f"the manifest of the unfinished run in {str(parts)!r} is damaged; use --overwrite "
                                "to start again")
        if old != json.loads(json.dumps(manifest)):
            differ = sorted(k for k in config if old["config"].get(k) != config[k])
            raise PipelineError(f"the unfinished run in {str(parts)!r} used a different configuration "
                                f"(differs in: {', '.join(differ) or 'format'}); use --overwrite to start again")
    parts.mkdir(parents=True, exist_ok=True)
    for stale in parts.glob(".*.tmp"):
        stale.unlink()
    if not (parts / "manifest.json").exists():
        storage.atomic_write_text(parts / "manifest.json", json.dumps(manifest, indent=1, sort_keys=True))

    done = [k for k, idx in enumerate(chunks) if storage.shard_is_valid(_shard(parts, k), idx)]
    progress.start(cfg.n, sum(len(chunks[k]) for k in done))
    totals = {"solved": 0, "solve_time": 0.0}
    meta = storage.RunMeta(
        problem=cfg.problem, description=family.description or (type(family).__doc__ or "").strip(),
        config=config, command=command or f"datagen.pipeline.generate({json.dumps(config, sort_keys=True)})",
        family_params=dict(family.p), coordinates=family.coordinates(),
        boundary_conditions=family.boundary_conditions(), input_fields=list(family.input_fields(samples[0])),
        output_fields=None, parameters=samples, permutation=perm, chunk_size=cfg.chunk, order_method=cfg.order,
        features=features, solver=solver.describe(), rtol=solver.rtol, atol=solver.atol,
        extra_attrs={"seed": cfg.seed, "sampling": sampling_scheme(family), "solver_name": cfg.solver,
                     "order_method": cfg.order, "software": _software()},
    )
    # the final file is joined shard by shard as the chunks finish (on workers: while the
    # others still run), and committed once every chunk is in
    writer = storage.FinalWriter(out, meta)

    def count(k, result: ChunkResult):
        totals["solved"] += len(result.iterations)
        totals["solve_time"] += result.solve_time
        if session.client is not None:
            progress.chunk(result.iterations, result.converged)
        writer.add_shard(_shard(parts, k))

    try:
        with writer:
            for k in done:
                writer.add_shard(_shard(parts, k))
            if session.client is None:
                for k, idx in enumerate(chunks):
                    if k not in done:
                        count(k, _solve_chunk(cfg, family, solver, parts, k, idx, [samples[int(i)] for i in idx],
                                              strict, progress.sample))
            else:
                # a family that draws samples by index has each task draw its own chunk's (nothing
                # to ship); the others' parameters travel with the task
                independent = getattr(family, "independent_samples", False)
                calls = {k: (config, type(family), str(parts), k, idx,
                             [sample_fingerprint(samples[int(i)]) for i in idx] if independent
                             else [samples[int(i)] for i in idx], strict)
                         for k, idx in enumerate(chunks) if k not in done}
                session.run(_chunk_task, calls, count, name="chunk")
    except BaseException as exc:  # a solver error, --strict, Ctrl-C, SIGTERM, a full disk
        session.stop()  # a local cluster's workers end here, so none commits a shard after the count
        _keep_or_clear(parts, chunks, exc)
        raise
    finally:
        progress.finish()

    _clear_parts(parts)
    with storage.open_file(out) as f:
        stats = storage.read_stats(f)
    return RunSummary(out, cfg.n, totals["solved"], len(done), len(chunks), time.perf_counter() - t_start,
                      totals["solve_time"], stats["iterations"], stats["converged"], workers=session.description)


@dataclass
class ChunkResult:
    """What the client learns of a solved chunk (the data itself is in its shard)."""

    iterations: list[int]
    converged: list[bool]
    solve_time: float


def _solve_chunk(cfg: GenerateConfig, family, solver, parts: Path, k: int, idx, params: list[dict],
                 strict: bool, on_sample=None) -> ChunkResult:
    """Solve chunk ``k`` (samples ``idx`` in solve order, with their parameters) from a reset
    solver and commit its shard."""
    solver.reset()
    records = []
    for i, p in zip(idx, params, strict=True):
        i = int(i)
        with family_errors(cfg, f"assemble sample {i}"):
            system = family.assemble(p)
        res = solver.solve(system)
        if strict and not res.converged:
            raise NonConvergedError(f"sample {i} did not converge ({res.reason}, relative residual "
                                    f"{res.relative_residual:.3e}); --strict stops the run")
        x = np.asarray(res.x, dtype=np.float64).reshape(-1)
        fin, fout = family.input_fields(p), family.solution_fields(p, x)
        if set(fin) & set(fout):
            raise PipelineError(f"family {cfg.problem!r} uses the names {sorted(set(fin) & set(fout))} "
                                "for both input and solution fields")
        records.append(storage.SampleRecord(
            i, {**fin, **fout}, x, int(res.iterations), float(res.relative_residual), bool(res.converged),
            str(res.reason), float(res.wall_time), np.asarray(res.residual_norms)))
        if on_sample is not None:
            on_sample(int(res.iterations), bool(res.converged))
    storage.write_shard(_shard(parts, k), k, records, unique_tmp=True)
    return ChunkResult([r.iterations for r in records], [r.converged for r in records],
                       float(sum(r.wall_time for r in records)))


#: on a worker process: the family and solver of the run it last served, (key, cfg, family, solver)
_WORKER_STATE: list = []


def _chunk_task(config: dict, family_cls: type, parts: str, k: int, idx, params: list,
                strict: bool) -> ChunkResult:
    """One chunk as a Dask task. The family class travels by reference (its module is
    imported on the worker, so families registered outside datagen work too); family and
    solver are built once per worker process and run, and the solver is reset at the start
    of every chunk, as in-process. ``params``: the samples' parameters, or for a family with
    ``independent_samples`` their ``sample_fingerprint``s: the task then draws the samples
    itself (``draw_samples``) and checks that they are the ones the client drew."""
    _cluster.limit_threads()
    key = json.dumps(config, sort_keys=True)
    if not _WORKER_STATE or _WORKER_STATE[0] != key:
        cfg = GenerateConfig.from_mapping(config)
        with family_errors(cfg, "be set up"):
            family = cfg.build_family(family_cls)
        _WORKER_STATE[:] = [key, cfg, family, cfg.build_solver()]
        _cluster.limit_threads()
    _, cfg, family, solver = _WORKER_STATE
    if params and not isinstance(params[0], dict):
        expected = params
        with family_errors(cfg, "sample"):
            params = draw_samples(cfg, family, [int(i) for i in idx])
        for i, p, fp in zip(idx, params, expected, strict=True):
            if sample_fingerprint(p) != tuple(fp):
                raise PipelineError(f"worker drew sample {int(i)} with other values than the client: give the "
                                    f"workers the client's NumPy version (here {np.__version__})")
    return _solve_chunk(cfg, family, solver, Path(parts), k, idx, params, strict)


def _storable_sample(params: dict, features: np.ndarray) -> bool:
    """Whether a sample's numeric parameters (scalars and arrays) and features are finite and
    within float32 range (fields are stored in float32)."""
    big = float(np.finfo(np.float32).max)
    for v in [features, *params.values()]:
        if isinstance(v, (bool, str)) or v is None:
            continue
        a = np.asarray(v)
        # one pass: NaN propagates through max and inf exceeds big, so both fail the comparison
        if a.dtype.kind in "fc" and a.size and not np.max(np.abs(a)) <= big:
            return False
    return True


def _keep_or_clear(parts: Path, chunks: list, exc: BaseException) -> None:
    """After a failed run: committed chunks stay as the documented resumable state and the
    error says so; with none committed there is nothing to resume, so no trace is left and
    the next command (whatever its settings) needs neither --resume nor --overwrite."""
    kept = sum(storage.shard_is_valid(_shard(parts, k), idx) for k, idx in enumerate(chunks))
    if kept:
        add_note(exc, f"{kept} of {len(chunks)} chunks are saved in {str(parts)!r}: the same command "
                      "with --resume continues from there")
    else:
        with contextlib.suppress(OSError, PipelineError):
            _clear_parts(parts)


def _software() -> dict:
    import h5py
    import scipy

    import linsolve

    versions = {"linsolve": linsolve.__version__, "numpy": np.__version__, "scipy": scipy.__version__,
                "h5py": h5py.__version__}
    with contextlib.suppress(Exception):
        from linsolve.petsc_support.utils import petsc  # initialised as linsolve does (signal handling)

        versions["petsc"] = ".".join(map(str, petsc().Sys.getVersion()))
    return versions


# --- validation -----------------------------------------------------------------------------
@dataclass
class ValidationReport:
    path: Path
    schema_problems: list
    checked: list = field(default_factory=list)
    failures: list = field(default_factory=list)
    non_converged: int = 0

    @property
    def ok(self) -> bool:
        return not self.schema_problems and not self.failures

    def lines(self) -> list[str]:
        out = [f"{self.path}: schema {'OK' if not self.schema_problems else 'FAILED'}"]
        out += [f"  schema: {p}" for p in self.schema_problems]
        for c in self.checked:
            out.append(f"  sample {c['index']}: ||b-Ax32||/||b|| = {c['relres_fp32']:.3e} (stored fp64 "
                       f"{c['relres_stored']:.3e}, allowed {c['allowed']:.3e}){'' if c['converged'] else ' [flagged non-converged]'}")
        out += [f"  FAIL: {p}" for p in self.failures]
        out.append(f"{'OK' if self.ok else 'FAILED'}: {len(self.checked)} systems re-assembled, "
                   f"{self.non_converged} flagged non-converged in the file")
        return out


def validate_file(path, samples: int = 8, seed: int = 0) -> ValidationReport:
    """Schema check plus a residual check of ``samples`` randomly chosen systems.

    For sample i the system is re-assembled from /parameters, and with x32 the stored
    fp32 solution, r = ||b - A x32|| is computed in fp64. Rounding x to fp32 moves the
    residual by at most s = ||A||_F 2^-24 ||x|| (``storage.rounding_slack``), so: (1) the
    stored fp64 residual must agree with r to within s, and (2) a sample flagged converged
    must have r <= max(rtol ||b||, atol) + s. Input fields must be reproduced exactly (in
    fp32) and solution fields to fp32 accuracy.
    """
    path = Path(path)
    with storage.open_file(path) as f:
        report = ValidationReport(path, storage.check_schema(f))
        if report.schema_problems:
            return report
        cfg = GenerateConfig.from_mapping(storage.read_config(f))
        family = cfg.build_family()
        stats = storage.read_stats(f)
        rtol, atol = float(f["solver_stats"].attrs["rtol"]), float(f["solver_stats"].attrs["atol"])
        n = int(f.attrs["n_trajectories"])
        report.non_converged = int((~stats["converged"]).sum())
        pick = np.sort(np.random.default_rng(seed).choice(n, size=min(samples, n), replace=False))
        names_in, names_out = storage.field_names(f)
        eps64 = np.finfo(np.float64).eps
        for i in pick:
            i = int(i)
            params = storage.read_parameters(f, i)
            system = family.assemble(params)
            A = system.A
            op = Operator(A)
            b = np.asarray(system.b, dtype=np.float64).reshape(-1)
            x32 = np.asarray(f["solution_vectors"]["x"][i], dtype=np.float32)
            x = x32.astype(np.float64)
            bnorm = float(np.linalg.norm(b))
            r = float(np.linalg.norm(b - op.matvec(x)))
            slack = storage.rounding_slack(A, x32)
            slack += 64 * eps64 * (slack / storage.FP32_UNIT_ROUNDOFF + bnorm)
            stored = float(stats["relative_residual"][i])
            allowed = max(rtol * bnorm, atol) + slack
            converged = bool(stats["converged"][i])
            report.checked.append({"index": i, "relres_fp32": r / bnorm if bnorm else r,
                                   "relres_stored": stored, "allowed": allowed / bnorm if bnorm else allowed,
                                   "converged": converged})
            if abs(r - stored * bnorm) > slack:
                report.failures.append(f"sample {i}: stored relative residual {stored:.3e} disagrees with the "
                                       f"stored solution's {r / bnorm:.3e} beyond fp32 rounding")
            if converged and r > allowed:
                report.failures.append(f"sample {i} is flagged converged but ||b-Ax||/||b|| = {r / bnorm:.3e} "
                                       f"exceeds the tolerance {allowed / bnorm:.3e}")
            for name, arr in family.input_fields(params).items():
                if name not in names_in:
                    report.failures.append(f"sample {i}: input field {name!r} is not stored")
                elif not np.array_equal(np.asarray(arr, dtype=np.float32), storage.field_dataset(f, name)[i]):
                    report.failures.append(f"sample {i}: input field {name!r} differs from the parameters' one")
            for name, arr in family.solution_fields(params, x).items():
                got = storage.field_dataset(f, name)[i].astype(np.float64)
                scale = float(np.max(np.abs(arr))) or 1.0
                if name not in names_out or np.max(np.abs(np.asarray(arr) - got)) > 1e-5 * scale:
                    report.failures.append(f"sample {i}: solution field {name!r} does not match the stored x")
    return report

"""The HDF5 store: The Well's layout plus the groups that make a generated file auditable.

Every reader and writer of the layout lives in this module. A finished file holds::

    /                          @dataset_name @grid_type="cartesian" @n_spatial_dims
                               @n_trajectories @simulation_parameters (+ one attr each)
                               @format="datagen-well" @format_version @problem
                               @config (JSON, the keys `datagen generate --config` reads)
                               @command (the command line that produced the file)
                               @input_fields @output_fields (the x / y split of the fields)
    /dimensions                @spatial_dims; time float32(1); x, y[, z] float32 coordinates
    /boundary_conditions/<bc>  @associated_dims @associated_fields @sample_varying
                               @time_varying; @bc_type in The Well's vocabulary (WALL, OPEN,
                               PERIODIC) and @datagen_bc_type the family's own kind
                               (dirichlet, neumann, ...); mask bool; values float32
    /scalars                   @field_names; fixed family parameters (float32, sample_varying
                               False) and sampled scalar parameters (float32 (N,), True);
                               float64 where float32 would overflow a value to inf
    /t0_fields, /t1_fields, /t2_fields
                               always all three (empty, field_names=[], when a family
                               has no such field); @field_names; float32 (N, *grid[, D[, D]]) with
                               @sample_varying=True @time_varying=False @dim_varying @role
    /parameters/<key>          every sampled parameter at full precision, (N, ...), in
                               sample order: ``family.assemble`` rebuilds system i from them
    /ordering                  permutation (solve position -> sample), position, chunk,
                               features; @method @chunk_size
    /solver_stats              iterations, relative_residual (fp64, true residual),
                               converged, reason, wall_time, residual_history (vlen);
                               @solver (JSON), @rtol, @atol
    /solution_vectors/x        the unknown vector of each system, float32 (N, n)

Fields are steady (``time_varying=False``), so they carry no time axis, as The Well's
readers expect for time-invariant fields. Samples are stored in sample order (the order
``family.sample`` produced them), whatever order they were solved in.

The Well's reader: each sample is a trajectory of one time step (``/dimensions/time`` is
``[0.0]``, so ``n_steps_per_trajectory`` is 1) whose fields and scalars are time-invariant.
``the_well.data.WellDataset(path=..., n_steps_input=1, n_steps_output=0)`` therefore gives
one item per sample: every field in ``constant_fields`` (H, W[, D], C; t0 fields, then t1
components, then t2, in ``field_names`` order), every scalar in ``constant_scalars``, the
grid in ``space_grid`` and ``input_time_grid == [0.]``; which channels are inputs and
which solutions is in the root ``@input_fields``/``@output_fields`` and each field's
``@role``. docs/hdf5_format.md gives the whole mapping.

Validation and fp32: the solver's fp64 relative residual is stored, and ``x`` is kept in
fp32 like the fields. ``validate_file`` recomputes ||b - A x32|| in fp64 and allows the
worst-case effect of rounding x to fp32, ||A||_F * 2^-24 * ||x32||, on top of the
tolerance (see ``rounding_slack``), so it checks the data actually stored.

Writing is crash-safe: each chunk is a shard file committed atomically (written to a
temporary name, flushed, fsynced, renamed, directory fsynced); the final file is joined
from the shards only when all exist, and is itself committed the same way.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from linsolve import SolverError

FORMAT = "datagen-well"
FORMAT_VERSION = 1
AXES = ("x", "y", "z")
FP32_UNIT_ROUNDOFF = 2.0 ** -24
MAX_STORED_FEATURES = 1024
STAT_COLUMNS = ("iterations", "relative_residual", "converged", "wall_time")
REQUIRED_ROOT_ATTRS = ("dataset_name", "grid_type", "n_spatial_dims", "n_trajectories",
                       "simulation_parameters", "format", "config", "command", "input_fields",
                       "output_fields")
REQUIRED_GROUPS = ("dimensions", "boundary_conditions", "scalars", "t0_fields", "parameters",
                   "ordering", "solver_stats", "solution_vectors")


class StoreError(SolverError):
    """A file that is missing, unreadable or not in the datagen layout."""


# --- atomic commits ---------------------------------------------------------------------
def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(str(path), os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def tmp_name(path: Path, unique: bool = False) -> Path:
    """The temporary name ``path`` is written under; ``unique`` adds the writer's process id
    and a random tag, for files that two processes may write at once (a Dask task run again
    while the first attempt is still alive)."""
    tag = f".{os.getpid()}-{os.urandom(4).hex()}" if unique else ""
    return path.with_name(f".{path.name}{tag}.tmp")


@contextlib.contextmanager
def atomic_path(path: Path, unique_tmp: bool = False):
    """A temporary path next to ``path`` to write a file at; when the block ends without an
    error the file is fsynced and renamed onto ``path`` (and the directory fsynced), so it
    appears complete or not at all; on an error it is removed. ``unique_tmp``: see
    ``tmp_name``.

    Examples
    --------
    >>> with atomic_path(out) as tmp:            # doctest: +SKIP
    ...     torch.save(state, tmp)
    """
    path = Path(path)
    tmp = tmp_name(path, unique_tmp)
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    try:
        yield tmp
        fd = os.open(str(tmp), os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def atomic_h5(path: Path, unique_tmp: bool = False):
    """Write an HDF5 file that appears at ``path`` complete or not at all."""
    with atomic_path(path, unique_tmp) as tmp, h5py.File(tmp, "w", track_order=True) as f:
        yield f


def atomic_write_text(path: Path, text: str) -> None:
    """Write a text file that appears at ``path`` complete or not at all."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


# --- what is written ---------------------------------------------------------------------
@dataclass
class SampleRecord:
    """One solved system, as the pipeline hands it to a shard."""

    index: int
    fields: dict[str, np.ndarray]
    x: np.ndarray
    iterations: int
    relative_residual: float
    converged: bool
    reason: str
    wall_time: float
    residual_history: np.ndarray


@dataclass
class RunMeta:
    """Everything in the final file that is not per-sample solver output."""

    problem: str
    description: str
    config: dict
    command: str
    family_params: dict
    coordinates: dict[str, np.ndarray]
    boundary_conditions: dict
    input_fields: list[str]
    output_fields: list[str]
    parameters: list[dict]
    permutation: np.ndarray
    chunk_size: int
    order_method: str
    features: np.ndarray
    solver: dict
    rtol: float
    atol: float
    extra_attrs: dict = field(default_factory=dict)


_STR = h5py.string_dtype()


def _vlen_f64():
    return h5py.vlen_dtype(np.dtype("float64"))


def write_shard(path: Path, chunk_id: int, records: list[SampleRecord], unique_tmp: bool = False) -> None:
    """Commit one chunk's results (in solve order) atomically (``unique_tmp``: see ``tmp_name``)."""
    with atomic_h5(path, unique_tmp) as f:
        f.attrs["chunk"] = int(chunk_id)
        f.attrs["complete"] = True
        f["sample_index"] = np.array([r.index for r in records], dtype=np.int64)
        g = f.create_group("fields", track_order=True)
        for name in records[0].fields:
            g[name] = np.stack([np.asarray(r.fields[name], dtype=np.float32) for r in records])
        _write_vectors(f, "x", [np.asarray(r.x, dtype=np.float32).reshape(-1) for r in records])
        f["iterations"] = np.array([r.iterations for r in records], dtype=np.int64)
        f["relative_residual"] = np.array([r.relative_residual for r in records], dtype=np.float64)
        f["converged"] = np.array([r.converged for r in records], dtype=bool)
        f["wall_time"] = np.array([r.wall_time for r in records], dtype=np.float64)
        f.create_dataset("reason", data=[r.reason for r in records], dtype=_STR)
        hist = f.create_dataset("residual_history", (len(records),), dtype=_vlen_f64())
        for k, r in enumerate(records):
            hist[k] = np.asarray(r.residual_history, dtype=np.float64).reshape(-1)


def _write_vectors(g: h5py.Group, name: str, vecs: list[np.ndarray]) -> None:
    """Rows of one length as a 2-D array; systems whose size varies per sample (e.g. only
    fluid cells carry unknowns) as a variable-length dataset."""
    if len({v.size for v in vecs}) == 1:
        g[name] = np.stack(vecs)
    else:
        ds = g.create_dataset(name, (len(vecs),), dtype=h5py.vlen_dtype(np.dtype("float32")))
        for k, v in enumerate(vecs):
            ds[k] = v


def read_shard(path: Path) -> dict:
    with h5py.File(path, "r") as f:
        if not f.attrs.get("complete", False):
            raise StoreError(f"shard {str(path)!r} is not complete")
        out = {k: f[k][()] for k in ("sample_index", "iterations", "relative_residual", "converged",
                                     "wall_time")}
        x = f["x"]
        out["x"] = x[()] if x.ndim == 2 else [np.asarray(v, dtype=np.float32) for v in x[()]]
        out["reason"] = [s.decode() if isinstance(s, bytes) else str(s) for s in f["reason"][()]]
        out["residual_history"] = [np.asarray(h, dtype=np.float64) for h in f["residual_history"][()]]
        out["fields"] = {k: f["fields"][k][()] for k in f["fields"]}
        out["chunk"] = int(f.attrs["chunk"])
    return out


def shard_is_valid(path: Path, expected_indices: np.ndarray) -> bool:
    """A shard counts as done only if it opens, says complete and holds the expected samples."""
    try:
        with h5py.File(path, "r") as f:
            return bool(f.attrs.get("complete", False)) and np.array_equal(
                f["sample_index"][()], np.asarray(expected_indices))
    except (OSError, KeyError):
        return False


# --- parameters --------------------------------------------------------------------------
def _param_kind(v) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "bool"
    if isinstance(v, (int, np.integer)):
        return "int"
    if isinstance(v, (float, np.floating)):
        return "float"
    if isinstance(v, str):
        return "str"
    return "array"


def _write_parameters(g: h5py.Group, params: list[dict]) -> None:
    keys = list(params[0])
    for i, p in enumerate(params):
        if list(p) != keys:
            raise StoreError(f"sample {i} has parameter keys {sorted(p)}, sample 0 has {sorted(keys)}")
    g.attrs["names"] = keys
    for k in keys:
        vals = [p[k] for p in params]
        kind = _param_kind(vals[0])
        if kind == "str":
            ds = g.create_dataset(k, data=[str(v) for v in vals], dtype=_STR)
        elif kind == "array":
            arrs = [np.asarray(v) for v in vals]
            if any(a.shape != arrs[0].shape for a in arrs):
                raise StoreError(f"parameter {k!r} changes shape between samples")
            ds = g.create_dataset(k, data=np.stack(arrs))
        else:
            ds = g.create_dataset(k, data=np.asarray(vals))
        ds.attrs["kind"] = kind


def _restore(kind: str, v):
    if kind == "float":
        return float(v)
    if kind == "int":
        return int(v)
    if kind == "bool":
        return bool(v)
    if kind == "str":
        return v.decode() if isinstance(v, bytes) else str(v)
    return np.asarray(v)


def read_parameters(f: h5py.File, index: int | None = None):
    """Sample ``index``'s parameter dict, exactly as ``family.sample`` returned it (all when None)."""
    g = f["parameters"]
    names = [str(n) for n in g.attrs["names"]]
    if index is None:
        cols = {k: g[k][()] for k in names}
        n = int(f.attrs["n_trajectories"])
        return [{k: _restore(g[k].attrs["kind"], cols[k][i]) for k in names} for i in range(n)]
    return {k: _restore(g[k].attrs["kind"], g[k][index]) for k in names}


# --- the final file ----------------------------------------------------------------------
def _attr_value(v):
    if isinstance(v, (bool, np.bool_, int, np.integer, float, np.floating, str)):
        return v
    return json.dumps(v, default=str)


def _scalar_array(values) -> np.ndarray:
    """float32 like The Well's scalars, unless that would turn a finite value into inf."""
    v = np.asarray(values, dtype=np.float64)
    with np.errstate(over="ignore"):
        v32 = v.astype(np.float32)
    return v if np.any(np.isinf(v32) & np.isfinite(v)) else v32


def _field_group(order: int) -> str:
    return f"t{order}_fields"


def _bc_entry(name: str, spec, spatial_dims: list[str], sizes: list[int]):
    """The Well's boundary description from a family's {name: spec}. A name starting with an
    axis (x_lo, y_top, ...) is a domain edge: its mask marks the low/high end of that axis
    (both ends if neither is named). Other names (e.g. interior obstacles) get an all-False
    edge mask unless the spec supplies ``mask``."""
    spec = dict(spec) if isinstance(spec, dict) else {"bc_type": str(spec)}
    low = name.lower()
    axis = next((d for d in spatial_dims if low.startswith(d)), None)
    dims = [axis] if axis else list(spatial_dims)
    mask_sizes = [sizes[spatial_dims.index(d)] for d in dims]
    if "mask" in spec:
        mask = np.asarray(spec.pop("mask"), dtype=bool)
    elif axis is None:
        mask = np.zeros(mask_sizes, dtype=bool)
        spec.setdefault("location", "not a domain edge")
    else:
        mask = np.zeros(mask_sizes, dtype=bool)
        tail = low[len(axis):]
        lo = any(t in tail for t in ("lo", "min", "left", "bottom", "front", "west", "south", "start"))
        hi = any(t in tail for t in ("hi", "max", "right", "top", "back", "east", "north", "end"))
        if lo or not hi:
            mask[0] = True
        if hi or not lo:
            mask[-1] = True
    bc_type = str(spec.pop("bc_type", spec.pop("type", "unspecified")))
    values = np.asarray(spec.pop("values", np.zeros(0)), dtype=np.float32)
    return dims, mask, bc_type, values, spec


#: The Well's boundary-condition vocabulary (``the_well.data.datasets.BoundaryCondition``)
WELL_BC_TYPES = ("WALL", "OPEN", "PERIODIC")
#: words of a family's boundary kind and the Well type they stand for: the domain repeats
#: (PERIODIC); waves or flow leave it (OPEN); a condition prescribes the value, flux or a
#: mix of them on a closed edge (WALL, as The Well files Dirichlet walls)
_WELL_BC_WORDS = {
    "periodic": "PERIODIC",
    "open": "OPEN", "absorbing": "OPEN", "radiation": "OPEN", "sommerfeld": "OPEN", "outflow": "OPEN",
    "impedance": "OPEN", "pml": "OPEN", "far-field": "OPEN",
    "wall": "WALL", "dirichlet": "WALL", "neumann": "WALL", "robin": "WALL", "no-slip": "WALL",
    "noslip": "WALL", "symmetry": "WALL", "reflecting": "WALL", "insulated": "WALL",
}


def well_bc_type(kind: str, name: str = "boundary") -> str:
    """The Well's boundary type (``WALL``, ``OPEN`` or ``PERIODIC``) for a family's kind.

    Parameters
    ----------
    kind : str
        The family's description of the condition, e.g. ``"dirichlet"``, ``"periodic"``,
        ``"wall (Neumann dp/dn = 0)"``. Its first word that names a kind decides (case
        is ignored); one of The Well's own names is kept as it is.
    name : str
        The boundary's name, used in the error message.

    Returns
    -------
    str
        One of ``WELL_BC_TYPES``.

    Raises
    ------
    StoreError
        If no word of ``kind`` names a known kind (give the spec a ``well_bc_type``).

    Examples
    --------
    >>> well_bc_type("dirichlet"), well_bc_type("air (Dirichlet p = 0)"), well_bc_type("periodic")
    ('WALL', 'WALL', 'PERIODIC')
    """
    for word in re.findall(r"[a-z]+(?:-[a-z]+)*", str(kind).lower()):
        if word.upper() in WELL_BC_TYPES:
            return word.upper()
        if word in _WELL_BC_WORDS:
            return _WELL_BC_WORDS[word]
    raise StoreError(f"boundary condition {name!r} has type {kind!r}, which names none of the kinds that map onto "
                     f"The Well's {', '.join(WELL_BC_TYPES)} ({', '.join(sorted(_WELL_BC_WORDS))}); "
                     "give its spec a 'well_bc_type'")


def _well_type_of(name: str, spec) -> str:
    """The Well type of one family boundary spec (a kind string or a dict)."""
    if isinstance(spec, dict) and "well_bc_type" in spec:
        t = str(spec["well_bc_type"]).upper()
        if t not in WELL_BC_TYPES:
            raise StoreError(f"boundary condition {name!r} has well_bc_type {spec['well_bc_type']!r}; "
                             f"The Well knows {', '.join(WELL_BC_TYPES)}")
        return t
    kind = spec.get("bc_type", spec.get("type", "unspecified")) if isinstance(spec, dict) else spec
    return well_bc_type(kind, name)


def check_boundary_conditions(bcs: dict) -> dict[str, str]:
    """The Well type of each of a family's boundary conditions ``{name: spec}``; raises
    ``StoreError`` naming the first that maps onto none (so a run fails before solving,
    not when its file is written)."""
    return {name: _well_type_of(name, spec) for name, spec in bcs.items()}


def write_final(out: Path, meta: RunMeta, shard_paths: list[Path]) -> None:
    """Join complete shards into the final file (sample order), committed atomically
    (``FinalWriter`` with every shard at once)."""
    with FinalWriter(out, meta) as writer:
        for p in shard_paths:
            writer.add_shard(p)


class FinalWriter:
    """The final file, joined from the shards one at a time as they are committed, so the
    join overlaps the solves of the chunks still running; committed atomically when the
    ``with`` block ends without an error (every sample must then be stored), removed
    otherwise.

    The first shard added decides the field datasets (and ``meta.output_fields`` when it is
    None: the shard's fields that are not inputs); every later shard must hold the same
    fields. ``x`` is 2-D while every shard's vectors have one length and becomes
    variable-length as soon as one differs, so the file does not depend on the order in
    which the shards arrive.

    Examples
    --------
    >>> with FinalWriter(out, meta) as writer:          # doctest: +SKIP
    ...     for path in shard_paths:                    # in any order
    ...         writer.add_shard(path)
    """

    def __init__(self, out: Path, meta: RunMeta):
        self.out, self.meta = Path(out), meta
        n = self.n = len(meta.parameters)
        self._stack: contextlib.ExitStack | None = None
        self._f: h5py.File | None = None
        self._cols = {"iterations": np.zeros(n, np.int64), "relative_residual": np.zeros(n),
                      "converged": np.zeros(n, bool), "wall_time": np.zeros(n)}
        self._reasons = [""] * n
        self._hists = np.empty(n, dtype=object)  # 1-D: h5py would make a list of equal-length arrays 2-D
        self._seen = np.zeros(n, dtype=bool)

    def __enter__(self) -> FinalWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard(exc_type, exc, tb)

    def add_shard(self, path: Path) -> None:
        """Store the samples of the shard at ``path`` (read whole; its samples in any order)."""
        sh = read_shard(path)
        if self._f is None:
            self._open(sh)
        self._add(sh, path)

    def commit(self) -> None:
        """Write the per-sample statistics and commit the file (StoreError if a sample is missing)."""
        if self._f is None:
            raise StoreError(f"no shard was added to {str(self.out)!r}")
        try:
            if not self._seen.all():
                raise StoreError(f"shards cover {int(self._seen.sum())} of {self.n} samples")
            st = self._f["solver_stats"]
            for c in STAT_COLUMNS:
                st[c] = self._cols[c]
            st.create_dataset("reason", data=self._reasons, dtype=_STR)
            st.create_dataset("residual_history", data=self._hists, dtype=_vlen_f64())
        except BaseException:
            self.discard(*sys.exc_info())
            raise
        stack, self._stack, self._f = self._stack, None, None
        stack.close()  # closes the file, fsyncs it and renames it onto out

    def discard(self, exc_type=None, exc=None, tb=None) -> None:
        """Remove the unfinished file (nothing appears at ``out``)."""
        stack, self._stack, self._f = self._stack, None, None
        if stack is not None:
            if exc_type is None:
                exc_type, exc, tb = StoreError, StoreError("discarded"), None
            stack.__exit__(exc_type, exc, tb)

    def _open(self, first: dict) -> None:
        meta, n = self.meta, self.n
        dim = len(meta.coordinates)
        spatial_dims = list(AXES[:dim])
        sizes = [len(meta.coordinates[a]) for a in spatial_dims]
        if meta.output_fields is None:
            meta.output_fields = [k for k in first["fields"] if k not in meta.input_fields]
        self._stack = contextlib.ExitStack()
        try:
            f = self._f = self._stack.enter_context(atomic_h5(self.out))
            self._write_static(f, first, n, dim, spatial_dims, sizes)
        except BaseException:
            self.discard(*sys.exc_info())
            raise

    def _write_static(self, f: h5py.File, first: dict, n: int, dim: int, spatial_dims: list[str],
                      sizes: list[int]) -> None:
        meta = self.meta
        a = f.attrs
        a["dataset_name"] = meta.problem
        a["grid_type"] = "cartesian"
        a["n_spatial_dims"] = dim
        a["n_trajectories"] = n
        simple = {k: v for k, v in meta.family_params.items()
                  if isinstance(v, (bool, int, float, str, np.integer, np.floating))}
        a["simulation_parameters"] = list(simple)
        for k, v in simple.items():
            if k not in REQUIRED_ROOT_ATTRS:
                a[k] = v
        a["format"] = FORMAT
        a["format_version"] = FORMAT_VERSION
        a["problem"] = meta.problem
        a["description"] = meta.description
        a["config"] = json.dumps(meta.config, sort_keys=True)
        a["command"] = meta.command
        a["family_params"] = json.dumps(meta.family_params, sort_keys=True, default=str)
        a["input_fields"] = list(meta.input_fields)
        a["output_fields"] = list(meta.output_fields)
        for k, v in meta.extra_attrs.items():
            a[k] = _attr_value(v)

        dg = f.create_group("dimensions")
        dg.attrs["spatial_dims"] = spatial_dims
        t = dg.create_dataset("time", data=np.zeros(1, dtype=np.float32))
        t.attrs["description"] = "steady problem: each sample is a trajectory of this one time step"
        t.attrs["sample_varying"] = False
        t.attrs["time_varying"] = False
        for ax in spatial_dims:
            d = dg.create_dataset(ax, data=np.asarray(meta.coordinates[ax], dtype=np.float32))
            d.attrs["sample_varying"] = False
            d.attrs["time_varying"] = False

        bg = f.create_group("boundary_conditions")
        well_types = check_boundary_conditions(meta.boundary_conditions)
        for name, spec in meta.boundary_conditions.items():
            dims, mask, bc_type, values, rest = _bc_entry(name, spec, spatial_dims, sizes)
            rest.pop("well_bc_type", None)
            g = bg.create_group(name)
            g.attrs["associated_dims"] = dims
            g.attrs.create("associated_fields", [str(v) for v in rest.pop("associated_fields", [])], dtype=_STR)
            g.attrs["bc_type"] = well_types[name]
            g.attrs["datagen_bc_type"] = bc_type
            g.attrs["sample_varying"] = False
            g.attrs["time_varying"] = False
            for k, v in rest.items():
                g.attrs[k] = _attr_value(v)
            g["mask"] = mask
            g["values"] = values

        sg = f.create_group("scalars")
        names = []
        # a parameter sampled per system is what each system used: it wins over a family
        # setting of the same name (helmholtz variant=skr samples k, and its fixed k=16 is unused)
        sampled = {k for k, v in meta.parameters[0].items() if _param_kind(v) in ("float", "int")}
        for k, v in simple.items():
            if isinstance(v, (bool, str, np.bool_)) or k in sampled:
                continue
            d = sg.create_dataset(k, data=_scalar_array(v))
            d.attrs["sample_varying"] = False
            d.attrs["time_varying"] = False
            names.append(k)
        for k in meta.parameters[0]:
            if _param_kind(meta.parameters[0][k]) in ("float", "int") and k not in names:
                d = sg.create_dataset(k, data=_scalar_array([p[k] for p in meta.parameters]))
                d.attrs["sample_varying"] = True
                d.attrs["time_varying"] = False
                names.append(k)
        sg.attrs["field_names"] = names

        field_ds = {}
        groups: dict[int, list[str]] = {}
        for name, arr in first["fields"].items():
            order = arr.ndim - 1 - dim
            if order not in (0, 1, 2) or list(arr.shape[1:1 + dim]) != sizes:
                raise StoreError(f"field {name!r} has per-sample shape {arr.shape[1:]}, expected the grid "
                                 f"{tuple(sizes)} (+ vector/tensor components)")
            gname = _field_group(order)
            g = f.require_group(gname)
            shape = (n, *arr.shape[1:])
            ds = g.create_dataset(name, shape=shape, dtype=np.float32, chunks=(1, *arr.shape[1:]))
            ds.attrs["dim_varying"] = np.ones(dim, dtype=bool)
            ds.attrs["sample_varying"] = True
            ds.attrs["time_varying"] = False
            ds.attrs["role"] = "input" if name in meta.input_fields else "output"
            if order == 2:
                ds.attrs["symmetric"] = False
                ds.attrs["antisymmetric"] = False
            field_ds[name] = ds
            groups.setdefault(order, []).append(name)
        for order in (0, 1, 2):  # The Well's readers open all three groups
            f.require_group(_field_group(order)).attrs.create(
                "field_names", groups.get(order, []), dtype=_STR)

        _write_parameters(f.create_group("parameters"), meta.parameters)

        og = f.create_group("ordering")
        perm = np.asarray(meta.permutation, dtype=np.int64)
        position = np.empty(n, dtype=np.int64)
        position[perm] = np.arange(n)
        og["permutation"] = perm
        og["position"] = position
        og["chunk"] = position // int(meta.chunk_size)
        feats = np.asarray(meta.features, dtype=np.float64)
        if feats[0].size <= MAX_STORED_FEATURES:
            og["features"] = feats
        else:  # a whole coefficient field: already stored as an input, recomputable from /parameters
            og.attrs["features"] = f"not stored ({feats[0].size} per sample); family.features(parameters)"
        og.attrs["method"] = meta.order_method
        og.attrs["chunk_size"] = int(meta.chunk_size)
        og.attrs["description"] = ("permutation[k] is the sample solved k-th; samples in one chunk were "
                                   "solved in sequence by one solver whose state was reset between chunks")

        st = f.create_group("solver_stats")
        st.attrs["solver"] = json.dumps(meta.solver, sort_keys=True, default=str)
        st.attrs["rtol"] = float(meta.rtol)
        st.attrs["atol"] = float(meta.atol)
        st.attrs["field_names"] = [*STAT_COLUMNS, "reason", "residual_history"]
        xg = f.create_group("solution_vectors")
        if isinstance(first["x"], list):
            xs = xg.create_dataset("x", (n,), dtype=h5py.vlen_dtype(np.dtype("float32")))
        else:
            w = int(first["x"].shape[1])
            xs = xg.create_dataset("x", shape=(n, w), dtype=np.float32, chunks=(1, w))
        xs.attrs["description"] = X_DESCRIPTION
        self._field_ds, self._xs = field_ds, xs

    def _x_to_vlen(self) -> None:
        """A shard whose vectors differ in length from the ones stored: ``x`` becomes variable-length."""
        g = self._f["solution_vectors"]
        old = g["x"][()]
        del g["x"]
        xs = self._xs = g.create_dataset("x", (self.n,), dtype=h5py.vlen_dtype(np.dtype("float32")))
        xs.attrs["description"] = X_DESCRIPTION
        for i in np.flatnonzero(self._seen):
            xs[i] = old[i]

    def _add(self, sh: dict, path: Path) -> None:
        idx = np.asarray(sh["sample_index"], dtype=np.int64)
        if len(idx) and (idx.min() < 0 or idx.max() >= self.n):
            raise StoreError(f"shard {str(path)!r} holds samples outside 0..{self.n - 1}")
        if self._seen[idx].any() or len(np.unique(idx)) != len(idx):
            raise StoreError(f"shard {str(path)!r} repeats samples already stored")
        if set(sh["fields"]) != set(self._field_ds):
            raise StoreError(f"shard {str(path)!r} has fields {sorted(sh['fields'])}, the first shard "
                             f"{sorted(self._field_ds)}")
        for name, arr in sh["fields"].items():
            write_rows(self._field_ds[name], idx, arr)
        x = sh["x"]
        if self._xs.ndim == 2 and (isinstance(x, list) or x.shape[1] != self._xs.shape[1]):
            self._x_to_vlen()
        if self._xs.ndim == 2:
            write_rows(self._xs, idx, x)
        else:
            for k, i in enumerate(idx):  # (h5py cannot write variable-length rows by a list of indices)
                self._xs[i] = np.asarray(x[k], dtype=np.float32).reshape(-1)
        self._seen[idx] = True
        for c in STAT_COLUMNS:
            self._cols[c][idx] = sh[c]
        for k, i in enumerate(idx):
            self._reasons[i] = sh["reason"][k]
            self._hists[i] = sh["residual_history"][k]


X_DESCRIPTION = ("unknown vector of each system (fp32; variable-length when the number of unknowns varies); "
                 "validate re-assembles A, b from /parameters")


def _object_rows(rows: list[np.ndarray]) -> np.ndarray:
    """A 1-D object array of the given arrays (``np.array`` of equal-length arrays is 2-D)."""
    out = np.empty(len(rows), dtype=object)
    for k, r in enumerate(rows):
        out[k] = r
    return out


def write_rows(ds: h5py.Dataset, index, rows: np.ndarray) -> None:
    """``ds[index[k]] = rows[k]`` for every k, the indices in any order, each in one call.

    A dataset chunked one sample per chunk without filters (the final file's fields and
    ``x``) takes each row as a raw chunk (``write_direct_chunk``: a copy of its bytes, no
    selection or conversion); any other dataset one hyperslab per row. A single fancy-indexed
    assignment ``ds[sorted_index] = rows[order]`` costs about ten times more in HDF5 for
    scattered rows.
    """
    index = np.asarray(index, dtype=np.int64).reshape(-1)
    rows = np.ascontiguousarray(rows, dtype=ds.dtype)
    if rows.shape != (len(index), *ds.shape[1:]):
        raise StoreError(f"{ds.name}: {rows.shape[0] if rows.ndim else 0} rows of shape {rows.shape[1:]} for "
                         f"{len(index)} samples of shape {ds.shape[1:]}")
    if len(index) and (index.min() < 0 or index.max() >= ds.shape[0]):
        raise StoreError(f"{ds.name}: sample index out of range 0..{ds.shape[0] - 1}")
    tail = (0,) * (ds.ndim - 1)
    if ds.chunks == (1, *ds.shape[1:]) and ds.compression is None and not ds.fletcher32 and not ds.scaleoffset \
            and not ds.shuffle and ds.dtype.isnative:
        for i, row in zip(index, rows, strict=True):
            ds.id.write_direct_chunk((int(i), *tail), row)
        return
    fspace = ds.id.get_space()
    mspace = h5py.h5s.create_simple((1, *ds.shape[1:]))
    for i, row in zip(index, rows, strict=True):
        fspace.select_hyperslab((int(i), *tail), (1, *ds.shape[1:]))
        ds.id.write(mspace, fspace, row[None])


# --- reading -----------------------------------------------------------------------------
def open_file(path) -> h5py.File:
    path = Path(path)
    if not path.exists():
        raise StoreError(f"file {str(path)!r} does not exist")
    if path.is_dir():
        raise StoreError(f"{str(path)!r} is a directory, not an HDF5 file")
    if not path.is_file():  # opening a FIFO would block forever
        raise StoreError(f"{str(path)!r} is not a regular file")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        why = " ".join(str(exc).split())  # HDF5's messages can span lines; the CLI prints one
        raise StoreError(f"{str(path)!r} is not a readable HDF5 file ({why})") from None
    if f.attrs.get("format") != FORMAT:
        f.close()
        raise StoreError(f"{str(path)!r} is not a datagen file (root attribute format != {FORMAT!r})")
    return f


def field_names(f: h5py.File) -> tuple[list[str], list[str]]:
    return [str(s) for s in f.attrs["input_fields"]], [str(s) for s in f.attrs["output_fields"]]


def field_dataset(f: h5py.File, name: str) -> h5py.Dataset:
    for order in (0, 1, 2):
        g = f.get(_field_group(order))
        if g is not None and name in g:
            return g[name]
    raise StoreError(f"field {name!r} not found")


def read_config(f: h5py.File) -> dict:
    return json.loads(f.attrs["config"])


def read_stats(f: h5py.File) -> dict[str, Any]:
    st = f["solver_stats"]
    out = {c: st[c][()] for c in STAT_COLUMNS}
    out["reason"] = [s.decode() if isinstance(s, bytes) else str(s) for s in st["reason"][()]]
    return out


def residual_history(f: h5py.File, index: int) -> np.ndarray:
    return np.asarray(f["solver_stats"]["residual_history"][index], dtype=np.float64)


def _text(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def read_boundary_conditions(f: h5py.File) -> dict[str, dict]:
    """Every ``/boundary_conditions`` entry as ``{name: {...}}``.

    Parameters
    ----------
    f : h5py.File
        An open datagen file (either layout: steady samples or channel trajectories).

    Returns
    -------
    dict
        Per boundary: ``kind`` (the family's own type, ``@datagen_bc_type``), ``bc_type``
        (The Well's), ``associated_dims``, ``associated_fields``, ``mask``, ``values`` and
        any further attributes the family gave. Files written before ``@datagen_bc_type``
        existed stored the family's kind in ``@bc_type``; for them ``kind`` is that value
        and ``bc_type`` its Well counterpart (None where there is none).

    Examples
    --------
    >>> with open_file(path) as f:                    # doctest: +SKIP
    ...     read_boundary_conditions(f)["x_lo"]["kind"]
    'dirichlet'
    """
    out = {}
    for name, g in f.get("boundary_conditions", {}).items():
        attrs = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in g.attrs.items()}
        attrs = {k: ([_text(x) for x in v] if isinstance(v, list) else _text(v) if isinstance(v, bytes) else v)
                 for k, v in attrs.items()}
        stored = str(attrs.pop("bc_type", "unspecified"))
        kind = str(attrs.pop("datagen_bc_type", stored))
        if "datagen_bc_type" not in g.attrs and stored not in WELL_BC_TYPES:
            try:
                stored = well_bc_type(stored, name)
            except StoreError:
                stored = None
        entry = {"kind": kind, "bc_type": stored, **attrs}
        for k in ("mask", "values"):
            if k in g:
                entry[k] = g[k][()]
        out[name] = entry
    return out


def well_layout_problems(f: h5py.File) -> list[str]:
    """What The Well's reader (``the_well.data.WellDataset``) would trip over in ``f``
    (empty list: it loads). Files written before these rules lack t1/t2 groups and use
    the family's kinds as ``@bc_type``; ``open_dataset`` still reads them."""
    problems = []
    for k in ("dataset_name", "grid_type", "n_spatial_dims", "n_trajectories"):
        if k not in f.attrs:
            problems.append(f"root attribute {k!r} missing")
    for g in ("dimensions", "boundary_conditions", "scalars", "t0_fields", "t1_fields", "t2_fields"):
        if g not in f:
            problems.append(f"group /{g} missing")
        elif g.endswith("_fields") or g == "scalars":
            if "field_names" not in f[g].attrs:
                problems.append(f"/{g}@field_names missing")
    if "dimensions" in f:
        if "time" not in f["dimensions"]:
            problems.append("/dimensions/time missing")
        for ax in ["time", *[_text(a) for a in f["dimensions"].attrs.get("spatial_dims", [])]]:
            if ax in f["dimensions"] and "sample_varying" not in f["dimensions"][ax].attrs:
                problems.append(f"/dimensions/{ax}@sample_varying missing")
    for name, g in f.get("boundary_conditions", {}).items():
        t = _text(g.attrs.get("bc_type", ""))
        if t.upper() not in WELL_BC_TYPES:
            problems.append(f"/boundary_conditions/{name}@bc_type {t!r} is not one of {', '.join(WELL_BC_TYPES)}")
        if "mask" not in g or "associated_dims" not in g.attrs:
            problems.append(f"/boundary_conditions/{name} lacks mask or @associated_dims")
    return problems


def is_trajectory_file(f: h5py.File) -> bool:
    """A time-dependent dataset (the channel family): trajectories, no solved systems. Judged
    by every per-system group being absent, so a damaged sample file is not mistaken for one."""
    return not any(g in f for g in ("solver_stats", "parameters", "ordering", "solution_vectors"))


def check_schema(f: h5py.File) -> list[str]:
    """Every way the file departs from the layout above (empty list: conforms)."""
    problems = []
    for k in REQUIRED_ROOT_ATTRS:
        if k not in f.attrs:
            problems.append(f"root attribute {k!r} missing")
    for g in REQUIRED_GROUPS:
        if g not in f:
            problems.append(f"group /{g} missing")
    try:
        if not isinstance(json.loads(f.attrs["config"]), dict):
            problems.append("root attribute 'config' is not a JSON mapping")
    except (KeyError, TypeError, ValueError):
        problems.append("root attribute 'config' is not valid JSON")
    if problems:
        return problems
    n = int(f.attrs["n_trajectories"])
    dim = int(f.attrs["n_spatial_dims"])
    spatial = [str(s) for s in f["dimensions"].attrs.get("spatial_dims", [])]
    if len(spatial) != dim:
        problems.append(f"/dimensions@spatial_dims has {len(spatial)} names, n_spatial_dims is {dim}")
    sizes = []
    for ax in spatial:
        if ax not in f["dimensions"]:
            problems.append(f"/dimensions/{ax} missing")
        else:
            sizes.append(f["dimensions"][ax].shape[0])
    names_in, names_out = field_names(f)
    listed = []
    for order in (0, 1, 2):
        g = f.get(_field_group(order))
        if g is None:
            continue
        fn = [str(s) for s in g.attrs.get("field_names", [])]
        if sorted(fn) != sorted(g.keys()):
            problems.append(f"/{g.name.strip('/')}@field_names {fn} does not match its datasets {sorted(g)}")
        for name in g:
            ds = g[name]
            listed.append(name)
            for attr in ("sample_varying", "time_varying", "dim_varying"):
                if attr not in ds.attrs:
                    problems.append(f"{ds.name}@{attr} missing")
            if ds.dtype != np.float32:
                problems.append(f"{ds.name} is {ds.dtype}, expected float32")
            expect = (n, *sizes)
            if ds.shape[:1 + dim] != expect or ds.ndim != 1 + dim + order:
                problems.append(f"{ds.name} has shape {ds.shape}, expected {expect} + {order} component axes")
    missing = set(names_in + names_out) - set(listed)
    if missing:
        problems.append(f"fields {sorted(missing)} are listed in input/output_fields but not stored")
    for c in (*STAT_COLUMNS, "reason", "residual_history"):
        if c not in f["solver_stats"]:
            problems.append(f"/solver_stats/{c} missing")
        elif f["solver_stats"][c].shape[0] != n:
            problems.append(f"/solver_stats/{c} has {f['solver_stats'][c].shape[0]} rows, expected {n}")
    for k in f["parameters"].attrs.get("names", []):
        if k not in f["parameters"] or f["parameters"][k].shape[:1] != (n,):
            problems.append(f"/parameters/{k} missing or not one row per sample")
    perm = f["ordering"].get("permutation")
    if perm is None or not np.array_equal(np.sort(perm[()]), np.arange(n)):
        problems.append("/ordering/permutation is not a permutation of the samples")
    x = f["solution_vectors"].get("x")
    if x is None or x.shape[0] != n:
        problems.append("/solution_vectors/x missing or not one row per sample")
    return problems


def rounding_slack(A, x32: np.ndarray) -> float:
    """Upper bound on ||A (x32 - x)|| when x32 is x rounded to fp32: ||A||_F u ||x||."""
    import scipy.sparse as sp

    if sp.issparse(A):
        fro = float(np.sqrt(np.sum(np.asarray(A.data, dtype=np.float64) ** 2)))
    else:
        from linsolve import Operator

        fro = float(np.linalg.norm(Operator(A).csr().data))
    xn = float(np.linalg.norm(np.asarray(x32, dtype=np.float64)))
    return fro * FP32_UNIT_ROUNDOFF * xn / (1 - FP32_UNIT_ROUNDOFF) * 1.001


def open_dataset(path):
    """Open a generated file: arrays (``.x``, ``.y``, ``.fields``, ``.parameters``,
    ``.stats``) and a PyTorch ``Dataset`` (``.torch()``) yielding ``{"x", "y"}``; a
    trajectory file (the channel problem) as ``datagen.dataset.TrajectoryData``
    (``.velocity`` (K, S, NX, NY, NZ, 3), ``.time``, ``.coordinates``, ``.scalars``)."""
    from .dataset import GeneratedData, TrajectoryData

    with open_file(path) as f:
        trajectories = is_trajectory_file(f)
    # time-dependent files (the channel problem) have trajectories, not x/y pairs
    return TrajectoryData.load(path) if trajectories else GeneratedData.load(path)

"""Writing the final file of a steady family, and trajectory files in a template's layout.

The final file is joined from the shards (``datagen.storage.shards``) as they are committed,
in sample order, and committed atomically when every sample is stored. The layout is
``datagen.storage.schema``'s.
"""
from __future__ import annotations

import contextlib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from .atomic import atomic_h5
from .errors import StoreError
from .reader import open_file
from .schema import (
    AXES,
    FORMAT,
    FORMAT_VERSION,
    MAX_STORED_FEATURES,
    REQUIRED_ROOT_ATTRS,
    STAT_COLUMNS,
    STRING_DTYPE,
    check_boundary_conditions,
    field_group,
    is_trajectory_file,
    vlen_f64,
)
from .shards import read_shard

__all__ = ["RunMeta", "write_final", "FinalWriter", "write_rows", "write_trajectory_file"]


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
            ds = g.create_dataset(k, data=[str(v) for v in vals], dtype=STRING_DTYPE)
        elif kind == "array":
            arrs = [np.asarray(v) for v in vals]
            if any(a.shape != arrs[0].shape for a in arrs):
                raise StoreError(f"parameter {k!r} changes shape between samples")
            ds = g.create_dataset(k, data=np.stack(arrs))
        else:
            ds = g.create_dataset(k, data=np.asarray(vals))
        ds.attrs["kind"] = kind


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
            st.create_dataset("reason", data=self._reasons, dtype=STRING_DTYPE)
            st.create_dataset("residual_history", data=self._hists, dtype=vlen_f64())
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
            g.attrs.create("associated_fields", [str(v) for v in rest.pop("associated_fields", [])], dtype=STRING_DTYPE)
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
            gname = field_group(order)
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
            f.require_group(field_group(order)).attrs.create(
                "field_names", groups.get(order, []), dtype=STRING_DTYPE)

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


def write_trajectory_file(out, template, velocity: np.ndarray, time: np.ndarray, *, attrs: dict | None = None,
                          trajectories=None, extra: dict | None = None) -> Path:
    """Write trajectories in the layout of the time-dependent file ``template`` (same root
    attributes, dimensions, boundary conditions and scalars), atomically.

    Used for surrogate rollouts and LES runs, so that every reader of the channel layout
    reads them.

    Parameters
    ----------
    out : str or pathlib.Path
        The file to write.
    template : str or pathlib.Path
        A channel trajectory file whose grid and metadata the new file takes.
    velocity : numpy.ndarray
        (K, S, NX, NY, NZ, 3) on the template's grid.
    time : numpy.ndarray
        (S,), from the first snapshot.
    attrs : dict, optional
        Root attributes to set or replace (``n_trajectories`` is set from K).
    trajectories : sequence of int, optional
        The template's trajectory indices these continue (their seeds and start times are
        copied).
    extra : dict, optional
        ``{group name: {dataset name: array, "@attr": value}}``, added as groups of their own.

    Returns
    -------
    pathlib.Path
        ``out``.

    Raises
    ------
    StoreError
        ``template`` is not a trajectory file, or ``velocity`` or ``time`` does not fit it
        (nothing is written).
    """
    velocity = np.asarray(velocity, dtype=np.float32)
    out = Path(out)
    with open_file(template) as src:
        if not is_trajectory_file(src):
            raise StoreError(f"{str(template)!r} is not a trajectory file")
        grid = tuple(src["dimensions"][ax].shape[0] for ax in ("x", "y", "z"))
        if velocity.ndim != 6 or velocity.shape[2:] != (*grid, 3):
            raise StoreError(f"velocity of shape {velocity.shape} does not fit the template's grid {grid}")
        K, S = velocity.shape[:2]
        if np.asarray(time).shape != (S,):
            raise StoreError(f"time must have one entry per snapshot ({S}), got {np.asarray(time).shape}")
        with atomic_h5(out) as f:
            for k, v in src.attrs.items():
                f.attrs[k] = v
            for k, v in (attrs or {}).items():
                f.attrs[k] = v
            f.attrs["n_trajectories"] = K
            src.copy(src["boundary_conditions"], f, "boundary_conditions")
            src.copy(src["scalars"], f, "scalars")
            dims = f.create_group("dimensions")
            for k, v in src["dimensions"].attrs.items():
                dims.attrs[k] = v
            for ax in ("x", "y", "z"):
                src.copy(src["dimensions"][ax], dims, ax)
            dims["time"] = np.asarray(time, dtype=np.float32)
            dims["time"].attrs.update(sample_varying=False, time_varying=True)
            for g in ("t0_fields", "t2_fields"):
                f.create_group(g).attrs["field_names"] = []
            t1 = f.create_group("t1_fields")
            t1.attrs["field_names"] = ["velocity"]
            t1["velocity"] = velocity
            t1["velocity"].attrs.update(dim_varying=[True, True, True], sample_varying=True, time_varying=True)
            if trajectories is not None:
                idx = np.asarray(trajectories, dtype=int)
                for name in ("trajectory_seeds", "trajectory_start_time"):
                    if name in src:
                        f[name] = src[name][()][idx]
            for gname, content in (extra or {}).items():
                g = f.create_group(gname)
                for k, v in content.items():
                    if k.startswith("@"):
                        g.attrs[k[1:]] = v
                    else:
                        g[k] = v
    return out

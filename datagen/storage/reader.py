"""Reading the parts of a generated file: open it, and read its fields, configuration,
solver statistics, parameters and boundary conditions."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .errors import StoreError
from .schema import FORMAT, STAT_COLUMNS, WELL_BC_TYPES, as_text, field_group, well_bc_type

__all__ = ["open_file", "field_names", "field_dataset", "read_config", "read_stats", "residual_history",
           "read_parameters", "read_boundary_conditions"]


def open_file(path) -> h5py.File:
    """Open a datagen file for reading.

    Parameters
    ----------
    path : str or pathlib.Path
        A file of ``datagen generate``, ``datagen les`` or ``operators rollout``.

    Returns
    -------
    h5py.File
        Open read-only; the caller closes it (``with open_file(path) as f``).

    Raises
    ------
    StoreError
        The path does not exist, is not a regular file, is not readable HDF5, or its root
        attribute ``format`` is not ``"datagen-well"``.
    """
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
    """The input and the output field names (the x / y split)."""
    return [str(s) for s in f.attrs["input_fields"]], [str(s) for s in f.attrs["output_fields"]]


def field_dataset(f: h5py.File, name: str) -> h5py.Dataset:
    """The dataset of field ``name``, whichever tensor-order group holds it."""
    for order in (0, 1, 2):
        g = f.get(field_group(order))
        if g is not None and name in g:
            return g[name]
    raise StoreError(f"field {name!r} not found")


def read_config(f: h5py.File) -> dict:
    """The run's configuration (the keys ``datagen generate --config`` reads)."""
    return json.loads(f.attrs["config"])


def read_stats(f: h5py.File) -> dict[str, Any]:
    """The per-sample solver statistics, one array (or list, ``reason``) per column."""
    st = f["solver_stats"]
    out = {c: st[c][()] for c in STAT_COLUMNS}
    out["reason"] = [s.decode() if isinstance(s, bytes) else str(s) for s in st["reason"][()]]
    return out


def residual_history(f: h5py.File, index: int) -> np.ndarray:
    """Sample ``index``'s residual history."""
    return np.asarray(f["solver_stats"]["residual_history"][index], dtype=np.float64)


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
        attrs = {k: ([as_text(x) for x in v] if isinstance(v, list) else as_text(v) if isinstance(v, bytes) else v)
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


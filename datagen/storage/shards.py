"""Shards: the results of one chunk of solves, each its own file committed atomically.

A shard holds its samples in solve order: ``sample_index``, ``fields/<name>``, the unknown
vectors ``x`` (2-D, or variable-length when the number of unknowns varies), and the solver
statistics (``iterations``, ``relative_residual``, ``converged``, ``wall_time``, ``reason``,
``residual_history``). ``@complete`` marks a finished shard; ``datagen.storage.writer`` joins
the shards into the final file.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from .atomic import atomic_h5
from .errors import StoreError
from .schema import STRING_DTYPE, vlen_f64

__all__ = ["SampleRecord", "write_shard", "read_shard", "shard_is_valid"]


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


def write_shard(path: Path, chunk_id: int, records: list[SampleRecord], unique_tmp: bool = False) -> None:
    """Commit one chunk's results (in solve order) atomically (``unique_tmp``: see
    ``datagen.storage.atomic.tmp_name``)."""
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
        f.create_dataset("reason", data=[r.reason for r in records], dtype=STRING_DTYPE)
        hist = f.create_dataset("residual_history", (len(records),), dtype=vlen_f64())
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
    """A complete shard's columns as arrays and lists (``StoreError`` if it is not complete)."""
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

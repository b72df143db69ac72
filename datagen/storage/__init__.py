"""The HDF5 store of ``datagen``: The Well's layout plus the groups that make a file auditable.

One job per module, imported in this order (each imports only the ones above it):

- ``errors``: ``StoreError``;
- ``atomic``: atomic commits (temporary name, fsync, rename, directory fsync);
- ``schema``: the layout (constants, The Well's boundary types) and the checks that a file
  conforms to it;
- ``shards``: one chunk's results, written and read;
- ``reader``: opening a file and reading its parts;
- ``writer``: the final file joined from the shards, and trajectory files in a template's layout;
- ``dataset``: a whole file as arrays (``GeneratedData``, ``TrajectoryData``) and ``open_dataset``.
"""
from __future__ import annotations

from .atomic import atomic_h5, atomic_path, atomic_write_text, tmp_name
from .dataset import GeneratedData, TrajectoryData, open_dataset
from .errors import StoreError
from .reader import (
    field_dataset,
    field_names,
    open_file,
    read_boundary_conditions,
    read_config,
    read_parameters,
    read_stats,
    residual_history,
)
from .schema import (
    FORMAT,
    FORMAT_VERSION,
    FP32_UNIT_ROUNDOFF,
    WELL_BC_TYPES,
    check_boundary_conditions,
    check_schema,
    is_trajectory_file,
    rounding_slack,
    well_bc_type,
    well_layout_problems,
)
from .shards import SampleRecord, read_shard, shard_is_valid, write_shard
from .writer import FinalWriter, RunMeta, write_final, write_rows, write_trajectory_file

__all__ = [
    "StoreError",
    "tmp_name", "atomic_path", "atomic_h5", "atomic_write_text",
    "FORMAT", "FORMAT_VERSION", "FP32_UNIT_ROUNDOFF", "WELL_BC_TYPES", "check_boundary_conditions",
    "check_schema", "is_trajectory_file", "rounding_slack", "well_bc_type", "well_layout_problems",
    "SampleRecord", "write_shard", "read_shard", "shard_is_valid",
    "open_file", "field_names", "field_dataset", "read_config", "read_stats", "residual_history",
    "read_parameters", "read_boundary_conditions",
    "RunMeta", "FinalWriter", "write_final", "write_rows", "write_trajectory_file",
    "GeneratedData", "TrajectoryData", "open_dataset",
]

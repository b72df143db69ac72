"""A generated file as arrays and as a PyTorch ``Dataset`` (neuraloperator's ``{"x", "y"}``
convention, channels first). torch is imported only when ``.torch()`` is called."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import StoreError
from .reader import (
    field_dataset,
    field_names,
    open_file,
    read_boundary_conditions,
    read_config,
    read_parameters,
    read_stats,
)
from .schema import check_schema, is_trajectory_file

__all__ = ["GeneratedData", "TrajectoryData", "open_dataset"]


def _channels_first(arr: np.ndarray, dim: int) -> np.ndarray:
    """(N, *grid[, D[, D]]) -> (N, C, *grid): vector/tensor components become channels."""
    n, grid, comps = arr.shape[0], arr.shape[1:1 + dim], arr.shape[1 + dim:]
    c = int(np.prod(comps)) if comps else 1
    arr = arr.reshape(n, *grid, c)
    return np.moveaxis(arr, -1, 1)


@dataclass
class GeneratedData:
    """``x``: inputs (N, C_in, *grid) float32; ``y``: solutions (N, C_out, *grid);
    ``fields``: every field by name as stored; ``parameters``: per-sample dicts as sampled;
    ``stats``: per-sample solver statistics; ``attrs``/``config``: provenance;
    ``boundary_conditions``: per boundary the family's kind and The Well's type
    (``datagen.storage.reader.read_boundary_conditions``)."""

    path: Path
    x: np.ndarray
    y: np.ndarray
    fields: dict
    input_fields: list
    output_fields: list
    parameters: list
    stats: dict
    coordinates: dict
    attrs: dict
    config: dict
    boundary_conditions: dict = field(default_factory=dict)

    @classmethod
    def load(cls, path) -> GeneratedData:
        with open_file(path) as f:
            if is_trajectory_file(f):
                # the schema check would report a missing attribute as if the file were damaged
                raise StoreError(
                    f"{str(path)!r} holds trajectories (the channel problem), not solved systems, so it has no "
                    "x/y pairs; read t1_fields/velocity (trajectory, time, x, y, z, component) with h5py")
            problems = check_schema(f)
            if problems:
                raise StoreError(f"{str(path)!r} does not match the datagen layout: {problems[0]}")
            dim = int(f.attrs["n_spatial_dims"])
            ins, outs = field_names(f)
            fields = {name: field_dataset(f, name)[()] for name in ins + outs}
            x = np.concatenate([_channels_first(fields[k], dim) for k in ins], axis=1)
            y = np.concatenate([_channels_first(fields[k], dim) for k in outs], axis=1)
            spatial = [str(s) for s in f["dimensions"].attrs["spatial_dims"]]
            coords = {ax: f["dimensions"][ax][()] for ax in spatial}
            attrs = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in f.attrs.items()}
            return cls(Path(path), x, y, fields, ins, outs, read_parameters(f), read_stats(f),
                       coords, attrs, read_config(f), read_boundary_conditions(f))

    def __len__(self) -> int:
        return self.x.shape[0]

    def __getitem__(self, i) -> dict:
        return {"x": self.x[i], "y": self.y[i]}

    def torch(self):
        """A ``torch.utils.data.Dataset`` over this file yielding ``{"x": Tensor, "y": Tensor}``."""
        import torch

        return _field_dataset_class()(torch.from_numpy(self.x), torch.from_numpy(self.y))


def _field_dataset_class():
    # Built on first use so torch stays unimported until then; published as a module
    # attribute so DataLoader workers can pickle it.
    cls = globals().get("FieldDataset")
    if cls is None:
        from torch.utils.data import Dataset

        class FieldDataset(Dataset):
            """``{"x": inputs, "y": solution}`` per sample, channels first."""

            def __init__(self, x, y):
                self.x, self.y = x, y

            def __len__(self):
                return self.x.shape[0]

            def __getitem__(self, i):
                return {"x": self.x[i], "y": self.y[i]}

        # pickle finds a class by module and __qualname__: without this it is
        # '_field_dataset_class.<locals>.FieldDataset', which pickle cannot look up
        FieldDataset.__qualname__ = "FieldDataset"
        cls = globals()["FieldDataset"] = FieldDataset
    return cls


def __getattr__(attr):
    if attr == "FieldDataset":
        return _field_dataset_class()
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")


@dataclass
class TrajectoryData:
    """A time-dependent file (the channel problem, and LES or surrogate rollouts written in its
    layout). ``fields``: every stored field by name, (K, S, *grid[, D]) float32 (``velocity``
    is (K, S, NX, NY, NZ, 3)); ``time``: (S,) from the first snapshot; ``coordinates``: x, y, z;
    ``scalars``: the fixed scalars (Re_tau, nu, snapshot_dt, ...); ``attrs``/``config``:
    provenance; ``groups``: any further group (e.g. a rollout's ``/rollout``) as {name: {attribute
    or dataset name: value}}."""

    path: Path
    fields: dict
    time: np.ndarray
    coordinates: dict
    scalars: dict
    attrs: dict
    config: dict
    groups: dict

    @property
    def velocity(self) -> np.ndarray:
        if "velocity" not in self.fields:
            raise StoreError(f"{str(self.path)!r} holds no velocity field")
        return self.fields["velocity"]

    @property
    def n_trajectories(self) -> int:
        return int(self.attrs["n_trajectories"])

    @classmethod
    def load(cls, path) -> TrajectoryData:
        with open_file(path) as f:
            if not is_trajectory_file(f):
                raise StoreError(f"{str(path)!r} holds solved systems, not trajectories")
            try:
                fields = {name: ds[()] for grp in ("t0_fields", "t1_fields", "t2_fields") if grp in f
                          for name, ds in f[grp].items()}
                spatial = [str(s) for s in f["dimensions"].attrs["spatial_dims"]]
                coords = {ax: f["dimensions"][ax][()] for ax in spatial}
                time = f["dimensions"]["time"][()]
                scalars = {k: v[()].item() for k, v in f["scalars"].items() if v.shape == ()}
                attrs = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in f.attrs.items()}
                config = read_config(f) if "config" in f.attrs else {}
                known = {"dimensions", "boundary_conditions", "scalars", "t0_fields", "t1_fields", "t2_fields"}
                groups = {}
                for name, g in f.items():
                    if name not in known and hasattr(g, "attrs") and hasattr(g, "keys"):
                        groups[name] = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in g.attrs.items()}
                        groups[name].update({k: ds[()] for k, ds in g.items() if not hasattr(ds, "keys")})
            except (KeyError, ValueError) as exc:
                raise StoreError(f"{str(path)!r} is not a complete trajectory file "
                                       f"({' '.join(str(exc).split())})") from None
            if "n_trajectories" not in attrs:
                raise StoreError(f"{str(path)!r} is not a complete trajectory file (no n_trajectories)")
        return cls(Path(path), fields, time, coords, scalars, attrs, config, groups)


def open_dataset(path):
    """Open a generated file: arrays (``.x``, ``.y``, ``.fields``, ``.parameters``,
    ``.stats``) and a PyTorch ``Dataset`` (``.torch()``) yielding ``{"x", "y"}``; a
    trajectory file (the channel problem) as ``TrajectoryData`` (``.velocity``
    (K, S, NX, NY, NZ, 3), ``.time``, ``.coordinates``, ``.scalars``). ``datagen.open_dataset``
    documents it in full."""
    with open_file(path) as f:
        trajectories = is_trajectory_file(f)
    # time-dependent files (the channel problem) have trajectories, not x/y pairs
    return TrajectoryData.load(path) if trajectories else GeneratedData.load(path)

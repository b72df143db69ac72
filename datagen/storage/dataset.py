"""A generated file as arrays and as a PyTorch ``Dataset`` (neuraloperator's ``{"x", "y"}``
convention, channels first). torch is imported only when ``.torch()`` is called."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import store


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
    (``store.read_boundary_conditions``)."""

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
        with store.open_file(path) as f:
            if store.is_trajectory_file(f):
                # the schema check would report a missing attribute as if the file were damaged
                raise store.StoreError(
                    f"{str(path)!r} holds trajectories (the channel problem), not solved systems, so it has no "
                    "x/y pairs; read t1_fields/velocity (trajectory, time, x, y, z, component) with h5py")
            problems = store.check_schema(f)
            if problems:
                raise store.StoreError(f"{str(path)!r} does not match the datagen layout: {problems[0]}")
            dim = int(f.attrs["n_spatial_dims"])
            ins, outs = store.field_names(f)
            fields = {name: store.field_dataset(f, name)[()] for name in ins + outs}
            x = np.concatenate([_channels_first(fields[k], dim) for k in ins], axis=1)
            y = np.concatenate([_channels_first(fields[k], dim) for k in outs], axis=1)
            spatial = [str(s) for s in f["dimensions"].attrs["spatial_dims"]]
            coords = {ax: f["dimensions"][ax][()] for ax in spatial}
            attrs = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in f.attrs.items()}
            return cls(Path(path), x, y, fields, ins, outs, store.read_parameters(f), store.read_stats(f),
                       coords, attrs, store.read_config(f), store.read_boundary_conditions(f))

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
            raise store.StoreError(f"{str(self.path)!r} holds no velocity field")
        return self.fields["velocity"]

    @property
    def n_trajectories(self) -> int:
        return int(self.attrs["n_trajectories"])

    @classmethod
    def load(cls, path) -> TrajectoryData:
        with store.open_file(path) as f:
            if not store.is_trajectory_file(f):
                raise store.StoreError(f"{str(path)!r} holds solved systems, not trajectories")
            try:
                fields = {name: ds[()] for grp in ("t0_fields", "t1_fields", "t2_fields") if grp in f
                          for name, ds in f[grp].items()}
                spatial = [str(s) for s in f["dimensions"].attrs["spatial_dims"]]
                coords = {ax: f["dimensions"][ax][()] for ax in spatial}
                time = f["dimensions"]["time"][()]
                scalars = {k: v[()].item() for k, v in f["scalars"].items() if v.shape == ()}
                attrs = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in f.attrs.items()}
                config = store.read_config(f) if "config" in f.attrs else {}
                known = {"dimensions", "boundary_conditions", "scalars", "t0_fields", "t1_fields", "t2_fields"}
                groups = {}
                for name, g in f.items():
                    if name not in known and hasattr(g, "attrs") and hasattr(g, "keys"):
                        groups[name] = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in g.attrs.items()}
                        groups[name].update({k: ds[()] for k, ds in g.items() if not hasattr(ds, "keys")})
            except (KeyError, ValueError) as exc:
                raise store.StoreError(f"{str(path)!r} is not a complete trajectory file "
                                       f"({' '.join(str(exc).split())})") from None
            if "n_trajectories" not in attrs:
                raise store.StoreError(f"{str(path)!r} is not a complete trajectory file (no n_trajectories)")
        return cls(Path(path), fields, time, coords, scalars, attrs, config, groups)


def write_trajectory_file(out, template, velocity: np.ndarray, time: np.ndarray, *, attrs: dict | None = None,
                          trajectories=None, extra: dict | None = None) -> Path:
    """Write trajectories in the layout of the time-dependent file ``template`` (same root
    attributes, dimensions, boundary conditions and scalars), atomically.

    ``velocity``: (K, S, NX, NY, NZ, 3) on the template's grid; ``time``: (S,) from the first
    snapshot; ``attrs``: root attributes to set or replace (``n_trajectories`` is set from K);
    ``trajectories``: the template's trajectory indices these continue (their seeds and start
    times are copied); ``extra``: {group name: {dataset name: array, "@attr": value}} added as
    groups of their own. Used for surrogate rollouts and LES runs, so that every reader of the
    channel layout reads them."""
    velocity = np.asarray(velocity, dtype=np.float32)
    out = Path(out)
    with store.open_file(template) as src:
        if not store.is_trajectory_file(src):
            raise store.StoreError(f"{str(template)!r} is not a trajectory file")
        grid = tuple(src["dimensions"][ax].shape[0] for ax in ("x", "y", "z"))
        if velocity.ndim != 6 or velocity.shape[2:] != (*grid, 3):
            raise store.StoreError(f"velocity of shape {velocity.shape} does not fit the template's grid {grid}")
        K, S = velocity.shape[:2]
        if np.asarray(time).shape != (S,):
            raise store.StoreError(f"time must have one entry per snapshot ({S}), got {np.asarray(time).shape}")
        with store.atomic_h5(out) as f:
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

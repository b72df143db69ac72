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

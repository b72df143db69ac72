"""Figures of one stored sample: input fields, solution fields, residual history."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from . import store


def _as_image(arr: np.ndarray, dim: int) -> np.ndarray:
    """A 2-D view of a field: vector/tensor fields by magnitude, 3-D by the middle z slice."""
    arr = np.asarray(arr, dtype=np.float64)
    if arr.ndim > dim:
        arr = np.sqrt((arr.reshape(*arr.shape[:dim], -1) ** 2).sum(axis=-1))
    if dim == 3:
        arr = arr[:, :, arr.shape[2] // 2]
    return arr


def plot_sample(path, index: int, out) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    with store.open_file(path) as f:
        n = int(f.attrs["n_trajectories"])
        if not 0 <= index < n:
            raise store.StoreError(f"--index {index} is out of range: the file holds samples 0..{n - 1}")
        dim = int(f.attrs["n_spatial_dims"])
        ins, outs = store.field_names(f)
        fields = [(name, "input", store.field_dataset(f, name)[index]) for name in ins]
        fields += [(name, "solution", store.field_dataset(f, name)[index]) for name in outs]
        hist = store.residual_history(f, index)
        stats = store.read_stats(f)
        coords = [f["dimensions"][ax][()] for ax in f["dimensions"].attrs["spatial_dims"]]
        title = str(f.attrs["dataset_name"])
        solver = str(f.attrs.get("solver_name", ""))
    if not out.parent.exists():
        raise store.StoreError(f"directory {str(out.parent)!r} of --out does not exist")
    if out.is_dir():
        raise store.StoreError(f"--out {str(out)!r} is a directory; give an image file name")
    from matplotlib.figure import Figure

    formats = Figure().canvas.get_supported_filetypes()
    if out.suffix and out.suffix[1:].lower() not in formats:
        raise store.StoreError(f"--out {str(out)!r}: unsupported image format {out.suffix!r}; "
                               f"use one of {', '.join(sorted('.' + k for k in formats))}")
    panels = len(fields) + 1
    fig, axes = plt.subplots(1, panels, figsize=(3.6 * panels, 3.4), squeeze=False)
    axes = axes[0]
    for ax, (name, role, arr) in zip(axes[:-1], fields, strict=True):
        img = _as_image(arr, dim)
        if dim == 1:
            ax.plot(coords[0], img)
        else:
            extent = [coords[1][0], coords[1][-1], coords[0][-1], coords[0][0]] if dim >= 2 else None
            im = ax.imshow(img, extent=extent, cmap="viridis" if role == "input" else "RdBu_r")
            fig.colorbar(im, ax=ax, shrink=0.8)
            ax.set_xlabel("y")
            ax.set_ylabel("x")
        ax.set_title(f"{role}: {name}")
    ax = axes[-1]
    if hist.size and np.all(hist > 0):
        ax.semilogy(np.arange(1, hist.size + 1), hist)
    elif hist.size:
        ax.plot(np.arange(1, hist.size + 1), hist)
    ax.set_xlabel("iteration")
    ax.set_ylabel("residual norm")
    ok = "converged" if stats["converged"][index] else "NOT converged"
    ax.set_title(f"{solver}: {stats['iterations'][index]} its, {ok}")
    fig.suptitle(f"{title}, sample {index}")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out

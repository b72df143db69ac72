"""Figures of one stored sample (input fields, solution fields, residual history) and of
one snapshot of a channel trajectory file (slices of u and the mean profile)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from linsolve.core.validation import check_int

from . import storage


def _as_image(arr: np.ndarray, dim: int) -> np.ndarray:
    """A 2-D view of a field: vector/tensor fields by magnitude, 3-D by the middle z slice."""
    arr = np.asarray(arr, dtype=np.float64)
    if arr.ndim > dim:
        arr = np.sqrt((arr.reshape(*arr.shape[:dim], -1) ** 2).sum(axis=-1))
    if dim == 3:
        arr = arr[:, :, arr.shape[2] // 2]
    return arr


def _check_out(out: Path) -> None:
    """An image path matplotlib can write: existing directory, not a directory, known format."""
    if not out.parent.exists():
        raise storage.StoreError(f"directory {str(out.parent)!r} of --out does not exist")
    if out.is_dir():
        raise storage.StoreError(f"--out {str(out)!r} is a directory; give an image file name")
    from matplotlib.figure import Figure

    formats = Figure().canvas.get_supported_filetypes()
    if out.suffix and out.suffix[1:].lower() not in formats:
        raise storage.StoreError(f"--out {str(out)!r}: unsupported image format {out.suffix!r}; "
                               f"use one of {', '.join(sorted('.' + k for k in formats))}")


def plot_sample(path, index: int, out) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    with storage.open_file(path) as f:
        n = int(f.attrs["n_trajectories"])
        if not 0 <= index < n:
            raise storage.StoreError(f"--index {index} is out of range: the file holds samples 0..{n - 1}")
        dim = int(f.attrs["n_spatial_dims"])
        ins, outs = storage.field_names(f)
        fields = [(name, "input", storage.field_dataset(f, name)[index]) for name in ins]
        fields += [(name, "solution", storage.field_dataset(f, name)[index]) for name in outs]
        hist = storage.residual_history(f, index)
        stats = storage.read_stats(f)
        coords = [f["dimensions"][ax][()] for ax in f["dimensions"].attrs["spatial_dims"]]
        title = str(f.attrs["dataset_name"])
        solver = str(f.attrs.get("solver_name", ""))
    _check_out(out)
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


# --- channel trajectory files (DNS, LES and surrogate rollouts share the layout) ----------------
def _int_index(value, name: str, n: int) -> int:
    return check_int(f"--{name} (of the {n} in the file)", value, 0, n - 1, error=storage.StoreError)


def trajectory_snapshot(path, trajectory: int = 0, snapshot: int = 0, y_plus: float = 15.0) -> dict:
    """The quantities ``plot_trajectory`` draws for one snapshot of a channel trajectory file.

    The file holds ``t1_fields/velocity`` (K, S, NX, NY, NZ, 3) on the coordinates
    ``dimensions/x, y, z`` (walls at y = -1, +1) in units of the nominal friction
    velocity (h = 1, nu = 1 / Re_tau), so U+ = U and y+ = (1 - |y|) Re_tau with the
    nominal ``Re_tau`` of ``scalars/Re_tau`` (or the root attribute).

    Parameters
    ----------
    path : str or os.PathLike
        A channel trajectory file (``datagen generate channel``, an LES run, a rollout).
    trajectory, snapshot : int
        Which trajectory and which of its snapshots.
    y_plus : float
        Wall distance of the near-wall slice; the grid point of the lower half nearest it is used.

    Returns
    -------
    dict
        ``x, y, z`` coordinates; ``time`` of the snapshot; ``re_tau``; ``j_wall``, ``y_plus_wall``
        (index and y+ of the near-wall plane), ``j_centre`` (the plane nearest y = 0), ``k_xy``
        (the z index of the x-y slice, NZ // 2); ``u_xz_wall``, ``u_xz_centre`` (NX, NZ) and
        ``u_xy`` (NX, NY) slices of u; ``y_plus_profile`` and ``U_plus`` (the snapshot's plane mean
        of u folded over the two halves, wall point first), and ``U_plus_mean`` (the same averaged
        over every snapshot of the trajectory).

    Raises
    ------
    datagen.storage.StoreError
        A file that is not a channel trajectory file, or an index out of range.

    Examples
    --------
    >>> d = trajectory_snapshot("train.h5", trajectory=0, snapshot=10)  # doctest: +SKIP
    >>> d["u_xz_wall"].shape  # doctest: +SKIP
    (16, 8)
    """
    with storage.open_file(path) as f:
        if not storage.is_trajectory_file(f) or "t1_fields" not in f or "velocity" not in f["t1_fields"]:
            raise storage.StoreError(f"{str(path)!r} is not a channel trajectory file (no t1_fields/velocity)")
        ds = f["t1_fields/velocity"]
        try:
            x, y, z = (np.asarray(f["dimensions"][ax][()], dtype=np.float64) for ax in ("x", "y", "z"))
        except KeyError as exc:
            raise storage.StoreError(f"{str(path)!r} is not a channel trajectory file (no dimensions/{exc.args[0]})") \
                from None
        if ds.ndim != 6 or ds.shape[-1] != 3 or ds.shape[2:5] != (x.size, y.size, z.size):
            raise storage.StoreError(f"{str(path)!r}: t1_fields/velocity has shape {ds.shape}, not (K, S, "
                                   f"{x.size}, {y.size}, {z.size}, 3) for its coordinates")
        if "scalars" in f and "Re_tau" in f["scalars"]:
            re_tau = float(f["scalars/Re_tau"][()])
        elif "Re_tau" in f.attrs:
            re_tau = float(f.attrs["Re_tau"])
        else:
            raise storage.StoreError(f"{str(path)!r} states no Re_tau (scalars/Re_tau or a root attribute)")
        K, S = ds.shape[:2]
        k = _int_index(trajectory, "trajectory", K)
        s = _int_index(snapshot, "snapshot", S)
        u_all = np.asarray(ds[k, :, :, :, :, 0], dtype=np.float64)  # (S, NX, NY, NZ)
        times = f["dimensions/time"][()] if "time" in f["dimensions"] else np.arange(S, dtype=float)
        time = float(times[s]) if np.ndim(times) == 1 and len(times) == S else float(s)
    if not np.all(np.isfinite(u_all[s])):
        raise storage.StoreError(f"{str(path)!r}: trajectory {k} snapshot {s} holds non-finite velocity")
    if not (math.isfinite(re_tau) and re_tau > 0):
        raise storage.StoreError(f"{str(path)!r}: Re_tau {re_tau!r} is not a positive number")
    u = u_all[s]
    ny = y.size
    lower = np.flatnonzero(y <= 0)
    j_wall = int(lower[np.argmin(np.abs((1.0 + y[lower]) * re_tau - y_plus))])
    j_centre = int(np.argmin(np.abs(y)))
    k_xy = z.size // 2
    half = (ny + 1) // 2  # with odd NY the centre plane pairs with itself
    yw = 0.5 * ((1.0 + y[:half]) + (1.0 - y[::-1][:half]))

    def fold(profile):
        return 0.5 * (profile[:half] + profile[::-1][:half])

    return {"x": x, "y": y, "z": z, "time": time, "re_tau": re_tau, "trajectory": k, "snapshot": s,
            "j_wall": j_wall, "y_plus_wall": float((1.0 + y[j_wall]) * re_tau), "j_centre": j_centre, "k_xy": k_xy,
            "u_xz_wall": u[:, j_wall, :], "u_xz_centre": u[:, j_centre, :], "u_xy": u[:, :, k_xy],
            "y_plus_profile": yw * re_tau, "U_plus": fold(u.mean(axis=(0, 2))),
            "U_plus_mean": fold(u_all.mean(axis=(0, 1, 3)))}


def plot_trajectory(path, trajectory: int, snapshot: int, out) -> Path:
    """Draw one snapshot of a channel trajectory file: x-z slices of u near the wall
    (y+ ~ 15) and on the centre line, an x-y slice, and the mean profile U+(y+) on a log
    axis with the law of the wall. See ``trajectory_snapshot`` for the quantities.

    Parameters
    ----------
    path : str or os.PathLike
        A channel trajectory file.
    trajectory, snapshot : int
        Which snapshot.
    out : str or os.PathLike
        Image file to write (its format from the suffix).

    Returns
    -------
    pathlib.Path
        ``out``.

    Raises
    ------
    datagen.storage.StoreError
        Bad file, index or output path; nothing is written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    d = trajectory_snapshot(path, trajectory, snapshot)
    _check_out(out)
    x, y, z = d["x"], d["y"], d["z"]
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    panels = ((axes[0, 0], d["u_xz_wall"], z, f"u at y+ = {d['y_plus_wall']:.1f} (lower wall)", "z"),
              (axes[0, 1], d["u_xz_centre"], z, f"u at the centre line (y = {float(np.round(y[d['j_centre']], 4)) + 0.0:g})", "z"),
              (axes[1, 0], d["u_xy"], y, f"u in the x-y plane z = {z[d['k_xy']]:.3g}", "y"))
    for ax, img, second, title, label in panels:
        im = ax.pcolormesh(x, second, img.T, shading="nearest", cmap="viridis")
        fig.colorbar(im, ax=ax, shrink=0.85, label="u / u_tau")
        ax.set_xlabel("x")
        ax.set_ylabel(label)
        ax.set_aspect("equal")
        ax.set_title(title)
    ax = axes[1, 1]
    yp, sel = d["y_plus_profile"], d["y_plus_profile"] > 0
    ax.semilogx(yp[sel], d["U_plus"][sel], "o-", label="this snapshot")
    ax.semilogx(yp[sel], d["U_plus_mean"][sel], "s--", label="trajectory mean")
    grid = np.logspace(0, np.log10(max(float(yp.max()), 20.0)), 200)
    ax.semilogx(grid[grid < 12], grid[grid < 12], "k:", lw=1, label="U+ = y+")
    ax.semilogx(grid[grid > 8], 2.5 * np.log(grid[grid > 8]) + 5.5, "k-.", lw=1, label="2.5 ln y+ + 5.5")
    ax.set_xlabel("y+")
    ax.set_ylabel("U+")
    ax.set_title("mean profile (plane average, both halves)")
    ax.legend(fontsize=8)
    fig.suptitle(f"{Path(path).name}: trajectory {d['trajectory']}, snapshot {d['snapshot']} (t = {d['time']:.3g}), "
                 f"Re_tau {d['re_tau']:g}")
    fig.tight_layout()
    tmp = out.with_name(f".{out.name}.tmp{out.suffix}")
    try:
        fig.savefig(tmp, dpi=100, format=out.suffix[1:].lower() or "png")
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
        plt.close(fig)
    return out

"""Channel trajectories as training data: files read through ``datagen.open_dataset``, split by
trajectory, windows of ``in_steps`` snapshots with the next ``horizon`` snapshots as targets, and
per-channel normalisation statistics of the training split.

The split never shuffles snapshots of one trajectory across sets: the last ``test`` trajectories
are held out for testing (the paper keeps one out); validation is one more whole trajectory when
at least three remain for training, otherwise the last ``val_fraction`` of every training
trajectory's snapshots (a contiguous block: no training window reaches into it).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from linsolve.core.errors import OptionError
from linsolve.core.validation import check_int, check_real


class DataError(OptionError):
    """A file that is not a usable channel trajectory file (wrong kind, NaN, too short, ...)."""


@dataclass
class ChannelData:
    """The velocity of every trajectory of one file, channels first, with its grid and scalars.

    ``velocity``: float32 (K, S, 3, NX, NY, NZ); ``x``, ``y``, ``z``: coordinates; ``nu``,
    ``re_tau``, ``snapshot_dt``: from the file's scalars; ``attrs``: root attributes; ``groups``:
    further groups (a rollout's ``/rollout``)."""

    path: Path
    velocity: np.ndarray
    x: np.ndarray
    y: np.ndarray
    z: np.ndarray
    time: np.ndarray
    nu: float
    re_tau: float
    snapshot_dt: float
    attrs: dict = field(default_factory=dict)
    groups: dict = field(default_factory=dict)

    @property
    def grid(self) -> tuple[int, int, int]:
        return tuple(int(n) for n in self.velocity.shape[3:])

    @property
    def n_trajectories(self) -> int:
        return int(self.velocity.shape[0])

    @property
    def n_snapshots(self) -> int:
        return int(self.velocity.shape[1])

    def trajectory(self, k: int) -> np.ndarray:
        """(S, 3, NX, NY, NZ) of trajectory ``k``, checked against the file's range."""
        check_trajectory_index(k, self.n_trajectories, self.path)
        return self.velocity[k]


def check_trajectory_index(k, n: int, path) -> int:
    return check_int(f"trajectory index (of the {n} in {str(path)!r})", k, 0, n - 1, error=DataError)


def load_channel(path, *, allow_nonfinite: bool = False) -> ChannelData:
    """Read a channel trajectory file (DNS, LES or rollout, all in datagen's channel layout).

    Parameters
    ----------
    path : str or Path
        An HDF5 file written by ``datagen generate channel`` (or in its layout).
    allow_nonfinite : bool
        Accept NaN/Inf in the velocity (only for reports on a failed rollout).

    Returns
    -------
    ChannelData

    Raises
    ------
    DataError
        The file is missing, not a datagen file, holds solved systems instead of trajectories,
        has no velocity of shape (K, S, NX, NY, NZ, 3), or holds NaN/Inf.

    Examples
    --------
    >>> d = load_channel("train.h5")                    # doctest: +SKIP
    >>> d.velocity.shape                                # (K, S, 3, NX, NY, NZ)  # doctest: +SKIP
    """
    import datagen
    from datagen.storage import TrajectoryData
    from linsolve.core.errors import SolverError

    try:
        raw = datagen.open_dataset(path)
    except SolverError as exc:
        raise DataError(" ".join(str(exc).split())) from None
    if not isinstance(raw, TrajectoryData):
        raise DataError(f"{str(path)!r} is not a channel trajectory file (it holds solved systems)")
    vel = raw.fields.get("velocity")
    if vel is None or vel.ndim != 6 or vel.shape[-1] != 3:
        shape = None if vel is None else vel.shape
        raise DataError(f"{str(path)!r} is not a channel trajectory file: no velocity field of shape "
                        f"(trajectories, snapshots, NX, NY, NZ, 3) (found {shape})")
    for ax in ("x", "y", "z"):
        if ax not in raw.coordinates:
            raise DataError(f"{str(path)!r} is not a channel trajectory file: no coordinate {ax!r}")
    K, S, NX, NY, NZ, _ = vel.shape
    if (raw.coordinates["x"].size, raw.coordinates["y"].size, raw.coordinates["z"].size) != (NX, NY, NZ):
        raise DataError(f"{str(path)!r}: the coordinates do not match the velocity's grid {NX}x{NY}x{NZ}")
    if K < 1 or S < 1:
        raise DataError(f"{str(path)!r} holds no snapshots")
    if not allow_nonfinite:
        bad = ~np.isfinite(vel)
        if bad.any():
            k, s = np.argwhere(bad)[0][:2]
            raise DataError(f"{str(path)!r} holds NaN/Inf velocity (first in trajectory {k}, snapshot {s})")
    sc = raw.scalars
    try:
        nu = float(sc.get("nu", raw.attrs.get("nu")))
        re_tau = float(sc.get("Re_tau", raw.attrs.get("Re_tau")))
        sdt = float(sc.get("snapshot_dt", raw.attrs.get("snapshot_dt")))
    except (TypeError, ValueError):
        raise DataError(f"{str(path)!r} is not a channel trajectory file: scalars nu, Re_tau, snapshot_dt "
                        "missing") from None
    velocity = np.ascontiguousarray(np.moveaxis(vel.astype(np.float32, copy=False), -1, 2))
    return ChannelData(Path(path), velocity, np.asarray(raw.coordinates["x"], float),
                       np.asarray(raw.coordinates["y"], float), np.asarray(raw.coordinates["z"], float),
                       np.asarray(raw.time, float), nu, re_tau, sdt, raw.attrs, raw.groups)


@dataclass
class Split:
    """Which (trajectory, first snapshot, last snapshot + 1) ranges form each set."""

    train: list
    val: list
    test: list

    def to_dict(self) -> dict:
        return {"train": [list(r) for r in self.train], "val": [list(r) for r in self.val],
                "test": [list(r) for r in self.test]}

    @classmethod
    def from_dict(cls, d: dict) -> Split:
        return cls(*(list(map(tuple, d[k])) for k in ("train", "val", "test")))

    @property
    def train_trajectories(self) -> list[int]:
        return sorted({r[0] for r in self.train})

    @property
    def test_trajectories(self) -> list[int]:
        return sorted({r[0] for r in self.test})


def split_trajectories(n_trajectories: int, n_snapshots: int, *, test: int = 1,
                       val_fraction: float = 0.2) -> Split:
    """Split a file's trajectories (see the module docstring).

    Parameters
    ----------
    n_trajectories, n_snapshots : int
        K and S of the file.
    test : int
        Trajectories held out for testing (the last ``test``); 0 keeps every one for training.
    val_fraction : float
        Share of each training trajectory's snapshots kept for validation when fewer than three
        training trajectories would remain after taking one whole trajectory for validation.

    Returns
    -------
    Split
        Ranges ``(k, s0, s1)``: snapshots ``s0 <= s < s1`` of trajectory ``k``.

    Raises
    ------
    DataError
        Too few trajectories for the requested test set.

    Examples
    --------
    >>> split_trajectories(5, 100).val
    [(3, 0, 100)]
    >>> split_trajectories(2, 100).val
    [(0, 80, 100)]
    """
    check_int("test", test, 0)
    check_real("val_fraction", val_fraction, 0.0, 1.0, low_open=True, high_open=True)
    K, S = int(n_trajectories), int(n_snapshots)
    if K - test < 1:
        raise DataError(f"the file holds {K} trajectories; at least one must remain for training after "
                        f"holding out {test} for testing")
    rest = list(range(K - test))
    tests = [(k, 0, S) for k in range(K - test, K)]
    if len(rest) >= 4:
        return Split([(k, 0, S) for k in rest[:-1]], [(rest[-1], 0, S)], tests)
    cut = S - max(1, int(round(val_fraction * S)))
    return Split([(k, 0, cut) for k in rest], [(k, cut, S) for k in rest], tests)


def windows(ranges, in_steps: int, horizon: int = 1) -> list[tuple[int, int]]:
    """Every (trajectory, first input snapshot) whose ``in_steps`` inputs and ``horizon`` targets lie
    inside one range."""
    out = []
    for k, s0, s1 in ranges:
        out.extend((k, s) for s in range(s0, s1 - in_steps - horizon + 1))
    return out


def normalization_stats(velocity: np.ndarray, ranges) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation over the snapshots of ``ranges`` only.

    Parameters
    ----------
    velocity : ndarray (K, S, 3, NX, NY, NZ)
    ranges : list of (k, s0, s1)

    Returns
    -------
    mean, std : ndarray (3,) float32 (std floored at 1e-6 so that a quiet channel divides safely)
    """
    total = np.zeros(3)
    sq = np.zeros(3)
    n = 0
    for k, s0, s1 in ranges:
        blk = velocity[k, s0:s1].astype(np.float64)
        total += blk.sum(axis=(0, 2, 3, 4))
        n += blk.shape[0] * int(np.prod(blk.shape[2:]))
    if n == 0:
        raise DataError("the training split holds no snapshots")
    mean = total / n
    for k, s0, s1 in ranges:
        blk = velocity[k, s0:s1].astype(np.float64) - mean[None, :, None, None, None]
        sq += (blk**2).sum(axis=(0, 2, 3, 4))
    std = np.sqrt(sq / n)
    return mean.astype(np.float32), np.maximum(std, 1e-6).astype(np.float32)


class WindowDataset:
    """``(x, y)`` pairs: x (in_steps, 3, NX, NY, NZ), y (horizon, 3, NX, NY, NZ), float32 tensors.

    A ``torch.utils.data.Dataset`` by protocol (``__len__``/``__getitem__``); batches are drawn by
    ``batches`` in a seeded order instead of a DataLoader so that a resumed run sees the same order.
    """

    def __init__(self, velocity: np.ndarray, ranges, in_steps: int, horizon: int = 1):
        import torch

        check_int("in_steps", in_steps, 1)
        check_int("horizon", horizon, 1)
        self.velocity = torch.from_numpy(np.ascontiguousarray(velocity))
        self.in_steps, self.horizon = int(in_steps), int(horizon)
        self.index = windows(ranges, self.in_steps, self.horizon)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i):
        k, s = self.index[i]
        v = self.velocity[k]
        return v[s:s + self.in_steps], v[s + self.in_steps:s + self.in_steps + self.horizon]

    def batch(self, ids):
        import torch

        xs, ys = zip(*(self[int(i)] for i in ids), strict=True)
        return torch.stack(xs), torch.stack(ys)

    def batches(self, batch_size: int, seed: int | None = None, epoch: int = 0):
        """Batches in a shuffled order that depends only on (seed, epoch); in file order if seed is None."""
        n = len(self)
        order = np.arange(n) if seed is None else np.random.default_rng([int(seed), int(epoch)]).permutation(n)
        for b in range(math.ceil(n / batch_size)):
            yield self.batch(order[b * batch_size:(b + 1) * batch_size])

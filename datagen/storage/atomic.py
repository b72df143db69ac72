"""Atomic commits: a file appears at its path complete or not at all.

Shards, final HDF5 files, manifests, channel trajectories, surrogate checkpoints and model
cards are written to a temporary name next to their target, flushed, fsynced and renamed onto
it, and the directory is fsynced; on an error the temporary file is removed. A file that two
processes may write at once (a Dask task run again while the first attempt is still alive)
gets a temporary name unique to its writer.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

import h5py

__all__ = ["tmp_name", "atomic_path", "atomic_h5", "atomic_write_text"]


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(str(path), os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def tmp_name(path: Path, unique: bool = False) -> Path:
    """The temporary name ``path`` is written under; ``unique`` adds the writer's process id
    and a random tag, for files that two processes may write at once (a Dask task run again
    while the first attempt is still alive)."""
    tag = f".{os.getpid()}-{os.urandom(4).hex()}" if unique else ""
    return path.with_name(f".{path.name}{tag}.tmp")


@contextlib.contextmanager
def atomic_path(path: Path, unique_tmp: bool = False):
    """A temporary path next to ``path`` to write a file at; when the block ends without an
    error the file is fsynced and renamed onto ``path`` (and the directory fsynced), so it
    appears complete or not at all; on an error it is removed. ``unique_tmp``: see
    ``tmp_name``.

    Examples
    --------
    >>> with atomic_path(out) as tmp:            # doctest: +SKIP
    ...     torch.save(state, tmp)
    """
    path = Path(path)
    tmp = tmp_name(path, unique_tmp)
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    try:
        yield tmp
        fd = os.open(str(tmp), os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def atomic_h5(path: Path, unique_tmp: bool = False):
    """Write an HDF5 file that appears at ``path`` complete or not at all."""
    with atomic_path(path, unique_tmp) as tmp, h5py.File(tmp, "w", track_order=True) as f:
        yield f


def atomic_write_text(path: Path, text: str) -> None:
    """Write a text file that appears at ``path`` complete or not at all."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)

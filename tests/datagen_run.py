"""Running the ``datagen`` command in a subprocess, shared by the test files that check its output."""
from __future__ import annotations

import os
import subprocess
import sys

import h5py
import numpy as np

from datagen.pipeline import Progress

CHANNEL = ["generate", "channel", "--grid", "8,9,8", "--trajectories", "1", "--snapshots", "2", "--every", "2",
           "--spinup", "4", "--quiet"]



def run_datagen(*args, cwd):
    return subprocess.run([sys.executable, "-m", "datagen.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300, env={**os.environ, "DATAGEN_PROGRESS": "0"})


def one_line(p):
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, p.stderr
    return lines[0]


#: Datasets that differ between two runs of the same command (wall-clock times).
VOLATILE = {"/solver_stats/wall_time"}


def assert_same_data(p1, p2):
    """Every dataset equal (timings aside), and the same attributes on every object."""
    with h5py.File(p1, "r") as f1, h5py.File(p2, "r") as f2:
        names1, names2 = [], []
        f1.visit(names1.append)
        f2.visit(names2.append)
        assert names1 == names2
        for name in names1:
            o1, o2 = f1[name], f2[name]
            assert sorted(o1.attrs) == sorted(o2.attrs), name
            for k in o1.attrs:
                if k != "command":
                    np.testing.assert_array_equal(o1.attrs[k], o2.attrs[k], err_msg=f"{name}@{k}")
            if isinstance(o1, h5py.Dataset) and "/" + name not in VOLATILE:
                v1, v2 = o1[()], o2[()]
                if v1.dtype == object:
                    assert len(v1) == len(v2)
                    for a, b in zip(v1, v2, strict=True):
                        np.testing.assert_array_equal(a, b, err_msg=name)
                else:
                    np.testing.assert_array_equal(v1, v2, err_msg=name)
        for k in f1.attrs:
            if k != "command":
                np.testing.assert_array_equal(f1.attrs[k], f2.attrs[k], err_msg=k)


class InterruptAfter(Progress):
    """A progress callback that raises KeyboardInterrupt (a Ctrl-C in the client) at the ``after``-th
    sample (in-process) or chunk (workers)."""

    def __init__(self, after):
        self.after, self.count = after, 0

    def sample(self, iterations, converged):
        self.count += 1
        if self.count == self.after:
            raise KeyboardInterrupt

"""What `datagen generate` prints while it runs when its output is not a terminal (a log
file, a pipe): nothing but the result unless DATAGEN_PROGRESS=1 asks for progress, and then
whole lines (a carriage return made a log of the channel problem one endless line)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHANNEL = ["generate", "channel", "--grid", "16,32,16", "--box", "3.0,1.5", "--coarse-grid", "8,9,4",
           "--trajectories", "2", "--snapshots", "3", "--every", "4", "--dt", "0.002"]


def _run(*args, cwd, progress=None):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    env.pop("DATAGEN_PROGRESS", None)
    if progress is not None:
        env["DATAGEN_PROGRESS"] = progress
    return subprocess.run([sys.executable, "-m", "datagen.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=300)


def test_channel_progress_in_a_log_is_whole_lines_and_only_when_asked(tmp_path):
    p = _run(*CHANNEL, "--spinup", "40", "--out", "a.h5", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "\r" not in p.stderr and "trajectory" not in p.stderr
    assert p.stderr.splitlines() == [l for l in p.stderr.splitlines() if l.startswith("wrote a.h5 (6 snapshots")]
    assert len(p.stderr.splitlines()) == 1
    # asked for: one whole line per snapshot (the spin-up is reused, so this run is short)
    p = _run(*CHANNEL, "--restart", "a.h5.parts/spinup.npz", "--out", "b.h5", cwd=tmp_path, progress="1")
    assert p.returncode == 0, p.stderr
    assert "\r" not in p.stderr
    lines = p.stderr.splitlines()
    assert lines[:-1] == [f"trajectory {k} snapshot {s}" for k in range(2) for s in range(3)]
    assert lines[-1].startswith("wrote b.h5 (6 snapshots computed in this run")

"""Running the ``datagen`` command in a subprocess, shared by the test files that check its output."""
from __future__ import annotations

import os
import subprocess
import sys

CHANNEL = ["generate", "channel", "--grid", "8,9,8", "--trajectories", "1", "--snapshots", "2", "--every", "2",
           "--spinup", "4", "--quiet"]



def run_datagen(*args, cwd):
    return subprocess.run([sys.executable, "-m", "datagen.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300, env={**os.environ, "DATAGEN_PROGRESS": "0"})


def one_line(p):
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, p.stderr
    return lines[0]

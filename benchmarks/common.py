"""Shared plumbing for benchmarks: machine description, repeated timing with medians,
and writing results as JSON plus a Markdown table under benchmarks/results/."""
from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict:
    info = {"platform": platform.platform(), "python": platform.python_version(),
            "cpus": os.cpu_count(), "processor": platform.processor() or platform.machine()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu_model"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            info["mem_total"] = f.readline().split(":", 1)[1].strip()
    except OSError:
        pass
    try:
        info["git_commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                            text=True, check=False).stdout.strip()
    except OSError:
        pass
    import numpy
    import scipy

    info["numpy"], info["scipy"] = numpy.__version__, scipy.__version__
    try:
        from petsc4py import PETSc

        info["petsc"] = ".".join(map(str, PETSc.Sys.getVersion()))
    except ImportError:
        info["petsc"] = None
    info["date"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    return info


def median_time(fn, repeat: int = 3):
    """Run ``fn`` ``repeat`` times; return (median seconds, last return value)."""
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def markdown_table(rows: list[dict], columns: list[str] | None = None) -> str:
    if not rows:
        return "(no rows)\n"
    columns = columns or list(rows[0])

    def fmt(v):
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def write_results(name: str, payload: dict, markdown: str) -> tuple[Path, Path]:
    """Write benchmarks/results/<name>.json and <name>.md (machine description included)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {"machine": machine(), **payload}
    jpath, mpath = RESULTS / f"{name}.json", RESULTS / f"{name}.md"
    jpath.write_text(json.dumps(payload, indent=1, default=float))
    m = payload["machine"]
    header = (f"Machine: {m.get('cpu_model', m['processor'])}, {m['cpus']} CPUs, {m.get('mem_total', '?')}, "
              f"Python {m['python']}, NumPy {m['numpy']}, SciPy {m['scipy']}, PETSc {m['petsc']}; "
              f"commit {m.get('git_commit', '?')}, {m['date']}.\n\n")
    mpath.write_text(header + markdown)
    return jpath, mpath

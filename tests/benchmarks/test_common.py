"""``benchmarks.common``'s thread helpers: ``set_threads`` puts every library on the same
count, read back independently (PyTorch's getters, numba's, and each OpenBLAS's own
``get_num_threads`` C function found next to NumPy and SciPy), and ``write_results`` records
the counts. The thread settings run in a child process: PyTorch's inter-op count can be set
once per process, and the environment preset happens only before NumPy loads."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

CHILD = textwrap.dedent("""
    import ctypes, glob, json, os, sys
    import benchmarks.common as c                      # before NumPy: presets the variables
    env_at_import = {v: os.environ.get(v) for v in c.THREAD_ENV}
    import numpy, scipy, scipy.linalg

    def blas_threads():
        # NumPy's and SciPy's own OpenBLAS copies, found beside the packages, asked directly
        out = {}
        for pkg in (numpy, scipy):
            libs = os.path.join(os.path.dirname(pkg.__file__) + ".libs", "*openblas*.so*")
            for lib in glob.glob(libs):
                h = ctypes.CDLL(lib)
                for name in ("scipy_openblas_get_num_threads64_", "scipy_openblas_get_num_threads",
                             "openblas_get_num_threads64_", "openblas_get_num_threads"):
                    if hasattr(h, name):
                        out[os.path.basename(lib)] = getattr(h, name)()
                        break
        return out

    import numba, torch
    high = int(sys.argv[1])
    counts_one = c.set_threads(1)
    seen_one = {"torch": torch.get_num_threads(), "torch_interop": torch.get_num_interop_threads(),
                "numba": numba.get_num_threads(), "blas": blas_threads()}
    counts_high = c.set_threads(high)
    seen_high = {"torch": torch.get_num_threads(), "numba": numba.get_num_threads(), "blas": blas_threads()}
    print(json.dumps({"env_at_import": env_at_import, "high": [counts_high, seen_high],
                      "one": [counts_one, seen_one]}))
""")


@pytest.fixture(scope="module")
def child():
    pytest.importorskip("torch")
    pytest.importorskip("numba")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                            "MKL_NUM_THREADS", "BENCH_THREADS")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    high = min(2, os.cpu_count() or 1)
    p = subprocess.run([sys.executable, "-c", CHILD, str(high)], capture_output=True, text=True, env=env,
                       cwd=ROOT, timeout=300)
    assert p.returncode == 0, p.stderr
    return high, json.loads(p.stdout.strip().splitlines()[-1])


def test_importing_common_before_numpy_sets_one_thread_in_the_environment(child):
    _, out = child
    assert out["env_at_import"] == {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def test_set_threads_puts_torch_numba_and_every_openblas_on_one_thread(child):
    _, out = child
    counts, seen = out["one"]
    assert seen["torch"] == 1 and seen["numba"] == 1 and seen["torch_interop"] == 1
    assert len(seen["blas"]) >= 2 and set(seen["blas"].values()) == {1}  # NumPy's and SciPy's OpenBLAS
    assert counts["torch_intra_op"] == counts["torch_inter_op"] == counts["numba"] == 1
    assert set(counts["openblas"].values()) == {1}
    assert set(seen["blas"]) <= set(counts["openblas"])
    assert counts["env"]["OMP_NUM_THREADS"] == "1" and counts["requested"] == 1


def test_set_threads_changes_the_count_again_except_torch_inter_op(child):
    high, out = child
    counts, seen = out["high"]
    assert seen["torch"] == high and seen["numba"] == high and set(seen["blas"].values()) == {high}
    assert counts["torch_intra_op"] == counts["numba"] == high and set(counts["openblas"].values()) == {high}
    assert counts["torch_inter_op"] == 1  # PyTorch sets it once per process; the record says so


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_set_threads_rejects_a_count_that_is_not_a_positive_integer(bad):
    from benchmarks.common import set_threads

    with pytest.raises(ValueError, match="positive integer"):
        set_threads(bad)


def test_requested_threads_reads_the_option_then_the_environment(monkeypatch):
    from benchmarks.common import requested_threads

    monkeypatch.delenv("BENCH_THREADS", raising=False)
    assert requested_threads(["--quick", "--threads", "3"]) == 3
    assert requested_threads(["--threads=4"]) == 4
    assert requested_threads(["--quick"]) == 1
    assert requested_threads(["--quick"], default=2) == 2
    monkeypatch.setenv("BENCH_THREADS", "5")
    assert requested_threads([]) == 5
    assert requested_threads(["--threads", "2"]) == 2


def test_write_results_records_the_thread_counts(tmp_path, monkeypatch):
    import benchmarks.common as common

    monkeypatch.setattr(common, "RESULTS", tmp_path)
    counts = {**common.thread_counts(1), "openblas": {"libscipy_openblas-x.so": 1}, "numba": 1,
              "torch_intra_op": 1, "torch_inter_op": 1}
    jpath, mpath = common.write_results("t", {"rows": []}, "# T\n", threads=counts)
    assert json.loads(jpath.read_text())["thread_counts"]["openblas"] == {"libscipy_openblas-x.so": 1}
    header = mpath.read_text().splitlines()[1]
    assert header.startswith("Threads: 1 requested; OpenBLAS scipy_openblas 1; numba 1; PyTorch intra-op 1, "
                             "inter-op 1;")


def test_threads_option_rejects_a_non_positive_count_in_one_line():
    import argparse

    from benchmarks.common import thread_count

    ap = argparse.ArgumentParser(prog="bench")
    ap.add_argument("--threads", type=thread_count, default=1)
    assert ap.parse_args(["--threads", "3"]).threads == 3
    for bad in ("0", "-2", "x"):
        with pytest.raises(SystemExit) as exc:
            ap.parse_args(["--threads", bad])
        assert exc.value.code == 2

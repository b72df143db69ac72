"""The generation pipeline: configuration, ordering, chunking with per-chunk reset,
reproducibility, crash safety (in-process interruption and a real SIGKILL) and resume."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import datagen_toy  # noqa: F401  (registers the 'toy' family)
import h5py
import numpy as np
import pytest
from datagen_run import InterruptAfter, assert_same_data, one_line, run_datagen

from datagen import storage
from datagen.pipeline import (
    GenerateConfig,
    NonConvergedError,
    PipelineError,
    Progress,
    _greedy_order,
    _storable_sample,
    draw_samples,
    family_errors,
    generate,
    order_samples,
    parse_grid,
    parts_dir,
    sample_stream,
    validate_file,
)
from linsolve import SolverError

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent
def _cfg(**kw):
    base = dict(problem="toy", n=8, grid=8, solver="cg", solver_opt={"rtol": 1e-8}, chunk=3, seed=3)
    base.update(kw)
    return GenerateConfig(**base)


# --- configuration ---------------------------------------------------------------------
def test_parse_grid():
    assert parse_grid(32) == (32,)
    assert parse_grid("32") == (32,)
    assert parse_grid("16,24") == (16, 24)
    assert parse_grid([4, 5, 6]) == (4, 5, 6)
    for bad in ("0", "-3", "a,b", "1,2,3,4", "", 3.5):
        with pytest.raises(PipelineError):
            parse_grid(bad)


@pytest.mark.parametrize("kw,needle", [
    ({"n": 0}, "n must be an integer >= 1"), ({"n": -2}, "n must be an integer >= 1"), ({"chunk": 0}, "chunk"),
    ({"seed": -1}, "seed"), ({"n": "many"}, "n must be an integer"), ({"dim": 4}, "dim"),
    ({"solver_opt": "rtol=1"}, "solver_opt"),
])
def test_config_rejects_bad_values(kw, needle):
    with pytest.raises(PipelineError, match=needle):
        _cfg(**kw)


def test_config_mapping_roundtrip_and_unknown_keys():
    cfg = _cfg(grid="8,10", param={"amplitude": 0.5})
    again = GenerateConfig.from_mapping(cfg.to_dict())
    assert again == cfg and again.grid == (8, 10)
    assert GenerateConfig.from_mapping({"problem": "toy", "n": 2, "solver_opts": {"rtol": 1e-3}}).solver_opt == \
        {"rtol": 1e-3}
    with pytest.raises(PipelineError, match="unknown configuration key"):
        GenerateConfig.from_mapping({"problem": "toy", "n": 2, "colour": "red"})
    with pytest.raises(PipelineError, match="missing 'n'"):
        GenerateConfig.from_mapping({"problem": "toy"})


# --- ordering ----------------------------------------------------------------------------
def test_greedy_fallback_walks_a_line_in_order():
    rng = np.random.default_rng(0)
    t = rng.permutation(20).astype(float)
    order = _greedy_order(t[:, None])
    assert np.all(np.diff(t[order]) == 1) or np.all(np.diff(t[order]) == -1)


def test_order_samples_gives_permutations():
    F = np.random.default_rng(1).standard_normal((15, 3))
    assert np.array_equal(order_samples(F, "none"), np.arange(15))
    g = order_samples(F, "greedy")
    assert sorted(g) == list(range(15))
    with pytest.raises(ValueError, match="ordering"):
        order_samples(F, "no-such-order")


def test_stored_order_is_the_solve_order(tmp_path):
    class Recorder(Progress):
        def __init__(self):
            self.its = []

        def sample(self, iterations, converged):
            self.its.append(iterations)

    rec = Recorder()
    out = tmp_path / "o.h5"
    generate(_cfg(order="greedy"), out, progress=rec)
    with h5py.File(out, "r") as f:
        perm = f["ordering"]["permutation"][()]
        its = f["solver_stats"]["iterations"][()]
        feats = f["ordering"]["features"][()]
    assert np.array_equal(perm, order_samples(feats, "greedy"))
    assert rec.its == its[perm].tolist()


# --- chunks ------------------------------------------------------------------------------
def test_solver_state_is_reset_at_each_chunk(tmp_path):
    """With warm starts, the first system of every chunk must be solved cold: its
    iteration count equals a run where every chunk holds a single system."""
    opts = {"rtol": 1e-8, "warm_start": True}
    generate(_cfg(solver_opt=opts, chunk=4, n=12), tmp_path / "c4.h5")
    generate(_cfg(solver_opt=opts, chunk=1, n=12), tmp_path / "c1.h5")
    with h5py.File(tmp_path / "c4.h5", "r") as f4, h5py.File(tmp_path / "c1.h5", "r") as f1:
        perm = f4["ordering"]["permutation"][()]
        it4, it1 = f4["solver_stats"]["iterations"][()], f1["solver_stats"]["iterations"][()]
    firsts = perm[::4]
    assert np.array_equal(it4[firsts], it1[firsts])
    # ... and the warm start does carry within a chunk: solves are deterministic, so a cold
    # start would reproduce the single-system counts exactly (on this family the previous
    # solution is not always a better start, so no direction is asserted)
    rest = np.setdiff1d(perm, firsts)
    assert not np.array_equal(it4[rest], it1[rest])


def test_independent_samples_depend_only_on_the_seed_and_their_index(tmp_path):
    """darcy draws sample i from its own stream: the stored fields are those draws, a run
    with more samples extends one with fewer, and the file says how it sampled."""
    cfg = GenerateConfig(problem="darcy", n=5, grid=8, solver="cg", order="greedy", chunk=2, seed=4)
    generate(cfg, tmp_path / "five.h5")
    generate(GenerateConfig(**{**cfg.to_dict(), "n": 3}), tmp_path / "three.h5")
    family = cfg.build_family()
    assert family.independent_samples
    with h5py.File(tmp_path / "five.h5", "r") as f5, h5py.File(tmp_path / "three.h5", "r") as f3:
        a5, a3 = f5["parameters"]["a"][()], f3["parameters"]["a"][()]
        assert "SeedSequence(seed, spawn_key=(i,))" in f5.attrs["sampling"]
    streams = np.random.SeedSequence(4).spawn(5)  # NumPy's independent child streams, drawn directly
    for i in range(5):
        np.testing.assert_array_equal(a5[i], np.exp(family.grf.sample(np.random.default_rng(streams[i]))))
        np.testing.assert_array_equal(a5[i], family.sample(1, sample_stream(4, i))[0]["a"])
    np.testing.assert_array_equal(a5[:3], a3)
    assert not np.array_equal(a5[0], a5[1])


def test_samples_drawn_in_threads_are_each_index_own_stream():
    """The client draws in several threads (a Dask run): the same values, in index order,
    as each sample drawn on its own from its stream, for any block split."""
    cfg = GenerateConfig(problem="darcy", n=37, grid=8, seed=5)
    family = cfg.build_family()
    want = [family.sample(1, sample_stream(5, i))[0]["a"] for i in range(37)]
    for threads in (1, 2, 3, 8, 64):
        got = draw_samples(cfg, family, threads=threads)
        assert len(got) == 37 and all(np.array_equal(g["a"], w) for g, w in zip(got, want, strict=True))
    some = draw_samples(cfg, family, [30, 2, 17], threads=2)
    assert all(np.array_equal(g["a"], want[i]) for g, i in zip(some, [30, 2, 17], strict=True))


class _Overflowing(datagen_toy.ToyPoisson):
    """Independent samples whose drawing overflows (as extreme GRF settings do)."""

    independent_samples = True

    def sample(self, n, rng):
        return [{**p, "big": np.exp(np.full(3, 1000.0))} for p in super().sample(n, rng)]


def test_sampling_threads_keep_the_callers_floating_point_error_state():
    """family_errors silences NumPy's overflow warnings while sampling (the result is checked
    instead); a sampling thread obeys the caller's np.errstate, not its own default."""
    cfg = GenerateConfig(problem="toy", n=12, grid=8, seed=1)
    family = cfg.build_family(_Overflowing)
    with family_errors(cfg, "sample"):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a RuntimeWarning in a thread would fail its block
            got = draw_samples(cfg, family, threads=3)
    assert len(got) == 12 and all(np.isinf(p["big"]).all() for p in got)
    with np.errstate(over="raise"), pytest.raises(FloatingPointError):
        draw_samples(cfg, family, threads=3)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 3.5e38, -3.5e38, complex(np.inf, 0), complex(0, np.nan)])
def test_a_sample_with_nan_inf_or_beyond_float32_values_is_not_storable(bad):
    f32max = float(np.finfo(np.float32).max)
    ok = {"a": np.array([[1.0, -f32max], [0.0, f32max]]), "k": 2.0, "name": "x", "flag": True, "none": None,
          "empty": np.zeros(0), "c": np.array([1 + 2j])}
    features = np.array([0.5, -f32max])
    assert _storable_sample(ok, features)
    field = ok["a"].astype(complex) if isinstance(bad, complex) else ok["a"].copy()
    field[1, 0] = bad
    assert not _storable_sample({**ok, "a": field}, features)
    assert not _storable_sample({**ok, "k": bad}, features)
    assert not _storable_sample(ok, np.array([0.5, bad]))


def test_resume_refuses_a_partial_run_sampled_another_way(tmp_path):
    cfg = GenerateConfig(problem="darcy", n=6, grid=8, solver="cg", chunk=2, seed=0)
    out = tmp_path / "d.h5"
    with pytest.raises(KeyboardInterrupt):
        generate(cfg, out, progress=InterruptAfter(3))
    manifest = parts_dir(out) / "manifest.json"
    old = json.loads(manifest.read_text())
    del old["sampling"]  # what a run that drew all samples from one stream saved
    manifest.write_text(json.dumps(old))
    with pytest.raises(PipelineError, match="differs in: format"):
        generate(cfg, out, resume=True)


def test_same_command_twice_gives_identical_data(tmp_path):
    generate(_cfg(), tmp_path / "a.h5")
    generate(_cfg(), tmp_path / "b.h5")
    assert_same_data(tmp_path / "a.h5", tmp_path / "b.h5")
    generate(_cfg(seed=4), tmp_path / "c.h5")
    with h5py.File(tmp_path / "a.h5", "r") as fa, h5py.File(tmp_path / "c.h5", "r") as fc:
        assert not np.array_equal(fa["t0_fields"]["pressure"][()], fc["t0_fields"]["pressure"][()])


def test_interrupted_run_resumes_to_the_same_result(tmp_path):
    ref, out = tmp_path / "ref.h5", tmp_path / "run.h5"
    generate(_cfg(), ref)
    with pytest.raises(KeyboardInterrupt):
        generate(_cfg(), out, progress=InterruptAfter(after=7))   # chunks of 3: two complete, one partial
    parts = parts_dir(out)
    assert not out.exists()
    assert sorted(p.name for p in parts.glob("chunk-*.h5")) == ["chunk-00000.h5", "chunk-00001.h5"]
    (parts / ".chunk-00002.h5.tmp").write_bytes(b"half-written")  # a commit cut short
    with pytest.raises(PipelineError, match="--resume"):
        generate(_cfg(), out)
    with pytest.raises(PipelineError, match="differs in: seed"):
        generate(_cfg(seed=9), out, resume=True)

    class Count(Progress):
        def start(self, total, done):
            self.done = done

    c = Count()
    s = generate(_cfg(), out, resume=True, progress=c)
    assert c.done == 6 and s.solved_now == 2 and s.resumed_chunks == 2
    assert not parts.exists()
    assert_same_data(ref, out)
    parts.mkdir()  # as if killed between the final commit and the clean-up
    storage.atomic_write_text(parts / "manifest.json", "{}")
    again = generate(_cfg(), out, resume=True)
    assert again.already_complete and again.solved_now == 0 and not parts.exists()


class _Fail(Progress):
    """Raises ``exc`` at the ``after``-th solved sample, like a solver failing mid-run."""

    def __init__(self, after, exc):
        self.after, self.exc, self.count = after, exc, 0

    def sample(self, iterations, converged):
        self.count += 1
        if self.count == self.after:
            raise self.exc


@pytest.mark.parametrize("exc", [SolverError("solver gave up"), RuntimeError("bug"), NonConvergedError("x")])
def test_failure_after_committed_chunks_keeps_them_and_says_how_to_resume(tmp_path, exc):
    ref, out = tmp_path / "ref.h5", tmp_path / "run.h5"
    generate(_cfg(), ref)
    with pytest.raises(type(exc)) as info:
        generate(_cfg(), out, progress=_Fail(7, exc))  # chunks of 3: two committed
    note = " ".join(getattr(info.value, "__notes__", []))
    assert "2 of 3 chunks are saved in" in note and str(parts_dir(out)) in note and "--resume" in note
    assert not out.exists() and not list(parts_dir(out).glob(".*.tmp"))
    s = generate(_cfg(), out, resume=True)
    assert s.resumed_chunks == 2 and s.solved_now == 2
    assert_same_data(ref, out)


@pytest.mark.parametrize("exc", [SolverError("solver gave up"), KeyboardInterrupt()])
def test_failure_before_any_chunk_leaves_nothing_behind(tmp_path, exc):
    """Nothing to resume: no OUT.parts/, and the next command needs neither flag, even with
    other settings."""
    out = tmp_path / "run.h5"
    with pytest.raises(type(exc)) as info:
        generate(_cfg(), out, progress=_Fail(2, exc))
    assert not getattr(info.value, "__notes__", [])
    assert not out.exists() and not parts_dir(out).exists()
    assert generate(_cfg(seed=5), out).solved_now == 8


def test_manifest_only_unfinished_run_is_not_in_the_way(tmp_path):
    """A run killed before its first chunk (SIGKILL leaves only the manifest) holds nothing."""
    out = tmp_path / "run.h5"
    parts_dir(out).mkdir()
    storage.atomic_write_text(parts_dir(out) / "manifest.json", '{"config": {"seed": 99}}')
    generate(_cfg(), out)
    assert not parts_dir(out).exists()
    with h5py.File(out, "r") as f:
        assert f.attrs["n_trajectories"] == 8


def test_extreme_family_settings_are_one_line_errors(tmp_path):
    """An overflow in the family's set-up is a PipelineError naming the family and the step."""
    out = tmp_path / "x.h5"
    with pytest.raises(PipelineError, match=r"family 'darcy' could not be set up on grid 8 .*OverflowError"):
        generate(GenerateConfig(problem="darcy", n=2, grid=8, param={"tau": 1e308}), out)
    assert not out.exists() and not parts_dir(out).exists()


@pytest.mark.parametrize("where,exc", [("sample", MemoryError("Unable to allocate 37.3 GiB")),
                                       ("assemble", ValueError("Maximum allowed dimension exceeded"))])
def test_family_failures_name_the_step(tmp_path, monkeypatch, where, exc):
    def fail(self, *a, **k):
        raise exc

    monkeypatch.setattr(datagen_toy.ToyPoisson, where, fail)
    with pytest.raises(PipelineError, match=rf"could not {where}.*{type(exc).__name__}: {exc}"):
        generate(_cfg(), tmp_path / "x.h5")


def test_scalar_beyond_float32_is_stored_in_float64(tmp_path):
    out = tmp_path / "h.h5"
    generate(GenerateConfig(problem="heat", n=2, grid=8, param={"radius": 1e308}), out)
    with h5py.File(out, "r") as f:
        assert f["scalars"]["radius"][()] == 1e308  # float32 would make it inf
        assert f["scalars"]["dt"].dtype == np.float32


def test_sigkill_mid_run_then_resume_equals_uninterrupted(tmp_path):
    """A real `kill -9` of the CLI mid-run, then `--resume` in a new process."""
    args = ["generate", "toy", "--n", "12", "--grid", "8", "--solver", "cg", "--solver-opt", "rtol=1e-8",
            "--chunk", "3", "--seed", "11", "--param", "delay=0.04", "--quiet"]
    out = tmp_path / "k.h5"
    code = "import sys, datagen_toy; from datagen.cli import main; main(sys.argv[1:])"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(TESTS)]), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", code, *args, "--out", str(out)], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    parts = parts_dir(out)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(parts.glob("chunk-*.h5"))) < 2 and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not out.exists()
    done = sorted(parts.glob("chunk-*.h5"))
    assert 2 <= len(done) < 4
    res = subprocess.run([sys.executable, "-c", code, *args, "--out", str(out), "--resume"], env=env,
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "" and res.stderr == ""  # --quiet
    ref = tmp_path / "ref.h5"
    generate(GenerateConfig(problem="toy", n=12, grid=8, solver="cg", solver_opt={"rtol": 1e-8}, chunk=3,
                            seed=11, param={"delay": 0.04}), ref)
    assert_same_data(ref, out)
    with h5py.File(out, "r") as f:
        assert "--resume" in f.attrs["command"]


# --- non-convergence, overwrite ---------------------------------------------------------
def test_non_converged_samples_are_kept_and_flagged(tmp_path):
    out = tmp_path / "nc.h5"
    s = generate(_cfg(solver_opt={"rtol": 1e-12, "maxiter": 3}, n=4), out)
    assert s.non_converged == 4
    with h5py.File(out, "r") as f:
        assert not f["solver_stats"]["converged"][()].any()
        assert all("maxiter" in r.decode() for r in f["solver_stats"]["reason"][()])
        assert np.all(f["solver_stats"]["relative_residual"][()] > 1e-12)
    rep = validate_file(out, samples=4)
    assert rep.ok and rep.non_converged == 4   # honest flags are not validation failures


def test_strict_stops_without_a_final_file(tmp_path):
    out = tmp_path / "strict.h5"
    with pytest.raises(NonConvergedError, match="did not converge"):
        generate(_cfg(solver_opt={"rtol": 1e-12, "maxiter": 3}), out, strict=True)
    assert not out.exists()


def test_overwrite_replaces_and_refuses_foreign_files(tmp_path):
    out = tmp_path / "w.h5"
    generate(_cfg(n=3), out)
    with pytest.raises(PipelineError, match="exists"):
        generate(_cfg(n=3), out)
    generate(_cfg(n=4), out, overwrite=True)
    with h5py.File(out, "r") as f:
        assert f.attrs["n_trajectories"] == 4
    parts = parts_dir(out)
    parts.mkdir()
    (parts / "notes.txt").write_text("mine")
    with pytest.raises(PipelineError, match="did not write"):
        generate(_cfg(n=4), out, overwrite=True)
    with pytest.raises(PipelineError, match="exclude"):
        generate(_cfg(n=4), out, overwrite=True, resume=True)


# --- the real families ---------------------------------------------------------------------
def test_darcy_with_recycling_solver_validates(tmp_path):
    """The lead's `make run` configuration at a tiny size: darcy + gcrodr, greedy order."""
    out = tmp_path / "darcy.h5"
    cfg = GenerateConfig(problem="darcy", n=6, grid=12, solver="gcrodr", order="greedy", chunk=3, seed=0)
    s = generate(cfg, out)
    assert s.non_converged == 0
    rep = validate_file(out, samples=6)
    assert rep.ok, rep.lines()
    with h5py.File(out, "r") as f:
        assert f.attrs["dataset_name"] == "darcy" and storage.check_schema(f) == []


@pytest.mark.petsc
def test_petsc_backend_resume_equality_and_routed_options(petsc, tmp_path):
    """PETSc GMRES through the pipeline: an interrupted run resumes to the uninterrupted
    result, and the generic `petsc` solver takes PETSc options given as solver options."""
    cfg = _cfg(solver="gmres", solver_opt={"backend": "petsc", "pc": "jacobi", "rtol": 1e-8})
    ref, out = tmp_path / "ref.h5", tmp_path / "run.h5"
    generate(cfg, ref)
    with pytest.raises(KeyboardInterrupt):
        generate(cfg, out, progress=InterruptAfter(after=4))
    generate(cfg, out, resume=True)
    assert_same_data(ref, out)
    assert validate_file(out, samples=8).ok
    cg = tmp_path / "cg.h5"
    generate(_cfg(solver="petsc", solver_opt={"ksp_type": "cg", "pc_type": "jacobi", "rtol": 1e-8}), cg)
    with h5py.File(cg, "r") as f, h5py.File(ref, "r") as g:
        assert f["solver_stats"]["converged"][()].all()
        np.testing.assert_allclose(f["t0_fields"]["pressure"][()], g["t0_fields"]["pressure"][()], rtol=1e-4,
                                   atol=1e-6 * np.abs(g["t0_fields"]["pressure"][()]).max())


@pytest.mark.parametrize("grid", [[8, 8.7], [8.5], [8, True], [8, float("inf")]])
def test_config_grid_with_a_fractional_size_is_refused(grid, tmp_path):
    # a config file's "grid": [8, 8.7] is refused, not truncated to an 8x8 grid
    from datagen.pipeline import GenerateConfig, PipelineError

    with pytest.raises(PipelineError, match="integer sizes"):
        GenerateConfig.from_mapping({"problem": "darcy", "n": 2, "grid": grid})
    assert GenerateConfig.from_mapping({"problem": "darcy", "n": 2, "grid": [8, 12.0]}).grid == (8, 12)
    if grid != [8, 8.7]:
        return  # the command-line path for one case only
    (tmp_path / "c.json").write_text(json.dumps({"problem": "darcy", "n": 2, "grid": grid, "out": "c.h5"}))
    p = run_datagen("generate", "--config", "c.json", cwd=tmp_path)
    assert p.returncode == 2 and "integer sizes" in one_line(p)
    assert sorted(q.name for q in tmp_path.iterdir()) == ["c.json"]

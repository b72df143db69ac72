"""Regression tests from the session-3 user-path review of datagen and gcrodr: each one
failed before its fix."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings

import h5py
import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla

import linsolve
from linsolve import gallery


def _tridiag(n):
    return sp.diags([-1.0, 2.2, -1.1], [-1, 0, 1], shape=(n, n)).tocsr()


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("case", ["nan_operator", "overflow"])
def test_gcrodr_non_finite_first_step_prints_nothing(capfd, case, side):
    # NaN/Inf at the first Arnoldi step with no recycled space left an empty cycle that was
    # handed to LAPACK, whose xerbla printed "DGETRF parameter number 4" to the terminal
    n = 20
    A = _tridiag(n)
    if case == "nan_operator":
        A = spla.LinearOperator((n, n), matvec=lambda v: np.full(n, np.nan), dtype=np.float64)
    else:
        A = A * 1e300  # finite entries, A v overflows
    s = linsolve.make_solver("gcrodr", restart=10, recycle=4, pc_side=side)
    r = s.solve(A, np.ones(n))
    out, err = capfd.readouterr()
    assert "DGETRF" not in out + err and out + err == ""
    assert not r.converged and r.iterations == 0
    assert "non-finite" in r.reason or "NaN" in r.reason
    # the solver is still usable and right afterwards
    A2 = _tridiag(n)
    b = np.arange(1.0, n + 1)
    r2 = s.solve(A2, b)
    assert r2.converged
    assert np.allclose(r2.x, np.linalg.solve(A2.toarray(), b), rtol=1e-4)


def _python_ksp(petsc, A, prefix):
    from linsolve.petsc_utils import csr_to_aij

    Am = csr_to_aij(A)
    ksp = petsc.KSP().create(comm=petsc.COMM_SELF)
    ksp.setOptionsPrefix(prefix)
    opts = petsc.Options(prefix)
    opts["ksp_type"] = "python"
    opts["ksp_python_type"] = "linsolve.petsc_ksp_python.GCRODR"
    ksp.setOperators(Am)
    ksp.setFromOptions()
    return ksp, Am


@pytest.mark.petsc
def test_python_ksp_nan_rhs_is_diverged_nanorinf_like_petsc(petsc):
    # a NaN right-hand side made KSPSolve raise PETSc error 101 (caused by error 63,
    # "residual norm must be nonnegative"); PETSc's own KSPs return DIVERGED_NANORINF
    A = gallery.convection_diffusion2d(8, peclet=5.0)
    n = A.shape[0]
    b = np.ones(n)
    b[3] = np.nan
    R = petsc.KSP.ConvergedReason
    reasons = {}
    for name in ("gmres", "python"):
        ksp, Am = _python_ksp(petsc, A, f"revs3nan{name}_")
        if name == "gmres":
            ksp.setType("gmres")
        bv, xv = petsc.Vec().createWithArray(b.copy()), Am.createVecRight()
        ksp.solve(bv, xv)
        reasons[name] = (ksp.getConvergedReason(), ksp.getIterationNumber())
        assert not np.isfinite(ksp.getResidualNorm())
        assert np.all(xv.getArray() == 0.0)
    assert reasons["python"] == reasons["gmres"] == (R.DIVERGED_NANORINF, 0)
    # the same KSP then solves a good system
    bv, xv = petsc.Vec().createWithArray(np.where(np.isfinite(b), b, 1.0)), Am.createVecRight()
    ksp.solve(bv, xv)
    assert ksp.getConvergedReason() > 0
    assert np.linalg.norm(bv.getArray() - A @ xv.getArray()) <= 1e-5 * np.linalg.norm(bv.getArray()) * (1 + 1e-6)


# --- datagen generate channel ------------------------------------------------------------------
CHANNEL = ["generate", "channel", "--grid", "8,9,8", "--trajectories", "1", "--snapshots", "2", "--every", "2",
           "--spinup", "4", "--quiet"]


def _datagen(*args, cwd):
    return subprocess.run([sys.executable, "-m", "datagen.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300, env={**os.environ, "DATAGEN_PROGRESS": "0"})


def _one_line(p):
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, p.stderr
    return lines[0]


def test_channel_bad_coarse_grid_refused_before_the_spin_up(tmp_path):
    # was found only after the spin-up, which left g.h5.parts/ with its checkpoint behind, so the
    # corrected command then needed --overwrite
    p = _datagen(*CHANNEL, "--coarse-grid", "16,5,4", "--out", "g.h5", cwd=tmp_path)
    assert p.returncode == 2
    assert "finer than the DNS grid" in _one_line(p)
    assert list(tmp_path.iterdir()) == []
    p = _datagen(*CHANNEL, "--coarse-grid", "4,5,4", "--out", "g.h5", cwd=tmp_path)
    assert p.returncode == 0, p.stderr


def test_channel_blow_up_is_one_line_and_leaves_nothing(tmp_path):
    # a spin-up that blew up printed NumPy's overflow RuntimeWarning (two more lines) and left
    # g.h5.parts/config.json, so the command with a smaller dt was refused ("use --resume or --overwrite")
    p = _datagen(*CHANNEL, "--coarse-grid", "4,5,4", "--dt", "10", "--out", "g.h5", cwd=tmp_path)
    assert p.returncode == 1
    assert "the DNS blew up" in _one_line(p) and p.stdout == ""
    assert list(tmp_path.iterdir()) == []
    p = _datagen(*CHANNEL, "--coarse-grid", "4,5,4", "--out", "g.h5", cwd=tmp_path)
    assert p.returncode == 0, p.stderr


def test_channel_resume_with_other_settings_does_not_advise_resume(tmp_path):
    # the error said "... use another output path or delete g.h5.parts; 1 trajectories are saved
    # ...: the same command with --resume continues from there" (the command that had just failed)
    p = _datagen(*CHANNEL, "--coarse-grid", "4,5,4", "--out", "g.h5", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    before = (tmp_path / "g.h5").read_bytes()
    args = [a if a != "2" else "3" for a in CHANNEL]  # --snapshots 3 (and --every 3)
    p = _datagen(*args, "--coarse-grid", "4,5,4", "--out", "g.h5", "--resume", cwd=tmp_path)
    assert p.returncode == 2
    line = _one_line(p)
    assert "different configuration" in line and "every, snapshots" in line and "--overwrite" in line
    assert "--resume continues" not in line
    assert (tmp_path / "g.h5").read_bytes() == before
    p = _datagen(*args, "--coarse-grid", "4,5,4", "--out", "g.h5", "--overwrite", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    with h5py.File(tmp_path / "g.h5", "r") as f:
        assert f["t1_fields/velocity"].shape[:2] == (1, 3)


@pytest.mark.petsc
@pytest.mark.parametrize("key", ["ksp_rtol", "-ksp_atol", "ksp_max_it", "ksp_divtol"])
def test_petsc_tolerance_options_are_refused_not_silently_overridden(petsc, key, tmp_path):
    # KSPSetTolerances on every solve overrode them: --solver-opt ksp_rtol=1e-2 solved to 1e-5
    # and ksp_max_it=3 ran 45 iterations, while the file recorded petsc_options {"ksp_rtol": 0.01}
    with pytest.raises(linsolve.OptionError, match=key.lstrip("-")):
        linsolve.make_solver("petsc", ksp_type="cg", petsc_options={key: 3})
    if key == "ksp_rtol":  # the datagen path (one subprocess is enough)
        p = _datagen("generate", "darcy", "--n", "2", "--grid", "8", "--solver", "petsc", "--solver-opt",
                     f"{key}=3", "--out", "d.h5", cwd=tmp_path)
        assert p.returncode == 2 and "would be overridden" in _one_line(p)
        assert list(tmp_path.iterdir()) == []
    # the solver's own tolerance still reaches PETSc
    A = gallery.poisson2d(12)
    b = np.ones(A.shape[0])
    r = linsolve.make_solver("petsc", ksp_type="cg", rtol=1e-2).solve(A, b)
    assert r.converged and 1e-3 * np.linalg.norm(b) < np.linalg.norm(b - A @ r.x) <= 1e-2 * np.linalg.norm(b)


@pytest.mark.parametrize("grid", [[8, 8.7], [8.5], [8, True], [8, float("inf")]])
def test_config_grid_with_a_fractional_size_is_refused(grid, tmp_path):
    # a config file's "grid": [8, 8.7] was truncated to an 8x8 grid (and stored as [8, 8]) silently
    from datagen.pipeline import GenerateConfig, PipelineError

    with pytest.raises(PipelineError, match="integer sizes"):
        GenerateConfig.from_mapping({"problem": "darcy", "n": 2, "grid": grid})
    assert GenerateConfig.from_mapping({"problem": "darcy", "n": 2, "grid": [8, 12.0]}).grid == (8, 12)
    if grid != [8, 8.7]:
        return  # the command-line path once
    (tmp_path / "c.json").write_text(json.dumps({"problem": "darcy", "n": 2, "grid": grid, "out": "c.h5"}))
    p = _datagen("generate", "--config", "c.json", cwd=tmp_path)
    assert p.returncode == 2 and "integer sizes" in _one_line(p)
    assert sorted(q.name for q in tmp_path.iterdir()) == ["c.json"]


@pytest.mark.petsc
def test_petsc_initialised_by_linsolve_leaves_sigterm_to_python(petsc):
    # PETSc's signal handler took SIGTERM: 7 "PETSC ERROR" lines and exit status 15
    code = ("import os, signal; from linsolve.petsc_utils import petsc; petsc(); "
            "os.kill(os.getpid(), signal.SIGTERM)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == -signal.SIGTERM and "PETSC" not in p.stderr, p.stderr


@pytest.mark.petsc
@pytest.mark.parametrize("solver", [["--solver", "petsc"], ["--solver", "cg", "--solver-opt", "backend=petsc"]])
def test_sigterm_during_a_petsc_run_is_one_line_and_resumable(petsc, solver, tmp_path):
    args = ["generate", "darcy", "--n", "300", "--grid", "40", "--chunk", "5", "--out", "t.h5", "--quiet", *solver]
    env = {**os.environ, "DATAGEN_PROGRESS": "0", "OMP_NUM_THREADS": "1"}
    p = subprocess.Popen([sys.executable, "-m", "datagen.cli", *args], cwd=tmp_path, env=env,
                         stderr=subprocess.PIPE, text=True)
    parts = tmp_path / "t.h5.parts"
    deadline = time.monotonic() + 120
    while p.poll() is None and time.monotonic() < deadline:
        if len(list(parts.glob("chunk-*.h5"))) >= 2:
            p.send_signal(signal.SIGTERM)
            break
        time.sleep(0.002)
    err = p.communicate(timeout=120)[1]
    if p.returncode == 0:
        pytest.skip("the run finished before the signal")
    assert p.returncode == 143, err
    assert len(err.splitlines()) == 1 and "--resume continues" in err and "PETSC" not in err
    assert not (tmp_path / "t.h5").exists() and not list(tmp_path.glob(".*.tmp"))


def test_diverged_iterate_is_reported_without_a_numpy_warning(tmp_path):
    # SOR on an indefinite matrix overflows to ~1e300 before NaN; the base class's residual check
    # printed "RuntimeWarning: overflow encountered in dot" (also under datagen generate --quiet)
    n = 20
    A = sp.diags([-2.0, 1.0, -2.0], [-1, 0, 1], shape=(n, n)).tocsr()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = linsolve.make_solver("sor", maxiter=100000).solve(A, np.ones(n))
    assert not r.converged and r.reason == "breakdown: non-finite iterate"
    assert np.all(r.x == 0.0) and r.relative_residual == 1.0
    p = _datagen("generate", "helmholtz", "--n", "1", "--grid", "32", "--solver", "sor", "--solver-opt",
                 "maxiter=100000", "--quiet", "--out", "h.h5", cwd=tmp_path)
    assert p.returncode == 0 and p.stderr == "" and p.stdout == ""
    with h5py.File(tmp_path / "h.h5", "r") as f:
        assert not f["solver_stats/converged"][0]


@pytest.mark.petsc
def test_petsc_under_python_dash_c_prints_nothing_at_exit(petsc):
    # sys.argv[0] is "-c" there; passed to petsc4py.init it became an option that PETSc reported
    # at exit: "WARNING! There are options you set that were not used! ... Option left: name:-c"
    code = "from linsolve.petsc_utils import petsc; print(sorted(petsc().Options().getAll()))"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and p.stderr == "" and p.stdout.strip() == "['no_signal_handler']", p.stdout


def test_open_dataset_on_a_channel_file_says_what_it_holds(tmp_path):
    # was StoreError "does not match the datagen layout: root attribute 'command' missing"
    import datagen
    from datagen.store import StoreError

    p = _datagen(*CHANNEL, "--coarse-grid", "4,5,4", "--out", "c.h5", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    from datagen.dataset import GeneratedData

    with pytest.raises(StoreError, match="holds trajectories") as exc:
        GeneratedData.load(tmp_path / "c.h5")
    assert "missing" not in str(exc.value)
    d = datagen.open_dataset(tmp_path / "c.h5")  # the trajectories, as stored
    with h5py.File(tmp_path / "c.h5", "r") as f:
        np.testing.assert_array_equal(d.velocity, f["t1_fields/velocity"][()])
        assert d.velocity.shape == (1, 2, 4, 5, 4, 3)
        np.testing.assert_array_equal(d.coordinates["y"], f["dimensions/y"][()])
        assert d.scalars["Re_tau"] == pytest.approx(180.0) and d.n_trajectories == 1


@pytest.mark.parametrize("pc", ["none", "jacobi"])
def test_cg_with_zero_tolerance_keeps_its_solution(pc, tmp_path):
    # rtol=0 (run to maxiter): SciPy's CG divided 0 by 0 once r.z underflowed, the NaN iterate was
    # replaced by x0 = 0 (relative residual 1, "breakdown: non-finite iterate") and a RuntimeWarning
    # was printed, although the solve had reached 1e-15; datagen --solver-opt rtol=0 stored zeros
    A = gallery.poisson2d(8)
    b = np.ones(A.shape[0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = linsolve.make_solver("cg", rtol=0.0, pc=pc).solve(A, b)
    assert not r.converged  # ||r|| <= 0 is out of reach in floating point
    assert r.relative_residual < 1e-12
    np.testing.assert_allclose(r.x, np.linalg.solve(A.toarray(), b), rtol=1e-12)
    p = _datagen("generate", "darcy", "--n", "1", "--grid", "8", "--solver-opt", "rtol=0", "--solver-opt",
                 f"pc={pc}", "--quiet", "--out", "d.h5", cwd=tmp_path)
    assert p.returncode == 0 and p.stderr == ""
    with h5py.File(tmp_path / "d.h5", "r") as f:
        assert f["solver_stats/relative_residual"][0] < 1e-12 and np.any(f["solution_vectors/x"][0] != 0)


@pytest.mark.parametrize("tau", ["1e-10", "1e-300"])
def test_overflowing_family_parameters_are_one_line_naming_them(tau, tmp_path):
    # darcy --param tau=1e-10 (GRF variance ~1e20, exp overflows) printed 2-4 lines of NumPy
    # RuntimeWarnings and then "features contain NaN or Inf" from the ordering
    p = _datagen("generate", "darcy", "--n", "2", "--grid", "8", "--param", f"tau={tau}", "--out", "a.h5",
                 cwd=tmp_path)
    assert p.returncode == 2
    line = _one_line(p)
    assert "sampled NaN or Inf" in line and "'tau'" in line and "--param" in line
    assert list(tmp_path.iterdir()) == []


def test_resume_with_a_damaged_manifest_is_one_line(tmp_path):
    # valid JSON of another shape was an AttributeError traceback (exit 1); unreadable JSON was
    # reported as "a different configuration (differs in: chunk, dim, grid, n, ...)"
    from datagen.pipeline import GenerateConfig, Progress, generate

    class _Stop(Progress):
        count = 0

        def sample(self, iterations, converged):
            self.count += 1
            if self.count == 3:
                raise KeyboardInterrupt

    cfg = GenerateConfig.from_mapping({"problem": "darcy", "n": 6, "grid": 8, "chunk": 2})
    with pytest.raises(KeyboardInterrupt):
        generate(cfg, tmp_path / "k.h5", progress=_Stop())
    args = ["generate", "darcy", "--n", "6", "--grid", "8", "--chunk", "2", "--out", "k.h5", "--quiet"]
    for manifest in ("[1]", '{"config": 5}', "garbage", "\udcff"):
        (tmp_path / "k.h5.parts" / "manifest.json").write_bytes(manifest.encode("utf-8", "surrogateescape"))
        p = _datagen(*args, "--resume", cwd=tmp_path)
        assert p.returncode == 2 and "manifest of the unfinished run" in _one_line(p) and "damaged" in p.stderr
    p = _datagen(*args, "--overwrite", cwd=tmp_path)
    assert p.returncode == 0, p.stderr


def test_channel_resume_with_a_damaged_run_configuration_is_one_line(tmp_path):
    # OUT.parts/config.json that is not JSON was a JSONDecodeError traceback (exit 1)
    args = [*CHANNEL, "--coarse-grid", "4,5,4", "--out", "c.h5"]
    assert _datagen(*args, cwd=tmp_path).returncode == 0
    for text in ("garbage", "[1]"):
        (tmp_path / "c.h5.parts" / "config.json").write_text(text)
        p = _datagen(*args, "--resume", cwd=tmp_path)
        assert p.returncode == 2 and "is damaged" in _one_line(p) and "--overwrite" in p.stderr
    assert _datagen(*args, "--overwrite", cwd=tmp_path).returncode == 0


@pytest.mark.parametrize("config", ["{bad", None, "no solver_stats"])
def test_resume_of_an_output_with_a_damaged_config_attribute_is_one_line(config, tmp_path):
    # a finished output whose config attribute is not JSON was a JSONDecodeError traceback on
    # --resume (a missing one, or a missing /solver_stats, a KeyError traceback)
    from datagen.pipeline import GenerateConfig, generate

    args = ["generate", "darcy", "--n", "2", "--grid", "8", "--out", "d.h5", "--quiet"]
    generate(GenerateConfig.from_mapping({"problem": "darcy", "n": 2, "grid": 8}), tmp_path / "d.h5")
    with h5py.File(tmp_path / "d.h5", "a") as f:
        if config is None:
            del f.attrs["config"]
        elif config == "no solver_stats":
            del f["solver_stats"]
        else:
            f.attrs["config"] = config
    p = _datagen(*args, "--resume", cwd=tmp_path)
    assert p.returncode == 2 and "is damaged" in _one_line(p) and "--overwrite" in p.stderr


def test_channel_resume_recomputes_a_damaged_trajectory_shard(tmp_path):
    # a trajectory shard that does not open was taken as finished and the join failed with an
    # OSError traceback ("file signature not found") plus "the same command with --resume continues"
    args = [*CHANNEL, "--trajectories", "2", "--coarse-grid", "4,5,4", "--out", "c.h5"]
    assert _datagen(*args, cwd=tmp_path).returncode == 0
    before = (tmp_path / "c.h5").read_bytes()
    (tmp_path / "c.h5.parts" / "traj_0001.h5").write_text("junk")
    p = _datagen(*args, "--resume", cwd=tmp_path)
    assert p.returncode == 0 and p.stderr == "", p.stderr
    assert (tmp_path / "c.h5").read_bytes() == before  # recomputed to the same bytes


@pytest.mark.petsc
@pytest.mark.parametrize("opts,needle", [({"ksp_gcrodr_restart": 1}, "restart must be"),
                                         ({"ksp_gcrodr_restart": 10, "ksp_gcrodr_recycle": 9}, "recycle=9")])
def test_python_ksp_bad_options_are_refused_at_set_from_options(petsc, opts, needle):
    # they were accepted by KSPSetFromOptions and failed only inside the first KSPSolve
    A = gallery.convection_diffusion2d(6, peclet=5.0)
    from linsolve.petsc_utils import csr_to_aij

    ksp = petsc.KSP().create(comm=petsc.COMM_SELF)
    prefix = f"revs3opt{len(opts)}{abs(hash(needle)) % 1000}_"
    ksp.setOptionsPrefix(prefix)
    o = petsc.Options(prefix)
    o["ksp_type"] = "python"
    o["ksp_python_type"] = "linsolve.petsc_ksp_python.GCRODR"
    for k, v in opts.items():
        o[k] = v
    ksp.setOperators(csr_to_aij(A))
    with pytest.raises(petsc.Error) as exc:
        ksp.setFromOptions()
    assert isinstance(exc.value.__cause__, linsolve.OptionError) and needle in str(exc.value.__cause__)


@pytest.mark.petsc
def test_python_ksp_symmetric_pc_side_is_refused(petsc):
    # PC_SYMMETRIC ran silently as left preconditioning
    from linsolve.petsc_ksp_python import GCRODR
    from linsolve.petsc_utils import csr_to_aij

    A = gallery.convection_diffusion2d(6, peclet=5.0)
    Am = csr_to_aij(A)
    ksp = petsc.KSP().create(comm=petsc.COMM_SELF)
    ksp.setType("python")
    ksp.setPythonContext(GCRODR(restart=10, recycle=4))
    ksp.setOperators(Am)
    ksp.getPC().setType("jacobi")
    ksp.setPCSide(petsc.PC.Side.SYMMETRIC)
    with pytest.raises(petsc.Error) as exc:
        ksp.solve(petsc.Vec().createWithArray(np.ones(A.shape[0])), Am.createVecRight())
    assert isinstance(exc.value.__cause__, linsolve.OptionError) and "PC_SYMMETRIC" in str(exc.value.__cause__)
    ksp.setPCSide(petsc.PC.Side.LEFT)
    b = np.ones(A.shape[0])
    x = Am.createVecRight()
    ksp.solve(petsc.Vec().createWithArray(b.copy()), x)
    assert ksp.getConvergedReason() > 0
    assert np.linalg.norm(b - A @ x.getArray()) <= 1e-5 * np.linalg.norm(b) * (1 + 1e-6)


def test_scalars_hold_the_sampled_value_not_an_unused_family_setting(tmp_path):
    # helmholtz variant=skr samples k ~ U(0, k_max) per system, but /scalars/k said 16.0 with
    # sample_varying=False (the indefinite variant's fixed k, unused here)
    p = _datagen("generate", "helmholtz", "--n", "4", "--grid", "12", "--param", "variant=skr", "--quiet",
                 "--out", "h.h5", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    with h5py.File(tmp_path / "h.h5", "r") as f:
        k = f["scalars/k"]
        assert k.shape == (4,) and bool(k.attrs["sample_varying"])
        np.testing.assert_array_equal(k[()], f["parameters/k"][()].astype(np.float32))
        assert np.all((k[()] >= 0) & (k[()] <= 1.0))
        assert list(f["scalars"].attrs["field_names"]).count("k") == 1


@pytest.mark.parametrize("param", ["tau=1e-2", "tau=4e-3"])
def test_family_values_beyond_float32_are_refused_before_solving(param, tmp_path):
    # darcy tau=1e-2 on 8x8 samples a coefficient of 1.8e39 (sample 6): the run stored inf in
    # t0_fields/a with "overflow encountered in cast" warnings (exit 0); with tau=4e-3 it printed
    # SciPy/NumPy overflow warnings and stopped after 8 chunks with "A contains NaN or Inf entries;
    # ... the same command with --resume continues" (it would fail there again)
    p = _datagen("generate", "darcy", "--n", "20", "--grid", "8", "--chunk", "2", "--order", "none", "--param",
                 param, "--out", "a.h5", cwd=tmp_path)
    assert p.returncode == 2
    assert "beyond the float32 range" in _one_line(p) and "--param" in p.stderr
    assert list(tmp_path.iterdir()) == []

"""The ``datagen`` command through typer's CliRunner (and the real entry point in a
subprocess): every bad input exits 2 with one line and writes nothing; --strict exits 1."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import datagen_toy  # noqa: F401  (registers the 'toy' family)
import h5py
import numpy as np
import pytest
from datagen_run import one_line, run_datagen
from typer.testing import CliRunner

from datagen.cli import app
from datagen.pipeline import parts_dir
from linsolve import SolverError
from linsolve.cli_support import Terminated

runner = CliRunner()
BASE = ["generate", "toy", "--n", "4", "--grid", "6", "--chunk", "2", "--seed", "1", "--solver", "cg"]


def invoke(*args, env=None):
    return runner.invoke(app, [str(a) for a in args], env=env)


def assert_bad_input(res, needle, out: Path | None = None):
    assert res.exit_code == 2, (res.exit_code, res.output)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("datagen: error:") and needle in lines[0], lines[0]
    assert "Traceback" not in res.output
    if out is not None:
        assert not out.exists() and not parts_dir(out).exists()


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    out = d / "made.h5"
    res = invoke(*BASE, "--solver-opt", "rtol=1e-9", "--out", out, env={"DATAGEN_PROGRESS": "1"})
    assert res.exit_code == 0, res.output
    return out, res


def test_problems_lists_families_and_parameters():
    res = invoke("problems")
    assert res.exit_code == 0
    for word in ("toy", "darcy", "amplitude", "delay"):
        assert word in res.stdout


def test_problems_lists_every_problem_generate_accepts(tmp_path):
    """Every problem `generate` accepts, `channel` (run by the CLI itself, not a registered
    family) included, is in the listing and in the unknown-problem error: both use one list."""
    from datagen import available_families
    from datagen.cli import CLI_PROBLEMS

    res = invoke("problems")
    assert res.exit_code == 0, res.output
    listed = {ln.split("\u2502")[1].strip() for ln in res.stdout.splitlines() if ln.startswith("\u2502")}
    expected = set(available_families()) | {"channel"}
    assert expected == set(available_families()) | set(CLI_PROBLEMS)
    assert expected <= listed, expected - listed
    res = invoke("generate", "no_such_problem", "--n", "1", "--out", tmp_path / "x.h5")
    assert_bad_input(res, "unknown problem family 'no_such_problem'", tmp_path / "x.h5")
    assert all(name in res.stderr for name in expected), res.stderr


def test_generate_prints_summary_and_stores_command(made):
    out, res = made
    assert "non-converged samples" in res.stdout and "iterations" in res.stdout
    assert "systems/s" in res.stderr and "mean its" in res.stderr  # the progress bar
    with h5py.File(out, "r") as f:
        assert f.attrs["command"].startswith("datagen generate toy --n 4")
        cfg = json.loads(f.attrs["config"])
    assert cfg["solver_opt"] == {"rtol": 1e-9} and cfg["grid"] == [6] and cfg["problem"] == "toy"


def test_quiet_prints_nothing(tmp_path):
    res = invoke(*BASE, "--out", tmp_path / "q.h5", "--quiet")
    assert res.exit_code == 0 and res.output == ""


def test_stored_config_reproduces_the_file(made, tmp_path):
    out, _ = made
    with h5py.File(out, "r") as f:
        cfg = json.loads(f.attrs["config"])
    conf = tmp_path / "c.json"
    conf.write_text(json.dumps(cfg))
    again = tmp_path / "again.h5"
    assert invoke("generate", "--config", conf, "--out", again, "--quiet").exit_code == 0
    with h5py.File(out, "r") as f1, h5py.File(again, "r") as f2:
        np.testing.assert_array_equal(f1["t0_fields"]["pressure"][()], f2["t0_fields"]["pressure"][()])
        assert f1.attrs["config"] == f2.attrs["config"]


def test_toml_config_and_command_line_precedence(tmp_path):
    conf = tmp_path / "c.toml"
    conf.write_text('problem = "toy"\nn = 3\ngrid = "5,7"\nsolver = "gmres"\nchunk = 2\n'
                    f'out = "{tmp_path / "t.h5"}"\n[solver_opt]\nrestart = 5\nrtol = 1e-7\n[param]\namplitude = 0.5\n')
    res = invoke("generate", "--config", conf, "--n", "5", "--solver-opt", "rtol=1e-9", "--quiet")
    assert res.exit_code == 0, res.output
    with h5py.File(tmp_path / "t.h5", "r") as f:
        assert f.attrs["n_trajectories"] == 5 and f["t0_fields"]["pressure"].shape == (5, 5, 7)
        cfg = json.loads(f.attrs["config"])
        assert f.attrs["amplitude"] == 0.5
    assert cfg["solver"] == "gmres" and cfg["solver_opt"] == {"restart": 5, "rtol": 1e-9}


def test_dim_option_builds_3d(tmp_path):
    out = tmp_path / "d3.h5"
    res = invoke("generate", "toy", "--n", "2", "--grid", "4", "--dim", "3", "--out", out, "--quiet")
    assert res.exit_code == 0, res.output
    with h5py.File(out, "r") as f:
        assert f["t0_fields"]["pressure"].shape == (2, 4, 4, 4)


@pytest.mark.parametrize("extra,needle", [
    (["--n", "0"], "n must be an integer >= 1"),
    (["--n", "-4"], "n must be an integer >= 1"),
    (["--n", "lots"], "'--n'"),
    (["--grid", "0"], "grid sizes must be positive"),
    (["--grid", "8,x"], "grid"),
    (["--solver", "nosuch"], "unknown solver 'nosuch'; available: "),
    (["--solver-opt", "rtol=-1"], "rtol"),
    (["--solver-opt", "restart"], "not key=value"),
    (["--solver-opt", "bogus=3"], "unknown option(s) bogus"),
    (["--solver-opt", "maxiter=abc"], "maxiter"),
    (["--param", "nosuch=1"], "unknown parameter(s) nosuch"),
    (["--param", "amplitude=-1"], "amplitude"),
    (["--order", "zigzag"], "unknown ordering method 'zigzag'"),
    (["--chunk", "0"], "chunk must be an integer >= 1"),
    (["--dim", "5"], "dim"),
    (["--seed", str(10 ** 22)], "seed must be below 2**63"),  # stored as int64: refused before the solves
    (["--chunk", str(10 ** 20)], "chunk must be below 2**63"),
    (["--resume", "--overwrite"], "exclude"),
])
def test_generate_bad_input_exit_2(tmp_path, extra, needle):
    out = tmp_path / "bad.h5"
    assert_bad_input(invoke(*BASE, *extra, "--out", out), needle, out)


def test_unknown_family_lists_known(tmp_path):
    out = tmp_path / "u.h5"
    res = invoke("generate", "nosuch", "--n", "2", "--out", out)
    assert_bad_input(res, "unknown problem family 'nosuch'; available: ", out)
    assert "toy" in res.stderr and "darcy" in res.stderr


def test_out_ending_with_separator_is_refused(made, tmp_path):
    """`--out newdir/` wrote a FILE named newdir (Path() drops the trailing separator); the
    CLI has no directory form of --out, so it is bad input and nothing is written."""
    (tmp_path / "cfg.json").write_text(json.dumps({"problem": "toy", "n": 2, "grid": 6,
                                                   "out": str(tmp_path / "fromcfg") + os.sep}))
    cases = [[*BASE, "--out", f"{tmp_path / 'newdir'}{os.sep}"],
             ["generate", "channel", "--preset", "small", "--trajectories", "1", "--snapshots", "1",
              "--out", f"{tmp_path / 'chan'}{os.sep}"],
             ["generate", "--config", tmp_path / "cfg.json"],
             ["plot", made[0], "--out", f"{tmp_path / 'png'}{os.sep}"]]
    for args in cases:
        res = invoke(*args)
        assert_bad_input(res, "ends with a path separator")
        assert sorted(p.name for p in tmp_path.iterdir()) == ["cfg.json"], args
    existing = tmp_path / "existing"
    existing.mkdir()
    for args in ([*BASE, "--out", existing], ["generate", "channel", "--preset", "small", "--out", existing]):
        assert_bad_input(invoke(*args), "is a directory")
        assert list(existing.iterdir()) == [] and not parts_dir(existing).exists()


def test_missing_required_values(tmp_path):
    assert_bad_input(invoke("generate", "toy", "--out", tmp_path / "m.h5"), "--n")
    assert_bad_input(invoke("generate", "toy", "--n", "2"), "--out")
    assert_bad_input(invoke("generate", "--n", "2", "--out", tmp_path / "m.h5"), "PROBLEM")


def test_existing_output_needs_resume_or_overwrite(made, tmp_path):
    out, _ = made
    before = out.read_bytes()
    assert_bad_input(invoke(*BASE, "--out", out), "exists; pass --overwrite")
    assert out.read_bytes() == before
    copy = tmp_path / "copy.h5"
    shutil.copy(out, copy)
    assert invoke(*BASE, "--solver-opt", "rtol=1e-9", "--out", copy, "--resume").exit_code == 0
    assert_bad_input(invoke(*BASE, "--out", copy, "--resume"), "different configuration")
    assert invoke(*BASE, "--out", copy, "--overwrite", "--quiet").exit_code == 0


def test_unwritable_output(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert_bad_input(invoke(*BASE, "--out", blocker / "sub" / "o.h5"), "cannot create output directory")
    assert_bad_input(invoke(*BASE, "--out", tmp_path), "is a directory")
    # like --out /etc/passwd/x.h5: bad input (exit 2), not an OSError
    assert_bad_input(invoke(*BASE, "--out", blocker / "o.h5"), f"{str(blocker)!r} is not a directory")
    assert_bad_input(invoke("generate", "channel", "--preset", "small", "--out", blocker / "o.h5"),
                     "is not a directory")


def test_output_that_is_a_fifo_is_never_replaced(tmp_path):
    fifo = tmp_path / "f.h5"
    os.mkfifo(fifo)
    assert_bad_input(invoke(*BASE, "--out", fifo, "--overwrite"), "not a regular file")
    assert fifo.is_fifo()


def test_directory_refusing_files_is_bad_input(made, tmp_path, monkeypatch):
    """A read-only mount or /proc: root's os.access says writable, creating a file fails."""
    import tempfile

    def refuse(*a, **k):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    out = tmp_path / "ro" / "o.h5"
    assert_bad_input(invoke(*BASE, "--out", out), "refuses new files (Read-only file system)")
    assert not out.exists() and not parts_dir(out).exists()
    png = tmp_path / "p.png"
    assert_bad_input(invoke("plot", made[0], "--out", png), "refuses new files")


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
def test_proc_output_is_bad_input():
    assert_bad_input(invoke(*BASE, "--out", "/proc/datagen-test.h5"), "refuses new files")


def test_parts_path_that_is_a_file(tmp_path):
    out = tmp_path / "o.h5"
    parts_dir(out).write_text("mine")
    assert_bad_input(invoke(*BASE, "--out", out), "exists and is not a directory")
    assert parts_dir(out).read_text() == "mine"


@pytest.mark.parametrize("text,suffix,needle", [
    ("{not json", ".json", "malformed JSON"),
    ("n = = 3", ".toml", "malformed TOML"),
    ("[1, 2]", ".json", "must hold a mapping"),
    ('{"problem": "toy", "n": 2, "colour": 1}', ".json", "unknown configuration key(s) colour"),
    ('{"problem": "toy", "n": 2, "solver_opt": ["rtol"]}', ".json", "not key=value"),
    ('{"problem": "toy", "n": 2, "quiet": "no"}', ".json", "config key 'quiet' must be true or false"),
    ('{"problem": "toy", "n": 2, "overwrite": 1}', ".json", "config key 'overwrite' must be true or false"),
])
def test_malformed_config_exit_2(tmp_path, text, suffix, needle):
    conf = tmp_path / f"c{suffix}"
    conf.write_text(text)
    out = tmp_path / "o.h5"
    assert_bad_input(invoke("generate", "--config", conf, "--out", out), needle, out)


def test_config_out_must_be_a_path(tmp_path):
    conf = tmp_path / "c.json"
    conf.write_text('{"problem": "toy", "n": 2, "out": 5}')
    assert_bad_input(invoke("generate", "--config", conf), "out must be a file path, got 5")


def test_missing_config_file(tmp_path):
    assert_bad_input(invoke("generate", "--config", tmp_path / "none.json"), "cannot read config file")


def test_strict_fails_run_with_exit_1(tmp_path):
    out = tmp_path / "s.h5"
    res = invoke(*BASE, "--solver-opt", "maxiter=2", "--solver-opt", "rtol=1e-12", "--strict", "--quiet",
                 "--out", out)
    assert res.exit_code == 1
    assert "did not converge" in res.stderr and "Traceback" not in res.output
    assert not out.exists()
    # without --strict the same run completes and counts them
    res = invoke(*BASE, "--solver-opt", "maxiter=2", "--solver-opt", "rtol=1e-12", "--overwrite", "--out", out)
    assert res.exit_code == 0
    row = next(ln for ln in res.stdout.splitlines() if "non-converged" in ln)
    assert "4" in row


def _fail_at(monkeypatch, after, exc):
    import datagen.pipeline as pipeline

    class Fail(pipeline.Progress):
        count = 0

        def sample(self, iterations, converged):
            Fail.count += 1
            if Fail.count == after:
                raise exc

    monkeypatch.setattr(pipeline, "Progress", Fail)


@pytest.mark.parametrize("exc,code,word", [(SolverError("solver gave up"), 2, "error: solver gave up"),
                                           (KeyboardInterrupt(), 130, "interrupted"),
                                           (Terminated(), 143, "terminated")])
def test_failed_run_names_its_resumable_state_in_one_line(tmp_path, monkeypatch, exc, code, word):
    out = tmp_path / "f.h5"
    _fail_at(monkeypatch, 3, exc)  # chunks of 2: one committed
    res = invoke(*BASE, "--out", out)
    assert res.exit_code == code, res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"datagen: {word}"), res.stderr
    assert f"1 of 2 chunks are saved in {str(parts_dir(out))!r}: the same command with --resume" in lines[0]
    assert not out.exists()
    monkeypatch.undo()
    assert_bad_input(invoke(*BASE, "--out", out), "pass --resume to continue it")
    res = invoke(*BASE, "--out", out, "--resume")
    assert res.exit_code == 0 and out.exists() and not parts_dir(out).exists()
    assert "1 of 2" in next(ln for ln in res.stdout.splitlines() if "chunks resumed" in ln)


def test_failure_in_first_chunk_leaves_nothing(tmp_path, monkeypatch):
    out = tmp_path / "f.h5"
    _fail_at(monkeypatch, 1, SolverError("solver gave up"))
    assert_bad_input(invoke(*BASE, "--out", out), "solver gave up", out)
    monkeypatch.undo()
    assert invoke(*BASE, "--solver", "gmres", "--out", out, "--quiet").exit_code == 0  # no flag needed


def test_sigterm_is_one_line_and_the_run_resumes(tmp_path):
    out = tmp_path / "t.h5"
    code = "import sys, datagen_toy; from datagen.cli import main; main(sys.argv[1:])"
    args = ["generate", "toy", "--n", "6", "--grid", "6", "--chunk", "2", "--param", "delay=0.15", "--quiet",
            "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2]),
                                                        str(Path(__file__).resolve().parents[1])])}
    proc = subprocess.Popen([sys.executable, "-c", code, *args], env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not list(parts_dir(out).glob("chunk-*.h5")) and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert err.count("\n") == 1 and err.startswith("datagen: terminated; ") and "--resume" in err, err
    assert not out.exists() and not list(parts_dir(out).glob(".*.tmp"))
    res = subprocess.run([sys.executable, "-c", code, *args, "--resume"], env=env, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0 and res.stderr == "", res.stderr
    with h5py.File(out, "r") as f:
        assert f.attrs["n_trajectories"] == 6 and f["solver_stats"]["converged"][()].all()


def test_inspect_json_and_table(made):
    out, _ = made
    res = invoke("inspect", out, "--json")
    assert res.exit_code == 0
    s = json.loads(res.stdout)
    assert s["n_trajectories"] == 4 and s["grid"] == [6, 6] and s["schema_problems"] == []
    assert s["fields"]["pressure"]["role"] == "output" and s["stats"]["non_converged"] == 0
    with h5py.File(out, "r") as f:
        assert s["stats"]["iterations_max"] == int(f["solver_stats"]["iterations"][()].max())
    res = invoke("inspect", out)
    assert res.exit_code == 0 and "solver statistics" in res.stdout and "t0_fields/pressure" in res.stdout


def test_validate_ok_and_failure(made, tmp_path):
    out, _ = made
    res = invoke("validate", out, "--samples", "4")
    assert res.exit_code == 0 and "OK: 4 systems re-assembled" in res.stdout
    bad = tmp_path / "bad.h5"
    shutil.copy(out, bad)
    with h5py.File(bad, "r+") as f:
        f["solution_vectors"]["x"][:] *= np.float32(1.01)
    res = invoke("validate", bad, "--samples", "4")
    assert res.exit_code == 1 and "FAIL" in res.stdout


def test_plot_writes_png(made, tmp_path):
    out, _ = made
    png = tmp_path / "p.png"
    res = invoke("plot", out, "--index", "2", "--out", png)
    assert res.exit_code == 0, res.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


@pytest.mark.parametrize("args,needle", [
    (["inspect", "{missing}"], "does not exist"),
    (["validate", "{missing}"], "does not exist"),
    (["inspect", "{notdatagen}"], "not a datagen file"),
    (["validate", "{garbage}"], "not a readable HDF5 file"),
    (["inspect", "{dir}"], "is a directory"),
    (["plot", "{made}", "--index", "99", "--out", "{png}"], "out of range"),
    (["plot", "{made}", "--index", "0", "--out", "{nodir}"], "does not exist"),
    (["plot", "{made}", "--index", "0", "--out", "{txt}"], "unsupported image format"),
    (["plot", "{made}", "--index", "0", "--out", "{dir}"], "is a directory"),
    (["inspect", "{fifo}"], "is not a regular file"),  # opening it would block until a writer comes
    (["validate", "{made}", "--seed", "-1"], "'--seed'"),  # blamed on the option, not on the file
    (["plot", "{made}", "--index", "0", "--out", "{undermade}"], "is not a directory"),
])
def test_reading_commands_bad_input(made, tmp_path, args, needle):
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["a"] = 1
    (tmp_path / "garbage.h5").write_text("not hdf5")
    os.mkfifo(tmp_path / "fifo.h5")
    sub = {"{missing}": str(tmp_path / "none.h5"), "{notdatagen}": str(other),
           "{garbage}": str(tmp_path / "garbage.h5"), "{made}": str(made[0]), "{png}": str(tmp_path / "p.png"),
           "{nodir}": str(tmp_path / "no" / "p.png"), "{txt}": str(tmp_path / "p.txt"), "{dir}": str(tmp_path),
           "{undermade}": str(made[0] / "p.png"), "{fifo}": str(tmp_path / "fifo.h5")}
    before = sorted(p.name for p in tmp_path.iterdir())
    assert_bad_input(invoke(*[sub.get(a, a) for a in args]), needle)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written


def _del_group(name):
    def damage(f):
        del f[name]
    return damage


def _set_attr(name, value):
    def damage(f):
        if value is None:
            del f.attrs[name]
        else:
            f.attrs[name] = value
    return damage


@pytest.mark.parametrize("damage,problem", [
    (_del_group("solver_stats"), "group /solver_stats missing"),  # not taken for a trajectory file
    (_set_attr("config", "{bad"), "root attribute 'config' is not valid JSON"),
    (_set_attr("n_trajectories", None), "root attribute 'n_trajectories' missing"),
])
def test_damaged_file_problem_is_named_by_validate_inspect_and_plot(made, tmp_path, damage, problem):
    bad = tmp_path / "damaged.h5"
    shutil.copy(made[0], bad)
    with h5py.File(bad, "r+") as f:
        damage(f)
    res = invoke("validate", bad)
    assert res.exit_code == 1 and f"schema: {problem}" in res.stdout and "Traceback" not in res.output
    assert "OK" not in res.stdout
    res = invoke("inspect", bad)
    if res.exit_code != 0:
        assert_bad_input(res, f"is damaged or not in the datagen layout: {problem}")
    else:  # what it can show, with the problem named
        assert f"schema problems: {problem}" in res.stdout
    res = invoke("plot", bad, "--out", tmp_path / "p.png")
    if res.exit_code != 0:
        assert_bad_input(res, problem)


def test_entry_point_subprocess_one_line(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2]), env_path()])}
    out = tmp_path / "o.h5"
    p = subprocess.run([sys.executable, "-m", "datagen.cli", "generate", "darcy", "--n", "2", "--solver",
                        "nosuch", "--out", str(out)], capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "unknown solver 'nosuch'" in p.stderr
    assert not out.exists()
    p = subprocess.run([sys.executable, "-m", "datagen.cli", "generate", "darcy", "--n", "abc", "--out",
                        str(out)], capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "'--n'" in p.stderr


def env_path() -> str:
    return os.environ.get("PYTHONPATH", "")


def test_solver_failure_mid_run_is_one_line_without_a_terminal(tmp_path):
    """No progress bar when stderr is not a terminal, so a failing solve reports one line."""
    p = subprocess.run([sys.executable, "-m", "datagen.cli", "generate", "darcy", "--n", "2", "--grid", "8",
                        "--solver", "fft-poisson", "--out", str(tmp_path / "a.h5")],
                       capture_output=True, text=True, timeout=300, env={**os.environ, "DATAGEN_PROGRESS": ""})
    assert p.returncode == 2
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "fft-poisson" in lines[0], p.stderr
    assert not (tmp_path / "a.h5").exists()


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


def test_resume_with_a_damaged_manifest_is_one_line(tmp_path):
    # valid JSON of another shape and unreadable JSON are both reported as a damaged
    # manifest in one line, exit 2
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
        p = run_datagen(*args, "--resume", cwd=tmp_path)
        assert p.returncode == 2 and "manifest of the unfinished run" in one_line(p) and "damaged" in p.stderr
    p = run_datagen(*args, "--overwrite", cwd=tmp_path)
    assert p.returncode == 0, p.stderr


@pytest.mark.parametrize("config", ["{bad", None, "no solver_stats"])
def test_resume_of_an_output_with_a_damaged_config_attribute_is_one_line(config, tmp_path):
    # a finished output whose config attribute is not JSON or missing, or that lacks
    # /solver_stats, is one line on --resume, exit 2
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
    p = run_datagen(*args, "--resume", cwd=tmp_path)
    assert p.returncode == 2 and "is damaged" in one_line(p) and "--overwrite" in p.stderr

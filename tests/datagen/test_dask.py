"""datagen on Dask: chunks (and channel trajectories) as tasks on a LocalCluster of 2
single-threaded worker processes give the in-process data; resume works whatever ran the
interrupted run; a worker SIGKILLed mid-task, an unreachable scheduler and a task that
raises each behave as documented. One cluster serves the module (workers start slowly)."""
from __future__ import annotations

import math
import os
import signal
import socket
import threading
import time

import datagen_toy
import h5py
import numpy as np
import pytest
from datagen_run import InterruptAfter, assert_same_data
from typer.testing import CliRunner

from datagen import cluster as dgcluster
from datagen import storage
from datagen.cli import app
from datagen.family import _FAMILIES
from datagen.pipeline import GenerateConfig, PipelineError, Progress, generate, parts_dir, sample_stream


def _cfg(**kw):
    base = dict(problem="toy", n=12, grid=8, solver="cg", solver_opt={"rtol": 1e-8, "warm_start": True}, chunk=3,
                seed=3)
    base.update(kw)
    return GenerateConfig(**base)


@pytest.fixture(scope="module")
def cluster():
    from distributed import Client

    with dgcluster.local_cluster(2) as lc, Client(lc, set_as_default=False) as client:  # as --workers 2 makes it
        yield lc.scheduler_address, client


class Recorder(Progress):
    def __init__(self):
        self.chunks, self.samples = [], []

    def chunk(self, iterations, converged):
        self.chunks.append(list(iterations))
        super().chunk(iterations, converged)

    def sample(self, iterations, converged):
        self.samples.append(iterations)


def test_two_workers_give_the_in_process_data_and_report_every_chunk(tmp_path, cluster):
    """Warm starts carry state within a chunk, so a chunk split or reordered would differ."""
    ref, out = tmp_path / "ref.h5", tmp_path / "dask.h5"
    generate(_cfg(), ref)
    rec = Recorder()
    s = generate(_cfg(), out, scheduler=cluster[0], progress=rec)
    assert_same_data(ref, out)
    assert s.solved_now == 12 and s.workers == f"scheduler {cluster[0]}" and not parts_dir(out).exists()
    assert sorted(len(c) for c in rec.chunks) == [3, 3, 3, 3]
    with h5py.File(out, "r") as f:
        assert sorted(rec.samples) == sorted(f["solver_stats"]["iterations"][()].tolist())


def _periodic_callbacks(dask_worker):
    return sorted(dask_worker.periodic_callbacks)


def test_local_cluster_workers_run_without_the_statistical_profiler(cluster):
    """The profiler samples the task thread every 10 ms (CPU the solves do not get); the
    settings reach the worker processes, whose other periodic work (heartbeats) still runs."""
    callbacks = cluster[1].run(_periodic_callbacks)
    assert len(callbacks) == 2
    for names in callbacks.values():
        assert "heartbeat" in names and not any(n.startswith("profile") for n in names)


def test_the_client_draws_on_its_cores_only_with_workers(cluster):
    """In-process the run keeps to one thread; with workers (idle until the order is known)
    the client draws the samples on the cores it may use."""
    assert dgcluster.connect().client_threads == 1
    with dgcluster.connect(scheduler=cluster[0]) as session:
        assert session.client_threads == min(len(os.sched_getaffinity(0)), 8)


def test_recycling_solver_statistics_do_not_depend_on_the_workers(tmp_path, cluster):
    """Recycled CG's deflation space flows through a chunk: the data and iterations equal the
    in-process run's bit for bit."""
    cfg = GenerateConfig(problem="darcy", n=6, grid=12, solver="rcg", order="greedy", chunk=3, seed=0)
    generate(cfg, tmp_path / "ref.h5")
    generate(cfg, tmp_path / "dask.h5", scheduler=cluster[0])
    assert_same_data(tmp_path / "ref.h5", tmp_path / "dask.h5")


#: on a worker process: the sample counts IndependentToy drew there, and a shift its draws take
_DRAWN: list = []
_SHIFT: list = [0.0]


class IndependentToy(datagen_toy.ToyPoisson):
    """The toy family drawn sample by sample (each from its own stream)."""

    name = "toy-independent"
    independent_samples = True

    def sample(self, n, rng):
        _DRAWN.append(n)
        return [{**p, "a": p["a"] + _SHIFT[0]} for p in super().sample(n, rng)]


def _drawn_on_this_worker():
    return len(_DRAWN)


def _shift_draws(value):
    _SHIFT[0] = value


def test_tasks_draw_their_own_samples_and_give_the_in_process_data(tmp_path, cluster, monkeypatch):
    """A family with independent samples ships no parameters: each task draws its chunk's
    samples from their streams, and the data equal the in-process run's."""
    address, client = cluster
    monkeypatch.setitem(_FAMILIES, "toy-independent", IndependentToy)
    cfg = _cfg(problem="toy-independent")
    ref, out = tmp_path / "ref.h5", tmp_path / "dask.h5"
    generate(cfg, ref)
    before = sum(client.run(_drawn_on_this_worker).values())
    generate(cfg, out, scheduler=address)
    assert sum(client.run(_drawn_on_this_worker).values()) - before == 12  # every sample drawn on a worker
    assert_same_data(ref, out)
    with h5py.File(out, "r") as f:  # and equal to the streams drawn here
        a = f["parameters"]["a"][()]
    family = cfg.build_family(IndependentToy)
    assert a.tolist() == [family.sample(1, sample_stream(3, i))[0]["a"] for i in range(12)]


def test_worker_drawing_other_samples_than_the_client_stops_the_run(tmp_path, cluster, monkeypatch):
    """(A worker with another NumPy would draw other fields than /parameters holds.)"""
    address, client = cluster
    monkeypatch.setitem(_FAMILIES, "toy-independent", IndependentToy)
    client.run(_shift_draws, 1e-12)
    try:
        with pytest.raises(PipelineError, match="worker drew sample .* other values than the client"):
            generate(_cfg(problem="toy-independent"), tmp_path / "o.h5", scheduler=address)
    finally:
        client.run(_shift_draws, 0.0)
    assert not (tmp_path / "o.h5").exists()


def test_resume_works_whatever_ran_the_interrupted_run(tmp_path, cluster):
    ref = tmp_path / "ref.h5"
    generate(_cfg(), ref)
    # interrupted in-process (2 chunks of 4 saved), resumed on the workers
    a = tmp_path / "a.h5"
    with pytest.raises(KeyboardInterrupt):
        generate(_cfg(), a, progress=InterruptAfter(7))
    assert len(list(parts_dir(a).glob("chunk-*.h5"))) == 2
    s = generate(_cfg(), a, resume=True, scheduler=cluster[0])
    assert s.resumed_chunks == 2 and s.solved_now == 6
    assert_same_data(ref, a)
    # interrupted on the workers after their first chunk, resumed in-process
    b = tmp_path / "b.h5"
    with pytest.raises(KeyboardInterrupt) as info:
        generate(_cfg(), b, scheduler=cluster[0], progress=InterruptAfter(1))
    assert "chunks are saved in" in " ".join(info.value.__notes__)
    assert not b.exists() and list(parts_dir(b).glob("chunk-*.h5"))
    s = generate(_cfg(), b, resume=True)
    assert s.resumed_chunks >= 1 and s.solved_now == 12 - 3 * s.resumed_chunks
    assert_same_data(ref, b)


def _executing(dask_worker):
    return [str(ts.key) for ts in dask_worker.state.executing]


def test_worker_killed_mid_task_its_chunk_runs_again_elsewhere(tmp_path, cluster):
    address, client = cluster
    cfg = _cfg(n=8, chunk=2, param={"delay": 0.3})  # a chunk takes about 0.6 s
    ref, out = tmp_path / "ref.h5", tmp_path / "dask.h5"
    generate(cfg, ref)
    pids = client.run(os.getpid)
    result = {}

    def run():
        try:
            result["summary"] = generate(cfg, out, scheduler=address)
        except BaseException as exc:  # reported by the main thread
            result["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    victim, deadline = None, time.time() + 60
    while victim is None and time.time() < deadline and thread.is_alive():
        busy = client.run(_executing)
        victim = next((w for w, keys in busy.items() if any(k.startswith("chunk-") for k in keys)), None)
        time.sleep(0.05)
    assert victim is not None, "no worker was seen running a chunk"
    os.kill(pids[victim], signal.SIGKILL)
    thread.join(timeout=120)
    assert not thread.is_alive() and "error" not in result, result.get("error")
    assert result["summary"].solved_now == 8
    assert_same_data(ref, out)  # no sample lost, none twice
    client.wait_for_workers(2, timeout=60)  # the nanny started a new worker process
    assert pids[victim] not in client.run(os.getpid).values()


class FailingToy(datagen_toy.ToyPoisson):
    """The toy family whose sample with a == fail_a raises while it is assembled."""

    name = "toy-fail"
    params = {**datagen_toy.ToyPoisson.params, "fail_a": (math.inf, "a of the sample that fails")}

    def assemble(self, params):
        if params["a"] == self.p["fail_a"]:
            raise RuntimeError("toy-fail: this sample fails on purpose")
        return super().assemble(params)


def test_task_that_raises_stops_the_run_keeping_finished_shards(tmp_path, cluster, monkeypatch):
    monkeypatch.setitem(_FAMILIES, "toy-fail", FailingToy)
    last = FailingToy(grid=8, dim=2).sample(12, np.random.default_rng(3))[-1]["a"]
    cfg = _cfg(problem="toy-fail", order="none", param={"fail_a": last})  # chunks 0-2 pass, chunk 3 fails
    out = tmp_path / "f.h5"
    with pytest.raises(RuntimeError, match="fails on purpose") as info:
        generate(cfg, out, scheduler=cluster[0])
    assert not out.exists()
    note = " ".join(info.value.__notes__)
    saved = int(note.split(" of 4 chunks are saved")[0].split()[-1])
    assert saved >= 1 and "--resume" in note
    ref = tmp_path / "ref.h5"
    generate(_cfg(order="none"), ref)  # the same samples (the family differs only in failing)
    time.sleep(1.0)  # a chunk still running when the run stopped may commit after it (a cancelled future)
    shards = sorted(parts_dir(out).glob("chunk-*.h5"))
    assert len(shards) >= saved and "chunk-00003.h5" not in [p.name for p in shards]
    with h5py.File(ref, "r") as f:
        pressure = f["t0_fields"]["pressure"][()]
    for p in shards:
        sh = storage.read_shard(p)
        assert storage.shard_is_valid(p, np.arange(3 * sh["chunk"], 3 * sh["chunk"] + 3))
        np.testing.assert_array_equal(sh["fields"]["pressure"], pressure[sh["sample_index"]])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _one_line(res, needle):
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.exit_code == 2 and len(lines) == 1, (res.exit_code, res.stderr)
    assert lines[0].startswith("datagen: error:") and needle in lines[0], lines[0]


ARGS = ["generate", "toy", "--n", "4", "--grid", "6", "--chunk", "2", "--seed", "1", "--solver", "cg"]


@pytest.mark.parametrize("how", ["option", "environment", "channel"])
def test_unreachable_scheduler_is_one_line_exit_2_before_any_work(tmp_path, how):
    address = f"tcp://127.0.0.1:{_free_port()}"
    out = tmp_path / "o.h5"
    env = {"DATAGEN_CONNECT_TIMEOUT": "1"}
    args = [*ARGS, "--out", str(out)]
    if how == "channel":
        args = ["generate", "channel", "--out", str(out), "--scheduler", address]
    elif how == "option":
        args += ["--scheduler", address]
    else:
        env["DASK_SCHEDULER_ADDRESS"] = address
    t0 = time.perf_counter()
    res = CliRunner().invoke(app, args, env=env)
    _one_line(res, f"cannot reach the Dask scheduler at {address!r} within 1 s")
    assert time.perf_counter() - t0 < 30
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("extra,needle", [(["--workers", "0"], "--workers must be an integer >= 1"),
                                          (["--workers", "2", "--scheduler", "tcp://h:1"], "exclude each other")])
def test_bad_worker_options_exit_2(tmp_path, extra, needle):
    _one_line(CliRunner().invoke(app, [*ARGS, "--out", str(tmp_path / "o.h5"), *extra]), needle)
    assert list(tmp_path.iterdir()) == []


def test_cli_workers_starts_a_local_cluster_and_reports_it(tmp_path):
    ref, out = tmp_path / "ref.h5", tmp_path / "w.h5"
    generate(GenerateConfig(problem="toy", n=4, grid=6, chunk=2, seed=1, solver="cg"), ref)
    res = CliRunner().invoke(app, [*ARGS, "--out", str(out), "--workers", "2"], env={"DATAGEN_PROGRESS": "1"})
    assert res.exit_code == 0, res.output
    assert "2 local worker processes" in res.stdout and "4/4" in res.stderr
    assert_same_data(ref, out)


CHANNEL = dict(grid=(16, 32, 16), box=(3.0, 1.5), coarse_grid=(8, 9, 4), trajectories=3, snapshots=2, every=4,
               spinup=40, dt=0.002)


def test_channel_trajectories_on_workers_equal_the_in_process_ones(tmp_path, cluster):
    from datagen.channel import trajectories as dataset

    seen = []
    dataset.generate(tmp_path / "ref.h5", **CHANNEL)
    spun_up = tmp_path / "ref.h5.parts" / "spinup.npz"
    with dgcluster.connect(scheduler=cluster[0]) as session:
        dataset.generate(tmp_path / "dask.h5", **CHANNEL, restart=spun_up, tasks=session.run,
                         progress=lambda k, s: seen.append((k, s)))
    assert sorted(seen) == [(k, s) for k in range(3) for s in range(2)]
    with h5py.File(tmp_path / "ref.h5", "r") as a, h5py.File(tmp_path / "dask.h5", "r") as b:
        for name in ("t1_fields/velocity", "dimensions/time", "trajectory_seeds", "trajectory_start_time"):
            np.testing.assert_array_equal(a[name][()], b[name][()], err_msg=name)

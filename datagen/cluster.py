"""Where datagen's independent tasks run: in this process, on a local Dask cluster, or on an
existing one.

A generation run is a list of independent tasks (the pipeline's chunks, the channel's
trajectories), each of which commits its own shard file atomically. :func:`connect`
returns a :class:`Session`:

* ``connect()`` (neither option): in-process; ``session.client`` is None and the callers run
  their tasks in a plain loop, as without Dask.
* ``connect(workers=N)``: a ``dask.distributed.LocalCluster`` of ``N`` worker processes
  with one thread each (``processes=True, threads_per_worker=1``; OpenMP, BLAS and torch
  limited to one thread on the workers), closed when the session ends.
* ``connect(scheduler=ADDRESS)`` or the environment variable ``DASK_SCHEDULER_ADDRESS``:
  a client of a running scheduler (``dask scheduler`` / ``dask worker``, dask-jobqueue,
  Kubernetes). Connecting has a short timeout (``DATAGEN_CONNECT_TIMEOUT`` seconds,
  default 10): an unreachable scheduler is a :class:`ClusterError` before any work.

``session.run`` submits the tasks as futures (in one ``client.map``) and hands each result
back as it completes (``as_completed``). A worker that dies mid-task (killed, out of memory) has its task
rescheduled on another worker by the scheduler (up to ``distributed.scheduler.allowed-failures``
deaths per task); a task that raises stops the run: the other futures are cancelled and the
exception is raised in the client, as in the in-process loop. Tasks are not retried on
exceptions (``retries`` would only repeat a deterministic failure).

Workers write into the output's ``.parts/`` directory, so on a multi-node cluster that
path must be on a filesystem every worker and the client share.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import uuid
import warnings
from collections.abc import Callable, Hashable, Mapping

from linsolve.core.errors import OptionError
from linsolve.core.validation import check_int

#: default seconds to wait for an existing scheduler before giving up
CONNECT_TIMEOUT_S = 10.0
#: Dask settings of the local cluster (see ``local_cluster``)
LOCAL_CLUSTER_CONFIG = {"distributed.admin.tick.interval": "200ms", "distributed.admin.system-monitor.interval": "2s",
                        "distributed.worker.profile.enabled": False}
#: threads a worker's numerical libraries may use (one task per single-threaded process)
_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")


class ClusterError(OptionError):
    """A worker count or scheduler that cannot be used (bad value, unreachable scheduler,
    Dask not installed)."""


class WorkerLostError(RuntimeError):
    """A task whose workers kept dying (more than the scheduler's allowed failures)."""


def scheduler_from_env() -> str | None:
    """``DASK_SCHEDULER_ADDRESS`` when it is set and not empty."""
    address = os.environ.get("DASK_SCHEDULER_ADDRESS", "").strip()
    return address or None


def _connect_timeout() -> float:
    raw = os.environ.get("DATAGEN_CONNECT_TIMEOUT", "").strip()
    if not raw:
        return CONNECT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ClusterError(f"DATAGEN_CONNECT_TIMEOUT must be a positive number of seconds, got {raw!r}")
    return value


def limit_threads() -> None:
    """On a worker: one thread for torch (OpenMP and BLAS read the environment at start-up,
    which the local cluster sets; a worker started by hand should be given the same)."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != 1:
        torch.set_num_threads(1)


class Session:
    """Runs a list of independent tasks; see the module docstring. ``client`` is None for
    the in-process session."""

    def __init__(self, client=None, cluster=None, description: str = "in-process"):
        self.client, self.cluster, self.description = client, cluster, description

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def client_threads(self) -> int:
        """Threads this process may use for its own serial work before the first task (drawing
        the samples the order needs) while the workers wait: the cores it may run on, at most
        8; 1 in-process, where the run keeps to one thread."""
        if self.client is None:
            return 1
        try:
            cores = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):  # not Linux
            cores = os.cpu_count() or 1
        return max(1, min(cores, 8))

    @property
    def n_workers(self) -> int:
        if self.client is None:
            return 0
        return len(self.client.scheduler_info().get("workers", {}))

    def run(self, fn: Callable, calls: Mapping[Hashable, tuple], on_done: Callable, name: str = "datagen") -> None:
        """Run ``fn(*args)`` for every ``key, args`` in ``calls`` (a loop in-process, Dask
        futures otherwise) and call ``on_done(key, result)`` here as each one finishes.

        Parameters
        ----------
        fn : callable
            The task; picklable (a module-level function or a ``functools.partial`` of one).
        calls : mapping
            Task key (a chunk or trajectory number) -> positional arguments.
        on_done : callable
            ``on_done(key, result)``, called in this process in completion order.
        name : str
            Prefix of the Dask keys (``chunk-3-<run token>``), as the dashboard shows them.

        Raises
        ------
        Exception
            The first task's exception, re-raised here after the remaining futures are
            cancelled; ``WorkerLostError`` for a task whose workers kept dying.

        Examples
        --------
        >>> with connect() as session:  # in-process
        ...     session.run(pow, {k: (k, 2) for k in range(3)}, lambda k, r: print(k, r))
        0 0
        1 1
        2 4
        """
        if self.client is None:
            for key, args in calls.items():
                on_done(key, fn(*args))
            return
        from distributed import as_completed
        from distributed.scheduler import KilledWorker

        if not calls:
            return
        token = uuid.uuid4().hex[:12]
        futures = {}
        try:
            with warnings.catch_warnings():
                # a chunk's parameters travel with its task (several MB for large grids)
                warnings.filterwarnings("ignore", message=".*large graph.*")
                # one message to the scheduler for all tasks (``map`` over the argument columns),
                # not one per task: less work here and on the scheduler before the first task starts
                keys = list(calls)
                columns = [list(col) for col in zip(*calls.values(), strict=True)]
                futures = dict(zip(self.client.map(fn, *columns, key=[f"{name}-{k}-{token}" for k in keys],
                                                   pure=False), keys, strict=True))
            for fut in as_completed(list(futures), loop=self.client.loop):
                try:
                    result = fut.result()
                except KilledWorker as exc:
                    raise WorkerLostError(f"task {name} {futures[fut]} was running on workers that died each "
                                          f"time ({exc}); out of memory?") from None
                on_done(futures[fut], result)
        except BaseException:
            with contextlib.suppress(Exception):
                self.client.cancel(list(futures))
            raise

    def stop(self) -> None:
        """End the session's own workers now (a local cluster) so no task writes after this;
        tasks already running on an existing cluster cannot be stopped and may still commit
        their shards (which a resumed run then uses)."""
        self.close()

    def close(self) -> None:
        client, cluster = self.client, self.cluster
        self.client = self.cluster = None
        with contextlib.suppress(Exception):
            if client is not None:
                client.close(timeout=10)
        with contextlib.suppress(Exception):
            if cluster is not None:
                cluster.close(timeout=10)


def _workers_value(workers) -> int | None:
    if workers is None:
        return None
    return check_int("--workers", workers, 1, error=ClusterError)


def check_options(workers=None, scheduler: str | None = None) -> tuple[int | None, str | None]:
    """The (workers, scheduler) to use: ``--workers`` and ``--scheduler`` exclude each other;
    ``--workers`` wins over ``DASK_SCHEDULER_ADDRESS`` from the environment."""
    workers = _workers_value(workers)
    if scheduler is not None and not str(scheduler).strip():
        raise ClusterError("--scheduler must be a scheduler address such as tcp://host:8786")
    if workers is not None and scheduler is not None:
        raise ClusterError("--workers and --scheduler exclude each other (--workers starts a local cluster, "
                           "--scheduler uses a running one)")
    if workers is None and scheduler is None:
        scheduler = scheduler_from_env()
    return workers, (str(scheduler).strip() if scheduler is not None else None)


def connect(workers=None, scheduler: str | None = None) -> Session:
    """Where to run the tasks of a generation run (see the module docstring).

    Parameters
    ----------
    workers : int, optional
        Start a local cluster of this many single-threaded worker processes.
    scheduler : str, optional
        Address of a running Dask scheduler; default ``DASK_SCHEDULER_ADDRESS`` when
        ``workers`` is not given.

    Returns
    -------
    Session
        Closes its client (and its local cluster) when used as a context manager.

    Raises
    ------
    ClusterError
        A bad worker count, both options, Dask not installed, a local cluster that does not
        start, or a scheduler not reached within ``DATAGEN_CONNECT_TIMEOUT`` seconds.

    Examples
    --------
    >>> with connect() as session:
    ...     session.description
    'in-process'
    """
    workers, scheduler = check_options(workers, scheduler)
    if workers is None and scheduler is None:
        return Session()
    try:
        from distributed import Client
    except ImportError as exc:
        raise ClusterError(f"--workers/--scheduler need dask.distributed ({exc}); install dask[distributed]") from None
    if scheduler is not None:
        timeout = _connect_timeout()
        try:
            client = Client(scheduler, timeout=timeout, set_as_default=False)
        except Exception as exc:  # OSError, TimeoutError, ValueError for a malformed address
            why = " ".join(str(exc).split()) or type(exc).__name__
            raise ClusterError(f"cannot reach the Dask scheduler at {scheduler!r} within {timeout:g} s ({why})") \
                from None
        return Session(client, None, f"scheduler {scheduler}")
    try:
        cluster = local_cluster(workers)
    except Exception as exc:
        raise ClusterError(f"could not start a local Dask cluster of {workers} workers "
                           f"({' '.join(str(exc).split())})") from None
    client = Client(cluster, set_as_default=False)
    return Session(client, cluster, f"{workers} local worker process{'es' if workers > 1 else ''}")


def local_cluster(n_workers: int):
    """The ``LocalCluster`` of ``--workers``: ``n_workers`` processes with one thread each,
    OpenMP/BLAS limited to one thread, and without the ``MALLOC_TRIM_THRESHOLD_`` that Dask's
    nanny sets by default (it makes glibc unmap every large temporary array on free, which
    slowed the channel DNS down about 2x); the dashboard, when bokeh is installed, on a free port.
    The scheduler and nannies live in this process; their event-loop health check runs every
    200 ms instead of 20 ms and the system monitor every 2 s instead of 0.5 s, which takes the
    idle CPU of this process from about 4% to 1.5% of a core: on a machine with as many cores
    as workers that is CPU the workers do not get. The workers' statistical profiler (a stack
    sample of the task thread every 10 ms, for the dashboard's profile page) is off: it took
    about 3% of a core per idle worker and 5% per busy one (0.2 CPU seconds per worker in a 4 s
    darcy run)."""
    import dask
    from distributed import LocalCluster

    environ = {**{k: 1 for k in _THREAD_ENV}, "MALLOC_TRIM_THRESHOLD_": None}  # None: leave it unset
    settings = {f"distributed.nanny.pre-spawn-environ.{k}": v for k, v in environ.items()}
    settings.update(LOCAL_CLUSTER_CONFIG)
    with dask.config.set(settings):
        return LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                            silence_logs=logging.ERROR, env={k: "1" for k in _THREAD_ENV})

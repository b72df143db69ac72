"""Running a typer app as a well-behaved command: bad input (a ``SolverError`` or a
usage error) prints one line naming the problem and exits with status 2, never a traceback."""
from __future__ import annotations

import os
import signal
import sys
import tempfile
import threading
from pathlib import Path

from linsolve.core.errors import SolverError


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that ``finally`` blocks and temp-file clean-up run."""

    signum = signal.SIGTERM


def one_line(exc: BaseException) -> str:
    """The message and its notes (e.g. where a failed run's resumable state is) as one line."""
    return "; ".join([str(exc), *getattr(exc, "__notes__", [])]).replace("\n", " ")


# which signal interrupted the running command, and whether a command already reported it
_interrupt = {"signum": None, "reported": False}


def report_interrupt(prog: str, exc: KeyboardInterrupt) -> int:
    """Print Ctrl-C / SIGTERM as one line (with the exception's notes); the exit status 128+signal.
    A command that must report its notes catches the interrupt itself; typer turns an uncaught
    one into Exit(130), which ``run_app`` reports from the signal it saw."""
    _interrupt["reported"] = True
    what = "terminated" if isinstance(exc, Terminated) else "interrupted"
    print(f"{prog}: {'; '.join([what, *getattr(exc, '__notes__', [])])}", file=sys.stderr)
    return 128 + int(getattr(exc, "signum", signal.SIGINT))


def _on_sigterm(signum, frame):
    _interrupt["signum"] = signum
    raise Terminated()


def _on_sigint(signum, frame):
    _interrupt["signum"] = signum
    raise KeyboardInterrupt()


def _redeliver_unraisable_interrupt(hook, args) -> None:
    """An interrupt that lands in a finaliser or weakref callback cannot propagate there (Python
    prints it as "Exception ignored" and goes on); send the signal again from another thread a
    moment later, so that it is raised in the command's own code."""
    signum = _interrupt["signum"]
    if isinstance(args.exc_value, KeyboardInterrupt) and signum is not None:
        threading.Timer(0.01, os.kill, (os.getpid(), signum)).start()
        return
    hook(args)


def run_app(app, prog: str, argv=None) -> None:
    previous = previous_int = None
    _interrupt.update(signum=None, reported=False)
    previous_unraisable = sys.unraisablehook
    sys.unraisablehook = lambda args: _redeliver_unraisable_interrupt(previous_unraisable, args)
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
        previous_int = signal.signal(signal.SIGINT, _on_sigint)
    try:
        # Without standalone mode click returns the code of typer.Exit(n) instead of exiting.
        rc = app(args=argv, prog_name=prog, standalone_mode=False)
    except SolverError as exc:
        print(f"{prog}: error: {one_line(exc)}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt as exc:
        sys.exit(report_interrupt(prog, exc))
    except Exception as exc:
        # typer/click usage errors (bad option value, missing argument) carry format_message.
        if hasattr(exc, "format_message") and hasattr(exc, "exit_code"):
            print(f"{prog}: error: {exc.format_message()}", file=sys.stderr)
            sys.exit(2 if exc.exit_code not in (0, 1) else exc.exit_code or 2)
        if type(exc).__name__ == "Exit":
            sys.exit(getattr(exc, "exit_code", 0))
        if type(exc).__name__ == "Abort":
            sys.exit(1)
        raise
    finally:
        sys.unraisablehook = previous_unraisable
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
            signal.signal(signal.SIGINT, previous_int)
    if _interrupt["signum"] is not None and not _interrupt["reported"]:
        # typer swallowed the interrupt into a silent exit 130 (also for SIGTERM)
        exc = Terminated() if _interrupt["signum"] == signal.SIGTERM else KeyboardInterrupt()
        sys.exit(report_interrupt(prog, exc))
    sys.exit(rc if isinstance(rc, int) else 0)


def print_table(title: str, columns, rows, width: int | None = None) -> None:
    """Print rows (sequences of strings) as a rich table on stdout."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*row)
    Console(width=width).print(table)


class OutputPathError(SolverError):
    """An output path that cannot be written."""


def check_output_path(path, what: str, *, make_parents: bool = False, replaces: bool = True,
                      error=OutputPathError) -> Path:
    """Refuse, before any work, an output ``path`` that cannot be written, naming the problem:
    a directory at ``path``, a missing parent (created when ``make_parents``), an ancestor
    that is a file, or a directory refusing new files. The last is probed by creating a
    file, since ``os.access`` says yes to root on read-only mounts and pseudo-filesystems.
    A writer that ``replaces`` the path (an atomic rename) must never replace a device or
    FIFO; one writing in place may (``--json /dev/stdout``), and then needs no new file."""
    path = Path(path)
    if path.is_dir():
        raise error(f"{what} {str(path)!r} is a directory")
    if path.exists() and not path.is_file():
        if replaces:
            raise error(f"{what} {str(path)!r} exists and is not a regular file; refusing to replace it")
        return path
    parent = path.parent
    anc = parent
    while not anc.exists() and anc != anc.parent:
        anc = anc.parent
    if not anc.is_dir():
        if make_parents and anc != parent:
            raise error(f"cannot create output directory {str(parent)!r}: {str(anc)!r} is not a directory")
        raise error(f"cannot write {what} {str(path)!r}: {str(anc)!r} is not a directory")
    if not parent.exists():
        if not make_parents:
            raise error(f"cannot write {what} {str(path)!r}: directory {str(parent)!r} does not exist")
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise error(f"cannot create output directory {str(parent)!r}: {exc.strerror or exc}") from None
    try:
        fd, probe = tempfile.mkstemp(dir=parent, prefix=f".{path.name}.", suffix=".probe")
    except OSError as exc:
        raise error(f"cannot write {what} {str(path)!r}: directory {str(parent)!r} refuses new files "
                    f"({exc.strerror or exc})") from None
    os.close(fd)
    os.unlink(probe)
    return path

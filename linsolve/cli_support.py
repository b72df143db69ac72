"""Running a typer app as a well-behaved command: bad input (a ``SolverError`` or a
usage error) prints one line naming the problem and exits with status 2, never a traceback."""
from __future__ import annotations

import sys

from .errors import SolverError


def run_app(app, prog: str, argv=None) -> None:
    try:
        # Without standalone mode click returns the code of typer.Exit(n) instead of exiting.
        rc = app(args=argv, prog_name=prog, standalone_mode=False)
    except SolverError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        sys.exit(130)
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

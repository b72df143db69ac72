"""run_app: a Ctrl-C or SIGTERM inside any command is one stderr line and exit 128+signal
(typer alone turns it into a silent exit 130, also for SIGTERM)."""
import signal
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import os, signal, sys, time, typer
    from linsolve.cli_support import run_app, report_interrupt
    app = typer.Typer()

    @app.command()
    def hit(sig: str = "INT", handle: bool = False):
        try:
            os.kill(os.getpid(), getattr(signal, "SIG" + sig))
            time.sleep(10)
        except KeyboardInterrupt as exc:
            if not handle:
                raise
            exc.add_note("2 chunks saved")
            raise typer.Exit(report_interrupt("prog", exc))

    @app.command()
    def fine():
        print("ok")

    @app.command()
    def in_finaliser(sig: str = "TERM"):
        class Resource:
            def __del__(self):
                # the handler runs inside the finaliser, where Python cannot raise its exception
                os.kill(os.getpid(), getattr(signal, "SIG" + sig))
                for _ in range(1000):
                    sum(range(100))

        r = Resource()
        del r
        for _ in range(100):
            time.sleep(0.05)
        print("ran on")

    run_app(app, "prog", sys.argv[1:])
""")


def run(*args):
    return subprocess.run([sys.executable, "-c", SCRIPT, *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("sig, code, word", [("INT", 130, "interrupted"), ("TERM", 143, "terminated")])
def test_uncaught_interrupt_is_one_line_and_128_plus_signal(sig, code, word):
    out = run("hit", "--sig", sig)
    assert out.returncode == code
    assert out.stderr.strip().splitlines() == [f"prog: {word}"]


def test_interrupt_reported_by_the_command_is_not_repeated():
    out = run("hit", "--sig", "TERM", "--handle")
    assert out.returncode == 128 + signal.SIGTERM
    assert out.stderr.strip().splitlines() == ["prog: terminated; 2 chunks saved"]


def test_normal_command_unaffected():
    out = run("fine")
    assert out.returncode == 0 and out.stdout.strip() == "ok" and out.stderr == ""


@pytest.mark.parametrize("sig, code, word", [("INT", 130, "interrupted"), ("TERM", 143, "terminated")])
def test_interrupt_landing_in_a_finaliser_still_stops_the_command_with_one_line(sig, code, word):
    out = run("in-finaliser", "--sig", sig)
    assert out.returncode == code
    assert out.stderr.strip().splitlines() == [f"prog: {word}"]
    assert "ran on" not in out.stdout

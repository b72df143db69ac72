"""Developed channel-flow states shipped with the package, so datasets can start from
turbulent flow without a spin-up.

``re180-reduced``: Re_tau 180 in the reduced box pi x 2 x pi/2 on the 32x64x48 grid
(stretch 1.6) that ``benchmarks/results/channel_re180.md`` validates against Moser, Kim &
Mansour (1999), at the fixed time step dt = 2e-3. How it was made is in
``data/re180_reduced.md``. A restart option takes such a name or a checkpoint path
(``resolve_restart``).

Making a shipped state from a long run's checkpoint (``python -m datagen.channel.longrun``)::

    python -m datagen.channel.states --from runs/channel-data/checkpoint.npz --dt 2e-3 \\
        --steps 500 --out datagen/channel/data/re180_reduced.npz

runs ``--steps`` steps at the fixed ``--dt`` (so the state is known to be stable at the
step the datasets use) and writes the checkpoint.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from linsolve.core.errors import OptionError

DATA = Path(__file__).resolve().parent / "data"

#: name -> checkpoint file under ``datagen/channel/data``
SHIPPED_STATES = {"re180-reduced": "re180_reduced.npz"}


def shipped_state_path(name: str) -> Path:
    """The file of the shipped state ``name``.

    Parameters
    ----------
    name : str
        One of ``SHIPPED_STATES`` (``"re180-reduced"``).

    Returns
    -------
    pathlib.Path
        The ``.npz`` checkpoint inside the installed package.

    Raises
    ------
    OptionError
        For an unknown name, or a package installed without its data file.

    Examples
    --------
    >>> shipped_state_path("re180-reduced").name
    're180_reduced.npz'
    """
    if name not in SHIPPED_STATES:
        raise OptionError(f"unknown shipped channel state {name!r}; known: {', '.join(SHIPPED_STATES)}")
    path = DATA / SHIPPED_STATES[name]
    if not path.is_file():
        raise OptionError(f"the shipped channel state {name!r} is missing from the installed package ({path})")
    return path


def resolve_restart(restart) -> Path:
    """A restart given as a shipped state's name or as a checkpoint path, as a path.

    Parameters
    ----------
    restart : str or os.PathLike
        A name from ``SHIPPED_STATES`` or the path of a ``save_checkpoint`` file.

    Returns
    -------
    pathlib.Path
        The checkpoint file (a name wins over a relative path of the same spelling).

    Raises
    ------
    OptionError
        When ``restart`` is neither a shipped state nor an existing file.

    Examples
    --------
    >>> resolve_restart("re180-reduced") == shipped_state_path("re180-reduced")
    True
    """
    if isinstance(restart, str) and restart in SHIPPED_STATES:
        return shipped_state_path(restart)
    path = Path(restart)
    if not path.is_file():
        raise OptionError(f"restart checkpoint {str(restart)!r} does not exist (or name a shipped state: "
                          f"{', '.join(SHIPPED_STATES)})")
    return path


def load_state(name: str, **overrides):
    """A ``ChannelDNS`` at the shipped state ``name`` (``overrides`` as in ``load_checkpoint``).

    Examples
    --------
    >>> dns = load_state("re180-reduced")
    >>> dns.grid.shape
    (64, 32, 48)
    """
    from datagen.channel.checkpoint import load_checkpoint

    return load_checkpoint(shipped_state_path(name), **overrides)


def main(argv=None):
    from datagen.channel.checkpoint import load_checkpoint, save_checkpoint

    ap = argparse.ArgumentParser(description="Write a shipped state: a long run's checkpoint advanced "
                                             "--steps steps at the fixed --dt.")
    ap.add_argument("--from", dest="src", required=True, help="checkpoint of a developed run")
    ap.add_argument("--dt", type=float, default=2e-3)
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    dns = load_checkpoint(a.src, dt=a.dt)
    dns.run(a.steps, check_every=10)
    save_checkpoint(dns, a.out)
    m = dns.check()
    print(f"wrote {a.out}: t = {dns.t:.4f}, step {dns.step_count}, dt {dns.cfg.dt}, "
          f"Re_tau(wall shear) = {dns.cfg.re_tau * m['tau_w'] ** 0.5:.2f}, div_max = {m['div_max']:.2e}")


if __name__ == "__main__":
    main()

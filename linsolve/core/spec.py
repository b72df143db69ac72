"""Solvers named as text: the ``NAME:key=value:key=value`` specification that the ``linsolve``
and ``datagen`` commands take (``cg:pc=amg:rtol=1e-8``), its typed option values, and the
routing of PETSc's own options into ``petsc_options``."""
from __future__ import annotations

import json
import re

from linsolve.core.errors import OptionError

# the keywords every solver takes from text (Solver.__init__); other keys are the solver's own
# options or, for PETSc-backed solvers, PETSc's
_SOLVER_KEYWORDS = frozenset({"rtol", "atol", "maxiter", "pc", "pc_options", "backend", "warm_start"})

# an option starts at a colon followed by ``key=``, so JSON values may hold colons
_OPTION_START = re.compile(r":(?=\s*[A-Za-z_][A-Za-z0-9_]*\s*=)")


def parse_option_value(text: str):
    """The typed value of an option given as text.

    ``true``/``yes``/``on`` and ``false``/``no``/``off`` (any case) are booleans,
    ``none``/``null`` is None, an integer literal an ``int``, a float literal a ``float``,
    text starting with ``{`` or ``[`` JSON; anything else stays a string.

    Parameters
    ----------
    text : str
        The value as written after ``key=``.

    Returns
    -------
    bool, None, int, float, dict, list or str

    Raises
    ------
    OptionError
        Text starting with ``{`` or ``[`` that is not valid JSON.

    Examples
    --------
    >>> from linsolve import parse_option_value
    >>> parse_option_value("40"), parse_option_value("1e-8"), parse_option_value("Yes")
    (40, 1e-08, True)
    >>> parse_option_value('{"fill_factor": 2}'), parse_option_value("amg")
    ({'fill_factor': 2}, 'amg')
    """
    if not isinstance(text, str):
        raise OptionError(f"an option value given as text must be a string, got {text!r}")
    low = text.strip().lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    if low in ("none", "null"):
        return None
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    if text[:1] and text[:1] in "{[":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise OptionError(f"malformed JSON option value {text!r}: {exc.msg}") from None
    return text


def parse_option_pairs(items, what: str) -> dict:
    """Repeated ``key=value`` command-line options as a dict, values typed by
    :func:`parse_option_value`; a later key replaces an earlier one.

    Parameters
    ----------
    items : iterable of str or None
        The options as given, e.g. ``["rtol=1e-8", "restart=30"]``.
    what : str
        The option's name for messages, e.g. ``"--solver-opt"``.

    Returns
    -------
    dict

    Raises
    ------
    OptionError
        An item without ``=`` or with an empty key.

    Examples
    --------
    >>> parse_option_pairs(["rtol=1e-8", "restart=30", "pc=ilu"], "--solver-opt")
    {'rtol': 1e-08, 'restart': 30, 'pc': 'ilu'}
    """
    out = {}
    for item in items or []:
        if "=" not in item:
            raise OptionError(f"{what} {item!r} is not key=value")
        k, v = item.split("=", 1)
        if not k.strip():
            raise OptionError(f"{what} {item!r} has an empty key")
        out[k.strip()] = parse_option_value(v)
    return out


def parse_solver_spec(text: str) -> tuple[str, dict]:
    """Split a solver specification ``NAME[:key=value[:key=value...]]`` into its name and options.

    Options are separated by colons; a colon starts a new option only where ``key=``
    follows it, so a JSON value may hold colons and commas
    (``gmres:pc=ilu:pc_options={"fill_factor": 2}``). Values are typed by
    :func:`parse_option_value`. The name is not looked up here: :func:`make_solver` refuses an
    unknown one, listing the known names.

    Parameters
    ----------
    text : str
        The specification, e.g. ``"cg:pc=amg:rtol=1e-8"``.

    Returns
    -------
    name : str
        The solver's name (surrounding spaces removed).
    options : dict
        The options in the order given, for ``make_solver(name, **options)`` (for PETSc's own
        options see :func:`split_solver_options`).

    Raises
    ------
    OptionError
        An empty name, an option that is not ``key=value``, an empty key or value, a key
        given twice or malformed JSON; the message names the option and the specification.

    Examples
    --------
    >>> import linsolve
    >>> linsolve.parse_solver_spec("cg:pc=amg:rtol=1e-8:maxiter=200")
    ('cg', {'pc': 'amg', 'rtol': 1e-08, 'maxiter': 200})
    >>> linsolve.parse_solver_spec('gmres:pc=ilu:pc_options={"fill_factor": 2, "drop_tol": 1e-4}')
    ('gmres', {'pc': 'ilu', 'pc_options': {'fill_factor': 2, 'drop_tol': 0.0001}})
    >>> name, options = linsolve.parse_solver_spec("gcrodr:restart=30:recycle=10")
    >>> linsolve.make_solver(name, **options).opts["recycle"]
    10
    >>> linsolve.parse_solver_spec("cg:pc")
    Traceback (most recent call last):
        ...
    linsolve.core.errors.OptionError: solver option 'pc' in 'cg:pc' is not key=value
    """
    if not isinstance(text, str):
        raise OptionError(f"a solver specification must be a string NAME[:key=value...], got {text!r}")
    name, colon, rest = text.partition(":")
    name = name.strip()
    if not name:
        raise OptionError(f"empty solver specification {text!r}: it must start with a solver name")
    if colon and not rest.strip():
        raise OptionError(f"solver specification {text!r} ends with ':' and no option after it")
    options: dict = {}
    for part in _OPTION_START.split(rest) if colon else []:
        if not part.strip():
            raise OptionError(f"empty solver option in {text!r} (two colons in a row)")
        if "=" not in part:
            raise OptionError(f"solver option {part!r} in {text!r} is not key=value")
        key, value = part.split("=", 1)
        key = key.strip()
        if not key:
            raise OptionError(f"solver option {part!r} in {text!r} has an empty key")
        if key in options:
            raise OptionError(f"solver option {key!r} is given twice in {text!r}")
        if not value.strip():
            raise OptionError(f"solver option {part!r} in {text!r} has no value")
        options[key] = parse_option_value(value)
    return name, options


def split_solver_options(name: str, options: dict) -> dict:
    """The keyword arguments of ``make_solver(name, ...)`` for options given as text: for a
    PETSc-backed solver (one with a ``petsc_options`` option), every key that is neither a
    keyword every solver takes nor the solver's own option goes into ``petsc_options``, so
    ``petsc:ksp_type=bcgs:sub_pc_type=ilu`` reaches PETSc's options database. Other solvers'
    options are returned unchanged (an unknown key is then :func:`make_solver`'s error).

    Parameters
    ----------
    name : str
        A registered solver name.
    options : dict
        The options, e.g. from :func:`parse_solver_spec`; not modified.

    Returns
    -------
    dict
        The options with PETSc's own keys moved into (and merged with) ``petsc_options``.

    Raises
    ------
    UnknownSolverError
        ``name`` is not registered (the message lists the registered names).

    Examples
    --------
    >>> import linsolve
    >>> linsolve.split_solver_options("petsc", {"ksp_type": "bcgs", "rtol": 1e-8, "sub_pc_type": "ilu"})
    {'ksp_type': 'bcgs', 'rtol': 1e-08, 'petsc_options': {'sub_pc_type': 'ilu'}}
    >>> linsolve.split_solver_options("cg", {"pc": "amg", "rtol": 1e-8})
    {'pc': 'amg', 'rtol': 1e-08}
    """
    from linsolve.core.registry import solver_class

    cls = solver_class(name)
    known = _SOLVER_KEYWORDS | set(cls.options)
    extra = {k: v for k, v in options.items() if k not in known}
    if not extra or "petsc_options" not in cls.options:
        return dict(options)
    routed = {k: v for k, v in options.items() if k in known}
    routed["petsc_options"] = {**(routed.get("petsc_options") or {}), **extra}
    return routed

"""Benchmarks (``python -m benchmarks.NAME``). Importing the package first imports
``benchmarks.common``, which sets the thread variables that OpenMP, OpenBLAS and MKL read
when they load, before a script's NumPy import (``--threads``, default 1)."""
from benchmarks import common as _common  # noqa: F401

"""Sphinx configuration of the documentation site (``make docs``; warnings are errors).

Pages: the Markdown files of ``docs/`` (MyST), the API reference (autosummary + numpydoc)
and pages generated at build time from the registries and ``benchmarks/results``
(``_ext/registry_pages.py``, written to the git-ignored ``_generated/``).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))
sys.path.insert(0, str(DOCS.parent))  # document the checkout, not an installed copy
# The docs build must not grab every core of a shared machine while importing the solvers.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import linsolve  # noqa: E402

project = "linsolve"
author = "the linsolve authors"
copyright = "the linsolve authors, BSD-3-Clause"
version = release = linsolve.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_parser",
    "registry_pages",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

# MyST: $...$ maths, ``(label)=`` targets, heading anchors for links like page.md#section
myst_enable_extensions = ["dollarmath", "colon_fence", "deflist"]
myst_heading_anchors = 3
# The results pages include benchmarks/results/*.md as the scripts write them; their heading
# levels (a file may open at ###) are the scripts' business, and a jump in level is cosmetic.
suppress_warnings = ["myst.header"]

# API reference
autosummary_generate = True
autosummary_imported_members = False
autodoc_default_options = {"members": False}
autodoc_typehints = "none"  # numpydoc's Parameters sections carry the types
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
# Every documented public function and class documents its parameters and what it returns
# (a warning, so an error under -W): the reference cannot fall behind a changed signature.
numpydoc_validation_checks = {"PR01", "PR02", "RT01"}
numpydoc_validation_exclude: set[str] = set()

html_theme = "pydata_sphinx_theme"
html_title = f"linsolve {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
}
html_static_path: list[str] = []
